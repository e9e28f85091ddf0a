//! The sites registry: every configured site with its one long-lived provider stack,
//! built once per process (in `AppState` for `edgeship serve`, once per CLI run).
//!
//! A site's stack is `Retry(Breaker(Metrics(provider)))`, with fault injection under it
//! when `[sites.NAME.faults]` is set. The breaker (and the client under it) is the
//! site's one; a deploy puts its own retry layer on top ([`Site::deploy_stack`]) so its
//! report and its adaptive concurrency count only its own retries and throttles. Deploys, purges, the assets route, readiness probes
//! and the CLI all take their site from here, so the service reuses one pooled client per
//! site across requests and the circuit breaker sees every call the process makes to
//! that provider. The registry also holds the process's one [`Cache`], its
//! [`StateHome`] and the [`JobStore`] in it.

pub mod config;
pub mod manifest;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use edgeship_providers::SharedProvider;
use edgeship_providers::breaker::Breaker;
use edgeship_providers::faults::Faulty;
use edgeship_providers::local::LocalProvider;
use edgeship_providers::memory::MemoryProvider;
use edgeship_providers::metrics::Metrics;
use edgeship_providers::retry::Retry;

pub use config::{ProviderKind, ResolvedSite, SiteConfig};
pub use manifest::{ManifestError, ManifestReader};

use crate::cache::{Cache, CacheError};
use crate::config::{Config, ConfigError};
use crate::home::StateHome;
use crate::jobs::JobStore;
use crate::pipeline::Pipeline;
use crate::pipeline::manifest::Manifest;
use crate::pipeline::rules::RuleSet;

/// Why the registry cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SiteError {
    /// A site is unknown or misconfigured.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The cache layer cannot be opened.
    #[error("cannot open the cache layer: {0}")]
    Cache(#[from] CacheError),
}

/// Counts of one provider stack: calls retried and calls throttled, since the stack was
/// built (readers take differences).
#[derive(Debug, Clone)]
pub struct StackCounters {
    retries: Arc<AtomicU64>,
    throttles: Arc<AtomicU64>,
}

impl StackCounters {
    /// Retries so far.
    pub fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// Throttled calls so far.
    pub fn throttles(&self) -> u64 {
        self.throttles.load(Ordering::Relaxed)
    }
}

/// One configured site and its provider stack.
#[derive(Debug)]
pub struct Site {
    settings: ResolvedSite,
    rules: RuleSet,
    unwrapped: SharedProvider,
    /// `Breaker(Metrics(provider))`: shared by every stack of the site.
    guarded: SharedProvider,
    retry: edgeship_providers::retry::RetryPolicy,
    provider: SharedProvider,
    manifest: ManifestReader,
}

impl Site {
    fn new(
        config: &Config,
        settings: ResolvedSite,
        unwrapped: SharedProvider,
        cache: &Cache,
    ) -> Result<Self, ConfigError> {
        let rules = RuleSet::new(&settings.rules).map_err(|err| ConfigError::Value {
            key: format!("sites.{}.rules", settings.name),
            message: err.to_string(),
        })?;
        let guarded: SharedProvider = Arc::new(Breaker::new(
            Metrics::new(Arc::clone(&unwrapped)),
            config.deploy.breaker.clone(),
        ));
        let retry = config.deploy.retry.clone();
        let (provider, _) = retry_stack(&guarded, &retry);
        let manifest =
            ManifestReader::new(&settings.name, &config.deploy.manifest_key, cache.clone());
        Ok(Self {
            settings,
            rules,
            unwrapped,
            guarded,
            retry,
            provider,
            manifest,
        })
    }

    /// The site's name.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// The provider kind.
    pub fn kind(&self) -> ProviderKind {
        self.settings.provider
    }

    /// The site's settings, defaults filled in.
    pub fn settings(&self) -> &ResolvedSite {
        &self.settings
    }

    /// The site's rules (its own, then the built-in defaults).
    pub fn rules(&self) -> &RuleSet {
        &self.rules
    }

    /// A pipeline processing files with the site's rules and `config`'s settings.
    pub fn pipeline(&self, config: &Config) -> Result<Pipeline, ConfigError> {
        pipeline_with(config, self.rules.clone())
    }

