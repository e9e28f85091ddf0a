//! What the built-in origin served, as stored in the cache layer: written by the origin's
//! counters (`http::origin::stats`, flushed every second), read by the analytics report.
//!
//! Stored shape (hash fields are `i64` counters):
//!
//! - `{prefix}:{site}:origin:served` — totals since the keys were created;
//! - `{prefix}:{site}:origin:served:<hour>` — one hour (`<hour>` is its start in Unix
//!   seconds), kept [`HOURLY_RETENTION`];
//! - fields `<encoding>:requests`, `<encoding>:bytes`, `<encoding>:identity_bytes` for
//!   `identity`, `br`, `zstd`, `gzip`, `dcb`, `dcz`, and `not_modified`; for the delta
//!   codings (`dcb`, `dcz`) also `<encoding>:br_bytes`, what plain br would have sent.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use crate::cache::{Cache, CacheError, CacheKey};

/// How long an hour's bucket is kept.
pub const HOURLY_RETENTION: Duration = Duration::from_secs(40 * 24 * 3600);

/// The longest range [`origin_hourly`] reads (older buckets have expired anyway).
const MAX_HOURS: u64 = 40 * 24;

/// Adds `delta` to `field` of `site`'s totals and of the hour starting at `hour_start`.
pub async fn add_served(
    cache: &Cache,
    site: &str,
    hour_start: u64,
    field: &str,
    delta: i64,
) -> Result<(), CacheError> {
    cache
        .hash_incr_by(&totals_key(cache, site), field, delta, None)
        .await?;
    cache
        .hash_incr_by(
            &hour_key(cache, site, hour_start),
            field,
            delta,
            Some(HOURLY_RETENTION),
        )
        .await?;
    Ok(())
}

/// Bytes and requests the origin served with one encoding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct VariantTotals {
    /// Responses carrying this encoding (`200`, `206`, `HEAD`).
    pub requests: u64,
    /// Body bytes sent.
    pub bytes: u64,
    /// Identity bytes those responses stand for (`bytes` had they been sent unencoded).
    pub identity_bytes: u64,
    /// For delta codings (`dcb`, `dcz`): what the same responses would have sent as plain
    /// br (identity where the asset has no br variant).
    #[serde(skip_serializing_if = "is_zero")]
    pub br_bytes: u64,
}

fn is_zero(value: &u64) -> bool {
    *value == 0
}

/// The delta codings (RFC 9842): responses compressed against a version the client held.
pub const DELTA_ENCODINGS: [&str; 2] = ["dcb", "dcz"];

/// What the origin served for one site (over all time or one hour).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct OriginTotals {
    /// Responses with a body or `HEAD`, all encodings.
    pub requests: u64,
    /// Body bytes sent, all encodings.
    pub bytes: u64,
    /// Identity bytes the same responses stand for.
    pub identity_bytes: u64,
    /// Bytes saved by serving encoded variants: `identity_bytes - bytes`.
    pub saved_bytes: u64,
    /// `304 Not Modified` responses.
    pub not_modified: u64,
    /// Body bytes sent as deltas (`dcb`, `dcz`) to clients holding an earlier version.
    pub delta_bytes: u64,
    /// What those deltas saved against plain br: `br_bytes - bytes` of the delta codings.
    pub delta_saved_bytes: u64,
    /// Per encoding (`identity`, `br`, `zstd`, `gzip`, `dcb`, `dcz`); encodings never
    /// served are absent.
    pub by_encoding: BTreeMap<String, VariantTotals>,
}

impl OriginTotals {
    /// Adds `other` to these totals.
    pub fn add(&mut self, other: &Self) {
        self.requests += other.requests;
        self.bytes += other.bytes;
        self.identity_bytes += other.identity_bytes;
        self.saved_bytes = self.identity_bytes.saturating_sub(self.bytes);
        self.not_modified += other.not_modified;
        for (encoding, variant) in &other.by_encoding {
            let entry = self.by_encoding.entry(encoding.clone()).or_default();
            entry.requests += variant.requests;
            entry.bytes += variant.bytes;
            entry.identity_bytes += variant.identity_bytes;
            entry.br_bytes += variant.br_bytes;
        }
        self.count_deltas();
    }

