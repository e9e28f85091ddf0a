//! The asset pipeline: classify → minify (guarded) → hash → precompress → rules, per file,
//! in parallel, behind the processing cache.
//!
//! [`Pipeline::process`] turns one [`SourceFile`] into a [`ProcessedAsset`] whose identity
//! and variant bytes sit in files (a cache entry, or the input itself when minification did
//! not change it). [`build`] runs it over a directory for `edgeship build`.

pub mod build;
pub mod classify;
pub mod compress;
pub mod config;
pub mod delta;
pub mod hash;
pub mod index;
pub mod manifest;
pub mod minify;
pub mod processing_cache;
pub mod rules;
pub mod scan;

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::PipelineConfig;
use classify::AssetKind;
use compress::{Encoding, Levels};
use hash::ContentHash;
use minify::{MinifyOutcome, MinifySettings};
use processing_cache::{Entry, EntryMeta, ProcessingCache};
use rules::{ResolvedRule, RuleSet};
pub use scan::SourceFile;

/// Errors processing one file. They fail that file only, never the whole run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProcessError {
    /// Reading the input or writing a cache entry failed.
    #[error("{path}: {source}")]
    Io {
        /// The public path of the file.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// Processing panicked (a bug); the message is the panic payload.
    #[error("{path}: internal error: {message}")]
    Panic {
        /// The public path of the file.
        path: String,
        /// The panic message.
        message: String,
    },
}

/// One processed file: what ships, and where its bytes are.
#[derive(Debug, Clone)]
pub struct ProcessedAsset {
    /// Public path, no leading `/`.
    pub path: String,
    /// The classification.
    pub kind: AssetKind,
    /// Headers and tags chosen by the rules.
    pub rule: ResolvedRule,
    /// Size of the input.
    pub source_size: u64,
    /// blake3 of the identity bytes.
    pub hash: ContentHash,
    /// Size of the identity bytes.
    pub size: u64,
    /// What the minifier did.
    pub minify: MinifyOutcome,
    /// Kept variants and their sizes.
    pub variants: BTreeMap<Encoding, u64>,
    /// SHA-256 of the identity bytes (compressible files below the streaming threshold).
    pub sha256: Option<delta::Sha256>,
    /// How browsers are told to keep this asset as a compression dictionary; decided by
    /// the deploy engine.
    pub dictionary: Option<manifest::DictionaryOffer>,
    /// Delta variants against earlier versions; filled by the deploy engine, which knows
    /// what was deployed before.
    pub deltas: Vec<DeltaFile>,
    /// Whether the result came from the processing cache.
    pub cache_hit: bool,
    /// How many encoder runs this file cost now (0 on a cache hit).
    pub compressions: u32,
    identity_file: PathBuf,
    entry: Entry,
    cache_key: ContentHash,
    stamp: scan::FileStamp,
}

impl ProcessedAsset {
    /// The file holding the identity bytes.
    pub fn identity_file(&self) -> &Path {
        &self.identity_file
    }

    /// The file holding a kept variant.
    pub fn variant_file(&self, encoding: Encoding) -> Option<PathBuf> {
        self.variants
            .contains_key(&encoding)
            .then(|| self.entry.variant_path(encoding))
    }

    /// The encoding stored as the one object at the path, for a `single:<enc>` rule
    /// whose variant was kept (otherwise the identity is stored as usual).
    pub fn single(&self) -> Option<Encoding> {
        match self.rule.strategy {
            rules::Strategy::Single(encoding) if self.variants.contains_key(&encoding) => {
                Some(encoding)
            }
            _ => None,
        }
    }

    /// What the stat index records for this asset.
    pub fn index_entry(&self) -> index::IndexEntry {
        index::IndexEntry {
            stamp: self.stamp,
            key: self.cache_key.clone(),
            meta: self.entry.meta.clone(),
        }
    }

