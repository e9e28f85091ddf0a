//! Analytics: what minification and precompression save, measured at deploy time, and
//! what the origin served ([`origin`]: its stored counters).
//!
//! Deploys record into the cache layer (spec section 7), per site:
//!
//! - `{prefix}:{site}:analytics:deploy:current` — the site as its last deploy left it,
//!   per content type (a value, replaced by every deploy that changes something);
//! - `{prefix}:{site}:analytics:deploy:shipped` — running totals of what deploys uploaded,
//!   per content type (hash counters, fields `<content type>|<measure>`), and `deploys`;
//! - `{prefix}:{site}:analytics:deploy:day:<day>` — the same for one UTC day (`<day>` is
//!   its start in Unix seconds), kept [`RETENTION`].
//!
//! [`report`] reads them back, with the origin's counters, for `GET /v1/analytics` and
//! `edgeship stats`.

pub mod logs;
pub mod origin;
pub mod report;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::cache::{Cache, CacheError, CacheKey};
use crate::pipeline::manifest::{Manifest, ManifestEntry};

/// How long per-day deploy buckets are kept (the origin's hourly buckets live as long).
pub const RETENTION: Duration = origin::HOURLY_RETENTION;

/// The encodings whose bytes are counted per variant.
const ENCODINGS: [&str; 3] = ["br", "gzip", "zstd"];

/// What processing did to a set of files: their original size, minified size, the size
/// of each precompressed variant, and the smallest representation of each file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Savings {
    /// Files counted.
    pub files: u64,
    /// Bytes of the files as given (before minification).
    pub original_bytes: u64,
    /// Bytes after minification (the identity representation that is served).
    pub minified_bytes: u64,
    /// Per encoding (`br`, `gzip`, `zstd`): bytes of the variants kept. A file without a
    /// variant of an encoding (compression did not help) adds nothing here.
    pub variant_bytes: BTreeMap<String, u64>,
    /// The smallest representation of each file, summed: what a client accepting every
    /// encoding downloads.
    pub best_bytes: u64,
    /// `original_bytes - best_bytes`: what the pipeline saves such a client.
    pub saved_bytes: u64,
}

impl Savings {
    /// One deployed file, as its manifest entry describes it.
    pub fn of_entry(entry: &ManifestEntry) -> Self {
        let mut savings = Self {
            files: 1,
            original_bytes: entry.source_size,
            minified_bytes: entry.size,
            best_bytes: entry.size,
            ..Self::default()
        };
        for (encoding, bytes) in &entry.variants {
            savings
                .variant_bytes
                .insert(encoding.token().to_owned(), *bytes);
            savings.best_bytes = savings.best_bytes.min(*bytes);
        }
        savings.saved_bytes = savings.original_bytes.saturating_sub(savings.best_bytes);
        savings
    }

    /// Adds `other` to these totals.
    pub fn add(&mut self, other: &Self) {
        self.files += other.files;
        self.original_bytes += other.original_bytes;
        self.minified_bytes += other.minified_bytes;
        for (encoding, bytes) in &other.variant_bytes {
            *self.variant_bytes.entry(encoding.clone()).or_default() += bytes;
        }
        self.best_bytes += other.best_bytes;
        self.saved_bytes = self.original_bytes.saturating_sub(self.best_bytes);
    }

    /// Hash fields and increments for these totals, each field prefixed by `scope|`.
    fn fields(&self, scope: &str) -> Vec<(String, i64)> {
        let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        let mut fields = vec![
            (format!("{scope}|files"), as_i64(self.files)),
            (format!("{scope}|original"), as_i64(self.original_bytes)),
            (format!("{scope}|minified"), as_i64(self.minified_bytes)),
            (format!("{scope}|best"), as_i64(self.best_bytes)),
        ];
        for (encoding, bytes) in &self.variant_bytes {
            fields.push((format!("{scope}|{encoding}"), as_i64(*bytes)));
        }
        fields
    }

    /// Adds one hash field written by [`Self::fields`] (`measure` is the part after `|`).
    fn add_field(&mut self, measure: &str, value: u64) {
        match measure {
            "files" => self.files += value,
            "original" => self.original_bytes += value,
            "minified" => self.minified_bytes += value,
            "best" => self.best_bytes += value,
            encoding if ENCODINGS.contains(&encoding) => {
                *self.variant_bytes.entry(encoding.to_owned()).or_default() += value;
            }
            _ => return,
        }
        self.saved_bytes = self.original_bytes.saturating_sub(self.best_bytes);
    }
}

/// Savings per content type (`text/css`, `application/javascript`, …; parameters such as
/// `charset` dropped), and their sum.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SavingsByType {
    /// All content types together.
    pub total: Savings,
    /// Per content type.
    pub by_content_type: BTreeMap<String, Savings>,
}

