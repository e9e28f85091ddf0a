//! The on-disk processing cache: an unchanged file is never minified or compressed twice.
//!
//! An entry is keyed by (input content hash, processing settings, tool versions) and holds
//! the results as files: `meta.json`, `identity` (only when minification changed the
//! bytes) and one file per kept variant. Entries are written to a temporary directory and
//! renamed into place, so a crash never leaves a half-written entry and concurrent runs
//! never see one. A damaged entry reads as a miss and is rebuilt.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::classify::AssetKind;
use super::compress::Encoding;
use super::hash::ContentHash;
use super::minify::MinifyOutcome;

/// Bump when the entry layout or the meaning of processing changes: old entries are then
/// simply never looked up again.
const LAYOUT_VERSION: &str = "v1";

/// The versions of every tool whose output is cached. Part of every cache key, so an
/// upgrade of any of them reprocesses everything. A unit test checks this against
/// Cargo.lock so it cannot drift.
pub const TOOL_VERSIONS: &str = "edgeship-pipeline 2; oxc_minifier 0.146.0; oxc_codegen 0.146.0; \
lightningcss 1.0.0-alpha.72; brotli 8.0.4; flate2 1.1.11; zlib-rs 0.6.8; zstd-sys 2.1.3+zstd.1.5.7";

/// What a cache entry records besides its files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntryMeta {
    /// The asset kind the input was classified as.
    pub kind: AssetKind,
    /// Size of the input.
    pub source_size: u64,
    /// Hash of the identity bytes that ship.
    pub hash: ContentHash,
    /// Size of the identity bytes that ship.
    pub size: u64,
    /// What the minifier did.
    pub minify: MinifyOutcome,
    /// Whether `identity` is stored in the entry (false: identity == input).
    pub identity_stored: bool,
    /// Sizes of the kept variants.
    pub variants: BTreeMap<Encoding, u64>,
}

/// A cache rooted at a directory.
#[derive(Debug, Clone)]
pub struct ProcessingCache {
    root: PathBuf,
    lookups: bool,
}

/// A committed entry: its directory and metadata.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The entry directory.
    pub dir: PathBuf,
    /// Its metadata.
    pub meta: EntryMeta,
}

impl Entry {
    /// Path of the stored identity file (only meaningful when `meta.identity_stored`).
    pub fn identity_path(&self) -> PathBuf {
        self.dir.join("identity")
    }

    /// Path of a stored variant.
    pub fn variant_path(&self, encoding: Encoding) -> PathBuf {
        self.dir.join(encoding.token())
    }
}

impl ProcessingCache {
    /// A cache under `dir` (created on first write). With `lookups == false` entries are
    /// still written (the build copies outputs from them) but never read back.
    pub fn new(dir: &Path, lookups: bool) -> Self {
        Self {
            root: dir.join("pipeline").join(LAYOUT_VERSION),
            lookups,
        }
    }

    /// The cache key for an input under some settings.
    pub fn key(source_hash: &ContentHash, settings_hash: &ContentHash) -> ContentHash {
        let mut hasher = blake3::Hasher::new();
        hasher.update(source_hash.as_str().as_bytes());
        hasher.update(b"\0");
        hasher.update(settings_hash.as_str().as_bytes());
        hasher.update(b"\0");
        hasher.update(TOOL_VERSIONS.as_bytes());
        ContentHash::of(hasher.finalize().to_hex().as_bytes())
    }

    fn entry_dir(&self, key: &ContentHash) -> PathBuf {
        self.root.join(&key.as_str()[..2]).join(key.as_str())
    }

