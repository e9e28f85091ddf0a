//! `edgeship edge-rules`: prints the configuration that lets an edge pick a site's
//! variants and deltas (see [`crate::edge_rules`]).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;

use super::{EXIT_OK, EXIT_USAGE};
use crate::config::Config;
use crate::edge_rules::{self, Edge, EdgeSite, Options};
use crate::site::config::ProviderKind;

/// `edgeship edge-rules` arguments.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
edgeship edge-rules --site www --for nginx > /etc/nginx/conf.d/edgeship-www.conf\n  \
edgeship edge-rules --site www --for cloudflare --out worker.js   # then: wrangler deploy\n  \
edgeship edge-rules --site www --for cloudfront --out function.js\n\n\
nginx and CloudFront get tables made from the site's manifest: regenerate them after a deploy \
(a stale nginx file only serves fewer deltas; a stale CloudFront Function can name objects the \
deploy replaced). The Worker reads the manifest from the bucket itself and needs no \
regeneration.")]
pub struct EdgeRulesArgs {
    /// The site (default: `default`, or the only configured site).
    #[arg(long)]
    pub site: Option<String>,
    /// The edge: `nginx` (serving a local site's directory), `cloudflare` (a Worker in
    /// front of R2), `cloudfront` (a CloudFront Function in front of S3).
    #[arg(long = "for", value_enum, value_name = "EDGE")]
    pub edge: Edge,
    /// Write to FILE instead of standard output.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// nginx: the directory holding the site's objects (default: a local site's root).
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// nginx: the `listen` address of the server block.
    #[arg(long, default_value = "80")]
    pub listen: String,
    /// nginx: the `server_name` of the server block.
    #[arg(long, default_value = "_")]
    pub server_name: String,
    /// Worker: the name of its R2 bucket binding.
    #[arg(long, default_value = "SITE")]
    pub binding: String,
}

/// Runs `edgeship edge-rules`.
pub(super) fn run(config: &Config, args: &EdgeRulesArgs) -> anyhow::Result<u8> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let sites = crate::site::Sites::new(config)?;
    let name = config.site_or_default(args.site.as_deref())?;
    let site = sites.get(&name)?;
    let manifest = runtime
        .block_on(site.manifest())
        .with_context(|| format!("reading the manifest of site `{name}`"))?;
    let Some(manifest) = manifest else {
        eprintln!(
            "error: site `{name}` has no manifest yet: deploy it first (`edgeship deploy DIR --site {name}`)"
        );
        return Ok(EXIT_USAGE);
    };
    let settings = site.settings();
    let (prefix, bucket) = match site.kind() {
        ProviderKind::Aws => settings
            .aws
            .as_ref()
            .map_or(("", None), |s| (s.prefix.as_str(), Some(s.bucket.as_str()))),
        ProviderKind::Cloudflare => settings
            .cloudflare
            .as_ref()
            .map_or(("", None), |s| (s.prefix.as_str(), Some(s.bucket.as_str()))),
        _ => ("", None),
    };
    let root = match (&args.root, site.kind()) {
        (Some(root), _) => Some(root.clone()),
        (None, ProviderKind::Local) => Some(settings.root.clone()),
        (None, _) => None,
    };
    let edge_site = EdgeSite {
        name: &name,
        manifest: &manifest,
        manifest_key: &config.deploy.manifest_key,
        prefix,
        bucket,
        root: root.as_deref(),
    };
    let options = Options {
        listen: args.listen.clone(),
        server_name: args.server_name.clone(),
        binding: args.binding.clone(),
        ..Options::default()
    };
    let text = match edge_rules::render(args.edge, &edge_site, &options) {
        Ok(text) => text,
        Err(err) => {
            eprintln!("error: {err}");
            return Ok(EXIT_USAGE);
        }
    };
    match &args.out {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!(
                "wrote {} ({} bytes) for site `{name}` ({} paths in its manifest)",
                path.display(),
                text.len(),
                manifest.assets.len()
            );
        }
        None => print!("{text}"),
    }
    Ok(EXIT_OK)
}
