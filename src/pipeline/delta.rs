//! Delta compression against an earlier version of an asset (RFC 9842, Compression
//! Dictionary Transport).
//!
//! A browser that holds `app.v1.js` and announces it (`Available-Dictionary: :<sha-256>:`)
//! can receive `app.v2.js` compressed *with v1 as the dictionary*. Two content codings:
//!
//! - `dcz`: a zstd frame compressed with the dictionary as raw content (a "prefix"),
//!   after a 40-byte header: the skippable-frame magic `5e 2a 4d 18 20 00 00 00` and the
//!   dictionary's SHA-256. The window may be at most max(8 MiB, 1.25 × the dictionary).
//! - `dcb`: a brotli stream compressed with the dictionary as a raw (prefix) dictionary,
//!   after a 36-byte header: `ff 44 43 42` and the dictionary's SHA-256. The window is at
//!   most 16 MiB (the largest standard brotli window).
//!
//! Both are deterministic: the same inputs and levels give the same bytes.

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use super::compress::Levels;

/// The dictionary-compressed content codings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeltaEncoding {
    /// Dictionary-compressed brotli.
    Dcb,
    /// Dictionary-compressed zstd.
    Dcz,
}

impl DeltaEncoding {
    /// Both codings, in the order they are listed.
    pub const ALL: [Self; 2] = [Self::Dcb, Self::Dcz];

    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Self::Dcb => "dcb",
            Self::Dcz => "dcz",
        }
    }

    /// The magic bytes that precede the dictionary hash.
    pub fn magic(self) -> &'static [u8] {
        match self {
            Self::Dcb => &DCB_MAGIC,
            Self::Dcz => &DCZ_MAGIC,
        }
    }

    /// The length of the header (magic + SHA-256) before the compressed stream.
    pub fn header_len(self) -> usize {
        self.magic().len() + 32
    }
}

impl std::fmt::Display for DeltaEncoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.token())
    }
}

impl std::str::FromStr for DeltaEncoding {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "dcb" => Ok(Self::Dcb),
            "dcz" => Ok(Self::Dcz),
            other => Err(format!("`{other}` is not a delta encoding (dcb, dcz)")),
        }
    }
}

/// `dcb` magic: `0xff` then "DCB".
pub const DCB_MAGIC: [u8; 4] = [0xff, 0x44, 0x43, 0x42];

/// `dcz` magic: a zstd skippable frame (0x184D2A5E, little endian) of 32 bytes.
pub const DCZ_MAGIC: [u8; 8] = [0x5e, 0x2a, 0x4d, 0x18, 0x20, 0x00, 0x00, 0x00];

/// The largest window a `dcb` stream may use: 2^24 bytes (16 MiB).
const DCB_MAX_WINDOW_LOG: u32 = 24;

/// A SHA-256 digest: how RFC 9842 names a dictionary.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Sha256(pub [u8; 32]);

impl Sha256 {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        use sha2::Digest;
        Self(sha2::Sha256::digest(bytes).into())
    }

    /// Lower-case hex (64 characters): how it appears in object keys and manifests.
    pub fn hex(&self) -> String {
        use std::fmt::Write as _;
        self.0.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    /// Parses 64 hex characters.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(Self(out))
    }

    /// Standard base64 with padding: the structured-field byte sequence of
    /// `Available-Dictionary` without its colons.
    pub fn base64(&self) -> String {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD.encode(self.0)
    }
}

impl std::fmt::Debug for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sha256({})", self.hex())
    }
}

impl std::fmt::Display for Sha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.hex())
    }
}

impl Serialize for Sha256 {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.hex())
    }
}

impl<'de> Deserialize<'de> for Sha256 {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let hex = String::deserialize(deserializer)?;
        Self::from_hex(&hex)
            .ok_or_else(|| serde::de::Error::custom("expected 64 hex characters (SHA-256)"))
    }
}

/// Why a delta body does not decode.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeltaError {
    /// The body does not start with the coding's header.
    #[error("not a {0} body: the header is missing")]
    Header(DeltaEncoding),
    /// The body was compressed against another dictionary.
    #[error("the {0} body names another dictionary")]
    WrongDictionary(DeltaEncoding),
    /// The compressed stream is damaged.
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// The window log a `dcz` stream uses for `dictionary_len` + `input_len` bytes: large
/// enough to reach the whole dictionary from the end of the input when the RFC allows it,
/// never more than max(8 MiB, 1.25 × the dictionary).
pub fn dcz_window_log(dictionary_len: usize, input_len: usize) -> u32 {
    let allowed = (8u64 << 20).max(dictionary_len as u64 * 5 / 4);
    let wanted = (dictionary_len as u64 + input_len as u64).max(1 << 10);
    let mut log = 10;
    while log < 30 && (1u64 << log) < wanted && (1u64 << (log + 1)) <= allowed {
        log += 1;
    }
    log
}

