//! A circuit breaker per provider: when most recent calls failed transiently, calls fail
//! at once with [`ProviderError::CircuitOpen`] for a cooldown, so a dead endpoint fails a
//! deploy fast with one clear error instead of thousands of slow ones.
//!
//! Small enough to own rather than depend on a crate: it counts transient failures among
//! the last `window` answers and opens at `failure_threshold` of them, stays open for a
//! cooldown, then is half-open (calls go through; one more failure reopens it, a success
//! closes it). A rate, not a run of consecutive failures: with many calls in flight, a
//! provider failing 30% of calls produces runs of ten failures now and then, but never
//! three quarters of forty. Throttling does not count: it is the provider asking us to
//! slow down, which the adaptive concurrency of the deploy engine answers.

use std::fmt;
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::capabilities::Capabilities;
use crate::error::{ProviderError, Result};
use crate::object::{ListPage, ObjectMeta, PurgeReceipt, PurgeRequest, PurgeStatus, PutRequest};
use crate::provider::Provider;

/// When the breaker opens and for how long.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BreakerPolicy {
    /// How many recent answers are considered.
    pub window: u32,
    /// Transient failures among them that open the breaker.
    pub failure_threshold: u32,
    /// How long it stays open, in milliseconds.
    pub cooldown_ms: u64,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            window: 40,
            failure_threshold: 30,
            cooldown_ms: 30_000,
        }
    }
}

/// The gauge `edgeship_provider_breaker_open{provider}`: how many breakers in front of
/// the provider are open now (one per running deploy, purge or request stack). A breaker
/// counts from the moment it opens until a call succeeds again or it is dropped.
pub const OPEN_GAUGE: &str = "edgeship_provider_breaker_open";

/// The breaker's state, for metrics and `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls fail fast.
    Open,
    /// The cooldown passed; the next result decides.
    HalfOpen,
}

#[derive(Debug, Default)]
struct State {
    /// Recent answers, newest last: `true` for a transient failure.
    recent: std::collections::VecDeque<bool>,
    open_until: Option<Instant>,
    last_error: String,
    /// Whether this breaker is counted in [`OPEN_GAUGE`].
    counted_open: bool,
}

impl State {
    fn failures(&self) -> u32 {
        self.recent.iter().filter(|failed| **failed).count() as u32
    }

    fn record(&mut self, failed: bool, window: u32) {
        self.recent.push_back(failed);
        while self.recent.len() > window.max(1) as usize {
            self.recent.pop_front();
        }
    }
}

/// A provider behind a circuit breaker.
#[derive(Debug)]
pub struct Breaker<P> {
    inner: P,
    /// The provider's display name, the metric label.
    name: String,
    policy: BreakerPolicy,
    // std Mutex: held only for a few field updates, never across an await.
    state: Mutex<State>,
}

impl<P: Provider> Breaker<P> {
    /// Wraps `inner`.
    pub fn new(inner: P, policy: BreakerPolicy) -> Self {
        // Exposed from the start (as 0 open), so alerts on it see a healthy value.
        metrics::gauge!(OPEN_GAUGE, "provider" => inner.to_string()).increment(0.0);
        Self {
            name: inner.to_string(),
            inner,
            policy,
            state: Mutex::new(State::default()),
        }
    }