    /// The manifest entry describing this asset.
    pub fn manifest_entry(&self) -> manifest::ManifestEntry {
        manifest::ManifestEntry {
            hash: self.hash.clone(),
            size: self.size,
            source_size: self.source_size,
            content_type: self.rule.content_type.clone(),
            cache_control: self.rule.cache_control.clone(),
            headers: self.rule.headers.clone(),
            tags: self.rule.tags.clone(),
            variants: self.variants.clone(),
            dictionary: self.dictionary.clone(),
            deltas: self.deltas.iter().map(|d| d.delta.clone()).collect(),
            single: self.single(),
        }
    }
}

/// A delta variant of an asset and the file holding its body.
#[derive(Debug, Clone, PartialEq)]
pub struct DeltaFile {
    /// What the manifest says of it.
    pub delta: manifest::Delta,
    /// Where its bytes are.
    pub file: PathBuf,
}

/// Everything that changes processing output for one file; hashed into the cache key.
#[derive(Debug, Serialize)]
struct FileSettings<'a> {
    kind: AssetKind,
    /// Facts of the file name that change minifier behaviour (`.mjs`, `*.min.*`).
    name_traits: &'a str,
    minify: Option<&'a MinifySettings>,
    rule_minify: Option<bool>,
    encodings: &'a [Encoding],
    levels: Levels,
    min_saving_percent: f64,
    min_saving_bytes: u64,
}

/// A configured pipeline, shared by all worker threads.
#[derive(Debug, Clone)]
pub struct Pipeline {
    config: PipelineConfig,
    minify: MinifySettings,
    rules: RuleSet,
    cache: ProcessingCache,
    exclude: globset::GlobSet,
    fingerprint: String,
    index_dir: PathBuf,
    use_index: bool,
}

