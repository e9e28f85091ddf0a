//! Compression dictionaries at deploy time (RFC 9842): which assets browsers are told to
//! keep as dictionaries, and the delta variants of a changed asset against the versions
//! returning visitors hold.
//!
//! 1. **Offers** ([`offer`]): a compressible asset of a dictionary kind (JS, CSS, JSON,
//!    SVG, text, WASM; HTML only when a rule says so) between
//!    `deploy.dictionaries.min_asset_bytes` and `max_dictionary_bytes` is served with
//!    `Use-As-Dictionary: match="…"`: its URL path with the content hash replaced by `*`
//!    (`/assets/app.*.js`), or a rule's pattern.
//! 2. **Earlier versions**: for an asset that changed, the versions a visitor may hold are
//!    those earlier deploys offered as dictionaries at the same path, or — for
//!    fingerprinted names — at a path that differs only in the hash. They are found in the
//!    deploy history, newest first, up to `versions` distinct ones.
//! 3. **Deltas**: for each earlier version, one `dcz` and one `dcb` body of the new version
//!    against it, computed on the blocking pool and cached on disk by (new, earlier,
//!    levels), kept only when smaller than the plain br variant by the pipeline's margin.
//!    The earlier bytes come from this machine's dictionary store, else from the site
//!    (read before the upload replaces them), checked against their hash.
//!
//! An unchanged asset keeps the deltas the site's manifest lists for it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use edgeship_providers::{ProviderError, ProviderExt, SharedProvider};

use super::config::DictionaryConfig;
use crate::pipeline::classify::AssetKind;
use crate::pipeline::compress::{self, Encoding, Levels};
use crate::pipeline::delta::{self, DeltaEncoding, Sha256};
use crate::pipeline::hash::ContentHash;
use crate::pipeline::manifest::{Delta, DictionaryOffer, Manifest, ManifestEntry};
use crate::pipeline::rules::{DictionaryRule, fingerprint_span, version_family};
use crate::pipeline::{DeltaFile, ProcessedAsset};

/// How an asset is offered as a dictionary, if it is (see the module docs).
pub fn offer(asset: &ProcessedAsset, config: &DictionaryConfig) -> Option<DictionaryOffer> {
    if !config.enabled {
        return None;
    }
    let sha256 = asset.sha256?;
    let rule = asset.rule.dictionary.as_ref();
    let kind_offered = matches!(
        asset.kind,
        AssetKind::Js
            | AssetKind::Css
            | AssetKind::Json
            | AssetKind::Svg
            | AssetKind::Text
            | AssetKind::CompressibleBinary
    );
    let wanted = match rule {
        Some(DictionaryRule::Enabled(on)) => *on,
        Some(DictionaryRule::Match(_)) => true,
        None => kind_offered,
    };
    if !wanted
        || asset.size < config.min_asset_bytes
        || asset.size > config.max_dictionary_bytes
        || asset.rule.cache_control.contains("no-store")
    {
        return None;
    }
    let match_pattern = match rule {
        Some(DictionaryRule::Match(pattern)) => pattern.clone(),
        _ => url_pattern(&asset.path),
    };
    Some(DictionaryOffer {
        sha256,
        match_pattern,
    })
}

/// The `Use-As-Dictionary` match of an asset path: `/` + the path, its content hash
/// replaced by `*`, everything else literal (URL pattern syntax characters escaped,
/// bytes outside printable ASCII percent-encoded as browsers send them).
pub fn url_pattern(path: &str) -> String {
    let mut out = String::from("/");
    let literal = |out: &mut String, part: &str| {
        for byte in part.bytes() {
            match byte {
                b':' | b'*' | b'(' | b')' | b'{' | b'}' | b'+' | b'?' | b'\\' => {
                    out.push('\\');
                    out.push(byte as char);
                }
                0x21..=0x7e if byte != b'"' && byte != b'#' && byte != b'%' => {
                    out.push(byte as char)
                }
                _ => out.push_str(&format!("%{byte:02X}")),
            }
        }
    };
    match fingerprint_span(path) {
        Some(span) => {
            literal(&mut out, &path[..span.start]);
            out.push('*');
            literal(&mut out, &path[span.end..]);
        }
        None => literal(&mut out, path),
    }
    out
}

