//! The command line: argument definitions (clap) and the command implementations.
//!
//! Exit codes, for every command: 0 done, 1 some files failed (listed), 2 usage or
//! configuration error, 3 refused (a safety check said no).

mod deploys;
mod edge_rules;
mod keys;
mod logs;
mod purge;
mod stats;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError, LogFormat};
use crate::pipeline::Pipeline;
use crate::pipeline::build::{self, BuildReport};

/// Exit code: everything done.
pub const EXIT_OK: u8 = 0;
/// Exit code: some files failed; they are listed.
pub const EXIT_PARTIAL: u8 = 1;
/// Exit code: bad usage or configuration.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: refused by a safety check.
pub const EXIT_REFUSED: u8 = 3;

/// edgeship: minify, precompress, deploy and purge web assets, and report what it saved.
#[derive(Debug, Parser)]
#[command(
    name = "edgeship",
    version,
    about,
    long_about = "edgeship makes every file of a built web site as small as it can be without \
changing what it means (JS and CSS minified, gzip/brotli/zstd variants), publishes it to a CDN \
origin, purges CDN caches by pattern, and reports what that saved.\n\n\
Configuration is layered: built-in defaults < config file (--config, EDGESHIP_CONFIG or \
./edgeship.toml) < EDGESHIP_* environment variables (`__` for nesting, e.g. \
EDGESHIP_SERVER__BIND=0.0.0.0:8080) < flags. With no configuration at all every command works: \
site `default` on the local provider under the data directory.\n\n\
Exit codes: 0 done, 1 some files failed (listed), 2 usage or configuration error, 3 refused by \
a safety check.",
    after_help = "Examples:\n  edgeship build ./dist --out ./out\n  edgeship deploy ./dist --site www --dry-run\n  \
edgeship purge '/assets/**/*.css' --site www --dry-run\n  edgeship serve\n  \
edgeship keys create --name ci --scopes deploy,purge\n  edgeship config check"
)]
pub struct Cli {
    /// Config file (TOML). Default: ./edgeship.toml when present.
    #[arg(long, global = true, env = "EDGESHIP_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Log filter, e.g. `debug` or `edgeship=debug` (overrides log.level).
    #[arg(long, global = true, value_name = "FILTER")]
    pub log_level: Option<String>,

    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Process a directory into minified files with .br/.gz/.zst siblings and a manifest.
    ///
    /// Every file is classified by extension (sniffed when missing). JS is minified with
    /// oxc, CSS with lightningcss, JSON compacted; a file whose minifier fails ships
    /// unchanged with a warning. Compressible files get gzip, brotli and zstd variants,
    /// kept only when meaningfully smaller. Results are cached by content, so a rebuild of
    /// unchanged files does no work. The output is ready for nginx `gzip_static` /
    /// `brotli_static`; the manifest is written to OUT/.edgeship/manifest.json.
    Build(BuildArgs),
    /// Publish a directory to a site: process it, upload what changed, purge what may be cached.
    ///
    /// The directory is processed as by `build` (cached work is not redone), compared with
    /// the site's manifest, and only new or changed objects are uploaded: non-HTML assets
    /// first, then HTML pages (a page never points at an asset that is not there yet), then
    /// the manifest, then (with --delete) stale files, then a CDN purge of changed paths.
    /// Failed calls are retried with backoff; a provider that is down stops the deploy
    /// with one error. A deploy that was killed can simply be run again: it uploads only
    /// what is missing. Exit codes: 0 done, 1 some files failed (listed), 2 usage or
    /// configuration error, 3 refused (too many deletes, another deploy running).
    Deploy(DeployArgs),
    /// Run the HTTP service: APIs, metrics and the origin for local sites.
    Serve(ServeArgs),
    /// Purge CDN caches by path, prefix, glob or tag, with the fewest provider calls.
    ///
    /// Patterns expand against the site's manifest (what edgeship deployed), then reduce
    /// to what the provider takes: many changed files under one directory become one
    /// `/dir/*` wildcard when that purges few unchanged files (purge.max_collateral_share),
    /// `dir/index.html` is purged as `/dir/` too, and requests are batched within the
    /// provider's limits. Every purge is a job: `edgeship purge status ID` shows it.
    /// A purge of everything, or of more than purge.confirm_share of the site, needs
    /// --confirm. Exit codes: 0 done (or submitted), 1 some requests failed, 2 bad
    /// pattern or configuration, 3 refused (needs --confirm).
    Purge(PurgeArgs),
    /// Print what minification and precompression saved, per site and content type, and
    /// what the origin served per encoding.
    ///
    /// The same figures as `GET /v1/analytics`, read from the cache layer: deploys record
    /// the site's original, minified and per-variant bytes; `edgeship serve` counts the
    /// bytes its origin sends. Needs Redis (cache.redis_url), where the service and
    /// deploys from pipelines share them. Exit codes: 0 done, 1 Redis unreachable, 2 bad
    /// range or no Redis configured.
    Stats(stats::StatsArgs),
    /// Create, list and revoke API keys for the HTTP API.
    ///
    /// Keys are stored hashed (in the cache layer with Redis, else <data_dir>/keys.json);
    /// the key itself is printed once, at creation. Scopes: deploy, purge, read, logs, admin
    /// (everything). Several keys can be active at once, so rotation is: create, switch
    /// clients, revoke the old one.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Add CDN access logs (CloudFront, Cloudflare Logpush, Azure Front Door) to a
    /// site's analytics: hit ratio, bytes by encoding and type, bytes saved.
    #[command(subcommand)]
    Logs(logs::LogsCommand),
    /// A site's deploy history (`deploys list --site S`).
    #[command(subcommand)]
    Deploys(deploys::DeploysCommand),
    /// Print the configuration that lets an edge (nginx, a Cloudflare Worker, a CloudFront
    /// Function) pick a site's variants and dictionary deltas as edgeship's origin does.
    ///
    /// A site with the `variants` strategy stores each asset as its identity plus br/gzip/zstd
    /// siblings and delta variants; an object store cannot choose among them. The printed
    /// configuration does, per request, from Accept-Encoding and Available-Dictionary, and
    /// adds Vary and Use-As-Dictionary. Exit codes: 0 done, 2 no manifest yet, a site this
    /// edge cannot serve, or a table too large for the edge.
    EdgeRules(edge_rules::EdgeRulesArgs),
    /// Inspect configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `edgeship build` arguments.
#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The directory to process (e.g. your front-end build's `dist/`).
    pub input: PathBuf,
    /// Where to write the processed tree.
    #[arg(long, short, value_name = "DIR")]
    pub out: PathBuf,
    /// Use this site's rules (cache-control, encodings, minify switches); default:
    /// `default`, or the only configured site.
    #[arg(long, value_name = "NAME")]
    pub site: Option<String>,
    /// Print the report as JSON on stdout instead of a summary.
    #[arg(long)]
    pub json: bool,
    /// Write into a non-empty output directory that no earlier build created.
    #[arg(long)]
    pub force: bool,
    /// Ignore the processing cache (results are still stored for next time).
    #[arg(long)]
    pub no_cache: bool,
    /// Worker threads (default: one per core).
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
}

