//! The `cloudflare` provider: R2 storage against moto standing in for R2 (the same S3
//! API), purges against the fake Cloudflare API (`cloudflare::testing`), over real HTTP.

use std::sync::Arc;

use edgeship_providers::aws::testing as moto;
use edgeship_providers::cloudflare::testing::{self, FakeCloudflare};
use edgeship_providers::cloudflare::{CloudflareProvider, CloudflareSettings, SecretString};
use edgeship_providers::conformance;
use edgeship_providers::{Provider, ProviderError, PurgeRequest, PurgeStatus};

/// Settings for a new bucket on the shared moto, purging through `fake`.
async fn settings(tag: &str, fake: &FakeCloudflare, hosts: &[&str]) -> CloudflareSettings {
    let endpoint = moto::moto_endpoint();
    let bucket = moto::unique_bucket(tag);
    moto::create_bucket(&endpoint, &bucket).await;
    fake.settings(&endpoint, &bucket, hosts)
}

fn provider(settings: CloudflareSettings, token: &str) -> CloudflareProvider {
    CloudflareProvider::new("test", settings)
        .with_sdk_config(moto::sdk_config(moto::ACCESS_KEY, moto::SECRET_KEY))
        .with_token(SecretString::from(token.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn r2_storage_and_purges_pass_the_conformance_suite() {
    let fake = FakeCloudflare::start().await;
    let settings = settings("cf-conformance", &fake, &["www.example.com"]).await;
    let provider = provider(settings, testing::TOKEN);
    conformance::run_all(&provider, "suite/").await;
    assert!(
        !fake.purges().is_empty(),
        "the suite's purges reached the API"
    );
    assert!(provider.to_string().starts_with("cloudflare:r2://"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_go_as_urls_for_every_host_prefixes_without_scheme_and_tags() {
    let fake = FakeCloudflare::start().await;
    let hosts = ["www.example.com", "example.com"];
    let provider = provider(settings("cf-shapes", &fake, &hosts).await, testing::TOKEN);
    let caps = provider.capabilities();
    assert_eq!(caps.max_purge_items_per_call, 50, "100 URLs over two hosts");
    assert!(caps.purge_prefixes && caps.purge_tags && !caps.trailing_wildcards);

    let receipt = provider
        .purge(&PurgeRequest::of_paths(["/blog/", "/blog/index.html"]))
        .await
        .unwrap();
    assert_eq!(receipt.status, PurgeStatus::Done);
    provider
        .purge(&PurgeRequest {
            prefixes: vec!["/assets/".into()],
            ..PurgeRequest::default()
        })
        .await
        .unwrap();
    provider
        .purge(&PurgeRequest {
            tags: vec!["product-42".into()],
            ..PurgeRequest::default()
        })
        .await
        .unwrap();
    let calls = fake.calls();
    assert!(
        calls
            .iter()
            .all(|c| c.authorization.as_deref()
                == Some(&format!("Bearer {}", testing::TOKEN) as &str))
    );
    assert_eq!(
        fake.purges(),
        vec![
            serde_json::json!({ "files": [
                "https://www.example.com/blog/", "https://example.com/blog/",
                "https://www.example.com/blog/index.html", "https://example.com/blog/index.html",
            ]}),
            serde_json::json!({ "prefixes": ["www.example.com/assets", "example.com/assets"] }),
            serde_json::json!({ "tags": ["product-42"] }),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_or_under_scoped_token_is_one_fatal_error_naming_the_zone() {
    let fake = FakeCloudflare::start().await;
    let settings = settings("cf-token", &fake, &["www.example.com"]).await;
    let wrong = provider(settings.clone(), "not-the-token");
    let err = wrong
        .purge(&PurgeRequest::of_paths(["/index.html"]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Unauthenticated { .. }),
        "{err}"
    );
    assert!(err.is_fatal_for_provider());
    assert!(
        err.to_string().contains(testing::ZONE) && err.to_string().contains("Cache Purge"),
        "{err}"
    );
    let scoped = provider(settings.clone(), testing::READ_ONLY_TOKEN);
    let err = scoped
        .purge(&PurgeRequest::of_paths(["/index.html"]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::PermissionDenied { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("Zone → Cache Purge"), "{err}");

    // No token at all: the error says which variable to set, without calling the API.
    let calls = fake.calls().len();
    let unset = CloudflareSettings {
        token_env: "EDGESHIP_TEST_NO_SUCH_TOKEN_VARIABLE".into(),
        ..settings
    };
    let err = CloudflareProvider::new("test", unset)
        .purge(&PurgeRequest::of_paths(["/index.html"]))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("EDGESHIP_TEST_NO_SUCH_TOKEN_VARIABLE"),
        "{err}"
    );
    assert_eq!(fake.calls().len(), calls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_is_throttling_with_its_retry_after_and_the_retry_layer_waits_it_out() {
    use edgeship_providers::retry::{Retry, RetryPolicy};
    let fake = FakeCloudflare::start().await;
    let provider = provider(
        settings("cf-throttle", &fake, &["www.example.com"]).await,
        testing::TOKEN,
    );
    fake.throttle_next(1, 1);
    let err = provider
        .purge(&PurgeRequest::of_paths(["/a.css"]))
        .await
        .unwrap_err();
    assert_eq!(err.retry_after(), Some(std::time::Duration::from_secs(1)));

    fake.throttle_next(1, 1);
    let retry = Retry::new(
        Arc::new(provider),
        RetryPolicy {
            attempts: 3,
            base_delay_ms: 1,
            max_delay_ms: 2_000,
            call_timeout_ms: 10_000,
            min_upload_bytes_per_sec: 1024 * 1024,
        },
    );
    let started = std::time::Instant::now();
    retry
        .purge(&PurgeRequest::of_paths(["/a.css"]))
        .await
        .unwrap();
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(900),
        "Retry-After was honoured: {:?}",
        started.elapsed()
    );
    let statuses: Vec<u16> = fake.calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, vec![429, 429, 200]);
}
