//! Safe extraction of uploaded site archives (tar, tar.gz, tar.zst).
//!
//! An upload is untrusted. Extraction accepts only regular files and directories with
//! relative paths that stay inside the target: absolute paths, `..`, links of any kind,
//! devices and FIFOs are refused, as are archives with more than `max_files` files or
//! whose content expands beyond `max_ratio` times the upload (or `max_bytes`). Files are
//! created new (never through an existing path), so nothing outside the target directory
//! is ever written; on any refusal the caller deletes the target.

use std::io::{BufReader, Read};
use std::path::{Component, Path, PathBuf};

/// Limits of one extraction.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Most files.
    pub max_files: u64,
    /// Most extracted bytes in all.
    pub max_bytes: u64,
    /// Most extracted bytes per uploaded byte.
    pub max_ratio: u64,
}

/// Why an archive is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArchiveError {
    /// Not a tar, tar.gz or tar.zst.
    #[error("not a tar, tar.gz or tar.zst archive: {0}")]
    Format(String),
    /// An entry's path is not acceptable.
    #[error("archive entry `{path}` refused: {reason}")]
    UnsafeEntry {
        /// The path as given in the archive.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// Too many files.
    #[error("archive has more than {0} files")]
    TooManyFiles(u64),
    /// Expands too much.
    #[error("archive expands beyond {limit} bytes ({why})")]
    TooLarge {
        /// The limit hit.
        limit: u64,
        /// Which limit.
        why: &'static str,
    },
    /// Reading or writing failed.
    #[error("extracting: {0}")]
    Io(#[from] std::io::Error),
}

/// What was extracted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Extracted {
    /// Files written.
    pub files: u64,
    /// Bytes written.
    pub bytes: u64,
}

/// The compression of an archive, from its first bytes.
fn decoder(file: std::fs::File) -> Result<Box<dyn Read>, ArchiveError> {
    let mut reader = BufReader::new(file);
    let mut magic = [0u8; 4];
    let mut read = 0;
    while read < magic.len() {
        let n = reader.get_mut().read(&mut magic[read..])?;
        if n == 0 {
            break;
        }
        read += n;
    }
    let head = std::io::Cursor::new(magic[..read].to_vec());
    let chained = head.chain(reader);
    Ok(match magic {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::GzDecoder::new(chained)),
        [0x28, 0xb5, 0x2f, 0xfd] => Box::new(
            zstd::stream::read::Decoder::new(chained)
                .map_err(|e| ArchiveError::Format(e.to_string()))?,
        ),
        _ => Box::new(chained),
    })
}

/// Checks an entry path and returns it relative to the target.
fn safe_path(raw: &Path) -> Result<Option<PathBuf>, &'static str> {
    let mut clean = PathBuf::new();
    for component in raw.components() {
        match component {
            Component::Normal(part) => {
                // Names that would fail later as keys: refuse them now, as a 400.
                let Some(text) = part.to_str() else {
                    return Err("the path is not UTF-8");
                };
                if text.chars().any(|c| c.is_control() || c == '\\') {
                    return Err("a backslash or control character in the path");
                }
                clean.push(part)
            }
            Component::CurDir => {}
            Component::ParentDir => return Err("`..` in the path"),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path"),
        }
    }
    Ok((!clean.as_os_str().is_empty()).then_some(clean))
}

