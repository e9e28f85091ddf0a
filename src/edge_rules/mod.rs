//! `edgeship edge-rules`: the configuration that lets an edge in front of a site's store
//! answer as edgeship's own origin does.
//!
//! A site with the `variants` strategy stores each asset as its identity plus sibling
//! objects (`app.js.br`, `.gz`, `.zst`) and dictionary deltas (`app.js.<sha-256>.dcz`).
//! An object store cannot choose among them; something at the edge must, per request,
//! from `Accept-Encoding` and `Available-Dictionary`, and must add what a store cannot
//! keep per object (`Vary`, `Use-As-Dictionary`). Each generator here writes that piece
//! for one kind of edge:
//!
//! - [`nginx`]: a config serving a local site's directory with `try_files` over the
//!   candidates and maps (generated from the manifest) for the headers.
//! - [`worker`]: a Cloudflare Worker in front of R2 that reads the site's manifest from
//!   the bucket, so it never goes stale.
//! - [`cloudfront`]: a CloudFront Function (viewer request and response) carrying a table
//!   of what each path has stored.
//!
//! The JavaScript generators share `negotiate.js`, the origin's negotiation rules
//! (`src/http/origin/negotiate.rs`, `dictionary.rs`) written for the edge.

pub mod cloudfront;
pub mod nginx;
pub mod worker;

use std::path::Path;

use crate::pipeline::manifest::Manifest;

/// The negotiation shared by the JavaScript edges.
const NEGOTIATE_JS: &str = include_str!("negotiate.js");

/// The edges `edgeship edge-rules` writes configuration for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Edge {
    /// A CloudFront Function for S3 behind CloudFront.
    Cloudfront,
    /// A Cloudflare Worker for R2.
    Cloudflare,
    /// nginx serving a local site's directory.
    Nginx,
}

/// What the generators need to know about a site.
#[derive(Debug, Clone, Copy)]
pub struct EdgeSite<'a> {
    /// The site's name.
    pub name: &'a str,
    /// The site's current manifest.
    pub manifest: &'a Manifest,
    /// Where the manifest is stored, relative to the site's prefix (`.edgeship/manifest`).
    pub manifest_key: &'a str,
    /// The key prefix of the site's objects in its bucket (`""` or `www/`).
    pub prefix: &'a str,
    /// The bucket, when the site has one (for the Worker's binding).
    pub bucket: Option<&'a str>,
    /// The directory holding the site's objects (for nginx).
    pub root: Option<&'a Path>,
}

/// Why the configuration for an edge cannot be written.
#[derive(Debug, thiserror::Error)]
pub enum EdgeRulesError {
    /// nginx serves files: it needs the directory that holds the site's objects.
    #[error(
        "nginx serves files from disk, and site `{site}` is not a local site: pass --root DIR \
         with a copy of its objects (e.g. `rclone sync` of its bucket)"
    )]
    NoRoot {
        /// The site.
        site: String,
    },
    /// A CloudFront Function is limited to 10 KB of code, and the site's table is larger.
    #[error(
        "the CloudFront Function for site `{site}` would be {size} bytes, over CloudFront \
         Functions' limit of {limit} bytes ({paths} paths need a table entry). Serve the \
         site's variants with a Cloudflare Worker or nginx, or use `single:br` / \
         `single:gzip` rules for the paths that need no choice"
    )]
    TooLarge {
        /// The site.
        site: String,
        /// The function's size.
        size: usize,
        /// The limit.
        limit: usize,
        /// Paths with a table entry.
        paths: usize,
    },
    /// A value the edge must send cannot be written into its configuration.
    #[error("{what} of /{path} cannot be written into the {edge} configuration: {why}")]
    Unwritable {
        /// The edge.
        edge: &'static str,
        /// The path.
        path: String,
        /// Which value.
        what: String,
        /// Why not.
        why: &'static str,
    },
}

/// Writes the configuration for `edge`.
pub fn render(
    edge: Edge,
    site: &EdgeSite<'_>,
    options: &Options,
) -> Result<String, EdgeRulesError> {
    match edge {
        Edge::Nginx => nginx::render(site, options),
        Edge::Cloudflare => Ok(worker::render(site, options)),
        Edge::Cloudfront => cloudfront::render(site),
    }
}

/// Settings of the generated configuration.
#[derive(Debug, Clone)]
pub struct Options {
    /// nginx: the `listen` address.
    pub listen: String,
    /// nginx: the `server_name`.
    pub server_name: String,
    /// Worker: the name of the R2 binding.
    pub binding: String,
    /// Worker: how often the manifest's ETag is checked, in milliseconds.
    pub recheck_ms: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            listen: "80".into(),
            server_name: "_".into(),
            binding: "SITE".into(),
            recheck_ms: 5_000,
        }
    }
}
