//! What the origin served, counted for analytics and Prometheus.
//!
//! Per request the handler adds to a few atomics ([`OriginStats::record_sent`]) and to
//! Prometheus counters registered once at startup — no allocation, no lock, no cache
//! call. A background task ([`OriginStats::start_flusher`]) moves the atomics into the
//! cache layer every [`FLUSH_INTERVAL`]: one `hash_incr_by` per non-zero field on the
//! site's running totals and on the current hour's bucket, so Redis sees a handful of
//! calls a second however busy the origin is, and replicas sharing Redis add up.
//!
//! The stored shape, and its readers, are in [`crate::analytics::origin`].
//!
//! Prometheus (process-wide): `edgeship_origin_bytes_total{site,encoding}` (body bytes
//! sent), `edgeship_origin_identity_bytes_total{site,encoding}` (what the same responses
//! would have sent as identity) and `edgeship_origin_requests_total{site,status}`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use actix_web::http::StatusCode;
use metrics::Counter;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::negotiate::Coding;
use crate::analytics::origin::{add_served, current_hour};
use crate::cache::{Cache, CacheError};
use crate::metric_names::origin as names;

/// How often counts move from memory into the cache layer.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Statuses whose Prometheus counters are registered up front (others on first use).
const KNOWN_STATUSES: [u16; 9] = [200, 206, 304, 400, 404, 405, 406, 416, 500];

#[derive(Debug, Default)]
struct Pending {
    requests: AtomicU64,
    bytes: AtomicU64,
    identity_bytes: AtomicU64,
    /// Delta codings only: what plain br would have sent.
    br_bytes: AtomicU64,
}

#[derive(Debug)]
struct Prometheus {
    bytes: [Counter; Coding::ALL.len()],
    identity_bytes: [Counter; Coding::ALL.len()],
    statuses: [(u16, Counter); KNOWN_STATUSES.len()],
}

/// The origin's counters for one site: pending counts not yet flushed, and the
/// Prometheus handles.
#[derive(Debug)]
pub struct OriginStats {
    site: String,
    pending: [Pending; Coding::ALL.len()],
    not_modified: AtomicU64,
    prometheus: Prometheus,
}

