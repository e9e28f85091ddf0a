//! The value codec: serialise (MessagePack or JSON), compress above a threshold (zstd or
//! gzip), and prefix a one-byte header that says how, so reads never guess.
//!
//! # Header
//!
//! Every stored value starts with one byte:
//!
//! ```text
//!   bit  7 6 5 | 4 3    | 2 1 0
//!       version | format | compression
//! ```
//!
//! - version: [`HEADER_VERSION`] (1). Any other version — `0` is what an older, headerless
//!   writer would look like — is [`CodecError::UnsupportedVersion`]; a reader never
//!   interprets bytes it does not understand.
//! - format: `0` MessagePack (struct fields by name, so added `#[serde(default)]` fields
//!   keep old values readable), `1` JSON. Others are [`CodecError::UnknownFormat`].
//! - compression: `0` none, `1` zstd, `2` gzip. Others are [`CodecError::UnknownCompression`].
//!
//! Reads decode by the header, not by the configured format, so switching `cache.format`
//! or `cache.compression` leaves existing values readable. Version-1 headers are
//! `0x20..=0x2a`: a plain Redis counter (`"42"`, bytes `0x34 0x32`) or a JSON document
//! (`{`, `0x7b`) read as a value is a typed error, never garbage.

use std::borrow::Cow;
use std::io::{Read, Write};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The header version this build writes and the only one it reads.
pub const HEADER_VERSION: u8 = 1;

/// Default size above which values are compressed: below ~1 KiB the compressor's frame
/// overhead eats most of the saving and the CPU cost is not worth it.
pub const DEFAULT_COMPRESS_THRESHOLD: usize = 1024;

/// zstd level for cache values. 3 (zstd's own default) compresses a 10,000-entry manifest
/// at hundreds of MB/s; higher levels gain a few percent for several times the CPU, a bad
/// trade for values rewritten on every deploy.
pub const ZSTD_LEVEL: i32 = 3;

/// gzip level for cache values; 6 is zlib's default speed/size balance.
pub const GZIP_LEVEL: u32 = 6;

/// Decoded values larger than this are refused, so a corrupt or hostile value cannot make
/// a reader allocate without bound (a decompression bomb).
pub const MAX_DECODED_BYTES: usize = 256 * 1024 * 1024;

/// How a value is serialised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// MessagePack (`rmp-serde`, struct fields by name): compact and fast. The default.
    #[serde(rename = "msgpack")]
    MessagePack,
    /// JSON: larger and slower, but readable with `redis-cli` when debugging.
    Json,
}

impl Format {
    fn code(self) -> u8 {
        match self {
            Self::MessagePack => 0,
            Self::Json => 1,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::MessagePack),
            1 => Some(Self::Json),
            _ => None,
        }
    }

    /// The name used in config and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::MessagePack => "msgpack",
            Self::Json => "json",
        }
    }
}

/// How a value above the threshold is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Never compress.
    None,
    /// zstd at [`ZSTD_LEVEL`]: the default, fast both ways.
    Zstd,
    /// gzip at [`GZIP_LEVEL`].
    Gzip,
}

impl Compression {
    fn code(self) -> u8 {
        match self {
            Self::None => 0,
            Self::Zstd => 1,
            Self::Gzip => 2,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::None),
            1 => Some(Self::Zstd),
            2 => Some(Self::Gzip),
            _ => None,
        }
    }

    /// The name used in config and logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Zstd => "zstd",
            Self::Gzip => "gzip",
        }
    }
}

/// A parsed header byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// How the payload is serialised.
    pub format: Format,
    /// How the payload is compressed.
    pub compression: Compression,
}

impl Header {
    /// The header byte for this format and compression at [`HEADER_VERSION`].
    pub fn to_byte(self) -> u8 {
        (HEADER_VERSION << 5) | (self.format.code() << 3) | self.compression.code()
    }

