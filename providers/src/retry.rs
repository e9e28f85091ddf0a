//! Retry with exponential backoff and full jitter, honouring Retry-After, with a timeout
//! on every attempt. Only retryable and throttled errors are retried.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::capabilities::Capabilities;
use crate::error::{ProviderError, Result};
use crate::object::{ListPage, ObjectMeta, PurgeReceipt, PurgeRequest, PurgeStatus, PutRequest};
use crate::provider::Provider;

/// How calls are retried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// Attempts in total, the first included.
    pub attempts: u32,
    /// Delay before the first retry, in milliseconds (doubled each time).
    pub base_delay_ms: u64,
    /// Longest delay between attempts, in milliseconds.
    pub max_delay_ms: u64,
    /// One attempt longer than this is abandoned as a retryable timeout, in milliseconds.
    pub call_timeout_ms: u64,
    /// The slowest upload rate tolerated, in bytes per second: a put of `n` bytes may take
    /// `call_timeout_ms` plus `n` / this, so large (multipart) objects are not cut off by
    /// a timeout meant for small calls.
    pub min_upload_bytes_per_sec: u64,
}

impl RetryPolicy {
    /// The time one attempt may take when it sends `bytes`.
    pub fn timeout_for(&self, bytes: u64) -> Duration {
        let transfer_ms = bytes.saturating_mul(1000) / self.min_upload_bytes_per_sec.max(1);
        Duration::from_millis(self.call_timeout_ms.saturating_add(transfer_ms))
    }
}

/// The counter `edgeship_provider_retries_total{provider, operation, class}`: attempts
/// that failed transiently and were retried, by error class.
pub const RETRIES_COUNTER: &str = "edgeship_provider_retries_total";

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            base_delay_ms: 100,
            max_delay_ms: 5_000,
            call_timeout_ms: 60_000,
            min_upload_bytes_per_sec: 1024 * 1024,
        }
    }
}

/// A provider whose calls are retried.
#[derive(Debug)]
pub struct Retry<P> {
    inner: P,
    policy: RetryPolicy,
    retries: Arc<AtomicU64>,
    throttles: Arc<AtomicU64>,
}

impl<P: Provider> Retry<P> {
    /// Wraps `inner`.
    pub fn new(inner: P, policy: RetryPolicy) -> Self {
        Self {
            inner,
            policy,
            retries: Arc::new(AtomicU64::new(0)),
            throttles: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The wrapped provider.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// A counter of retries made so far (shared, so a caller can keep it after wrapping).
    pub fn retries(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.retries)
    }

    /// A counter of throttled attempts so far: callers adapt their concurrency to it.
    pub fn throttles(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.throttles)
    }

    async fn run<T, F, Fut>(
        &self,
        operation: &'static str,
        key: &str,
        bytes: u64,
        mut call: F,
    ) -> Result<T>
    where
        F: FnMut() -> Fut + Send,
        Fut: Future<Output = Result<T>> + Send,
        T: Send,
    {
        let started = Instant::now();
        let timeout = self.policy.timeout_for(bytes);
        let provider = self.inner.to_string();
        let attempts = std::sync::atomic::AtomicU32::new(0);
        let attempt = || {
            attempts.fetch_add(1, Ordering::Relaxed);
            let future = call();
            let provider = provider.clone();
            async move {
                match tokio::time::timeout(timeout, future).await {
                    Ok(result) => result,
                    Err(_) => Err(ProviderError::Retryable {
                        provider,
                        message: format!("{operation} timed out after {} ms", timeout.as_millis()),
                    }),
                }
            }
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.policy.base_delay_ms))
            .with_max_delay(Duration::from_millis(self.policy.max_delay_ms))
            .with_factor(2.0)
            .with_max_times(self.policy.attempts.saturating_sub(1) as usize);
        let result = attempt
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(ProviderError::is_retryable)
            // Full jitter: a uniform wait in [0, delay], so many clients retrying at once
            // spread out; a Retry-After from the provider wins.
            // `delay` is `None` once the attempts are used up: then stop, Retry-After or not.
            .adjust(|err, delay| delay.map(|d| err.retry_after().unwrap_or_else(|| d.mul_f64(fastrand::f64()))))
            .notify(|err, delay| {
                self.retries.fetch_add(1, Ordering::Relaxed);
                metrics::counter!(RETRIES_COUNTER, "provider" => provider.clone(), "operation" => operation, "class" => err.class())
                    .increment(1);
                if matches!(err, ProviderError::Throttled { .. }) {
                    self.throttles.fetch_add(1, Ordering::Relaxed);
                }
                tracing::debug!(provider = %provider, operation, key, error = %err, delay_ms = delay.as_millis() as u64, "retrying");
            })
            .await;
        match result {
            Err(err) if err.is_retryable() => {
                let attempts = attempts.load(Ordering::Relaxed);
                tracing::warn!(provider = %provider, operation, key, attempts, "giving up: {err}");
                Err(ProviderError::RetriesExhausted {
                    provider,
                    attempts,
                    elapsed: started.elapsed(),
                    source: Box::new(err),
                })
            }
            other => other,
        }
    }
}

