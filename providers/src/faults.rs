//! Fault injection: wraps any provider and makes calls fail, throttle, slow down or hang,
//! from a seeded random generator so a failing run can be replayed exactly.
//!
//! Selectable from config for any site (`[sites.NAME.faults]`), so anyone can watch a
//! deploy survive a flaky provider.

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::capabilities::Capabilities;
use crate::error::{ProviderError, Result, SettingError};
use crate::object::{ListPage, ObjectMeta, PurgeReceipt, PurgeRequest, PurgeStatus, PutRequest};
use crate::provider::Provider;

/// Which faults to inject. All rates are probabilities per call, 0.0–1.0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FaultConfig {
    /// Share of calls that fail with a retryable error (like a 503).
    pub error_rate: f64,
    /// Share of calls that are throttled (like a 429).
    pub throttle_rate: f64,
    /// The Retry-After a throttled call asks for, in milliseconds.
    pub retry_after_ms: u64,
    /// Latency added to every call, in milliseconds.
    pub latency_ms: u64,
    /// After this many calls, every call fails (retryable). `None`: never.
    pub fail_after: Option<u64>,
    /// The first this many calls fail (retryable), then calls go through (an outage that
    /// ends).
    pub fail_first: u64,
    /// Operations faults apply to (`put`, `head`, `get`, `list`, `delete`, `purge`,
    /// `purge_status`); empty means all.
    pub only: Vec<String>,
    /// Faults apply only to keys starting with this (e.g. one directory of a site).
    pub key_prefix: Option<String>,
    /// Every call hangs forever (the caller's timeout must end it).
    pub hang: bool,
    /// Seed of the random generator.
    pub seed: u64,
}

impl Default for FaultConfig {
    fn default() -> Self {
        Self {
            error_rate: 0.0,
            throttle_rate: 0.0,
            retry_after_ms: 50,
            latency_ms: 0,
            fail_after: None,
            fail_first: 0,
            only: Vec::new(),
            key_prefix: None,
            hang: false,
            seed: 1,
        }
    }
}

impl FaultConfig {
    /// Checks that rates are probabilities.
    pub fn validate(&self) -> std::result::Result<(), SettingError> {
        for (name, rate) in [
            ("error_rate", self.error_rate),
            ("throttle_rate", self.throttle_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return Err(SettingError::new(
                    name,
                    format!("{rate} is not between 0.0 and 1.0"),
                ));
            }
        }
        if self.error_rate + self.throttle_rate > 1.0 {
            return Err(SettingError::new(
                "throttle_rate",
                "error_rate + throttle_rate is more than 1.0",
            ));
        }
        const OPERATIONS: [&str; 7] = [
            "put",
            "head",
            "get",
            "list",
            "delete",
            "purge",
            "purge_status",
        ];
        if let Some(op) = self
            .only
            .iter()
            .find(|op| !OPERATIONS.contains(&op.as_str()))
        {
            return Err(SettingError::new(
                "only",
                format!(
                    "unknown operation `{op}` (known: {})",
                    OPERATIONS.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

/// A provider with injected faults.
#[derive(Debug)]
pub struct Faulty<P> {
    inner: P,
    config: FaultConfig,
    rng: Mutex<fastrand::Rng>,
    calls: AtomicU64,
    injected: AtomicU64,
    enabled: std::sync::atomic::AtomicBool,
}

impl<P: Provider> Faulty<P> {
    /// Wraps `inner` with the faults of `config`.
    pub fn new(inner: P, config: FaultConfig) -> Self {
        let rng = Mutex::new(fastrand::Rng::with_seed(config.seed));
        let enabled = std::sync::atomic::AtomicBool::new(true);
        Self {
            inner,
            config,
            rng,
            calls: AtomicU64::new(0),
            injected: AtomicU64::new(0),
            enabled,
        }
    }

    /// Turns fault injection on or off (e.g. to let a "dead" provider come back).
    pub fn set_enabled(&self, enabled: bool) {
        self.enabled.store(enabled, Ordering::Relaxed);
    }

    /// The wrapped provider.
    pub fn inner(&self) -> &P {
        &self.inner
    }

    /// How many faults were injected so far.
    pub fn injected(&self) -> u64 {
        self.injected.load(Ordering::Relaxed)
    }

    /// Decides the fate of one call: `Err` to fail it, `Ok` to let it through.
    async fn gate(&self, operation: &str, key: &str) -> Result<()> {
        if !self.enabled.load(Ordering::Relaxed)
            || (!self.config.only.is_empty() && !self.config.only.iter().any(|op| op == operation))
            || self
                .config
                .key_prefix
                .as_ref()
                .is_some_and(|prefix| !key.starts_with(prefix.as_str()))
        {
            return Ok(());
        }
        let n = self.calls.fetch_add(1, Ordering::Relaxed) + 1;
        if self.config.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.config.latency_ms)).await;
        }
        if self.config.hang {
            std::future::pending::<()>().await;
        }
        let provider = self.inner.to_string();
        let fail = |message: String| {
            self.injected.fetch_add(1, Ordering::Relaxed);
            Err(ProviderError::Retryable {
                provider: provider.clone(),
                message,
            })
        };
        if n <= self.config.fail_first {
            return fail(format!(
                "injected failure of {operation} (call {n} of the first {})",
                self.config.fail_first
            ));
        }
        if self.config.fail_after.is_some_and(|limit| n > limit) {
            return fail(format!(
                "injected failure of {operation} (call {n} is past fail_after)"
            ));
        }
        let roll = self.rng.lock().map(|mut rng| rng.f64()).unwrap_or(1.0);
        if roll < self.config.error_rate {
            return fail(format!("injected 503 on {operation}"));
        }
        if roll < self.config.error_rate + self.config.throttle_rate {
            self.injected.fetch_add(1, Ordering::Relaxed);
            return Err(ProviderError::Throttled {
                provider,
                retry_after: Some(Duration::from_millis(self.config.retry_after_ms)),
            });
        }
        Ok(())
    }
}

impl<P: Provider> fmt::Display for Faulty<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

#[async_trait]
impl<P: Provider> Provider for Faulty<P> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn put(&self, request: PutRequest) -> Result<ObjectMeta> {
        self.gate("put", &request.key).await?;
        self.inner.put(request).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.gate("head", key).await?;
        self.inner.head(key).await
    }

    async fn get(&self, key: &str) -> Result<(ObjectMeta, Bytes)> {
        self.gate("get", key).await?;
        self.inner.get(key).await
    }

    async fn list_page(&self, prefix: &str, cursor: Option<String>) -> Result<ListPage> {
        self.gate("list", prefix).await?;
        self.inner.list_page(prefix, cursor).await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        self.gate(
            "delete",
            keys.first().map(String::as_str).unwrap_or_default(),
        )
        .await?;
        self.inner.delete_many(keys).await
    }

    async fn purge(&self, request: &PurgeRequest) -> Result<PurgeReceipt> {
        self.gate("purge", "").await?;
        self.inner.purge(request).await
    }

    async fn purge_status(&self, id: &str) -> Result<PurgeStatus> {
        self.gate("purge_status", id).await?;
        self.inner.purge_status(id).await
    }
}