/// `edgeship deploy` arguments.
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// The directory to publish (e.g. your front-end build's `dist/`).
    pub input: PathBuf,
    /// The site to deploy to (`[sites.NAME]` in the config); default: `default`, or the
    /// only configured site.
    #[arg(long, value_name = "NAME")]
    pub site: Option<String>,
    /// Show the plan (what would be uploaded and why) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Print the report (or the plan) as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Delete files the site has that the directory no longer has.
    #[arg(long)]
    pub delete: bool,
    /// Refuse (exit 3) when --delete would remove more files than this (default: deploy.max_deletes).
    #[arg(long, value_name = "N")]
    pub max_deletes: Option<usize>,
    /// Uploads in flight at the start; it adapts during the deploy (default: deploy.concurrency).
    #[arg(long, value_name = "N")]
    pub concurrency: Option<usize>,
}

/// `edgeship purge` arguments.
#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    after_help = "Patterns (quote them, so the shell leaves `*` alone):\n  \
/index.html        exactly this path (`/` is the home page)\n  \
/blog/             every path under /blog/\n  \
'/assets/**/*.css' a glob: `*` and `?` within a segment, `**` across, {a,b}, [a-z]\n  \
tag:product-42     every path deployed with this tag (see rules)\n  \
'/*'               everything (needs --confirm)\n\n\
Examples:\n  edgeship purge /index.html '/assets/**/*.css' --dry-run\n  \
edgeship purge tag:product-42 --site www --wait\n  edgeship purge status p6745a1b2c3d4e5f6"
)]
pub struct PurgeArgs {
    /// `status ID`: show a purge job.
    #[command(subcommand)]
    pub command: Option<PurgeCommand>,
    /// What to purge (see below).
    #[arg(required = true, value_name = "PATTERN")]
    pub patterns: Vec<String>,
    /// The site whose CDN is purged (`[sites.NAME]` in the config); default: `default`,
    /// or the only configured site.
    #[arg(long, value_name = "NAME")]
    pub site: Option<String>,
    /// Print the matched paths, the exact provider requests and the cost; send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Allow purging everything, or more than purge.confirm_share of the site.
    #[arg(long)]
    pub confirm: bool,
    /// Wait until the provider reports the purge done (up to purge.wait_timeout_secs).
    #[arg(long)]
    pub wait: bool,
    /// Print the plan or the job as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `edgeship purge …` subcommands.
#[derive(Debug, Subcommand)]
pub enum PurgeCommand {
    /// Show a purge job: its status and every provider request (refreshed from the provider).
    Status(PurgeStatusArgs),
}

/// `edgeship purge status` arguments.
#[derive(Debug, Args)]
pub struct PurgeStatusArgs {
    /// The job id printed by `edgeship purge` (or a deploy).
    pub id: String,
    /// Wait until the job is finished (up to purge.wait_timeout_secs).
    #[arg(long)]
    pub wait: bool,
    /// Print the job as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `edgeship keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key and print it (once).
    Create(KeysCreateArgs),
    /// List keys (never their secrets).
    List {
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key by id (the part after `esk_`, before the second `_`).
    Revoke {
        /// The key id.
        id: String,
    },
}

/// `edgeship keys create` arguments.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  edgeship keys create --name ci --scopes deploy,purge --expires-in-days 90\n  \
edgeship keys create --name dashboard --scopes read --allow-ip 10.0.0.0/8"
)]
pub struct KeysCreateArgs {
    /// A name for people (shown in lists, logs and errors).
    #[arg(long)]
    pub name: String,
    /// What the key may do: deploy, purge, read, logs, admin (comma-separated).
    #[arg(long, value_delimiter = ',', required = true)]
    pub scopes: Vec<crate::api_keys::Scope>,
    /// The key stops working after this many days (at least 1).
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u64).range(1..=36_500))]
    pub expires_in_days: Option<u64>,
    /// Networks the key may be used from (CIDR, repeatable); default anywhere.
    #[arg(long = "allow-ip", value_name = "CIDR")]
    pub allow_ips: Vec<ipnet::IpNet>,
    /// Print the key and its record as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `edgeship serve` arguments.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (overrides server.bind).
    #[arg(long, value_name = "ADDR")]
    pub bind: Option<String>,
}

