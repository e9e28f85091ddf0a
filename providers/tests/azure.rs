//! The `azure` provider: Blob storage against Azurite, Front Door purges and Entra ID
//! tokens against the fake ARM and token endpoints (`azure::testing`), over real HTTP.

use edgeship_providers::azure::testing::{self, FakeAzure};
use edgeship_providers::azure::{AZURITE_KEY, AzureProvider, AzureSettings};
use edgeship_providers::{Provider, ProviderError, PurgeRequest, PurgeStatus, conformance};

/// Settings of a new container on the shared Azurite.
async fn container(tag: &str) -> AzureSettings {
    let endpoint = testing::azurite_endpoint();
    let container = testing::unique_container(tag);
    testing::create_container(&endpoint, &container).await;
    testing::azurite_settings(&endpoint, &container)
}

/// The environment of a site authenticating to Azurite with its key and to the fake
/// with the service principal.
fn env(fake: &FakeAzure) -> edgeship_providers::azure::Env {
    let mut vars = fake.env();
    vars.push(("AZURE_STORAGE_KEY", AZURITE_KEY.to_string()));
    testing::env_of(vars)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blob_storage_and_front_door_purges_pass_the_conformance_suite() {
    let fake = FakeAzure::start().await;
    fake.polls_before_end(0);
    let settings = AzureSettings {
        // Small pages, so the suite's 1,100-key listing crosses pages on the service.
        list_page_size: 250,
        front_door: Some(fake.front_door()),
        ..container("conformance").await
    };
    let (endpoint, name) = (
        settings.endpoint.clone().unwrap(),
        settings.container.clone(),
    );
    let provider = AzureProvider::new(settings).with_env(env(&fake));
    conformance::run_all(&provider, "suite/").await;
    // A 20 MiB file goes up as 8 MiB blocks (above the 16 MiB threshold), in parallel.
    assert_eq!(provider.capabilities().multipart_threshold, Some(16 << 20));
    conformance::large_objects_stream_from_files(&provider, "blocks/", 20 << 20).await;
    assert_eq!(
        testing::committed_blocks(&endpoint, &name, "blocks/large.bin").await,
        3
    );
    assert!(!fake.purges().is_empty(), "the suite's purges reached ARM");
    assert_eq!(fake.tokens_issued(), 1, "one token, cached for every call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_follows_its_long_running_operation_to_succeeded_or_failed() {
    let fake = FakeAzure::start().await;
    fake.polls_before_end(2);
    let settings = AzureSettings {
        front_door: Some(edgeship_providers::azure::FrontDoorSettings {
            domains: vec!["www.example.com".into()],
            ..fake.front_door()
        }),
        ..container("lro").await
    };
    let provider = AzureProvider::new(settings).with_env(env(&fake));
    let receipt = provider
        .purge(&PurgeRequest::of_paths([
            "/blog/",
            "/blog/index.html",
            "/Blog/Index.html",
        ]))
        .await
        .unwrap();
    assert_eq!(receipt.status, PurgeStatus::InProgress);
    let purges = fake.purges();
    assert_eq!(purges.len(), 1);
    assert_eq!(
        purges[0].content_paths,
        ["/blog/", "/blog/index.html"],
        "case-insensitive duplicates are sent once"
    );
    assert_eq!(purges[0].domains, ["www.example.com"]);
    assert_eq!(
        provider.purge_status(&receipt.id).await.unwrap(),
        PurgeStatus::InProgress
    );
    assert_eq!(
        provider.purge_status(&receipt.id).await.unwrap(),
        PurgeStatus::InProgress
    );
    assert_eq!(
        provider.purge_status(&receipt.id).await.unwrap(),
        PurgeStatus::Done
    );
    // Every ARM call carried the api-version.
    for (method, target, _) in fake.calls() {
        if !target.contains("/oauth2/") {
            assert!(
                target.contains("api-version=2025-06-01"),
                "{method} {target}"
            );
        }
    }

    fake.polls_before_end(0);
    fake.fail_next();
    let everything = PurgeRequest {
        everything: true,
        ..PurgeRequest::default()
    };
    let receipt = provider.purge(&everything).await.unwrap();
    assert_eq!(fake.purges()[1].content_paths, ["/*"]);
    match provider.purge_status(&receipt.id).await {
        Err(err @ ProviderError::OperationFailed { .. }) => {
            let text = err.to_string();
            assert!(text.contains("Front Door endpoint `www`"), "{text}");
            assert!(text.contains("Purge failed"), "{text}");
        }
        other => panic!("a failed operation is OperationFailed: {other:?}"),
    }
    // A receipt pointing anywhere but ARM is refused, never fetched with our token.
    let calls = fake.calls().len();
    assert!(matches!(
        provider
            .purge_status("async:http://203.0.113.9/steal")
            .await,
        Err(ProviderError::Invalid { .. })
    ));
    assert_eq!(fake.calls().len(), calls);
}

#[tokio::test]
async fn wrong_credentials_are_one_fatal_error_naming_the_account_or_the_principal() {
    let settings = container("wrong-key").await;
    let wrong = testing::env_of(vec![(
        "AZURE_STORAGE_KEY",
        "d3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXk=".to_string(),
    )]);
    let provider = AzureProvider::new(settings.clone()).with_env(wrong);
    let err = provider
        .put(edgeship_providers::PutRequest::bytes("a.txt", &b"x"[..]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Unauthenticated { .. }),
        "{err}"
    );
    assert!(err.is_fatal_for_provider());
    let text = err.to_string();
    assert!(text.contains("devstoreaccount1"), "{text}");
    assert!(text.contains("AZURE_STORAGE_KEY"), "{text}");

    // A wrong client secret: the purge names the principal and the variable.
    let fake = FakeAzure::start().await;
    let mut vars = fake.env();
    vars.retain(|(k, _)| *k != "AZURE_CLIENT_SECRET");
    vars.push(("AZURE_CLIENT_SECRET", "not-the-secret".into()));
    vars.push(("AZURE_STORAGE_KEY", AZURITE_KEY.into()));
    let provider = AzureProvider::new(AzureSettings {
        front_door: Some(fake.front_door()),
        ..settings
    })
    .with_env(testing::env_of(vars));
    let err = provider
        .purge(&PurgeRequest::of_paths(["/a"]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ProviderError::Unauthenticated { .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains(testing::CLIENT_ID), "{text}");
    assert!(text.contains("AZURE_CLIENT_SECRET"), "{text}");
    assert!(!text.contains("not-the-secret"), "{text}");
}

#[tokio::test]
async fn a_missing_container_is_misconfigured_and_a_connection_string_is_enough() {
    let endpoint = testing::azurite_endpoint();
    let settings = testing::azurite_settings(&endpoint, "no-such-container");
    let provider = AzureProvider::new(settings).with_env(testing::azurite_env());
    let err = provider.list_page("", None).await.unwrap_err();
    assert!(matches!(err, ProviderError::Misconfigured { .. }), "{err}");
    assert!(err.to_string().contains("no-such-container"), "{err}");

    // Only a connection string: the account and the endpoint come from it.
    let settings = container("connection-string").await;
    let connection = format!(
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};BlobEndpoint={endpoint}/;"
    );
    let provider = AzureProvider::new(AzureSettings {
        account: String::new(),
        endpoint: None,
        credential: edgeship_providers::azure::Credential::ConnectionString,
        ..settings
    })
    .with_env(testing::env_of(vec![(
        "AZURE_STORAGE_CONNECTION_STRING",
        connection,
    )]));
    provider
        .put(edgeship_providers::PutRequest::bytes("a.txt", &b"x"[..]))
        .await
        .unwrap();
    assert_eq!(provider.head("a.txt").await.unwrap().size, 1);
}