impl SavingsByType {
    /// Totals of deployed files.
    pub fn of_entries<'a>(entries: impl IntoIterator<Item = &'a ManifestEntry>) -> Self {
        let mut totals = Self::default();
        for entry in entries {
            totals.add(content_type_of(entry), &Savings::of_entry(entry));
        }
        totals
    }

    /// Adds one file's (or one group's) savings under `content_type`.
    pub fn add(&mut self, content_type: &str, savings: &Savings) {
        self.total.add(savings);
        self.by_content_type
            .entry(content_type.to_owned())
            .or_default()
            .add(savings);
    }

    fn from_fields(fields: &BTreeMap<String, i64>) -> Self {
        let mut by_content_type: BTreeMap<String, Savings> = BTreeMap::new();
        for (field, value) in fields {
            let Some((content_type, measure)) = field.rsplit_once('|') else {
                continue;
            };
            by_content_type
                .entry(content_type.to_owned())
                .or_default()
                .add_field(measure, u64::try_from(*value).unwrap_or(0));
        }
        let mut totals = Self::default();
        for (content_type, savings) in by_content_type {
            totals.add(&content_type, &savings);
        }
        totals
    }
}

/// What deploys of a site uploaded, over some span of time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ShippedTotals {
    /// Deploys that uploaded something.
    pub deploys: u64,
    /// What they uploaded, per content type.
    #[serde(flatten)]
    pub savings: SavingsByType,
}

impl ShippedTotals {
    fn from_fields(fields: &BTreeMap<String, i64>) -> Self {
        Self {
            deploys: fields
                .get(DEPLOYS_FIELD)
                .and_then(|n| u64::try_from(*n).ok())
                .unwrap_or(0),
            savings: SavingsByType::from_fields(fields),
        }
    }

    /// Adds `other` to these totals.
    pub fn add(&mut self, other: &Self) {
        self.deploys += other.deploys;
        for (content_type, savings) in &other.savings.by_content_type {
            self.savings.add(content_type, savings);
        }
    }
}

const DEPLOYS_FIELD: &str = "deploys";

/// The content type a file is counted under: its `Content-Type` without parameters.
pub fn content_type_of(entry: &ManifestEntry) -> &str {
    let full = entry.content_type.as_str();
    full.split(';').next().unwrap_or(full).trim()
}

/// Records a deploy of `site` that wrote `manifest` (what the site holds now, stale
/// files it keeps included); `shipped` are the files this deploy uploaded (whole: every
/// object of the file stored). `current` is replaced; the running and per-day totals
/// grow only when something was uploaded.
pub async fn record_deploy(
    cache: &Cache,
    site: &str,
    manifest: &Manifest,
    shipped: &[&ManifestEntry],
) -> Result<(), CacheError> {
    let keys = cache.site(site);
    let current = SavingsByType::of_entries(manifest.assets.values());
    cache.set(&current_key(cache, site), &current, None).await?;
    if shipped.is_empty() {
        return Ok(());
    }
    let uploaded = SavingsByType::of_entries(shipped.iter().copied());
    let day = day_start(SystemTime::now());
    let day_key = keys.key(&format!("analytics:deploy:day:{day}"));
    let shipped_key = shipped_key(cache, site);
    let mut fields = vec![(DEPLOYS_FIELD.to_owned(), 1)];
    for (content_type, savings) in &uploaded.by_content_type {
        fields.extend(savings.fields(content_type));
    }
    for (field, delta) in &fields {
        cache
            .hash_incr_by(&shipped_key, field, *delta, None)
            .await?;
        cache
            .hash_incr_by(&day_key, field, *delta, Some(RETENTION))
            .await?;
    }
    Ok(())
}

/// The site as its last deploy left it (empty before the first recorded deploy).
pub async fn current(cache: &Cache, site: &str) -> Result<SavingsByType, CacheError> {
    Ok(cache
        .get::<SavingsByType>(&current_key(cache, site))
        .await?
        .unwrap_or_default())
}

/// Everything deploys of `site` uploaded since counting began.
pub async fn shipped(cache: &Cache, site: &str) -> Result<ShippedTotals, CacheError> {
    let fields = cache.hash_get_all(&shipped_key(cache, site)).await?;
    Ok(ShippedTotals::from_fields(&fields))
}

/// What deploys of `site` uploaded on the UTC day starting at `day` (Unix seconds).
pub async fn shipped_on(cache: &Cache, site: &str, day: u64) -> Result<ShippedTotals, CacheError> {
    let key = cache.site(site).key(&format!("analytics:deploy:day:{day}"));
    Ok(ShippedTotals::from_fields(&cache.hash_get_all(&key).await?))
}

fn current_key(cache: &Cache, site: &str) -> CacheKey {
    cache.site(site).key("analytics:deploy:current")
}

fn shipped_key(cache: &Cache, site: &str) -> CacheKey {
    cache.site(site).key("analytics:deploy:shipped")
}

