//! Sites for the kill tests: a generated tree and a change to it, which objects a local
//! site's directory had PUT again between two snapshots, and a check, object by object,
//! that the stored site is what its manifest says.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use edgeship::pipeline::compress::decode;
use edgeship::pipeline::hash::ContentHash;
use edgeship::pipeline::manifest::Manifest;
use edgeship_providers::ObjectMeta;
use edgeship_providers::object::META_HASH;

/// `files` text files in 10 directories and three pages, under `root/name`.
pub fn generate(root: &Path, name: &str, files: usize) -> PathBuf {
    let site = root.join(name);
    for i in 0..files {
        write(
            &site.join(format!("d{:02}/file-{i:04}.txt", i % 10)),
            &format!("file {i}\n").repeat(20 + i % 30),
        );
    }
    for page in ["index.html", "about/index.html", "blog/index.html"] {
        write(
            &site.join(page),
            &format!(
                "<!doctype html><title>{page}</title>{}",
                "<p>text</p>".repeat(200)
            ),
        );
    }
    site
}

/// Changes every third text file and every page, and adds `files / 10` new files;
/// returns the changed paths (the ones a deploy must purge: new ones were never cached).
pub fn change(site: &Path, files: usize, round: u32) -> BTreeSet<String> {
    let mut changed = BTreeSet::new();
    for i in (0..files).step_by(3) {
        let path = format!("d{:02}/file-{i:04}.txt", i % 10);
        crate::common::append(&site.join(&path), &format!("changed in round {round}\n"));
        changed.insert(path);
    }
    for page in ["index.html", "about/index.html", "blog/index.html"] {
        crate::common::append(&site.join(page), &format!("<p>round {round}</p>"));
        changed.insert(page.to_string());
    }
    for i in 0..files / 10 {
        write(
            &site.join(format!("new{round}/file-{i:04}.txt")),
            &format!("new in round {round}: {i}\n").repeat(30),
        );
    }
    changed
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// The relative paths of every file under `site`.
pub fn paths(site: &Path) -> BTreeSet<String> {
    crate::common::read_tree(site).into_keys().collect()
}

/// A file's identity on disk: a PUT to the local provider renames a new file into place,
/// so a different inode means the object was written again.
type FileId = (u64, i64, i64);

fn file_id(path: &Path) -> Option<FileId> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.ino(), meta.mtime(), meta.mtime_nsec()))
}

/// What a local site's directory holds: each object's data file and sidecar identity.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    data: BTreeMap<String, FileId>,
    meta: BTreeMap<String, FileId>,
}

impl Snapshot {
    /// Reads the site rooted at `root` (a missing root is empty).
    pub fn of(root: &Path) -> Self {
        let mut snapshot = Self::default();
        if !root.exists() {
            return snapshot;
        }
        for entry in walkdir::WalkDir::new(root) {
            let entry = entry.unwrap();
            if !entry.file_type().is_file()
                || entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(".edgeship-tmp-")
            {
                continue;
            }
            let rel = entry
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel.starts_with(".edgeship/meta/") {
                continue;
            }
            let id = file_id(entry.path()).unwrap();
            let sidecar = root.join(".edgeship/meta").join(format!("{rel}.json"));
            if let Some(meta) = file_id(&sidecar) {
                snapshot.meta.insert(rel.clone(), meta);
            }
            snapshot.data.insert(rel, id);
        }
        snapshot
    }

    /// Objects whose data was written since `before` (site objects only, not `.edgeship/`).
    pub fn written_since(&self, before: &Self) -> BTreeSet<String> {
        self.data
            .iter()
            .filter(|(key, id)| !key.starts_with(".edgeship/") && before.data.get(*key) != Some(id))
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// Objects completely written since `before`: bytes and sidecar. One whose bytes went
    /// in and whose sidecar did not (a kill between the two renames) reads as not uploaded
    /// and is uploaded again — the one PUT a resume is allowed to repeat.
    pub fn completed_since(&self, before: &Self) -> BTreeSet<String> {
        self.written_since(before)
            .into_iter()
            .filter(|key| self.meta.contains_key(key) && before.meta.get(key) != self.meta.get(key))
            .collect()
    }

    /// Whether `key` (e.g. `.edgeship/manifest`) was written since `before`.
    pub fn changed(&self, before: &Self, key: &str) -> bool {
        self.data.get(key) != before.data.get(key)
    }
}

/// Checks the local site at `root` against its manifest, object by object: every asset
/// the manifest names is stored with its hash (bytes hashed again), size and metadata,
/// and every variant it lists decodes to those bytes. The manifest must name exactly
/// the files of `input`. Returns the manifest.
pub fn verify(root: &Path, input: &Path) -> Manifest {
    let manifest =
        Manifest::from_json(&std::fs::read(root.join(".edgeship/manifest")).unwrap()).unwrap();
    assert_eq!(
        manifest.assets.keys().cloned().collect::<BTreeSet<_>>(),
        paths(input),
        "the manifest names every file of the site, and nothing else"
    );
    for (path, entry) in &manifest.assets {
        let identity = std::fs::read(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(identity.len() as u64, entry.size, "{path}");
        assert_eq!(
            ContentHash::of(&identity),
            entry.hash,
            "{path}: stored bytes"
        );
        assert_eq!(
            sidecar(root, path).metadata.get(META_HASH),
            Some(&entry.hash.to_string()),
            "{path}"
        );
        for (encoding, size) in &entry.variants {
            let key = format!("{path}{}", encoding.suffix());
            let stored = std::fs::read(root.join(&key)).unwrap_or_else(|e| panic!("{key}: {e}"));
            assert_eq!(stored.len() as u64, *size, "{key}");
            let meta = sidecar(root, &key);
            assert_eq!(
                meta.metadata.get(META_HASH),
                Some(&entry.hash.to_string()),
                "{key}"
            );
            assert_eq!(
                meta.content_encoding.as_deref(),
                Some(encoding.token()),
                "{key}"
            );
            let mut plain = Vec::new();
            decode(*encoding, &mut &stored[..], &mut plain).unwrap();
            assert!(plain == identity, "{key} does not decode to {path}");
        }
    }
    manifest
}

fn sidecar(root: &Path, key: &str) -> ObjectMeta {
    let path = root.join(".edgeship/meta").join(format!("{key}.json"));
    serde_json::from_slice(&std::fs::read(&path).unwrap_or_else(|e| panic!("{key}: {e}"))).unwrap()
}

/// Every purge job file under `jobs` (a data directory without Redis keeps them there).
pub fn purge_jobs(jobs: &Path) -> Vec<serde_json::Value> {
    let Ok(entries) = std::fs::read_dir(jobs) else {
        return Vec::new();
    };
    let mut found: Vec<serde_json::Value> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                n.to_string_lossy().starts_with('p') && n.to_string_lossy().ends_with(".json")
            })
        })
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect();
    found.sort_by_key(|job| job["id"].as_str().unwrap_or_default().to_string());
    found
}

/// The paths purge jobs named (`plan.matched`).
pub fn purged_paths(jobs: &[serde_json::Value]) -> BTreeSet<String> {
    jobs.iter()
        .flat_map(|job| {
            job["plan"]["matched"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|p| p.as_str().unwrap().to_string())
        .collect()
}
