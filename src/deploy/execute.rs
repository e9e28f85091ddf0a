//! Executing a plan: the in-progress marker, deltas an interrupted deploy left that no
//! manifest names, upload phases (assets, then HTML) in rounds, the manifest write, and
//! stale deletes (deltas the new manifest no longer names always) — in that order, so the
//! site is never broken: a page never points at an asset that is not stored, and the
//! manifest never names an object that is not stored.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use edgeship_providers::object::META_HASH;
use edgeship_providers::{ObjectMeta, ProviderError, ProviderExt, PutRequest, SharedProvider};

use super::Target;
use super::adaptive::AdaptiveLimit;
use super::plan::{self, Plan, Upload};
use super::remote::{IN_PROGRESS_KEY, Marker};
use super::{DeployError, DeployOptions, DeployProgress, DeployReport};
use crate::jobs::unix_now;
use crate::pipeline::ProcessedAsset;
use crate::pipeline::build::FileMessage;
use crate::pipeline::hash::ContentHash;
use crate::pipeline::manifest::Manifest;
use crate::site::StackCounters;

/// Rounds of uploading what failed transiently, the first included.
pub const UPLOAD_ROUNDS: u32 = 3;

/// What executing the plan left, for the finish.
#[derive(Debug)]
pub struct Executed {
    /// The manifest now stored (or, when nothing changed, the one already there).
    pub manifest: Manifest,
    /// Whether it was written.
    pub manifest_written: bool,
    /// Whether anything was uploaded or deleted (the in-progress marker was set).
    pub had_work: bool,
    /// Whether stale objects were deleted.
    pub deleted: bool,
    /// Keys uploaded.
    pub succeeded: BTreeSet<String>,
}

/// What a plan is executed against.
pub struct Work<'a> {
    /// The site, as this deploy sees it.
    pub site: &'a Target,
    /// The processed files.
    pub assets: &'a [ProcessedAsset],
    /// The manifest the site had (empty without one).
    pub remote: &'a Manifest,
    /// The deploy's options.
    pub options: &'a DeployOptions,
    /// The adaptive concurrency limit.
    pub limit: &'a Arc<AdaptiveLimit>,
}

impl Work<'_> {
    /// Runs `plan`: marker, uploads, manifest, deletes. Uploads, deletes and failures are
    /// counted into `report`; a fatal provider error (down, credentials refused) stops
    /// at once.
    pub async fn execute(
        &self,
        plan: &mut Plan,
        progress: Arc<dyn DeployProgress>,
        report: &mut DeployReport,
    ) -> Result<Executed, DeployError> {
        let (site, options) = (self.site, self.options);
        let provider = site.provider();
        let had_work = !plan.uploads.is_empty()
            || (options.delete && !plan.stale_keys.is_empty())
            || plan.has_delta_deletes();
        let marker_deltas = plan.marker_deltas();
        if had_work {
            let marker = Marker {
                started: unix_now(),
                purge: plan.purge_candidates(options.delete),
                deltas: marker_deltas.clone(),
            };
            provider
                .put(PutRequest::bytes(IN_PROGRESS_KEY, marker.to_bytes()))
                .await?;
        }
        if !plan.orphan_deltas.is_empty() {
            // Named by no manifest: nothing edgeship serves needs them, so they go first,
            // before a path they sit next to is stored in another version.
            progress.phase("orphans", plan.orphan_deltas.len() as u64, 0);
            provider.delete_all(&plan.orphan_deltas).await?;
            report.orphan_deltas_removed = plan.orphan_deltas.len() as u64;
            tracing::info!(
                site = %site.name(),
                deltas = plan.orphan_deltas.len(),
                "deleted the delta objects an interrupted deploy left that no manifest names"
            );
        }
        let succeeded = upload_phases(site, plan, self.limit, progress.clone(), report).await?;

        let delete_now =
            options.delete && report.failures.is_empty() && !plan.stale_keys.is_empty();
        let manifest = next_manifest(self.assets, self.remote, &report.failures, plan, delete_now);
        let manifest_written = had_work || self.remote.assets != manifest.assets;
        if manifest_written {
            write_manifest(site, &manifest).await?;
        }
        if delete_now {
            progress.phase("delete", plan.stale_keys.len() as u64, 0);
            provider.delete_all(&plan.stale_keys).await?;
            report.deleted = plan.stale_keys.len() as u64;
        }
        let unnamed = unnamed_deltas(&marker_deltas, &manifest, plan, delete_now);
        if !unnamed.is_empty() {
            progress.phase("deltas", unnamed.len() as u64, 0);
            provider.delete_all(&unnamed).await?;
            report.stale_deltas_removed = unnamed.len() as u64;
            tracing::info!(
                site = %site.name(),
                deltas = unnamed.len(),
                "deleted the delta objects the new manifest no longer names"
            );
        }
        Ok(Executed {
            manifest,
            manifest_written,
            had_work,
            deleted: delete_now,
            succeeded,
        })
    }
}

