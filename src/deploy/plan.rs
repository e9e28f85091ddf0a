//! Planning: what a deploy must upload, delete and purge, decided before anything is
//! written. The plan is printed as it is for `--dry-run`, then executed.
//!
//! Each asset becomes one object per stored form: the identity at its path and one
//! sibling per kept variant (`app.js.br`, stored with `Content-Encoding: br`). An object
//! is uploaded when the remote manifest does not describe it exactly (hash, size,
//! headers); objects the remote has and the local tree no longer produces are stale.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use edgeship_providers::object::{META_ENCODING, META_HASH};
use edgeship_providers::{Body, ObjectMeta, PutRequest};
use serde::Serialize;

use crate::pipeline::ProcessedAsset;
use crate::pipeline::classify::AssetKind;
use crate::pipeline::compress::Encoding;
use crate::pipeline::delta::{DeltaEncoding, Sha256};
use crate::pipeline::manifest::{Manifest, ManifestEntry};

/// Why an object is uploaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The site does not have it.
    New,
    /// The bytes changed.
    ContentChanged,
    /// Only headers (cache control, content type, extra headers) changed.
    HeadersChanged,
}

/// One object the deploy wants stored.
#[derive(Debug, Clone, Serialize)]
pub struct DesiredObject {
    /// Object key.
    pub key: String,
    /// The asset's public path.
    pub path: String,
    /// `None` for the identity, else the variant's encoding.
    pub encoding: Option<Encoding>,
    /// For a delta variant (RFC 9842): its coding and the dictionary it was made from.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delta: Option<DeltaObject>,
    /// Whether the asset is an HTML page (uploaded after every other asset).
    pub is_html: bool,
    /// Size in bytes.
    pub size: u64,
    /// Where the bytes are.
    #[serde(skip)]
    pub source: PathBuf,
    /// The asset's identity hash.
    pub hash: String,
    /// `Content-Type`.
    pub content_type: String,
    /// `Cache-Control`.
    pub cache_control: String,
    /// Extra headers.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// What makes an object a delta variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DeltaObject {
    /// `dcb` or `dcz`.
    pub encoding: DeltaEncoding,
    /// SHA-256 of the earlier version it was made from.
    pub from: Sha256,
}

impl DesiredObject {
    /// The `Content-Encoding` token of the stored bytes (`None`: identity).
    pub fn content_encoding(&self) -> Option<&'static str> {
        match (self.delta, self.encoding) {
            (Some(delta), _) => Some(delta.encoding.token()),
            (None, Some(encoding)) => Some(encoding.token()),
            (None, None) => None,
        }
    }

    /// The put request that stores this object.
    pub fn put_request(&self) -> PutRequest {
        let encoding = self.content_encoding().map(str::to_string);
        PutRequest {
            key: self.key.clone(),
            body: Body::File {
                path: self.source.clone(),
                size: self.size,
            },
            content_type: Some(self.content_type.clone()),
            content_encoding: encoding.clone(),
            cache_control: Some(self.cache_control.clone()),
            headers: self.headers.clone(),
            metadata: BTreeMap::from([
                (META_HASH.to_string(), self.hash.clone()),
                (
                    META_ENCODING.to_string(),
                    encoding.unwrap_or_else(|| "identity".into()),
                ),
            ]),
        }
    }

    /// Whether a stored object's metadata shows it is exactly this object.
    pub fn matches_stored(&self, stored: &ObjectMeta) -> bool {
        let encoding = self.content_encoding().unwrap_or("identity");
        stored.size == self.size
            && stored.metadata.get(META_HASH) == Some(&self.hash)
            && stored.metadata.get(META_ENCODING).map(String::as_str) == Some(encoding)
            && stored.content_type.as_deref() == Some(self.content_type.as_str())
            && stored.cache_control.as_deref() == Some(self.cache_control.as_str())
            && stored.headers == self.headers
    }
}

