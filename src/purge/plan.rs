//! Purge plans: patterns → matched paths → reduced items → provider requests, with the
//! cost and whether the user must confirm. A dry run prints a plan; a purge job runs one.

use std::collections::BTreeSet;

use edgeship_providers::{Capabilities, PurgeRequest};
use serde::{Deserialize, Serialize};

use super::pattern::Pattern;
use super::reduce::{self, ReducePolicy, Reduction};
use crate::pipeline::manifest::Manifest;

/// How a plan is made.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanOptions {
    /// Collateral budget of the reduction.
    pub max_collateral_share: f64,
    /// A purge matching more than this share of the site needs confirmation.
    pub confirm_share: f64,
    /// The user confirmed (`--confirm`).
    pub confirmed: bool,
}

/// What a purge will do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PurgePlan {
    /// The patterns as given.
    pub patterns: Vec<String>,
    /// Deployed paths (no leading `/`) the patterns match.
    pub matched: Vec<String>,
    /// Paths the site has.
    pub site_paths: usize,
    /// The reduced items.
    pub reduction: Reduction,
    /// The provider requests, in order.
    #[schema(value_type = Vec<Object>)]
    pub requests: Vec<PurgeRequest>,
    /// What it costs.
    pub cost: PurgeCost,
    /// Why confirmation is needed, when it is and was not given.
    pub needs_confirmation: Option<String>,
}

/// Plans a purge of `patterns` on a site deployed as `manifest`.
///
/// Tags and prefixes go to the provider as such when it supports them (they then also
/// cover paths no manifest lists); otherwise they expand against the manifest like globs.
/// Exact paths are purged even when not deployed (an origin may serve them).
pub fn plan(
    patterns: &[(String, Pattern)],
    manifest: &Manifest,
    caps: &Capabilities,
    options: &PlanOptions,
) -> PurgePlan {
    let site: BTreeSet<String> = manifest.assets.keys().cloned().collect();
    let matched = super::expand(
        &patterns.iter().map(|(_, p)| p.clone()).collect::<Vec<_>>(),
        manifest,
    );
    let everything = patterns
        .iter()
        .any(|(_, p)| matches!(p, Pattern::Everything));
    let share = if site.is_empty() {
        0.0
    } else {
        matched.len() as f64 / site.len() as f64
    };
    let needs_confirmation = if options.confirmed {
        None
    } else if everything {
        Some("it purges everything the CDN caches for the site".to_string())
    } else if share > options.confirm_share && matched.len() > 1 {
        Some(format!(
            "it matches {} of {} paths ({:.0}%), above the {:.0}% threshold (purge.confirm_share)",
            matched.len(),
            site.len(),
            share * 100.0,
            options.confirm_share * 100.0
        ))
    } else {
        None
    };
    let policy = ReducePolicy {
        max_collateral_share: options.max_collateral_share,
        allow_everything: options.confirmed,
    };
    let mut direct = Reduction::default();
    let mut targets = BTreeSet::new();
    for (_, pattern) in patterns {
        match pattern {
            Pattern::Everything if options.confirmed && caps.purge_everything => {
                direct.everything = true;
            }
            Pattern::Tag(tag) if caps.purge_tags => direct.tags.push(tag.clone()),
            Pattern::Prefix(prefix) if caps.purge_prefixes => direct.prefixes.push(prefix.clone()),
            Pattern::Prefix(prefix) if caps.trailing_wildcards => {
                direct.wildcards.push(format!("{prefix}*"));
            }
            Pattern::Exact(path) => {
                let path = &path[1..];
                targets.insert(if path.is_empty() {
                    "index.html".to_string()
                } else {
                    path.to_string()
                });
            }
            other => targets.extend(
                manifest
                    .assets
                    .iter()
                    .filter(|(path, entry)| other.matches(path, &entry.tags))
                    .map(|(path, _)| path.clone()),
            ),
        }
    }
    // Paths a direct item already covers need no item of their own.
    targets.retain(|path| !direct.covers(path));
    let mut reduction = if direct.everything {
        Reduction {
            everything: true,
            ..Reduction::default()
        }
    } else {
        let mut reduced = reduce::reduce(&targets, &site, caps, &policy);
        if reduced.everything {
            reduced
        } else {
            merge(&mut reduced.wildcards, direct.wildcards);
            merge(&mut reduced.prefixes, direct.prefixes);
            merge(&mut reduced.tags, direct.tags);
            reduced
        }
    };
    if reduction.everything {
        reduction.collateral = site.len().saturating_sub(matched.len());
    }
    let requests = reduce::batches(&reduction, caps);
    let cost = PurgeCost::estimate(&requests, caps, None);
    PurgePlan {
        patterns: patterns.iter().map(|(source, _)| source.clone()).collect(),
        matched: matched.into_iter().collect(),
        site_paths: site.len(),
        reduction,
        requests,
        cost,
        needs_confirmation,
    }
}