/// `edgeship config …`.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the resolved configuration (all layers merged) with secrets redacted.
    Check,
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let code = match dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            let config_error = err.downcast_ref::<ConfigError>().is_some()
                || matches!(
                    err.downcast_ref::<crate::site::SiteError>(),
                    Some(crate::site::SiteError::Config(_))
                );
            if config_error {
                EXIT_USAGE
            } else {
                EXIT_PARTIAL
            }
        }
    };
    ExitCode::from(code)
}

fn dispatch(cli: Cli) -> anyhow::Result<u8> {
    let mut flags: Vec<(&str, toml::Value)> = Vec::new();
    if let Some(level) = &cli.log_level {
        flags.push(("log.level", toml::Value::String(level.clone())));
    }
    match &cli.command {
        Command::Build(args) => {
            if let Some(workers) = args.workers {
                flags.push(("pipeline.workers", toml::Value::Integer(workers as i64)));
            }
            if args.no_cache {
                flags.push(("pipeline.cache", toml::Value::Boolean(false)));
            }
        }
        Command::Serve(args) => {
            if let Some(bind) = &args.bind {
                flags.push(("server.bind", toml::Value::String(bind.clone())));
            }
        }
        _ => {}
    }
    let config = Config::load(cli.config.as_deref(), &flags)?;
    init_tracing(&config);
    match cli.command {
        Command::Build(args) => run_build(&config, &args),
        Command::Serve(_) => run_serve(config),
        Command::Config(ConfigCommand::Check) => {
            print!("{}", config.to_redacted_toml()?);
            Ok(EXIT_OK)
        }
        Command::Deploy(args) => run_deploy(&config, &args),
        Command::Purge(args) => purge::run(&config, &args),
        Command::Stats(args) => stats::run(&config, &args),
        Command::Keys(command) => keys::run(&config, &command),
        Command::Logs(command) => logs::run(&config, &command),
        Command::Deploys(command) => deploys::run(&config, &command),
        Command::EdgeRules(args) => edge_rules::run(&config, &args),
    }
}

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal (and not with NO_COLOR): log files, journald and CI
    // logs get plain text.
    let ansi = {
        use std::io::IsTerminal;
        std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Builds a pipeline for a site from config.
pub fn pipeline_for(config: &Config, site: &str) -> anyhow::Result<Pipeline> {
    Ok(crate::site::pipeline_for(config, site)?)
}

fn run_build(config: &Config, args: &BuildArgs) -> anyhow::Result<u8> {
    let pipeline = pipeline_for(config, &config.site_or_default(args.site.as_deref())?)?;
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.pipeline.workers)
        .thread_name(|i| format!("edgeship-pipeline-{i}"))
        .build()
        .context("starting the pipeline worker pool")?;
    let progress = BarProgress::new(!args.json);
    let result =
        pool.install(|| build::build(&pipeline, &args.input, &args.out, args.force, &progress));
    progress.bar.finish_and_clear();
    let report = match result {
        Ok(report) => report,
        Err(err) if err.is_refusal() => {
            eprintln!("error: {err}");
            return Ok(EXIT_REFUSED);
        }
        Err(build::BuildError::Scan(err)) => {
            eprintln!("error: {err}");
            return Ok(EXIT_USAGE);
        }
        Err(err) => return Err(err.into()),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_build_summary(&report, &args.out);
    }
    print_warnings(&report.warnings, args.json);
    for failure in &report.failures {
        eprintln!("error: {}", failure.message);
    }
    Ok(if report.failures.is_empty() {
        EXIT_OK
    } else {
        EXIT_PARTIAL
    })
}

