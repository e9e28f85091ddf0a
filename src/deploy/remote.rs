//! What the site holds before a deploy: its manifest, whether the last deploy was
//! interrupted, and — where the manifest cannot say — which objects are stored.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use edgeship_providers::{ObjectMeta, ProviderError, ProviderExt, SharedProvider};
use serde::{Deserialize, Serialize};

use super::DeployError;
use super::Target;
use super::adaptive::AdaptiveLimit;
use super::plan::DesiredObject;
use crate::pipeline::ProcessedAsset;
use crate::pipeline::manifest::Manifest;

/// The key of the marker a deploy stores while it runs; finding it means the last deploy
/// was interrupted.
pub const IN_PROGRESS_KEY: &str = ".edgeship/deploy-in-progress";

/// What a deploy stores in its in-progress marker.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Marker {
    /// Unix seconds when the deploy started.
    pub started: u64,
    /// The paths the deploy will purge. A deploy killed after storing new objects (or its
    /// manifest) but before its purge went through leaves them cached in their old form;
    /// the rerun finds them here and purges them, although to it they look unchanged.
    #[serde(default)]
    pub purge: Vec<String>,
    /// The delta objects (`<path>.<sha-256>.dcb|dcz`) the deploy may store or delete: its
    /// delta uploads, the deltas it drops, and those an interrupted deploy before it
    /// listed. A deploy stopped after storing some leaves them named by no manifest, and
    /// an edge rule that picks a delta by path and `Available-Dictionary` alone would send
    /// one after a rollback (a newer version to a browser holding the older); the rerun
    /// finds them here and deletes those its manifest does not name.
    #[serde(default)]
    pub deltas: Vec<String>,
}

impl Marker {
    /// The marker as stored (JSON).
    pub fn to_bytes(&self) -> Vec<u8> {
        // An integer and strings always serialise.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The site's state as read before planning.
#[derive(Debug, Default)]
pub struct RemoteState {
    /// The stored manifest; `None` for a first deploy (or objects put there by others).
    pub manifest: Option<Manifest>,
    /// An interrupted deploy left its marker.
    pub interrupted: bool,
    /// The paths the interrupted deploy's marker says it was going to purge.
    pub unpurged: Vec<String>,
    /// The delta keys the interrupted deploy's marker says it may have stored or left
    /// (see [`Marker::deltas`]).
    pub unfinished_deltas: Vec<String>,
}

impl RemoteState {
    /// Reads the manifest (through the cache layer) and the in-progress marker.
    pub async fn load(site: &Target) -> Result<Self, DeployError> {
        let manifest = site.manifest().await?;
        let marker = site.provider().get_opt(IN_PROGRESS_KEY).await?;
        let left = match &marker {
            Some((_, bytes)) => match serde_json::from_slice::<Marker>(bytes) {
                Ok(marker) => marker,
                Err(err) => {
                    tracing::warn!(site = %site.name(), error = %err, "the interrupted deploy's marker is unreadable; its paths are not purged again and its deltas not looked for");
                    Marker::default()
                }
            },
            None => Marker::default(),
        };
        Ok(Self {
            manifest,
            interrupted: marker.is_some(),
            unpurged: left.purge,
            unfinished_deltas: left.deltas,
        })
    }

    /// Whether the manifest already describes exactly `assets` and no deploy was
    /// interrupted: then there is nothing to upload, delete or purge, since the manifest
    /// never names an object that is not stored.
    pub fn is_current(&self, assets: &[ProcessedAsset]) -> bool {
        let Some(remote) = &self.manifest else {
            return false;
        };
        !self.interrupted
            && assets.len() == remote.assets.len()
            && assets
                .iter()
                .all(|a| remote.assets.get(&a.path) == Some(&a.manifest_entry()))
    }
}

/// Objects known to be stored beyond what the manifest says, and stale keys found by
/// listing.
#[derive(Debug, Default)]
pub struct StoredObjects {
    /// Key → stored metadata (its hash decides whether an upload is needed).
    pub stored: BTreeMap<String, ObjectMeta>,
    /// Keys listed on a site without a manifest that the deploy does not want.
    pub listed_stale: Vec<String>,
    /// Every desired object was checked (after an interrupted deploy): one that is not
    /// stored as wanted is uploaded even where the manifest describes it.
    pub checked_all: bool,
}

/// What is stored where the manifest cannot tell: without a manifest, the whole listing
/// (objects put there by other tools, or a first deploy); after an interrupted deploy,
/// a `HEAD` of every desired object, so a rerun uploads only what is missing — and puts
/// back what the interrupted deploy overwrote where the manifest still names the old
/// bytes (a rollback to the manifest's version).
pub async fn stored_objects(
    site: &Target,
    remote: &RemoteState,
    desired: &[DesiredObject],
    limit: &Arc<AdaptiveLimit>,
) -> Result<StoredObjects, DeployError> {
    let provider = site.provider();
    let mut found = StoredObjects::default();
    match &remote.manifest {
        None => {
            let desired_keys: BTreeSet<&str> = desired.iter().map(|o| o.key.as_str()).collect();
            for meta in provider.list_all("").await? {
                if meta.key.starts_with(".edgeship/") {
                    continue;
                }
                if !desired_keys.contains(meta.key.as_str()) {
                    found.listed_stale.push(meta.key.clone());
                }
                found.stored.insert(meta.key.clone(), meta);
            }
        }
        Some(_) if remote.interrupted => {
            tracing::info!(site = %site.name(), "the last deploy was interrupted; checking what it already uploaded");
            found.stored = head_all(
                provider,
                limit,
                desired.iter().map(|o| o.key.clone()).collect(),
            )
            .await?;
            found.checked_all = true;
        }
        Some(_) => {}
    }
    Ok(found)
}

/// `HEAD`s `keys` within the deploy's concurrency; missing and unknown ones are left out
/// (uploading again is always safe), a fatal error stops.
async fn head_all(
    provider: &SharedProvider,
    limit: &Arc<AdaptiveLimit>,
    keys: Vec<String>,
) -> Result<BTreeMap<String, ObjectMeta>, DeployError> {
    let mut tasks = tokio::task::JoinSet::new();
    let mut stored = BTreeMap::new();
    for key in keys {
        // Finished tasks are collected as we go (a finished task keeps its allocation
        // until joined; see `execute`).
        while let Some(joined) = tasks.try_join_next() {
            record_head(&mut stored, joined)?;
        }
        let provider = Arc::clone(provider);
        // Wait here, not in the task: one waiter instead of thousands (see adaptive).
        let permit = limit.acquire().await;
        tasks.spawn(async move {
            let _permit = permit;
            (key.clone(), provider.head(&key).await)
        });
    }
    while let Some(joined) = tasks.join_next().await {
        record_head(&mut stored, joined)?;
    }
    Ok(stored)
}

/// Adds one finished `HEAD` to what is stored; a fatal error stops the deploy.
fn record_head(
    stored: &mut BTreeMap<String, ObjectMeta>,
    joined: Result<(String, Result<ObjectMeta, ProviderError>), tokio::task::JoinError>,
) -> Result<(), DeployError> {
    let Ok((key, result)) = joined else {
        return Ok(());
    };
    match result {
        Ok(meta) => {
            stored.insert(key, meta);
        }
        Err(ProviderError::NotFound { .. }) => {}
        Err(err) if err.is_fatal_for_provider() => return Err(err.into()),
        // Unknown state: upload it again, which is always safe.
        Err(_) => {}
    }
    Ok(())
}
