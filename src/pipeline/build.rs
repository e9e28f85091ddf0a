//! `edgeship build`: process a directory into an output tree of identity files with
//! `.br` / `.gz` / `.zst` siblings (ready for nginx `brotli_static` / `gzip_static`) and a
//! manifest at `.edgeship/manifest.json`.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde::Serialize;

use super::compress::Encoding;
use super::manifest::{MANIFEST_PATH, Manifest};
use super::minify::MinifyOutcome;
use super::scan::{self, ScanError};
use super::{Pipeline, ProcessedAsset};

/// Errors that stop a build before or while writing output.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// The input could not be scanned.
    #[error(transparent)]
    Scan(#[from] ScanError),
    /// Input and output overlap, so a build would read its own output.
    #[error(
        "output {output} and input {input} overlap; choose an output directory outside the input"
    )]
    Overlap {
        /// The input root.
        input: PathBuf,
        /// The output root.
        output: PathBuf,
    },
    /// The output directory has files edgeship did not write.
    #[error(
        "output {path} is not empty and has no {MANIFEST_PATH} from an earlier build; refusing to write into it (use an empty directory, or --force)"
    )]
    OutputNotEmpty {
        /// The output root.
        path: PathBuf,
    },
    /// Writing output failed.
    #[error("cannot write {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

impl BuildError {
    /// True when the build was refused for safety (exit code 3) rather than failing.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::Overlap { .. } | Self::OutputNotEmpty { .. })
    }
}

/// Totals for one encoding across the build.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct EncodingTotals {
    /// Bytes a client accepting this encoding downloads for all files (the variant where
    /// one was kept, the identity otherwise).
    pub served_bytes: u64,
    /// How many files have this variant.
    pub variants: u64,
}

/// A file-level message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileMessage {
    /// Public path.
    pub path: String,
    /// What happened.
    pub message: String,
}

/// What a build did; printed as a summary or as JSON (`--json`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct BuildReport {
    /// Files processed.
    pub files: u64,
    /// Total input bytes.
    pub bytes_in: u64,
    /// Total identity bytes after minification.
    pub identity_bytes: u64,
    /// Per-encoding totals.
    pub encodings: BTreeMap<Encoding, EncodingTotals>,
    /// Files whose minified form ships.
    pub minified: u64,
    /// Files whose minifier failed (original shipped, see `warnings`).
    pub minify_fallbacks: u64,
    /// Files served from the processing cache.
    pub cache_hits: u64,
    /// Files processed now.
    pub cache_misses: u64,
    /// Encoder runs performed now (0 when everything was cached).
    pub compressions: u64,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// Warnings per file (minifier fallbacks, skipped inputs).
    pub warnings: Vec<FileMessage>,
    /// Files that failed; the build exits 1 when there are any.
    pub failures: Vec<FileMessage>,
}

impl BuildReport {
    /// Adds one processed asset to the totals.
    pub fn add(&mut self, asset: &ProcessedAsset, encodings: &[Encoding]) {
        self.files += 1;
        self.bytes_in += asset.source_size;
        self.identity_bytes += asset.size;
        for encoding in encodings {
            let totals = self.encodings.entry(*encoding).or_default();
            match asset.variants.get(encoding) {
                Some(size) => {
                    totals.served_bytes += size;
                    totals.variants += 1;
                }
                None => totals.served_bytes += asset.size,
            }
        }
        match &asset.minify {
            MinifyOutcome::Minified { .. } => self.minified += 1,
            MinifyOutcome::Fallback { .. } => self.minify_fallbacks += 1,
            _ => {}
        }
        if let Some(message) = asset.minify.warning() {
            self.warnings.push(FileMessage {
                path: asset.path.clone(),
                message,
            });
        }
        if asset.cache_hit {
            self.cache_hits += 1;
        } else {
            self.cache_misses += 1;
        }
        self.compressions += u64::from(asset.compressions);
    }
}

/// Receives progress of a run, e.g. to draw a progress bar. Called from worker threads.
pub trait Progress: Sync {
    /// The scan found `files` files totalling `bytes`.
    fn start(&self, files: u64, bytes: u64) {
        let _ = (files, bytes);
    }
    /// One file of `bytes` bytes is done.
    fn file_done(&self, bytes: u64) {
        let _ = bytes;
    }
}

