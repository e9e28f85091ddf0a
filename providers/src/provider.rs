//! The provider trait: one object-safe async interface for every storage + CDN target.

use std::fmt::{Debug, Display};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::capabilities::Capabilities;
use crate::error::{Rejected, Result};
use crate::object::{ListPage, ObjectMeta, PurgeReceipt, PurgeRequest, PurgeStatus, PutRequest};

/// A deploy target: object storage plus the CDN in front of it.
///
/// Implementations are `Display` (their name in logs and errors, e.g. `local:/srv/www`)
/// and cheap to share behind an `Arc`. Cross-cutting behaviour (retry, circuit breaker,
/// metrics, fault injection) wraps a provider and is itself a provider.
#[async_trait]
pub trait Provider: Send + Sync + Debug + Display {
    /// What this provider supports and its limits.
    fn capabilities(&self) -> Capabilities;

    /// Stores an object, replacing any object at the same key.
    ///
    /// # Behavior
    /// - Content type, encoding, cache control, headers and metadata are stored and
    ///   returned by [`Provider::head`] exactly as given.
    /// - A reader never sees a partly written object.
    /// - Empty bodies are allowed.
    async fn put(&self, request: PutRequest) -> Result<ObjectMeta>;

    /// Returns an object's metadata.
    ///
    /// # Behavior
    /// - A missing key is [`crate::ProviderError::NotFound`].
    async fn head(&self, key: &str) -> Result<ObjectMeta>;

    /// Returns an object's metadata and bytes.
    ///
    /// # Behavior
    /// - A missing key is [`crate::ProviderError::NotFound`].
    async fn get(&self, key: &str) -> Result<(ObjectMeta, Bytes)>;

    /// Lists objects whose key starts with `prefix`, in key order, one page at a time.
    ///
    /// # Behavior
    /// - `cursor` is `None` for the first page, then the previous page's `next`.
    /// - Pages hold at most `capabilities().list_page_size` objects.
    async fn list_page(&self, prefix: &str, cursor: Option<String>) -> Result<ListPage>;

    /// Deletes objects.
    ///
    /// # Behavior
    /// - Deleting a missing key succeeds.
    /// - At most `capabilities().max_delete_batch` keys per call.
    async fn delete_many(&self, keys: &[String]) -> Result<()>;

    /// Purges CDN caches.
    ///
    /// # Behavior
    /// - Purging a path that is not cached succeeds.
    /// - Kinds the provider does not support are [`crate::ProviderError::NotSupported`].
    async fn purge(&self, request: &PurgeRequest) -> Result<PurgeReceipt>;

    /// Reports the state of a purge submitted earlier.
    async fn purge_status(&self, id: &str) -> Result<PurgeStatus>;
}

/// Conveniences built on [`Provider`], for every provider.
#[async_trait]
pub trait ProviderExt: Provider {
    /// Lists every object under `prefix`, following pagination.
    async fn list_all(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let mut all = Vec::new();
        let mut cursor = None;
        loop {
            let page = self.list_page(prefix, cursor).await?;
            all.extend(page.objects);
            match page.next {
                Some(next) => cursor = Some(next),
                None => return Ok(all),
            }
        }
    }

    /// Deletes any number of keys in batches of the provider's limit.
    async fn delete_all(&self, keys: &[String]) -> Result<()> {
        let batch = self.capabilities().max_delete_batch.max(1);
        for chunk in keys.chunks(batch) {
            self.delete_many(chunk).await?;
        }
        Ok(())
    }

    /// Like [`Provider::get`], but a missing key is `Ok(None)`.
    async fn get_opt(&self, key: &str) -> Result<Option<(ObjectMeta, Bytes)>> {
        match self.get(key).await {
            Ok(found) => Ok(Some(found)),
            Err(crate::ProviderError::NotFound { .. }) => Ok(None),
            Err(err) => Err(err),
        }
    }
}

impl<P: Provider + ?Sized> ProviderExt for P {}

/// A provider shared between tasks.
pub type SharedProvider = Arc<dyn Provider>;

/// A shared provider is a provider, so wrappers compose over `Arc<dyn Provider>`.
#[async_trait]
impl<P: Provider + ?Sized> Provider for Arc<P> {
    fn capabilities(&self) -> Capabilities {
        (**self).capabilities()
    }
    async fn put(&self, request: PutRequest) -> Result<ObjectMeta> {
        (**self).put(request).await
    }
    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        (**self).head(key).await
    }
    async fn get(&self, key: &str) -> Result<(ObjectMeta, Bytes)> {
        (**self).get(key).await
    }
    async fn list_page(&self, prefix: &str, cursor: Option<String>) -> Result<ListPage> {
        (**self).list_page(prefix, cursor).await
    }
    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        (**self).delete_many(keys).await
    }
    async fn purge(&self, request: &PurgeRequest) -> Result<PurgeReceipt> {
        (**self).purge(request).await
    }
    async fn purge_status(&self, id: &str) -> Result<PurgeStatus> {
        (**self).purge_status(id).await
    }
}

/// Checks that a key is safe for every provider: relative, `/`-separated, no empty,
/// `.` or `..` segments, no backslashes or control characters. Returns the reason when not.
pub fn validate_key(key: &str) -> std::result::Result<(), Rejected> {
    if key.is_empty() {
        return Err(Rejected::new("empty key"));
    }
    if key.len() > 1024 {
        return Err(Rejected::new(format!(
            "key is {} bytes long (limit 1024)",
            key.len()
        )));
    }
    if key.starts_with('/') {
        return Err(Rejected::new(format!("key `{key}` starts with `/`")));
    }
    if key.chars().any(|c| c.is_control() || c == '\\') {
        return Err(Rejected::new(format!(
            "key `{}` contains a control character or backslash",
            key.escape_debug()
        )));
    }
    if key
        .split('/')
        .any(|segment| segment.is_empty() || segment == "." || segment == "..")
    {
        return Err(Rejected::new(format!(
            "key `{key}` has an empty, `.` or `..` segment"
        )));
    }
    Ok(())
}
