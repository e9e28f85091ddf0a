//! The manifest: what a processed tree (or a deployed site) holds — public path → content
//! hash, sizes, variants, headers and tags. Serialised as JSON with sorted keys and no
//! timestamps, so the same input always gives the same bytes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::compress::Encoding;
use super::delta::{DeltaEncoding, Sha256};
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
    /// Set when browsers are told to keep this asset as a compression dictionary
    /// (`Use-As-Dictionary`), so the next version can be sent as a delta from it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dictionary: Option<DictionaryOffer>,
    /// Delta variants of this version against earlier ones (RFC 9842), smallest first
    /// for each dictionary.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deltas: Vec<Delta>,
    /// Set for a `single:<enc>` rule: the object at the path holds this encoding (its size
    /// is `variants[enc]`); there is no identity object and no sibling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub single: Option<Encoding>,
}

/// How an asset is offered as a compression dictionary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DictionaryOffer {
    /// SHA-256 of the identity bytes: what a browser holding it sends back in
    /// `Available-Dictionary`.
    pub sha256: Sha256,
    /// The `match` of `Use-As-Dictionary`: the URL paths this dictionary serves
    /// (`/assets/app.*.js`).
    #[serde(rename = "match")]
    pub match_pattern: String,
}

/// One delta variant: this version compressed against an earlier version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    /// SHA-256 of the earlier version (the dictionary).
    pub from: Sha256,
    /// blake3 of the earlier version.
    pub base: ContentHash,
    /// `dcb` or `dcz`.
    pub encoding: DeltaEncoding,
    /// Size of the delta body, header included.
    pub size: u64,
}

impl Delta {
    /// The object key of this delta of the asset at `path`:
    /// `<path>.<dictionary sha-256 hex>.<dcb|dcz>`, so an edge function can find it from
    /// the request's path and `Available-Dictionary` alone.
    pub fn key(&self, path: &str) -> String {
        delta_key(path, &self.from, self.encoding)
    }
}

/// The object key of the `encoding` delta of the asset at `path` from dictionary `from`.
pub fn delta_key(path: &str, from: &Sha256, encoding: DeltaEncoding) -> String {
    format!("{path}.{}.{}", from.hex(), encoding.token())
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