    /// The provider in its retry and breaker stack: what every engine calls.
    pub fn provider(&self) -> &SharedProvider {
        &self.provider
    }

    /// The provider (with injected faults, if any) without retries or breaker: for
    /// readiness probes, which want one quick answer.
    pub fn unwrapped_provider(&self) -> &SharedProvider {
        &self.unwrapped
    }

    /// A retry layer of its own over the site's breaker and client, with its own
    /// counters: what one deploy uses, so its report and concurrency see only its calls.
    pub fn deploy_stack(&self) -> (SharedProvider, StackCounters) {
        retry_stack(&self.guarded, &self.retry)
    }

    /// The site's manifest reader (cached in the process's cache layer).
    pub fn manifests(&self) -> &ManifestReader {
        &self.manifest
    }

    /// The site's stored manifest, if any, through the cache layer.
    pub async fn manifest(&self) -> Result<Option<Manifest>, ManifestError> {
        self.manifest.read(&self.provider).await
    }
}

/// A pipeline for `site` of `config` without a registry (`edgeship build` needs no
/// provider).
pub fn pipeline_for(config: &Config, site: &str) -> Result<Pipeline, ConfigError> {
    let settings = config.site(site)?;
    let rules = RuleSet::new(&settings.rules).map_err(|err| ConfigError::Value {
        key: format!("sites.{}.rules", settings.name),
        message: err.to_string(),
    })?;
    pipeline_with(config, rules)
}

fn pipeline_with(config: &Config, rules: RuleSet) -> Result<Pipeline, ConfigError> {
    Pipeline::new(&config.pipeline, rules, &config.cache_dir).map_err(|err| ConfigError::Value {
        key: "pipeline".into(),
        message: err.to_string(),
    })
}

fn retry_stack(
    guarded: &SharedProvider,
    policy: &edgeship_providers::retry::RetryPolicy,
) -> (SharedProvider, StackCounters) {
    let retry = Retry::new(Arc::clone(guarded), policy.clone());
    let counters = StackCounters {
        retries: retry.retries(),
        throttles: retry.throttles(),
    };
    (Arc::new(retry), counters)
}

/// Every configured site, the process's cache layer, and where jobs, locks and keys live.
#[derive(Debug, Clone)]
pub struct Sites {
    config: Arc<Config>,
    cache: Cache,
    home: StateHome,
    jobs: JobStore,
    sites: BTreeMap<String, Arc<Site>>,
}

impl Sites {
    /// The registry of `config`, with the cache layer `[cache]` describes (Redis with a
    /// memory fallback, or memory only). Connects nothing yet: clients connect on first
    /// use.
    pub fn new(config: &Config) -> Result<Self, SiteError> {
        let cache = Cache::from_config(&config.cache)?;
        Self::with_cache(config, cache)
    }

    /// The registry of `config` around an open cache (the service's, tests').
    pub fn with_cache(config: &Config, cache: Cache) -> Result<Self, SiteError> {
        let home = StateHome::new(config, &cache);
        let mut sites = BTreeMap::new();
        for name in config.site_names() {
            let settings = config.site(&name)?;
            let provider = open_provider(&settings)?;
            sites.insert(
                name,
                Arc::new(Site::new(config, settings, provider, &cache)?),
            );
        }
        Ok(Self {
            config: Arc::new(config.clone()),
            jobs: JobStore::new(&home, &config.data_dir),
            cache,
            home,
            sites,
        })
    }

    /// Replaces the provider of site `name` (tests, embedding); the stack is built around
    /// it as for a configured one, and fault injection is not added.
    pub fn with_provider(
        mut self,
        name: &str,
        provider: SharedProvider,
    ) -> Result<Self, SiteError> {
        let settings = self.config.site(name)?;
        let site = Site::new(&self.config, settings, provider, &self.cache)?;
        self.sites.insert(name.to_string(), Arc::new(site));
        Ok(self)
    }

    /// The site `name`; unknown names are [`ConfigError::UnknownSite`].
    pub fn get(&self, name: &str) -> Result<Arc<Site>, ConfigError> {
        self.sites
            .get(name)
            .map(Arc::clone)
            .ok_or_else(|| ConfigError::UnknownSite {
                name: name.to_string(),
                known: self.names().collect::<Vec<_>>().join(", "),
            })
    }

