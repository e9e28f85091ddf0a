//! The origin's state: the deployed site's manifest, kept in memory and reloaded when a
//! redeploy replaces it, a bounded memory cache of small files, and the served-bytes
//! counters.
//!
//! A deploy to a `local` site writes each asset's identity bytes at its path, sibling
//! variants (`app.js.br`, `.gz`, `.zst`), then the manifest (`deploy.manifest_key`,
//! `.edgeship/manifest`): path → content hash, sizes, variants and the headers the rules
//! chose at deploy time. The origin serves from that manifest
//! (`crate::http::routes::origin`): negotiation ([`negotiate`]), validators and ranges
//! ([`conditional`]), bodies ([`body`]).
//!
//! **Reload.** At most every [`CHECK_INTERVAL`], one request stats the manifest file
//! (size, mtime, inode: the local provider replaces it by rename) and, when it changed,
//! reads and parses it off the async workers, then swaps the in-memory snapshot. Other
//! requests keep using the previous snapshot meanwhile. A manifest that does not parse
//! is reported once and the previous snapshot stays; a missing one means "no manifest"
//! (files are served as they are, see the route).
//!
//! **Memory cache.** Files up to [`body::MAX_CACHED_FILE`] are kept in memory (at most
//! [`CACHE_BYTES`] in all, least recently used out first), keyed by the snapshot's
//! generation, the asset and the coding — so a reload (a new generation) never serves
//! bytes of the previous deploy under the new manifest's validators; the cache is also
//! emptied on reload. Files changed on disk without a new manifest are served from memory
//! until the next reload: the manifest is the site's truth.

pub mod body;
pub mod conditional;
pub mod dictionary;
pub mod negotiate;
pub mod stats;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use actix_web::http::header::{self, EntityTag, HeaderName, HeaderValue};

use crate::cache::Cache;
use crate::pipeline::manifest::Manifest;
use body::{InMemory, Loaded};
use negotiate::Coding;
pub use stats::{Flusher, OriginStats};

/// How often the manifest file is checked for a redeploy.
pub const CHECK_INTERVAL: Duration = Duration::from_millis(250);

/// The memory cache's budget for file bytes.
pub const CACHE_BYTES: u64 = 64 * 1024 * 1024;

/// Headers the origin sets itself; rule headers with these names are not sent.
const OWN_HEADERS: [HeaderName; 10] = [
    header::CONTENT_TYPE,
    header::CONTENT_ENCODING,
    header::CONTENT_LENGTH,
    header::CONTENT_RANGE,
    header::CACHE_CONTROL,
    header::ETAG,
    header::LAST_MODIFIED,
    header::VARY,
    header::ACCEPT_RANGES,
    header::TRANSFER_ENCODING,
];

/// One representation of an asset: its coding, size (from the manifest) and validator.
#[derive(Debug, Clone)]
pub struct Representation {
    /// Identity, a stored variant, or a delta.
    pub coding: Coding,
    /// What follows the asset's path in its file name (`""`, `.br`, `.<sha-256>.dcz`).
    pub suffix: Box<str>,
    /// Its slot among the asset's representations (for the memory cache).
    pub slot: u16,
    /// Its size according to the manifest.
    pub size: u64,
    /// Its strong entity tag: `"<hash>"` for identity, `"<hash>-br"` for a variant,
    /// `"<hash>-dcz-<dictionary sha-256 prefix>"` for a delta.
    pub etag: EntityTag,
    /// The same, ready to send.
    pub etag_header: HeaderValue,
}

/// An asset of the manifest with its response headers prepared.
#[derive(Debug, Clone)]
pub struct Asset {
    /// Public path (no leading `/`).
    pub path: String,
    /// `Content-Type`.
    pub content_type: HeaderValue,
    /// `Cache-Control`.
    pub cache_control: HeaderValue,
    /// Extra headers chosen by the rules at deploy time.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Identity first, then the stored variants.
    pub representations: Vec<Representation>,
    /// `(coding, size)` of each representation, for negotiation.
    pub offered: Vec<(Coding, u64)>,
    /// Deltas from earlier versions, for clients holding one (RFC 9842).
    pub deltas: Vec<DeltaRepresentation>,
    /// `Use-As-Dictionary`, when the asset is offered as a compression dictionary.
    pub use_as_dictionary: Option<HeaderValue>,
    /// `Vary`: `accept-encoding`, plus `available-dictionary` when deltas exist.
    pub vary: HeaderValue,
    /// Size of the identity bytes.
    pub identity_size: u64,
    /// Set for a `single:<enc>` asset: the file at the path holds this encoding and no
    /// identity file exists (clients that do not accept it get it decoded).
    pub single: Option<Coding>,
    /// The identity's entity tag (for a `single:<enc>` asset decoded for a client).
    pub identity_etag: HeaderValue,
}

