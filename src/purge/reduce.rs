//! Reduction and batching: the fewest provider purge items that cover a set of paths,
//! split into requests that fit the provider's limits.
//!
//! One algorithm for every provider, driven only by its [`Capabilities`]:
//!
//! - Every target path is one item (`/a/app.css`); `dir/index.html` is two, because the
//!   page is also reachable (and cached) as `/dir/`.
//! - A provider that can purge a whole directory (a trailing wildcard `/dir/*` on
//!   CloudFront and Front Door, a prefix `/dir/` elsewhere) lets a subtree's items
//!   collapse into one. Collapsing also purges the subtree's unchanged paths
//!   (collateral), which reloads them from the origin. The reduction greedily takes the
//!   collapse that saves the most items per collateral path, while the collateral stays
//!   within a share of the site ([`ReducePolicy::max_collateral_share`]) and the
//!   wildcards within the provider's in-flight limit. Subtrees whose every path is a
//!   target collapse first: they cost nothing. A cover must replace at least
//!   [`MIN_ITEMS_PER_COVER`] items.
//! - The root collapses (`/*`) only when the caller confirmed purging everything.
//!
//! Compared with s3deploy's rule (drop directory levels until at most 8 paths remain,
//! else `/*`), this never widens a purge past the collateral budget, never jumps to
//! `/*` unasked, and splits what remains into batches instead.

use std::collections::{BTreeSet, HashMap};

use edgeship_providers::{Capabilities, PurgeRequest};
use serde::{Deserialize, Serialize};

/// A directory cover replaces at least this many items. Two (a page and its `/dir/`
/// form) stay exact: saving one item is not worth a wildcard, which CloudFront allows
/// far fewer of in flight (15) than paths (3,000), nor the wider purge.
pub const MIN_ITEMS_PER_COVER: usize = 3;

/// What a reduction may do.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReducePolicy {
    /// The most unchanged paths a reduction may purge in passing, as a share of the
    /// site's paths (0.0–1.0).
    pub max_collateral_share: f64,
    /// Whether the whole site may be purged at once (the user confirmed it).
    pub allow_everything: bool,
}

impl Default for ReducePolicy {
    fn default() -> Self {
        Self {
            max_collateral_share: 0.1,
            allow_everything: false,
        }
    }
}

/// A purge reduced to provider items.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reduction {
    /// Purge everything.
    pub everything: bool,
    /// Exact URL paths (`/app.css`, `/blog/`).
    pub paths: Vec<String>,
    /// Directory covers as trailing wildcards (`/assets/*`).
    pub wildcards: Vec<String>,
    /// Directory covers as prefixes (`/assets/`), for providers without wildcards.
    pub prefixes: Vec<String>,
    /// Cache tags.
    pub tags: Vec<String>,
    /// Unchanged site paths purged in passing by the directory covers.
    pub collateral: usize,
}

impl Reduction {
    /// Items sent to the provider (each path, wildcard, prefix and tag; everything is one).
    pub fn items(&self) -> usize {
        if self.everything {
            return 1;
        }
        self.paths.len() + self.wildcards.len() + self.prefixes.len() + self.tags.len()
    }

    /// Whether nothing would be purged.
    pub fn is_empty(&self) -> bool {
        self.items() == 0
    }

    /// Whether the requests purge site path `path` (no leading `/`).
    pub fn covers(&self, path: &str) -> bool {
        let url = format!("/{path}");
        self.everything
            || self.paths.contains(&url)
            || self
                .wildcards
                .iter()
                .any(|w| url.starts_with(w.trim_end_matches('*')))
            || self.prefixes.iter().any(|p| url.starts_with(p.as_str()))
    }
}

/// The URL paths that serve site path `path`: itself, and `dir/` for `dir/index.html`.
pub fn url_forms(path: &str) -> impl Iterator<Item = String> + '_ {
    let dir = path
        .strip_suffix("index.html")
        .filter(|dir| dir.is_empty() || dir.ends_with('/'));
    std::iter::once(format!("/{path}")).chain(dir.map(|dir| format!("/{dir}")))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    Collapsed,
    /// Below a collapsed directory.
    Covered,
}

