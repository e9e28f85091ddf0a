//! CloudFront invalidations: turning a [`PurgeRequest`] into the `InvalidationBatch`
//! CloudFront expects, and its answers into [`PurgeStatus`].
//!
//! The rules, from the CloudFront developer guide (the limits themselves are declared in
//! [`Capabilities::cloudfront`](crate::Capabilities::cloudfront) and enforced by
//! [`Capabilities::validate_purge`](crate::Capabilities::validate_purge) before anything
//! is sent, because emulators accept requests AWS rejects):
//!
//! - Paths start with `/`; `*` is a wildcard only as the last character; a path is at
//!   most 4,000 characters; paths are case sensitive. Non-ASCII and RFC 1738 "unsafe"
//!   characters are URL-encoded, and nothing else, or CloudFront does not match the
//!   cached object.
//!   <https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/invalidation-specifying-objects.html>
//! - At most 3,000 individual paths and 15 wildcard paths in progress per distribution
//!   at once; above that CloudFront answers `TooManyInvalidationsInProgress`, which the
//!   provider reports as throttled so the purge waits instead of failing.
//!   <https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/InvalidationLimits.html>
//! - The first 1,000 paths a month per account are free, then each path is billed; a
//!   wildcard counts as one path.
//!   <https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/PayingForInvalidation.html>
//! - The caller reference makes a request idempotent: the same reference with the same
//!   paths returns the existing invalidation, with other paths it is
//!   `InvalidationBatchAlreadyExists`. The purge engine passes its job id + batch number
//!   ([`PurgeRequest::reference`]), so a retried call never starts a second invalidation.
//!   <https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_InvalidationBatch.html>
//! - `…/index.html` is also served as `…/`: the purge engine lists both forms; this
//!   module sends the paths it is given.

use aws_sdk_cloudfront::error::BuildError;
use aws_sdk_cloudfront::types::{InvalidationBatch, Paths};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

use crate::error::Rejected;
use crate::object::{PurgeRequest, PurgeStatus};

/// Characters URL-encoded in invalidation paths: controls and non-ASCII (always), the
/// RFC 1738 "unsafe" characters (space `"` `#` `%` `<` `>` `\` `^` `` ` `` `{` `|` `}` `~`
/// `[` `]`), and `?`, which would otherwise start a query string. `/` and a trailing `*`
/// keep their meaning; every other character is sent as it is.
const UNSAFE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}')
    .add(b'~')
    .add(b'[')
    .add(b']')
    .add(b'?');

/// Longest path CloudFront accepts, after encoding.
pub const MAX_PATH_LEN: usize = 4000;

/// A site path as CloudFront wants it: URL-encoded where RFC 1738 says so, a trailing
/// `*` kept as the wildcard.
pub fn encode_path(path: &str) -> String {
    match path.strip_suffix('*') {
        Some(stem) => format!("{}*", utf8_percent_encode(stem, UNSAFE)),
        None => utf8_percent_encode(path, UNSAFE).to_string(),
    }
}

/// The paths of an invalidation for `request` (already validated against
/// [`Capabilities::cloudfront`](crate::Capabilities::cloudfront)): `/*` for everything,
/// else each path encoded, duplicates dropped (each one is billed), order kept.
pub fn invalidation_paths(request: &PurgeRequest) -> Result<Vec<String>, Rejected> {
    if request.everything {
        return Ok(vec!["/*".to_string()]);
    }
    let mut seen = std::collections::HashSet::new();
    let mut paths = Vec::with_capacity(request.paths.len());
    for path in &request.paths {
        let encoded = encode_path(path);
        if encoded.len() > MAX_PATH_LEN {
            return Err(Rejected::new(format!(
                "purge path `{path}` is {} characters once URL-encoded (limit {MAX_PATH_LEN})",
                encoded.len()
            )));
        }
        if seen.insert(encoded.clone()) {
            paths.push(encoded);
        }
    }
    Ok(paths)
}

/// The `InvalidationBatch` for `request` with caller reference `reference`.
pub fn invalidation_batch(
    request: &PurgeRequest,
    reference: &str,
) -> Result<InvalidationBatch, Rejected> {
    if reference.is_empty() {
        return Err(Rejected::new("empty caller reference"));
    }
    let paths = invalidation_paths(request)?;
    let build = |e: BuildError| Rejected::new(e.to_string());
    let paths = Paths::builder()
        .quantity(i32::try_from(paths.len()).map_err(|e| Rejected::new(e.to_string()))?)
        .set_items(Some(paths))
        .build()
        .map_err(build)?;
    InvalidationBatch::builder()
        .paths(paths)
        .caller_reference(reference)
        .build()
        .map_err(build)
}