/// The brotli window for a `dcb` stream of `dictionary_len` + `input_len` bytes.
fn dcb_window_log(dictionary_len: usize, input_len: usize) -> u32 {
    let wanted = dictionary_len as u64 + input_len as u64 + 16;
    let mut log = 10;
    while log < DCB_MAX_WINDOW_LOG && (1u64 << log) < wanted {
        log += 1;
    }
    log
}

/// Compresses `input` against `dictionary` with `encoding`, header included.
pub fn encode(
    encoding: DeltaEncoding,
    levels: Levels,
    dictionary: &[u8],
    input: &[u8],
) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() / 4 + 64);
    out.extend_from_slice(encoding.magic());
    out.extend_from_slice(&Sha256::of(dictionary).0);
    match encoding {
        DeltaEncoding::Dcz => {
            let mut encoder =
                zstd::stream::Encoder::with_ref_prefix(&mut out, levels.zstd, dictionary)?;
            encoder.window_log(dcz_window_log(dictionary.len(), input.len()))?;
            encoder.long_distance_matching(true)?;
            encoder.set_pledged_src_size(Some(input.len() as u64))?;
            encoder.include_contentsize(true)?;
            encoder.include_checksum(false)?;
            encoder.include_dictid(false)?;
            encoder.write_all(input)?;
            encoder.finish()?;
        }
        DeltaEncoding::Dcb => {
            let params = brotli::enc::BrotliEncoderParams {
                quality: levels.brotli as i32,
                lgwin: dcb_window_log(dictionary.len(), input.len()) as i32,
                size_hint: input.len(),
                ..Default::default()
            };
            let mut reader = input;
            let (mut inbuf, mut outbuf) = (vec![0u8; 64 * 1024], vec![0u8; 64 * 1024]);
            brotli::enc::BrotliCompressCustomIoCustomDict(
                &mut brotli::IoReaderWrapper(&mut reader),
                &mut brotli::IoWriterWrapper(&mut out),
                &mut inbuf,
                &mut outbuf,
                &params,
                brotli::enc::StandardAlloc::default(),
                &mut |_, _, _, _| (),
                dictionary,
                io::Error::new(io::ErrorKind::UnexpectedEof, "unexpected end of input"),
            )?;
        }
    }
    Ok(out)
}

/// Decodes a delta body made by [`encode`] (or any RFC 9842 encoder) with `dictionary`;
/// checks the header names that dictionary.
pub fn decode(
    encoding: DeltaEncoding,
    dictionary: &[u8],
    body: &[u8],
) -> Result<Vec<u8>, DeltaError> {
    let magic = encoding.magic();
    let Some(rest) = body.strip_prefix(magic) else {
        return Err(DeltaError::Header(encoding));
    };
    let Some((hash, stream)) = rest.split_first_chunk::<32>() else {
        return Err(DeltaError::Header(encoding));
    };
    if *hash != Sha256::of(dictionary).0 {
        return Err(DeltaError::WrongDictionary(encoding));
    }
    let mut out = Vec::new();
    match encoding {
        DeltaEncoding::Dcz => {
            let mut decoder = zstd::stream::Decoder::with_ref_prefix(stream, dictionary)?;
            decoder.window_log_max(31)?;
            decoder.read_to_end(&mut out)?;
        }
        DeltaEncoding::Dcb => {
            let dict: Vec<u8> = dictionary.to_vec();
            let mut decoder =
                brotli::Decompressor::new_with_custom_dict(stream, 64 * 1024, dict.into());
            decoder.read_to_end(&mut out)?;
        }
    }
    Ok(out)
}