    /// Where the CDN delivers site `name`'s access logs (`[sites.NAME.logs]`), opened
    /// with retries, and its settings; `None` when the site has no such table.
    pub fn log_source(
        &self,
        name: &str,
    ) -> Result<Option<(SharedProvider, config::LogSource)>, ConfigError> {
        self.get(name)?;
        let Some(source) = self.config.sites.get(name).and_then(|s| s.logs.clone()) else {
            return Ok(None);
        };
        let root = match (&source.root, source.provider) {
            (Some(root), _) => root.clone(),
            (None, ProviderKind::Local) => {
                return Err(ConfigError::Value {
                    key: format!("sites.{name}.logs.root"),
                    message: "is required: the directory the logs are written to".into(),
                });
            }
            (None, _) => PathBuf::new(),
        };
        let settings = ResolvedSite {
            name: format!("{name}-logs"),
            provider: source.provider,
            root,
            rules: Vec::new(),
            faults: None,
            aws: source.aws.clone(),
            cloudflare: source.cloudflare.clone(),
            azure: source.azure.clone(),
            connections: 8,
        };
        let provider = open_provider(&settings)?;
        let retry = Retry::new(provider, self.config.deploy.retry.clone());
        Ok(Some((Arc::new(retry), source)))
    }

    /// Every site, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Site>> {
        self.sites.values()
    }

    /// The site names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.sites.keys().map(String::as_str)
    }

    /// The configuration the registry was built from.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The process's cache layer.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Where jobs, deploy locks and API keys live.
    pub fn home(&self) -> &StateHome {
        &self.home
    }

    /// Where deploy and purge jobs are kept.
    pub fn jobs(&self) -> &JobStore {
        &self.jobs
    }
}

/// The provider of a site as configured (with injected faults when configured), without
/// the retry and breaker stack. A kind this build lacks is a configuration error (loading
/// the config already refuses it).
fn open_provider(site: &ResolvedSite) -> Result<SharedProvider, ConfigError> {
    let base: SharedProvider = match site.provider {
        ProviderKind::Local => Arc::new(LocalProvider::new(&site.root)),
        ProviderKind::Memory => Arc::new(MemoryProvider::new(&format!("memory:{}", site.name))),
        // The SDK configuration loads on the first call (it is async); settings were
        // checked when the config was loaded.
        #[cfg(feature = "aws")]
        ProviderKind::Aws => Arc::new(
            edgeship_providers::aws::AwsProvider::new(
                &site.name,
                site.aws.clone().unwrap_or_default(),
            )
            .with_pool_size(site.connections),
        ),
        #[cfg(feature = "cloudflare")]
        ProviderKind::Cloudflare => Arc::new(
            edgeship_providers::cloudflare::CloudflareProvider::new(
                &site.name,
                site.cloudflare.clone().unwrap_or_default(),
            )
            .with_pool_size(site.connections),
        ),
        #[cfg(feature = "azure")]
        ProviderKind::Azure => Arc::new(
            edgeship_providers::azure::AzureProvider::new(site.azure.clone().unwrap_or_default())
                .with_pool_size(site.connections),
        ),
        #[cfg(not(feature = "azure"))]
        ProviderKind::Azure => {
            return Err(ConfigError::Value {
                key: format!("sites.{}.provider", site.name),
                message: format!(
                    "provider `azure` is not available in this build (available: {})",
                    ProviderKind::built_list()
                ),
            });
        }
        #[cfg(not(feature = "aws"))]
        ProviderKind::Aws => {
            return Err(ConfigError::Value {
                key: format!("sites.{}.provider", site.name),
                message: format!(
                    "provider `aws` is not available in this build (available: {})",
                    ProviderKind::built_list()
                ),
            });
        }
        #[cfg(not(feature = "cloudflare"))]
        ProviderKind::Cloudflare => {
            return Err(ConfigError::Value {
                key: format!("sites.{}.provider", site.name),
                message: format!(
                    "provider `cloudflare` is not available in this build (available: {})",
                    ProviderKind::built_list()
                ),
            });
        }
    };
    Ok(match &site.faults {
        Some(faults) => Arc::new(Faulty::new(base, faults.clone())),
        None => base,
    })
}
