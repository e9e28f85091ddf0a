//! Scanning an input directory into the list of files to publish.

use std::path::{Path, PathBuf};

use globset::GlobSet;

use super::compress::Encoding;

/// One input file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Public path relative to the root, `/`-separated, no leading `/`.
    pub path: String,
    /// Where the bytes are on disk.
    pub abs: PathBuf,
    /// Size in bytes at scan time.
    pub size: u64,
    /// What the file system says about the file (size, times, inode), so an unchanged
    /// file is recognised without reading it.
    pub stamp: FileStamp,
}

/// A file's identity as the file system reports it, as git's index records it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileStamp {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status-change time, nanoseconds since the epoch (0 where unknown).
    pub ctime_ns: i64,
    /// Inode number (0 where unknown).
    pub ino: u64,
}

impl FileStamp {
    /// The stamp of a file's metadata.
    pub fn of(metadata: &std::fs::Metadata) -> Self {
        let nanos = |t: std::io::Result<std::time::SystemTime>| {
            t.ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        };
        #[cfg(unix)]
        let (ctime_ns, ino) = {
            use std::os::unix::fs::MetadataExt;
            (
                metadata
                    .ctime()
                    .saturating_mul(1_000_000_000)
                    .saturating_add(metadata.ctime_nsec()),
                metadata.ino(),
            )
        };
        #[cfg(not(unix))]
        let (ctime_ns, ino) = (0, 0);
        Self {
            size: metadata.len(),
            mtime_ns: nanos(metadata.modified()),
            ctime_ns,
            ino,
        }
    }
}

/// The result of a scan: files sorted by path, and warnings about what was left out.
#[derive(Debug, Default)]
pub struct Scan {
    /// Files to process.
    pub files: Vec<SourceFile>,
    /// Files skipped, with the reason.
    pub skipped: Vec<(String, String)>,
}

/// Errors that stop a scan.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScanError {
    /// The input root is not a readable directory.
    #[error("input {path} is not a directory")]
    NotADirectory {
        /// The root given.
        path: PathBuf,
    },
    /// Walking the tree failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// Where.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Walks `root`, applying `exclude`. Symlinks are followed only when they stay inside
/// the root; files whose names are not UTF-8 are skipped with a warning; an input file
/// `x.br` / `x.gz` / `x.zst` next to `x` is skipped because edgeship makes variants itself.
pub fn scan(root: &Path, exclude: &GlobSet) -> Result<Scan, ScanError> {
    let io_err = |path: &Path, source| ScanError::Io {
        path: path.to_path_buf(),
        source,
    };
    if !root.is_dir() {
        return Err(ScanError::NotADirectory {
            path: root.to_path_buf(),
        });
    }
    let canonical_root = root.canonicalize().map_err(|e| io_err(root, e))?;
    // Directories are read in parallel on the pipeline's pool: on large trees the walk is
    // bound by file-system calls, which spread over the cores.
    let mut scan = walk(root, root, &canonical_root, exclude)?;
    scan.skipped.sort();
    scan.files.sort_by(|a, b| a.path.cmp(&b.path));
    let paths: std::collections::HashSet<&str> =
        scan.files.iter().map(|f| f.path.as_str()).collect();
    let precompressed: Vec<String> = scan
        .files
        .iter()
        .filter(|f| {
            Encoding::ALL.iter().any(|e| {
                f.path
                    .strip_suffix(e.suffix())
                    .is_some_and(|base| paths.contains(base))
            })
        })
        .map(|f| f.path.clone())
        .collect();
    scan.files.retain(|f| !precompressed.contains(&f.path));
    for path in precompressed {
        scan.skipped.push((
            path,
            "precompressed sibling of another input; edgeship makes its own variants".into(),
        ));
    }
    Ok(scan)
}

/// Scans one directory, recursing into subdirectories in parallel.
fn walk(
    root: &Path,
    dir: &Path,
    canonical_root: &Path,
    exclude: &GlobSet,
) -> Result<Scan, ScanError> {
    use rayon::prelude::*;
    let io_err = |path: &Path, source| ScanError::Io {
        path: path.to_path_buf(),
        source,
    };
    let entries: Vec<std::fs::DirEntry> = std::fs::read_dir(dir)
        .map_err(|e| io_err(dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| io_err(dir, e))?;
    let parts: Vec<Scan> = entries
        .par_iter()
        .map(|entry| -> Result<Scan, ScanError> {
            let mut part = Scan::default();
            let abs = entry.path();
            let Ok(rel) = abs.strip_prefix(root) else { return Ok(part) };
            let file_type = entry.file_type().map_err(|e| io_err(&abs, e))?;
            let Some(path) = rel.to_str().map(|p| p.replace(std::path::MAIN_SEPARATOR, "/")) else {
                part.skipped.push((rel.to_string_lossy().into_owned(), "file name is not valid UTF-8".into()));
                return Ok(part);
            };
            if file_type.is_dir() {
                return walk(root, &abs, canonical_root, exclude);
            }
            if exclude.is_match(&path) {
                return Ok(part);
            }
            let metadata = if file_type.is_symlink() {
                match abs.canonicalize() {
                    Ok(target) if target.starts_with(canonical_root) && target.is_file() => {
                        target.metadata().map_err(|e| io_err(&abs, e))?
                    }
                    _ => {
                        part.skipped.push((path, "symbolic link that leaves the input directory (or is broken, or is a directory)".into()));
                        return Ok(part);
                    }
                }
            } else if file_type.is_file() {
                std::fs::symlink_metadata(&abs).map_err(|e| io_err(&abs, e))?
            } else {
                part.skipped.push((path, "not a regular file".into()));
                return Ok(part);
            };
            part.files.push(SourceFile { path, abs, size: metadata.len(), stamp: FileStamp::of(&metadata) });
            Ok(part)
        })
        .collect::<Result<_, _>>()?;
    let mut scan = Scan::default();
    for part in parts {
        scan.files.extend(part.files);
        scan.skipped.extend(part.skipped);
    }
    Ok(scan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scan_sorts_excludes_and_skips_precompressed_siblings() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join("b/.git")).unwrap();
        for name in [
            "z.js",
            "a.css",
            "a.css.br",
            "b/c.txt",
            "b/.git/HEAD",
            "lone.gz",
        ] {
            std::fs::write(root.join(name), name).unwrap();
        }
        let exclude = super::super::rules::compile_globs(&["**/.git/**".into()]).unwrap();
        let scan = scan(root, &exclude).unwrap();
        let paths: Vec<&str> = scan.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["a.css", "b/c.txt", "lone.gz", "z.js"]);
        assert_eq!(scan.skipped.len(), 1);
        assert_eq!(scan.skipped[0].0, "a.css.br");
    }

    #[cfg(unix)]
    #[test]
    fn symlinks_leaving_the_root_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "x").unwrap();
        std::fs::write(dir.path().join("in.txt"), "y").unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("leak")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("in.txt"), dir.path().join("alias.txt"))
            .unwrap();
        let scan = scan(dir.path(), &GlobSet::empty()).unwrap();
        let paths: Vec<&str> = scan.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["alias.txt", "in.txt"]);
        assert_eq!(scan.skipped[0].0, "leak");
    }
}
