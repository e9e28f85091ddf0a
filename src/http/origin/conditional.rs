//! Conditional and range requests for one selected representation (RFC 9110 §13, §14).
//!
//! actix-web parses the headers; this module decides. A header that does not parse is
//! ignored, as if the client had not sent it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::HttpMessage;
use actix_web::http::header::{
    self, ByteRangeSpec, EntityTag, Header, IfModifiedSince, IfNoneMatch, IfRange, Range,
};

/// The validators of the representation about to be sent.
#[derive(Debug, Clone, Copy)]
pub struct Validators<'a> {
    /// Its strong entity tag.
    pub etag: &'a EntityTag,
    /// Its modification time in whole seconds since the epoch (HTTP dates have no finer
    /// resolution), when the file system reports one.
    pub modified: Option<u64>,
}

/// The modification time of `time` in whole seconds since the epoch.
pub fn whole_seconds(time: SystemTime) -> Option<u64> {
    time.duration_since(UNIX_EPOCH).ok().map(|d| d.as_secs())
}

fn from_seconds(seconds: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(seconds)
}

/// Whether a `GET`/`HEAD` gets `304 Not Modified` (RFC 9110 §13.2.2 steps 3 and 4):
/// `If-None-Match` (weak comparison; `*` matches any current representation) and, only
/// when that header is absent, `If-Modified-Since`.
pub fn not_modified(req: &impl HttpMessage, validators: Validators<'_>) -> bool {
    let headers = req.headers();
    if headers.contains_key(header::IF_NONE_MATCH) {
        return match IfNoneMatch::parse(req) {
            Ok(IfNoneMatch::Any) => true,
            Ok(IfNoneMatch::Items(tags)) => tags.iter().any(|tag| tag.weak_eq(validators.etag)),
            Err(_) => false,
        };
    }
    match (
        validators.modified,
        headers.contains_key(header::IF_MODIFIED_SINCE),
    ) {
        (Some(modified), true) => IfModifiedSince::parse(req)
            .map(|since| from_seconds(modified) <= SystemTime::from(since.0))
            .unwrap_or(false),
        _ => false,
    }
}

/// What to send of a representation of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeAnswer {
    /// All of it (`200`): no `Range`, one that is ignored, or a multi-range request.
    Full,
    /// Bytes `start..=end` (`206`).
    Partial {
        /// First byte.
        start: u64,
        /// Last byte, inclusive.
        end: u64,
    },
    /// `416` with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// Evaluates `Range` and `If-Range` for a `GET` of a representation of `len` bytes.
///
/// - `If-Range` that does not match (strong comparison of the entity tag, or exact
///   equality with `Last-Modified`) turns the request into a plain `GET` (RFC 9110 §13.1.5).
/// - Only single `bytes` ranges are served; several ranges get the whole representation,
///   which RFC 9110 §14.2 allows.
/// - An unparseable `Range`, another unit, or `first > last` is ignored.
pub fn range(req: &impl HttpMessage, len: u64, validators: Validators<'_>) -> RangeAnswer {
    let headers = req.headers();
    let Some(raw) = headers.get(header::RANGE) else {
        return RangeAnswer::Full;
    };
    if headers.contains_key(header::IF_RANGE) {
        let current = match IfRange::parse(req) {
            Ok(IfRange::EntityTag(tag)) => tag.strong_eq(validators.etag),
            Ok(IfRange::Date(date)) => validators
                .modified
                .is_some_and(|modified| from_seconds(modified) == SystemTime::from(date)),
            Err(_) => false,
        };
        if !current {
            return RangeAnswer::Full;
        }
    }
    let Some(parsed) = raw.to_str().ok().and_then(|s| s.parse::<Range>().ok()) else {
        return RangeAnswer::Full;
    };
    let Range::Bytes(specs) = parsed else {
        return RangeAnswer::Full;
    };
    let [spec] = specs.as_slice() else {
        return RangeAnswer::Full;
    };
    if let ByteRangeSpec::FromTo(first, last) = spec
        && last < first
    {
        return RangeAnswer::Full;
    }
    match spec.to_satisfiable_range(len) {
        Some((start, end)) => RangeAnswer::Partial { start, end },
        None => RangeAnswer::Unsatisfiable,
    }
}

#[cfg(test)]
mod tests {
    use actix_web::http::header::HttpDate;
    use actix_web::test::TestRequest;

    use super::*;

    const MODIFIED: u64 = 1_700_000_000;