/// The objects of a set of processed assets, in the assets' order: each identity
/// followed by its variants.
pub fn desired_objects(assets: &[ProcessedAsset]) -> Vec<DesiredObject> {
    let mut objects = Vec::with_capacity(assets.len() * 3);
    for asset in assets {
        let base = DesiredObject {
            key: asset.path.clone(),
            path: asset.path.clone(),
            encoding: None,
            delta: None,
            is_html: asset.kind == AssetKind::Html,
            size: asset.size,
            source: asset.identity_file().to_path_buf(),
            hash: asset.hash.as_str().to_string(),
            content_type: asset.rule.content_type.clone(),
            cache_control: asset.rule.cache_control.clone(),
            headers: asset.rule.headers.clone(),
        };
        let variants: Vec<DesiredObject> = asset
            .variants
            .iter()
            .filter(|_| asset.single().is_none())
            .filter_map(|(encoding, size)| {
                let source = asset.variant_file(*encoding)?;
                Some(DesiredObject {
                    key: format!("{}{}", asset.path, encoding.suffix()),
                    encoding: Some(*encoding),
                    size: *size,
                    source,
                    ..base.clone()
                })
            })
            .collect();
        let deltas: Vec<DesiredObject> = asset
            .deltas
            .iter()
            .map(|d| DesiredObject {
                key: d.delta.key(&asset.path),
                delta: Some(DeltaObject {
                    encoding: d.delta.encoding,
                    from: d.delta.from,
                }),
                size: d.delta.size,
                source: d.file.clone(),
                ..base.clone()
            })
            .collect();
        // `single:<enc>`: the one object at the path holds the encoded bytes.
        let base = match asset.single() {
            Some(encoding) => match asset.variant_file(encoding) {
                Some(source) => DesiredObject {
                    encoding: Some(encoding),
                    size: asset.variants[&encoding],
                    source,
                    ..base
                },
                None => base,
            },
            None => base,
        };
        objects.push(base);
        objects.extend(variants);
        objects.extend(deltas);
    }
    objects
}

/// A manifest with no assets (a site without one).
pub fn empty_manifest() -> Manifest {
    Manifest::default()
}

/// What the remote manifest says about one object, to compare with a desired one.
fn remote_state(remote: &Manifest, object: &DesiredObject) -> Option<Reason> {
    let Some(entry) = remote.assets.get(&object.path) else {
        return Some(Reason::New);
    };
    let stored_size = match (object.delta, object.encoding) {
        (Some(delta), _) => entry
            .deltas
            .iter()
            .find(|d| d.from == delta.from && d.encoding == delta.encoding)
            .map(|d| d.size),
        (None, None) => Some(entry.size),
        (None, Some(encoding)) => entry.variants.get(&encoding).copied(),
    };
    let Some(stored_size) = stored_size else {
        return Some(Reason::New);
    };
    // The object at the path is the identity, or (`single:<enc>`) an encoded variant: a
    // switch between the two replaces it.
    let single_object = object.key == object.path && object.encoding.is_some();
    if object.key == object.path && single_object != entry.single.is_some() {
        return Some(Reason::ContentChanged);
    }
    // A `single:<enc>` site stored no sibling variants.
    if entry.single.is_some() && object.key != object.path && object.delta.is_none() {
        return Some(Reason::New);
    }
    if entry.hash.as_str() != object.hash || stored_size != object.size {
        return Some(Reason::ContentChanged);
    }
    if entry.content_type != object.content_type
        || entry.cache_control != object.cache_control
        || entry.headers != object.headers
    {
        return Some(Reason::HeadersChanged);
    }
    None
}

/// The keys a manifest entry stands for: the identity (or the `single:<enc>` object),
/// its variants and its deltas.
pub fn entry_keys(path: &str, entry: &ManifestEntry) -> Vec<String> {
    std::iter::once(path.to_string())
        .chain(
            entry
                .variants
                .keys()
                .filter(|_| entry.single.is_none())
                .map(|e| format!("{path}{}", e.suffix())),
        )
        .chain(entry.deltas.iter().map(|d| d.key(path)))
        .collect()
}

