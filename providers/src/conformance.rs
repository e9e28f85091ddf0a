//! The conformance suite: one generic test body every provider passes, asserting exactly
//! the `# Behavior` contracts documented on [`Provider`]. Each check takes a key prefix so
//! runs against shared emulators do not collide. Call [`run_all`] from a provider's tests,
//! also through `Arc<dyn Provider>` and through the wrappers.
#![allow(clippy::missing_panics_doc)]

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::error::ProviderError;
use crate::object::{Body, META_HASH, PurgeRequest, PutRequest};
use crate::provider::{Provider, ProviderExt};

fn put(key: String, body: &'static [u8]) -> PutRequest {
    PutRequest::bytes(key, Bytes::from_static(body))
}

/// Runs every check with keys under `prefix` (which should end with `/`).
pub async fn run_all(provider: &dyn Provider, prefix: &str) {
    put_and_head_round_trip_all_metadata(provider, prefix).await;
    overwrite_replaces_bytes_and_metadata(provider, prefix).await;
    empty_objects_are_allowed(provider, prefix).await;
    unicode_and_space_keys_work(provider, prefix).await;
    missing_keys_are_not_found_and_deleting_them_succeeds(provider, prefix).await;
    unsafe_keys_are_rejected(provider, prefix).await;
    delete_many_removes_exactly_the_given_keys(provider, prefix).await;
    listing_paginates_past_1000_keys(provider, prefix).await;
    large_objects_stream_from_files(provider, prefix, 8 * 1024 * 1024).await;
    purge_follows_capabilities(provider).await;
}

/// Put stores every header and metadata field; head and get return them unchanged.
pub async fn put_and_head_round_trip_all_metadata(provider: &dyn Provider, prefix: &str) {
    let key = format!("{prefix}meta/app.js.br");
    let request = PutRequest {
        key: key.clone(),
        body: Body::Bytes(Bytes::from_static(b"compressed bytes")),
        content_type: Some("text/javascript; charset=utf-8".into()),
        content_encoding: Some("br".into()),
        cache_control: Some("public, max-age=31536000, immutable".into()),
        headers: BTreeMap::from([("x-robots-tag".into(), "noindex".into())]),
        metadata: BTreeMap::from([(META_HASH.into(), "ab".repeat(32))]),
    };
    let stored = provider.put(request.clone()).await.expect("put");
    assert_eq!(stored.size, 16);
    let head = provider.head(&key).await.expect("head");
    assert_eq!(
        head,
        request.meta(),
        "{provider}: head returns what put stored"
    );
    let (meta, bytes) = provider.get(&key).await.expect("get");
    assert_eq!(meta, head);
    assert_eq!(bytes, Bytes::from_static(b"compressed bytes"));
}

/// A second put to a key replaces bytes and metadata.
pub async fn overwrite_replaces_bytes_and_metadata(provider: &dyn Provider, prefix: &str) {
    let key = format!("{prefix}overwrite.txt");
    let mut first = put(key.clone(), b"first version");
    first.cache_control = Some("max-age=1".into());
    provider.put(first).await.expect("put 1");
    let mut second = put(key.clone(), b"second");
    second.content_type = Some("text/plain".into());
    provider.put(second).await.expect("put 2");
    let (meta, bytes) = provider.get(&key).await.expect("get");
    assert_eq!(bytes, Bytes::from_static(b"second"));
    assert_eq!(meta.size, 6);
    assert_eq!(
        meta.cache_control, None,
        "{provider}: old metadata does not survive an overwrite"
    );
    assert_eq!(meta.content_type.as_deref(), Some("text/plain"));
}

/// Zero-byte objects round-trip.
pub async fn empty_objects_are_allowed(provider: &dyn Provider, prefix: &str) {
    let key = format!("{prefix}empty.css");
    provider
        .put(put(key.clone(), b""))
        .await
        .expect("put empty");
    let (meta, bytes) = provider.get(&key).await.expect("get empty");
    assert_eq!((meta.size, bytes.len()), (0, 0));
}

/// Keys with unicode and spaces are stored and listed as given.
pub async fn unicode_and_space_keys_work(provider: &dyn Provider, prefix: &str) {
    let keys = [
        format!("{prefix}unicode/café menü.txt"),
        format!("{prefix}unicode/日本語/ファイル.js"),
    ];
    for key in &keys {
        provider
            .put(put(key.clone(), b"x"))
            .await
            .expect("put unicode");
        assert_eq!(provider.head(key).await.expect("head unicode").key, *key);
    }
    let listed: Vec<String> = provider
        .list_all(&format!("{prefix}unicode/"))
        .await
        .expect("list unicode")
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(listed, keys.to_vec());
}