#[derive(Debug)]
struct Node {
    dir: String,
    parent: Option<usize>,
    children: Vec<usize>,
    /// Site paths in the subtree.
    total: usize,
    /// Target paths in the subtree.
    targets: usize,
    /// Items the subtree needs as currently reduced.
    items: usize,
    /// Collateral of the subtree as currently reduced.
    collateral: usize,
    /// Wildcards in the subtree as currently reduced.
    wildcards: usize,
    state: State,
}

impl Node {
    fn new(dir: String, parent: Option<usize>) -> Self {
        Self {
            dir,
            parent,
            children: Vec::new(),
            total: 0,
            targets: 0,
            items: 0,
            collateral: 0,
            wildcards: 0,
            state: State::Open,
        }
    }
}

/// The directory tree of a site, with target counts per subtree.
struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    fn build(targets: &BTreeSet<String>, site: &BTreeSet<String>) -> Self {
        let mut nodes = vec![Node::new(String::new(), None)];
        let mut index: HashMap<String, usize> = HashMap::new();
        for path in site.union(targets) {
            let target = targets.contains(path);
            let items = if target { url_forms(path).count() } else { 0 };
            let mut node = 0;
            loop {
                let n = &mut nodes[node];
                n.total += 1;
                if target {
                    n.targets += 1;
                    n.items += items;
                }
                let depth = n.dir.len();
                let Some(slash) = path[depth..].find('/') else {
                    break;
                };
                let dir = &path[..depth + slash + 1];
                node = match index.get(dir) {
                    Some(&child) => child,
                    None => {
                        let child = nodes.len();
                        nodes.push(Node::new(dir.to_string(), Some(node)));
                        nodes[node].children.push(child);
                        index.insert(dir.to_string(), child);
                        child
                    }
                };
            }
        }
        Self { nodes }
    }

    /// Collapses node `i` into one cover, updating its ancestors.
    fn collapse(&mut self, i: usize) {
        let node = &self.nodes[i];
        let new_collateral = node.total - node.targets;
        let (d_items, d_collateral, d_wildcards) = (
            1 - node.items as isize,
            new_collateral as isize - node.collateral as isize,
            1 - node.wildcards as isize,
        );
        let node = &mut self.nodes[i];
        node.items = 1;
        node.collateral = new_collateral;
        node.wildcards = 1;
        node.state = State::Collapsed;
        let mut stack = node.children.clone();
        while let Some(child) = stack.pop() {
            self.nodes[child].state = State::Covered;
            stack.extend(self.nodes[child].children.iter().copied());
        }
        let mut up = self.nodes[i].parent;
        while let Some(p) = up {
            let n = &mut self.nodes[p];
            n.items = n.items.saturating_add_signed(d_items);
            n.collateral = n.collateral.saturating_add_signed(d_collateral);
            n.wildcards = n.wildcards.saturating_add_signed(d_wildcards);
            up = n.parent;
        }
    }
}