impl OriginStats {
    /// Counters for `site`; registers its Prometheus series with the process recorder.
    pub fn new(site: &str) -> Self {
        describe();
        let per_coding = |name: &'static str| {
            Coding::ALL.map(|coding| {
                metrics::counter!(name, "site" => site.to_owned(), "encoding" => coding.token())
            })
        };
        Self {
            site: site.to_owned(),
            pending: Default::default(),
            not_modified: AtomicU64::new(0),
            prometheus: Prometheus {
                bytes: per_coding(names::BYTES),
                identity_bytes: per_coding(names::IDENTITY_BYTES),
                statuses: KNOWN_STATUSES.map(|status| (status, status_counter(site, status))),
            },
        }
    }

    /// The site counted.
    pub fn site(&self) -> &str {
        &self.site
    }

    /// One response carrying `coding`: `bytes` of body sent (0 for `HEAD`), standing for
    /// `identity_bytes` of the identity representation.
    pub fn record_sent(&self, coding: Coding, bytes: u64, identity_bytes: u64) {
        let i = coding.index();
        let pending = &self.pending[i];
        pending.requests.fetch_add(1, Ordering::Relaxed);
        if bytes > 0 {
            pending.bytes.fetch_add(bytes, Ordering::Relaxed);
            self.prometheus.bytes[i].increment(bytes);
        }
        if identity_bytes > 0 {
            pending
                .identity_bytes
                .fetch_add(identity_bytes, Ordering::Relaxed);
            self.prometheus.identity_bytes[i].increment(identity_bytes);
        }
    }

    /// One response carrying a delta coding (`dcb`, `dcz`): as [`Self::record_sent`],
    /// plus `br_bytes`, what the plain br variant (or identity) would have sent.
    pub fn record_delta(&self, coding: Coding, bytes: u64, identity_bytes: u64, br_bytes: u64) {
        self.record_sent(coding, bytes, identity_bytes);
        if br_bytes > 0 {
            self.pending[coding.index()]
                .br_bytes
                .fetch_add(br_bytes, Ordering::Relaxed);
        }
    }

    /// One `304 Not Modified`.
    pub fn record_not_modified(&self) {
        self.not_modified.fetch_add(1, Ordering::Relaxed);
    }

    /// One origin response with `status` (every origin response, errors included).
    pub fn record_status(&self, status: StatusCode) {
        let code = status.as_u16();
        match self.prometheus.statuses.iter().find(|(s, _)| *s == code) {
            Some((_, counter)) => counter.increment(1),
            None => status_counter(&self.site, code).increment(1),
        }
    }

    /// Moves the pending counts into the cache layer (totals and the current hour). On a
    /// cache error the counts not written are kept for the next flush. So are all counts
    /// while Redis is unreachable: the cache layer then answers from memory, which it
    /// empties when Redis returns, so counts written there would be lost (they go to the
    /// hour in which Redis answers again).
    pub async fn flush(&self, cache: &Cache) -> Result<(), CacheError> {
        if cache.metrics().is_degraded() {
            return Ok(());
        }
        let mut deltas: Vec<(String, &AtomicU64, u64)> = Vec::new();
        for coding in Coding::ALL {
            let pending = &self.pending[coding.index()];
            for (field, counter) in [
                ("requests", &pending.requests),
                ("bytes", &pending.bytes),
                ("identity_bytes", &pending.identity_bytes),
                ("br_bytes", &pending.br_bytes),
            ] {
                let delta = counter.swap(0, Ordering::Relaxed);
                if delta > 0 {
                    deltas.push((format!("{}:{field}", coding.token()), counter, delta));
                }
            }
        }
        let not_modified = self.not_modified.swap(0, Ordering::Relaxed);
        if not_modified > 0 {
            deltas.push(("not_modified".into(), &self.not_modified, not_modified));
        }
        if deltas.is_empty() {
            return Ok(());
        }
        let hour = current_hour();
        let mut written = 0;
        let mut result = Ok(());
        for (field, _, delta) in &deltas {
            if cache.metrics().is_degraded() {
                // Redis became unreachable during this flush: the rest waits.
                break;
            }
            let delta = i64::try_from(*delta).unwrap_or(i64::MAX);
            if let Err(err) = add_served(cache, &self.site, hour, field, delta).await {
                result = Err(err);
                break;
            }
            written += 1;
        }
        // Give back what did not reach the cache (a failure between the two writes of one
        // field double-counts that field in the totals; the cache layer rarely fails, as it
        // falls back to memory while Redis is down).
        for (_, counter, delta) in &deltas[written..] {
            counter.fetch_add(*delta, Ordering::Relaxed);
        }
        result
    }

    /// Starts the task that flushes every [`FLUSH_INTERVAL`]; it flushes once more and
    /// ends when the returned handle is stopped or dropped.
    pub fn start_flusher(self: &Arc<Self>, cache: Cache) -> Flusher {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let stats = Arc::clone(self);
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(FLUSH_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = ticks.tick() => {
                        if let Err(err) = stats.flush(&cache).await {
                            tracing::warn!(site = %stats.site, error = %err, "origin counters not flushed; retrying");
                        }
                    }
                    _ = &mut stopped => break,
                }
            }
            if let Err(err) = stats.flush(&cache).await {
                tracing::warn!(site = %stats.site, error = %err, "last origin counters lost at shutdown");
            }
        });
        Flusher { stop, task }
    }
}

/// Owns the flush task of [`OriginStats::start_flusher`].
#[derive(Debug)]
pub struct Flusher {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

impl Flusher {
    /// Stops the task after a last flush, and waits for it.
    pub async fn stop(self) {
        let Self { stop, task } = self;
        let _ = stop.send(());
        if let Err(err) = task.await {
            tracing::warn!(error = %err, "the origin counter flush task failed");
        }
    }
}

fn status_counter(site: &str, status: u16) -> Counter {
    metrics::counter!(names::REQUESTS, "site" => site.to_owned(), "status" => status.to_string())
}

fn describe() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use metrics::{Unit, describe_counter};
        describe_counter!(
            names::BYTES,
            Unit::Bytes,
            "Body bytes the origin sent, by site and encoding."
        );
        describe_counter!(
            names::IDENTITY_BYTES,
            Unit::Bytes,
            "Identity bytes the origin's responses stand for, by site and encoding."
        );
        describe_counter!(names::REQUESTS, "Origin responses, by site and status.");
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::origin::{OriginTotals, VariantTotals, origin_hourly, origin_totals};
    use std::time::SystemTime;