    /// Looks an entry up; a missing, partial or unreadable entry is a miss.
    pub fn get(&self, key: &ContentHash) -> Option<Entry> {
        if !self.lookups {
            return None;
        }
        let dir = self.entry_dir(key);
        let meta: EntryMeta =
            serde_json::from_slice(&fs::read(dir.join("meta.json")).ok()?).ok()?;
        let entry = Entry { dir, meta };
        let complete = (!entry.meta.identity_stored || entry.identity_path().is_file())
            && entry
                .meta
                .variants
                .keys()
                .all(|e| entry.variant_path(*e).is_file());
        complete.then_some(entry)
    }

    /// The entry for `key` with already-known metadata (from the stat index), without
    /// touching the disk. A caller that needs its files must be ready for them to be gone
    /// (someone may have cleared the cache).
    pub fn entry(&self, key: &ContentHash, meta: EntryMeta) -> Entry {
        Entry {
            dir: self.entry_dir(key),
            meta,
        }
    }

    /// Starts writing an entry: files go into the returned staging directory, then
    /// [`ProcessingCache::commit`] publishes it.
    pub fn stage(&self) -> io::Result<tempfile::TempDir> {
        fs::create_dir_all(&self.root)?;
        tempfile::Builder::new()
            .prefix(".staging-")
            .tempdir_in(&self.root)
    }

    /// Publishes a staged entry under `key`. When another run published the same key
    /// first, that entry (identical by construction) is kept.
    pub fn commit(
        &self,
        key: &ContentHash,
        staging: tempfile::TempDir,
        meta: EntryMeta,
    ) -> io::Result<Entry> {
        let meta_json = serde_json::to_vec(&meta).map_err(io::Error::other)?;
        fs::write(staging.path().join("meta.json"), meta_json)?;
        let dir = self.entry_dir(key);
        if let Some(parent) = dir.parent() {
            fs::create_dir_all(parent)?;
        }
        if dir.exists() {
            // A damaged entry (it was a miss) is replaced; a complete one is kept.
            if self.get_ignoring_lookups(key).is_none() {
                fs::remove_dir_all(&dir)?;
            } else {
                return Ok(Entry { dir, meta });
            }
        }
        let staged = staging.keep();
        if let Err(err) = fs::rename(&staged, &dir) {
            let _ = fs::remove_dir_all(&staged);
            if !dir.exists() {
                return Err(err);
            }
        }
        Ok(Entry { dir, meta })
    }

    fn get_ignoring_lookups(&self, key: &ContentHash) -> Option<Entry> {
        Self {
            root: self.root.clone(),
            lookups: true,
        }
        .get(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_versions_match_cargo_lock() {
        let lock = include_str!("../../Cargo.lock");
        for item in TOOL_VERSIONS.split("; ").skip(1) {
            let (name, version) = item.split_once(' ').unwrap();
            let needle = format!("name = \"{name}\"\nversion = \"{version}\"");
            assert!(
                lock.contains(&needle),
                "Cargo.lock has no {name} {version}: update TOOL_VERSIONS"
            );
        }
    }

    #[test]
    fn committed_entries_are_found_and_damaged_ones_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ProcessingCache::new(dir.path(), true);
        let key = ProcessingCache::key(&ContentHash::of(b"in"), &ContentHash::of(b"settings"));
        assert!(cache.get(&key).is_none());
        let staging = cache.stage().unwrap();
        fs::write(staging.path().join("br"), b"x").unwrap();
        let meta = EntryMeta {
            kind: AssetKind::Text,
            source_size: 2,
            hash: ContentHash::of(b"in"),
            size: 2,
            minify: MinifyOutcome::NotApplicable,
            identity_stored: false,
            variants: BTreeMap::from([(Encoding::Br, 1)]),
        };
        let entry = cache.commit(&key, staging, meta.clone()).unwrap();
        assert_eq!(cache.get(&key).unwrap().meta, meta);
        fs::remove_file(entry.variant_path(Encoding::Br)).unwrap();
        assert!(
            cache.get(&key).is_none(),
            "an entry missing a file is a miss"
        );
        assert!(ProcessingCache::new(dir.path(), false).get(&key).is_none());
    }
}