/// Progress that goes nowhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// Processes every file under `input` on the pipeline's pool and returns the assets
/// (sorted by path) with a report. Nothing is written but cache entries.
pub fn process_dir(
    pipeline: &Pipeline,
    input: &Path,
    progress: &dyn Progress,
) -> Result<(Vec<ProcessedAsset>, BuildReport), BuildError> {
    let started = Instant::now();
    let scan = scan::scan(input, pipeline.exclude())?;
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        files = scan.files.len(),
        "scanned"
    );
    let index = pipeline.load_index(input);
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        "stat index loaded"
    );
    let index_hits = std::sync::atomic::AtomicUsize::new(0);
    progress.start(
        scan.files.len() as u64,
        scan.files.iter().map(|f| f.size).sum(),
    );
    // Largest first, each worker taking the next file when it is free (greedy longest-
    // processing-time scheduling): the biggest files bound the wall time, so they start
    // before the workers run out of small ones. A plain `par_iter` would split the list in
    // halves up front and leave the largest files queued behind each other on one worker
    // (a 75 MB set of npm bundles took 1.5× the peers' wall time that way). Results are
    // put back in path order below.
    let mut order: Vec<&super::SourceFile> = scan.files.iter().collect();
    order.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
    let mut results: Vec<_> = order
        .into_iter()
        .par_bridge()
        .map(|file| {
            let indexed = index
                .as_ref()
                .and_then(|index| pipeline.from_index(index, file));
            if indexed.is_some() {
                index_hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let result = indexed.map_or_else(|| pipeline.process(file), Ok);
            progress.file_done(file.size);
            (file.path.as_str(), result)
        })
        .collect();
    results.sort_by(|a, b| a.0.cmp(b.0));
    let mut report = BuildReport::default();
    let mut assets = Vec::with_capacity(results.len());
    for (_, result) in results {
        match result {
            Ok(asset) => {
                report.add(&asset, &pipeline.config.encodings);
                assets.push(asset);
            }
            Err(err) => report.failures.push(FileMessage {
                path: match &err {
                    super::ProcessError::Io { path, .. }
                    | super::ProcessError::Panic { path, .. } => path.clone(),
                },
                message: err.to_string(),
            }),
        }
    }
    if let Some(index) = &index {
        // Every file served from the index and none gone: the index is current as it is.
        // Otherwise rewrite it — also when some file could not be trusted (racily
        // clean), so a fresh write time lets the next run trust it.
        let current = index_hits.into_inner() == assets.len() && index.len() == assets.len();
        if !current {
            let entries = assets
                .iter()
                .map(|a| (a.path.clone(), a.index_entry()))
                .collect();
            if let Err(err) = index.store(entries) {
                tracing::warn!(error = %err, "could not write the stat index; the next run re-reads every file");
            }
        }
    }
    for (path, reason) in scan.skipped {
        report.warnings.push(FileMessage {
            path,
            message: format!("skipped: {reason}"),
        });
    }
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok((assets, report))
}

/// Runs `edgeship build`: processes `input` and writes the tree and manifest to `output`.
/// Output files from an earlier build that no longer exist are removed; a non-empty
/// output directory without an earlier manifest is refused unless `force`.
pub fn build(
    pipeline: &Pipeline,
    input: &Path,
    output: &Path,
    force: bool,
    progress: &dyn Progress,
) -> Result<BuildReport, BuildError> {
    let started = Instant::now();
    check_overlap(input, output)?;
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BuildError::Io { path, source }
    };
    let manifest_file = output.join(MANIFEST_PATH);
    let previous = match fs::read(&manifest_file) {
        Ok(bytes) => Manifest::from_json(&bytes).ok(),
        Err(_) => None,
    };
    if previous.is_none() && !force && !is_empty_dir(output) {
        return Err(BuildError::OutputNotEmpty {
            path: output.to_path_buf(),
        });
    }
    let (mut assets, mut report) = process_dir(pipeline, input, progress)?;
    if assets.iter().any(|a| !a.identity_file().exists()) {
        // The stat index pointed at processing results someone deleted (a cleared cache).
        let fresh = pipeline.clone().without_index();
        (assets, report) = process_dir(&fresh, input, progress)?;
    }
    let mut manifest = Manifest::default();
    for asset in &assets {
        manifest
            .assets
            .insert(asset.path.clone(), asset.manifest_entry());
    }
    assets
        .par_iter()
        .try_for_each(|asset| write_asset(asset, output))?;
    if let Some(previous) = previous {
        remove_stale(&previous, &manifest, output)?;
    }
    let manifest_dir = manifest_file.parent().unwrap_or(output);
    fs::create_dir_all(manifest_dir).map_err(io_err(manifest_dir))?;
    write_atomic(&manifest_file, &manifest.to_json()).map_err(io_err(&manifest_file))?;
    report.duration_ms = started.elapsed().as_millis() as u64;
    Ok(report)
}

