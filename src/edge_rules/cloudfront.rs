//! A CloudFront Function for a site on S3 behind CloudFront (`cloudfront.js`).
//!
//! CloudFront Functions cannot look at the bucket, so the function carries a table of
//! what each path has stored (its siblings, its deltas and the dictionaries they are made
//! from, its `Use-As-Dictionary` match), generated from the manifest: it must be
//! published again after each deploy. Only paths that need a choice or a header are in
//! the table; the rest are served as stored. CloudFront limits a function to 10 KB, so
//! this suits small sites (the fixture site's 21 paths make 9.5 KB); larger ones are refused with
//! a clear error.
//!
//! The rewritten URI is CloudFront's cache key, and a purge names the path, not its
//! siblings: so only paths that never need a purge get a choice — immutable ones
//! (fingerprinted names) and ones CloudFront keeps no longer than [`MAX_REWRITTEN_AGE`]
//! seconds (pages with `max-age=0, must-revalidate`). Others are served as stored, where
//! CloudFront's own compression can still apply.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{EdgeRulesError, EdgeSite, NEGOTIATE_JS};
use crate::pipeline::compress::Encoding;
use crate::pipeline::delta::Sha256;

const CLOUDFRONT_JS: &str = include_str!("cloudfront.js");

/// CloudFront Functions' limit on a function's code.
pub const MAX_FUNCTION_BYTES: usize = 10 * 1024;

/// The longest time (seconds) a rewritten path may stay in CloudFront's cache: a purge
/// of the path cannot reach its siblings, so they expire instead.
pub const MAX_REWRITTEN_AGE: u64 = 300;

/// Whether CloudFront keeps a response with `cache_control` no longer than
/// [`MAX_REWRITTEN_AGE`], or it never changes (immutable): then a purge is never needed.
fn expires_soon(cache_control: &str) -> bool {
    let mut max_age = None;
    let mut s_maxage = None;
    for directive in cache_control.split(',') {
        let directive = directive.trim().to_ascii_lowercase();
        if directive == "immutable" {
            return true;
        }
        if let Some(v) = directive.strip_prefix("s-maxage=") {
            s_maxage = v.trim_matches('"').parse::<u64>().ok();
        } else if let Some(v) = directive.strip_prefix("max-age=") {
            max_age = v.trim_matches('"').parse::<u64>().ok();
        } else if directive == "no-store" || directive == "no-cache" {
            max_age = max_age.or(Some(0));
        }
    }
    s_maxage
        .or(max_age)
        .is_some_and(|age| age <= MAX_REWRITTEN_AGE)
}

/// JavaScript without its comment lines and indentation (CloudFront counts every byte).
fn compact(js: &str) -> String {
    js.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Writes the CloudFront Function for `site`.
pub fn render(site: &EdgeSite<'_>) -> Result<String, EdgeRulesError> {
    let mut dictionaries: BTreeMap<Sha256, usize> = BTreeMap::new();
    let mut paths = serde_json::Map::new();
    for (path, entry) in &site.manifest.assets {
        if !expires_soon(&entry.cache_control) {
            continue;
        }
        let mut flags = 0;
        for (encoding, bit) in [(Encoding::Br, 1), (Encoding::Zstd, 2), (Encoding::Gzip, 4)] {
            if entry.single.is_none() && entry.variants.contains_key(&encoding) {
                flags |= bit;
            }
        }
        let mut deltas = Vec::new();
        for delta in &entry.deltas {
            let next = dictionaries.len();
            let index = *dictionaries.entry(delta.from).or_insert(next);
            deltas.push(json!(index));
            deltas.push(json!(delta.encoding.token()));
        }
        let offer = match &entry.dictionary {
            Some(offer) if offer.match_pattern == format!("/{path}") => json!(1),
            Some(offer) => json!(offer.match_pattern),
            None => json!(0),
        };
        if flags == 0 && entry.single.is_none() && deltas.is_empty() && entry.dictionary.is_none() {
            continue;
        }
        let single = entry.single.map_or(json!(""), |e| json!(e.token()));
        let mut row = vec![json!(flags), single, Value::Array(deltas), offer];
        // Trailing empty fields are left out.
        while row.len() > 1
            && matches!(row.last(), Some(v) if v == &json!(0) || v == &json!([]) || v == &json!(""))
        {
            row.pop();
        }
        paths.insert(path.clone(), Value::Array(row));
    }
    let mut by_index: Vec<(usize, Sha256)> =
        dictionaries.into_iter().map(|(h, i)| (i, h)).collect();
    by_index.sort();
    let dictionaries: Vec<String> = by_index.into_iter().map(|(_, h)| h.hex()).collect();

    let table_paths = paths.len();
    let code = CLOUDFRONT_JS
        .replace("__SITE__", site.name)
        .replace("__NEGOTIATE__", &compact(NEGOTIATE_JS));
    let (head, body) = code
        .split_once("\nvar EDGESHIP_DICTIONARIES")
        .unwrap_or(("", &code));
    let body = format!("var EDGESHIP_DICTIONARIES{body}")
        .replace("__DICTIONARIES__", &json!(dictionaries).to_string())
        .replace("__PATHS__", &Value::Object(paths).to_string());
    let out = format!("{head}\n{}\n", compact(&body));
    if out.len() > MAX_FUNCTION_BYTES {
        return Err(EdgeRulesError::TooLarge {
            site: site.name.to_owned(),
            size: out.len(),
            limit: MAX_FUNCTION_BYTES,
            paths: table_paths,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_that_never_need_a_purge_are_rewritten() {
        for soon in [
            "public, max-age=31536000, immutable",
            "public, max-age=0, must-revalidate",
            "public, max-age=300",
            "public, max-age=86400, s-maxage=60",
            "no-store",
        ] {
            assert!(expires_soon(soon), "{soon}");
        }
        for late in [
            "public, max-age=3600",
            "public",
            "public, s-maxage=600, max-age=60",
            "",
        ] {
            assert!(!expires_soon(late), "{late}");
        }
    }
}
