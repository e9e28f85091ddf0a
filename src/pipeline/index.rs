//! The stat index: unchanged files are recognised without being read, the way git's index
//! works.
//!
//! For one input directory and one set of settings, the index records each file's
//! [`FileStamp`] (size, mtime, ctime, inode) next to the processing-cache key and result it
//! produced. When a file's stamp is unchanged the recorded result is used as it is: no
//! read, no hash, no cache lookup. That is what makes a redeploy of an unchanged
//! 10,000-file site take a fraction of a second.
//!
//! Like git, it guards against "racily clean" files: a file modified in the same
//! timestamp tick as the index was written could change without its stamp changing, so
//! entries whose times are that close to the index's own write time are not trusted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::hash::ContentHash;
use super::processing_cache::EntryMeta;
use super::scan::FileStamp;

const INDEX_VERSION: u32 = 1;

/// Entries whose mtime or ctime is within this of the index write time are re-hashed.
const RACY_WINDOW_NS: i64 = 2_000_000_000;

/// What the index remembers about one file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// The file's stamp when it was processed.
    pub stamp: FileStamp,
    /// The processing-cache key of its result.
    pub key: ContentHash,
    /// The result.
    pub meta: EntryMeta,
}

#[derive(Debug, Serialize, Deserialize)]
struct IndexFile {
    version: u32,
    written_at_ns: i64,
    entries: HashMap<String, IndexEntry>,
}

/// A loaded stat index.
#[derive(Debug)]
pub struct StatIndex {
    path: PathBuf,
    written_at_ns: i64,
    entries: HashMap<String, IndexEntry>,
}

impl StatIndex {
    /// Loads the index for `input` under `fingerprint` (settings + rules + tool versions)
    /// from `dir`; a missing or unreadable index is empty.
    pub fn load(dir: &Path, input: &Path, fingerprint: &str) -> Self {
        let root = input.canonicalize().unwrap_or_else(|_| input.to_path_buf());
        let name = blake3::hash(format!("{}\0{fingerprint}", root.display()).as_bytes()).to_hex();
        let path = dir.join(format!("{}.json", &name[..32]));
        let file: Option<IndexFile> = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
        match file {
            Some(file) if file.version == INDEX_VERSION => Self {
                path,
                written_at_ns: file.written_at_ns,
                entries: file.entries,
            },
            _ => Self {
                path,
                written_at_ns: 0,
                entries: HashMap::new(),
            },
        }
    }

    /// The recorded entry for `path` if the file still has the same stamp and is not racy.
    pub fn lookup(&self, path: &str, stamp: &FileStamp) -> Option<&IndexEntry> {
        let entry = self.entries.get(path)?;
        let racy = |t: i64| t >= self.written_at_ns - RACY_WINDOW_NS;
        (entry.stamp == *stamp && !racy(stamp.mtime_ns) && !racy(stamp.ctime_ns)).then_some(entry)
    }

    /// How many files the index records.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the index records no file.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Replaces the index with `entries`, written atomically.
    pub fn store(&self, entries: HashMap<String, IndexEntry>) -> std::io::Result<()> {
        let written_at_ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
        let file = IndexFile {
            version: INDEX_VERSION,
            written_at_ns,
            entries,
        };
        let bytes = serde_json::to_vec(&file).map_err(std::io::Error::other)?;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir)?;
        let tmp = tempfile::NamedTempFile::new_in(dir)?;
        std::fs::write(tmp.path(), bytes)?;
        tmp.persist(&self.path).map_err(|e| e.error)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::classify::AssetKind;
    use crate::pipeline::minify::MinifyOutcome;

    fn entry(stamp: FileStamp) -> IndexEntry {
        IndexEntry {
            stamp,
            key: ContentHash::of(b"k"),
            meta: EntryMeta {
                kind: AssetKind::Text,
                source_size: 1,
                hash: ContentHash::of(b"x"),
                size: 1,
                minify: MinifyOutcome::Fallback {
                    reason: "syntax error".into(),
                },
                identity_stored: true,
                variants: [(crate::pipeline::compress::Encoding::Br, 10)]
                    .into_iter()
                    .collect(),
                sha256: None,
            },
        }
    }

    #[test]
    fn unchanged_stamps_hit_and_changed_or_racy_ones_miss() {
        let dir = tempfile::tempdir().unwrap();
        let input = tempfile::tempdir().unwrap();
        let old = FileStamp {
            size: 1,
            mtime_ns: 1_000_000_000,
            ctime_ns: 1_000_000_000,
            ino: 7,
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64;
        let racy = FileStamp {
            mtime_ns: now,
            ctime_ns: now,
            ..old
        };
        let index = StatIndex::load(dir.path(), input.path(), "settings");
        index
            .store(HashMap::from([
                ("a".into(), entry(old)),
                ("b".into(), entry(racy)),
            ]))
            .unwrap();

        let index = StatIndex::load(dir.path(), input.path(), "settings");
        assert_eq!(index.len(), 2, "the stored index reads back");
        assert_eq!(index.lookup("a", &old), Some(&entry(old)));
        assert!(
            index.lookup("a", &FileStamp { size: 2, ..old }).is_none(),
            "size changed"
        );
        assert!(
            index.lookup("a", &FileStamp { ino: 8, ..old }).is_none(),
            "replaced file"
        );
        assert!(
            index.lookup("b", &racy).is_none(),
            "modified in the same tick as the index was written"
        );
        let other = StatIndex::load(dir.path(), input.path(), "other settings");
        assert!(
            other.lookup("a", &old).is_none(),
            "another fingerprint is another index"
        );
    }
}