/// A delta of an asset from one earlier version.
#[derive(Debug, Clone)]
pub struct DeltaRepresentation {
    /// SHA-256 of the earlier version (what `Available-Dictionary` names).
    pub from: [u8; 32],
    /// The delta itself.
    pub representation: Representation,
}

impl Asset {
    /// The representation with `coding`.
    pub fn representation(&self, coding: Coding) -> Option<&Representation> {
        self.representations.iter().find(|r| r.coding == coding)
    }

    /// The identity representation's size.
    pub fn identity_size(&self) -> u64 {
        self.identity_size
    }

    /// What plain br sends for this asset (identity when it has no br variant): what a
    /// delta is compared with.
    pub fn br_size(&self) -> u64 {
        self.representation(Coding::Br)
            .map_or_else(|| self.identity_size(), |r| r.size)
    }

    fn from_manifest(path: &str, entry: &crate::pipeline::manifest::ManifestEntry) -> Option<Self> {
        let content_type = HeaderValue::from_str(&entry.content_type).ok()?;
        let cache_control = HeaderValue::from_str(&entry.cache_control).ok()?;
        let headers = entry
            .headers
            .iter()
            .filter_map(|(name, value)| {
                let name = HeaderName::from_bytes(name.as_bytes()).ok()?;
                let value = HeaderValue::from_str(value).ok()?;
                (!OWN_HEADERS.contains(&name)).then_some((name, value))
            })
            .collect();
        let hash = entry.hash.as_str();
        let representation = |coding: Coding, size: u64, tag: String, suffix: String, slot| {
            let etag = EntityTag::new_strong(tag);
            let etag_header = HeaderValue::from_str(&etag.to_string()).ok()?;
            Some(Representation {
                coding,
                suffix: suffix.into(),
                slot,
                size,
                etag,
                etag_header,
            })
        };
        let identity = representation(
            Coding::Identity,
            entry.size,
            hash.to_owned(),
            String::new(),
            0,
        )?;
        let identity_etag = identity.etag_header.clone();
        let mut representations = vec![identity];
        if let Some(encoding) = entry.single {
            // The one stored object, at the path itself.
            let coding = Coding::of(encoding);
            let size = *entry.variants.get(&encoding)?;
            let tag = format!("{hash}-{}", coding.token());
            representations = vec![representation(coding, size, tag, String::new(), 0)?];
        }
        for (encoding, size) in entry.variants.iter().filter(|_| entry.single.is_none()) {
            let coding = Coding::of(*encoding);
            let slot = representations.len() as u16;
            let tag = format!("{hash}-{}", coding.token());
            representations.push(representation(
                coding,
                *size,
                tag,
                encoding.suffix().to_owned(),
                slot,
            )?);
        }
        let offered = representations.iter().map(|r| (r.coding, r.size)).collect();
        let mut deltas = Vec::new();
        for delta in &entry.deltas {
            let coding = Coding::of_delta(delta.encoding);
            let slot = (representations.len() + deltas.len()) as u16;
            let from = delta.from.hex();
            let tag = format!("{hash}-{}-{}", coding.token(), &from[..16]);
            let suffix = delta.key("")[..].to_owned();
            deltas.push(DeltaRepresentation {
                from: delta.from.0,
                representation: representation(coding, delta.size, tag, suffix, slot)?,
            });
        }
        let use_as_dictionary = entry
            .dictionary
            .as_ref()
            .and_then(|offer| dictionary::use_as_dictionary_value(&offer.match_pattern));
        let vary = HeaderValue::from_static(if deltas.is_empty() {
            "accept-encoding"
        } else {
            dictionary::VARY_WITH_DICTIONARY
        });
        Some(Self {
            path: path.to_owned(),
            content_type,
            cache_control,
            headers,
            representations,
            offered,
            deltas,
            use_as_dictionary,
            vary,
            identity_size: entry.size,
            single: entry.single.map(Coding::of),
            identity_etag,
        })
    }
}

/// What identifies one version of the manifest file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        Self {
            len: meta.len(),
            modified: meta.modified().ok(),
            inode,
        }
    }
}

/// One loaded version of the manifest.
#[derive(Debug, Default)]
pub struct Snapshot {
    generation: u64,
    loaded: bool,
    index: HashMap<Box<str>, u32>,
    assets: Vec<Asset>,
}

impl Snapshot {
    fn build(generation: u64, manifest: &Manifest) -> Self {
        let mut snapshot = Self {
            generation,
            loaded: true,
            ..Self::default()
        };
        for (path, entry) in &manifest.assets {
            if !safe_path(path) {
                tracing::warn!(path, "manifest path skipped: it could leave the site root");
                continue;
            }
            let Some(asset) = Asset::from_manifest(path, entry) else {
                tracing::warn!(
                    path,
                    "manifest entry skipped: its headers are not valid HTTP"
                );
                continue;
            };
            let Ok(id) = u32::try_from(snapshot.assets.len()) else {
                break;
            };
            snapshot.index.insert(path.as_str().into(), id);
            snapshot.assets.push(asset);
        }
        snapshot
    }

