//! What a provider can do and its limits, so callers plan instead of guessing.

use serde::Serialize;

/// A provider's capabilities and limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Purging individual paths.
    pub purge_paths: bool,
    /// Purging by tag.
    pub purge_tags: bool,
    /// Purging by prefix.
    pub purge_prefixes: bool,
    /// Purging everything at once.
    pub purge_everything: bool,
    /// A trailing `*` in a purge path matches everything below it.
    pub trailing_wildcards: bool,
    /// Most paths (or tags, or prefixes) in one purge call.
    pub max_purge_items_per_call: usize,
    /// Most keys in one delete call.
    pub max_delete_batch: usize,
    /// Most objects in one listing page.
    pub list_page_size: usize,
    /// Bodies at least this large are uploaded in parts (`None`: never).
    pub multipart_threshold: Option<u64>,
    /// A purge has no effect (no CDN in front, e.g. a local directory).
    pub purge_is_noop: bool,
}

impl Default for Capabilities {
    fn default() -> Self {
        Self {
            purge_paths: true,
            purge_tags: false,
            purge_prefixes: false,
            purge_everything: true,
            trailing_wildcards: true,
            max_purge_items_per_call: 1000,
            max_delete_batch: 1000,
            list_page_size: 1000,
            multipart_threshold: None,
            purge_is_noop: true,
        }
    }
}
