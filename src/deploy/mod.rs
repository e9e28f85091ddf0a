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
//!    `--max-deletes`), then a purge of changed paths. Delta objects (RFC 9842) no manifest
//!    names are deleted always: those an interrupted deploy left (its marker lists them)
//!    before the uploads, those the new manifest drops after it is stored.
//!
//! Provider calls go through retry (backoff + full jitter, Retry-After) and a circuit
//! breaker; a provider that is down or rejects our credentials stops the deploy at once
//! with one error. One deploy per site at a time ([`lock::SiteLock`]).

pub mod adaptive;
pub mod config;
pub mod dictionaries;
pub mod execute;
pub mod finish;
pub mod history;
pub mod job;
pub mod lock;
pub mod plan;
pub mod remote;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgeship_providers::{ProviderError, SharedProvider};
use serde::Serialize;

use crate::cache::Cache;
use crate::config::{Config, ConfigError};
use crate::home::StateHome;
use crate::jobs::JobStore;
use crate::pipeline::build::{self, BuildError, BuildReport, FileMessage, NoProgress};
use crate::site::{ManifestError, Site, Sites, StackCounters};
use adaptive::AdaptiveLimit;
pub use execute::UPLOAD_ROUNDS;
use lock::{LockError, SiteLock};
use plan::{Plan, Upload};
pub use remote::IN_PROGRESS_KEY;
use remote::RemoteState;

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
    /// Another deploy of the site holds its lock in Redis; nothing was changed.
    #[error(
        "refused: another deploy of site `{site}` is running (its lock is held in Redis; it expires within {ttl_secs} s)"
    )]
    Busy {
        /// The site.
        site: String,
        /// The lock's lifetime.
        ttl_secs: u64,
    },
    /// The provider is unusable (down, or credentials rejected); the deploy stopped.
    #[error("deploy stopped: {0}{hint}", hint = rerun_hint(.0))]
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

/// What to do after a deploy stopped on `err`: when the provider kept failing
/// transiently (retries ran out, the breaker opened), deploy again; other errors say what
/// to fix themselves.
fn rerun_hint(err: &ProviderError) -> &'static str {
    match err {
        ProviderError::RetriesExhausted { .. }
        | ProviderError::CircuitOpen { .. }
        | ProviderError::Retryable { .. }
        | ProviderError::Throttled { .. } => {
            "; deploy again once it answers: what this deploy stored is checked and only the rest is uploaded"
        }
        _ => "",
    }
}

impl From<ManifestError> for DeployError {
    fn from(err: ManifestError) -> Self {
        match err {
            ManifestError::Provider(err) => Self::Provider(err),
            ManifestError::Unreadable { key, message } => Self::BadManifest { key, message },
        }
    }
}

impl DeployError {
    /// The error as told to a remote caller (an API client): what happened and what to
    /// do, without this machine's paths or process ids (the service log has those).
    pub fn public_message(&self) -> String {
        match self {
            Self::Lock(LockError::Held { site, info, .. }) => format!(
                "another deploy of site `{site}` is running (since {} s ago; its lock expires in {} s); wait for it and deploy again",
                crate::jobs::unix_now().saturating_sub(info.since),
                info.expires.saturating_sub(crate::jobs::unix_now())
            ),
            Self::Lock(LockError::Io { .. }) => {
                "the deploy lock cannot be taken on the server (see the service log); nothing was deployed".into()
            }
            other => other.to_string(),
        }
    }

    /// Whether another deploy of the site holds its lock (the deploy can simply be run
    /// again later).
    pub fn is_site_busy(&self) -> bool {
        matches!(self, Self::Lock(LockError::Held { .. }) | Self::Busy { .. })
    }

    /// The process exit code for this error (see the CLI docs).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Config(_) => 2,
            Self::Build(BuildError::Scan(_)) => 2,
            Self::Build(err) if err.is_refusal() => 3,
            Self::Lock(LockError::Held { .. }) | Self::Refused(_) | Self::Busy { .. } => 3,
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
    /// Delta objects an interrupted deploy left that no manifest names (deleted).
    pub orphan_deltas: usize,
    /// Delta objects the site's manifest names that this deploy no longer stores
    /// (deleted once its manifest is stored, without `--delete` too).
    pub dropped_deltas: usize,
}

impl PlanSummary {
    /// The counts of `plan`.
    pub fn of(plan: &Plan) -> Self {
        Self {
            uploads: plan.uploads.len(),
            upload_bytes: plan.upload_bytes(),
            unchanged: plan.unchanged,
            resumed: plan.resumed,
            stale_files: plan.stale_paths.len(),
            stale_objects: plan.stale_keys.len(),
            orphan_deltas: plan.orphan_deltas.len(),
            dropped_deltas: plan.dropped_deltas.len(),
        }
    }
}

