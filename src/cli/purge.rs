//! `edgeship purge` and `edgeship purge status`.

use anyhow::Context;

use super::{EXIT_OK, EXIT_PARTIAL, EXIT_REFUSED, EXIT_USAGE, PurgeArgs, PurgeCommand};
use crate::config::Config;
use crate::jobs::JobError;
use crate::purge::PurgeError;
use crate::purge::job::{self, BatchStatus, JobStatus, PurgeJob, RunOptions};
use crate::purge::pattern::PatternError;
use crate::purge::plan::PurgePlan;
use crate::site::{ManifestError, Sites};

/// Paths listed on the terminal before the rest are summarised; `--json` has them all.
const MAX_PATHS_SHOWN: usize = 50;

/// Runs `edgeship purge …`.
pub(super) fn run(config: &Config, args: &PurgeArgs) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    match &args.command {
        Some(PurgeCommand::Status(status)) => {
            runtime.block_on(show_status(config, &status.id, status.wait, status.json))
        }
        None => runtime.block_on(purge(config, args)),
    }
}

fn print_pattern_error(err: &PatternError) {
    eprintln!("error: {err}");
    // Point at the character when the pattern fits on a line.
    if err.pattern.len() <= 120 && !err.pattern.chars().any(char::is_control) {
        let column = err.pattern[..err.position.min(err.pattern.len())]
            .chars()
            .count();
        eprintln!("  {}\n  {}^", err.pattern, " ".repeat(column));
    }
}

async fn purge(config: &Config, args: &PurgeArgs) -> anyhow::Result<u8> {
    let sites = Sites::new(config)?;
    let site = config.site_or_default(args.site.as_deref())?;
    let prepared = match crate::purge::prepare(&sites, &site, &args.patterns, args.confirm).await {
        Ok(prepared) => prepared,
        Err(PurgeError::Pattern(err)) => {
            print_pattern_error(&err);
            return Ok(EXIT_USAGE);
        }
        Err(PurgeError::Manifest(err)) => {
            eprintln!("error: {err}");
            return Ok(manifest_exit_code(&err));
        }
        Err(err @ (PurgeError::NoPatterns | PurgeError::TooManyPatterns { .. })) => {
            eprintln!("error: {err}");
            return Ok(EXIT_USAGE);
        }
        Err(err) => return Err(err.into()),
    };
    if prepared.no_manifest {
        eprintln!(
            "warning: site `{}` has no manifest (not deployed with edgeship yet): only exact paths, and prefixes or tags the provider takes as such, can be purged",
            prepared.site.name()
        );
    }
    let (site, provider, plan, store) = (
        prepared.site.name(),
        prepared.provider(),
        &prepared.plan,
        &prepared.store,
    );
    if args.dry_run {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&plan)?);
        } else {
            print_plan(plan, site, &provider.to_string());
            println!("dry run: nothing was purged");
        }
        return Ok(EXIT_OK);
    }
    if let Some(reason) = &plan.needs_confirmation {
        eprintln!(
            "refused: purging on site `{site}` needs --confirm: {reason} (see it first with --dry-run)"
        );
        return Ok(EXIT_REFUSED);
    }
    if plan.requests.is_empty() {
        if args.json {
            println!("{}", serde_json::to_string_pretty(&plan)?);
        } else {
            println!("nothing to purge: the patterns match no deployed path on site `{site}`");
        }
        return Ok(EXIT_OK);
    }
    let mut job = prepared.job("cli");
    job::run(
        provider,
        store,
        &mut job,
        &RunOptions::from_config(&config.purge, args.wait),
    )
    .await;
    report_job(&job, args.json)
}

async fn show_status(config: &Config, id: &str, wait: bool, json: bool) -> anyhow::Result<u8> {
    let sites = Sites::new(config)?;
    let store = sites.jobs();
    let mut job = match store.load::<PurgeJob>(id).await {
        Ok(Some(job)) => job,
        Ok(None) => {
            eprintln!(
                "error: no purge job `{id}` (jobs are kept 7 days; without cache.redis_url they are only on the machine that ran them)"
            );
            return Ok(EXIT_USAGE);
        }
        Err(JobError::BadId { id, .. }) => {
            eprintln!("error: `{id}` is not a purge job id");
            return Ok(EXIT_USAGE);
        }
        Err(err) => return Err(err.into()),
    };
    if !job.is_finished() {
        let site = sites.get(&job.site)?;
        let provider = site.provider();
        let options = RunOptions::from_config(&config.purge, wait);
        // Sends batches still queued, then (with --wait) polls until done.
        job::run(provider, store, &mut job, &options).await;
        job::refresh(provider, &mut job).await;
        store.save(&job).await?;
    }
    report_job(&job, json)
}

