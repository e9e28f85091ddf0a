//! `edgeship logs ingest FILE… --site S`: CDN access logs into the site's analytics.

use anyhow::Context;
use clap::{Args, Subcommand};

use super::{EXIT_OK, EXIT_PARTIAL, EXIT_REFUSED, EXIT_USAGE, size as human_bytes};
use crate::analytics::logs::{self, FileReport, LogFormat, Stored};
use crate::cache::Cache;
use crate::config::Config;

/// `edgeship logs …`.
#[derive(Debug, Subcommand)]
pub enum LogsCommand {
    /// Read CDN access log files and add what they say to the site's analytics.
    ///
    /// Formats: CloudFront standard logs (W3C, `#Fields:` names the columns; gzip'd as
    /// CloudFront delivers them), Cloudflare Logpush `http_requests` NDJSON (optionally
    /// gzip'd), Azure Front Door access logs (JSON records). The format is recognised
    /// from the first line unless --format names it. Files are streamed (memory stays
    /// flat), malformed lines are skipped and counted (a few are shown), and a file
    /// ingested before is refused, so running this from cron never counts a file twice.
    ///
    /// Needs Redis (cache.redis_url): the service and `edgeship stats` read the figures
    /// from there. Exit codes: 0 done, 1 a file could not be read, 2 bad usage or no
    /// Redis, 3 every readable file had been ingested before.
    Ingest(IngestArgs),
    /// Read the log files the CDN delivered since the last pull, from where it delivers
    /// them ([sites.NAME.logs]: an S3 or R2 bucket, an Azure container or a directory,
    /// under a prefix).
    ///
    /// Each object read is remembered (in Redis, for the retention of daily buckets), so
    /// running this from cron every few minutes reads each file once. Exit codes: 0 done,
    /// 1 the source could not be read, 2 no [sites.NAME.logs] or no Redis.
    Pull(PullArgs),
}

/// `edgeship logs pull` arguments.
#[derive(Debug, Args)]
#[command(
    after_help = "Example configuration:\n  [sites.www.logs]\n  provider = \"aws\"\n  prefix = \"cloudfront/\"\n  \
[sites.www.logs.aws]\n  bucket = \"www-logs\"\n\nExample:\n  edgeship logs pull --site www"
)]
pub struct PullArgs {
    /// The site whose logs to read (default: the default site).
    #[arg(long)]
    pub site: Option<String>,
    /// Print one JSON report per file read.
    #[arg(long)]
    pub json: bool,
}