/// The `Use-As-Dictionary` value (RFC 9842) for a match pattern: `match="<pattern>"` as
/// a structured-field dictionary (`"` and `\` escaped). `None` when the pattern is not
/// printable ASCII, which a structured-field string cannot hold.
pub fn use_as_dictionary(pattern: &str) -> Option<String> {
    let mut value = String::with_capacity(pattern.len() + 9);
    value.push_str("match=\"");
    for c in pattern.chars() {
        if !(' '..='~').contains(&c) {
            return None;
        }
        if c == '"' || c == '\\' {
            value.push('\\');
        }
        value.push(c);
    }
    value.push('"');
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEVELS: Levels = Levels {
        gzip: 9,
        brotli: 11,
        zstd: 19,
    };

    /// Two versions of a bundle: v2 changes a few functions of v1.
    fn versions() -> (Vec<u8>, Vec<u8>) {
        let mut v1 = String::new();
        let mut v2 = String::new();
        for i in 0..400 {
            let line = format!(
                "export function handler{i}(event){{const v=event.detail*{i};return render('item-{i}',v,{{id:{i},label:\"Item {i}\"}});}}\n"
            );
            v1.push_str(&line);
            if i % 97 == 0 {
                v2.push_str(&format!(
                    "export function handler{i}(e){{return render2({i},e);}}\n"
                ));
            } else {
                v2.push_str(&line);
            }
        }
        v2.push_str("export const RELEASE='v2';\n");
        (v1.into_bytes(), v2.into_bytes())
    }

    #[test]
    fn every_delta_decodes_with_its_dictionary_to_the_identity_bytes() {
        let (v1, v2) = versions();
        for encoding in DeltaEncoding::ALL {
            let delta = encode(encoding, LEVELS, &v1, &v2).unwrap();
            assert_eq!(&delta[..encoding.magic().len()], encoding.magic());
            assert_eq!(
                &delta[encoding.magic().len()..encoding.header_len()],
                &Sha256::of(&v1).0,
                "{encoding}: the header names the dictionary"
            );
            assert_eq!(decode(encoding, &v1, &delta).unwrap(), v2, "{encoding}");
            assert_eq!(
                encode(encoding, LEVELS, &v1, &v2).unwrap(),
                delta,
                "{encoding} is deterministic"
            );
            // Against brotli-11 of v2 alone, the delta is a small fraction.
            let mut br = Vec::new();
            super::super::compress::encode(
                super::super::compress::Encoding::Br,
                LEVELS,
                v2.len() as u64,
                &mut &v2[..],
                &mut br,
            )
            .unwrap();
            assert!(
                delta.len() * 4 < br.len(),
                "{encoding}: {} bytes vs br {}",
                delta.len(),
                br.len()
            );
        }
    }

    #[test]
    fn empty_inputs_and_dictionaries_round_trip() {
        for encoding in DeltaEncoding::ALL {
            for (dict, input) in [(&b""[..], &b"abc"[..]), (b"abc", b""), (b"", b"")] {
                let delta = encode(encoding, LEVELS, dict, input).unwrap();
                assert_eq!(decode(encoding, dict, &delta).unwrap(), input);
            }
        }
    }

    #[test]
    fn a_wrong_dictionary_or_a_damaged_body_is_an_error() {
        let (v1, v2) = versions();
        for encoding in DeltaEncoding::ALL {
            let delta = encode(encoding, LEVELS, &v1, &v2).unwrap();
            assert!(matches!(
                decode(encoding, &v2, &delta),
                Err(DeltaError::WrongDictionary(_))
            ));
            assert!(matches!(
                decode(encoding, &v1, &delta[..10]),
                Err(DeltaError::Header(_))
            ));
            let other = match encoding {
                DeltaEncoding::Dcb => DeltaEncoding::Dcz,
                DeltaEncoding::Dcz => DeltaEncoding::Dcb,
            };
            assert!(matches!(
                decode(other, &v1, &delta),
                Err(DeltaError::Header(_))
            ));
            let mut cut = delta.clone();
            cut.truncate(delta.len() - 5);
            assert!(decode(encoding, &v1, &cut).map_or(true, |out| out != v2));
        }
    }

    #[test]
    fn windows_stay_within_what_the_rfc_allows() {
        assert_eq!(dcz_window_log(0, 0), 10);
        assert_eq!(dcz_window_log(100_000, 100_000), 18);
        // 8 MiB is always allowed; beyond it only 1.25 × the dictionary.
        assert_eq!(dcz_window_log(4 << 20, 8 << 20), 23);
        assert_eq!(dcz_window_log(32 << 20, 32 << 20), 25);
        assert!((1u64 << dcz_window_log(32 << 20, 32 << 20)) <= (32u64 << 20) * 5 / 4);
        assert_eq!(dcb_window_log(10, 10), 10);
        assert_eq!(dcb_window_log(100 << 20, 1), 24);
    }

    #[test]
    fn sha256_hex_and_base64_forms() {
        let hash = Sha256::of(b"abc");
        assert_eq!(
            hash.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            hash.base64(),
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
        );
        assert_eq!(Sha256::from_hex(&hash.hex()), Some(hash));
        assert_eq!(Sha256::from_hex("zz"), None);
        let json = serde_json::to_string(&hash).unwrap();
        assert_eq!(serde_json::from_str::<Sha256>(&json).unwrap(), hash);
    }
}
