//! `local`: a directory as the origin — the embedded default.
//!
//! Object bytes live at `<root>/<key>`, so the directory can be served by edgeship's own
//! origin or by nginx as it is. What cannot live in a file (content type, encoding,
//! headers, metadata) is kept in a sidecar `<root>/.edgeship/meta/<key>.json`. Writes go to
//! a temporary file and are renamed into place, bytes first and sidecar second, so a
//! crash leaves at worst an object whose metadata is older than its bytes — which a
//! deploy sees as "not uploaded yet" and uploads again. Keys are validated so none can
//! escape the root. A purge is a recorded no-op: there is no CDN in front.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;

use crate::capabilities::Capabilities;
use crate::error::{ProviderError, Result};
use crate::object::{
    Body, ListPage, ObjectMeta, PurgeReceipt, PurgeRequest, PurgeStatus, PutRequest,
};
use crate::provider::{Provider, validate_key};

/// Keys under this prefix hold sidecar metadata and cannot be used for objects.
const META_DIR: &str = ".edgeship/meta";

/// A directory-backed provider.
#[derive(Debug)]
pub struct LocalProvider {
    root: PathBuf,
    name: String,
    page_size: usize,
    purges: Mutex<Vec<PurgeRequest>>,
}

impl LocalProvider {
    /// A provider rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let name = format!("local:{}", root.display());
        Self {
            root,
            name,
            page_size: 1000,
            purges: Mutex::new(Vec::new()),
        }
    }

    /// Sets the listing page size (tests use small pages to exercise pagination).
    pub fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Purges requested so far (a local site has no CDN; they are only recorded).
    pub fn purges(&self) -> Vec<PurgeRequest> {
        self.purges.lock().map(|p| p.clone()).unwrap_or_default()
    }

    fn invalid(&self, message: String) -> ProviderError {
        ProviderError::Invalid {
            provider: self.name.clone(),
            message,
        }
    }

    fn paths(&self, key: &str) -> Result<(PathBuf, PathBuf)> {
        validate_key(key).map_err(|m| self.invalid(m.to_string()))?;
        if key == META_DIR || key.starts_with(&format!("{META_DIR}/")) {
            return Err(self.invalid(format!("key `{key}` is reserved for metadata")));
        }
        Ok((
            self.root.join(key),
            self.root.join(META_DIR).join(format!("{key}.json")),
        ))
    }

    fn io(&self, key: &str, err: std::io::Error) -> ProviderError {
        ProviderError::from_io(&self.name, key, err)
    }

    async fn read_meta(&self, key: &str, data: &Path, sidecar: &Path) -> Result<ObjectMeta> {
        let file_meta = tokio::fs::metadata(data)
            .await
            .map_err(|e| self.io(key, e))?;
        if !file_meta.is_file() {
            return Err(ProviderError::NotFound {
                provider: self.name.clone(),
                key: key.into(),
            });
        }
        let mut meta = match tokio::fs::read(sidecar).await {
            Ok(bytes) => serde_json::from_slice::<ObjectMeta>(&bytes).unwrap_or_default(),
            Err(_) => ObjectMeta::default(),
        };
        meta.key = key.to_string();
        meta.size = file_meta.len();
        Ok(meta)
    }
}

impl fmt::Display for LocalProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Writes `bytes` or copies `source` to `target` through a temporary file in the same
/// directory and a rename, so readers see the old object or the new one, never a mix.
async fn write_atomic(target: &Path, body: &Body) -> std::io::Result<()> {
    let dir = target.parent().unwrap_or(Path::new("."));
    tokio::fs::create_dir_all(dir).await?;
    let target = target.to_path_buf();
    let dir = dir.to_path_buf();
    let body = body.clone();
    tokio::task::spawn_blocking(move || {
        let mut builder = tempfile::Builder::new();
        builder.prefix(".edgeship-tmp-");
        // Readable by all (0644 before the umask), as files a web server running as
        // another user (nginx) serves must be; temporary files default to 0600.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
        let mut tmp = builder.tempfile_in(&dir)?;
        match &body {
            Body::Bytes(bytes) => std::io::Write::write_all(&mut tmp, bytes)?,
            Body::File { path, .. } => {
                let mut source = std::fs::File::open(path)?;
                std::io::copy(&mut source, &mut tmp)?;
            }
        }
        tmp.persist(&target).map_err(|e| e.error)?;
        Ok(())
    })
    .await
    .map_err(std::io::Error::other)?
}