/// What a deploy did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct DeployReport {
    /// The deploy's id (its record in the site's history, when it changed anything).
    pub id: String,
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
    /// Delta keys an interrupted deploy listed that no manifest names, deleted before the
    /// uploads whether or not it had stored them (an edge rule picking deltas by path
    /// could otherwise serve them).
    pub orphan_deltas_removed: u64,
    /// Delta objects the new manifest no longer names (the site's manifest named them, or
    /// an asset whose upload failed went up in part), deleted after it was stored; without
    /// `--delete` too, and never counted against `--max-deletes` (they are not files).
    pub stale_deltas_removed: u64,
    /// Items purged from the CDN (wildcards first, then paths).
    pub purged_paths: Vec<String>,
    /// The purge job, when there was something to purge.
    pub purge_job: Option<String>,
    /// Compression dictionaries: delta variants kept, computed, dropped.
    pub dictionaries: dictionaries::DeltaCounts,
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

/// The site as one deploy sees it: the site, with a retry layer of its own over the
/// site's breaker and client, so the deploy's report and adaptive concurrency count only
/// its own retries and throttles (not those of purges or listings running beside it).
#[derive(Debug)]
pub struct Target {
    site: Arc<Site>,
    provider: SharedProvider,
    counters: StackCounters,
}

impl Target {
    fn new(site: &Arc<Site>) -> Self {
        let (provider, counters) = site.deploy_stack();
        Self {
            site: Arc::clone(site),
            provider,
            counters,
        }
    }

    /// The site's name.
    pub fn name(&self) -> &str {
        self.site.name()
    }

    /// The deploy's provider stack.
    pub fn provider(&self) -> &SharedProvider {
        &self.provider
    }

    /// This deploy's retries and throttles.
    pub fn counters(&self) -> &StackCounters {
        &self.counters
    }

    /// The site's manifest reader.
    pub fn manifests(&self) -> &crate::site::ManifestReader {
        self.site.manifests()
    }

    /// The site's stored manifest, read through the deploy's stack.
    pub async fn manifest(
        &self,
    ) -> Result<Option<crate::pipeline::manifest::Manifest>, ManifestError> {
        self.site.manifests().read(&self.provider).await
    }
}

/// A configured deploy of one site.
pub struct Deployer {
    id: Option<String>,
    config: Config,
    site: Arc<Site>,
    cache: Cache,
    home: StateHome,
    jobs: JobStore,
}

impl std::fmt::Debug for Deployer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Deployer")
            .field("site", &self.site.name())
            .field("provider", &self.site.provider().to_string())
            .finish()
    }
}

impl Deployer {
    /// A deployer for site `site` of the registry: its provider stack, the process's
    /// cache layer (cached manifest, analytics) and job store.
    pub fn new(sites: &Sites, site: &str) -> Result<Self, DeployError> {
        Ok(Self {
            id: None,
            config: sites.config().clone(),
            site: sites.get(site)?,
            cache: sites.cache().clone(),
            home: sites.home().clone(),
            jobs: sites.jobs().clone(),
        })
    }

    /// Names the deploy (its record in the site's history): the HTTP job's id. Without
    /// it, each run gets a new `d…` id.
    pub fn with_id(mut self, id: &str) -> Self {
        self.id = Some(id.to_string());
        self
    }

