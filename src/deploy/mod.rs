//! The deploy engine behind `edgeship deploy` (and, later, the HTTP deploy API).
//!
//! 1. Process the directory with the pipeline (cached work is not redone).
//! 2. Load the remote manifest (`deploy.manifest_key`); without one, list the site and
//!    compare stored hash metadata. After an interrupted deploy (its in-progress marker
//!    is still there), check planned uploads one by one, so a rerun uploads only what is
//!    missing.
//! 3. Plan ([`plan::Plan`]): uploads with reasons, unchanged, stale. `--dry-run` stops here.
//! 4. Execute with adaptive concurrency: non-HTML objects, then HTML (a page never points
//!    at an asset that is not there yet), then the manifest (it never names an object that
//!    is not stored), then stale deletes (only with `--delete`, refused above
//!    `--max-deletes`), then a purge of changed paths.
//!
//! Provider calls go through retry (backoff + full jitter, Retry-After) and a circuit
//! breaker; a provider that is down or rejects our credentials stops the deploy at once
//! with one error. One deploy per site at a time ([`lock::SiteLock`]).

pub mod adaptive;
pub mod job;
pub mod lock;
pub mod plan;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use edgeship_providers::faults::Faulty;
use edgeship_providers::local::LocalProvider;
use edgeship_providers::memory::MemoryProvider;
use edgeship_providers::object::META_HASH;
use edgeship_providers::{ProviderError, ProviderExt, PutRequest, SharedProvider};
use serde::Serialize;

use crate::config::{Config, ConfigError, ResolvedSite};
use crate::pipeline::Pipeline;
use crate::pipeline::build::{self, BuildError, BuildReport, FileMessage, NoProgress};
use crate::pipeline::hash::ContentHash;
use crate::pipeline::manifest::Manifest;
use crate::pipeline::rules::RuleSet;
use crate::purge::job::{BatchStatus, JobStore, PurgeJob};
use adaptive::AdaptiveLimit;
use lock::{LockError, SiteLock};
use plan::{Plan, Upload};

/// The key of the marker a deploy stores while it runs; finding it means the last deploy
/// was interrupted.
pub const IN_PROGRESS_KEY: &str = ".edgeship/deploy-in-progress";

/// Errors that stop a deploy.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeployError {
    /// Configuration is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The input could not be processed.
    #[error(transparent)]
    Build(#[from] BuildError),
    /// Another deploy of the site is running.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// A safety check refused the deploy; nothing was changed.
    #[error("refused: {0}")]
    Refused(String),
    /// The provider is unusable (down, or credentials rejected); the deploy stopped.
    #[error("deploy stopped: {0}")]
    Provider(#[from] ProviderError),
    /// The remote manifest exists but cannot be read.
    #[error(
        "the site's manifest at `{key}` is unreadable ({message}); remove it to deploy everything again"
    )]
    BadManifest {
        /// Its key.
        key: String,
        /// What is wrong.
        message: String,
    },
}

impl DeployError {
    /// The process exit code for this error (see the CLI docs).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => 2,
            Self::Build(BuildError::Scan(_)) => 2,
            Self::Build(err) if err.is_refusal() => 3,
            Self::Lock(LockError::Held { .. }) | Self::Refused(_) => 3,
            Self::Provider(
                ProviderError::Unauthenticated { .. }
                | ProviderError::PermissionDenied { .. }
                | ProviderError::Misconfigured { .. },
            ) => 2,
            _ => 1,
        }
    }
}

/// What to deploy and how.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// The directory to publish.
    pub input: PathBuf,
    /// Plan only.
    pub dry_run: bool,
    /// Delete stale objects.
    pub delete: bool,
    /// Refuse when more stale files than this would be deleted.
    pub max_deletes: usize,
    /// Uploads in flight at the start.
    pub concurrency: usize,
}

/// Receives deploy progress (a progress bar on a terminal, plain lines otherwise).
pub trait DeployProgress: Send + Sync {
    /// A phase starts with this much work.
    fn phase(&self, name: &str, objects: u64, bytes: u64);
    /// One object of `bytes` is done.
    fn object_done(&self, bytes: u64);
}