/// Why a pipeline cannot be built from its settings (`pipeline.*`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    /// `pipeline.css_targets` is wrong.
    #[error("css_targets: {0}")]
    CssTargets(#[from] minify::css::TargetError),
    /// `pipeline.exclude` has a bad glob.
    #[error("exclude: {0}")]
    Exclude(#[from] rules::RuleError),
}

impl Pipeline {
    /// Builds a pipeline from config, a site's rules and the cache directory.
    pub fn new(
        config: &PipelineConfig,
        rules: RuleSet,
        cache_dir: &Path,
    ) -> Result<Self, PipelineError> {
        let minify = MinifySettings {
            js: config.minify.js,
            css: config.minify.css,
            json: config.minify.json,
            css_targets: minify::css::parse_targets(&config.css_targets)?,
        };
        // Plain numbers, strings and maps: serialising them cannot fail.
        let settings = serde_json::to_string(config).unwrap_or_default();
        let fingerprint = blake3::hash(
            format!(
                "{settings}\0{}\0{}",
                rules.fingerprint(),
                processing_cache::TOOL_VERSIONS
            )
            .as_bytes(),
        )
        .to_hex()
        .to_string();
        Ok(Self {
            config: config.clone(),
            minify,
            rules,
            cache: ProcessingCache::new(cache_dir, config.cache),
            exclude: rules::compile_globs(&config.exclude)?,
            fingerprint,
            index_dir: cache_dir.join("index"),
            use_index: true,
        })
    }

    /// Files excluded from publishing (`pipeline.exclude`).
    pub fn exclude(&self) -> &globset::GlobSet {
        &self.exclude
    }

    fn levels(&self) -> Levels {
        Levels {
            gzip: self.config.gzip_level,
            brotli: self.config.brotli_quality,
            zstd: self.config.zstd_level,
        }
    }

    /// Turns the stat index off: every file is read and hashed (results may still come
    /// from the processing cache).
    pub fn without_index(mut self) -> Self {
        self.use_index = false;
        self
    }

    /// The stat index of `input` for these settings, when the processing cache is on.
    pub fn load_index(&self, input: &Path) -> Option<index::StatIndex> {
        (self.config.cache && self.use_index)
            .then(|| index::StatIndex::load(&self.index_dir, input, &self.fingerprint))
    }

    /// The result recorded in the stat index for an unchanged file, without reading it.
    pub fn from_index(
        &self,
        index: &index::StatIndex,
        file: &SourceFile,
    ) -> Option<ProcessedAsset> {
        let recorded = index.lookup(&file.path, &file.stamp)?;
        let entry = self.cache.entry(&recorded.key, recorded.meta.clone());
        let rule = self.rules.resolve(&file.path, recorded.meta.kind);
        Some(self.asset(file, rule, entry, recorded.key.clone(), true, 0))
    }

    /// Processes one file. Never panics: a panic inside becomes [`ProcessError::Panic`].
    pub fn process(&self, file: &SourceFile) -> Result<ProcessedAsset, ProcessError> {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.process_inner(file))) {
            Ok(result) => result.map_err(|source| ProcessError::Io {
                path: file.path.clone(),
                source,
            }),
            Err(payload) => Err(ProcessError::Panic {
                path: file.path.clone(),
                message: minify::panic_message(payload.as_ref()),
            }),
        }
    }

    fn process_inner(&self, file: &SourceFile) -> io::Result<ProcessedAsset> {
        let streaming = file.size >= self.config.stream_threshold_bytes;
        // Small files are read once into memory; large ones are hashed and compressed by
        // streaming from disk and are not minified.
        let (bytes, source_hash, source_size, head) = if streaming {
            let mut reader = BufReader::new(File::open(&file.abs)?);
            let mut head = vec![0u8; 512];
            let n = read_up_to(&mut File::open(&file.abs)?, &mut head)?;
            head.truncate(n);
            let (hash, size) = ContentHash::of_reader(&mut reader)?;
            (None, hash, size, head)
        } else {
            let bytes = fs::read(&file.abs)?;
            let hash = ContentHash::of(&bytes);
            let head = bytes[..bytes.len().min(512)].to_vec();
            let size = bytes.len() as u64;
            (Some(bytes), hash, size, head)
        };
        let kind = classify::classify(&file.path, &head);
        let rule = self.rules.resolve(&file.path, kind);
        let minify_on = rule.minify.unwrap_or(true) && !streaming;
        let encodings: Vec<Encoding> = match rule.strategy {
            _ if !kind.is_compressible() => Vec::new(),
            // One encoded object is stored: only that encoding is needed.
            rules::Strategy::Single(encoding) => vec![encoding],
            rules::Strategy::Variants => rule
                .encodings
                .clone()
                .unwrap_or_else(|| self.config.encodings.clone()),
        };
        let minifiable = matches!(kind, AssetKind::Js | AssetKind::Css | AssetKind::Json);
        let name_traits = if minifiable {
            minify::name_traits(&file.path)
        } else {
            String::new()
        };
        let settings = FileSettings {
            kind,
            name_traits: &name_traits,
            minify: (minify_on && minifiable).then_some(&self.minify),
            rule_minify: rule.minify,
            encodings: &encodings,
            levels: self.levels(),
            min_saving_percent: self.config.min_saving_percent,
            min_saving_bytes: self.config.min_saving_bytes,
        };
        let settings_hash =
            ContentHash::of(&serde_json::to_vec(&settings).map_err(io::Error::other)?);
        let key = ProcessingCache::key(&source_hash, &settings_hash);

        if let Some(entry) = self.cache.get(&key) {
            return Ok(self.asset(file, rule, entry, key, true, 0));
        }

        let staging = self.cache.stage(&key);
        let (minified, outcome) = match (&bytes, minify_on) {
            (Some(bytes), true) => minify::minify(
                kind,
                &file.path,
                bytes,
                &self.minify,
                rule.minify == Some(true),
            ),
            (None, _) if minifiable => (
                None,
                MinifyOutcome::Skipped {
                    reason: "larger than pipeline.stream_threshold_bytes".into(),
                },
            ),
            (_, false) if minifiable => (
                None,
                MinifyOutcome::Skipped {
                    reason: "minification turned off by a rule".into(),
                },
            ),
            _ => (None, MinifyOutcome::NotApplicable),
        };
        let identity_stored = minified.is_some();
        let (identity_hash, identity_size) = match &minified {
            Some(out) => {
                staging
                    .create(processing_cache::Staging::IDENTITY)?
                    .write_all(out)?;
                (ContentHash::of(out), out.len() as u64)
            }
            None => (source_hash.clone(), source_size),
        };
        let identity: Identity<'_> = match (&minified, &bytes) {
            (Some(out), _) => Identity::Bytes(out),
            (None, Some(bytes)) => Identity::Bytes(bytes),
            (None, None) => Identity::File(&file.abs),
        };
        let results = self.encode_all(&encodings, &identity, identity_size, &staging);
        let mut variants = BTreeMap::new();
        for (encoding, result) in encodings.iter().zip(results) {
            let size = result?;
            let keep = compress::keep_variant(
                identity_size,
                size,
                self.config.min_saving_percent,
                self.config.min_saving_bytes,
            );
            // A variant not kept is deleted with the staging.
            if keep {
                variants.insert(*encoding, size);
            }
        }
        let sha256 = match identity {
            Identity::Bytes(bytes) if kind.is_compressible() => Some(delta::Sha256::of(bytes)),
            _ => None,
        };
        let meta = EntryMeta {
            kind,
            source_size,
            hash: identity_hash,
            size: identity_size,
            minify: outcome,
            identity_stored,
            variants,
            sha256,
        };
        let entry = self.cache.commit(&key, staging, meta)?;
        Ok(self.asset(file, rule, entry, key, false, encodings.len() as u32))
    }

    /// Runs every encoder, in parallel on the pool (large files gain most), each writing
    /// its variant into a file of `staging`. Returns each variant's size, in `encodings`
    /// order.
    fn encode_all(
        &self,
        encodings: &[Encoding],
        identity: &Identity<'_>,
        size: u64,
        staging: &processing_cache::Staging,
    ) -> Vec<io::Result<u64>> {
        let levels = self.levels();
        let run = |encoding: Encoding| -> io::Result<u64> {
            let mut out = BufWriter::new(staging.create(encoding.token())?);
            let mut input = identity.open()?;
            compress::encode(encoding, levels, size, &mut input, &mut out)?;
            let file = out.into_inner().map_err(|e| e.into_error())?;
            Ok(file.metadata()?.len())
        };
        use rayon::prelude::*;
        encodings.par_iter().map(|e| run(*e)).collect()
    }

    fn asset(
        &self,
        file: &SourceFile,
        rule: ResolvedRule,
        entry: Entry,
        cache_key: ContentHash,
        cache_hit: bool,
        compressions: u32,
    ) -> ProcessedAsset {
        let identity_file = if entry.meta.identity_stored {
            entry.identity_path()
        } else {
            file.abs.clone()
        };
        ProcessedAsset {
            path: file.path.clone(),
            kind: entry.meta.kind,
            rule,
            source_size: entry.meta.source_size,
            hash: entry.meta.hash.clone(),
            size: entry.meta.size,
            minify: entry.meta.minify.clone(),
            variants: entry.meta.variants.clone(),
            sha256: entry.meta.sha256,
            dictionary: None,
            deltas: Vec::new(),
            cache_hit,
            compressions,
            identity_file,
            entry,
            cache_key,
            stamp: file.stamp,
        }
    }
}

/// Where the identity bytes come from while encoding.
enum Identity<'a> {
    Bytes(&'a [u8]),
    File(&'a Path),
}

impl Identity<'_> {
    fn open(&self) -> io::Result<Box<dyn Read + '_>> {
        Ok(match self {
            Self::Bytes(bytes) => Box::new(*bytes),
            Self::File(path) => Box::new(BufReader::with_capacity(256 * 1024, File::open(path)?)),
        })
    }
}

fn read_up_to(reader: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}