    /// The current state.
    pub fn state(&self) -> BreakerState {
        let state = self.lock();
        match state.open_until {
            None => BreakerState::Closed,
            Some(until) if Instant::now() < until => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn run<T, Fut: Future<Output = Result<T>> + Send>(&self, call: Fut) -> Result<T> {
        {
            let state = self.lock();
            if let Some(until) = state.open_until
                && Instant::now() < until
            {
                return Err(ProviderError::CircuitOpen {
                    provider: self.inner.to_string(),
                    failures: state.failures(),
                    window: state.recent.len() as u32,
                    last_error: state.last_error.clone(),
                    cooldown: Duration::from_millis(self.policy.cooldown_ms),
                });
            }
        }
        let result = call.await;
        let mut state = self.lock();
        match &result {
            Err(err @ ProviderError::Retryable { .. }) => {
                state.record(true, self.policy.window);
                state.last_error = err.detail();
                let half_open = state.open_until.is_some();
                if half_open || state.failures() >= self.policy.failure_threshold {
                    if !half_open {
                        tracing::warn!(provider = %self.inner, failures = state.failures(), "circuit breaker open: {err}");
                        if !state.counted_open {
                            state.counted_open = true;
                            metrics::gauge!(OPEN_GAUGE, "provider" => self.name.clone())
                                .increment(1.0);
                        }
                    }
                    state.open_until =
                        Some(Instant::now() + Duration::from_millis(self.policy.cooldown_ms));
                }
            }
            // Throttling is the provider asking us to slow down, not a sign it is down.
            Err(ProviderError::Throttled { .. }) => {}
            // A success, or an answer about this request (not found, invalid, …): the
            // endpoint is up.
            _ => {
                if state.open_until.take().is_some() {
                    tracing::info!(provider = %self.inner, "circuit breaker closed");
                    if std::mem::take(&mut state.counted_open) {
                        metrics::gauge!(OPEN_GAUGE, "provider" => self.name.clone()).decrement(1.0);
                    }
                    state.recent.clear();
                }
                state.record(false, self.policy.window);
            }
        }
        result
    }
}

impl<P: Provider> fmt::Display for Breaker<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

#[async_trait]
impl<P: Provider> Provider for Breaker<P> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn put(&self, request: PutRequest) -> Result<ObjectMeta> {
        self.run(self.inner.put(request)).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.run(self.inner.head(key)).await
    }

    async fn get(&self, key: &str) -> Result<(ObjectMeta, Bytes)> {
        self.run(self.inner.get(key)).await
    }

    async fn list_page(&self, prefix: &str, cursor: Option<String>) -> Result<ListPage> {
        self.run(self.inner.list_page(prefix, cursor)).await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        self.run(self.inner.delete_many(keys)).await
    }

    async fn purge(&self, request: &PurgeRequest) -> Result<PurgeReceipt> {
        self.run(self.inner.purge(request)).await
    }

    async fn purge_status(&self, id: &str) -> Result<PurgeStatus> {
        self.run(self.inner.purge_status(id)).await
    }
}

impl<P> Drop for Breaker<P> {
    fn drop(&mut self) {
        let state = self
            .state
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.counted_open {
            metrics::gauge!(OPEN_GAUGE, "provider" => self.name.clone()).decrement(1.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::{FaultConfig, Faulty};
    use crate::memory::MemoryProvider;

    #[tokio::test(start_paused = true)]
    async fn opens_after_the_threshold_fails_fast_and_recovers_after_the_cooldown() {
        let failing = Faulty::new(
            MemoryProvider::default(),
            FaultConfig {
                fail_after: Some(0),
                ..Default::default()
            },
        );
        let breaker = Breaker::new(
            failing,
            BreakerPolicy {
                window: 4,
                failure_threshold: 3,
                cooldown_ms: 1_000,
            },
        );
        for _ in 0..3 {
            assert!(matches!(
                breaker.head("k").await,
                Err(ProviderError::Retryable { .. })
            ));
        }
        assert_eq!(breaker.state(), BreakerState::Open);
        let err = breaker.head("k").await.unwrap_err();
        assert!(
            matches!(err, ProviderError::CircuitOpen { failures: 3, .. }),
            "{err:?}"
        );
        assert_eq!(
            breaker.inner.injected(),
            3,
            "the open breaker did not call the provider"
        );

        tokio::time::advance(Duration::from_millis(1_001)).await;
        assert_eq!(breaker.state(), BreakerState::HalfOpen);
        assert!(matches!(
            breaker.head("k").await,
            Err(ProviderError::Retryable { .. })
        ));
        assert_eq!(
            breaker.state(),
            BreakerState::Open,
            "one failure when half-open reopens it"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_provider_failing_a_third_of_calls_never_opens_it() {
        let flaky = Faulty::new(
            MemoryProvider::default(),
            FaultConfig {
                error_rate: 0.33,
                seed: 11,
                ..Default::default()
            },
        );
        let breaker = Breaker::new(flaky, BreakerPolicy::default());
        for i in 0..20_000 {
            let result = breaker.head(&format!("k{i}")).await;
            assert!(
                !matches!(result, Err(ProviderError::CircuitOpen { .. })),
                "opened at call {i}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_when_half_open_closes_it_and_throttles_do_not_count() {
        let throttled = Faulty::new(
            MemoryProvider::default(),
            FaultConfig {
                throttle_rate: 1.0,
                ..Default::default()
            },
        );
        let breaker = Breaker::new(
            throttled,
            BreakerPolicy {
                window: 2,
                failure_threshold: 2,
                cooldown_ms: 1_000,
            },
        );
        for _ in 0..5 {
            assert!(matches!(
                breaker.head("k").await,
                Err(ProviderError::Throttled { .. })
            ));
        }
        assert_eq!(breaker.state(), BreakerState::Closed);

        let flaky = Faulty::new(
            MemoryProvider::default(),
            FaultConfig {
                fail_after: Some(0),
                ..Default::default()
            },
        );
        let breaker = Breaker::new(
            flaky,
            BreakerPolicy {
                window: 1,
                failure_threshold: 1,
                cooldown_ms: 1_000,
            },
        );
        breaker.head("k").await.unwrap_err();
        assert_eq!(breaker.state(), BreakerState::Open);
        breaker.inner.set_enabled(false); // the endpoint comes back
        assert!(matches!(
            breaker.head("k").await,
            Err(ProviderError::CircuitOpen { .. })
        ));
        tokio::time::advance(Duration::from_millis(1_001)).await;
        // A NotFound is an answer: the endpoint is healthy again.
        assert!(matches!(
            breaker.head("k").await,
            Err(ProviderError::NotFound { .. })
        ));
        assert_eq!(breaker.state(), BreakerState::Closed);
    }
}