impl DeployProgress for NoProgress {
    fn phase(&self, _: &str, _: u64, _: u64) {}
    fn object_done(&self, _: u64) {}
}

/// Counts of the plan, for the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PlanSummary {
    /// Objects to upload.
    pub uploads: usize,
    /// Bytes to upload.
    pub upload_bytes: u64,
    /// Objects already stored as wanted.
    pub unchanged: usize,
    /// Objects an interrupted deploy had already stored.
    pub resumed: usize,
    /// Stale files (paths) on the site.
    pub stale_files: usize,
    /// Stale objects (keys) on the site.
    pub stale_objects: usize,
}

/// What a deploy did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeployReport {
    /// The site.
    pub site: String,
    /// The provider, as shown in logs.
    pub provider: String,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// The pipeline's report (files, bytes before and after, savings, cache hits).
    pub build: BuildReport,
    /// The plan's counts.
    pub plan: PlanSummary,
    /// The planned uploads (only filled for dry runs).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub planned: Vec<Upload>,
    /// Objects uploaded.
    pub uploaded: u64,
    /// Bytes uploaded.
    pub uploaded_bytes: u64,
    /// Objects deleted.
    pub deleted: u64,
    /// Items purged from the CDN (wildcards first, then paths).
    pub purged_paths: Vec<String>,
    /// The purge job, when there was something to purge.
    pub purge_job: Option<String>,
    /// Retries of provider calls.
    pub retries: u64,
    /// Provider calls that were throttled.
    pub throttles: u64,
    /// The concurrency at the end (it adapts during the deploy).
    pub final_concurrency: usize,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Objects that could not be uploaded; the deploy exits 1 when there are any.
    pub failures: Vec<FileMessage>,
}

/// The provider of a site as configured, without the retry/breaker stack.
pub fn open_provider(site: &ResolvedSite) -> SharedProvider {
    let base: SharedProvider = match site.provider.as_str() {
        "memory" => Arc::new(MemoryProvider::new(&format!("memory:{}", site.name))),
        // The SDK configuration loads on the first call (it is async); settings were
        // checked when the config was loaded.
        #[cfg(feature = "aws")]
        "aws" => Arc::new(
            edgeship_providers::aws::AwsProvider::new(
                &site.name,
                site.aws.clone().unwrap_or_default(),
            )
            .with_pool_size(site.connections),
        ),
        _ => Arc::new(LocalProvider::new(&site.root)),
    };
    match &site.faults {
        Some(faults) => Arc::new(Faulty::new(base, faults.clone())),
        None => base,
    }
}

/// A configured deploy of one site.
pub struct Deployer {
    config: Config,
    site: ResolvedSite,
    raw: SharedProvider,
    cache: Option<crate::cache::Cache>,
}

impl std::fmt::Debug for Deployer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployer")
            .field("site", &self.site.name)
            .field("provider", &self.raw.to_string())
            .finish()
    }
}

impl Deployer {
    /// A deployer for `site` using its configured provider.
    pub fn new(config: &Config, site: &str) -> Result<Self, DeployError> {
        let site = config.site(site)?;
        let raw = open_provider(&site);
        Ok(Self {
            config: config.clone(),
            site,
            raw,
            cache: None,
        })
    }

    /// A deployer for `site` using the given provider (tests, the HTTP service).
    pub fn with_provider(
        config: &Config,
        site: &str,
        provider: SharedProvider,
    ) -> Result<Self, DeployError> {
        let site = config.site(site)?;
        Ok(Self {
            config: config.clone(),
            site,
            raw: provider,
            cache: None,
        })
    }