    #[tokio::test]
    async fn flushed_counts_add_up_per_encoding_and_hour() {
        let cache = Cache::memory();
        let stats = OriginStats::new("www");
        stats.record_sent(Coding::Br, 300, 1000);
        stats.record_sent(Coding::Br, 300, 1000);
        stats.record_sent(Coding::Identity, 10, 10);
        stats.record_sent(Coding::Gzip, 0, 0);
        stats.record_not_modified();
        assert_eq!(
            origin_totals(&cache, "www").await.unwrap(),
            OriginTotals::default()
        );
        stats.flush(&cache).await.unwrap();
        stats.flush(&cache).await.unwrap();
        stats.record_sent(Coding::Identity, 5, 5);
        stats.flush(&cache).await.unwrap();

        let totals = origin_totals(&cache, "www").await.unwrap();
        assert_eq!(totals.requests, 5);
        assert_eq!(totals.bytes, 615);
        assert_eq!(totals.identity_bytes, 2015);
        assert_eq!(totals.saved_bytes, 1400);
        assert_eq!(totals.not_modified, 1);
        assert_eq!(
            totals.by_encoding["br"],
            VariantTotals {
                requests: 2,
                bytes: 600,
                identity_bytes: 2000,
                br_bytes: 0,
            }
        );
        assert_eq!(totals.by_encoding["gzip"].requests, 1);
        assert!(!totals.by_encoding.contains_key("zstd"));
        assert_eq!((totals.delta_bytes, totals.delta_saved_bytes), (0, 0));

        // `to` is exclusive: one second ahead covers a flush in the hour's first second.
        let now = SystemTime::now() + Duration::from_secs(1);
        let hours = origin_hourly(&cache, "www", now - Duration::from_secs(7200), now)
            .await
            .unwrap();
        assert_eq!(hours.len(), 1);
        assert_eq!(hours[0].totals, totals);
        assert_eq!(hours[0].hour, current_hour());
        assert_eq!(
            origin_totals(&cache, "other").await.unwrap(),
            OriginTotals::default()
        );
    }

    #[tokio::test]
    async fn deltas_count_what_they_saved_against_br() {
        let cache = Cache::memory();
        let stats = OriginStats::new("www");
        stats.record_delta(Coding::Dcz, 40, 1000, 300);
        stats.record_delta(Coding::Dcb, 50, 1000, 300);
        stats.record_sent(Coding::Br, 300, 1000);
        stats.flush(&cache).await.unwrap();
        let totals = origin_totals(&cache, "www").await.unwrap();
        assert_eq!(totals.by_encoding["dcz"].br_bytes, 300);
        assert_eq!(totals.by_encoding["dcb"].bytes, 50);
        assert_eq!(totals.delta_bytes, 90);
        assert_eq!(totals.delta_saved_bytes, 510);
        assert_eq!(totals.saved_bytes, 3000 - 390);
    }

    #[tokio::test(start_paused = true)]
    async fn the_flusher_writes_every_interval_and_once_more_when_stopped() {
        let cache = Cache::memory();
        let stats = Arc::new(OriginStats::new("www"));
        let flusher = stats.start_flusher(cache.clone());
        stats.record_sent(Coding::Zstd, 7, 70);
        tokio::time::sleep(FLUSH_INTERVAL + Duration::from_millis(10)).await;
        assert_eq!(origin_totals(&cache, "www").await.unwrap().bytes, 7);
        stats.record_sent(Coding::Zstd, 3, 30);
        flusher.stop().await;
        assert_eq!(origin_totals(&cache, "www").await.unwrap().bytes, 10);
    }
}
