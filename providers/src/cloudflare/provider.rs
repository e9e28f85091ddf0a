//! The `cloudflare` provider: R2 storage through the `aws` provider's S3 implementation,
//! purges through the zone's cache purge API.

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use secrecy::SecretString;

use super::CloudflareSettings;
use super::api::{self, PurgeApi};
use crate::aws::AwsProvider;
use crate::capabilities::Capabilities;
use crate::error::{ProviderError, Result};
use crate::object::{ListPage, ObjectMeta, PurgeReceipt, PurgeRequest, PurgeStatus, PutRequest};
use crate::provider::Provider;

/// A site on R2 behind a Cloudflare zone.
pub struct CloudflareProvider {
    name: String,
    settings: CloudflareSettings,
    storage: AwsProvider,
    /// The purge client, or why it could not be made (then every purge says so).
    api: Option<PurgeApi>,
    api_error: String,
}

impl fmt::Debug for CloudflareProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudflareProvider")
            .field("name", &self.name)
            .field("settings", &self.settings)
            .field("api", &self.api)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for CloudflareProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl CloudflareProvider {
    /// The provider of site `site`: storage clients connect on first use; the purge
    /// client is made now, with the token from `settings.token_env`.
    pub fn new(site: &str, settings: CloudflareSettings) -> Self {
        let name = format!(
            "cloudflare:r2://{}/{}",
            settings.bucket,
            settings.key_prefix()
        );
        let storage =
            AwsProvider::new(site, settings.storage()).with_identity(name.clone(), "cloudflare");
        let (api, api_error) = match PurgeApi::new(&name, &settings) {
            Ok(api) => (Some(api), String::new()),
            Err(err) => (None, err.to_string()),
        };
        Self {
            name,
            settings,
            storage,
            api,
            api_error,
        }
    }

    /// Keeps up to `connections` idle storage connections (the deploy's concurrency).
    pub fn with_pool_size(mut self, connections: usize) -> Self {
        self.storage = self.storage.with_pool_size(connections);
        self
    }

    /// Uses this SDK configuration (R2 credentials) instead of the standard chain.
    pub fn with_sdk_config(mut self, config: crate::aws::sdk::aws_config::SdkConfig) -> Self {
        self.storage = self.storage.with_sdk_config(config);
        self
    }

    /// Uses this API token instead of the environment's.
    pub fn with_token(mut self, token: SecretString) -> Self {
        if let Some(api) = &mut self.api {
            api.set_token(token);
        }
        self
    }

    fn api(&self) -> Result<&PurgeApi> {
        self.api
            .as_ref()
            .ok_or_else(|| ProviderError::Misconfigured {
                provider: self.name.clone(),
                message: self.api_error.clone(),
            })
    }
}

#[async_trait]
impl Provider for CloudflareProvider {
    /// Storage limits are R2's (S3's API); purges take paths (as URLs for every host),
    /// prefixes, tags and everything, never `*` wildcards. Per call: the plan's URLs and
    /// operations divided by the number of hosts, since every path or prefix is sent once
    /// per host.
    fn capabilities(&self) -> Capabilities {
        let limits = self.settings.limits();
        let hosts = self.settings.hosts.len().max(1);
        Capabilities {
            purge_paths: true,
            purge_tags: true,
            purge_prefixes: true,
            purge_everything: true,
            trailing_wildcards: false,
            max_purge_items_per_call: (limits.urls_per_call / hosts).max(1),
            max_purge_operations_per_call: Some((limits.operations_per_call / hosts).max(1)),
            max_purge_wildcards_per_call: 0,
            max_purge_paths_in_flight: None,
            max_purge_wildcards_in_flight: None,
            free_purge_paths_per_month: None,
            purge_path_price_micro_usd: 0,
            purge_is_noop: false,
            ..self.storage.capabilities()
        }
    }

    async fn put(&self, request: PutRequest) -> Result<ObjectMeta> {
        self.storage.put(request).await
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        self.storage.head(key).await
    }

    async fn get(&self, key: &str) -> Result<(ObjectMeta, Bytes)> {
        self.storage.get(key).await
    }

    async fn list_page(&self, prefix: &str, cursor: Option<String>) -> Result<ListPage> {
        self.storage.list_page(prefix, cursor).await
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        self.storage.delete_many(keys).await
    }

    /// One API call per kind in the request (the engine sends one kind per request).
    /// Cloudflare purges at once, so the receipt is `done`.
    async fn purge(&self, request: &PurgeRequest) -> Result<PurgeReceipt> {
        self.capabilities().validate_purge(&self.name, request)?;
        let api = self.api()?;
        let mut ids = Vec::new();
        for call in api::calls(request, &self.settings.hosts) {
            ids.push(api.send(&call).await?);
        }
        Ok(PurgeReceipt {
            id: ids.join(","),
            status: PurgeStatus::Done,
        })
    }

    async fn purge_status(&self, _id: &str) -> Result<PurgeStatus> {
        Ok(PurgeStatus::Done)
    }
}