/// An upload in a plan.
#[derive(Debug, Clone, Serialize)]
pub struct Upload {
    /// The object.
    #[serde(flatten)]
    pub object: DesiredObject,
    /// Why.
    pub reason: Reason,
}

/// A complete plan.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    /// Objects to upload, non-HTML first, then HTML.
    pub uploads: Vec<Upload>,
    /// Objects already stored as wanted.
    pub unchanged: usize,
    /// Objects found already uploaded by an interrupted deploy (verified by their stored
    /// hash), so not uploaded again.
    pub resumed: usize,
    /// Public paths the remote has and the local tree no longer does.
    pub stale_paths: Vec<String>,
    /// Keys of stale objects (stale paths' objects, and variants no longer produced).
    pub stale_keys: Vec<String>,
    /// Paths whose content or headers changed (they may be cached: purge them).
    pub changed_paths: Vec<String>,
    /// The last deploy was interrupted (its marker was found); the marker is cleared when
    /// this deploy completes.
    pub interrupted: bool,
    /// Paths the interrupted deploy was going to purge (from its marker): it may have
    /// stored their new objects, or its manifest, without purging them, so this deploy
    /// purges them with its own changes.
    pub carried_purges: Vec<String>,
    /// Delta keys the interrupted deploy's marker lists (see
    /// [`super::remote::Marker::deltas`]): this deploy lists them in its own marker too, so
    /// a rerun stopped again still finds them, and deletes those its manifest does not name.
    pub carried_deltas: Vec<String>,
    /// Of the carried deltas, those neither the site's manifest nor this deploy names: left
    /// by the interrupted deploy, served by nothing edgeship knows of but possibly by an
    /// edge rule that picks a delta by path. Deleted before the uploads.
    pub orphan_deltas: Vec<String>,
    /// Deltas the site's manifest names for a path this deploy still has and that it no
    /// longer stores (made against a version no longer kept, a coding turned off, a path
    /// rolled back). Deleted once the new manifest is stored, with or without `--delete`:
    /// they are derived objects, not files, and an edge rule would serve one made for a
    /// version the path no longer holds.
    pub dropped_deltas: Vec<String>,
}

impl Plan {
    /// Every path this deploy may purge: changed ones, carried ones and, when stale files
    /// are to be deleted, those. The in-progress marker lists them, so that a rerun after
    /// a kill purges them.
    pub fn purge_candidates(&self, delete: bool) -> Vec<String> {
        let mut paths: BTreeSet<&String> = self
            .changed_paths
            .iter()
            .chain(&self.carried_purges)
            .collect();
        if delete {
            paths.extend(&self.stale_paths);
        }
        paths.into_iter().cloned().collect()
    }

    /// Takes in the delta keys an interrupted deploy listed (`unfinished`): all are carried
    /// into this deploy's marker, and those that neither `remote` nor `desired` (this
    /// deploy's object keys) names become [`Plan::orphan_deltas`].
    pub fn carry_deltas(
        &mut self,
        unfinished: &[String],
        remote: &Manifest,
        desired: &BTreeSet<String>,
    ) {
        let named: BTreeSet<String> = remote
            .assets
            .iter()
            .flat_map(|(path, entry)| entry_keys(path, entry))
            .collect();
        let carried: BTreeSet<&String> = unfinished.iter().collect();
        self.orphan_deltas = carried
            .iter()
            .filter(|key| !desired.contains(key.as_str()) && !named.contains(key.as_str()))
            .map(|key| key.to_string())
            .collect();
        self.carried_deltas = carried.into_iter().cloned().collect();
    }