    fn date(seconds: u64) -> String {
        HttpDate::from(from_seconds(seconds)).to_string()
    }

    fn request(headers: &[(&str, &str)]) -> actix_web::HttpRequest {
        headers
            .iter()
            .fold(TestRequest::default(), |req, (name, value)| {
                req.append_header((*name, *value))
            })
            .to_http_request()
    }

    fn check(headers: &[(&str, &str)]) -> bool {
        let etag = EntityTag::new_strong("abc-br".into());
        not_modified(
            &request(headers),
            Validators {
                etag: &etag,
                modified: Some(MODIFIED),
            },
        )
    }

    fn ranged(headers: &[(&str, &str)], len: u64) -> RangeAnswer {
        let etag = EntityTag::new_strong("abc".into());
        range(
            &request(headers),
            len,
            Validators {
                etag: &etag,
                modified: Some(MODIFIED),
            },
        )
    }

    #[test]
    fn if_none_match_compares_weakly_and_accepts_lists_and_star() {
        assert!(check(&[("if-none-match", "\"abc-br\"")]));
        assert!(check(&[("if-none-match", "W/\"abc-br\"")]));
        assert!(check(&[("if-none-match", "\"x\", \"abc-br\"")]));
        assert!(check(&[
            ("if-none-match", "\"x\""),
            ("if-none-match", "\"abc-br\"")
        ]));
        assert!(check(&[("if-none-match", "*")]));
        assert!(
            !check(&[("if-none-match", "\"abc\"")]),
            "another variant's tag"
        );
        assert!(!check(&[("if-none-match", "abc-br")]), "unquoted: ignored");
    }

    #[test]
    fn if_modified_since_counts_only_without_if_none_match() {
        assert!(check(&[("if-modified-since", &date(MODIFIED))]));
        assert!(check(&[("if-modified-since", &date(MODIFIED + 60))]));
        assert!(!check(&[("if-modified-since", &date(MODIFIED - 1))]));
        assert!(!check(&[
            ("if-none-match", "\"other\""),
            ("if-modified-since", &date(MODIFIED + 60)),
        ]));
        assert!(!check(&[("if-modified-since", "yesterday")]));
    }

    #[test]
    fn single_ranges_are_served_and_others_are_not() {
        use RangeAnswer::*;
        assert_eq!(ranged(&[], 100), Full);
        assert_eq!(
            ranged(&[("range", "bytes=0-9")], 100),
            Partial { start: 0, end: 9 }
        );
        assert_eq!(
            ranged(&[("range", "bytes=90-200")], 100),
            Partial { start: 90, end: 99 }
        );
        assert_eq!(
            ranged(&[("range", "bytes=-10")], 100),
            Partial { start: 90, end: 99 }
        );
        assert_eq!(
            ranged(&[("range", "bytes=95-")], 100),
            Partial { start: 95, end: 99 }
        );
        assert_eq!(ranged(&[("range", "bytes=100-")], 100), Unsatisfiable);
        assert_eq!(ranged(&[("range", "bytes=-0")], 100), Unsatisfiable);
        assert_eq!(ranged(&[("range", "bytes=0-0")], 0), Unsatisfiable);
        assert_eq!(ranged(&[("range", "bytes=0-1,5-9")], 100), Full);
        assert_eq!(ranged(&[("range", "bytes=9-2")], 100), Full);
        assert_eq!(ranged(&[("range", "lines=1-2")], 100), Full);
        assert_eq!(ranged(&[("range", "bytes=x-y")], 100), Full);
    }

    #[test]
    fn if_range_must_match_strongly() {
        use RangeAnswer::*;
        let partial = Partial { start: 0, end: 9 };
        assert_eq!(
            ranged(&[("range", "bytes=0-9"), ("if-range", "\"abc\"")], 100),
            partial
        );
        assert_eq!(
            ranged(&[("range", "bytes=0-9"), ("if-range", "W/\"abc\"")], 100),
            Full
        );
        assert_eq!(
            ranged(&[("range", "bytes=0-9"), ("if-range", "\"old\"")], 100),
            Full
        );
        assert_eq!(
            ranged(
                &[("range", "bytes=0-9"), ("if-range", &date(MODIFIED))],
                100
            ),
            partial
        );
        assert_eq!(
            ranged(
                &[("range", "bytes=0-9"), ("if-range", &date(MODIFIED - 5))],
                100
            ),
            Full
        );
    }
}
