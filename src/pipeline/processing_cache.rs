//! The on-disk processing cache: an unchanged file is never minified or compressed twice.
//!
//! An entry is keyed by (input content hash, processing settings, tool versions). Its
//! metadata is a line in a journal, its outputs are flat files next to each other:
//!
//! ```text
//! pipeline/v2/journal/<time>-<pid>.jsonl    one {"key", "meta"} line per entry, per run
//! pipeline/v2/ab/<key>.identity             the minified bytes (only when minify changed them)
//! pipeline/v2/ab/<key>.br|gzip|zstd         the kept variants
//! ```
//!
//! Most entries of a typical site have no output files at all (the file ships as it is),
//! so a cold run of 10,000 files appends 10,000 lines to one file instead of creating
//! 10,000 directories and files: on ext4 that creation was a quarter of a cold deploy's CPU.
//!
//! Safety: outputs are written to temporary files and renamed into place before the
//! entry's journal line is written, so a line never names a missing output; a crash loses at
//! most some lines (those files are then simply redone). A line that does not parse, or whose
//! files are gone, reads as a miss. Concurrent runs each append to their own journal file;
//! outputs of one key are identical by construction, so either rename wins. When there are
//! more than [`MAX_JOURNALS`] journal files, the next run merges them into one.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use serde::{Deserialize, Serialize};

use super::classify::AssetKind;
use super::compress::Encoding;
use super::delta::Sha256;
use super::hash::ContentHash;
use super::minify::MinifyOutcome;

/// Bump when the entry layout or the meaning of processing changes: old entries are then
/// simply never looked up again. (v1 had a directory and a `meta.json` per entry.)
const LAYOUT_VERSION: &str = "v2";

/// Journal files merged into one by the next run that finds more than this many.
pub const MAX_JOURNALS: usize = 16;

/// The versions of every tool whose output is cached. Part of every cache key, so an
/// upgrade of any of them reprocesses everything. A unit test checks this against
/// Cargo.lock so it cannot drift.
pub const TOOL_VERSIONS: &str = "edgeship-pipeline 3; oxc_minifier 0.146.0; oxc_codegen 0.146.0; \
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
    /// SHA-256 of the identity bytes, for compressible files read into memory: how a
    /// browser names this version when it holds it as a compression dictionary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256>,
}

impl EntryMeta {
    /// The names of the output files this entry needs.
    fn file_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.identity_stored
            .then_some(IDENTITY)
            .into_iter()
            .chain(self.variants.keys().map(|e| e.token()))
    }
}

/// The file name suffix of a stored identity.
const IDENTITY: &str = "identity";

/// One journal line, as read.
#[derive(Deserialize)]
struct JournalLine {
    key: ContentHash,
    meta: EntryMeta,
}

/// One journal line, as written.
#[derive(Serialize)]
struct JournalLineRef<'a> {
    key: &'a ContentHash,
    meta: &'a EntryMeta,
}

/// A cache rooted at a directory. Clones share the journal.
#[derive(Debug, Clone)]
pub struct ProcessingCache {
    root: PathBuf,
    lookups: bool,
    journal: Arc<Journal>,
}

/// A committed entry: where its files are, and its metadata.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The common prefix of the entry's files (`<shard>/<key>`).
    pub base: PathBuf,
    /// Its metadata.
    pub meta: EntryMeta,
}

impl Entry {
    /// Path of the stored identity file (only meaningful when `meta.identity_stored`).
    pub fn identity_path(&self) -> PathBuf {
        output_path(&self.base, IDENTITY)
    }

    /// Path of a stored variant.
    pub fn variant_path(&self, encoding: Encoding) -> PathBuf {
        output_path(&self.base, encoding.token())
    }

    /// Whether every file the metadata names is on disk.
    fn is_complete(&self) -> bool {
        self.meta
            .file_names()
            .all(|name| output_path(&self.base, name).is_file())
    }
}

fn output_path(base: &Path, name: &str) -> PathBuf {
    let mut path = base.as_os_str().to_owned();
    path.push(".");
    path.push(name);
    PathBuf::from(path)
}

