//! What a provider can do and its limits, so callers plan instead of guessing.
//!
//! The purge engine reduces and batches purges from these numbers alone (one algorithm
//! for every provider), and [`Capabilities::check_purge`] is the shared validator each
//! provider runs before sending a purge, so a request the real service would reject is
//! caught by our code even against emulators that accept anything.

use serde::Serialize;

use crate::error::{ProviderError, Rejected};
use crate::object::PurgeRequest;

/// A provider's capabilities and limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Capabilities {
    /// Purging individual paths.
    pub purge_paths: bool,
    /// Purging by tag.
    pub purge_tags: bool,
    /// Purging by prefix (a path ending in `/` and everything below it).
    pub purge_prefixes: bool,
    /// Purging everything at once.
    pub purge_everything: bool,
    /// A trailing `*` in a purge path matches everything that starts with what precedes
    /// it (CloudFront, Front Door). A `*` anywhere else is rejected.
    pub trailing_wildcards: bool,
    /// Most items (paths, tags and prefixes together) in one purge call.
    pub max_purge_items_per_call: usize,
    /// Most prefixes or tags in one call, where that is fewer than paths (Cloudflare:
    /// 100 operations, but 500 URLs on Enterprise). `None`: as many as paths.
    pub max_purge_operations_per_call: Option<usize>,
    /// Most wildcard paths in one purge call (CloudFront: 15, its in-progress limit).
    pub max_purge_wildcards_per_call: usize,
    /// Most individual (non-wildcard) paths in progress at once, across purges
    /// (CloudFront: 3,000). `None`: no such limit.
    pub max_purge_paths_in_flight: Option<usize>,
    /// Most wildcard paths in progress at once (CloudFront: 15). `None`: no such limit.
    pub max_purge_wildcards_in_flight: Option<usize>,
    /// Longest purge path in bytes.
    pub max_purge_path_len: usize,
    /// Purge paths (and tags) each count as one billed item; this many are free each
    /// month (CloudFront: 1,000 per account). `None`: purges are not billed.
    pub free_purge_paths_per_month: Option<u64>,
    /// Price of one billed purge item beyond the free allowance, in millionths of a US
    /// dollar (CloudFront: 5,000 = $0.005).
    pub purge_path_price_micro_usd: u64,
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
            max_purge_operations_per_call: None,
            max_purge_wildcards_per_call: 1000,
            max_purge_paths_in_flight: None,
            max_purge_wildcards_in_flight: None,
            max_purge_path_len: 4000,
            free_purge_paths_per_month: None,
            purge_path_price_micro_usd: 0,
            max_delete_batch: 1000,
            list_page_size: 1000,
            multipart_threshold: None,
            purge_is_noop: true,
        }
    }
}

impl Capabilities {
    /// CloudFront's invalidation rules, from the AWS developer guide (see
    /// `providers/src/aws` for the sources): paths start with `/`, `*` only as the last
    /// character, at most 4,000 characters; at most 3,000 individual paths and 15
    /// wildcard paths in progress per distribution; 1,000 free paths a month per
    /// account, then $0.005 a path. Tags need a distribution set up for them, so they
    /// are off here.
    pub fn cloudfront() -> Self {
        Self {
            purge_paths: true,
            purge_tags: false,
            purge_prefixes: false,
            purge_everything: true,
            trailing_wildcards: true,
            max_purge_items_per_call: 3000,
            max_purge_wildcards_per_call: 15,
            max_purge_paths_in_flight: Some(3000),
            max_purge_wildcards_in_flight: Some(15),
            max_purge_path_len: 4000,
            free_purge_paths_per_month: Some(1000),
            purge_path_price_micro_usd: 5000,
            purge_is_noop: false,
            ..Self::default()
        }
    }

    /// Whether `path` is a wildcard purge path (ends in `*`).
    pub fn is_wildcard(path: &str) -> bool {
        path.ends_with('*')
    }

    /// Checks a purge request against these limits, as the error `provider` returns:
    /// [`ProviderError::NotSupported`] for a kind it lacks, [`ProviderError::Invalid`]
    /// with the reason for a broken limit.
    ///
    /// Every provider calls this before sending a purge, so the rules are enforced the
    /// same way everywhere (and in tests, where emulators accept anything).
    pub fn validate_purge(
        &self,
        provider: &str,
        request: &PurgeRequest,
    ) -> Result<(), ProviderError> {
        let unsupported = |operation| ProviderError::NotSupported {
            provider: provider.to_string(),
            operation,
        };
        if request.everything && !self.purge_everything {
            return Err(unsupported("purge everything"));
        }
        if !request.paths.is_empty() && !self.purge_paths {
            return Err(unsupported("purge paths"));
        }
        if !request.tags.is_empty() && !self.purge_tags {
            return Err(unsupported("purge tags"));
        }
        if !request.prefixes.is_empty() && !self.purge_prefixes {
            return Err(unsupported("purge prefixes"));
        }
        self.check_purge(request)
            .map_err(|err| ProviderError::Invalid {
                provider: provider.to_string(),
                message: err.to_string(),
            })
    }