    /// The delta keys this deploy may leave behind if it is stopped: those it carries, those
    /// it uploads and those it drops. Its marker lists them (call before the uploads run).
    pub fn marker_deltas(&self) -> Vec<String> {
        let keys: BTreeSet<&String> = self
            .carried_deltas
            .iter()
            .chain(&self.dropped_deltas)
            .chain(
                self.uploads
                    .iter()
                    .filter(|u| u.object.delta.is_some())
                    .map(|u| &u.object.key),
            )
            .collect();
        keys.into_iter().cloned().collect()
    }

    /// Whether there are delta objects to delete, which is work even when nothing is
    /// uploaded.
    pub fn has_delta_deletes(&self) -> bool {
        !self.orphan_deltas.is_empty() || !self.dropped_deltas.is_empty()
    }

    /// Builds a plan from the desired objects and what the site has. `remote` is the
    /// site's manifest (empty when there is none); `stored` holds metadata of objects
    /// known to be stored already (from a listing when there is no manifest, or from
    /// checking planned uploads after an interrupted deploy).
    pub fn build(
        desired: Vec<DesiredObject>,
        remote: &Manifest,
        stored: &BTreeMap<String, ObjectMeta>,
    ) -> Self {
        Self::build_with(desired, remote, stored, false)
    }

    /// As [`Plan::build`], after an interrupted deploy whose objects may have replaced
    /// ones the manifest still describes: `stored` holds every desired object found
    /// stored, and an object not stored as wanted is uploaded again (and purged) even
    /// where the manifest says it is there.
    pub fn build_checked(
        desired: Vec<DesiredObject>,
        remote: &Manifest,
        stored: &BTreeMap<String, ObjectMeta>,
    ) -> Self {
        Self::build_with(desired, remote, stored, true)
    }

    fn build_with(
        desired: Vec<DesiredObject>,
        remote: &Manifest,
        stored: &BTreeMap<String, ObjectMeta>,
        checked_all: bool,
    ) -> Self {
        let mut plan = Self::default();
        let mut changed = BTreeSet::new();
        let desired_keys: BTreeSet<&str> = desired.iter().map(|o| o.key.as_str()).collect();
        let local_paths: BTreeSet<&str> = desired.iter().map(|o| o.path.as_str()).collect();
        let mut stale_keys: BTreeSet<String> = BTreeSet::new();
        for (path, entry) in &remote.assets {
            for key in entry_keys(path, entry) {
                if !desired_keys.contains(key.as_str()) {
                    stale_keys.insert(key);
                }
            }
            if !local_paths.contains(path.as_str()) {
                plan.stale_paths.push(path.clone());
            } else {
                // A stale path's deltas go with it (`--delete`); until then the manifest
                // keeps its entry, and the path the version they were made for.
                plan.dropped_deltas.extend(
                    entry
                        .deltas
                        .iter()
                        .map(|d| d.key(path))
                        .filter(|key| !desired_keys.contains(key.as_str())),
                );
            }
        }
        let mut html = Vec::new();
        for object in desired {
            let stored_as_wanted = stored
                .get(&object.key)
                .is_some_and(|meta| object.matches_stored(meta));
            let reason = match remote_state(remote, &object) {
                Some(reason) => reason,
                None if checked_all && !stored_as_wanted => Reason::ContentChanged,
                None => {
                    plan.unchanged += 1;
                    continue;
                }
            };
            if stored_as_wanted {
                plan.resumed += 1;
                continue;
            }
            if reason != Reason::New {
                changed.insert(object.path.clone());
            }
            let upload = Upload { object, reason };
            if upload.object.is_html {
                html.push(upload)
            } else {
                plan.uploads.push(upload)
            }
        }
        plan.uploads.extend(html);
        plan.stale_keys = stale_keys.into_iter().collect();
        plan.changed_paths = changed.into_iter().collect();
        plan
    }