    /// Whether a manifest is loaded.
    pub fn has_manifest(&self) -> bool {
        self.loaded
    }

    /// The number of assets.
    pub fn len(&self) -> usize {
        self.assets.len()
    }

    /// Whether the snapshot has no assets.
    pub fn is_empty(&self) -> bool {
        self.assets.is_empty()
    }

    /// The asset at `path`, else at `path/index.html` (a directory's page).
    pub fn find(&self, path: &str) -> Option<AssetRef<'_>> {
        let id = match self.index.get(path) {
            Some(id) => *id,
            None => *self.index.get(format!("{path}/index.html").as_str())?,
        };
        Some(AssetRef {
            id,
            asset: self.assets.get(id as usize)?,
        })
    }
}

/// An asset found in a [`Snapshot`].
#[derive(Debug, Clone, Copy)]
pub struct AssetRef<'a> {
    id: u32,
    /// The asset.
    pub asset: &'a Asset,
}

/// A manifest path the origin will map to a file: relative, no `.`/`..` segments, no
/// backslashes, nothing under `.edgeship/`.
fn safe_path(path: &str) -> bool {
    !path.is_empty()
        && !path.starts_with('/')
        && !path.contains(['\\', '\0'])
        && path.split('/').all(|s| !matches!(s, "" | "." | ".."))
        && path != ".edgeship"
        && !path.starts_with(".edgeship/")
}

/// What a manifest check found.
enum Check {
    Unchanged,
    Missing,
    Loaded(Stamp, Box<Snapshot>),
    Unreadable(Option<Stamp>, String),
}

/// Blocking: stats the manifest at `path` and loads it when its stamp differs from
/// `seen` (the version looked at last).
fn check(path: &Path, seen: Option<&Stamp>, generation: u64) -> Check {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Check::Missing,
        Err(err) => return Check::Unreadable(None, err.to_string()),
    };
    let stamp = Stamp::of(&meta);
    if seen == Some(&stamp) {
        return Check::Unchanged;
    }
    let manifest = std::fs::read(path)
        .map_err(|e| e.to_string())
        .and_then(|bytes| Manifest::from_json(&bytes).map_err(|e| e.to_string()));
    match manifest {
        Ok(manifest) => Check::Loaded(stamp, Box::new(Snapshot::build(generation, &manifest))),
        Err(message) => Check::Unreadable(Some(stamp), message),
    }
}

type FileKey = (u64, u32, u16);

/// The origin's state for one site.
#[derive(Debug)]
pub struct Origin {
    site: String,
    root: PathBuf,
    manifest_path: PathBuf,
    // A std lock: held only to clone or replace an `Arc`, never across an await.
    snapshot: RwLock<Arc<Snapshot>>,
    // The manifest file version looked at last (loaded, or found unreadable); only the
    // checking request touches it.
    seen: Mutex<Option<Stamp>>,
    epoch: Instant,
    next_check_ms: AtomicU64,
    checking: AtomicBool,
    generation: AtomicU64,
    files: moka::future::Cache<FileKey, Arc<InMemory>>,
    stats: Arc<OriginStats>,
}

/// Resets a flag when dropped (also when the request that set it is cancelled).
struct ClearOnDrop<'a>(&'a AtomicBool);

impl Drop for ClearOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

impl Origin {
    /// The origin of `site`, whose files live under `root` and whose manifest is at
    /// `root/manifest_key`. Loads the manifest now (blocking; startup).
    pub fn new(site: &str, root: &Path, manifest_key: &str) -> Self {
        let manifest_path = root.join(manifest_key);
        let (seen, snapshot) = match check(&manifest_path, None, 1) {
            Check::Loaded(stamp, snapshot) => (Some(stamp), *snapshot),
            Check::Unreadable(stamp, message) => {
                tracing::warn!(site, manifest = %manifest_path.display(), %message, "the site's manifest is unreadable; serving files as they are until a deploy replaces it");
                (stamp, Snapshot::default())
            }
            Check::Missing | Check::Unchanged => (None, Snapshot::default()),
        };
        let files = moka::future::Cache::builder()
            .max_capacity(CACHE_BYTES)
            .weigher(|_: &FileKey, file: &Arc<InMemory>| {
                // Bytes plus a little for the entry itself.
                u32::try_from(file.bytes.len() + 128).unwrap_or(u32::MAX)
            })
            .build();
        Self {
            site: site.to_owned(),
            root: root.to_path_buf(),
            manifest_path,
            snapshot: RwLock::new(Arc::new(snapshot)),
            seen: Mutex::new(seen),
            epoch: Instant::now(),
            next_check_ms: AtomicU64::new(CHECK_INTERVAL.as_millis() as u64),
            checking: AtomicBool::new(false),
            generation: AtomicU64::new(1),
            files,
            stats: Arc::new(OriginStats::new(site)),
        }
    }