/// A progress bar on stderr; drawn only when stderr is a terminal.
struct BarProgress {
    bar: indicatif::ProgressBar,
}

impl BarProgress {
    fn new(visible: bool) -> Self {
        let bar = if visible {
            indicatif::ProgressBar::new(0)
        } else {
            indicatif::ProgressBar::hidden()
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{spinner} {pos}/{len} files  {msg}  {elapsed_precise} (eta {eta})",
        ) {
            bar.set_style(style);
        }
        Self { bar }
    }
}

impl build::Progress for BarProgress {
    fn start(&self, files: u64, bytes: u64) {
        self.bar.set_length(files);
        self.bar.set_message(format!("{} to process", size(bytes)));
    }

    fn file_done(&self, _bytes: u64) {
        self.bar.inc(1);
    }
}

/// Warnings shown on the terminal before the rest are summarised; `--json` has them all.
const MAX_WARNINGS_SHOWN: usize = 20;

fn print_warnings(warnings: &[crate::pipeline::build::FileMessage], json: bool) {
    let shown = if json {
        warnings.len()
    } else {
        MAX_WARNINGS_SHOWN
    };
    for warning in warnings.iter().take(shown) {
        eprintln!("warning: {}: {}", warning.path, warning.message);
    }
    if warnings.len() > shown {
        eprintln!(
            "warning: … and {} more warnings (--json lists them all)",
            warnings.len() - shown
        );
    }
}

fn size(bytes: u64) -> String {
    humansize::format_size(bytes, humansize::BINARY)
}

fn saving(from: u64, to: u64) -> String {
    if from == 0 {
        return "0.0%".into();
    }
    format!("{:+.1}%", (to as f64 - from as f64) / from as f64 * 100.0)
}