    /// Parses a header byte.
    ///
    /// # Behavior
    /// - a version other than [`HEADER_VERSION`] is [`CodecError::UnsupportedVersion`];
    /// - unknown format or compression codes are [`CodecError::UnknownFormat`] /
    ///   [`CodecError::UnknownCompression`].
    pub fn parse(byte: u8) -> Result<Self, CodecError> {
        let version = byte >> 5;
        if version != HEADER_VERSION {
            return Err(CodecError::UnsupportedVersion { version, byte });
        }
        let format_code = (byte >> 3) & 0b11;
        let format = Format::from_code(format_code)
            .ok_or(CodecError::UnknownFormat { code: format_code })?;
        let compression_code = byte & 0b111;
        let compression =
            Compression::from_code(compression_code).ok_or(CodecError::UnknownCompression {
                code: compression_code,
            })?;
        Ok(Self {
            format,
            compression,
        })
    }
}

/// Errors encoding or decoding a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The stored value has no bytes at all, so not even a header.
    #[error("the stored value is empty (no header byte)")]
    Empty,
    /// The header names a version this build does not read.
    #[error(
        "the stored value has header version {version} (byte {byte:#04x}); this build reads version {HEADER_VERSION} only"
    )]
    UnsupportedVersion {
        /// The version found.
        version: u8,
        /// The whole header byte.
        byte: u8,
    },
    /// The header names a serialisation format this build does not know.
    #[error("the stored value names unknown format code {code}")]
    UnknownFormat {
        /// The format bits.
        code: u8,
    },
    /// The header names a compression this build does not know.
    #[error("the stored value names unknown compression code {code}")]
    UnknownCompression {
        /// The compression bits.
        code: u8,
    },
    /// The compressed payload does not decompress.
    #[error(
        "the stored value is corrupt: its {compression} payload does not decompress: {message}"
    )]
    Decompress {
        /// The compression named by the header.
        compression: &'static str,
        /// The decompressor's message.
        message: String,
    },
    /// The payload does not deserialise into the requested type.
    #[error("the stored value does not decode as {format} into the requested type: {message}")]
    Deserialize {
        /// The format named by the header.
        format: &'static str,
        /// The deserialiser's message.
        message: String,
    },
    /// The value cannot be serialised (e.g. a map with non-string keys as JSON).
    #[error("the value cannot be serialised as {format}: {message}")]
    Serialize {
        /// The configured format.
        format: &'static str,
        /// The serialiser's message.
        message: String,
    },
    /// The decoded payload exceeds [`MAX_DECODED_BYTES`].
    #[error("the stored value decodes to more than {limit} bytes; refused")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
}

/// An encoded value and what compression did to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Header byte plus (maybe compressed) payload: what is stored.
    pub bytes: Vec<u8>,
    /// Size of the serialised payload before compression.
    pub plain_len: usize,
}

impl Encoded {
    /// Whether the payload was stored compressed.
    pub fn is_compressed(&self) -> bool {
        self.bytes
            .first()
            .and_then(|b| Header::parse(*b).ok())
            .is_some_and(|h| h.compression != Compression::None)
    }
}

/// Encodes and decodes cache values. Cheap to copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codec {
    format: Format,
    compression: Compression,
    threshold: usize,
}

impl Default for Codec {
    fn default() -> Self {
        Self::new(
            Format::MessagePack,
            Compression::Zstd,
            DEFAULT_COMPRESS_THRESHOLD,
        )
    }
}

impl Codec {
    /// A codec writing `format`, compressing payloads larger than `threshold` bytes with
    /// `compression`.
    pub fn new(format: Format, compression: Compression, threshold: usize) -> Self {
        Self {
            format,
            compression,
            threshold,
        }
    }

    /// The format values are written in.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The compression used above the threshold.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// Payloads larger than this many bytes are compressed.
    pub fn threshold(&self) -> usize {
        self.threshold
    }

