//! Every provider, and every wrapper around one, passes the same conformance suite.

use std::sync::Arc;

use edgeship_providers::breaker::BreakerPolicy;
use edgeship_providers::conformance::run_all;
use edgeship_providers::faults::{FaultConfig, Faulty};
use edgeship_providers::local::LocalProvider;
use edgeship_providers::memory::MemoryProvider;
use edgeship_providers::retry::{Retry, RetryPolicy};
use edgeship_providers::{SharedProvider, wrap};

#[tokio::test]
async fn local_provider_conforms() {
    let dir = tempfile::tempdir().unwrap();
    run_all(&LocalProvider::new(dir.path()), "suite/").await;
}

#[tokio::test]
async fn local_provider_conforms_with_small_pages_through_arc_dyn() {
    let dir = tempfile::tempdir().unwrap();
    let provider: SharedProvider = Arc::new(LocalProvider::new(dir.path()).with_page_size(128));
    run_all(&provider, "").await;
}

#[tokio::test]
async fn memory_provider_conforms() {
    run_all(&MemoryProvider::default(), "suite/").await;
    run_all(&MemoryProvider::default().with_page_size(7), "").await;
}

#[tokio::test]
async fn the_standard_wrapper_stack_conforms() {
    let (stack, retries, _) = wrap(
        Arc::new(MemoryProvider::default()),
        RetryPolicy::default(),
        BreakerPolicy::default(),
    );
    run_all(&stack, "wrapped/").await;
    assert_eq!(retries.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_provider_failing_a_third_of_calls_conforms_behind_retry() {
    let faults = FaultConfig {
        error_rate: 0.2,
        throttle_rate: 0.1,
        retry_after_ms: 1,
        seed: 42,
        ..Default::default()
    };
    let policy = RetryPolicy {
        attempts: 12,
        base_delay_ms: 1,
        max_delay_ms: 5,
        call_timeout_ms: 10_000,
        min_upload_bytes_per_sec: 1024 * 1024,
    };
    let dir = tempfile::tempdir().unwrap();
    let retry = Retry::new(Faulty::new(LocalProvider::new(dir.path()), faults), policy);
    run_all(&retry, "flaky/").await;
    assert!(
        retry.inner().injected() > 100,
        "faults were injected: {}",
        retry.inner().injected()
    );
}