fn check_overlap(input: &Path, output: &Path) -> Result<(), BuildError> {
    if !input.is_dir() {
        return Err(ScanError::NotADirectory {
            path: input.to_path_buf(),
        }
        .into());
    }
    let canonical_input = input.canonicalize().map_err(|source| ScanError::Io {
        path: input.to_path_buf(),
        source,
    })?;
    // The output may not exist yet: resolve its deepest existing ancestor.
    let mut existing = output.to_path_buf();
    let mut rest = Vec::new();
    while !existing.exists() {
        let Some(name) = existing.file_name() else {
            break;
        };
        rest.push(name.to_os_string());
        if !existing.pop() {
            break;
        }
    }
    let mut canonical_output = existing.canonicalize().unwrap_or(existing);
    for name in rest.iter().rev() {
        canonical_output.push(name);
    }
    if canonical_output.starts_with(&canonical_input)
        || canonical_input.starts_with(&canonical_output)
    {
        return Err(BuildError::Overlap {
            input: input.to_path_buf(),
            output: output.to_path_buf(),
        });
    }
    Ok(())
}

fn is_empty_dir(path: &Path) -> bool {
    match fs::read_dir(path) {
        Ok(mut entries) => entries.next().is_none(),
        Err(_) => true,
    }
}

fn write_asset(asset: &ProcessedAsset, output: &Path) -> Result<(), BuildError> {
    let target = output.join(&asset.path);
    let io_err = |path: &Path, source| BuildError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = target.parent() {
        fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    }
    copy_atomic(asset.identity_file(), &target).map_err(|e| io_err(&target, e))?;
    for encoding in Encoding::ALL {
        let sibling = sibling_path(&target, encoding);
        match asset.variant_file(encoding) {
            Some(source) => copy_atomic(&source, &sibling).map_err(|e| io_err(&sibling, e))?,
            // A variant an earlier build kept but this one did not must not linger.
            None => match fs::remove_file(&sibling) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_err(&sibling, e)),
                _ => {}
            },
        }
    }
    Ok(())
}

fn remove_stale(previous: &Manifest, current: &Manifest, output: &Path) -> Result<(), BuildError> {
    for path in previous
        .assets
        .keys()
        .filter(|p| !current.assets.contains_key(*p))
    {
        let target = output.join(path);
        let siblings = Encoding::ALL.map(|e| sibling_path(&target, e));
        for file in std::iter::once(&target).chain(siblings.iter()) {
            match fs::remove_file(file) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(BuildError::Io {
                        path: file.clone(),
                        source: e,
                    });
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// `dir/app.js` → `dir/app.js.br`.
pub fn sibling_path(identity: &Path, encoding: Encoding) -> PathBuf {
    let mut name = identity.as_os_str().to_os_string();
    name.push(encoding.suffix());
    PathBuf::from(name)
}

fn temp_path(target: &Path) -> PathBuf {
    let mut name = target.as_os_str().to_os_string();
    name.push(format!(".edgeship-tmp-{}", std::process::id()));
    PathBuf::from(name)
}

/// Copies through a temporary file and a rename, so a reader never sees half a file.
fn copy_atomic(source: &Path, target: &Path) -> io::Result<()> {
    let tmp = temp_path(target);
    fs::copy(source, &tmp)?;
    fs::rename(&tmp, target).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

fn write_atomic(target: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path(target);
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, target)
}
