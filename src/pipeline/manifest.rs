//! The manifest: what a processed tree (or a deployed site) holds — public path → content
//! hash, sizes, variants, headers and tags. Serialised as JSON with sorted keys and no
//! timestamps, so the same input always gives the same bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::compress::Encoding;
use super::hash::ContentHash;

/// Current manifest format version.
pub const MANIFEST_VERSION: u32 = 1;

/// Where `edgeship build` writes the manifest, relative to the output directory.
pub const MANIFEST_PATH: &str = ".edgeship/manifest.json";

/// A manifest of assets keyed by public path (no leading `/`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Format version ([`MANIFEST_VERSION`]).
    pub version: u32,
    /// The assets, sorted by path.
    pub assets: BTreeMap<String, ManifestEntry>,
}

impl Default for Manifest {
    fn default() -> Self {
        Self {
            version: MANIFEST_VERSION,
            assets: BTreeMap::new(),
        }
    }
}

/// One asset in a manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestEntry {
    /// blake3 of the identity bytes: diff key and strong ETag.
    pub hash: ContentHash,
    /// Size of the identity bytes.
    pub size: u64,
    /// Size of the input before minification.
    pub source_size: u64,
    /// `Content-Type`.
    pub content_type: String,
    /// `Cache-Control`.
    pub cache_control: String,
    /// Extra headers from rules.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Purge tags from rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Kept variants and their sizes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variants: BTreeMap<Encoding, u64>,
}

impl Manifest {
    /// The manifest as pretty JSON with a trailing newline.
    pub fn to_json(&self) -> Vec<u8> {
        let mut bytes = serde_json::to_vec_pretty(self).unwrap_or_default();
        bytes.push(b'\n');
        bytes
    }

    /// The manifest as compact JSON (what is stored on a site: smaller and faster to read).
    pub fn to_compact_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses a manifest, rejecting unknown format versions.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestParseError> {
        let manifest: Self =
            serde_json::from_slice(bytes).map_err(|e| ManifestParseError::Json(e.to_string()))?;
        if manifest.version != MANIFEST_VERSION {
            return Err(ManifestParseError::Version(manifest.version));
        }
        Ok(manifest)
    }
}

/// Why stored manifest bytes are not a manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ManifestParseError {
    /// Not JSON of the manifest's shape.
    #[error("{0}")]
    Json(String),
    /// A format version this build does not read.
    #[error("manifest format version {0} is not supported (expected {MANIFEST_VERSION})")]
    Version(u32),
}