/// Reduces `targets` (site paths without the leading `/`) to provider items.
///
/// `site` is every path the site serves (the manifest, plus deleted paths still
/// cached); targets outside it are purged exactly. Tags are not handled here (see
/// [`super::plan`]).
pub fn reduce(
    targets: &BTreeSet<String>,
    site: &BTreeSet<String>,
    caps: &Capabilities,
    policy: &ReducePolicy,
) -> Reduction {
    if targets.is_empty() {
        return Reduction::default();
    }
    let mut tree = Tree::build(targets, site);
    let can_cover = caps.trailing_wildcards || caps.purge_prefixes;
    if can_cover {
        let universe = tree.nodes[0].total;
        let budget = (policy.max_collateral_share.clamp(0.0, 1.0) * universe as f64) as usize;
        let wildcard_cap = if caps.trailing_wildcards {
            caps.max_purge_wildcards_in_flight.unwrap_or(usize::MAX)
        } else {
            usize::MAX
        };
        loop {
            let root = &tree.nodes[0];
            let (used, wildcards) = (root.collateral, root.wildcards);
            let mut best: Option<(usize, f64, usize)> = None;
            for (i, node) in tree.nodes.iter().enumerate() {
                if node.state != State::Open || node.items < MIN_ITEMS_PER_COVER {
                    continue;
                }
                if i == 0 && !(policy.allow_everything && caps.purge_everything) {
                    continue;
                }
                let extra = (node.total - node.targets) - node.collateral;
                if used + extra > budget {
                    continue;
                }
                if wildcards + 1 > wildcard_cap.saturating_add(node.wildcards) && i != 0 {
                    continue;
                }
                let save = node.items - 1;
                let score = save as f64 / (extra as f64 + 1.0);
                let better = match best {
                    None => true,
                    Some((_, best_score, best_save)) => {
                        score > best_score || (score == best_score && save > best_save)
                    }
                };
                if better {
                    best = Some((i, score, save));
                }
            }
            match best {
                Some((i, _, _)) => tree.collapse(i),
                None => break,
            }
        }
    }
    let mut reduction = Reduction {
        collateral: tree.nodes[0].collateral,
        ..Reduction::default()
    };
    if tree.nodes[0].state == State::Collapsed {
        reduction.everything = true;
        return reduction;
    }
    for node in &tree.nodes {
        if node.state == State::Collapsed {
            if caps.trailing_wildcards {
                reduction.wildcards.push(format!("/{}*", node.dir));
            } else {
                reduction.prefixes.push(format!("/{}", node.dir));
            }
        }
    }
    let dirs: HashMap<&str, State> = tree
        .nodes
        .iter()
        .map(|n| (n.dir.as_str(), n.state))
        .collect();
    let mut paths = BTreeSet::new();
    for path in targets {
        let dir = path.rfind('/').map_or("", |slash| &path[..=slash]);
        if dirs.get(dir).copied() == Some(State::Open) {
            paths.extend(url_forms(path));
        }
    }
    reduction.paths = paths.into_iter().collect();
    reduction.wildcards.sort();
    reduction.prefixes.sort();
    reduction
}