/// Plans the purge of concrete site paths (a deploy's changed and deleted paths) on a
/// site serving `site` paths: reduced and batched, never everything, no confirmation.
pub fn plan_paths(
    targets: &BTreeSet<String>,
    site: &BTreeSet<String>,
    caps: &Capabilities,
    max_collateral_share: f64,
) -> PurgePlan {
    let policy = ReducePolicy {
        max_collateral_share,
        allow_everything: false,
    };
    let reduction = reduce::reduce(targets, site, caps, &policy);
    let requests = reduce::batches(&reduction, caps);
    PurgePlan {
        patterns: Vec::new(),
        matched: targets.iter().cloned().collect(),
        site_paths: site.union(targets).count(),
        cost: PurgeCost::estimate(&requests, caps, None),
        reduction,
        requests,
        needs_confirmation: None,
    }
}

fn merge(into: &mut Vec<String>, more: Vec<String>) {
    into.extend(more);
    into.sort();
    into.dedup();
}

/// What a purge costs: calls, items, and for billed providers (CloudFront) the paths
/// counted against the monthly free allowance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PurgeCost {
    /// Provider calls.
    pub requests: usize,
    /// Items sent (paths, wildcards, prefixes, tags; everything counts one).
    pub items: usize,
    /// Items billed per path (0 when the provider does not bill purges).
    pub billed_paths: u64,
    /// Free billed paths per month, when the provider bills purges.
    pub free_paths_per_month: Option<u64>,
    /// Billed paths edgeship already sent this month, when known.
    pub used_this_month: Option<u64>,
    /// Estimated price beyond the free allowance, in millionths of a US dollar.
    pub estimated_micro_usd: u64,
}

impl PurgeCost {
    /// The cost of sending `requests`, given the billed paths already used this month.
    pub fn estimate(
        requests: &[PurgeRequest],
        caps: &Capabilities,
        used_this_month: Option<u64>,
    ) -> Self {
        let items: usize = requests
            .iter()
            .map(|r| {
                if r.everything {
                    1
                } else {
                    r.paths.len() + r.prefixes.len() + r.tags.len()
                }
            })
            .sum();
        let billed_paths = if caps.free_purge_paths_per_month.is_some() {
            items as u64
        } else {
            0
        };
        let over = caps.free_purge_paths_per_month.map_or(0, |free| {
            let used = used_this_month.unwrap_or(0);
            (used + billed_paths).saturating_sub(free.max(used))
        });
        Self {
            requests: requests.len(),
            items,
            billed_paths,
            free_paths_per_month: caps.free_purge_paths_per_month,
            used_this_month,
            estimated_micro_usd: over * caps.purge_path_price_micro_usd,
        }
    }

