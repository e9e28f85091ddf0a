//! The `[pipeline]` section: processing settings, checked here and composed into
//! [`crate::config::Config`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::compress::Encoding;
use crate::config::ConfigError;

/// Settings of the asset pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Worker threads for processing; 0 means one per core.
    pub workers: usize,
    /// Which minifiers run (a rule's `minify = false` turns them off per path).
    pub minify: MinifyConfig,
    /// Variants produced for compressible files, unless a rule says otherwise.
    pub encodings: Vec<Encoding>,
    /// gzip level, 1–9.
    pub gzip_level: u32,
    /// brotli quality, 0–11.
    pub brotli_quality: u32,
    /// zstd level, 1–22.
    pub zstd_level: i32,
    /// Keep a variant only if it saves at least this percentage of the identity size…
    pub min_saving_percent: f64,
    /// …and at least this many bytes.
    pub min_saving_bytes: u64,
    /// Files at least this large are hashed and compressed by streaming from disk
    /// instead of being read into memory (they are not minified).
    pub stream_threshold_bytes: u64,
    /// Browser targets for CSS (lightningcss), e.g. `{ chrome = "100", safari = "15.4" }`.
    /// Empty keeps modern syntax as written (no lowering).
    pub css_targets: BTreeMap<String, String>,
    /// Glob patterns (relative to the input root) of files that are not published.
    pub exclude: Vec<String>,
    /// Reuse results of earlier runs from the on-disk processing cache.
    pub cache: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            workers: 0,
            minify: MinifyConfig::default(),
            encodings: vec![Encoding::Br, Encoding::Gzip, Encoding::Zstd],
            gzip_level: 9,
            brotli_quality: 11,
            zstd_level: 19,
            min_saving_percent: 5.0,
            min_saving_bytes: 256,
            stream_threshold_bytes: 16 * 1024 * 1024,
            css_targets: BTreeMap::new(),
            exclude: vec![
                "**/.git/**".into(),
                "**/.DS_Store".into(),
                "**/Thumbs.db".into(),
                ".edgeship/**".into(),
            ],
            cache: true,
        }
    }
}

/// Per-language minifier switches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MinifyConfig {
    /// JavaScript with oxc_minifier (compress + mangle; top-level names kept in scripts).
    pub js: bool,
    /// CSS with lightningcss.
    pub css: bool,
    /// JSON (also `.map`, `.webmanifest`) by removing insignificant whitespace.
    pub json: bool,
}

impl Default for MinifyConfig {
    fn default() -> Self {
        Self {
            js: true,
            css: true,
            json: true,
        }
    }
}

impl PipelineConfig {
    /// Checks levels, shares, CSS targets and exclude globs; errors name the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| {
            Err(ConfigError::Value {
                key: format!("pipeline.{key}"),
                message,
            })
        };
        if !(1..=9).contains(&self.gzip_level) {
            return bad("gzip_level", format!("{} is not in 1..=9", self.gzip_level));
        }
        if self.brotli_quality > 11 {
            return bad(
                "brotli_quality",
                format!("{} is not in 0..=11", self.brotli_quality),
            );
        }
        if !(1..=22).contains(&self.zstd_level) {
            return bad(
                "zstd_level",
                format!("{} is not in 1..=22", self.zstd_level),
            );
        }
        if !(0.0..100.0).contains(&self.min_saving_percent) {
            return bad(
                "min_saving_percent",
                format!("{} is not in 0..100", self.min_saving_percent),
            );
        }
        if let Err(err) = super::minify::css::parse_targets(&self.css_targets) {
            return bad("css_targets", err.to_string());
        }
        if let Err(err) = super::rules::compile_globs(&self.exclude) {
            return bad("exclude", err.to_string());
        }
        Ok(())
    }
}