    /// Serialises `value` with the configured format (no header, no compression).
    pub fn serialize<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        let result = match self.format {
            Format::MessagePack => rmp_serde::to_vec_named(value).map_err(|e| e.to_string()),
            Format::Json => serde_json::to_vec(value).map_err(|e| e.to_string()),
        };
        result.map_err(|message| CodecError::Serialize {
            format: self.format.name(),
            message,
        })
    }

    /// Adds the header to a serialised payload, compressing it when it is larger than the
    /// threshold and compression makes it smaller.
    pub fn seal(&self, payload: Vec<u8>) -> Encoded {
        let plain_len = payload.len();
        let mut header = Header {
            format: self.format,
            compression: Compression::None,
        };
        if self.compression != Compression::None
            && plain_len > self.threshold
            && let Some(compressed) = compress(self.compression, &payload)
            && compressed.len() < plain_len
        {
            header.compression = self.compression;
            let mut bytes = Vec::with_capacity(compressed.len() + 1);
            bytes.push(header.to_byte());
            bytes.extend_from_slice(&compressed);
            return Encoded { bytes, plain_len };
        }
        let mut bytes = Vec::with_capacity(plain_len + 1);
        bytes.push(header.to_byte());
        bytes.extend_from_slice(&payload);
        Encoded { bytes, plain_len }
    }

    /// Serialises and seals `value`: what [`Cache`](super::Cache) stores.
    pub fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Encoded, CodecError> {
        Ok(self.seal(self.serialize(value)?))
    }

    /// Reads the header and returns it with the decompressed payload.
    ///
    /// # Behavior
    /// - the header decides format and compression, whatever this codec writes;
    /// - an empty value, an unknown or older header, a payload that does not decompress,
    ///   or one that decompresses to more than [`MAX_DECODED_BYTES`] is an error.
    pub fn open<'a>(&self, stored: &'a [u8]) -> Result<(Header, Cow<'a, [u8]>), CodecError> {
        let (&byte, payload) = stored.split_first().ok_or(CodecError::Empty)?;
        let header = Header::parse(byte)?;
        let plain = match header.compression {
            // Uncompressed payloads (most small values) are decoded in place, not copied.
            Compression::None => Cow::Borrowed(payload),
            compression => Cow::Owned(decompress(compression, payload, MAX_DECODED_BYTES)?),
        };
        Ok((header, plain))
    }

    /// Decodes a stored value into `T`.
    pub fn decode<T: DeserializeOwned>(&self, stored: &[u8]) -> Result<T, CodecError> {
        let (header, payload) = self.open(stored)?;
        let result = match header.format {
            Format::MessagePack => rmp_serde::from_slice(&payload).map_err(|e| e.to_string()),
            Format::Json => serde_json::from_slice(&payload).map_err(|e| e.to_string()),
        };
        result.map_err(|message| CodecError::Deserialize {
            format: header.format.name(),
            message,
        })
    }
}

fn compress(compression: Compression, payload: &[u8]) -> Option<Vec<u8>> {
    match compression {
        Compression::None => None,
        Compression::Zstd => zstd::bulk::compress(payload, ZSTD_LEVEL).ok(),
        Compression::Gzip => {
            let mut encoder = flate2::write::GzEncoder::new(
                Vec::with_capacity(payload.len() / 2),
                flate2::Compression::new(GZIP_LEVEL),
            );
            encoder.write_all(payload).ok()?;
            encoder.finish().ok()
        }
    }
}