    /// One line for people: `2 requests, 14 items; 14 billed paths (…)`.
    pub fn describe(&self) -> String {
        let mut line = format!(
            "{} request{}, {} item{}",
            self.requests,
            plural(self.requests),
            self.items,
            plural(self.items)
        );
        if let Some(free) = self.free_paths_per_month {
            line.push_str(&format!(
                "; {} billed path{} against {free} free a month",
                self.billed_paths,
                plural(self.billed_paths as usize)
            ));
            match self.used_this_month {
                Some(used) => line.push_str(&format!(" ({used} used this month by edgeship)")),
                None => line.push_str(" (use this month unknown)"),
            }
            line.push_str(&format!(
                ", about ${:.3} beyond the allowance",
                self.estimated_micro_usd as f64 / 1e6
            ));
        }
        line
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::purge::tests::manifest;

    fn patterns(inputs: &[&str]) -> Vec<(String, Pattern)> {
        inputs
            .iter()
            .map(|i| (i.to_string(), Pattern::parse(i).unwrap()))
            .collect()
    }

    const OPTIONS: PlanOptions = PlanOptions {
        max_collateral_share: 0.1,
        confirm_share: 0.5,
        confirmed: false,
    };

    fn site() -> Manifest {
        let mut paths: Vec<(String, Vec<&str>)> = vec![
            ("index.html".into(), vec![]),
            ("blog/index.html".into(), vec![]),
            ("blog/a.html".into(), vec!["post"]),
            ("app.css".into(), vec![]),
        ];
        for i in 0..20 {
            paths.push((format!("img/{i}.png"), vec![]));
        }
        let refs: Vec<(&str, &[&str])> = paths
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_slice()))
            .collect();
        manifest(&refs)
    }

    #[test]
    fn cloudfront_gets_wildcards_for_prefixes_and_paths_for_tags() {
        let cf = Capabilities::cloudfront();
        let plan = plan(
            &patterns(&["/blog/", "tag:post", "/app.css", "/gone.js"]),
            &site(),
            &cf,
            &OPTIONS,
        );
        assert_eq!(plan.matched, ["app.css", "blog/a.html", "blog/index.html"]);
        assert_eq!(plan.reduction.wildcards, ["/blog/*"]);
        assert_eq!(plan.reduction.paths, ["/app.css", "/gone.js"]);
        assert_eq!(plan.requests.len(), 1);
        assert_eq!(plan.cost.billed_paths, 3);
        assert_eq!(plan.cost.free_paths_per_month, Some(1000));
        assert!(plan.needs_confirmation.is_none());
    }

    #[test]
    fn tag_capable_providers_get_tags_and_prefixes_as_such() {
        let caps = Capabilities {
            purge_tags: true,
            purge_prefixes: true,
            trailing_wildcards: false,
            ..Capabilities::default()
        };
        let plan = plan(
            &patterns(&["tag:post", "/img/", "/"]),
            &site(),
            &caps,
            &OPTIONS,
        );
        assert_eq!(plan.reduction.tags, ["post"]);
        assert_eq!(plan.reduction.prefixes, ["/img/"]);
        assert_eq!(plan.reduction.paths, ["/", "/index.html"]);
        assert_eq!(plan.requests.len(), 3, "one kind per request");
        assert_eq!(plan.cost.billed_paths, 0);
    }

    #[test]
    fn large_or_total_purges_need_confirmation() {
        let cf = Capabilities::cloudfront();
        let big = plan(&patterns(&["/img/**"]), &site(), &cf, &OPTIONS);
        assert!(
            big.needs_confirmation
                .as_deref()
                .unwrap()
                .contains("20 of 24 paths"),
            "{:?}",
            big.needs_confirmation
        );
        let all = plan(&patterns(&["/*"]), &site(), &cf, &OPTIONS);
        assert!(all.needs_confirmation.unwrap().contains("everything"));
        let confirmed = plan(
            &patterns(&["/*"]),
            &site(),
            &cf,
            &PlanOptions {
                confirmed: true,
                ..OPTIONS
            },
        );
        assert!(confirmed.needs_confirmation.is_none());
        assert!(confirmed.reduction.everything);
        assert_eq!(confirmed.requests.len(), 1);
        assert!(confirmed.requests[0].everything);
    }

    #[test]
    fn cost_counts_paths_beyond_the_free_allowance() {
        let cf = Capabilities::cloudfront();
        let requests = vec![PurgeRequest::of_paths((0..30).map(|i| format!("/{i}")))];
        let within = PurgeCost::estimate(&requests, &cf, Some(900));
        assert_eq!(within.estimated_micro_usd, 0);
        let beyond = PurgeCost::estimate(&requests, &cf, Some(990));
        assert_eq!(beyond.estimated_micro_usd, 20 * 5000);
        assert!(
            beyond.describe().contains("$0.100"),
            "{}",
            beyond.describe()
        );
        let already_over = PurgeCost::estimate(&requests, &cf, Some(5000));
        assert_eq!(already_over.estimated_micro_usd, 30 * 5000);
    }
}