/// Prints the human summary of a build to stdout.
pub fn print_build_summary(report: &BuildReport, out: &Path) {
    println!(
        "built {} files into {} in {:.2}s: {} in",
        report.files,
        out.display(),
        report.duration_ms as f64 / 1000.0,
        size(report.bytes_in)
    );
    println!(
        "  {:<9}{:>12}  {:>7}  minified {}, unchanged after minifier failure {}",
        "identity",
        size(report.identity_bytes),
        saving(report.bytes_in, report.identity_bytes),
        report.minified,
        report.minify_fallbacks
    );
    for (encoding, totals) in &report.encodings {
        println!(
            "  {:<9}{:>12}  {:>7}  {} variants",
            encoding.token(),
            size(totals.served_bytes),
            saving(report.bytes_in, totals.served_bytes),
            totals.variants
        );
    }
    println!(
        "  cache: {} hits, {} misses, {} compressions; {} warnings, {} failures",
        report.cache_hits,
        report.cache_misses,
        report.compressions,
        report.warnings.len(),
        report.failures.len()
    );
}

fn run_deploy(config: &Config, args: &DeployArgs) -> anyhow::Result<u8> {
    use crate::deploy::{DeployOptions, Deployer};
    let options = DeployOptions {
        input: args.input.clone(),
        dry_run: args.dry_run,
        delete: args.delete,
        max_deletes: args.max_deletes.unwrap_or(config.deploy.max_deletes),
        concurrency: args.concurrency.unwrap_or(config.deploy.concurrency).max(1),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let progress: std::sync::Arc<dyn crate::deploy::DeployProgress> =
        std::sync::Arc::new(DeployBar::new(!args.json));
    // One registry for the run: with Redis, deploys from pipelines feed the service's
    // analytics and share the cached manifest.
    let sites = crate::site::Sites::new(config)?;
    let result = runtime.block_on(async {
        Deployer::new(&sites, &config.site_or_default(args.site.as_deref())?)?
            .run(&options, std::sync::Arc::clone(&progress))
            .await
    });
    drop(progress);
    let report = match result {
        Ok(report) => report,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(err.exit_code());
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.dry_run {
        print_plan(&report);
    } else {
        print_deploy_summary(&report);
    }
    print_warnings(&report.build.warnings, args.json);
    for failure in report.build.failures.iter().chain(&report.failures) {
        eprintln!("error: {}: {}", failure.path, failure.message);
    }
    let failed = !report.failures.is_empty() || !report.build.failures.is_empty();
    Ok(if failed { EXIT_PARTIAL } else { EXIT_OK })
}

fn print_plan(report: &crate::deploy::DeployReport) {
    println!("{:<8} {:<16} {:>10}  KEY", "ACTION", "REASON", "SIZE");
    for upload in &report.planned {
        let reason = serde_json::to_value(upload.reason)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        println!(
            "{:<8} {:<16} {:>10}  {}",
            "upload",
            reason,
            size(upload.object.size),
            upload.object.key
        );
    }
    let p = &report.plan;
    println!(
        "plan for site `{}` ({}): {} uploads ({}), {} unchanged, {} stale files{}",
        report.site,
        report.provider,
        p.uploads,
        size(p.upload_bytes),
        p.unchanged,
        p.stale_files,
        if p.resumed > 0 {
            format!(", {} already uploaded by an interrupted deploy", p.resumed)
        } else {
            String::new()
        }
    );
    println!("dry run: nothing was changed");
}

fn print_deploy_summary(report: &crate::deploy::DeployReport) {
    let b = &report.build;
    let br = b
        .encodings
        .get(&crate::pipeline::compress::Encoding::Br)
        .map(|t| t.served_bytes)
        .unwrap_or(b.identity_bytes);
    println!(
        "deployed {} files to site `{}` ({}) in {:.2}s as {}",
        b.files,
        report.site,
        report.provider,
        report.duration_ms as f64 / 1000.0,
        report.id
    );
    println!(
        "  size: {} in, {} minified ({}), {} with br ({})",
        size(b.bytes_in),
        size(b.identity_bytes),
        saving(b.bytes_in, b.identity_bytes),
        size(br),
        saving(b.bytes_in, br)
    );
    println!(
        "  uploaded {} objects ({}), {} unchanged, {} resumed, {} stale files, {} objects deleted",
        report.uploaded,
        size(report.uploaded_bytes),
        report.plan.unchanged,
        report.plan.resumed,
        report.plan.stale_files,
        report.deleted
    );
    let d = &report.dictionaries;
    if d.kept + d.dropped + d.missing_versions > 0 {
        println!(
            "  dictionaries: {} delta variants for returning visitors ({} computed now, {} not smaller than br, {} earlier versions unreadable)",
            d.kept, d.computed, d.dropped, d.missing_versions
        );
    }
    if report.orphan_deltas_removed + report.stale_deltas_removed > 0 {
        println!(
            "  deltas no manifest names deleted: {} left by an interrupted deploy, {} no longer named",
            report.orphan_deltas_removed, report.stale_deltas_removed
        );
    }
    println!(
        "  purged {} paths; {} retries, {} throttled; concurrency ended at {}; {} failures",
        report.purged_paths.len(),
        report.retries,
        report.throttles,
        report.final_concurrency,
        report.failures.len()
    );
}

/// Deploy progress: a bar (files, bytes, rate, ETA) on a terminal, a plain line every
/// few seconds otherwise (CI logs).
struct DeployBar {
    bar: indicatif::ProgressBar,
    plain: bool,
    last_line: std::sync::Mutex<std::time::Instant>,
}

impl DeployBar {
    fn new(visible: bool) -> Self {
        use std::io::IsTerminal;
        let terminal = std::io::stderr().is_terminal();
        let bar = if visible && terminal {
            indicatif::ProgressBar::new(0)
        } else {
            indicatif::ProgressBar::hidden()
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "{msg:>8} [{bar:30}] {pos}/{len} objects  {bytes_per_sec}  eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        Self {
            bar,
            plain: visible && !terminal,
            last_line: std::sync::Mutex::new(std::time::Instant::now()),
        }
    }
}

impl crate::deploy::DeployProgress for DeployBar {
    fn phase(&self, name: &str, objects: u64, bytes: u64) {
        self.bar.set_position(0);
        self.bar.set_length(objects);
        self.bar.set_message(name.to_string());
        if self.plain {
            eprintln!("{name}: {objects} objects, {}", size(bytes));
        }
    }

    fn object_done(&self, _bytes: u64) {
        self.bar.inc(1);
        if self.plain
            && let Ok(mut last) = self.last_line.lock()
            && last.elapsed() >= std::time::Duration::from_secs(5)
        {
            *last = std::time::Instant::now();
            eprintln!(
                "  {}/{} objects",
                self.bar.position(),
                self.bar.length().unwrap_or(0)
            );
        }
    }
}

impl Drop for DeployBar {
    fn drop(&mut self) {
        self.bar.finish_and_clear();
    }
}

fn run_serve(config: Config) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = match std::net::TcpListener::bind(config.server.bind) {
            Ok(listener) => listener,
            Err(err) => {
                // A usage problem (address in use, no permission): exit 2, not 1.
                eprintln!(
                    "error: cannot listen on {} (server.bind or --bind): {err}",
                    config.server.bind
                );
                return Ok(EXIT_USAGE);
            }
        };
        let app = crate::http::AppState::new(&config)?;
        // Connects to Redis now, so an outage shows at startup (one warning) rather than
        // on the first request; the service starts either way.
        if app.cache().health().await == crate::cache::Health::Ready {
            tracing::info!(cache = %app.cache().stats().backend, "cache ready");
        }
        match app.ensure_admin_key().await {
            Ok(Some(token)) => eprintln!(
                "created an admin API key (shown once; only its hash is stored):\n\n    {token}\n\n\
                 use it as `Authorization: Bearer <key>`; create narrower keys with `edgeship keys create`"
            ),
            Ok(None) => {}
            Err(err) => tracing::warn!(error = %err, "cannot check or create the initial API key"),
        }
        eprintln!("edgeship serving on http://{}", listener.local_addr()?);
        crate::http::serve(listener, app, crate::http::shutdown_signal()).await?;
        Ok::<_, anyhow::Error>(EXIT_OK)
    })
}