    /// Bytes the uploads send.
    pub fn upload_bytes(&self) -> u64 {
        self.uploads.iter().map(|u| u.object.size).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::hash::ContentHash;

    fn object(path: &str, hash: &str, encoding: Option<Encoding>, html: bool) -> DesiredObject {
        DesiredObject {
            key: format!("{path}{}", encoding.map_or("", |e| e.suffix())),
            path: path.into(),
            encoding,
            delta: None,
            is_html: html,
            size: 10,
            source: PathBuf::new(),
            hash: hash.into(),
            content_type: "text/html".into(),
            cache_control: "max-age=0".into(),
            headers: BTreeMap::new(),
        }
    }

    fn entry(hash: &str, variants: &[Encoding]) -> ManifestEntry {
        ManifestEntry {
            hash: serde_json::from_value::<ContentHash>(serde_json::json!(hash)).unwrap(),
            size: 10,
            source_size: 10,
            content_type: "text/html".into(),
            cache_control: "max-age=0".into(),
            headers: BTreeMap::new(),
            tags: Vec::new(),
            dictionary: None,
            deltas: Vec::new(),
            single: None,
            variants: variants.iter().map(|e| (*e, 10)).collect(),
        }
    }

    #[test]
    fn plans_new_changed_unchanged_and_stale_with_html_last() {
        let remote = Manifest {
            assets: BTreeMap::from([
                ("same.css".to_string(), entry("h1", &[Encoding::Br])),
                ("changed.js".to_string(), entry("old", &[])),
                (
                    "index.html".to_string(),
                    entry("h3", &[Encoding::Br, Encoding::Gzip]),
                ),
                ("gone.txt".to_string(), entry("h4", &[Encoding::Zstd])),
            ]),
            ..Manifest::default()
        };
        let desired = vec![
            object("index.html", "h3", None, true),
            object("index.html", "h3", Some(Encoding::Br), true),
            object("same.css", "h1", None, false),
            object("same.css", "h1", Some(Encoding::Br), false),
            object("changed.js", "new", None, false),
            object("new.js", "h5", None, false),
            object("about.html", "h6", None, true),
        ];
        let plan = Plan::build(desired, &remote, &BTreeMap::new());
        let uploads: Vec<(&str, Reason)> = plan
            .uploads
            .iter()
            .map(|u| (u.object.key.as_str(), u.reason))
            .collect();
        assert_eq!(
            uploads,
            [
                ("changed.js", Reason::ContentChanged),
                ("new.js", Reason::New),
                ("about.html", Reason::New)
            ]
        );
        assert_eq!(plan.unchanged, 4);
        assert_eq!(plan.stale_paths, ["gone.txt"]);
        assert_eq!(
            plan.stale_keys,
            ["gone.txt", "gone.txt.zst", "index.html.gz"]
        );
        assert_eq!(
            plan.changed_paths,
            ["changed.js"],
            "new paths were never cached: no purge"
        );
    }

    #[test]
    fn header_changes_reupload_and_stored_objects_are_not_uploaded_again() {
        let remote = Manifest {
            assets: BTreeMap::from([("a.js".to_string(), entry("h", &[]))]),
            ..Manifest::default()
        };
        let mut changed = object("a.js", "h", None, false);
        changed.cache_control = "no-store".into();
        let fresh = object("b.js", "hb", None, false);
        let stored = BTreeMap::from([(
            "b.js".to_string(),
            ObjectMeta {
                key: "b.js".into(),
                ..fresh.put_request().meta()
            },
        )]);
        let plan = Plan::build(vec![changed, fresh], &remote, &stored);
        assert_eq!(plan.uploads.len(), 1);
        assert_eq!(plan.uploads[0].reason, Reason::HeadersChanged);
        assert_eq!(plan.resumed, 1);
    }

    /// Version 2's deploy stored `a.js` over version 1's and was interrupted before its
    /// manifest; deploying version 1 again must put version 1's bytes back (and purge
    /// them), although the manifest — still version 1's — says they are there.
    #[test]
    fn after_an_interruption_objects_stored_over_the_manifests_version_are_put_back() {
        let remote = Manifest {
            assets: BTreeMap::from([
                ("a.js".to_string(), entry("v1", &[Encoding::Br])),
                ("b.js".to_string(), entry("v1", &[])),
            ]),
            ..Manifest::default()
        };
        let desired = vec![
            object("a.js", "v1", None, false),
            object("a.js", "v1", Some(Encoding::Br), false),
            object("b.js", "v1", None, false),
        ];
        let stored_as = |object: &DesiredObject, hash: &str| {
            let mut meta = object.put_request().meta();
            meta.key = object.key.clone();
            meta.metadata.insert(META_HASH.into(), hash.into());
            (object.key.clone(), meta)
        };
        // a.js holds version 2's bytes, a.js.br is missing, b.js is version 1's.
        let stored = BTreeMap::from([stored_as(&desired[0], "v2"), stored_as(&desired[2], "v1")]);
        let unchecked = Plan::build(desired.clone(), &remote, &stored);
        assert!(
            unchecked.uploads.is_empty(),
            "the manifest alone sees nothing to do"
        );

        let plan = Plan::build_checked(desired, &remote, &stored);
        let keys: Vec<&str> = plan.uploads.iter().map(|u| u.object.key.as_str()).collect();
        assert_eq!(keys, ["a.js", "a.js.br"]);
        assert!(
            plan.uploads
                .iter()
                .all(|u| u.reason == Reason::ContentChanged)
        );
        assert_eq!(plan.changed_paths, ["a.js"], "it may be cached: purged");
        assert_eq!(plan.unchanged, 1);
    }

    /// Deltas the manifest names for a path still deployed and no longer made are dropped
    /// (deleted without `--delete`); a stale path's go with it. Of the deltas an
    /// interrupted deploy listed, those named nowhere are orphans.
    #[test]
    fn dropped_and_orphan_deltas() {
        use crate::pipeline::manifest::Delta;
        let delta = |from: &[u8]| Delta {
            from: Sha256::of(from),
            base: serde_json::from_value::<ContentHash>(serde_json::json!("b")).unwrap(),
            encoding: DeltaEncoding::Dcz,
            size: 5,
        };
        let mut kept = entry("v2", &[]);
        kept.deltas = vec![delta(b"v0"), delta(b"v1")];
        let mut gone = entry("g", &[]);
        gone.deltas = vec![delta(b"g0")];
        let remote = Manifest {
            assets: BTreeMap::from([("a.js".to_string(), kept), ("gone.js".to_string(), gone)]),
            ..Manifest::default()
        };
        let identity = object("a.js", "v3", None, false);
        let new_delta = DesiredObject {
            key: delta(b"v0").key("a.js"),
            delta: Some(DeltaObject {
                encoding: DeltaEncoding::Dcz,
                from: Sha256::of(b"v0"),
            }),
            ..identity.clone()
        };
        let desired = vec![identity, new_delta];
        let desired_keys: BTreeSet<String> = desired.iter().map(|o| o.key.clone()).collect();
        let mut plan = Plan::build(desired, &remote, &BTreeMap::new());
        let (v0, v1, g0) = (
            delta(b"v0").key("a.js"),
            delta(b"v1").key("a.js"),
            delta(b"g0").key("gone.js"),
        );
        assert_eq!(plan.dropped_deltas, std::slice::from_ref(&v1));
        assert!(plan.stale_keys.contains(&v1) && plan.stale_keys.contains(&g0));

        let v9 = delta(b"v9").key("a.js");
        plan.carry_deltas(
            &[v9.clone(), v0.clone(), v1.clone(), v9.clone()],
            &remote,
            &desired_keys,
        );
        assert_eq!(plan.orphan_deltas, std::slice::from_ref(&v9));
        assert_eq!(plan.carried_deltas.len(), 3);
        let mut marker = vec![v0, v1, v9];
        marker.sort();
        assert_eq!(plan.marker_deltas(), marker);
        assert!(plan.has_delta_deletes());
    }
}