    /// Checks a purge request against these limits; the reason when it breaks one.
    pub fn check_purge(&self, request: &PurgeRequest) -> Result<(), Rejected> {
        if request.is_empty() {
            return Err(Rejected::new("empty purge request"));
        }
        if request.everything {
            if !self.purge_everything {
                return Err(Rejected::new("purging everything is not supported"));
            }
            if !request.paths.is_empty() || !request.tags.is_empty() || !request.prefixes.is_empty()
            {
                return Err(Rejected::new(
                    "a purge of everything cannot carry paths, tags or prefixes",
                ));
            }
            return Ok(());
        }
        if !request.paths.is_empty() && !self.purge_paths {
            return Err(Rejected::new("purging paths is not supported"));
        }
        if !request.tags.is_empty() && !self.purge_tags {
            return Err(Rejected::new("purging tags is not supported"));
        }
        if !request.prefixes.is_empty() && !self.purge_prefixes {
            return Err(Rejected::new("purging prefixes is not supported"));
        }
        let operations = request.tags.len() + request.prefixes.len();
        if let Some(max) = self.max_purge_operations_per_call
            && operations > max
        {
            return Err(Rejected::new(format!(
                "{operations} prefixes and tags in one purge (limit {max})"
            )));
        }
        let items = request.paths.len() + request.tags.len() + request.prefixes.len();
        if items > self.max_purge_items_per_call {
            return Err(Rejected::new(format!(
                "{items} items in one purge (limit {})",
                self.max_purge_items_per_call
            )));
        }
        let mut wildcards = 0;
        for path in request.paths.iter().chain(&request.prefixes) {
            if !path.starts_with('/') {
                return Err(Rejected::new(format!(
                    "purge path `{path}` does not start with `/`"
                )));
            }
            if path.len() > self.max_purge_path_len {
                return Err(Rejected::new(format!(
                    "purge path of {} bytes (limit {})",
                    path.len(),
                    self.max_purge_path_len
                )));
            }
            if path.chars().any(char::is_control) {
                return Err(Rejected::new(format!(
                    "purge path `{}` contains a control character",
                    path.escape_debug()
                )));
            }
        }
        for path in &request.paths {
            match path.find('*') {
                Some(at) if at + 1 != path.len() => {
                    return Err(Rejected::new(format!(
                        "purge path `{path}` has `*` before its end (only a trailing `*` is a wildcard)"
                    )));
                }
                Some(_) if !self.trailing_wildcards => {
                    return Err(Rejected::new(format!(
                        "purge path `{path}`: wildcards are not supported"
                    )));
                }
                Some(_) => wildcards += 1,
                None => {}
            }
        }
        if wildcards > self.max_purge_wildcards_per_call {
            return Err(Rejected::new(format!(
                "{wildcards} wildcard paths in one purge (limit {})",
                self.max_purge_wildcards_per_call
            )));
        }
        for prefix in &request.prefixes {
            if !prefix.ends_with('/') {
                return Err(Rejected::new(format!(
                    "purge prefix `{prefix}` does not end with `/`"
                )));
            }
        }
        for tag in &request.tags {
            if tag.is_empty() || tag.len() > 256 || tag.chars().any(|c| c.is_control() || c == ',')
            {
                return Err(Rejected::new(format!(
                    "purge tag `{}` is empty, longer than 256 bytes, or has a comma or control character",
                    tag.escape_debug()
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(paths: &[&str]) -> PurgeRequest {
        PurgeRequest::of_paths(paths.iter().copied())
    }

    #[test]
    fn cloudfront_rules_reject_what_aws_rejects() {
        let cf = Capabilities::cloudfront();
        assert!(
            cf.check_purge(&paths(&["/index.html", "/assets/*", "/"]))
                .is_ok()
        );
        let bad = [
            (paths(&[]), "empty"),
            (paths(&["assets/*"]), "does not start with `/`"),
            (paths(&["/a*/b.css"]), "before its end"),
            (paths(&["/a\n"]), "control character"),
            (paths(&[&format!("/{}", "a".repeat(4000))]), "4000"),
        ];
        for (request, reason) in bad {
            let err = cf.check_purge(&request).unwrap_err();
            assert!(
                err.reason().contains(reason),
                "{err} should mention {reason}"
            );
        }
        let many: Vec<String> = (0..3001).map(|i| format!("/{i}.css")).collect();
        let err = cf.check_purge(&PurgeRequest::of_paths(many)).unwrap_err();
        assert!(err.reason().contains("3001 items"), "{err}");
        let wild: Vec<String> = (0..16).map(|i| format!("/{i}/*")).collect();
        let err = cf.check_purge(&PurgeRequest::of_paths(wild)).unwrap_err();
        assert!(err.reason().contains("16 wildcard paths"), "{err}");
        let tags = PurgeRequest {
            tags: vec!["a".into()],
            ..Default::default()
        };
        assert!(cf.check_purge(&tags).unwrap_err().reason().contains("tags"));
    }

    #[test]
    fn everything_stands_alone_and_prefixes_end_with_a_slash() {
        let caps = Capabilities {
            purge_prefixes: true,
            ..Capabilities::default()
        };
        let everything = PurgeRequest {
            everything: true,
            paths: vec!["/a".into()],
            ..Default::default()
        };
        assert!(caps.check_purge(&everything).is_err());
        let prefix = PurgeRequest {
            prefixes: vec!["/blog".into()],
            ..Default::default()
        };
        assert!(
            caps.check_purge(&prefix)
                .unwrap_err()
                .reason()
                .contains("end with `/`")
        );
        let no_wildcards = Capabilities {
            trailing_wildcards: false,
            ..Capabilities::default()
        };
        assert!(no_wildcards.check_purge(&paths(&["/a/*"])).is_err());
    }
}
