//! A Cloudflare Worker in front of a site's R2 bucket (`worker.js`).
//!
//! The Worker reads the site's manifest from the bucket itself and re-checks its ETag
//! every few seconds, so it needs no regeneration after a deploy and never names an
//! object the manifest does not (a delta left behind by an interrupted deploy is never
//! sent). Its cache keys carry the representation's content hash: a deploy cannot leave a
//! stale cached copy behind.

use super::{EdgeSite, NEGOTIATE_JS, Options};

const WORKER_JS: &str = include_str!("worker.js");

/// Writes the Worker (an ES module) for `site`.
pub fn render(site: &EdgeSite<'_>, options: &Options) -> String {
    let settings = serde_json::json!({
        "site": site.name,
        "binding": options.binding,
        "prefix": site.prefix,
        "manifest_key": format!("{}{}", site.prefix, site.manifest_key),
        "recheck_ms": options.recheck_ms,
    });
    let bucket = site.bucket.unwrap_or("<your R2 bucket>");
    WORKER_JS
        .replace("__SETTINGS__", &settings.to_string())
        .replace("__NEGOTIATE__", NEGOTIATE_JS.trim_end())
        .replace("__BINDING__", &options.binding)
        .replace("__BUCKET__", bucket)
        .replace("__SITE__", site.name)
}