/// Head and get of a missing key are `NotFound`; deleting it succeeds.
pub async fn missing_keys_are_not_found_and_deleting_them_succeeds(
    provider: &dyn Provider,
    prefix: &str,
) {
    let key = format!("{prefix}does/not/exist.js");
    assert!(
        matches!(
            provider.head(&key).await,
            Err(ProviderError::NotFound { .. })
        ),
        "{provider}: head"
    );
    assert!(
        matches!(
            provider.get(&key).await,
            Err(ProviderError::NotFound { .. })
        ),
        "{provider}: get"
    );
    assert!(provider.get_opt(&key).await.expect("get_opt").is_none());
    provider
        .delete_many(&[key])
        .await
        .expect("deleting a missing key succeeds");
}

/// Keys that could escape a root or confuse paths are `Invalid`, never stored.
pub async fn unsafe_keys_are_rejected(provider: &dyn Provider, prefix: &str) {
    for key in [
        format!("{prefix}../escape"),
        format!("/{prefix}abs"),
        format!("{prefix}a//b"),
        format!("{prefix}nul\0"),
    ] {
        let result = provider.put(put(key.clone(), b"x")).await;
        assert!(
            matches!(result, Err(ProviderError::Invalid { .. })),
            "{provider}: {key:?} gave {result:?}"
        );
    }
}

/// Delete removes the given keys and nothing else.
pub async fn delete_many_removes_exactly_the_given_keys(provider: &dyn Provider, prefix: &str) {
    let dir = format!("{prefix}delete/");
    for name in ["a", "b", "c", "d"] {
        provider
            .put(put(format!("{dir}{name}"), b"x"))
            .await
            .expect("put");
    }
    provider
        .delete_many(&[format!("{dir}a"), format!("{dir}c")])
        .await
        .expect("delete");
    let left: Vec<String> = provider
        .list_all(&dir)
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.key)
        .collect();
    assert_eq!(left, vec![format!("{dir}b"), format!("{dir}d")]);
}

/// Listing more than 1,000 keys pages through all of them, in order, without repeats.
pub async fn listing_paginates_past_1000_keys(provider: &dyn Provider, prefix: &str) {
    let dir = format!("{prefix}many/");
    let keys: Vec<String> = (0..1_050).map(|i| format!("{dir}{i:05}.txt")).collect();
    for key in &keys {
        provider
            .put(put(key.clone(), b"x"))
            .await
            .expect("put many");
    }
    provider
        .put(put(format!("{prefix}many-not-under-the-prefix"), b"x"))
        .await
        .expect("put");
    let limit = provider.capabilities().list_page_size;
    let mut seen = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let page = provider.list_page(&dir, cursor).await.expect("list page");
        assert!(
            page.objects.len() <= limit,
            "{provider}: page larger than list_page_size"
        );
        pages += 1;
        seen.extend(page.objects.into_iter().map(|m| m.key));
        match page.next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, keys, "{provider}: every key once, in order");
    assert!(pages >= 2, "{provider}: 1,050 keys take more than one page");
}

/// Large bodies stream from a file and come back byte for byte.
pub async fn large_objects_stream_from_files(provider: &dyn Provider, prefix: &str, size: usize) {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    let bytes: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    std::fs::write(file.path(), &bytes).expect("write temp file");
    let key = format!("{prefix}large.bin");
    let request = PutRequest {
        body: Body::File {
            path: file.path().to_path_buf(),
            size: size as u64,
        },
        ..PutRequest::bytes(key.clone(), Bytes::new())
    };
    provider.put(request).await.expect("put large");
    let (meta, got) = provider.get(&key).await.expect("get large");
    assert_eq!(meta.size, size as u64);
    assert!(got == bytes, "{provider}: large object differs");
}

/// Purging an uncached path succeeds; kinds outside the capabilities are `NotSupported`.
pub async fn purge_follows_capabilities(provider: &dyn Provider) {
    let caps = provider.capabilities();
    let paths = PurgeRequest::of_paths(["/never-cached.html"]);
    let receipt = provider
        .purge(&paths)
        .await
        .expect("purge of an uncached path succeeds");
    provider
        .purge_status(&receipt.id)
        .await
        .expect("purge status");
    let tags = PurgeRequest {
        tags: vec!["t".into()],
        ..Default::default()
    };
    match provider.purge(&tags).await {
        Ok(_) => assert!(
            caps.purge_tags,
            "{provider}: purged tags without declaring it"
        ),
        Err(ProviderError::NotSupported { .. }) => assert!(!caps.purge_tags),
        Err(err) => panic!("{provider}: tag purge: {err}"),
    }
}
