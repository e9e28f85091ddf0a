//! The `aws` provider against moto server over real HTTP (started by `scripts/test`):
//! the conformance suite, multipart uploads, error mapping and CloudFront invalidations.
//! Every test uses its own bucket, so they run in parallel on one moto.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use edgeship_providers::aws::testing::{self, AuthMoto};
use edgeship_providers::aws::{AwsProvider, AwsSettings};
use edgeship_providers::breaker::BreakerPolicy;
use edgeship_providers::conformance;
use edgeship_providers::retry::RetryPolicy;
use edgeship_providers::{
    Body, Provider, ProviderError, ProviderExt, PurgeRequest, PurgeStatus, PutRequest,
    SharedProvider, wrap,
};

/// A provider on a new bucket of the shared moto.
async fn on_new_bucket(tag: &str, tweak: impl FnOnce(&mut AwsSettings)) -> (AwsProvider, String) {
    let endpoint = testing::moto_endpoint();
    let bucket = testing::unique_bucket(tag);
    testing::create_bucket(&endpoint, &bucket).await;
    let mut settings = testing::moto_settings(&endpoint, &bucket);
    tweak(&mut settings);
    let provider = AwsProvider::new("test", settings).with_sdk_config(testing::sdk_config(
        testing::ACCESS_KEY,
        testing::SECRET_KEY,
    ));
    (provider, bucket)
}

