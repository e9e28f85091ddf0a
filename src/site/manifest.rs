//! A site's stored manifest (`deploy.manifest_key`: path → hash, sizes, headers), read
//! through the cache layer.
//!
//! Deploys write the manifest with its blake3 hash as `edgeship-hash` metadata and keep a
//! copy in the cache layer under `{prefix}:{site}:manifest`. A read with a cached copy
//! validates it with one `HEAD` (a large site's manifest is megabytes; the `HEAD` is
//! bytes); without one it downloads the manifest and caches it. A manifest written by
//! another tool, without the hash, is always downloaded. Cache failures fall back to the
//! provider; they never fail a read.

use std::time::Duration;

use edgeship_providers::object::META_HASH;
use edgeship_providers::{ProviderError, ProviderExt, SharedProvider};

use crate::cache::Cache;
use crate::pipeline::hash::ContentHash;
use crate::pipeline::manifest::Manifest;

/// How long a manifest is kept in the cache layer without being used.
pub const MANIFEST_CACHE_TTL: Duration = Duration::from_secs(7 * 86_400);

/// Why a site's manifest cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestError {
    /// The provider failed.
    #[error(transparent)]
    Provider(#[from] ProviderError),
    /// The manifest exists but does not parse.
    #[error(
        "the site's manifest at `{key}` is unreadable ({message}); remove it to deploy everything again"
    )]
    Unreadable {
        /// Its key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

/// A site's manifest as kept in the cache layer, with the hash of the stored JSON it
/// was read from (or written as). Written borrowed (`M = &Manifest`), read owned.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct CachedManifest<M> {
    hash: ContentHash,
    manifest: M,
}

/// Reads and keeps one site's manifest.
#[derive(Debug, Clone)]
pub struct ManifestReader {
    site: String,
    key: String,
    cache: Cache,
}

impl ManifestReader {
    /// The reader of `site`'s manifest at `key`, cached in `cache`.
    pub fn new(site: &str, key: &str, cache: Cache) -> Self {
        Self {
            site: site.to_string(),
            key: key.to_string(),
            cache,
        }
    }

    /// The manifest's key on the site.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The manifest stored through `provider`, if any (see the module docs).
    pub async fn read(&self, provider: &SharedProvider) -> Result<Option<Manifest>, ManifestError> {
        let cache_key = self.cache.site(&self.site).manifest();
        let cached = match self.cache.get::<CachedManifest<Manifest>>(&cache_key).await {
            Ok(cached) => cached,
            Err(err) => {
                tracing::warn!(site = %self.site, error = %err, "cached manifest unreadable; reading it from the provider");
                None
            }
        };
        if let Some(cached) = cached {
            match provider.head(&self.key).await {
                Ok(meta)
                    if meta.metadata.get(META_HASH).map(String::as_str)
                        == Some(cached.hash.as_str()) =>
                {
                    return Ok(Some(cached.manifest));
                }
                Ok(_) => {}
                Err(ProviderError::NotFound { .. }) => {
                    self.forget().await;
                    return Ok(None);
                }
                Err(err) => return Err(err.into()),
            }
        }
        let Some((meta, bytes)) = provider.get_opt(&self.key).await? else {
            self.forget().await;
            return Ok(None);
        };
        let key = self.key.clone();
        // Hashing and parsing a large manifest is CPU work: off the async workers.
        let parsed = tokio::task::spawn_blocking(move || {
            Manifest::from_json(&bytes).map(|manifest| (ContentHash::of(&bytes), manifest))
        })
        .await;
        let (hash, manifest) = match parsed {
            Ok(Ok(parsed)) => parsed,
            Ok(Err(err)) => {
                return Err(ManifestError::Unreadable {
                    key,
                    message: err.to_string(),
                });
            }
            Err(err) => {
                return Err(ManifestError::Unreadable {
                    key,
                    message: format!("the parsing task failed: {err}"),
                });
            }
        };
        // Only a manifest whose stored hash is its own can be validated by a HEAD later.
        if meta.metadata.get(META_HASH).map(String::as_str) == Some(hash.as_str()) {
            self.remember(hash, &manifest).await;
        }
        Ok(Some(manifest))
    }

    /// Keeps `manifest` (whose stored JSON hashes to `hash`) in the cache layer.
    pub async fn remember(&self, hash: ContentHash, manifest: &Manifest) {
        let key = self.cache.site(&self.site).manifest();
        let value = CachedManifest { hash, manifest };
        if let Err(err) = self.cache.set(&key, &value, Some(MANIFEST_CACHE_TTL)).await {
            tracing::warn!(site = %self.site, error = %err, "manifest not cached");
        }
    }

    async fn forget(&self) {
        let key = self.cache.site(&self.site).manifest();
        if let Err(err) = self.cache.delete(&key).await {
            tracing::debug!(site = %self.site, error = %err, "cached manifest not removed");
        }
    }
}