impl ProcessingCache {
    /// A cache under `dir` (created on first write). With `lookups == false` entries are
    /// still written (the build copies outputs from them) but never read back.
    pub fn new(dir: &Path, lookups: bool) -> Self {
        let root = dir.join("pipeline").join(LAYOUT_VERSION);
        Self {
            journal: Arc::new(Journal::new(root.join("journal"))),
            root,
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

    fn shard(&self, key: &ContentHash) -> PathBuf {
        self.root.join(&key.as_str()[..2])
    }

    fn base(&self, key: &ContentHash) -> PathBuf {
        self.shard(key).join(key.as_str())
    }

    /// Looks an entry up; a missing entry, or one whose files are gone, is a miss.
    pub fn get(&self, key: &ContentHash) -> Option<Entry> {
        if !self.lookups {
            return None;
        }
        let entry = self.entry(key, self.journal.get(key)?);
        entry.is_complete().then_some(entry)
    }

    /// The entry for `key` with already-known metadata (from the stat index), without
    /// touching the disk. A caller that needs its files must be ready for them to be gone
    /// (someone may have cleared the cache).
    pub fn entry(&self, key: &ContentHash, meta: EntryMeta) -> Entry {
        Entry {
            base: self.base(key),
            meta,
        }
    }

    /// Starts writing the entry for `key`: outputs go into files of the returned
    /// [`Staging`], then [`ProcessingCache::commit`] publishes them.
    pub fn stage(&self, key: &ContentHash) -> Staging {
        Staging {
            shard: self.shard(key),
            temps: Mutex::new(BTreeMap::new()),
        }
    }

    /// Publishes a staged entry under `key`: renames the outputs `meta` names into place
    /// (staged files it does not name are deleted), then records `meta` in the journal.
    pub fn commit(
        &self,
        key: &ContentHash,
        staging: Staging,
        meta: EntryMeta,
    ) -> io::Result<Entry> {
        let entry = self.entry(key, meta);
        let mut temps = staging.temps.into_inner().map_err(|_| poisoned())?;
        for name in entry.meta.file_names() {
            let temp = temps.remove(name).ok_or_else(|| {
                io::Error::other(format!("cache entry output `{name}` was never staged"))
            })?;
            temp.persist(output_path(&entry.base, name))
                .map_err(|e| e.error)?;
        }
        self.journal.append(key, &entry.meta)?;
        Ok(entry)
    }
}

fn poisoned() -> io::Error {
    io::Error::other("a cache writer panicked")
}

/// Output files of an entry being written. Dropping it deletes them.
#[derive(Debug)]
pub struct Staging {
    shard: PathBuf,
    temps: Mutex<BTreeMap<&'static str, tempfile::TempPath>>,
}

impl Staging {
    /// Creates the temporary file for output `name` (`"identity"` or an encoding token).
    /// Safe to call from several threads for different names.
    pub fn create(&self, name: &'static str) -> io::Result<File> {
        fs::create_dir_all(&self.shard)?;
        let (file, temp) = tempfile::Builder::new()
            .prefix(".staging-")
            .tempfile_in(&self.shard)?
            .into_parts();
        self.temps
            .lock()
            .map_err(|_| poisoned())?
            .insert(name, temp);
        Ok(file)
    }

    /// The identity output's name, for [`Staging::create`].
    pub const IDENTITY: &'static str = IDENTITY;
}

/// The journal of entry metadata: loaded once per process on the first lookup, appended
/// to (one line per entry, one file per process) on every commit.
#[derive(Debug)]
struct Journal {
    dir: PathBuf,
    /// Every entry known to this process: loaded from disk, plus its own commits.
    entries: OnceLock<RwLock<HashMap<ContentHash, EntryMeta>>>,
    /// This process's journal file, opened on its first commit.
    file: Mutex<Option<File>>,
}

impl Journal {
    fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            entries: OnceLock::new(),
            file: Mutex::new(None),
        }
    }

    fn entries(&self) -> &RwLock<HashMap<ContentHash, EntryMeta>> {
        self.entries.get_or_init(|| RwLock::new(self.load()))
    }

