//! Deploy history: the manifest of what each deploy published, kept on the site itself
//! under `.edgeship/history/` (the last `deploy.history` deploys), with an index that
//! `edgeship deploys list` and `GET /v1/sites/{site}/deploys` read.
//!
//! A record's manifest holds the assets the deploy's input had (not the stale files the
//! site still stores), so walking the records newest first gives each asset's earlier
//! versions in order: that is where delta variants find what returning visitors hold.
//!
//! The history is written after the site's manifest; failing to write it is reported and
//! never fails the deploy (the site is deployed by then).

use edgeship_providers::{ProviderError, ProviderExt, PutRequest, SharedProvider};
use serde::{Deserialize, Serialize};

use crate::pipeline::manifest::Manifest;

/// Where the records live on a site.
pub const HISTORY_PREFIX: &str = ".edgeship/history/";

/// The index of the records, newest first.
pub const INDEX_KEY: &str = ".edgeship/history/index.json";

/// Format version of the index.
const INDEX_VERSION: u32 = 1;

/// One deploy in the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployRecord {
    /// The deploy's id (`d…`): the HTTP job id, or one made for a CLI deploy.
    pub id: String,
    /// When it finished, in Unix seconds.
    pub time: u64,
    /// Files the deploy published.
    pub files: u64,
    /// Bytes of those files (identity).
    pub bytes: u64,
    /// Objects it uploaded (variants and deltas included).
    pub uploaded: u64,
    /// Bytes it uploaded.
    pub uploaded_bytes: u64,
    /// Delta variants it stored (RFC 9842).
    #[serde(default)]
    pub deltas: u64,
    /// The key of its manifest on the site.
    pub manifest_key: String,
}

/// The history index as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HistoryIndex {
    /// Format version.
    pub version: u32,
    /// Records, newest first.
    pub deploys: Vec<DeployRecord>,
}

/// Reads the index; a site without one (or with one this build cannot read) has no
/// history yet.
pub async fn load_index(provider: &SharedProvider) -> Result<HistoryIndex, ProviderError> {
    let Some((_, bytes)) = provider.get_opt(INDEX_KEY).await? else {
        return Ok(HistoryIndex::default());
    };
    match serde_json::from_slice::<HistoryIndex>(&bytes) {
        Ok(index) if index.version == INDEX_VERSION => Ok(index),
        Ok(index) => {
            tracing::warn!(
                version = index.version,
                "deploy history index of another format; starting a new history"
            );
            Ok(HistoryIndex::default())
        }
        Err(err) => {
            tracing::warn!(error = %err, "deploy history index unreadable; starting a new history");
            Ok(HistoryIndex::default())
        }
    }
}

/// Reads the manifest of one record; `None` when it is gone or unreadable.
pub async fn load_manifest(
    provider: &SharedProvider,
    record: &DeployRecord,
) -> Result<Option<Manifest>, ProviderError> {
    let Some((_, bytes)) = provider.get_opt(&record.manifest_key).await? else {
        return Ok(None);
    };
    let parsed = tokio::task::spawn_blocking(move || Manifest::from_json(&bytes)).await;
    match parsed {
        Ok(Ok(manifest)) => Ok(Some(manifest)),
        Ok(Err(err)) => {
            tracing::warn!(key = %record.manifest_key, error = %err, "deploy history record unreadable; skipped");
            Ok(None)
        }
        Err(err) => {
            tracing::warn!(key = %record.manifest_key, error = %err, "deploy history record not parsed; skipped");
            Ok(None)
        }
    }
}

/// The key of a deploy's record.
pub fn record_key(id: &str) -> String {
    format!("{HISTORY_PREFIX}{id}.json")
}

/// Adds `record` (whose manifest is `published`) to the site's history and drops the
/// records beyond the newest `keep`.
pub async fn append(
    provider: &SharedProvider,
    keep: usize,
    record: DeployRecord,
    published: &Manifest,
) -> Result<(), ProviderError> {
    if keep == 0 {
        return Ok(());
    }
    let mut put = PutRequest::bytes(record.manifest_key.clone(), published.to_compact_json());
    put.content_type = Some("application/json".into());
    put.cache_control = Some("no-store".into());
    provider.put(put).await?;

    let mut index = load_index(provider).await?;
    index.version = INDEX_VERSION;
    index.deploys.retain(|r| r.id != record.id);
    index.deploys.insert(0, record);
    let dropped: Vec<String> = index
        .deploys
        .split_off(keep.min(index.deploys.len()))
        .into_iter()
        .map(|r| r.manifest_key)
        .collect();
    let json = serde_json::to_vec(&index).unwrap_or_default();
    let mut put = PutRequest::bytes(INDEX_KEY, json);
    put.content_type = Some("application/json".into());
    put.cache_control = Some("no-store".into());
    provider.put(put).await?;
    if !dropped.is_empty() {
        provider.delete_all(&dropped).await?;
    }
    Ok(())
}