/// Sets each asset's dictionary offer, and gives every asset whose version the site
/// already has the deltas the site's manifest lists for it (those still wanted).
/// Returns the indexes of assets that are offered, changed, and so may get new deltas.
pub fn offer_and_carry(
    assets: &mut [ProcessedAsset],
    remote: &Manifest,
    config: &DictionaryConfig,
    store: &DictionaryStore,
    levels: Levels,
) -> Vec<usize> {
    let mut changed = Vec::new();
    for (i, asset) in assets.iter_mut().enumerate() {
        asset.dictionary = offer(asset, config);
        asset.deltas.clear();
        let old = remote.assets.get(&asset.path);
        match old {
            // The same version: its deltas (those still wanted) stay.
            Some(old) if old.hash == asset.hash => {
                if asset.dictionary.is_none() {
                    continue;
                }
                asset.deltas = old
                    .deltas
                    .iter()
                    .filter(|d| config.encodings.contains(&d.encoding))
                    .map(|d| DeltaFile {
                        file: store.delta_path(&asset.hash, &d.base, d.encoding, levels),
                        delta: d.clone(),
                    })
                    .collect();
            }
            _ if asset.dictionary.is_some() => changed.push(i),
            _ => {}
        }
    }
    changed
}

/// An earlier version of an asset that browsers may hold as a dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Base {
    /// Where it was deployed.
    pub path: String,
    /// Its blake3.
    pub hash: ContentHash,
    /// Its SHA-256 (the dictionary's name).
    pub sha256: Sha256,
}

/// An asset that changed and may get deltas: its index among the deploy's assets, its
/// path and its new hash.
#[derive(Debug, Clone, Copy)]
pub struct Changed<'a> {
    /// Index into the deploy's assets.
    pub index: usize,
    /// Public path.
    pub path: &'a str,
    /// The new version's blake3.
    pub hash: &'a ContentHash,
}

