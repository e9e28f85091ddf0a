//! Provider call metrics through the `metrics` facade: calls and errors by class, and a
//! latency histogram, per provider and operation. Whatever recorder the application
//! installs (Prometheus in `edgeship serve`) receives them; without one they cost nothing.
//!
//! - `edgeship_provider_calls_total{provider, operation, outcome}` — outcome is `ok` or
//!   the error class (`retryable`, `throttled`, `not_found`, `auth`, …)
//! - `edgeship_provider_call_duration_seconds{provider, operation}` — histogram
//! - `edgeship_provider_clients_built_total{provider}` — SDK/HTTP clients a provider
//!   built (their connection pools). One per provider for the life of the process; more
//!   means something rebuilds providers instead of reusing them.

use std::fmt;
use std::future::Future;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;

use crate::capabilities::Capabilities;
use crate::error::Result;
use crate::object::{ListPage, ObjectMeta, PurgeReceipt, PurgeRequest, PurgeStatus, PutRequest};
use crate::provider::Provider;

/// The counter of clients built, by provider (see the module docs).
pub const CLIENTS_BUILT: &str = "edgeship_provider_clients_built_total";

/// A provider whose calls are measured.
#[derive(Debug)]
pub struct Metrics<P> {
    inner: P,
    name: String,
}

impl<P: Provider> Metrics<P> {
    /// Wraps `inner`; metrics carry its display name as the `provider` label.
    pub fn new(inner: P) -> Self {
        let name = inner.to_string();
        Self { inner, name }
    }

    async fn measure<T, Fut: Future<Output = Result<T>> + Send>(
        &self,
        operation: &'static str,
        call: Fut,
    ) -> Result<T> {
        let started = Instant::now();
        let result = call.await;
        let outcome = match &result {
            Ok(_) => "ok",
            Err(err) => err.class(),
        };
        metrics::counter!("edgeship_provider_calls_total", "provider" => self.name.clone(), "operation" => operation, "outcome" => outcome)
            .increment(1);
        metrics::histogram!("edgeship_provider_call_duration_seconds", "provider" => self.name.clone(), "operation" => operation)
            .record(started.elapsed().as_secs_f64());
        result
    }
}

impl<P: Provider> fmt::Display for Metrics<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

#[async_trait]
impl<P: Provider> Provider for Metrics<P> {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn put(&self, request: PutRequest) -> Result<ObjectMeta> {
        self.measure("put", self.inner.put(request)).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.measure("head", self.inner.head(key)).await
    }

    async fn get(&self, key: &str) -> Result<(ObjectMeta, Bytes)> {
        self.measure("get", self.inner.get(key)).await
    }

    async fn list_page(&self, prefix: &str, cursor: Option<String>) -> Result<ListPage> {
        self.measure("list", self.inner.list_page(prefix, cursor))
            .await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        self.measure("delete", self.inner.delete_many(keys)).await
    }

    async fn purge(&self, request: &PurgeRequest) -> Result<PurgeReceipt> {
        self.measure("purge", self.inner.purge(request)).await
    }

    async fn purge_status(&self, id: &str) -> Result<PurgeStatus> {
        self.measure("purge_status", self.inner.purge_status(id))
            .await
    }
}