    /// A deployer for `site` using the given provider, in a registry of its own built
    /// from `config` (tests, embedding).
    pub fn with_provider(
        config: &Config,
        site: &str,
        provider: SharedProvider,
    ) -> Result<Self, DeployError> {
        let sites = Sites::new(config)
            .and_then(|sites| sites.with_provider(site, provider))
            .map_err(|err| match err {
                crate::site::SiteError::Config(err) => DeployError::Config(err),
                other => DeployError::Config(ConfigError::Value {
                    key: "cache".into(),
                    message: other.to_string(),
                }),
            })?;
        Self::new(&sites, site)
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

    /// Plan, execute, finish.
    async fn run_locked(
        &self,
        options: &DeployOptions,
        progress: Arc<dyn DeployProgress>,
    ) -> Result<DeployReport, DeployError> {
        let started = Instant::now();
        let target = Target::new(&self.site);
        let site = &target;
        let mut report = DeployReport {
            id: self
                .id
                .clone()
                .unwrap_or_else(|| crate::jobs::new_id(crate::jobs::JobKind::Deploy)),
            site: site.name().to_string(),
            provider: site.provider().to_string(),
            dry_run: options.dry_run,
            final_concurrency: options.concurrency,
            ..DeployReport::default()
        };

        // Local processing and reading what the site has are independent: both at once.
        let (processed, remote) =
            tokio::join!(self.process(&options.input, true), RemoteState::load(site));
        let (mut assets, build_report) = processed?;
        report.build = build_report;
        let remote = remote?;
        let empty = plan::empty_manifest();
        let remote_manifest = remote.manifest.as_ref().unwrap_or(&empty);
        let offered = self.offer_dictionaries(&mut assets, remote_manifest);
        if remote.is_current(&assets) {
            report.plan.unchanged = assets
                .iter()
                .map(|a| 1 + a.variants.len() + a.deltas.len())
                .sum();
            report.duration_ms = started.elapsed().as_millis() as u64;
            return Ok(report);
        }

        // Deltas of changed assets against the versions returning visitors hold.
        let mut bases = None;
        if !offered.is_empty() {
            let found = self
                .find_bases(site, &assets, &offered, remote_manifest)
                .await?;
            report.dictionaries = self
                .compute_deltas(site, &mut assets, found.clone(), &offered)
                .await?;
            bases = Some(found);
        }

        // Plan.
        let limit = Arc::new(AdaptiveLimit::new(
            options.concurrency,
            options.concurrency.saturating_mul(4).min(512),
        ));
        let desired = plan::desired_objects(&assets);
        let found = remote::stored_objects(site, &remote, &desired, &limit).await?;
        let manifest = remote_manifest;
        let make_plan = |desired: Vec<plan::DesiredObject>| {
            let desired_keys: std::collections::BTreeSet<String> =
                desired.iter().map(|o| o.key.clone()).collect();
            let mut plan = if found.checked_all {
                Plan::build_checked(desired, manifest, &found.stored)
            } else {
                Plan::build(desired, manifest, &found.stored)
            };
            if !found.listed_stale.is_empty() {
                plan.stale_paths = found.listed_stale.clone();
                plan.stale_keys = found.listed_stale.clone();
            }
            plan.interrupted = remote.interrupted;
            plan.carried_purges = remote.unpurged.clone();
            plan.carry_deltas(&remote.unfinished_deltas, manifest, &desired_keys);
            plan
        };
        let mut plan = make_plan(desired);
        if plan.uploads.iter().any(|u| !u.object.source.exists()) {
            // The stat index pointed at processing results someone deleted (a cleared
            // cache): process again from the files themselves.
            tracing::info!("processing cache entries are missing; processing the files again");
            (assets, report.build) = self.process(&options.input, false).await?;
            let offered = self.offer_dictionaries(&mut assets, remote_manifest);
            if let Some(found) = bases {
                report.dictionaries = self
                    .compute_deltas(site, &mut assets, found, &offered)
                    .await?;
            }
            plan = make_plan(plan::desired_objects(&assets));
        }
        report.plan = PlanSummary::of(&plan);
        if options.delete && plan.stale_paths.len() > options.max_deletes {
            return Err(DeployError::Refused(format!(
                "--delete would remove {} stale files, more than --max-deletes {}; nothing was changed (raise --max-deletes if that is intended)",
                plan.stale_paths.len(),
                options.max_deletes
            )));
        }
        if options.dry_run {
            report.planned = plan.uploads;
            report.duration_ms = started.elapsed().as_millis() as u64;
            return Ok(report);
        }

        // Execute, then finish.
        let work = execute::Work {
            site,
            assets: &assets,
            remote: manifest,
            options,
            limit: &limit,
        };
        let executed = work.execute(&mut plan, progress, &mut report).await?;
        finish::finish(self, site, &plan, &assets, &executed, &mut report).await?;

        report.retries = site.counters().retries();
        report.throttles = site.counters().throttles();
        report.final_concurrency = limit.current();
        report.duration_ms = started.elapsed().as_millis() as u64;
        Ok(report)
    }

    fn levels(&self) -> crate::pipeline::compress::Levels {
        let pipeline = &self.config.pipeline;
        crate::pipeline::compress::Levels {
            gzip: pipeline.gzip_level,
            brotli: pipeline.brotli_quality,
            zstd: pipeline.zstd_level,
        }
    }

    fn dictionary_store(&self) -> dictionaries::DictionaryStore {
        dictionaries::DictionaryStore::new(
            &self.config.cache_dir,
            self.config.deploy.dictionaries.store_max_bytes,
        )
    }

    /// Decides which assets are offered as dictionaries and carries the site's deltas of
    /// unchanged ones; returns the offered assets that changed.
    fn offer_dictionaries(
        &self,
        assets: &mut [crate::pipeline::ProcessedAsset],
        remote: &crate::pipeline::manifest::Manifest,
    ) -> Vec<usize> {
        dictionaries::offer_and_carry(
            assets,
            remote,
            &self.config.deploy.dictionaries,
            &self.dictionary_store(),
            self.levels(),
        )
    }

    /// The earlier versions of the changed assets `offered`, from the deploy history
    /// (newest first), or from the site's manifest when there is no history yet.
    async fn find_bases(
        &self,
        site: &Target,
        assets: &[crate::pipeline::ProcessedAsset],
        offered: &[usize],
        remote: &crate::pipeline::manifest::Manifest,
    ) -> Result<std::collections::BTreeMap<usize, Vec<dictionaries::Base>>, DeployError> {
        let versions = self.config.deploy.dictionaries.versions;
        let index = history::load_index(site.provider()).await?;
        let mut records = Vec::new();
        // An asset unchanged over several deploys appears in several records: read a few
        // more records than versions wanted, never the whole history.
        for record in index.deploys.iter().take(versions.saturating_mul(2).max(1)) {
            if let Some(manifest) = history::load_manifest(site.provider(), record).await? {
                records.push(manifest);
            }
        }
        if records.is_empty() {
            records.push(remote.clone());
        }
        let changed: Vec<dictionaries::Changed<'_>> = offered
            .iter()
            .map(|&index| dictionaries::Changed {
                index,
                path: &assets[index].path,
                hash: &assets[index].hash,
            })
            .collect();
        Ok(dictionaries::find_bases(&changed, &records, versions))
    }

    /// Computes the deltas of `offered` assets from `bases` (cached on disk), and keeps
    /// the new versions on this machine for the next deploy's deltas.
    async fn compute_deltas(
        &self,
        site: &Target,
        assets: &mut [crate::pipeline::ProcessedAsset],
        bases: std::collections::BTreeMap<usize, Vec<dictionaries::Base>>,
        offered: &[usize],
    ) -> Result<dictionaries::DeltaCounts, DeployError> {
        let store = self.dictionary_store();
        let pipeline = &self.config.pipeline;
        let settings = dictionaries::DeltaSettings {
            encodings: self.config.deploy.dictionaries.encodings.clone(),
            levels: self.levels(),
            min_saving_percent: pipeline.min_saving_percent,
            min_saving_bytes: pipeline.min_saving_bytes,
            workers: if pipeline.workers == 0 {
                std::thread::available_parallelism().map_or(2, |n| n.get())
            } else {
                pipeline.workers
            },
        };
        let counts = if bases.is_empty() {
            dictionaries::DeltaCounts::default()
        } else {
            dictionaries::compute(assets, bases, site.provider(), &store, &settings).await?
        };
        let kept: Vec<crate::pipeline::ProcessedAsset> =
            offered.iter().map(|&i| assets[i].clone()).collect();
        let all: Vec<usize> = (0..kept.len()).collect();
        let _ = tokio::task::spawn_blocking(move || {
            dictionaries::remember_versions(&store, &kept, &all)
        })
        .await;
        Ok(counts)
    }

    async fn process(
        &self,
        input: &std::path::Path,
        use_index: bool,
    ) -> Result<(Vec<crate::pipeline::ProcessedAsset>, BuildReport), DeployError> {
        let mut pipeline = self.site.pipeline(&self.config)?;
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
        let name = self.site.name();
        match &self.home {
            StateHome::Cache(cache) => {
                let key = cache.site(name).deploy_lock();
                // A named deploy (a job) owns its lock by name, so the same job run again
                // after its replica died takes it back at once.
                let acquired = match &self.id {
                    Some(id) => {
                        crate::cache::CacheLock::acquire_as(cache, key, ttl, &format!("job:{id}"))
                            .await
                    }
                    None => crate::cache::CacheLock::acquire(cache, key, ttl).await,
                };
                match acquired {
                    Ok(Some(lock)) => Ok(DeployLock::Cache(lock)),
                    Ok(None) => Err(DeployError::Busy {
                        site: name.to_owned(),
                        ttl_secs: ttl.as_secs(),
                    }),
                    Err(e) => Err(DeployError::Refused(format!(
                        "cannot take the deploy lock: {e}"
                    ))),
                }
            }
            StateHome::Dir(dir) => Ok(DeployLock::File(SiteLock::acquire(
                &dir.join("locks"),
                name,
                ttl,
            )?)),
        }
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