/// An invalidation's status as CloudFront reports it (`InProgress`, `Completed`; moto
/// says `COMPLETED`).
pub fn purge_status(status: &str) -> PurgeStatus {
    if status.eq_ignore_ascii_case("completed") {
        PurgeStatus::Done
    } else {
        PurgeStatus::InProgress
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Capabilities;

    fn paths(paths: &[&str]) -> PurgeRequest {
        PurgeRequest::of_paths(paths.iter().copied())
    }

    #[test]
    fn unsafe_and_non_ascii_characters_are_encoded_and_nothing_else() {
        assert_eq!(
            encode_path("/docs/café-menü.txt"),
            "/docs/caf%C3%A9-men%C3%BC.txt"
        );
        assert_eq!(encode_path("/space name.css"), "/space%20name.css");
        assert_eq!(
            encode_path("/a~b/{x}|[y]^`z`#%\"<>\\?.js"),
            "/a%7Eb/%7Bx%7D%7C%5By%5D%5E%60z%60%23%25%22%3C%3E%5C%3F.js"
        );
        // Reserved characters that are legal in a path stay as they are.
        assert_eq!(
            encode_path("/a+b/c=d;e:f@g&h,i!j$k'l(m).css"),
            "/a+b/c=d;e:f@g&h,i!j$k'l(m).css"
        );
        assert_eq!(encode_path("/blog/*"), "/blog/*");
        assert_eq!(encode_path("/ü*"), "/%C3%BC*");
    }

    #[test]
    fn the_batch_carries_the_callers_reference_and_each_path_once() {
        let request = PurgeRequest {
            reference: Some("job-42-3".into()),
            ..paths(&["/about/index.html", "/about/", "/about/", "/x y.css"])
        };
        let batch = invalidation_batch(&request, "job-42-3").unwrap();
        assert_eq!(batch.caller_reference(), "job-42-3");
        let sent = batch.paths().unwrap();
        assert_eq!(sent.quantity(), 3);
        assert_eq!(sent.items(), ["/about/index.html", "/about/", "/x%20y.css"]);
        assert!(invalidation_batch(&request, "").is_err());
    }

    #[test]
    fn everything_is_one_wildcard_path() {
        let everything = PurgeRequest {
            everything: true,
            ..Default::default()
        };
        let batch = invalidation_batch(&everything, "r").unwrap();
        assert_eq!(batch.paths().unwrap().items(), ["/*"]);
    }

    #[test]
    fn paths_too_long_once_encoded_are_refused() {
        let long = format!("/{}", "é".repeat(1000));
        assert!(
            Capabilities::cloudfront()
                .check_purge(&paths(&[&long]))
                .is_ok()
        );
        let err = invalidation_paths(&paths(&[&long])).unwrap_err();
        assert!(err.reason().contains("6001 characters"), "{err}");
    }

    #[test]
    fn what_cloudfront_rejects_is_rejected_before_sending() {
        let cf = Capabilities::cloudfront();
        let check = |request: &PurgeRequest| cf.validate_purge("aws", request);
        assert!(check(&paths(&["/index.html", "/assets/*", "/"])).is_ok());
        for (request, reason) in [
            (paths(&["index.html"]), "does not start with `/`"),
            (paths(&["/a*/b.css"]), "before its end"),
            (paths(&["/*.css*"]), "before its end"),
        ] {
            let err = check(&request).unwrap_err().to_string();
            assert!(err.contains(reason), "{err}");
        }
        let many: Vec<String> = (0..3001).map(|i| format!("/{i}.css")).collect();
        let err = check(&PurgeRequest::of_paths(many)).unwrap_err();
        assert!(
            err.to_string()
                .contains("3001 items in one purge (limit 3000)"),
            "{err}"
        );
        let wildcards: Vec<String> = (0..16).map(|i| format!("/{i}/*")).collect();
        let err = check(&PurgeRequest::of_paths(wildcards)).unwrap_err();
        assert!(err.to_string().contains("16 wildcard paths"), "{err}");
    }

    #[test]
    fn completed_in_any_case_is_done() {
        assert_eq!(purge_status("Completed"), PurgeStatus::Done);
        assert_eq!(purge_status("COMPLETED"), PurgeStatus::Done);
        assert_eq!(purge_status("InProgress"), PurgeStatus::InProgress);
    }
}