/// Splits a reduction into requests within the provider's per-call limits. Paths and
/// wildcards share requests; prefixes and tags get their own (some APIs take one kind
/// per call). Caller references are set when the requests are run as a job.
pub fn batches(reduction: &Reduction, caps: &Capabilities) -> Vec<PurgeRequest> {
    if reduction.everything {
        return vec![PurgeRequest {
            everything: true,
            ..PurgeRequest::default()
        }];
    }
    let per_call = caps.max_purge_items_per_call.max(1);
    let wildcards_per_call = caps.max_purge_wildcards_per_call.max(1);
    let mut requests = Vec::new();
    let mut current = PurgeRequest::default();
    let mut current_wildcards = 0;
    for (path, wildcard) in reduction
        .wildcards
        .iter()
        .map(|w| (w, true))
        .chain(reduction.paths.iter().map(|p| (p, false)))
    {
        if current.paths.len() == per_call || (wildcard && current_wildcards == wildcards_per_call)
        {
            requests.push(std::mem::take(&mut current));
            current_wildcards = 0;
        }
        current.paths.push(path.clone());
        current_wildcards += usize::from(wildcard);
    }
    if !current.paths.is_empty() {
        requests.push(current);
    }
    let operations_per_call = caps
        .max_purge_operations_per_call
        .unwrap_or(per_call)
        .clamp(1, per_call);
    for chunk in reduction.prefixes.chunks(operations_per_call) {
        requests.push(PurgeRequest {
            prefixes: chunk.to_vec(),
            ..PurgeRequest::default()
        });
    }
    for chunk in reduction.tags.chunks(operations_per_call) {
        requests.push(PurgeRequest {
            tags: chunk.to_vec(),
            ..PurgeRequest::default()
        });
    }
    requests
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn set<S: AsRef<str>>(paths: &[S]) -> BTreeSet<String> {
        paths.iter().map(|p| p.as_ref().to_string()).collect()
    }

    fn policy(share: f64) -> ReducePolicy {
        ReducePolicy {
            max_collateral_share: share,
            allow_everything: false,
        }
    }

    #[test]
    fn five_thousand_changed_assets_become_one_wildcard() {
        let assets: Vec<String> = (0..5000).map(|i| format!("assets/{i}.js")).collect();
        let mut site = set(&assets);
        site.extend(set(&["index.html", "about/index.html", "app.css"]));
        let reduction = reduce(
            &set(&assets),
            &site,
            &Capabilities::cloudfront(),
            &policy(0.1),
        );
        assert_eq!(reduction.wildcards, ["/assets/*"]);
        assert!(reduction.paths.is_empty() && !reduction.everything);
        assert_eq!(reduction.collateral, 0);
        assert_eq!(batches(&reduction, &Capabilities::cloudfront()).len(), 1);
    }

    #[test]
    fn pages_are_purged_with_their_directory_form_and_few_changes_stay_exact() {
        let site = set(&["index.html", "blog/index.html", "blog/a.html", "app.css"]);
        let targets = set(&["index.html", "blog/index.html"]);
        let reduction = reduce(&targets, &site, &Capabilities::cloudfront(), &policy(0.0));
        assert_eq!(
            reduction.paths,
            ["/", "/blog/", "/blog/index.html", "/index.html"]
        );
        assert!(reduction.wildcards.is_empty());
    }

    #[test]
    fn a_mixed_tree_collapses_only_within_the_collateral_budget() {
        // 40 changed of 50 under css/, 3 changed of 100 under img/, one page.
        let mut site = BTreeSet::new();
        let mut targets = BTreeSet::new();
        for i in 0..50 {
            site.insert(format!("css/{i}.css"));
            if i < 40 {
                targets.insert(format!("css/{i}.css"));
            }
        }
        for i in 0..100 {
            site.insert(format!("img/{i}.png"));
            if i < 3 {
                targets.insert(format!("img/{i}.png"));
            }
        }
        site.insert("about.html".into());
        targets.insert("about.html".into());
        let cf = Capabilities::cloudfront();
        // 10 % of 151 paths = 15 collateral allowed: css/ costs 10, img/ would cost 97.
        let reduction = reduce(&targets, &site, &cf, &policy(0.1));
        assert_eq!(reduction.wildcards, ["/css/*"]);
        assert_eq!(
            reduction.paths,
            ["/about.html", "/img/0.png", "/img/1.png", "/img/2.png"]
        );
        assert_eq!(reduction.collateral, 10);
        // No budget: nothing with collateral collapses.
        let strict = reduce(&targets, &site, &cf, &policy(0.0));
        assert_eq!(strict.items(), 44);
        // The root is never wildcarded without confirmation, whatever the budget.
        let loose = reduce(&targets, &site, &cf, &policy(1.0));
        assert!(!loose.everything);
        assert_eq!(loose.wildcards, ["/css/*", "/img/*"]);
        let confirmed = reduce(
            &targets,
            &site,
            &cf,
            &ReducePolicy {
                max_collateral_share: 1.0,
                allow_everything: true,
            },
        );
        assert!(confirmed.everything);
        assert_eq!(batches(&confirmed, &cf).len(), 1);
    }

    #[test]
    fn wildcards_stay_within_the_in_flight_limit_and_batches_within_the_call_limits() {
        // 20 directories, each entirely changed: 20 free collapses, but only 15 wildcards.
        let targets: BTreeSet<String> = (0..20)
            .flat_map(|d| (0..10).map(move |f| format!("d{d:02}/{f}.js")))
            .collect();
        let cf = Capabilities::cloudfront();
        let reduction = reduce(&targets, &targets, &cf, &policy(0.0));
        assert_eq!(reduction.wildcards.len(), 15);
        assert_eq!(reduction.paths.len(), 50);
        let requests = batches(&reduction, &cf);
        for request in &requests {
            cf.check_purge(request).unwrap();
        }
        let exact: Vec<String> = (0..7000).map(|i| format!("/{i}.css")).collect();
        let big = Reduction {
            paths: exact,
            ..Reduction::default()
        };
        let requests = batches(&big, &cf);
        assert_eq!(
            requests.iter().map(|r| r.paths.len()).collect::<Vec<_>>(),
            [3000, 3000, 1000]
        );
    }

    #[test]
    fn providers_without_wildcards_get_prefixes_or_exact_paths() {
        let targets = set(&["a/1.js", "a/2.js", "a/3.js"]);
        let prefixes_only = Capabilities {
            trailing_wildcards: false,
            purge_prefixes: true,
            ..Capabilities::default()
        };
        let reduction = reduce(&targets, &targets, &prefixes_only, &policy(0.0));
        assert_eq!(reduction.prefixes, ["/a/"]);
        let exact_only = Capabilities {
            trailing_wildcards: false,
            ..Capabilities::default()
        };
        let reduction = reduce(&targets, &targets, &exact_only, &policy(1.0));
        assert_eq!(reduction.paths, ["/a/1.js", "/a/2.js", "/a/3.js"]);
    }

    fn arb_caps() -> impl Strategy<Value = Capabilities> {
        (any::<bool>(), any::<bool>(), 1usize..8, 1usize..4).prop_map(
            |(wildcards, prefixes, per_call, wildcards_per_call)| Capabilities {
                trailing_wildcards: wildcards,
                purge_prefixes: prefixes,
                max_purge_items_per_call: per_call,
                max_purge_wildcards_per_call: wildcards_per_call,
                max_purge_wildcards_in_flight: Some(wildcards_per_call * 2),
                ..Capabilities::default()
            },
        )
    }

    proptest! {
        #[test]
        fn reductions_cover_every_target_stay_in_budget_and_batches_fit_the_limits(
            site in prop::collection::btree_set("[a-c]{1,2}(/[a-c]{1,2}){0,3}(/index\\.html)?", 1..60),
            pick in prop::collection::vec(any::<bool>(), 60),
            caps in arb_caps(),
            share in 0.0f64..0.5,
        ) {
            let targets: BTreeSet<String> = site
                .iter()
                .zip(pick.iter().cycle())
                .filter(|(_, pick)| **pick)
                .map(|(p, _)| p.clone())
                .collect();
            let reduction = reduce(&targets, &site, &caps, &policy(share));
            for path in &targets {
                prop_assert!(reduction.covers(path), "{path} not covered by {reduction:?}");
            }
            let covered_unchanged = site.iter().filter(|p| !targets.contains(*p) && reduction.covers(p)).count();
            prop_assert_eq!(covered_unchanged, reduction.collateral);
            prop_assert!(reduction.collateral as f64 <= share * site.len() as f64);
            if !caps.trailing_wildcards && !caps.purge_prefixes {
                prop_assert_eq!(covered_unchanged, 0, "exact-only providers purge nothing else");
            }
            let exact_items: usize = targets.iter().map(|p| url_forms(p).count()).sum();
            prop_assert!(reduction.items() <= exact_items.max(1));
            let requests = batches(&reduction, &caps);
            let mut sent = 0;
            for request in &requests {
                prop_assert!(caps.check_purge(request).is_ok(), "{:?}", caps.check_purge(request));
                sent += request.paths.len() + request.prefixes.len() + request.tags.len();
            }
            prop_assert_eq!(sent, reduction.items());
        }
    }
}