    /// Uses the cache layer: each deploy records what it saves for the analytics report
    /// (see [`crate::analytics`]), and the site's manifest is kept there (see
    /// [`read_manifest_cached`]). Without it nothing is recorded and the manifest is
    /// always read from the provider.
    pub fn with_cache(mut self, cache: crate::cache::Cache) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Runs a deploy: takes the site's lock, deploys, releases the lock (also when the
    /// deploy fails).
    pub async fn run(
        &self,
        options: &DeployOptions,
        progress: Arc<dyn DeployProgress>,
    ) -> Result<DeployReport, DeployError> {
        let lock = if options.dry_run {
            None
        } else {
            Some(self.lock().await?)
        };
        let result = self.run_locked(options, progress).await;
        if let Some(lock) = lock {
            lock.release().await;
        }
        result
    }

    async fn run_locked(
        &self,
        options: &DeployOptions,
        progress: Arc<dyn DeployProgress>,
    ) -> Result<DeployReport, DeployError> {
        let started = Instant::now();
        let deploy = &self.config.deploy;
        let (provider, retries, throttles) = edgeship_providers::wrap(
            Arc::clone(&self.raw),
            deploy.retry.clone(),
            deploy.breaker.clone(),
        );

        // 1. Process (CPU work on the pipeline's pool, off the async runtime).
        // 1 and 2 at once: local processing and reading what the site has are independent.
        let manifest_key = self.config.deploy.manifest_key.clone();
        let (processed, remote_state) = tokio::join!(
            self.process(&options.input, true),
            self.remote_state(&provider, &manifest_key)
        );
        let (mut assets, mut build_report) = processed?;
        let (remote, interrupted) = remote_state?;
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            files = assets.len(),
            "processed and remote manifest read"
        );
        if let Some(remote) = &remote
            && !interrupted
            && assets.len() == remote.assets.len()
            && assets
                .iter()
                .all(|a| remote.assets.get(&a.path) == Some(&a.manifest_entry()))
        {
            // The site's manifest already describes exactly the local tree, and it never
            // names an object that is not stored: nothing to upload, delete or purge.
            let objects: usize = assets.iter().map(|a| 1 + a.variants.len()).sum();
            return Ok(DeployReport {
                site: self.site.name.clone(),
                provider: self.raw.to_string(),
                dry_run: options.dry_run,
                build: build_report,
                plan: PlanSummary {
                    unchanged: objects,
                    ..PlanSummary::default()
                },
                final_concurrency: options.concurrency,
                duration_ms: started.elapsed().as_millis() as u64,
                ..DeployReport::default()
            });
        }
        let desired = plan::desired_objects(&assets);
        let limit = Arc::new(AdaptiveLimit::new(
            options.concurrency,
            options.concurrency.saturating_mul(4).min(512),
        ));
        let mut stored = BTreeMap::new();
        let mut listed_stale = Vec::new();
        match &remote {
            None => {
                // No manifest: a first deploy, or objects put there by other tools.
                let desired_keys: BTreeSet<&str> = desired.iter().map(|o| o.key.as_str()).collect();
                for meta in provider.list_all("").await? {
                    if meta.key.starts_with(".edgeship/") {
                        continue;
                    }
                    if !desired_keys.contains(meta.key.as_str()) {
                        listed_stale.push(meta.key.clone());
                    }
                    stored.insert(meta.key.clone(), meta);
                }
            }
            Some(remote) if interrupted => {
                tracing::info!(site = %self.site.name, "the last deploy was interrupted; checking what it already uploaded");
                let candidates = Plan::build(desired.clone(), remote, &BTreeMap::new()).uploads;
                stored = self
                    .head_all(
                        &provider,
                        &limit,
                        candidates.iter().map(|u| u.object.key.clone()).collect(),
                    )
                    .await?;
            }
            Some(_) => {}
        }
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "remote state loaded"
        );
        let remote = remote.unwrap_or_default();
        let make_plan = |desired| {
            let mut plan = Plan::build(desired, &remote, &stored);
            if !listed_stale.is_empty() {
                plan.stale_paths = listed_stale.clone();
                plan.stale_keys = listed_stale.clone();
            }
            plan
        };
        let mut plan = make_plan(desired);
        if plan.uploads.iter().any(|u| !u.object.source.exists()) {
            // The stat index pointed at processing results someone deleted (a cleared
            // cache): process again from the files themselves.
            tracing::info!("processing cache entries are missing; processing the files again");
            (assets, build_report) = self.process(&options.input, false).await?;
            plan = make_plan(plan::desired_objects(&assets));
        }

        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            uploads = plan.uploads.len(),
            "planned"
        );
        let mut report = DeployReport {
            site: self.site.name.clone(),
            provider: self.raw.to_string(),
            dry_run: options.dry_run,
            build: build_report,
            plan: PlanSummary {
                uploads: plan.uploads.len(),
                upload_bytes: plan.upload_bytes(),
                unchanged: plan.unchanged,
                resumed: plan.resumed,
                stale_files: plan.stale_paths.len(),
                stale_objects: plan.stale_keys.len(),
            },
            ..DeployReport::default()
        };
        if options.delete && plan.stale_paths.len() > options.max_deletes {
            return Err(DeployError::Refused(format!(
                "--delete would remove {} stale files, more than --max-deletes {}; nothing was changed (raise --max-deletes if that is intended)",
                plan.stale_paths.len(),
                options.max_deletes
            )));
        }
        if options.dry_run {
            report.planned = plan.uploads;
            report.final_concurrency = options.concurrency;
            report.duration_ms = started.elapsed().as_millis() as u64;
            return Ok(report);
        }

        // 4. Execute.
        let has_work = !plan.uploads.is_empty() || (options.delete && !plan.stale_keys.is_empty());
        if has_work {
            provider
                .put(PutRequest::bytes(
                    IN_PROGRESS_KEY,
                    format!("{{\"started\":{}}}", unix_now()),
                ))
                .await?;
        }
        let (assets_phase, html_phase): (Vec<Upload>, Vec<Upload>) =
            plan.uploads.drain(..).partition(|u| !u.object.is_html);
        let mut succeeded: BTreeSet<String> = BTreeSet::new();
        let abort = Arc::new(AtomicBool::new(false));
        for (name, phase) in [("assets", assets_phase), ("html", html_phase)] {
            if phase.is_empty() {
                continue;
            }
            if !report.failures.is_empty() {
                // A page must never go live pointing at an asset that failed to upload.
                for upload in &phase {
                    report.failures.push(FileMessage { path: upload.object.key.clone(), message: "not uploaded: an asset failed to upload, so pages wait for the next deploy".into() });
                }
                continue;
            }
            progress.phase(
                name,
                phase.len() as u64,
                phase.iter().map(|u| u.object.size).sum(),
            );
            let outcome = self
                .upload_phase(
                    &provider,
                    &limit,
                    &throttles,
                    &abort,
                    phase,
                    Arc::clone(&progress),
                )
                .await;
            report.uploaded += outcome.ok.len() as u64;
            report.uploaded_bytes += outcome.bytes;
            succeeded.extend(outcome.ok);
            report.failures.extend(outcome.failures);
            if let Some(fatal) = outcome.fatal {
                return Err(DeployError::Provider(fatal));
            }
        }

        // The manifest: what is stored now. Assets whose objects all went up get their
        // new entry; the others keep their old one (their old objects are still there);
        // stale files stay listed until they are deleted.
        let mut manifest = Manifest::default();
        let failed: BTreeSet<&str> = report.failures.iter().map(|f| f.path.as_str()).collect();
        for asset in &assets {
            let entry = asset.manifest_entry();
            let keys = plan::entry_keys(&asset.path, &entry);
            // Objects not uploaded were unchanged (already stored) unless they failed.
            let all_stored = keys.iter().all(|k| !failed.contains(k.as_str()));
            if all_stored {
                manifest.assets.insert(asset.path.clone(), entry);
            } else if let Some(old) = remote.assets.get(&asset.path) {
                manifest.assets.insert(asset.path.clone(), old.clone());
            }
        }
        let delete_now =
            options.delete && report.failures.is_empty() && !plan.stale_keys.is_empty();
        if !delete_now {
            for path in &plan.stale_paths {
                if let Some(old) = remote.assets.get(path) {
                    manifest.assets.insert(path.clone(), old.clone());
                }
            }
        }
        let manifest_written = has_work || remote.assets != manifest.assets;
        if manifest_written {
            let json = manifest.to_compact_json();
            let hash = ContentHash::of(&json);
            let mut put = PutRequest::bytes(manifest_key.clone(), json);
            put.content_type = Some("application/json".into());
            put.cache_control = Some("no-store".into());
            put.metadata.insert(META_HASH.into(), hash.to_string());
            provider.put(put).await?;
            if let Some(cache) = &self.cache {
                store_cached_manifest(cache, &self.site.name, hash, &manifest).await;
            }
        }
        if delete_now {
            progress.phase("delete", plan.stale_keys.len() as u64, 0);
            provider.delete_all(&plan.stale_keys).await?;
            report.deleted = plan.stale_keys.len() as u64;
        }

        // Purge what may be cached: changed paths and deleted ones (new paths never were).
        let mut purge_paths: BTreeSet<String> = plan
            .changed_paths
            .iter()
            .filter(|p| succeeded.contains(*p))
            .cloned()
            .collect();
        if delete_now {
            purge_paths.extend(plan.stale_paths.iter().cloned());
        }
        let site_paths: BTreeSet<String> = manifest
            .assets
            .keys()
            .chain(&plan.stale_paths)
            .cloned()
            .collect();
        if let Some(job) = self.purge(&provider, &purge_paths, &site_paths).await {
            let reduction = &job.plan.reduction;
            report.purged_paths = reduction
                .wildcards
                .iter()
                .chain(&reduction.paths)
                .chain(&reduction.prefixes)
                .cloned()
                .collect();
            for batch in job
                .batches
                .iter()
                .filter(|b| b.status == BatchStatus::Failed)
            {
                report.failures.push(FileMessage {
                    path: format!("purge job {}", job.id),
                    message: format!(
                        "{}; the site is deployed but may be served stale: rerun the purge",
                        batch.error.as_deref().unwrap_or("failed")
                    ),
                });
            }
            report.purge_job = Some(job.id);
        }
        if has_work && report.failures.is_empty() {
            provider.delete_many(&[IN_PROGRESS_KEY.to_string()]).await?;
        }
        if let Some(cache) = self.cache.as_ref().filter(|_| manifest_written) {
            // Shipped: files whose new entry went live (every object stored) and that
            // uploaded something now; a file that failed in part counts when it goes up.
            let shipped: Vec<&crate::pipeline::manifest::ManifestEntry> = assets
                .iter()
                .filter_map(|asset| {
                    let entry = manifest.assets.get(&asset.path)?;
                    let uploaded = plan::entry_keys(&asset.path, entry)
                        .iter()
                        .any(|key| succeeded.contains(key));
                    (uploaded && *entry == asset.manifest_entry()).then_some(entry)
                })
                .collect();
            if let Err(err) =
                crate::analytics::record_deploy(cache, &self.site.name, &manifest, &shipped).await
            {
                tracing::warn!(site = %self.site.name, error = %err, "deploy analytics not recorded");
            }
        }
        tracing::debug!(elapsed_ms = started.elapsed().as_millis() as u64, "done");
        report.retries = retries.load(Ordering::Relaxed);
        report.throttles = throttles.load(Ordering::Relaxed);
        report.final_concurrency = limit.current();
        report.duration_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    async fn process(
        &self,
        input: &std::path::Path,
        use_index: bool,
    ) -> Result<(Vec<crate::pipeline::ProcessedAsset>, BuildReport), DeployError> {
        let rules = RuleSet::new(&self.site.rules).map_err(|message| ConfigError::Value {
            key: format!("sites.{}.rules", self.site.name),
            message,
        })?;
        let mut pipeline = Pipeline::new(&self.config.pipeline, rules, &self.config.cache_dir)
            .map_err(|message| ConfigError::Value {
                key: "pipeline".into(),
                message,
            })?;
        if !use_index {
            pipeline = pipeline.without_index();
        }
        let workers = self.config.pipeline.workers;
        let input = input.to_path_buf();
        let result = tokio::task::spawn_blocking(move || -> Result<_, BuildError> {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(workers)
                .build()
                .map_err(|e| BuildError::Io {
                    path: PathBuf::from("<worker pool>"),
                    source: std::io::Error::other(e),
                })?;
            pool.install(|| build::process_dir(&pipeline, &input, &NoProgress))
        })
        .await
        .map_err(|e| BuildError::Io {
            path: PathBuf::from("<pipeline>"),
            source: std::io::Error::other(e),
        })??;
        Ok(result)
    }

    /// Takes the site's deploy lock: in Redis when the cache layer has one (so deploys from
    /// several machines exclude each other), else a lock file under the data directory.
    async fn lock(&self) -> Result<DeployLock, DeployError> {
        let ttl = Duration::from_secs(self.config.deploy.lock_ttl_secs);
        if self.config.cache.redis_url.is_some() {
            let cache = crate::cache::Cache::from_config(&self.config.cache).map_err(|e| {
                DeployError::Refused(format!(
                    "cannot use the cache layer for the deploy lock: {e}"
                ))
            })?;
            let key = cache.site(&self.site.name).deploy_lock();
            return match crate::cache::CacheLock::acquire(&cache, key, ttl).await {
                Ok(Some(lock)) => Ok(DeployLock::Cache(lock)),
                Ok(None) => Err(DeployError::Refused(format!(
                    "another deploy of site `{}` is running (its lock is held in Redis; it expires within {} s)",
                    self.site.name,
                    ttl.as_secs()
                ))),
                Err(e) => Err(DeployError::Refused(format!(
                    "cannot take the deploy lock: {e}"
                ))),
            };
        }
        Ok(DeployLock::File(SiteLock::acquire(
            &self.config.data_dir.join("locks"),
            &self.site.name,
            ttl,
        )?))
    }

    /// The site's manifest (if any) and whether an interrupted deploy left its marker.
    async fn remote_state(
        &self,
        provider: &SharedProvider,
        manifest_key: &str,
    ) -> Result<(Option<Manifest>, bool), DeployError> {
        let cache = self.cache.as_ref().map(|c| (c, self.site.name.as_str()));
        let manifest = read_manifest_cached(provider, manifest_key, cache).await?;
        let interrupted = provider.get_opt(IN_PROGRESS_KEY).await?.is_some();
        Ok((manifest, interrupted))
    }

    async fn head_all(
        &self,
        provider: &SharedProvider,
        limit: &Arc<AdaptiveLimit>,
        keys: Vec<String>,
    ) -> Result<BTreeMap<String, edgeship_providers::ObjectMeta>, DeployError> {
        let mut tasks = tokio::task::JoinSet::new();
        for key in keys {
            let provider = Arc::clone(provider);
            // Wait here, not in the task: one waiter instead of thousands (see adaptive).
            let permit = limit.acquire().await;
            tasks.spawn(async move {
                let _permit = permit;
                (key.clone(), provider.head(&key).await)
            });
        }
        let mut stored = BTreeMap::new();
        while let Some(joined) = tasks.join_next().await {
            let Ok((key, result)) = joined else { continue };
            match result {
                Ok(meta) => {
                    stored.insert(key, meta);
                }
                Err(ProviderError::NotFound { .. }) => {}
                Err(err) if err.is_fatal_for_provider() => return Err(err.into()),
                // Unknown state: upload it again, which is always safe.
                Err(_) => {}
            }
        }
        Ok(stored)
    }

    /// Uploads a phase. Objects whose calls kept failing transiently (retries exhausted)
    /// get up to [`UPLOAD_ROUNDS`] rounds in all, so a provider failing a large share of
    /// calls still ends with every object stored; a fatal error stops at once.
    async fn upload_phase(
        &self,
        provider: &SharedProvider,
        limit: &Arc<AdaptiveLimit>,
        throttles: &Arc<AtomicU64>,
        abort: &Arc<AtomicBool>,
        mut uploads: Vec<Upload>,
        progress: Arc<dyn DeployProgress>,
    ) -> PhaseOutcome {
        let mut total = PhaseOutcome::default();
        for round in 1..=UPLOAD_ROUNDS {
            let outcome = self
                .upload_round(
                    provider,
                    limit,
                    throttles,
                    abort,
                    uploads,
                    Arc::clone(&progress),
                )
                .await;
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

    async fn upload_round(
        &self,
        provider: &SharedProvider,
        limit: &Arc<AdaptiveLimit>,
        throttles: &Arc<AtomicU64>,
        abort: &Arc<AtomicBool>,
        uploads: Vec<Upload>,
        progress: Arc<dyn DeployProgress>,
    ) -> PhaseOutcome {
        let mut tasks = tokio::task::JoinSet::new();
        for upload in uploads {
            let (provider, limit, throttles, abort, progress) = (
                Arc::clone(provider),
                Arc::clone(limit),
                Arc::clone(throttles),
                Arc::clone(abort),
                Arc::clone(&progress),
            );
            // Wait here, not in the task: one waiter instead of thousands (see adaptive).
            let permit = limit.acquire().await;
            tasks.spawn(async move {
                let _permit = permit;
                if abort.load(Ordering::Relaxed) {
                    return (upload, None);
                }
                let throttled_before = throttles.load(Ordering::Relaxed);
                let started = Instant::now();
                let result = provider.put(upload.object.put_request()).await;
                if throttles.load(Ordering::Relaxed) > throttled_before {
                    limit.on_throttle();
                } else if result.is_ok() {
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
        let mut outcome = PhaseOutcome::default();
        while let Some(joined) = tasks.join_next().await {
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
        outcome
    }

    /// Purges `paths` (site paths, no leading `/`: changed and deleted ones) through the
    /// purge engine, as a job: reduced to the fewest items the provider allows, batched,
    /// recorded. Returns the job; a batch that failed is reported, not fatal, since the
    /// site itself is deployed by then.
    async fn purge(
        &self,
        provider: &SharedProvider,
        paths: &BTreeSet<String>,
        site_paths: &BTreeSet<String>,
    ) -> Option<PurgeJob> {
        if paths.is_empty() {
            return None;
        }
        let caps = provider.capabilities();
        let plan = crate::purge::plan::plan_paths(
            paths,
            site_paths,
            &caps,
            self.config.purge.max_collateral_share,
        );
        let mut job = PurgeJob::new(&self.site.name, &self.raw.to_string(), "deploy", plan);
        let store = match JobStore::for_config(&self.config) {
            Ok(store) => store,
            Err(err) => {
                tracing::warn!(error = %err, "purge job not recorded");
                JobStore::Dir(std::env::temp_dir().join("edgeship-jobs"))
            }
        };
        let options = crate::purge::job::RunOptions::from_config(&self.config.purge, false);
        crate::purge::job::run(provider, &store, &mut job, &options).await;
        Some(job)
    }
}

/// A held deploy lock of either kind.
#[derive(Debug)]
enum DeployLock {
    File(SiteLock),
    Cache(crate::cache::CacheLock),
}

impl DeployLock {
    async fn release(self) {
        match self {
            Self::File(lock) => drop(lock),
            Self::Cache(lock) => {
                if let Err(err) = lock.release().await {
                    tracing::warn!(error = %err, "could not release the deploy lock; it expires by itself");
                }
            }
        }
    }
}

/// Rounds of uploading what failed transiently, the first included.
pub const UPLOAD_ROUNDS: u32 = 3;

#[derive(Debug, Default)]
struct PhaseOutcome {
    ok: Vec<String>,
    bytes: u64,
    failures: Vec<FileMessage>,
    /// Uploads whose retries ran out on transient errors, with their failure.
    retry_later: Vec<(Upload, FileMessage)>,
    fatal: Option<ProviderError>,
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// The manifest stored on a site at `key`, if any.
pub async fn read_manifest(
    provider: &SharedProvider,
    key: &str,
) -> Result<Option<Manifest>, DeployError> {
    Ok(read_manifest_hashed(provider, key)
        .await?
        .map(|(_, manifest)| manifest))
}

/// How long a manifest is kept in the cache layer without being used.
pub const MANIFEST_CACHE_TTL: std::time::Duration = std::time::Duration::from_secs(7 * 86_400);

/// A site's manifest as kept in the cache layer, with the hash of the stored JSON it
/// was read from (or written as). Written borrowed (`M = &Manifest`), read owned.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct CachedManifest<M> {
    hash: ContentHash,
    manifest: M,
}

/// Reads a site's manifest through the cache layer: a `HEAD` of the stored manifest
/// gives its hash (the `edgeship-hash` metadata deploys write), and when the cached copy
/// has that hash it is used without downloading or parsing the manifest again (a large
/// site's manifest is megabytes). Otherwise it is read from the provider and cached.
/// A manifest written by another tool, without the hash, is always read from the
/// provider. Cache failures fall back to the provider; they never fail the read.
pub async fn read_manifest_cached(
    provider: &SharedProvider,
    key: &str,
    cache: Option<(&crate::cache::Cache, &str)>,
) -> Result<Option<Manifest>, DeployError> {
    let Some((cache, site)) = cache else {
        return read_manifest(provider, key).await;
    };
    let cache_key = cache.site(site).manifest();
    let stored_hash = match provider.head(key).await {
        Ok(meta) => meta.metadata.get(META_HASH).cloned(),
        Err(ProviderError::NotFound { .. }) => {
            if let Err(err) = cache.delete(&cache_key).await {
                tracing::debug!(error = %err, "cached manifest not removed");
            }
            return Ok(None);
        }
        Err(err) => return Err(err.into()),
    };
    if let Some(hash) = &stored_hash {
        match cache.get::<CachedManifest<Manifest>>(&cache_key).await {
            Ok(Some(cached)) if cached.hash.as_str() == hash => return Ok(Some(cached.manifest)),
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(site, error = %err, "cached manifest unreadable; reading it from the provider")
            }
        }
    }
    let Some((hash, manifest)) = read_manifest_hashed(provider, key).await? else {
        return Ok(None);
    };
    if stored_hash.as_deref() == Some(hash.as_str()) {
        store_cached_manifest(cache, site, hash, &manifest).await;
    }
    Ok(Some(manifest))
}

async fn store_cached_manifest(
    cache: &crate::cache::Cache,
    site: &str,
    hash: ContentHash,
    manifest: &Manifest,
) {
    let key = cache.site(site).manifest();
    let value = CachedManifest { hash, manifest };
    if let Err(err) = cache.set(&key, &value, Some(MANIFEST_CACHE_TTL)).await {
        tracing::warn!(site, error = %err, "manifest not cached");
    }
}

/// The stored manifest and the blake3 hash of its bytes.
async fn read_manifest_hashed(
    provider: &SharedProvider,
    key: &str,
) -> Result<Option<(ContentHash, Manifest)>, DeployError> {
    let Some((_, bytes)) = provider.get_opt(key).await? else {
        return Ok(None);
    };
    // Hashing and parsing a large manifest is CPU work: off the async workers.
    tokio::task::spawn_blocking(move || {
        Manifest::from_json(&bytes).map(|manifest| (ContentHash::of(&bytes), manifest))
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|parsed| parsed)
    .map(Some)
    .map_err(|message| DeployError::BadManifest {
        key: key.to_string(),
        message,
    })
}

/// A site's provider inside the standard retry and circuit-breaker stack.
pub fn provider_stack(config: &Config, site: &ResolvedSite) -> SharedProvider {
    edgeship_providers::wrap(
        open_provider(site),
        config.deploy.retry.clone(),
        config.deploy.breaker.clone(),
    )
    .0
}
