//! Providers: where edgeship stores assets and how it purges CDN caches.
//!
//! - [`Provider`] is the one object-safe async trait every target implements: put
//!   (streamed from files), head, get, paginated list, delete many, purge, purge status,
//!   and [`Capabilities`] describing its limits. Errors are classified once per provider
//!   into [`ProviderError`] variants callers match on.
//! - Providers: [`local::LocalProvider`] (a directory; the embedded default),
//!   [`memory::MemoryProvider`] (in memory, records every call; the test provider) and,
//!   with the `aws` feature, `aws::AwsProvider` (S3 + CloudFront; its settings,
//!   [`aws::AwsSettings`], exist in every build so configuration can name them), and
//!   with the `cloudflare` feature, `cloudflare::CloudflareProvider` (R2 through the same
//!   S3 code, purges through the zone's cache purge API; settings
//!   [`cloudflare::CloudflareSettings`]), and with the `azure` feature,
//!   `azure::AzureProvider` (Blob Storage through object_store, purges through Azure
//!   Front Door's ARM API; settings [`azure::AzureSettings`]).
//! - Cross-cutting behaviour wraps a provider and is itself a provider, composed at
//!   startup: [`retry::Retry`] (backoff + full jitter, Retry-After, per-attempt timeout),
//!   [`breaker::Breaker`] (fail fast when an endpoint is down), [`metrics::Metrics`], and
//!   [`faults::Faulty`] (seeded fault injection for tests and demos). [`wrap`] composes
//!   the standard stack.
//! - `conformance` (feature `test-util`) is the generic test body every provider passes.
#![warn(missing_docs, unreachable_pub, clippy::use_self)]

pub mod aws;
pub mod azure;
pub mod breaker;
pub mod capabilities;
pub mod cloudflare;
#[cfg(feature = "test-util")]
pub mod conformance;
pub mod error;
#[cfg(feature = "test-util")]
pub mod fake_http;
pub mod faults;
pub mod local;
pub mod memory;
pub mod metrics;
pub mod object;
pub mod provider;
pub mod retry;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

pub use capabilities::Capabilities;
pub use error::{ProviderError, Rejected, Result, SettingError};
pub use object::{Body, ListPage, ObjectMeta, PurgeReceipt, PurgeRequest, PurgeStatus, PutRequest};
pub use provider::{Provider, ProviderExt, SharedProvider, validate_key};

/// The standard stack around a provider: `Retry(Breaker(Metrics(provider)))`. Every
/// attempt is measured and counted by the breaker; the retry loop stops as soon as the
/// breaker opens. Returns the stack and its retry and throttle counters.
pub fn wrap(
    provider: SharedProvider,
    retry: retry::RetryPolicy,
    breaker: breaker::BreakerPolicy,
) -> (SharedProvider, Arc<AtomicU64>, Arc<AtomicU64>) {
    let stack = retry::Retry::new(
        breaker::Breaker::new(metrics::Metrics::new(provider), breaker),
        retry,
    );
    let (retries, throttles) = (stack.retries(), stack.throttles());
    (Arc::new(stack), retries, throttles)
}
