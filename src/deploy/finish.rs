//! After the site is stored: purge what may be cached, clear the in-progress marker,
//! record what the deploy saved for analytics.

use std::collections::BTreeSet;

use super::execute::Executed;
use super::history;
use super::plan::{self, Plan};
use super::remote::IN_PROGRESS_KEY;
use super::{DeployError, DeployReport, Deployer, Target};
use crate::cache::Cache;
use crate::pipeline::ProcessedAsset;
use crate::pipeline::build::FileMessage;
use crate::pipeline::manifest::ManifestEntry;
use crate::purge::job::{BatchStatus, PurgeJob, RunOptions};

/// Finishes a deploy whose objects and manifest are stored.
pub async fn finish(
    deployer: &Deployer,
    site: &Target,
    plan: &Plan,
    assets: &[ProcessedAsset],
    executed: &Executed,
    report: &mut DeployReport,
) -> Result<(), DeployError> {
    // Purge what may be cached: changed paths and deleted ones (new paths never were).
    let mut purge_paths: BTreeSet<String> = plan
        .changed_paths
        .iter()
        .filter(|p| executed.succeeded.contains(*p))
        .cloned()
        .collect();
    // What an interrupted deploy stored may still be cached in its old form.
    purge_paths.extend(plan.carried_purges.iter().cloned());
    if executed.deleted {
        purge_paths.extend(plan.stale_paths.iter().cloned());
    }
    let site_paths: BTreeSet<String> = executed
        .manifest
        .assets
        .keys()
        .chain(&plan.stale_paths)
        .cloned()
        .collect();
    if let Some(job) = purge(deployer, site, &purge_paths, &site_paths).await {
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
    if (executed.had_work || plan.interrupted) && report.failures.is_empty() {
        site.provider()
            .delete_many(&[IN_PROGRESS_KEY.to_string()])
            .await?;
    }
    if executed.manifest_written {
        record_analytics(site, &deployer.cache, assets, executed).await;
        record_history(deployer, site, assets, executed, report).await;
    }
    Ok(())
}

/// Adds the deploy to the site's history: the manifest of what its input published.
/// A failure is logged, not fatal: the site is deployed by then.
async fn record_history(
    deployer: &Deployer,
    site: &Target,
    assets: &[ProcessedAsset],
    executed: &Executed,
    report: &DeployReport,
) {
    let mut published = crate::pipeline::manifest::Manifest::default();
    for asset in assets {
        if let Some(entry) = executed.manifest.assets.get(&asset.path) {
            published.assets.insert(asset.path.clone(), entry.clone());
        }
    }
    let record = history::DeployRecord {
        id: report.id.clone(),
        time: crate::jobs::unix_now(),
        files: published.assets.len() as u64,
        bytes: published.assets.values().map(|e| e.size).sum(),
        uploaded: report.uploaded,
        uploaded_bytes: report.uploaded_bytes,
        deltas: published
            .assets
            .values()
            .map(|e| e.deltas.len() as u64)
            .sum(),
        manifest_key: history::record_key(&report.id),
    };
    let keep = deployer.config.deploy.history;
    if let Err(err) = history::append(site.provider(), keep, record, &published).await {
        tracing::warn!(site = %site.name(), error = %err, "the deploy is not in the site's history");
    }
}

/// Purges `paths` (site paths, no leading `/`: changed and deleted ones) through the
/// purge engine, as a job: reduced to the fewest items the provider allows, batched,
/// recorded. Returns the job; a batch that failed is reported, not fatal, since the
/// site itself is deployed by then.
async fn purge(
    deployer: &Deployer,
    site: &Target,
    paths: &BTreeSet<String>,
    site_paths: &BTreeSet<String>,
) -> Option<PurgeJob> {
    if paths.is_empty() {
        return None;
    }
    let config = &deployer.config;
    let provider = site.provider();
    let plan = crate::purge::plan::plan_paths(
        paths,
        site_paths,
        &provider.capabilities(),
        config.purge.max_collateral_share,
    );
    let mut job = PurgeJob::new(site.name(), &provider.to_string(), "deploy", plan);
    let options = RunOptions::from_config(&config.purge, false);
    crate::purge::job::run(provider, &deployer.jobs, &mut job, &options).await;
    Some(job)
}

/// Records the deploy's savings. Shipped: files whose new entry went live (every object
/// stored) and that uploaded something now; a file that failed in part counts when it
/// goes up.
async fn record_analytics(
    site: &Target,
    cache: &Cache,
    assets: &[ProcessedAsset],
    executed: &Executed,
) {
    let manifest = &executed.manifest;
    let shipped: Vec<&ManifestEntry> = assets
        .iter()
        .filter_map(|asset| {
            let entry = manifest.assets.get(&asset.path)?;
            let uploaded = plan::entry_keys(&asset.path, entry)
                .iter()
                .any(|key| executed.succeeded.contains(key));
            (uploaded && *entry == asset.manifest_entry()).then_some(entry)
        })
        .collect();
    if let Err(err) = crate::analytics::record_deploy(cache, site.name(), manifest, &shipped).await
    {
        tracing::warn!(site = %site.name(), error = %err, "deploy analytics not recorded");
    }
}