    /// Recomputes the delta totals from `by_encoding`.
    fn count_deltas(&mut self) {
        let deltas = DELTA_ENCODINGS
            .iter()
            .filter_map(|e| self.by_encoding.get(*e));
        let (bytes, br_bytes) = deltas.fold((0, 0), |(b, r), v| (b + v.bytes, r + v.br_bytes));
        self.delta_bytes = bytes;
        self.delta_saved_bytes = br_bytes.saturating_sub(bytes);
    }

    fn from_fields(fields: &BTreeMap<String, i64>) -> Self {
        let mut totals = Self::default();
        for (field, value) in fields {
            let value = u64::try_from(*value).unwrap_or(0);
            if field == "not_modified" {
                totals.not_modified += value;
                continue;
            }
            let Some((encoding, what)) = field.split_once(':') else {
                continue;
            };
            let entry = totals.by_encoding.entry(encoding.to_owned()).or_default();
            match what {
                "requests" => entry.requests += value,
                "bytes" => entry.bytes += value,
                "identity_bytes" => entry.identity_bytes += value,
                "br_bytes" => entry.br_bytes += value,
                _ => {}
            }
        }
        for variant in totals.by_encoding.values() {
            totals.requests += variant.requests;
            totals.bytes += variant.bytes;
            totals.identity_bytes += variant.identity_bytes;
        }
        totals.saved_bytes = totals.identity_bytes.saturating_sub(totals.bytes);
        totals.count_deltas();
        totals
    }

    fn is_empty(&self) -> bool {
        self.requests == 0 && self.not_modified == 0
    }
}

/// One hour of [`origin_hourly`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HourTotals {
    /// The hour's start, Unix seconds (a multiple of 3600).
    pub hour: u64,
    /// What was served in it.
    pub totals: OriginTotals,
}

/// What the origin served for `site` since counting began (flushed counts: up to
/// a flush interval behind). A site never served reads as all zeros.
pub async fn origin_totals(cache: &Cache, site: &str) -> Result<OriginTotals, CacheError> {
    let fields = cache.hash_get_all(&totals_key(cache, site)).await?;
    Ok(OriginTotals::from_fields(&fields))
}

/// What the origin served for `site` per hour, for the hours that overlap `from..to` and
/// saw traffic, oldest first. One cache read per hour; at most the last
/// [`HOURLY_RETENTION`] of the range is read.
pub async fn origin_hourly(
    cache: &Cache,
    site: &str,
    from: SystemTime,
    to: SystemTime,
) -> Result<Vec<HourTotals>, CacheError> {
    let seconds = |t: SystemTime| {
        t.duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    };
    let last = seconds(to).saturating_sub(1) / 3600;
    let first = (seconds(from) / 3600).max(last.saturating_sub(MAX_HOURS - 1));
    let mut hours = Vec::new();
    if seconds(to) <= seconds(from) {
        return Ok(hours);
    }
    for hour in first..=last {
        let fields = cache
            .hash_get_all(&hour_key(cache, site, hour * 3600))
            .await?;
        let totals = OriginTotals::from_fields(&fields);
        if !totals.is_empty() {
            hours.push(HourTotals {
                hour: hour * 3600,
                totals,
            });
        }
    }
    Ok(hours)
}

fn totals_key(cache: &Cache, site: &str) -> CacheKey {
    cache.site(site).key("origin:served")
}

fn hour_key(cache: &Cache, site: &str, hour_start: u64) -> CacheKey {
    cache.site(site).key(&format!("origin:served:{hour_start}"))
}

/// The start of the current hour, Unix seconds.
pub(crate) fn current_hour() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    now / 3600 * 3600
}