/// `edgeship logs ingest` arguments.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  edgeship logs ingest E2QWRUHAPOMQZL.2026-12-02-06.a1b2c3d4.gz --site www\n  \
edgeship logs ingest logpush/20261202/*.log.gz --site www --format logpush --json"
)]
pub struct IngestArgs {
    /// Log files (plain or gzip).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<std::path::PathBuf>,
    /// The site the logs are of (default: the default site).
    #[arg(long)]
    pub site: Option<String>,
    /// cloudfront, logpush or front_door (default: recognised from the first line).
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<LogFormat>,
    /// Print one JSON report per file.
    #[arg(long)]
    pub json: bool,
}

impl clap::ValueEnum for LogFormat {
    fn value_variants<'a>() -> &'a [Self] {
        &[Self::Cloudfront, Self::Logpush, Self::FrontDoor]
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

/// What both subcommands need: the site, its registry, the cache layer (Redis, answering)
/// and the site's manifest.
struct Prepared {
    site: String,
    sites: crate::site::Sites,
    cache: Cache,
    manifest: std::sync::Arc<crate::pipeline::manifest::Manifest>,
}

async fn context(config: &Config, site: String) -> anyhow::Result<Prepared> {
    let sites = crate::site::Sites::new(config)?;
    let cache = sites.cache().clone();
    if let crate::cache::Health::Degraded { reason, .. } = cache.health().await {
        anyhow::bail!("cannot store CDN analytics: {reason}");
    }
    let manifest = sites
        .get(&site)?
        .manifest()
        .await
        .context("reading the site's manifest")?
        .unwrap_or_default();
    Ok(Prepared {
        site,
        sites,
        cache,
        manifest: std::sync::Arc::new(manifest),
    })
}

/// Runs `edgeship logs …`.
pub(super) fn run(config: &Config, command: &LogsCommand) -> anyhow::Result<u8> {
    if config.cache.redis_url.is_none() {
        eprintln!(
            "error: CDN analytics (and what was pulled) live in the cache layer and no Redis is configured (cache.redis_url); \
set one so `edgeship serve` and `edgeship stats` see what is ingested"
        );
        return Ok(EXIT_USAGE);
    }
    let site = match command {
        LogsCommand::Ingest(args) => &args.site,
        LogsCommand::Pull(args) => &args.site,
    };
    let site = match config.site_or_default(site.as_deref()) {
        Ok(site) => site,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(EXIT_USAGE);
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let cx = context(config, site).await?;
        match command {
            LogsCommand::Ingest(args) => ingest(config, &cx, args).await,
            LogsCommand::Pull(args) => pull(config, &cx, args).await,
        }
    })
}

async fn ingest(config: &Config, cx: &Prepared, args: &IngestArgs) -> anyhow::Result<u8> {
    let (mut failed, mut added, mut refused) = (0, 0, 0);
    for file in &args.files {
        let (path, format, manifest) = (file.clone(), args.format, cx.manifest.clone());
        let read = tokio::task::spawn_blocking(move || logs::read_file(&path, format, &manifest))
            .await
            .context("reading a log file")?;
        let aggregate = match read {
            Ok(aggregate) => aggregate,
            Err(err) => {
                eprintln!("error: {err}");
                failed += 1;
                continue;
            }
        };
        let stored = logs::store(&cx.cache, &cx.site, &aggregate, &config.analytics)
            .await
            .context("storing CDN analytics")?;
        match &stored {
            Stored::Added => added += 1,
            Stored::AlreadyIngested { .. } => refused += 1,
        }
        if args.json {
            let mut value = serde_json::to_value(&aggregate.report)?;
            value["stored"] = serde_json::to_value(&stored)?;
            println!("{value}");
        } else {
            print!("{}", render(&aggregate.report, &stored));
        }
    }
    Ok(if failed > 0 {
        EXIT_PARTIAL
    } else if added == 0 && refused > 0 {
        EXIT_REFUSED
    } else {
        EXIT_OK
    })
}

async fn pull(config: &Config, cx: &Prepared, args: &PullArgs) -> anyhow::Result<u8> {
    let site = &cx.site;
    let Some((source, settings)) = cx.sites.log_source(site)? else {
        eprintln!(
            "error: site `{site}` has no [sites.{site}.logs] table saying where its CDN delivers logs (see `edgeship logs pull --help`)"
        );
        return Ok(EXIT_USAGE);
    };
    let result = logs::pull(
        &cx.cache,
        site,
        &source,
        &settings.prefix,
        settings.format,
        cx.manifest.clone(),
        &config.analytics,
    )
    .await;
    let (pulled, skipped) = match result {
        Ok(done) => done,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(EXIT_PARTIAL);
        }
    };
    for file in &pulled {
        if args.json {
            println!("{}", serde_json::to_string(file)?);
        } else {
            print!("{}", render(&file.report, &file.stored));
        }
    }
    if !args.json {
        println!(
            "{} new log files read from {source}, {skipped} read before",
            pulled.len()
        );
    }
    Ok(EXIT_OK)
}

fn percent(ratio: Option<f64>) -> String {
    ratio.map_or_else(|| "-".into(), |r| format!("{:.1} %", r * 100.0))
}

/// One file's report for people.
fn render(report: &FileReport, stored: &Stored) -> String {
    let mut out = String::new();
    if let Stored::AlreadyIngested { at } = stored {
        out.push_str(&format!(
            "{}: refused: this file was ingested before (at {at}, Unix seconds); nothing added\n",
            report.file
        ));
        return out;
    }
    let totals = &report.totals;
    out.push_str(&format!(
        "{}: {} log, {} lines, {} requests, {} malformed\n  hit ratio {} of requests, {} of bytes; {} sent, {} saved by precompressed variants\n",
        report.file,
        report.format.as_str(),
        report.lines,
        report.requests,
        report.malformed,
        percent(totals.hit_ratio),
        percent(totals.byte_hit_ratio),
        human_bytes(totals.bytes),
        human_bytes(totals.saved_bytes),
    ));
    for example in &report.examples {
        out.push_str(&format!(
            "  skipped line {}: {}: {:?}\n",
            example.line, example.reason, example.text
        ));
    }
    if let Some(truncated) = &report.truncated {
        out.push_str(&format!(
            "  warning: the file is cut off ({truncated}); the lines before were counted\n"
        ));
    }
    out
}
