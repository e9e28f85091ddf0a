//! `edgeship stats`: the analytics report of `GET /v1/analytics`, in the terminal.

use std::time::SystemTime;

use anyhow::Context;
use clap::Args;

use super::{EXIT_OK, EXIT_USAGE, size as human_bytes};
use crate::analytics::origin::OriginTotals;
use crate::analytics::report::{self, Query, Report};
use crate::analytics::{Savings, ShippedTotals};
use crate::cache::Cache;
use crate::config::Config;

/// `edgeship stats` arguments.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Only this site (default: every configured site).
    #[arg(long)]
    pub site: Option<String>,
    /// Range start: Unix seconds, YYYY-MM-DD or RFC 3339 (default: 7 days before --to).
    #[arg(long, value_name = "TIME")]
    pub from: Option<String>,
    /// Range end, exclusive (default: now).
    #[arg(long, value_name = "TIME")]
    pub to: Option<String>,
    /// Series buckets: hour or day (default: hour up to 2 days, else day); or a breakdown
    /// of the CDN's traffic: type, encoding, cache_status or path.
    #[arg(long, value_name = "hour|day|type|encoding|cache_status|path")]
    pub group_by: Option<String>,
    /// Print the report as JSON (the body of GET /v1/analytics).
    #[arg(long)]
    pub json: bool,
}

/// Runs `edgeship stats`.
pub(super) fn run(config: &Config, args: &StatsArgs) -> anyhow::Result<u8> {
    if config.cache.redis_url.is_none() {
        eprintln!(
            "error: analytics live in the cache layer, and no Redis is configured (cache.redis_url), \
so they are in the memory of the running `edgeship serve`; ask it instead:\n  \
curl -H 'Authorization: Bearer <key>' 'http://{}/v1/analytics'",
            config.server.bind
        );
        return Ok(EXIT_USAGE);
    }
    let query = match Query::for_config(
        config,
        args.site.as_deref(),
        args.from.as_deref(),
        args.to.as_deref(),
        args.group_by.as_deref(),
        SystemTime::now(),
    ) {
        Ok(query) => query,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(EXIT_USAGE);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(async {
        let cache = Cache::from_config(&config.cache).context("opening the cache layer")?;
        if let crate::cache::Health::Degraded { reason, .. } = cache.health().await {
            anyhow::bail!("cannot read analytics: {reason}");
        }
        report::build(&cache, &query, config.origin_site().as_deref())
            .await
            .context("reading analytics")
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    Ok(EXIT_OK)
}

/// The report as text.
pub(super) fn render(report: &Report) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    for site in &report.sites {
        let _ = writeln!(
            out,
            "site {}  ({} to {})",
            site.site, report.from, report.to
        );
        let deploys = &site.deploys;
        let _ = writeln!(
            out,
            "  deploys: {} in range, {} in all",
            deploys.in_range.deploys, deploys.all_time.deploys
        );
        if deploys.current.total.files == 0 {
            let _ = writeln!(out, "  no deploy recorded yet");
        } else {
            let _ = writeln!(
                out,
                "  the site now: {}",
                savings_line(&deploys.current.total)
            );
            for (content_type, savings) in &deploys.current.by_content_type {
                let _ = writeln!(out, "    {content_type:<28} {}", savings_line(savings));
            }
        }
        if deploys.in_range.deploys > 0 {
            let _ = writeln!(
                out,
                "  uploaded in range: {}",
                shipped_line(&deploys.in_range)
            );
        }
        if let Some(origin) = &site.origin {
            let _ = writeln!(out, "  origin, in range: {}", origin_line(&origin.in_range));
            for (encoding, variant) in &origin.in_range.by_encoding {
                let _ = writeln!(
                    out,
                    "    {encoding:<9} {:>8} requests  {:>10} sent",
                    variant.requests,
                    human_bytes(variant.bytes)
                );
            }
            for bucket in &origin.series {
                let _ = writeln!(out, "    {}  {}", bucket.start, origin_line(&bucket.totals));
            }
        }
        if let Some(cdn) = &site.cdn {
            let _ = writeln!(out, "  CDN, in range: {}", cdn_line(&cdn.in_range));
            for (encoding, bytes) in &cdn.in_range.bytes_by_encoding {
                let _ = writeln!(out, "    {encoding:<9} {:>10} sent", human_bytes(*bytes));
            }
            for path in &cdn.top_paths_by_bytes {
                let _ = writeln!(
                    out,
                    "    {:>10}  {:>7} requests  {:>6} misses  {}",
                    human_bytes(path.totals.bytes),
                    path.totals.requests,
                    path.totals.misses,
                    path.path
                );
            }
            for bucket in &cdn.series {
                let _ = writeln!(out, "    {}  {}", bucket.start, cdn_line(&bucket.totals));
            }
        }
    }
    out
}

fn savings_line(s: &Savings) -> String {
    format!(
        "{} files, {} original, {} minified, {} smallest variants (saved {})",
        s.files,
        human_bytes(s.original_bytes),
        human_bytes(s.minified_bytes),
        human_bytes(s.best_bytes),
        percent(s.saved_bytes, s.original_bytes)
    )
}

fn shipped_line(s: &ShippedTotals) -> String {
    format!("{} deploys, {}", s.deploys, savings_line(&s.savings.total))
}

fn origin_line(o: &OriginTotals) -> String {
    format!(
        "{} requests, {} sent for {} identity (saved {}), {} not modified",
        o.requests,
        human_bytes(o.bytes),
        human_bytes(o.identity_bytes),
        percent(o.saved_bytes, o.identity_bytes),
        o.not_modified
    )
}

fn cdn_line(c: &crate::analytics::logs::CdnTotals) -> String {
    let ratio = |r: Option<f64>| r.map_or_else(|| "-".into(), |r| format!("{:.1}%", r * 100.0));
    format!(
        "{} requests, hit ratio {} ({} of bytes), {} sent, {} saved by precompressed variants",
        c.requests,
        ratio(c.hit_ratio),
        ratio(c.byte_hit_ratio),
        human_bytes(c.bytes),
        human_bytes(c.saved_bytes)
    )
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "0%".into();
    }
    format!("{:.1}%", part as f64 * 100.0 / whole as f64)
}
