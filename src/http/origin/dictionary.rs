//! Compression dictionary transport at the origin (RFC 9842): the `Use-As-Dictionary`
//! response header, and the delta chosen for a request whose `Available-Dictionary`
//! names a version the site has a delta from.
//!
//! A request gets a delta only when all of these hold; otherwise it is served exactly as
//! without dictionaries:
//!
//! - `Available-Dictionary` is one well-formed structured-field byte sequence
//!   (`:<base64 of 32 bytes>:`); anything else is ignored;
//! - the asset has a delta from that dictionary;
//! - `Accept-Encoding` lists the delta's coding (`dcb`, `dcz`) by name with a weight
//!   above zero.
//!
//! Among acceptable deltas the smallest wins.

use actix_web::HttpMessage;
use actix_web::http::header::HeaderValue;

use super::negotiate::AcceptedEncodings;
use super::{Asset, Representation};

/// The request header naming the dictionary the client holds.
pub const AVAILABLE_DICTIONARY: &str = "available-dictionary";

/// The response header telling the client to keep the response as a dictionary.
pub const USE_AS_DICTIONARY: &str = "use-as-dictionary";

/// `Vary` for assets that may be answered with a delta.
pub const VARY_WITH_DICTIONARY: &str = "accept-encoding, available-dictionary";

/// Parses an `Available-Dictionary` value: a structured-field byte sequence holding a
/// SHA-256 digest. `None` for anything malformed (ignored, as the RFC asks).
pub fn parse_available_dictionary(value: &[u8]) -> Option<[u8; 32]> {
    let value = std::str::from_utf8(value)
        .ok()?
        .trim_matches(|c| c == ' ' || c == '\t');
    let inner = value.strip_prefix(':')?.strip_suffix(':')?;
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(inner)
        .ok()?;
    bytes.try_into().ok()
}

/// The `Use-As-Dictionary` value for a match pattern: `match="<pattern>"` as a
/// structured-field dictionary (`"` and `\` escaped). `None` when the pattern is not
/// printable ASCII.
pub fn use_as_dictionary_value(pattern: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(&crate::pipeline::delta::use_as_dictionary(pattern)?).ok()
}

/// The delta to send for `req`, if any (see the module docs).
pub fn choose<'a>(
    req: &impl HttpMessage,
    asset: &'a Asset,
    accepted: &AcceptedEncodings,
) -> Option<&'a Representation> {
    if asset.deltas.is_empty() {
        return None;
    }
    let mut values = req.headers().get_all(AVAILABLE_DICTIONARY);
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let held = parse_available_dictionary(value.as_bytes())?;
    asset
        .deltas
        .iter()
        .filter(|d| d.from == held && accepted.accepts(d.representation.coding))
        .map(|d| &d.representation)
        .min_by_key(|r| r.size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn available_dictionary_is_a_byte_sequence_of_a_sha256() {
        let hash = crate::pipeline::delta::Sha256::of(b"v1");
        let header = format!(":{}:", hash.base64());
        assert_eq!(parse_available_dictionary(header.as_bytes()), Some(hash.0));
        assert_eq!(
            parse_available_dictionary(format!("  {header}\t").as_bytes()),
            Some(hash.0)
        );
        for bad in [
            &b""[..],
            b"::",
            b":abc:",
            hash.base64().as_bytes(),
            format!(":{}", hash.base64()).as_bytes(),
            format!("\"{}\"", hash.base64()).as_bytes(),
            format!(":{}:", crate::pipeline::delta::Sha256::of(b"x").hex()).as_bytes(),
            b":\xff\xfe:",
            format!(":{}AAAA:", hash.base64()).as_bytes(),
        ] {
            assert_eq!(parse_available_dictionary(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn use_as_dictionary_escapes_what_a_string_must() {
        assert_eq!(
            use_as_dictionary_value("/assets/app.*.js").unwrap(),
            "match=\"/assets/app.*.js\""
        );
        assert_eq!(
            use_as_dictionary_value("/a\\+b\"").unwrap(),
            "match=\"/a\\\\+b\\\"\""
        );
        assert!(use_as_dictionary_value("/caf\u{e9}").is_none());
    }
}