fn decompress(
    compression: Compression,
    payload: &[u8],
    max_len: usize,
) -> Result<Vec<u8>, CodecError> {
    let error = |message: String| CodecError::Decompress {
        compression: compression.name(),
        message,
    };
    let mut out = Vec::new();
    // Read one byte past the limit to tell "exactly the limit" from "more".
    let limit = max_len as u64 + 1;
    match compression {
        Compression::None => out.extend_from_slice(payload),
        Compression::Zstd => {
            let decoder =
                zstd::stream::read::Decoder::new(payload).map_err(|e| error(e.to_string()))?;
            decoder
                .take(limit)
                .read_to_end(&mut out)
                .map_err(|e| error(e.to_string()))?;
        }
        Compression::Gzip => {
            flate2::read::GzDecoder::new(payload)
                .take(limit)
                .read_to_end(&mut out)
                .map_err(|e| error(e.to_string()))?;
        }
    }
    if out.len() > max_len {
        return Err(CodecError::TooLarge { limit: max_len });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Sample {
        name: String,
        count: u64,
        delta: i64,
        ratio: f64,
        flag: bool,
        blob: Vec<u8>,
        tags: Vec<String>,
        sizes: BTreeMap<String, u64>,
        parent: Option<Box<Self>>,
        kind: Kind,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Kind {
        Unit,
        Tuple(u8, String),
        Struct { id: u32 },
    }

    fn all_codecs(threshold: usize) -> Vec<Codec> {
        let mut codecs = Vec::new();
        for format in [Format::MessagePack, Format::Json] {
            for compression in [Compression::None, Compression::Zstd, Compression::Gzip] {
                codecs.push(Codec::new(format, compression, threshold));
            }
        }
        codecs
    }

    fn kind() -> impl Strategy<Value = Kind> {
        prop_oneof![
            Just(Kind::Unit),
            (any::<u8>(), ".{0,8}").prop_map(|(a, b)| Kind::Tuple(a, b)),
            any::<u32>().prop_map(|id| Kind::Struct { id }),
        ]
    }

    fn leaf() -> impl Strategy<Value = Sample> {
        (
            ".{0,40}",
            any::<u64>(),
            any::<i64>(),
            // JSON has no NaN or infinities; finite floats round-trip exactly in both.
            -1e300f64..1e300,
            any::<bool>(),
            proptest::collection::vec(any::<u8>(), 0..64),
            proptest::collection::vec("[a-z/._-]{0,12}", 0..6),
            proptest::collection::btree_map("[a-z]{1,6}", any::<u64>(), 0..6),
            kind(),
        )
            .prop_map(
                |(name, count, delta, ratio, flag, blob, tags, sizes, kind)| Sample {
                    name,
                    count,
                    delta,
                    ratio,
                    flag,
                    blob,
                    tags,
                    sizes,
                    parent: None,
                    kind,
                },
            )
    }

    fn sample() -> impl Strategy<Value = Sample> {
        (leaf(), proptest::option::of(leaf())).prop_map(|(mut s, parent)| {
            s.parent = parent.map(Box::new);
            s
        })
    }

    proptest! {
        #[test]
        fn every_codec_round_trips_structured_values(value in sample(), threshold in 0usize..2048) {
            for codec in all_codecs(threshold) {
                let encoded = codec.encode(&value).unwrap();
                let back: Sample = codec.decode(&encoded.bytes).unwrap();
                prop_assert_eq!(&back, &value, "{:?}", codec);
            }
        }

        #[test]
        fn every_codec_round_trips_strings_and_bytes(text in ".{0,3000}", bytes in proptest::collection::vec(any::<u8>(), 0..3000)) {
            for codec in all_codecs(64) {
                let encoded = codec.encode(&text).unwrap();
                prop_assert_eq!(codec.decode::<String>(&encoded.bytes).unwrap(), text.clone());
                let encoded = codec.encode(&bytes).unwrap();
                prop_assert_eq!(codec.decode::<Vec<u8>>(&encoded.bytes).unwrap(), bytes.clone());
            }
        }

        #[test]
        fn no_byte_string_decodes_to_garbage_silently(stored in proptest::collection::vec(any::<u8>(), 0..64)) {
            // Any input is a typed error (never a panic) unless it is a valid encoding: one
            // with a header we wrote, whose value encodes back to what decodes the same.
            let codec = Codec::default();
            let _ = codec.decode::<Sample>(&stored);
            match codec.decode::<String>(&stored) {
                Ok(text) => {
                    prop_assert!(!stored.is_empty());
                    prop_assert!(Header::parse(stored[0]).is_ok(), "decoded without a valid header");
                    let again = codec.encode(&text).unwrap();
                    prop_assert_eq!(codec.decode::<String>(&again.bytes).unwrap(), text);
                }
                Err(err) => prop_assert!(!err.to_string().is_empty()),
            }
        }

        #[test]
        fn every_header_byte_parses_or_is_a_typed_error(byte in any::<u8>()) {
            match Header::parse(byte) {
                Ok(header) => prop_assert_eq!(header.to_byte(), byte),
                Err(CodecError::UnsupportedVersion { version, .. }) => prop_assert_ne!(version, HEADER_VERSION),
                Err(CodecError::UnknownFormat { code }) => prop_assert!(code > 1),
                Err(CodecError::UnknownCompression { code }) => prop_assert!(code > 2),
                Err(other) => prop_assert!(false, "unexpected {other}"),
            }
        }
    }

    #[test]
    fn header_bytes_are_stable() {
        // These bytes are on disk in Redis: changing them breaks every stored value.
        let h = |format, compression| {
            Header {
                format,
                compression,
            }
            .to_byte()
        };
        assert_eq!(h(Format::MessagePack, Compression::None), 0x20);
        assert_eq!(h(Format::MessagePack, Compression::Zstd), 0x21);
        assert_eq!(h(Format::MessagePack, Compression::Gzip), 0x22);
        assert_eq!(h(Format::Json, Compression::None), 0x28);
        assert_eq!(h(Format::Json, Compression::Zstd), 0x29);
        assert_eq!(h(Format::Json, Compression::Gzip), 0x2a);
    }

    #[test]
    fn small_values_are_stored_plain_and_large_ones_compressed() {
        let codec = Codec::default();
        let small = codec.encode(&"a".repeat(100)).unwrap();
        assert_eq!(small.bytes[0], 0x20);
        assert!(!small.is_compressed());
        let large = codec.encode(&"a".repeat(5000)).unwrap();
        assert_eq!(large.bytes[0], 0x21);
        assert!(large.is_compressed());
        assert!(large.bytes.len() < 100, "{}", large.bytes.len());
        assert_eq!(
            large.plain_len, 5003,
            "msgpack str16 marker and length + 5000 bytes"
        );
        let gzip = Codec::new(Format::Json, Compression::Gzip, 1024);
        assert_eq!(gzip.encode(&"a".repeat(5000)).unwrap().bytes[0], 0x2a);
    }

    #[test]
    fn incompressible_large_values_are_stored_plain() {
        // xorshift64: bytes no compressor can shrink.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        let encoded = Codec::default().seal(noise.clone());
        assert!(!encoded.is_compressed());
        assert_eq!(&encoded.bytes[1..], &noise[..]);
    }

    #[test]
    fn values_are_read_by_their_header_not_by_the_configured_format() {
        let json = Codec::new(Format::Json, Compression::Gzip, 0);
        let stored = json.encode(&vec!["x".to_string(); 10]).unwrap();
        let back: Vec<String> = Codec::default().decode(&stored.bytes).unwrap();
        assert_eq!(back, vec!["x".to_string(); 10]);
    }

    #[test]
    fn older_unknown_and_corrupt_values_are_typed_errors() {
        let codec = Codec::default();
        assert!(matches!(
            codec.decode::<String>(&[]),
            Err(CodecError::Empty)
        ));
        // Version 0: what a headerless value (or an older writer) looks like.
        assert!(matches!(
            codec.decode::<String>(&[0x01, b'x']),
            Err(CodecError::UnsupportedVersion { version: 0, .. })
        ));
        // A future version.
        assert!(matches!(
            codec.decode::<String>(&[0x41, b'x']),
            Err(CodecError::UnsupportedVersion { version: 2, .. })
        ));
        // A plain counter stored by INCRBY ("42") and a raw JSON document.
        assert!(matches!(
            codec.decode::<u64>(b"42"),
            Err(CodecError::UnknownFormat { code: 2 })
        ));
        assert!(matches!(
            codec.decode::<String>(b"{\"a\":1}"),
            Err(CodecError::UnsupportedVersion { version: 3, .. })
        ));
        assert!(matches!(
            codec.decode::<String>(&[0x27]),
            Err(CodecError::UnknownCompression { code: 7 })
        ));
        // A zstd header over bytes that are not zstd.
        assert!(matches!(
            codec.decode::<String>(&[0x21, 1, 2, 3, 4, 5, 6, 7, 8]),
            Err(CodecError::Decompress {
                compression: "zstd",
                ..
            })
        ));
        // A truncated compressed value.
        let mut stored = codec.encode(&"abc".repeat(1000)).unwrap().bytes;
        stored.truncate(stored.len() / 2);
        assert!(matches!(
            codec.decode::<String>(&stored),
            Err(CodecError::Decompress { .. })
        ));
        // A well-formed value of another type.
        let stored = codec.encode(&vec![1u32, 2, 3]).unwrap().bytes;
        assert!(matches!(
            codec.decode::<String>(&stored),
            Err(CodecError::Deserialize {
                format: "msgpack",
                ..
            })
        ));
    }

    #[test]
    fn decompression_bombs_are_refused() {
        for compression in [Compression::Zstd, Compression::Gzip] {
            let bomb = compress(compression, &vec![0u8; 1 << 20]).unwrap();
            assert!(bomb.len() < 1 << 12);
            assert!(matches!(
                decompress(compression, &bomb, (1 << 20) - 1),
                Err(CodecError::TooLarge { limit }) if limit == (1 << 20) - 1
            ));
            assert_eq!(
                decompress(compression, &bomb, 1 << 20).unwrap().len(),
                1 << 20
            );
        }
    }
}
