//! `Accept-Encoding` negotiation (RFC 9110 §12.5.3) over the variants a site stores.
//!
//! actix-web parses the header (tokens and q-values); the choice is ours:
//!
//! - a coding listed with `q=0` is excluded; one listed with `q>0` gets that weight;
//! - `*` gives its weight to every coding not listed by name (identity included);
//! - identity, when neither listed nor covered by `*`, stays acceptable at the lowest weight;
//! - no header at all, or an unparseable one, means identity;
//! - among the acceptable variants the highest weight wins; on a tie the smallest variant
//!   (by the manifest's sizes), then br > zstd > gzip > identity;
//! - nothing acceptable → `None` (the caller answers 406).

use std::cmp::Reverse;

use actix_web::http::header::{
    AcceptEncoding, ContentEncoding, Encoding as HeaderEncoding, Header, Preference, Quality,
};
use actix_web::{HttpMessage, http::header::HeaderValue};

use crate::pipeline::compress::Encoding;
use crate::pipeline::delta::DeltaEncoding;

/// A representation of an asset: the identity bytes or one stored variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Coding {
    /// The identity bytes (no `Content-Encoding`).
    Identity,
    /// Brotli.
    Br,
    /// Zstandard.
    Zstd,
    /// gzip.
    Gzip,
    /// Brotli against a dictionary the client holds (RFC 9842); never negotiated from
    /// `Accept-Encoding` alone.
    Dcb,
    /// Zstandard against a dictionary the client holds (RFC 9842).
    Dcz,
}

impl Coding {
    /// Every coding, identity first.
    pub const ALL: [Self; 6] = [
        Self::Identity,
        Self::Br,
        Self::Zstd,
        Self::Gzip,
        Self::Dcb,
        Self::Dcz,
    ];

    /// The coding of a delta variant.
    pub fn of_delta(encoding: DeltaEncoding) -> Self {
        match encoding {
            DeltaEncoding::Dcb => Self::Dcb,
            DeltaEncoding::Dcz => Self::Dcz,
        }
    }

    /// The stored-variant encoding of this coding (`None` for identity and deltas).
    pub fn encoding(self) -> Option<Encoding> {
        match self {
            Self::Br => Some(Encoding::Br),
            Self::Gzip => Some(Encoding::Gzip),
            Self::Zstd => Some(Encoding::Zstd),
            Self::Identity | Self::Dcb | Self::Dcz => None,
        }
    }

    /// The coding of a stored variant.
    pub fn of(encoding: Encoding) -> Self {
        match encoding {
            Encoding::Br => Self::Br,
            Encoding::Gzip => Self::Gzip,
            Encoding::Zstd => Self::Zstd,
        }
    }

    /// The `Content-Encoding` token (`identity` for the identity bytes).
    pub fn token(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Br => "br",
            Self::Zstd => "zstd",
            Self::Gzip => "gzip",
            Self::Dcb => "dcb",
            Self::Dcz => "dcz",
        }
    }

    /// The `Content-Encoding` header value, `None` for identity.
    pub fn header_value(self) -> Option<HeaderValue> {
        match self {
            Self::Identity => None,
            other => Some(HeaderValue::from_static(other.token())),
        }
    }

    /// The suffix of the sibling file holding this variant (`""` for identity and for
    /// deltas, whose keys also name their dictionary).
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Identity | Self::Dcb | Self::Dcz => "",
            Self::Br => Encoding::Br.suffix(),
            Self::Zstd => Encoding::Zstd.suffix(),
            Self::Gzip => Encoding::Gzip.suffix(),
        }
    }

    /// A small index (0–5) for arrays of per-coding values.
    pub fn index(self) -> usize {
        match self {
            Self::Identity => 0,
            Self::Br => 1,
            Self::Zstd => 2,
            Self::Gzip => 3,
            Self::Dcb => 4,
            Self::Dcz => 5,
        }
    }

    /// The server's own preference between equally weighted, equally sized variants.
    fn rank(self) -> u8 {
        match self {
            Self::Br => 3,
            Self::Zstd => 2,
            Self::Gzip => 1,
            Self::Identity | Self::Dcb | Self::Dcz => 0,
        }
    }

    fn matches(self, encoding: &HeaderEncoding) -> bool {
        match encoding {
            HeaderEncoding::Known(known) => matches!(
                (self, known),
                (Self::Identity, ContentEncoding::Identity)
                    | (Self::Br, ContentEncoding::Brotli)
                    | (Self::Zstd, ContentEncoding::Zstd)
                    | (Self::Gzip, ContentEncoding::Gzip)
            ),
            // RFC 9110 §8.4.1.3: recipients treat `x-gzip` as `gzip`.
            HeaderEncoding::Unknown(token) => match self {
                Self::Gzip => token.eq_ignore_ascii_case("x-gzip"),
                Self::Dcb | Self::Dcz => token.eq_ignore_ascii_case(self.token()),
                _ => false,
            },
        }
    }
}