/// Non-HTML objects, then HTML: a page must never go live pointing at an asset that
/// failed to upload, so pages wait when an asset failed.
async fn upload_phases(
    site: &Target,
    plan: &mut Plan,
    limit: &Arc<AdaptiveLimit>,
    progress: Arc<dyn DeployProgress>,
    report: &mut DeployReport,
) -> Result<BTreeSet<String>, DeployError> {
    let (assets_phase, html_phase): (Vec<Upload>, Vec<Upload>) =
        plan.uploads.drain(..).partition(|u| !u.object.is_html);
    let mut succeeded = BTreeSet::new();
    let abort = Arc::new(AtomicBool::new(false));
    for (name, phase) in [("assets", assets_phase), ("html", html_phase)] {
        if phase.is_empty() {
            continue;
        }
        if !report.failures.is_empty() {
            for upload in &phase {
                report.failures.push(FileMessage {
                    path: upload.object.key.clone(),
                    message:
                        "not uploaded: an asset failed to upload, so pages wait for the next deploy"
                            .into(),
                });
            }
            continue;
        }
        progress.phase(
            name,
            phase.len() as u64,
            phase.iter().map(|u| u.object.size).sum(),
        );
        let uploader = Uploader {
            provider: site.provider(),
            counters: site.counters(),
            limit,
            abort: &abort,
            progress: &progress,
        };
        let outcome = uploader.phase(phase).await;
        report.uploaded += outcome.ok.len() as u64;
        report.uploaded_bytes += outcome.bytes;
        succeeded.extend(outcome.ok);
        report.failures.extend(outcome.failures);
        if let Some(fatal) = outcome.fatal {
            return Err(DeployError::Provider(fatal));
        }
    }
    Ok(succeeded)
}

/// The manifest after the uploads: assets whose objects all went up get their new entry;
/// the others keep their old one (their old objects are still there); stale files stay
/// listed until they are deleted.
fn next_manifest(
    assets: &[ProcessedAsset],
    remote: &Manifest,
    failures: &[FileMessage],
    plan: &Plan,
    delete_now: bool,
) -> Manifest {
    let mut manifest = Manifest::default();
    let failed: BTreeSet<&str> = failures.iter().map(|f| f.path.as_str()).collect();
    for asset in assets {
        let entry = asset.manifest_entry();
        let keys = plan::entry_keys(&asset.path, &entry);
        // Objects not uploaded were unchanged (already stored) unless they failed.
        if keys.iter().all(|k| !failed.contains(k.as_str())) {
            manifest.assets.insert(asset.path.clone(), entry);
        } else if let Some(old) = remote.assets.get(&asset.path) {
            manifest.assets.insert(asset.path.clone(), old.clone());
        }
    }
    if !delete_now {
        for path in &plan.stale_paths {
            if let Some(old) = remote.assets.get(path) {
                manifest.assets.insert(path.clone(), old.clone());
            }
        }
    }
    manifest
}

/// The delta keys among `candidates` (what the deploy's marker lists) that `manifest`
/// does not name and that were not deleted already (orphans, or stale objects removed by
/// `--delete`): a deploy leaves no delta its manifest does not name, since an edge rule
/// choosing a delta by path and `Available-Dictionary` would serve it for a version the
/// path no longer holds.
fn unnamed_deltas(
    candidates: &[String],
    manifest: &Manifest,
    plan: &Plan,
    delete_now: bool,
) -> Vec<String> {
    let named: BTreeSet<String> = manifest
        .assets
        .iter()
        .flat_map(|(path, entry)| plan::entry_keys(path, entry))
        .collect();
    let done: BTreeSet<&String> = plan
        .orphan_deltas
        .iter()
        .chain(plan.stale_keys.iter().filter(|_| delete_now))
        .collect();
    candidates
        .iter()
        .filter(|key| !named.contains(*key) && !done.contains(key))
        .cloned()
        .collect()
}

/// Stores the manifest with its hash as metadata (so readers validate their cached copy
/// with a `HEAD`) and keeps it in the cache layer.
async fn write_manifest(site: &Target, manifest: &Manifest) -> Result<(), DeployError> {
    let json = manifest.to_compact_json();
    let hash = ContentHash::of(&json);
    let mut put = PutRequest::bytes(site.manifests().key().to_string(), json);
    put.content_type = Some("application/json".into());
    put.cache_control = Some("no-store".into());
    put.metadata.insert(META_HASH.into(), hash.to_string());
    site.provider().put(put).await?;
    site.manifests().remember(hash, manifest).await;
    Ok(())
}

/// Uploads one phase's objects within the adaptive limit.
struct Uploader<'a> {
    provider: &'a SharedProvider,
    counters: &'a StackCounters,
    limit: &'a Arc<AdaptiveLimit>,
    abort: &'a Arc<AtomicBool>,
    progress: &'a Arc<dyn DeployProgress>,
}