/// Exit 2 when the provider refused our credentials or settings, else 1 (as deploys).
fn manifest_exit_code(err: &ManifestError) -> u8 {
    use edgeship_providers::ProviderError as E;
    match err {
        ManifestError::Provider(
            E::Unauthenticated { .. } | E::PermissionDenied { .. } | E::Misconfigured { .. },
        ) => EXIT_USAGE,
        _ => EXIT_PARTIAL,
    }
}

/// Error classes that need new settings or credentials before anything can succeed.
const SETTINGS_CLASSES: [&str; 3] = ["auth", "permission", "misconfigured"];

fn report_job(job: &PurgeJob, json: bool) -> anyhow::Result<u8> {
    // Credentials or settings refused: one error, exit 2 (every later batch says the same).
    if let Some(batch) = job.batches.iter().find(|b| {
        b.class
            .as_deref()
            .is_some_and(|c| SETTINGS_CLASSES.contains(&c))
    }) {
        if json {
            println!("{}", serde_json::to_string_pretty(job)?);
        }
        eprintln!(
            "error: purge {} on site `{}` stopped: {}",
            job.id,
            job.site,
            batch.error.as_deref().unwrap_or("refused")
        );
        return Ok(EXIT_USAGE);
    }
    if json {
        println!("{}", serde_json::to_string_pretty(job)?);
    } else {
        let status = serde_json::to_value(job.status)?;
        println!(
            "purge {} on site `{}` ({}): {}",
            job.id,
            job.site,
            job.provider,
            status.as_str().unwrap_or("?")
        );
        println!(
            "  {} matched paths; {}",
            job.plan.matched.len(),
            job.plan.cost.describe()
        );
        for (n, batch) in job.batches.iter().enumerate() {
            let status = serde_json::to_value(batch.status)?;
            println!(
                "  request {}: {}{}{}",
                n + 1,
                status.as_str().unwrap_or("?"),
                batch
                    .provider_id
                    .as_deref()
                    .map(|id| format!(" (provider id {id})"))
                    .unwrap_or_default(),
                batch
                    .error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default(),
            );
        }
        if job.status == JobStatus::Running {
            println!(
                "  still in progress: `edgeship purge status {} --wait` follows it",
                job.id
            );
        }
    }
    Ok(match job.status {
        JobStatus::Failed | JobStatus::Partial => EXIT_PARTIAL,
        _ if job.batches.iter().any(|b| b.status == BatchStatus::Failed) => EXIT_PARTIAL,
        _ => EXIT_OK,
    })
}

fn print_plan(plan: &PurgePlan, site: &str, provider: &str) {
    println!(
        "matched {} of {} deployed paths on site `{site}` ({provider}):",
        plan.matched.len(),
        plan.site_paths
    );
    for path in plan.matched.iter().take(MAX_PATHS_SHOWN) {
        println!("  /{path}");
    }
    if plan.matched.len() > MAX_PATHS_SHOWN {
        println!(
            "  … and {} more (--json lists them all)",
            plan.matched.len() - MAX_PATHS_SHOWN
        );
    }
    let r = &plan.reduction;
    if r.collateral > 0 {
        println!(
            "wildcards also purge {} unchanged paths (purge.max_collateral_share)",
            r.collateral
        );
    }
    println!("provider requests ({}):", plan.requests.len());
    for (n, request) in plan.requests.iter().enumerate() {
        let mut items: Vec<String> = Vec::new();
        if request.everything {
            items.push("everything".into());
        }
        items.extend(request.paths.iter().map(|p| format!("path {p}")));
        items.extend(request.prefixes.iter().map(|p| format!("prefix {p}")));
        items.extend(request.tags.iter().map(|t| format!("tag {t}")));
        let shown: Vec<&str> = items
            .iter()
            .take(MAX_PATHS_SHOWN)
            .map(String::as_str)
            .collect();
        println!("  {}. {}", n + 1, shown.join(", "));
        if items.len() > MAX_PATHS_SHOWN {
            println!("     … and {} more items", items.len() - MAX_PATHS_SHOWN);
        }
    }
    println!("cost: {}", plan.cost.describe());
    if let Some(reason) = &plan.needs_confirmation {
        println!("needs --confirm: {reason}");
    }
}