/// The start of the UTC day holding `t`, in Unix seconds.
pub fn day_start(t: SystemTime) -> u64 {
    let seconds = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    seconds / 86_400 * 86_400
}

#[cfg(test)]
mod tests {
    use super::*;

    fn savings(files: u64, original: u64, minified: u64, br: u64) -> Savings {
        Savings {
            files,
            original_bytes: original,
            minified_bytes: minified,
            variant_bytes: BTreeMap::from([("br".to_owned(), br)]),
            best_bytes: br.min(minified),
            saved_bytes: original - br.min(minified),
        }
    }

    #[test]
    fn savings_survive_the_hash_field_round_trip() {
        let mut totals = SavingsByType::default();
        totals.add("text/css", &savings(2, 1000, 800, 200));
        totals.add("application/javascript", &savings(1, 5000, 3000, 900));
        let mut fields = BTreeMap::new();
        for (content_type, s) in &totals.by_content_type {
            for (field, value) in s.fields(content_type) {
                *fields.entry(field).or_insert(0) += value;
            }
        }
        assert_eq!(SavingsByType::from_fields(&fields), totals);
        assert_eq!(totals.total.files, 3);
        assert_eq!(totals.total.saved_bytes, 6000 - 1100);
    }

    #[test]
    fn unknown_fields_are_ignored_not_misread() {
        let fields = BTreeMap::from([
            ("text/css|files".to_owned(), 2),
            ("text/css|something-new".to_owned(), 7),
            ("deploys".to_owned(), 3),
        ]);
        let shipped = ShippedTotals::from_fields(&fields);
        assert_eq!(shipped.deploys, 3);
        assert_eq!(shipped.savings.total.files, 2);
        assert_eq!(shipped.savings.total.original_bytes, 0);
    }

    #[tokio::test]
    async fn a_deploy_is_recorded_per_content_type_and_day() {
        let cache = Cache::memory();
        let dir = tempfile::tempdir().unwrap();
        let css: String = (0..200)
            .map(|i| format!(".rule-{i} {{  color : #{i:06x} ;  margin : {i}px ; }}\n"))
            .collect();
        std::fs::write(dir.path().join("a.css"), css).unwrap();
        std::fs::write(
            dir.path().join("b.js"),
            "const a = 1;\nconsole.log( a );\n".repeat(40),
        )
        .unwrap();
        let cache_dir = tempfile::tempdir().unwrap();
        let pipeline = crate::pipeline::Pipeline::new(
            &crate::config::PipelineConfig::default(),
            crate::pipeline::rules::RuleSet::new(&[]).unwrap(),
            cache_dir.path(),
        )
        .unwrap();
        let (assets, _) = crate::pipeline::build::process_dir(
            &pipeline,
            dir.path(),
            &crate::pipeline::build::NoProgress,
        )
        .unwrap();
        let mut manifest = Manifest::default();
        for asset in &assets {
            manifest
                .assets
                .insert(asset.path.clone(), asset.manifest_entry());
        }
        let css: Vec<&ManifestEntry> = vec![&manifest.assets["a.css"]];
        let day_before = day_start(SystemTime::now());
        record_deploy(&cache, "www", &manifest, &css).await.unwrap();
        record_deploy(&cache, "www", &manifest, &[]).await.unwrap();

        let now = current(&cache, "www").await.unwrap();
        assert_eq!(now.total.files, 2);
        assert_eq!(
            now.by_content_type.keys().collect::<Vec<_>>(),
            ["text/css", "text/javascript"]
        );
        let shipped_all = shipped(&cache, "www").await.unwrap();
        assert_eq!(shipped_all.deploys, 1, "the no-op deploy is not counted");
        assert_eq!(
            shipped_all.savings,
            SavingsByType::of_entries(css.iter().copied())
        );
        let css_savings = &shipped_all.savings.by_content_type["text/css"];
        assert!(css_savings.original_bytes > css_savings.minified_bytes);
        assert!(css_savings.best_bytes < css_savings.minified_bytes);
        // Recorded on the day it ran (either side of a midnight passing meanwhile).
        let mut by_day = shipped_on(&cache, "www", day_before).await.unwrap();
        let day_after = day_start(SystemTime::now());
        if day_after != day_before {
            by_day.add(&shipped_on(&cache, "www", day_after).await.unwrap());
        }
        assert_eq!(by_day, shipped_all);
        assert_eq!(
            shipped(&cache, "other").await.unwrap(),
            ShippedTotals::default()
        );

        // A deploy that only deletes: `current` follows the manifest, nothing is shipped.
        manifest.assets.remove("b.js");
        record_deploy(&cache, "www", &manifest, &[]).await.unwrap();
        let now = current(&cache, "www").await.unwrap();
        assert_eq!(now.by_content_type.keys().collect::<Vec<_>>(), ["text/css"]);
        assert_eq!(shipped(&cache, "www").await.unwrap(), shipped_all);
    }
}