#[derive(Debug, Default)]
struct PhaseOutcome {
    ok: Vec<String>,
    bytes: u64,
    failures: Vec<FileMessage>,
    /// Uploads whose retries ran out on transient errors, with their failure.
    retry_later: Vec<(Upload, FileMessage)>,
    fatal: Option<ProviderError>,
}

impl Uploader<'_> {
    /// Uploads a phase. Objects whose calls kept failing transiently (retries exhausted)
    /// get up to [`UPLOAD_ROUNDS`] rounds in all, so a provider failing a large share of
    /// calls still ends with every object stored; a fatal error stops at once.
    async fn phase(&self, mut uploads: Vec<Upload>) -> PhaseOutcome {
        let mut total = PhaseOutcome::default();
        for round in 1..=UPLOAD_ROUNDS {
            let outcome = self.round(uploads).await;
            total.ok.extend(outcome.ok);
            total.bytes += outcome.bytes;
            total.failures.extend(outcome.failures);
            if let Some(fatal) = outcome.fatal {
                total.fatal = Some(fatal);
            }
            if outcome.retry_later.is_empty() || total.fatal.is_some() || round == UPLOAD_ROUNDS {
                total
                    .failures
                    .extend(outcome.retry_later.into_iter().map(|(_, failure)| failure));
                break;
            }
            tracing::info!(
                objects = outcome.retry_later.len(),
                round,
                "uploading again what failed transiently"
            );
            uploads = outcome
                .retry_later
                .into_iter()
                .map(|(upload, _)| upload)
                .collect();
        }
        total.ok.sort();
        total
    }

    async fn round(&self, uploads: Vec<Upload>) -> PhaseOutcome {
        let mut tasks = tokio::task::JoinSet::new();
        let mut outcome = PhaseOutcome::default();
        for upload in uploads {
            // Finished tasks are collected as we go: a finished task keeps its whole
            // allocation (sized for the provider call's future, kilobytes) until joined,
            // so collecting only at the end held one per object, growing a cold deploy of
            // 7,800 files to S3 by about 100 MB.
            while let Some(joined) = tasks.try_join_next() {
                record(&mut outcome, joined);
            }
            let (provider, limit, counters, abort, progress) = (
                Arc::clone(self.provider),
                Arc::clone(self.limit),
                self.counters.clone(),
                Arc::clone(self.abort),
                Arc::clone(self.progress),
            );
            // Wait here, not in the task: one waiter instead of thousands (see adaptive).
            let permit = limit.acquire().await;
            tasks.spawn(async move {
                let _permit = permit;
                if abort.load(Ordering::Relaxed) {
                    return (upload, None);
                }
                let (throttled_before, retried_before) = (counters.throttles(), counters.retries());
                let started = Instant::now();
                let result = provider.put(upload.object.put_request()).await;
                if counters.throttles() > throttled_before {
                    limit.on_throttle();
                } else if result.is_ok() && counters.retries() == retried_before {
                    // Only calls no retry overlapped measure the provider's latency: a
                    // retried call's time is mostly backoff and the failed attempts (a
                    // reset, a stall), and counting it collapsed concurrency under
                    // network faults (32 to 4 at 30 % faults).
                    limit.on_success(started.elapsed());
                }
                if let Err(err) = &result
                    && err.is_fatal_for_provider()
                {
                    abort.store(true, Ordering::Relaxed);
                }
                progress.object_done(upload.object.size);
                (upload, Some(result))
            });
        }
        while let Some(joined) = tasks.join_next().await {
            record(&mut outcome, joined);
        }
        outcome
    }
}

/// What one upload task returns: the upload, and its result unless it was skipped
/// because the deploy stopped.
type UploadResult = (Upload, Option<Result<ObjectMeta, ProviderError>>);

/// Adds one finished upload task to the phase's outcome.
fn record(outcome: &mut PhaseOutcome, joined: Result<UploadResult, tokio::task::JoinError>) {
    match joined {
        Ok((upload, Some(Ok(_)))) => {
            outcome.bytes += upload.object.size;
            outcome.ok.push(upload.object.key);
        }
        Ok((upload, Some(Err(err)))) if err.is_fatal_for_provider() => {
            outcome.fatal.get_or_insert(err);
            outcome.failures.push(FileMessage {
                path: upload.object.key,
                message: "not uploaded: the deploy stopped".into(),
            });
        }
        Ok((upload, Some(Err(err @ ProviderError::RetriesExhausted { .. })))) => {
            let failure = FileMessage {
                path: upload.object.key.clone(),
                message: err.to_string(),
            };
            outcome.retry_later.push((upload, failure));
        }
        Ok((upload, Some(Err(err)))) => {
            outcome.failures.push(FileMessage {
                path: upload.object.key,
                message: err.to_string(),
            });
        }
        Ok((upload, None)) => {
            outcome.failures.push(FileMessage {
                path: upload.object.key,
                message: "not uploaded: the deploy stopped".into(),
            });
        }
        Err(join_error) => {
            outcome.failures.push(FileMessage {
                path: "<task>".into(),
                message: format!("upload task failed: {join_error}"),
            });
        }
    }
}