impl<P: Provider> fmt::Display for Retry<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

#[async_trait]
impl<P: Provider> Provider for Retry<P> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn put(&self, request: PutRequest) -> Result<ObjectMeta> {
        self.run("put", &request.key, request.body.size(), || {
            self.inner.put(request.clone())
        })
        .await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.run("head", key, 0, || self.inner.head(key)).await
    }

    async fn get(&self, key: &str) -> Result<(ObjectMeta, Bytes)> {
        self.run("get", key, 0, || self.inner.get(key)).await
    }

    async fn list_page(&self, prefix: &str, cursor: Option<String>) -> Result<ListPage> {
        self.run("list", prefix, 0, || {
            self.inner.list_page(prefix, cursor.clone())
        })
        .await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        let first = keys.first().map(String::as_str).unwrap_or_default();
        self.run("delete", first, 0, || self.inner.delete_many(keys))
            .await
    }

    async fn purge(&self, request: &PurgeRequest) -> Result<PurgeReceipt> {
        self.run("purge", "", 0, || self.inner.purge(request)).await
    }

    async fn purge_status(&self, id: &str) -> Result<PurgeStatus> {
        self.run("purge_status", id, 0, || self.inner.purge_status(id))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::{FaultConfig, Faulty};
    use crate::memory::MemoryProvider;

    #[test]
    fn large_puts_get_time_for_their_bytes() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.timeout_for(0), Duration::from_secs(60));
        assert_eq!(
            policy.timeout_for(100 * 1024 * 1024),
            Duration::from_secs(160)
        );
        let stalled = RetryPolicy {
            min_upload_bytes_per_sec: 0,
            ..policy
        };
        assert!(
            stalled.timeout_for(u64::MAX) > Duration::from_secs(60),
            "no overflow, no division by zero"
        );
    }

    fn fast() -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            base_delay_ms: 100,
            max_delay_ms: 5_000,
            call_timeout_ms: 1_000,
            min_upload_bytes_per_sec: 1024 * 1024,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn transient_failures_are_retried_until_success() {
        let faulty = Faulty::new(
            MemoryProvider::default(),
            FaultConfig {
                error_rate: 0.3,
                seed: 7,
                ..Default::default()
            },
        );
        let retry = Retry::new(
            faulty,
            RetryPolicy {
                attempts: 10,
                ..fast()
            },
        );
        for i in 0..40 {
            retry
                .put(PutRequest::bytes(format!("k{i}"), "v"))
                .await
                .unwrap();
        }
        assert_eq!(retry.inner().inner().keys().len(), 40);
        let retries = retry.retries().load(Ordering::Relaxed);
        assert_eq!(
            retries,
            retry.inner().injected(),
            "every injected failure was retried once"
        );
        assert!(retries > 5);
    }

    #[tokio::test(start_paused = true)]
    async fn giving_up_says_how_many_attempts_over_how_long() {
        let faulty = Faulty::new(
            MemoryProvider::default(),
            FaultConfig {
                error_rate: 1.0,
                ..Default::default()
            },
        );
        let retry = Retry::new(faulty, fast());
        let err = retry.put(PutRequest::bytes("k", "v")).await.unwrap_err();
        let ProviderError::RetriesExhausted {
            attempts, elapsed, ..
        } = &err
        else {
            panic!("{err:?}")
        };
        assert_eq!(*attempts, 5);
        assert!(
            *elapsed <= Duration::from_millis(100 + 200 + 400 + 800),
            "full jitter never waits longer than the backoff: {elapsed:?}"
        );
        assert!(
            err.to_string().contains("gave up after 5 attempts"),
            "{err}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn retry_after_is_honoured_and_hangs_time_out() {
        let throttled = Faulty::new(
            MemoryProvider::default(),
            FaultConfig {
                throttle_rate: 1.0,
                retry_after_ms: 700,
                ..Default::default()
            },
        );
        let retry = Retry::new(
            throttled,
            RetryPolicy {
                attempts: 3,
                ..fast()
            },
        );
        let started = tokio::time::Instant::now();
        retry.head("k").await.unwrap_err();
        assert_eq!(
            started.elapsed(),
            Duration::from_millis(1_400),
            "two waits of the Retry-After"
        );

        let hanging = Faulty::new(
            MemoryProvider::default(),
            FaultConfig {
                hang: true,
                ..Default::default()
            },
        );
        let retry = Retry::new(
            hanging,
            RetryPolicy {
                attempts: 2,
                ..fast()
            },
        );
        let err = retry.head("k").await.unwrap_err();
        assert!(err.to_string().contains("timed out after 1000 ms"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn fatal_errors_are_not_retried() {
        let retry = Retry::new(MemoryProvider::default(), fast());
        let err = retry
            .put(PutRequest::bytes("../escape", "v"))
            .await
            .unwrap_err();
        assert!(matches!(err, ProviderError::Invalid { .. }));
        assert_eq!(retry.retries().load(Ordering::Relaxed), 0);
    }
}