    /// The site served.
    pub fn site(&self) -> &str {
        &self.site
    }

    /// The directory served.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The served-bytes counters.
    pub fn stats(&self) -> &Arc<OriginStats> {
        &self.stats
    }

    /// Starts flushing the counters into `cache` (see [`OriginStats::start_flusher`]).
    pub fn start_flusher(&self, cache: Cache) -> Flusher {
        self.stats.start_flusher(cache)
    }

    fn current(&self) -> Arc<Snapshot> {
        match self.snapshot.read() {
            Ok(guard) => Arc::clone(&guard),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    fn replace(&self, snapshot: Snapshot) {
        let snapshot = Arc::new(snapshot);
        match self.snapshot.write() {
            Ok(mut guard) => *guard = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
        self.files.invalidate_all();
    }

    /// The current manifest snapshot; checks for a new manifest first when the last check
    /// is older than [`CHECK_INTERVAL`] and no other request is checking.
    pub async fn snapshot(&self) -> Arc<Snapshot> {
        let now = self.epoch.elapsed().as_millis() as u64;
        if now >= self.next_check_ms.load(Ordering::Relaxed)
            && self
                .checking
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
        {
            let _clear = ClearOnDrop(&self.checking);
            self.next_check_ms
                .store(now + CHECK_INTERVAL.as_millis() as u64, Ordering::Relaxed);
            self.refresh().await;
        }
        self.current()
    }

    /// Checks the manifest file now and swaps in a new snapshot if it changed.
    pub async fn refresh(&self) {
        let path = self.manifest_path.clone();
        let seen = self.seen_stamp();
        let generation = self.generation.load(Ordering::Relaxed) + 1;
        let checked =
            tokio::task::spawn_blocking(move || check(&path, seen.as_ref(), generation)).await;
        match checked {
            Ok(Check::Unchanged) => {}
            Ok(Check::Missing) => {
                self.set_seen(None);
                if self.current().has_manifest() {
                    tracing::info!(site = %self.site, "the site's manifest is gone; serving files as they are");
                    self.generation.store(generation, Ordering::Relaxed);
                    self.replace(Snapshot {
                        generation,
                        ..Snapshot::default()
                    });
                }
            }
            Ok(Check::Loaded(stamp, snapshot)) => {
                tracing::info!(site = %self.site, assets = snapshot.len(), generation, "origin manifest loaded");
                self.set_seen(Some(stamp));
                self.generation.store(generation, Ordering::Relaxed);
                self.replace(*snapshot);
            }
            Ok(Check::Unreadable(stamp, message)) => {
                tracing::warn!(site = %self.site, manifest = %self.manifest_path.display(), %message, "the site's manifest is unreadable; still serving the previous one");
                // Remember the bad version so it is not parsed again at every check.
                self.set_seen(stamp);
            }
            Err(err) => {
                tracing::warn!(site = %self.site, error = %err, "the manifest check failed");
            }
        }
    }

    fn seen_stamp(&self) -> Option<Stamp> {
        match self.seen.lock() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set_seen(&self, stamp: Option<Stamp>) {
        match self.seen.lock() {
            Ok(mut guard) => *guard = stamp,
            Err(poisoned) => *poisoned.into_inner() = stamp,
        }
    }

    /// Opens the file of one of `asset`'s representations: from the memory cache, or from
    /// disk (small files are then cached).
    pub async fn open(
        &self,
        snapshot: &Snapshot,
        asset: AssetRef<'_>,
        representation: &Representation,
    ) -> io::Result<Loaded> {
        let key = (snapshot.generation, asset.id, representation.slot);
        if let Some(hit) = self.files.get(&key).await {
            return Ok(Loaded::Memory(InMemory::clone(&hit)));
        }
        let path = self
            .root
            .join(format!("{}{}", asset.asset.path, representation.suffix));
        let loaded = tokio::task::spawn_blocking(move || body::load(path))
            .await
            .map_err(io::Error::other)??;
        if let Loaded::Memory(file) = &loaded {
            self.files.insert(key, Arc::new(file.clone())).await;
        }
        Ok(loaded)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_paths_that_could_escape_are_refused() {
        assert!(safe_path("assets/app.js"));
        assert!(safe_path(".well-known/security.txt"));
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "a/../../x",
            "a//b",
            "a\\b",
            ".edgeship/manifest",
            "./a",
        ] {
            assert!(!safe_path(bad), "{bad}");
        }
    }
}
