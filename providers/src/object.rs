//! The values providers take and return: objects, bodies, listings, purges.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Metadata key holding the blake3 hash of an asset's identity bytes; with
/// [`META_ENCODING`] it tells whether a stored object is the one a deploy wants, without
/// downloading it.
pub const META_HASH: &str = "edgeship-hash";

/// Metadata key naming the stored encoding (`identity`, `br`, `gzip`, `zstd`).
pub const META_ENCODING: &str = "edgeship-encoding";

/// What is stored about an object besides its bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectMeta {
    /// The object key (no leading `/`).
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Content-Encoding`.
    pub content_encoding: Option<String>,
    /// `Cache-Control`.
    pub cache_control: Option<String>,
    /// Other response headers stored with the object.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// User metadata (e.g. [`META_HASH`]).
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// The bytes of a put: in memory, or a file streamed from disk.
#[derive(Debug, Clone)]
pub enum Body {
    /// Bytes in memory.
    Bytes(Bytes),
    /// A file, read as it is sent.
    File {
        /// Where it is.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
    },
}

impl Body {
    /// The body size in bytes.
    pub fn size(&self) -> u64 {
        match self {
            Self::Bytes(bytes) => bytes.len() as u64,
            Self::File { size, .. } => *size,
        }
    }

    /// Reads the whole body (for providers that need it in memory).
    pub async fn read_all(&self) -> std::io::Result<Bytes> {
        match self {
            Self::Bytes(bytes) => Ok(bytes.clone()),
            Self::File { path, .. } => tokio::fs::read(path).await.map(Bytes::from),
        }
    }
}

/// A put: the body and everything stored with it.
#[derive(Debug, Clone)]
pub struct PutRequest {
    /// Object key.
    pub key: String,
    /// The bytes.
    pub body: Body,
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Content-Encoding`.
    pub content_encoding: Option<String>,
    /// `Cache-Control`.
    pub cache_control: Option<String>,
    /// Other headers stored with the object.
    pub headers: BTreeMap<String, String>,
    /// User metadata.
    pub metadata: BTreeMap<String, String>,
}

impl PutRequest {
    /// A put of in-memory bytes with no headers.
    pub fn bytes(key: impl Into<String>, bytes: impl Into<Bytes>) -> Self {
        Self {
            key: key.into(),
            body: Body::Bytes(bytes.into()),
            content_type: None,
            content_encoding: None,
            cache_control: None,
            headers: BTreeMap::new(),
            metadata: BTreeMap::new(),
        }
    }

    /// The metadata this put stores, as [`ObjectMeta`].
    pub fn meta(&self) -> ObjectMeta {
        ObjectMeta {
            key: self.key.clone(),
            size: self.body.size(),
            content_type: self.content_type.clone(),
            content_encoding: self.content_encoding.clone(),
            cache_control: self.cache_control.clone(),
            headers: self.headers.clone(),
            metadata: self.metadata.clone(),
        }
    }
}

/// Headers with a field of their own in [`PutRequest`].
const FIELD_HEADERS: [&str; 3] = ["content-type", "content-encoding", "cache-control"];

/// Stores keep metadata and extra headers as HTTP header values: visible ASCII, spaces
/// and tabs only. Returns why `value` (of `name`) cannot be stored, if it cannot.
pub fn check_header_value(name: &str, value: &str) -> Result<(), crate::error::Rejected> {
    if value
        .bytes()
        .all(|b| b == b' ' || b == b'\t' || b.is_ascii_graphic())
    {
        Ok(())
    } else {
        Err(crate::error::Rejected::new(format!(
            "`{name}` = `{}`: only printable ASCII can be stored in header and metadata values",
            value.escape_debug()
        )))
    }
}

impl PutRequest {
    /// Checks the extra headers as every store needs them: names are tokens, values
    /// printable ASCII, and none is one of the fields of their own (content type,
    /// encoding, cache control).
    pub fn check_headers(&self) -> Result<(), crate::error::Rejected> {
        for (name, value) in &self.headers {
            let lower = name.to_ascii_lowercase();
            if FIELD_HEADERS.contains(&lower.as_str()) {
                return Err(crate::error::Rejected::new(format!(
                    "header `{name}`: set it through the object's {lower} field"
                )));
            }
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':') {
                return Err(crate::error::Rejected::new(format!(
                    "header name `{}` is not a token",
                    name.escape_debug()
                )));
            }
            check_header_value(name, value)?;
        }
        Ok(())
    }
}

/// One page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Objects in key order.
    pub objects: Vec<ObjectMeta>,
    /// Pass this to get the next page; `None` on the last page.
    pub next: Option<String>,
}

/// What to purge from the CDN. Paths are absolute URL paths (`/blog/index.html`),
/// possibly with a trailing `*` where the provider supports wildcards.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeRequest {
    /// Paths (or trailing-wildcard patterns).
    #[serde(default)]
    pub paths: Vec<String>,
    /// Cache tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Path prefixes.
    #[serde(default)]
    pub prefixes: Vec<String>,
    /// Everything.
    #[serde(default)]
    pub everything: bool,
    /// The caller's reference for this exact request (purge job id + batch number): a
    /// retried call with the same reference must not start a second purge on providers
    /// that support idempotent requests (CloudFront's `CallerReference`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

impl PurgeRequest {
    /// A purge of exact `paths` (each starting with `/`).
    pub fn of_paths(paths: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            paths: paths.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Whether nothing would be purged.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
            && self.tags.is_empty()
            && self.prefixes.is_empty()
            && !self.everything
    }
}

/// The provider's handle on a submitted purge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurgeReceipt {
    /// The provider's id for the purge.
    pub id: String,
    /// Its state when submitted.
    pub status: PurgeStatus,
}

/// Where a purge is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PurgeStatus {
    /// Accepted, not yet done.
    InProgress,
    /// Done everywhere.
    Done,
}