/// The earlier versions of each `changed` asset, from `records` (deploy manifests, newest
/// first): at the same path or in the same family, offered as a dictionary then, another
/// hash than now; up to `versions` distinct ones each, newest first, the same path first
/// within one record.
pub fn find_bases(
    changed: &[Changed<'_>],
    records: &[Manifest],
    versions: usize,
) -> BTreeMap<usize, Vec<Base>> {
    let mut families: HashMap<String, Vec<&Changed<'_>>> = HashMap::new();
    for asset in changed {
        families
            .entry(version_family(asset.path))
            .or_default()
            .push(asset);
    }
    let mut found: BTreeMap<usize, Vec<Base>> = BTreeMap::new();
    for record in records {
        let mut members: Vec<(&String, &ManifestEntry)> = record
            .assets
            .iter()
            .filter(|(_, entry)| entry.dictionary.is_some())
            .collect();
        members.sort_by_key(|(path, _)| !changed.iter().any(|a| a.path == path.as_str()));
        for (path, entry) in members {
            let (Some(assets), Some(offer)) =
                (families.get(&version_family(path)), &entry.dictionary)
            else {
                continue;
            };
            for asset in assets {
                let bases = found.entry(asset.index).or_default();
                if entry.hash == *asset.hash
                    || bases.len() >= versions
                    || bases.iter().any(|b| b.hash == entry.hash)
                {
                    continue;
                }
                bases.push(Base {
                    path: path.clone(),
                    hash: entry.hash.clone(),
                    sha256: offer.sha256,
                });
            }
        }
        if changed
            .iter()
            .all(|a| found.get(&a.index).is_some_and(|b| b.len() >= versions))
        {
            break;
        }
    }
    found.retain(|_, bases| !bases.is_empty());
    found
}

/// Earlier versions kept on this machine (`<cache_dir>/dictionaries/<blake3>`) and the
/// computed delta bodies (`<cache_dir>/dictionaries/deltas/…`).
#[derive(Debug, Clone)]
pub struct DictionaryStore {
    dir: PathBuf,
    max_bytes: u64,
}

impl DictionaryStore {
    /// The store under `cache_dir`, holding at most `max_bytes` of earlier versions.
    pub fn new(cache_dir: &Path, max_bytes: u64) -> Self {
        Self {
            dir: cache_dir.join("dictionaries"),
            max_bytes,
        }
    }

    fn version_path(&self, hash: &ContentHash) -> PathBuf {
        self.dir.join(hash.as_str())
    }

    /// Where the `encoding` delta of `new` from `base` at `levels` is kept.
    pub fn delta_path(
        &self,
        new: &ContentHash,
        base: &ContentHash,
        encoding: DeltaEncoding,
        levels: Levels,
    ) -> PathBuf {
        let level = match encoding {
            DeltaEncoding::Dcb => levels.brotli as i64,
            DeltaEncoding::Dcz => levels.zstd as i64,
        };
        self.dir.join("deltas").join(format!(
            "{}.{}.{}{level}",
            new.as_str(),
            base.as_str(),
            encoding.token()
        ))
    }

    /// Blocking: the bytes of version `hash`, if kept here and intact.
    pub fn read(&self, hash: &ContentHash) -> Option<Vec<u8>> {
        let bytes = fs::read(self.version_path(hash)).ok()?;
        (ContentHash::of(&bytes) == *hash).then_some(bytes)
    }

    /// Blocking: keeps `bytes` as version `hash` (written to a temporary file, then
    /// renamed), then drops the oldest versions beyond the store's size.
    pub fn keep(&self, hash: &ContentHash, bytes: &[u8]) -> io::Result<()> {
        let path = self.version_path(hash);
        if path.exists() {
            return Ok(());
        }
        write_atomically(&path, bytes)?;
        self.prune()
    }

    fn prune(&self) -> io::Result<()> {
        let mut files: Vec<(std::time::SystemTime, u64, PathBuf)> = fs::read_dir(&self.dir)?
            .filter_map(Result::ok)
            .filter_map(|e| {
                let meta = e.metadata().ok()?;
                let modified = meta.modified().ok()?;
                meta.is_file().then(|| (modified, meta.len(), e.path()))
            })
            .collect();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        files.sort();
        for (_, len, path) in files {
            if total <= self.max_bytes {
                break;
            }
            fs::remove_file(&path)?;
            total -= len;
        }
        Ok(())
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let mut temp = tempfile::NamedTempFile::new_in(dir)?;
    temp.write_all(bytes)?;
    temp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// What computing deltas needs besides the assets.
#[derive(Debug, Clone)]
pub struct DeltaSettings {
    /// The codings made.
    pub encodings: Vec<DeltaEncoding>,
    /// Compression levels (the pipeline's).
    pub levels: Levels,
    /// A delta is kept when it saves this share of the br variant (the pipeline's margin)…
    pub min_saving_percent: f64,
    /// …and this many bytes.
    pub min_saving_bytes: u64,
    /// CPU-heavy encodes at once.
    pub workers: usize,
}

/// What computing deltas did, for the deploy report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeltaCounts {
    /// Deltas kept (new or carried over).
    pub kept: u64,
    /// Deltas computed now (not found on disk).
    pub computed: u64,
    /// Deltas dropped: not smaller than br by the margin.
    pub dropped: u64,
    /// Earlier versions that could not be read (neither kept here nor on the site).
    pub missing_versions: u64,
}

/// Computes the deltas of `assets[i]` from each of `bases[i]` and adds the kept ones to
/// the asset. Earlier bytes come from `store`, else from the site through `provider`.
/// A version that cannot be read is skipped; a provider error that makes the site
/// unusable stops.
pub async fn compute(
    assets: &mut [ProcessedAsset],
    bases: BTreeMap<usize, Vec<Base>>,
    provider: &SharedProvider,
    store: &DictionaryStore,
    settings: &DeltaSettings,
) -> Result<DeltaCounts, ProviderError> {
    let mut counts = DeltaCounts::default();
    let permits = Arc::new(tokio::sync::Semaphore::new(settings.workers.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, bases) in bases {
        let asset = &assets[i];
        for base in bases {
            let Some(dictionary) = earlier_bytes(provider, store, &base).await? else {
                counts.missing_versions += 1;
                continue;
            };
            let job = DeltaJob {
                index: i,
                identity: asset.identity_file().to_path_buf(),
                hash: asset.hash.clone(),
                reference: asset
                    .variants
                    .get(&Encoding::Br)
                    .copied()
                    .unwrap_or(asset.size),
                base,
                dictionary,
                settings: settings.clone(),
                store: store.clone(),
            };
            let permit = Arc::clone(&permits).acquire_owned().await;
            tasks.spawn_blocking(move || {
                let _permit = permit;
                job.run()
            });
        }
    }
    while let Some(joined) = tasks.join_next().await {
        let outcome = match joined {
            Ok(outcome) => outcome,
            Err(err) => {
                tracing::warn!(error = %err, "a delta task failed; the asset ships without it");
                continue;
            }
        };
        counts.computed += outcome.computed;
        counts.dropped += outcome.dropped;
        if let Some(asset) = assets.get_mut(outcome.index) {
            counts.kept += outcome.deltas.len() as u64;
            asset.deltas.extend(outcome.deltas);
        }
    }
    for asset in assets.iter_mut() {
        asset.deltas.sort_by(|a, b| {
            (a.delta.from, a.delta.encoding).cmp(&(b.delta.from, b.delta.encoding))
        });
    }
    Ok(counts)
}

/// Keeps the identity bytes of offered assets in the store, so the next deploy makes
/// deltas from them without downloading them. Blocking; failures are only logged.
pub fn remember_versions(store: &DictionaryStore, assets: &[ProcessedAsset], indexes: &[usize]) {
    for &i in indexes {
        let asset = &assets[i];
        match fs::read(asset.identity_file()) {
            Ok(bytes) if ContentHash::of(&bytes) == asset.hash => {
                if let Err(err) = store.keep(&asset.hash, &bytes) {
                    tracing::debug!(path = %asset.path, error = %err, "version not kept for later deltas");
                }
            }
            _ => {}
        }
    }
}

/// The bytes of an earlier version: from the store, else from the site (then kept).
async fn earlier_bytes(
    provider: &SharedProvider,
    store: &DictionaryStore,
    base: &Base,
) -> Result<Option<Vec<u8>>, ProviderError> {
    let (local, hash) = (store.clone(), base.hash.clone());
    if let Ok(Some(bytes)) = tokio::task::spawn_blocking(move || local.read(&hash)).await {
        return Ok(Some(bytes));
    }
    let fetched = match provider.get_opt(&base.path).await {
        Ok(fetched) => fetched,
        Err(err) if err.is_fatal_for_provider() => return Err(err),
        Err(err) => {
            tracing::info!(path = %base.path, error = %err, "earlier version not readable; no delta from it");
            None
        }
    };
    let Some((_, bytes)) = fetched else {
        return Ok(None);
    };
    // The object at that path may be another version by now.
    if ContentHash::of(&bytes) != base.hash {
        return Ok(None);
    }
    let bytes = bytes.to_vec();
    let (local, hash, copy) = (store.clone(), base.hash.clone(), bytes.clone());
    let _ = tokio::task::spawn_blocking(move || local.keep(&hash, &copy)).await;
    Ok(Some(bytes))
}

/// One (new version, earlier version) pair to encode.
struct DeltaJob {
    index: usize,
    identity: PathBuf,
    hash: ContentHash,
    reference: u64,
    base: Base,
    dictionary: Vec<u8>,
    settings: DeltaSettings,
    store: DictionaryStore,
}

struct DeltaOutcome {
    index: usize,
    deltas: Vec<DeltaFile>,
    computed: u64,
    dropped: u64,
}

impl DeltaJob {
    fn run(self) -> DeltaOutcome {
        let mut outcome = DeltaOutcome {
            index: self.index,
            deltas: Vec::new(),
            computed: 0,
            dropped: 0,
        };
        let mut input: Option<Vec<u8>> = None;
        for &encoding in &self.settings.encodings {
            let path =
                self.store
                    .delta_path(&self.hash, &self.base.hash, encoding, self.settings.levels);
            let size = match fs::metadata(&path) {
                Ok(meta) => meta.len(),
                Err(_) => {
                    if input.is_none() {
                        input = fs::read(&self.identity).ok();
                    }
                    let Some(input) = &input else {
                        break;
                    };
                    let made =
                        delta::encode(encoding, self.settings.levels, &self.dictionary, input)
                            .and_then(|body| write_atomically(&path, &body).map(|()| body.len()));
                    match made {
                        Ok(len) => {
                            outcome.computed += 1;
                            len as u64
                        }
                        Err(err) => {
                            tracing::warn!(error = %err, %encoding, "delta not made");
                            continue;
                        }
                    }
                }
            };
            if compress::keep_variant(
                self.reference,
                size,
                self.settings.min_saving_percent,
                self.settings.min_saving_bytes,
            ) {
                outcome.deltas.push(DeltaFile {
                    delta: Delta {
                        from: self.base.sha256,
                        base: self.base.hash.clone(),
                        encoding,
                        size,
                    },
                    file: path,
                });
            } else {
                outcome.dropped += 1;
            }
        }
        outcome
    }
}

/// The distinct SHA-256 names of every dictionary a manifest's deltas are made from.
pub fn dictionaries_used(manifest: &Manifest) -> BTreeSet<Sha256> {
    manifest
        .assets
        .values()
        .flat_map(|e| e.deltas.iter().map(|d| d.from))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(content: &str, offered: bool) -> ManifestEntry {
        ManifestEntry {
            hash: ContentHash::of(content.as_bytes()),
            size: content.len() as u64,
            source_size: content.len() as u64,
            content_type: "text/javascript".into(),
            cache_control: "public".into(),
            headers: Default::default(),
            tags: Vec::new(),
            variants: Default::default(),
            dictionary: offered.then(|| DictionaryOffer {
                sha256: Sha256::of(content.as_bytes()),
                match_pattern: "/x".into(),
            }),
            deltas: Vec::new(),
            single: None,
        }
    }

    fn record(assets: &[(&str, &str, bool)]) -> Manifest {
        Manifest {
            assets: assets
                .iter()
                .map(|(path, content, offered)| (path.to_string(), entry(content, *offered)))
                .collect(),
            ..Manifest::default()
        }
    }

    #[test]
    fn earlier_versions_come_newest_first_by_path_or_fingerprint_family() {
        let records = [
            record(&[
                ("assets/app.2222bbbb.js", "v2", true),
                ("lib.js", "l2", true),
            ]),
            record(&[
                ("assets/app.1111aaaa.js", "v1", true),
                ("lib.js", "l2", true),
            ]),
            record(&[
                ("assets/app.0000ffff.js", "v0", true),
                ("lib.js", "l1", true),
            ]),
            record(&[("lib.js", "l0", false)]),
        ];
        let (h3, l3) = (ContentHash::of(b"v3"), ContentHash::of(b"l3"));
        let changed = [
            Changed {
                index: 0,
                path: "assets/app.3333cccc.js",
                hash: &h3,
            },
            Changed {
                index: 1,
                path: "lib.js",
                hash: &l3,
            },
        ];
        let bases = find_bases(&changed, &records, 2);
        let names = |i: usize| -> Vec<(String, Sha256)> {
            bases[&i]
                .iter()
                .map(|b| (b.path.clone(), b.sha256))
                .collect()
        };
        assert_eq!(
            names(0),
            [
                ("assets/app.2222bbbb.js".to_string(), Sha256::of(b"v2")),
                ("assets/app.1111aaaa.js".to_string(), Sha256::of(b"v1")),
            ]
        );
        assert_eq!(
            names(1),
            [
                ("lib.js".to_string(), Sha256::of(b"l2")),
                ("lib.js".to_string(), Sha256::of(b"l1")),
            ],
            "the same version in two records counts once"
        );
        let one = find_bases(&changed, &records, 1);
        assert_eq!(one[&0].len(), 1);
        // A version never offered as a dictionary is not held by browsers; the asset's
        // own current hash is no base.
        let l2 = ContentHash::of(b"l2");
        let same = [Changed {
            index: 5,
            path: "lib.js",
            hash: &l2,
        }];
        let bases = find_bases(&same, &records[2..], 3);
        assert_eq!(bases[&5].len(), 1, "{bases:?}");
        assert!(find_bases(&same, &records[3..], 3).is_empty());
    }

    #[test]
    fn the_store_keeps_versions_by_hash_and_drops_the_oldest_beyond_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let store = DictionaryStore::new(dir.path(), 10);
        let (a, b) = (ContentHash::of(b"aaaaaa"), ContentHash::of(b"bbbbbb"));
        store.keep(&a, b"aaaaaa").unwrap();
        assert_eq!(store.read(&a).as_deref(), Some(&b"aaaaaa"[..]));
        std::thread::sleep(std::time::Duration::from_millis(20));
        store.keep(&b, b"bbbbbb").unwrap();
        assert_eq!(store.read(&a), None, "over 10 bytes: the oldest went");
        assert_eq!(store.read(&b).as_deref(), Some(&b"bbbbbb"[..]));
        // A damaged file is not trusted.
        std::fs::write(dir.path().join("dictionaries").join(b.as_str()), b"xxxxxx").unwrap();
        assert_eq!(store.read(&b), None);
    }

    #[test]
    fn patterns_replace_the_hash_and_escape_the_rest() {
        assert_eq!(url_pattern("assets/app.3f9c2a1b.js"), "/assets/app.*.js");
        assert_eq!(url_pattern("assets/legacy.js"), "/assets/legacy.js");
        assert_eq!(url_pattern("a+b/(x).js"), "/a\\+b/\\(x\\).js");
        assert_eq!(url_pattern("docs/café.txt"), "/docs/caf%C3%A9.txt");
        assert_eq!(url_pattern("a b.js"), "/a%20b.js");
    }
}