#[async_trait]
impl Provider for LocalProvider {
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            purge_tags: true,
            purge_prefixes: true,
            list_page_size: self.page_size,
            purge_is_noop: true,
            ..Capabilities::default()
        }
    }

    async fn put(&self, request: PutRequest) -> Result<ObjectMeta> {
        let (data, sidecar) = self.paths(&request.key)?;
        if data.is_dir() {
            return Err(self.invalid(format!(
                "key `{}` is a directory of other objects",
                request.key
            )));
        }
        write_atomic(&data, &request.body)
            .await
            .map_err(|e| self.io(&request.key, e))?;
        let meta = request.meta();
        let json = serde_json::to_vec(&meta).map_err(|e| self.invalid(e.to_string()))?;
        write_atomic(&sidecar, &Body::Bytes(Bytes::from(json)))
            .await
            .map_err(|e| self.io(&request.key, e))?;
        Ok(meta)
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let (data, sidecar) = self.paths(key)?;
        self.read_meta(key, &data, &sidecar).await
    }

    async fn get(&self, key: &str) -> Result<(ObjectMeta, Bytes)> {
        let (data, sidecar) = self.paths(key)?;
        let meta = self.read_meta(key, &data, &sidecar).await?;
        let bytes = tokio::fs::read(&data).await.map_err(|e| self.io(key, e))?;
        Ok((
            ObjectMeta {
                size: bytes.len() as u64,
                ..meta
            },
            Bytes::from(bytes),
        ))
    }

    async fn list_page(&self, prefix: &str, cursor: Option<String>) -> Result<ListPage> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        let page_size = self.page_size;
        // Walking a directory is blocking work: keep it off the async workers.
        let keys = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<String>> {
            let mut keys = Vec::new();
            collect_keys(&root, &root, &prefix, &mut keys)?;
            keys.sort();
            Ok(keys)
        })
        .await
        .map_err(|e| self.io("", std::io::Error::other(e)))?
        .map_err(|e| self.io("", e))?;
        let start = match &cursor {
            Some(after) => keys.partition_point(|k| k <= after),
            None => 0,
        };
        let mut objects = Vec::new();
        for key in keys.iter().skip(start).take(page_size) {
            let (data, sidecar) = self.paths(key)?;
            match self.read_meta(key, &data, &sidecar).await {
                Ok(meta) => objects.push(meta),
                Err(ProviderError::NotFound { .. }) => {} // deleted while listing
                Err(err) => return Err(err),
            }
        }
        let next = (start + page_size < keys.len()).then(|| keys[start + page_size - 1].clone());
        Ok(ListPage { objects, next })
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        for key in keys {
            let (data, sidecar) = self.paths(key)?;
            for path in [&data, &sidecar] {
                match tokio::fs::remove_file(path).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(self.io(key, e)),
                }
            }
        }
        Ok(())
    }

    async fn purge(&self, request: &PurgeRequest) -> Result<PurgeReceipt> {
        self.capabilities()
            .validate_purge(&self.to_string(), request)?;
        let mut purges = self
            .purges
            .lock()
            .map_err(|_| self.invalid("purge log poisoned".into()))?;
        purges.push(request.clone());
        Ok(PurgeReceipt {
            id: format!("local-{}", purges.len()),
            status: PurgeStatus::Done,
        })
    }

    async fn purge_status(&self, _id: &str) -> Result<PurgeStatus> {
        Ok(PurgeStatus::Done)
    }
}

/// Collects object keys under `dir` that start with `prefix`, skipping the metadata
/// directory and temporary files.
fn collect_keys(
    root: &Path,
    dir: &Path,
    prefix: &str,
    keys: &mut Vec<String>,
) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let Some(rel) = rel
            .to_str()
            .map(|r| r.replace(std::path::MAIN_SEPARATOR, "/"))
        else {
            continue;
        };
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            if rel == META_DIR {
                continue;
            }
            // Only descend where keys with the prefix can be.
            let as_dir = format!("{rel}/");
            if as_dir.starts_with(prefix) || prefix.starts_with(&as_dir) {
                collect_keys(root, &path, prefix, keys)?;
            }
        } else if file_type.is_file()
            && rel.starts_with(prefix)
            && !entry
                .file_name()
                .to_string_lossy()
                .starts_with(".edgeship-tmp-")
        {
            keys.push(rel);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[tokio::test]
    async fn stored_files_are_readable_by_other_users() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let provider = LocalProvider::new(dir.path());
        provider
            .put(PutRequest::bytes("assets/app.js", "let a = 1;"))
            .await
            .unwrap();
        let mode = std::fs::metadata(dir.path().join("assets/app.js"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o044, 0o044, "group and others may read: {mode:o}");
        assert_eq!(mode & 0o022, 0, "nobody else may write: {mode:o}");
    }
}