impl std::fmt::Display for Coding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.token())
    }
}

/// The request's `Accept-Encoding`, parsed once.
#[derive(Debug, Clone)]
pub enum AcceptedEncodings {
    /// No header (or one that does not parse): identity only.
    Absent,
    /// The parsed header.
    Listed(AcceptEncoding),
}

impl AcceptedEncodings {
    /// Reads the header of `req`.
    pub fn of(req: &impl HttpMessage) -> Self {
        if !req
            .headers()
            .contains_key(actix_web::http::header::ACCEPT_ENCODING)
        {
            return Self::Absent;
        }
        match AcceptEncoding::parse(req) {
            Ok(parsed) => Self::Listed(parsed),
            Err(_) => Self::Absent,
        }
    }

    /// Whether the client accepts `coding` (a weight above zero). A delta coding must be
    /// listed by name: `*` never stands for a coding that needs a dictionary.
    pub fn accepts(&self, coding: Coding) -> bool {
        match coding {
            Coding::Dcb | Coding::Dcz => self.named_weight(coding) > Quality::ZERO,
            other => self.weight(other) > Quality::ZERO,
        }
    }

    /// The weight of `coding` when listed by name (zero when not listed).
    fn named_weight(&self, coding: Coding) -> Quality {
        let Self::Listed(header) = self else {
            return Quality::ZERO;
        };
        header
            .0
            .iter()
            .filter(|item| matches!(&item.item, Preference::Specific(e) if coding.matches(e)))
            .map(|item| item.quality)
            .max()
            .unwrap_or(Quality::ZERO)
    }

    /// The weight the client gives `coding` (zero: not acceptable).
    fn weight(&self, coding: Coding) -> Quality {
        let Self::Listed(header) = self else {
            return if coding == Coding::Identity {
                Quality::MAX
            } else {
                Quality::ZERO
            };
        };
        let mut named: Option<Quality> = None;
        let mut any: Option<Quality> = None;
        for item in &header.0 {
            match &item.item {
                Preference::Specific(encoding) if coding.matches(encoding) => {
                    // Listed twice: the higher weight counts.
                    named = Some(named.map_or(item.quality, |q| q.max(item.quality)));
                }
                Preference::Any => any = Some(any.map_or(item.quality, |q| q.max(item.quality))),
                Preference::Specific(_) => {}
            }
        }
        match (named, any, coding) {
            (Some(q), _, _) | (None, Some(q), _) => q,
            (None, None, Coding::Identity) => Quality::MIN,
            (None, None, _) => Quality::ZERO,
        }
    }