/// Extracts `archive` (of `compressed_size` bytes) into the existing, empty `target`.
pub fn extract(archive: &Path, target: &Path, limits: &Limits) -> Result<Extracted, ArchiveError> {
    let compressed_size = std::fs::metadata(archive)?.len().max(1);
    let byte_limit = limits.max_bytes.min(
        compressed_size
            .saturating_mul(limits.max_ratio.max(1))
            .max(64 * 1024),
    );
    let mut tar = tar::Archive::new(decoder(std::fs::File::open(archive)?)?);
    let mut done = Extracted::default();
    let entries = tar
        .entries()
        .map_err(|e| ArchiveError::Format(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| ArchiveError::Format(e.to_string()))?;
        let raw_path = entry
            .path()
            .map_err(|e| ArchiveError::Format(e.to_string()))?
            .into_owned();
        let shown = raw_path.to_string_lossy().into_owned();
        let refuse = |reason| ArchiveError::UnsafeEntry {
            path: shown.chars().take(200).collect(),
            reason,
        };
        let kind = entry.header().entry_type();
        let relative = safe_path(&raw_path).map_err(refuse)?;
        // A PAX sparse file (GNU.sparse.* records) would be stored as its sparse map
        // under `GNUSparseFile.N/…`; the GNU form is refused as a non-regular file.
        let sparse = entry
            .pax_extensions()
            .ok()
            .flatten()
            .is_some_and(|extensions| {
                extensions.flatten().any(|extension| {
                    extension
                        .key()
                        .is_ok_and(|key| key.starts_with("GNU.sparse."))
                })
            });
        if sparse {
            return Err(refuse(
                "sparse files are not accepted (archive without --sparse)",
            ));
        }
        if kind.is_pax_global_extensions()
            || kind.is_pax_local_extensions()
            || kind.is_gnu_longname()
            || kind.is_gnu_longlink()
        {
            continue;
        }
        if kind.is_dir() {
            if let Some(relative) = relative {
                std::fs::create_dir_all(target.join(relative))?;
            }
            continue;
        }
        if kind.is_symlink() || kind.is_hard_link() {
            return Err(refuse(
                "links are not accepted (upload the files themselves)",
            ));
        }
        if !kind.is_file() {
            return Err(refuse("only regular files and directories are accepted"));
        }
        let Some(relative) = relative else {
            return Err(refuse("empty path"));
        };
        done.files += 1;
        if done.files > limits.max_files {
            return Err(ArchiveError::TooManyFiles(limits.max_files));
        }
        let destination = target.join(&relative);
        if let Some(parent) = destination.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // create_new: never through an existing file or a link planted earlier.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&destination)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => refuse("the path appears twice"),
                _ => ArchiveError::Io(e),
            })?;
        let room = byte_limit - done.bytes;
        let copied = std::io::copy(&mut (&mut entry).take(room + 1), &mut file)?;
        done.bytes += copied;
        if copied > room {
            return Err(ArchiveError::TooLarge {
                limit: byte_limit,
                why: if byte_limit == limits.max_bytes {
                    "the extracted size limit"
                } else {
                    "the expansion ratio limit"
                },
            });
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        max_files: 100,
        max_bytes: 1 << 30,
        max_ratio: 100,
    };

    fn tar_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (path, bytes) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_entry_type(tar::EntryType::Regular);
            // set_path refuses `..`; write the raw name like a hostile archive would.
            let name = &mut header.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_cksum();
            builder.append(&header, *bytes).unwrap();
        }
        builder.into_inner().unwrap()
    }

    fn run(
        archive: &[u8],
        limits: &Limits,
    ) -> (tempfile::TempDir, Result<Extracted, ArchiveError>) {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("upload");
        std::fs::write(&file, archive).unwrap();
        let target = dir.path().join("site");
        std::fs::create_dir(&target).unwrap();
        let result = extract(&file, &target, limits);
        (dir, result)
    }

    #[test]
    fn plain_gzip_and_zstd_archives_extract() {
        let tar = tar_with(&[("index.html", b"<p>hi"), ("a/b.css", b"p{}")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &tar).unwrap();
        let gz = gz.finish().unwrap();
        let zst = zstd::encode_all(&tar[..], 3).unwrap();
        for archive in [tar.clone(), gz, zst] {
            let (dir, result) = run(&archive, &LIMITS);
            assert_eq!(result.unwrap(), Extracted { files: 2, bytes: 8 });
            assert_eq!(
                std::fs::read(dir.path().join("site/a/b.css")).unwrap(),
                b"p{}"
            );
        }
    }

    #[test]
    fn traversal_links_and_bombs_are_refused_and_nothing_lands_outside() {
        let (dir, result) = run(&tar_with(&[("../evil", b"x")]), &LIMITS);
        assert!(matches!(
            result,
            Err(ArchiveError::UnsafeEntry {
                reason: "`..` in the path",
                ..
            })
        ));
        assert!(!dir.path().join("evil").exists());
        let (_, result) = run(&tar_with(&[("/etc/evil", b"x")]), &LIMITS);
        assert!(matches!(
            result,
            Err(ArchiveError::UnsafeEntry {
                reason: "absolute path",
                ..
            })
        ));

        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        builder
            .append_link(&mut header, "link", "/etc/passwd")
            .unwrap();
        let (_, result) = run(&builder.into_inner().unwrap(), &LIMITS);
        assert!(
            result
                .unwrap_err()
                .to_string()
                .contains("links are not accepted")
        );

        let many: Vec<(String, Vec<u8>)> = (0..5).map(|i| (format!("f{i}"), vec![])).collect();
        let refs: Vec<(&str, &[u8])> = many
            .iter()
            .map(|(p, b)| (p.as_str(), b.as_slice()))
            .collect();
        let (_, result) = run(
            &tar_with(&refs),
            &Limits {
                max_files: 4,
                ..LIMITS
            },
        );
        assert!(matches!(result, Err(ArchiveError::TooManyFiles(4))));

        let zeros = vec![0u8; 8 << 20];
        let bomb = zstd::encode_all(&tar_with(&[("zeros", &zeros)])[..], 19).unwrap();
        let (_, result) = run(&bomb, &LIMITS);
        assert!(
            result.unwrap_err().to_string().contains("expansion ratio"),
            "8 MiB from a few KiB is refused"
        );
        let (_, result) = run(b"definitely not a tar archive, just some text", &LIMITS);
        assert!(result.is_err());
    }

    #[test]
    fn backslashes_control_characters_and_pax_sparse_files_are_refused() {
        for (name, reason) in [
            (
                "assets\\app.js",
                "a backslash or control character in the path",
            ),
            (
                "bell\u{7}.txt",
                "a backslash or control character in the path",
            ),
        ] {
            let (dir, result) = run(&tar_with(&[(name, b"x")]), &LIMITS);
            match result {
                Err(ArchiveError::UnsafeEntry { reason: got, .. }) => assert_eq!(got, reason),
                other => panic!("{name:?}: {other:?}"),
            }
            let extracted = std::fs::read_dir(dir.path().join("site")).unwrap().count();
            assert_eq!(extracted, 0, "{name:?}: nothing was written");
        }

        // What GNU tar --sparse --format=pax writes: PAX records, then the sparse map as
        // a regular file under GNUSparseFile.0/.
        let mut builder = tar::Builder::new(Vec::new());
        builder
            .append_pax_extensions([
                ("GNU.sparse.major", &b"1"[..]),
                ("GNU.sparse.minor", &b"0"[..]),
                ("GNU.sparse.name", &b"big.bin"[..]),
                ("GNU.sparse.realsize", &b"1048576"[..]),
            ])
            .unwrap();
        let mut header = tar::Header::new_ustar();
        header.set_size(4);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, "GNUSparseFile.0/big.bin", &b"1\n0\n"[..])
            .unwrap();
        let (dir, result) = run(&builder.into_inner().unwrap(), &LIMITS);
        assert!(
            result
                .unwrap_err()
                .to_string()
                .contains("sparse files are not accepted")
        );
        assert!(!dir.path().join("site/GNUSparseFile.0").exists());
    }
}