fn fast_retries() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        base_delay_ms: 1,
        max_delay_ms: 5,
        call_timeout_ms: 60_000,
        min_upload_bytes_per_sec: 1024 * 1024,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_conformance_suite_passes_against_moto() {
    let (provider, _) = on_new_bucket("conformance", |_| {}).await;
    conformance::run_all(&provider, "suite/").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_conformance_suite_passes_under_a_key_prefix_through_the_wrapper_stack() {
    let (provider, bucket) = on_new_bucket("conformance-prefix", |s| s.prefix = "www".into()).await;
    let (stack, retries, _) = wrap(
        Arc::new(provider) as SharedProvider,
        fast_retries(),
        BreakerPolicy::default(),
    );
    conformance::run_all(&stack, "").await;
    assert_eq!(retries.load(Ordering::Relaxed), 0, "moto never failed");
    // Everything went under the prefix.
    let s3 = testing::s3_client(&testing::moto_endpoint());
    let outside = s3
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap()
        .contents()
        .iter()
        .filter(|o| !o.key().unwrap_or_default().starts_with("www/"))
        .count();
    assert_eq!(outside, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_21_mib_file_goes_up_in_parts_and_comes_back_byte_for_byte() {
    let (provider, bucket) = on_new_bucket("multipart", |_| {}).await;
    let mib = 1024 * 1024;
    assert_eq!(
        provider.capabilities().multipart_threshold,
        Some(16 * mib as u64)
    );
    conformance::large_objects_stream_from_files(&provider, "big/", 21 * mib).await;
    // A multipart ETag ends in -<parts>: 8 + 8 + 5 MiB.
    let head = testing::s3_client(&testing::moto_endpoint())
        .head_object()
        .bucket(&bucket)
        .key("big/large.bin")
        .send()
        .await
        .unwrap();
    assert!(
        head.e_tag().unwrap_or_default().ends_with("-3\""),
        "{:?}",
        head.e_tag()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multipart_uploads_keep_headers_and_metadata() {
    let (provider, _) = on_new_bucket("multipart-meta", |s| {
        s.multipart_threshold = 5 * 1024 * 1024;
        s.part_size = 5 * 1024 * 1024;
    })
    .await;
    let bytes: Vec<u8> = (0..11 * 1024 * 1024).map(|i| (i % 253) as u8).collect();
    let request = PutRequest {
        content_type: Some("application/wasm".into()),
        content_encoding: Some("br".into()),
        cache_control: Some("public, max-age=31536000, immutable".into()),
        headers: BTreeMap::from([("Content-Disposition".into(), "inline".into())]),
        metadata: BTreeMap::from([("edgeship-hash".into(), "cd".repeat(32))]),
        ..PutRequest::bytes("app.wasm.br", bytes.clone())
    };
    provider.put(request.clone()).await.unwrap();
    let (meta, got) = provider.get("app.wasm.br").await.unwrap();
    assert_eq!(meta, request.meta());
    assert!(got == bytes, "bytes differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failed_multipart_upload_is_aborted_and_leaves_no_parts() {
    let (provider, bucket) = on_new_bucket("multipart-abort", |s| {
        s.multipart_threshold = 5 * 1024 * 1024;
        s.part_size = 5 * 1024 * 1024;
    })
    .await;
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), vec![7u8; 6 * 1024 * 1024]).unwrap();
    // The body claims more bytes than the file has: the third part cannot be read.
    let request = PutRequest {
        body: Body::File {
            path: file.path().to_path_buf(),
            size: 12 * 1024 * 1024,
        },
        ..PutRequest::bytes("broken.bin", Bytes::new())
    };
    assert!(provider.put(request).await.is_err());
    let uploads = testing::s3_client(&testing::moto_endpoint())
        .list_multipart_uploads()
        .bucket(&bucket)
        .send()
        .await
        .unwrap();
    assert!(
        uploads.uploads().is_empty(),
        "left behind: {:?}",
        uploads.uploads()
    );
    assert!(matches!(
        provider.head("broken.bin").await,
        Err(ProviderError::NotFound { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deleting_more_than_1000_keys_takes_several_batches() {
    let (provider, _) = on_new_bucket("delete-batches", |_| {}).await;
    let provider = Arc::new(provider);
    let keys: Vec<String> = (0..1_234).map(|i| format!("d/{i:04}.txt")).collect();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in keys.chunks(100) {
        let (provider, chunk) = (Arc::clone(&provider), chunk.to_vec());
        tasks.spawn(async move {
            for key in chunk {
                provider.put(PutRequest::bytes(key, "x")).await.unwrap();
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    assert_eq!(provider.list_all("d/").await.unwrap().len(), 1_234);
    provider.delete_many(&keys).await.unwrap();
    assert!(provider.list_all("d/").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_missing_bucket_is_one_fatal_error_naming_bucket_region_and_setting() {
    let endpoint = testing::moto_endpoint();
    let bucket = testing::unique_bucket("never-created");
    let provider =
        AwsProvider::new("www", testing::moto_settings(&endpoint, &bucket)).with_sdk_config(
            testing::sdk_config(testing::ACCESS_KEY, testing::SECRET_KEY),
        );
    let (stack, retries, _) = wrap(Arc::new(provider), fast_retries(), BreakerPolicy::default());
    for result in [
        stack.get(".edgeship/manifest").await.map(|_| ()),
        stack.put(PutRequest::bytes("a.css", "x")).await.map(|_| ()),
        stack.list_page("", None).await.map(|_| ()),
    ] {
        let err = result.unwrap_err();
        assert!(
            matches!(err, ProviderError::Misconfigured { .. }) && err.is_fatal_for_provider(),
            "{err:?}"
        );
        let text = err.to_string();
        for needle in [
            bucket.as_str(),
            "us-east-1",
            "sites.www.aws.bucket",
            "does not exist",
        ] {
            assert!(text.contains(needle), "{text} lacks {needle}");
        }
    }
    assert_eq!(
        retries.load(Ordering::Relaxed),
        0,
        "fatal errors are not retried"
    );
}

#[tokio::test]
async fn wrong_credentials_and_missing_permissions_fail_once_with_a_clear_error() {
    let moto = AuthMoto::start();
    let provider = |access: &str, secret: &str| {
        let provider = AwsProvider::new(
            "www",
            testing::moto_settings(&moto.endpoint, "edgeship-auth"),
        )
        .with_sdk_config(testing::sdk_config(access, secret));
        wrap(Arc::new(provider), fast_retries(), BreakerPolicy::default())
    };
    let cases = [
        ("AKIAUNKNOWNKEY000000", "x", "InvalidAccessKeyId", "auth"),
        (
            moto.access_key.as_str(),
            "not-the-secret",
            "SignatureDoesNotMatch",
            "auth",
        ),
        (
            moto.access_key.as_str(),
            moto.secret_key.as_str(),
            "s3:PutObject",
            "permission",
        ),
    ];
    for (access, secret, needle, class) in cases {
        let (stack, retries, _) = provider(access, secret);
        let err = stack
            .put(PutRequest::bytes("index.html", "<p>hi</p>"))
            .await
            .unwrap_err();
        assert_eq!(err.class(), class, "{err}");
        assert!(err.is_fatal_for_provider(), "{err}");
        let text = err.to_string();
        assert!(text.contains(needle), "{text} lacks {needle}");
        if class == "auth" {
            assert!(
                text.contains("AWS_ACCESS_KEY_ID") && text.contains("sites.www.aws.profile"),
                "{text}"
            );
        }
        assert_eq!(retries.load(Ordering::Relaxed), 0, "no retry storm: {text}");
    }
}

#[tokio::test]
async fn purges_create_one_invalidation_with_the_callers_reference_and_encoded_paths() {
    let endpoint = testing::moto_endpoint();
    let (provider, bucket) = on_new_bucket("purge", |_| {}).await;
    let distribution = testing::create_distribution(&endpoint, &bucket).await;
    let provider = AwsProvider::new(
        "test",
        AwsSettings {
            distribution_id: Some(distribution.clone()),
            ..provider.settings().clone()
        },
    )
    .with_sdk_config(testing::sdk_config(
        testing::ACCESS_KEY,
        testing::SECRET_KEY,
    ));
    assert!(!provider.capabilities().purge_is_noop);
    let request = PurgeRequest {
        paths: vec![
            "/about/index.html".into(),
            "/about/".into(),
            "/docs/café menü.txt".into(),
            "/assets/*".into(),
        ],
        reference: Some("job-7f3a-batch-0".into()),
        ..Default::default()
    };
    let receipt = provider.purge(&request).await.unwrap();
    assert_eq!(
        provider.purge_status(&receipt.id).await.unwrap(),
        PurgeStatus::Done,
        "moto completes invalidations at once"
    );
    assert_eq!(
        testing::invalidations(&endpoint, &distribution).await,
        vec![(
            "job-7f3a-batch-0".to_string(),
            vec![
                "/about/index.html".to_string(),
                "/about/".to_string(),
                "/docs/caf%C3%A9%20men%C3%BC.txt".to_string(),
                "/assets/*".to_string(),
            ]
        )]
    );
    let listed = provider.invalidations(10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, receipt.id);

    // What AWS would reject never reaches moto (which would accept it).
    for bad in [
        vec!["about/index.html".to_string()],
        vec!["/a*/b.css".to_string()],
        (0..3001).map(|i| format!("/{i}.css")).collect(),
    ] {
        let err = provider
            .purge(&PurgeRequest {
                paths: bad,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(matches!(err, ProviderError::Invalid { .. }), "{err:?}");
    }
    assert_eq!(
        testing::invalidations(&endpoint, &distribution).await.len(),
        1
    );
}

#[tokio::test]
async fn without_a_distribution_purges_are_no_ops_and_an_unknown_one_is_fatal() {
    let (provider, _) = on_new_bucket("purge-none", |_| {}).await;
    assert!(provider.capabilities().purge_is_noop);
    let receipt = provider
        .purge(&PurgeRequest {
            paths: vec!["/index.html".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(receipt.status, PurgeStatus::Done);

    let unknown = AwsProvider::new(
        "www",
        AwsSettings {
            distribution_id: Some("E000000000000".into()),
            ..provider.settings().clone()
        },
    )
    .with_sdk_config(testing::sdk_config(
        testing::ACCESS_KEY,
        testing::SECRET_KEY,
    ));
    let err = unknown
        .purge(&PurgeRequest {
            paths: vec!["/index.html".into()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert!(err.is_fatal_for_provider(), "{err:?}");
    assert!(
        err.to_string().contains("sites.www.aws.distribution_id"),
        "{err}"
    );
}

#[tokio::test]
async fn objects_carry_their_headers_as_s3_serves_them() {
    let (provider, bucket) = on_new_bucket("headers", |_| {}).await;
    provider
        .put(PutRequest {
            content_type: Some("text/css; charset=utf-8".into()),
            content_encoding: Some("gzip".into()),
            cache_control: Some("public, max-age=300".into()),
            headers: BTreeMap::from([
                ("Content-Disposition".into(), "inline".into()),
                ("X-Robots-Tag".into(), "noindex".into()),
            ]),
            metadata: BTreeMap::from([("edgeship-hash".into(), "ab".repeat(32))]),
            ..PutRequest::bytes("print.css.gz", "gz bytes")
        })
        .await
        .unwrap();
    let head = testing::s3_client(&testing::moto_endpoint())
        .head_object()
        .bucket(&bucket)
        .key("print.css.gz")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("text/css; charset=utf-8"));
    assert_eq!(head.content_encoding(), Some("gzip"));
    assert_eq!(head.cache_control(), Some("public, max-age=300"));
    assert_eq!(head.content_disposition(), Some("inline"));
    let metadata = head.metadata().unwrap();
    assert_eq!(metadata["edgeship-hash"], "ab".repeat(32));
}

#[tokio::test]
async fn an_unreachable_endpoint_is_retryable_and_names_the_bucket() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let provider = AwsProvider::new(
        "www",
        testing::moto_settings(&format!("http://127.0.0.1:{port}"), "nowhere"),
    )
    .with_sdk_config(testing::sdk_config("a", "b"));
    let err = provider.head("x").await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
    assert!(err.to_string().contains("`nowhere`"), "{err}");
}