    /// Picks the representation to send among `offered` (coding, size); `None` when
    /// nothing offered is acceptable.
    pub fn choose<'a>(
        &self,
        offered: impl IntoIterator<Item = &'a (Coding, u64)>,
    ) -> Option<Coding> {
        offered
            .into_iter()
            .map(|&(coding, size)| (self.weight(coding), coding, size))
            .filter(|(weight, _, _)| *weight > Quality::ZERO)
            .max_by_key(|&(weight, coding, size)| (weight, Reverse(size), coding.rank()))
            .map(|(_, coding, _)| coding)
    }
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    const ALL: [(Coding, u64); 4] = [
        (Coding::Identity, 1000),
        (Coding::Br, 300),
        (Coding::Zstd, 340),
        (Coding::Gzip, 360),
    ];

    fn choose(header: Option<&str>, offered: &[(Coding, u64)]) -> Option<Coding> {
        let mut req = TestRequest::default();
        if let Some(value) = header {
            req = req.insert_header(("accept-encoding", value));
        }
        AcceptedEncodings::of(&req.to_http_request()).choose(offered)
    }

    #[test]
    fn without_a_header_identity_is_served() {
        assert_eq!(choose(None, &ALL), Some(Coding::Identity));
        assert_eq!(choose(Some(""), &ALL), Some(Coding::Identity));
    }

    #[test]
    fn equal_weights_pick_the_smallest_variant() {
        assert_eq!(
            choose(Some("gzip, deflate, br, zstd"), &ALL),
            Some(Coding::Br)
        );
        let zstd_smaller = [
            (Coding::Identity, 1000),
            (Coding::Br, 300),
            (Coding::Zstd, 200),
        ];
        assert_eq!(choose(Some("br, zstd"), &zstd_smaller), Some(Coding::Zstd));
        assert_eq!(choose(Some("gzip"), &ALL), Some(Coding::Gzip));
        assert_eq!(choose(Some("GZIP"), &ALL), Some(Coding::Gzip));
        assert_eq!(choose(Some("x-gzip"), &ALL), Some(Coding::Gzip));
    }

    #[test]
    fn q_values_outrank_size() {
        assert_eq!(choose(Some("br;q=0.5, gzip"), &ALL), Some(Coding::Gzip));
        assert_eq!(
            choose(Some("br;q=0.2, gzip;q=0.1, identity;q=0.9"), &ALL),
            Some(Coding::Identity)
        );
        assert_eq!(
            choose(Some("zstd;q=1, br;q=0.999"), &ALL),
            Some(Coding::Zstd)
        );
    }

    #[test]
    fn q_zero_excludes_and_identity_stays_acceptable_unless_excluded() {
        assert_eq!(choose(Some("br;q=0"), &ALL), Some(Coding::Identity));
        assert_eq!(choose(Some("deflate"), &ALL), Some(Coding::Identity));
        assert_eq!(choose(Some("identity;q=0"), &ALL), None);
        assert_eq!(choose(Some("br, identity;q=0"), &ALL), Some(Coding::Br));
        // An asset without variants: only identity is offered.
        let plain = [(Coding::Identity, 10)];
        assert_eq!(choose(Some("br"), &plain), Some(Coding::Identity));
        assert_eq!(choose(Some("br, identity;q=0"), &plain), None);
    }

    #[test]
    fn star_covers_every_coding_not_listed() {
        assert_eq!(choose(Some("*"), &ALL), Some(Coding::Br));
        assert_eq!(choose(Some("br;q=0, *"), &ALL), Some(Coding::Zstd));
        assert_eq!(choose(Some("*;q=0"), &ALL), None);
        assert_eq!(
            choose(Some("*;q=0, identity"), &ALL),
            Some(Coding::Identity)
        );
        assert_eq!(choose(Some("gzip, *;q=0"), &ALL), Some(Coding::Gzip));
        assert_eq!(
            choose(Some("*;q=0"), &[(Coding::Identity, 10)]),
            None,
            "`*;q=0` excludes identity too"
        );
    }

    #[test]
    fn an_unparseable_header_means_identity() {
        assert_eq!(choose(Some("br;q=2"), &ALL), Some(Coding::Identity));
    }
}