    fn get(&self, key: &ContentHash) -> Option<EntryMeta> {
        self.entries().read().ok()?.get(key).cloned()
    }

    fn append(&self, key: &ContentHash, meta: &EntryMeta) -> io::Result<()> {
        let mut line =
            serde_json::to_vec(&JournalLineRef { key, meta }).map_err(io::Error::other)?;
        line.push(b'\n');
        {
            let mut file = self.file.lock().map_err(|_| poisoned())?;
            let file = match &mut *file {
                Some(file) => file,
                None => file.insert(self.create_file()?),
            };
            // One write per line, in append mode: a crash can tear only the last line.
            file.write_all(&line)?;
        }
        if let Some(entries) = self.entries.get()
            && let Ok(mut entries) = entries.write()
        {
            entries.insert(key.clone(), meta.clone());
        }
        Ok(())
    }

    /// A new journal file's path; names sort by creation time.
    fn new_path(&self, suffix: &str) -> PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        self.dir
            .join(format!("{nanos:024}-{}{suffix}.jsonl", std::process::id()))
    }

    fn create_file(&self) -> io::Result<File> {
        fs::create_dir_all(&self.dir)?;
        fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(self.new_path(""))
    }

    /// Reads every journal file (skipping lines that do not parse) and merges them into
    /// one when there are too many. Never fails: an unreadable journal is an empty cache.
    fn load(&self) -> HashMap<ContentHash, EntryMeta> {
        let mut entries = HashMap::new();
        let mut files: Vec<PathBuf> = match fs::read_dir(&self.dir) {
            Ok(dir) => dir
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
                .collect(),
            Err(_) => return entries,
        };
        files.sort();
        for path in &files {
            let Ok(bytes) = fs::read(path) else { continue };
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                if let Ok(JournalLine { key, meta }) = serde_json::from_slice(line) {
                    entries.insert(key, meta);
                }
            }
        }
        if files.len() > MAX_JOURNALS
            && let Err(err) = self.compact(&entries, &files)
        {
            tracing::debug!(error = %err, "could not merge the processing cache journal");
        }
        entries
    }

    /// Writes `entries` as one journal file, then deletes `files`. A run appending to one
    /// of them meanwhile loses those lines: they become misses, never wrong results.
    fn compact(
        &self,
        entries: &HashMap<ContentHash, EntryMeta>,
        files: &[PathBuf],
    ) -> io::Result<()> {
        let mut out = Vec::new();
        for (key, meta) in entries {
            serde_json::to_writer(&mut out, &JournalLineRef { key, meta })
                .map_err(io::Error::other)?;
            out.push(b'\n');
        }
        let mut temp = tempfile::Builder::new()
            .prefix(".merging-")
            .tempfile_in(&self.dir)?;
        temp.write_all(&out)?;
        temp.persist(self.new_path("-merged"))
            .map_err(|e| e.error)?;
        for path in files {
            let _ = fs::remove_file(path);
        }
        Ok(())
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

    fn meta(variants: &[(Encoding, u64)]) -> EntryMeta {
        EntryMeta {
            kind: AssetKind::Text,
            source_size: 2,
            hash: ContentHash::of(b"in"),
            size: 2,
            minify: MinifyOutcome::NotApplicable,
            identity_stored: false,
            variants: variants.iter().copied().collect(),
            sha256: None,
        }
    }

    fn key(n: u32) -> ContentHash {
        ProcessingCache::key(&ContentHash::of(&n.to_le_bytes()), &ContentHash::of(b"s"))
    }

    /// Commits `meta` under `key`, staging a file for every output it names plus an
    /// unneeded one.
    fn commit(cache: &ProcessingCache, key: &ContentHash, meta: &EntryMeta) -> Entry {
        let staging = cache.stage(key);
        for name in meta.file_names().chain(["gzip"]) {
            let mut file = staging.create(name).unwrap();
            file.write_all(name.as_bytes()).unwrap();
        }
        cache.commit(key, staging, meta.clone()).unwrap()
    }

    fn files_under(dir: &Path) -> Vec<String> {
        let mut names = Vec::new();
        for entry in walkdir(dir) {
            names.push(
                entry
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        names.sort();
        names
    }

    fn walkdir(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                out.extend(walkdir(&path));
            } else {
                out.push(path);
            }
        }
        out
    }

    #[test]
    fn committed_entries_are_found_by_later_runs_and_damaged_ones_are_misses() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ProcessingCache::new(dir.path(), true);
        let (with_file, bare) = (key(1), key(2));
        assert!(cache.get(&with_file).is_none());
        let br = meta(&[(Encoding::Br, 2)]);
        let entry = commit(&cache, &with_file, &br);
        commit(&cache, &bare, &meta(&[]));
        assert_eq!(fs::read(entry.variant_path(Encoding::Br)).unwrap(), b"br");
        assert_eq!(
            cache.get(&with_file).unwrap().meta,
            br,
            "found in the same run"
        );

        // The files on disk: one journal, the kept variant, nothing staged left behind.
        let names = files_under(dir.path());
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(
            names
                .iter()
                .any(|n| n.ends_with(&format!("{with_file}.br")))
        );
        assert!(
            names
                .iter()
                .any(|n| n.contains("journal/") && n.ends_with(".jsonl"))
        );

        let later = ProcessingCache::new(dir.path(), true);
        assert_eq!(
            later.get(&with_file).unwrap().meta,
            br,
            "found by a later run"
        );
        assert_eq!(later.get(&bare).unwrap().meta, meta(&[]));
        assert!(ProcessingCache::new(dir.path(), false).get(&bare).is_none());

        fs::remove_file(entry.variant_path(Encoding::Br)).unwrap();
        assert!(
            ProcessingCache::new(dir.path(), true)
                .get(&with_file)
                .is_none(),
            "an entry missing a file is a miss"
        );
    }

    #[test]
    fn a_torn_or_foreign_journal_line_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ProcessingCache::new(dir.path(), true);
        commit(&cache, &key(1), &meta(&[]));
        let journal = dir
            .path()
            .join("pipeline")
            .join(LAYOUT_VERSION)
            .join("journal");
        let file = fs::read_dir(&journal)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut bytes = fs::read(&file).unwrap();
        bytes.extend_from_slice(b"not json\n{\"key\": \"");
        fs::write(&file, bytes).unwrap();
        let later = ProcessingCache::new(dir.path(), true);
        assert!(later.get(&key(1)).is_some());
        assert!(later.get(&key(2)).is_none());
    }

    #[test]
    fn many_journals_are_merged_into_one_without_losing_entries() {
        let dir = tempfile::tempdir().unwrap();
        let count = MAX_JOURNALS as u32 + 3;
        for n in 0..count {
            // A new cache per "run": each appends to its own journal file.
            commit(&ProcessingCache::new(dir.path(), true), &key(n), &meta(&[]));
        }
        let journal = dir
            .path()
            .join("pipeline")
            .join(LAYOUT_VERSION)
            .join("journal");
        assert_eq!(fs::read_dir(&journal).unwrap().count(), count as usize);
        let cache = ProcessingCache::new(dir.path(), true);
        assert!(cache.get(&key(0)).is_some(), "the load merges");
        let left: Vec<_> = fs::read_dir(&journal).unwrap().collect();
        assert_eq!(left.len(), 1, "merged into one file");
        let merged = ProcessingCache::new(dir.path(), true);
        for n in 0..count {
            assert!(
                merged.get(&key(n)).is_some(),
                "entry {n} survived the merge"
            );
        }
    }

    #[test]
    fn committing_an_output_that_was_never_staged_fails() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ProcessingCache::new(dir.path(), true);
        let staging = cache.stage(&key(1));
        let err = cache
            .commit(&key(1), staging, meta(&[(Encoding::Zstd, 1)]))
            .unwrap_err();
        assert!(err.to_string().contains("zstd"), "{err}");
        assert!(cache.get(&key(1)).is_none());
    }
}
