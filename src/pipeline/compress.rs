//! Precompression into variants: gzip, brotli and zstd, all deterministic.
//!
//! Encoders stream from any reader into any writer, so large files never sit in memory.
//! A variant is kept only when it is meaningfully smaller than the identity bytes
//! ([`keep_variant`]).

use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

/// An encoded form of an asset (HTTP `Content-Encoding` token).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Brotli (`br`).
    Br,
    /// gzip.
    Gzip,
    /// Zstandard (`zstd`).
    Zstd,
}

impl Encoding {
    /// All encodings, in the order variants are listed.
    pub const ALL: [Self; 3] = [Self::Br, Self::Gzip, Self::Zstd];

    /// The `Content-Encoding` token.
    pub fn token(self) -> &'static str {
        match self {
            Self::Br => "br",
            Self::Gzip => "gzip",
            Self::Zstd => "zstd",
        }
    }

    /// The file suffix of a sibling variant (`app.js.br`), as nginx `*_static` expects.
    pub fn suffix(self) -> &'static str {
        match self {
            Self::Br => ".br",
            Self::Gzip => ".gz",
            Self::Zstd => ".zst",
        }
    }
}

impl std::fmt::Display for Encoding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.token())
    }
}

/// Compression levels for each encoder.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Levels {
    /// gzip level 1–9.
    pub gzip: u32,
    /// brotli quality 0–11.
    pub brotli: u32,
    /// zstd level 1–22.
    pub zstd: i32,
}

/// Compresses everything `input` yields into `output` with `encoding`.
/// `size_hint` (the input length, when known) sizes brotli's window: a window larger
/// than the file gains nothing and costs memory.
pub fn encode(
    encoding: Encoding,
    levels: Levels,
    size_hint: u64,
    input: &mut dyn Read,
    output: &mut dyn Write,
) -> io::Result<()> {
    match encoding {
        Encoding::Gzip => {
            // mtime 0 and no file name keep the output byte-identical across runs.
            let mut encoder = flate2::GzBuilder::new()
                .mtime(0)
                .write(output, flate2::Compression::new(levels.gzip));
            io::copy(input, &mut encoder)?;
            encoder.finish()?;
        }
        Encoding::Br => {
            let mut encoder = brotli::CompressorWriter::new(
                output,
                64 * 1024,
                levels.brotli,
                brotli_window(size_hint),
            );
            io::copy(input, &mut encoder)?;
            encoder.flush()?;
            drop(encoder);
        }
        Encoding::Zstd => {
            let mut encoder = zstd::stream::Encoder::new(output, levels.zstd)?;
            // Recording the size lets decoders allocate once; one thread keeps it deterministic.
            encoder.set_pledged_src_size(Some(size_hint))?;
            encoder.include_contentsize(true)?;
            encoder.include_checksum(false)?;
            io::copy(input, &mut encoder)?;
            encoder.finish()?;
        }
    }
    Ok(())
}

/// Decompresses a variant; used by tests and by the origin for clients that accept
/// no encoding when only a variant is stored.
pub fn decode(encoding: Encoding, input: &mut dyn Read, output: &mut dyn Write) -> io::Result<u64> {
    match encoding {
        Encoding::Gzip => io::copy(&mut flate2::read::GzDecoder::new(input), output),
        Encoding::Br => io::copy(&mut brotli::Decompressor::new(input, 64 * 1024), output),
        Encoding::Zstd => io::copy(&mut zstd::stream::Decoder::new(input)?, output),
    }
}

/// The smallest standard brotli window (10..=24 bits) that covers `size` bytes.
/// 24 is the largest window every browser decodes (the "large window" extension is not
/// supported by browsers), so big files get the biggest compatible window.
fn brotli_window(size: u64) -> u32 {
    let mut lgwin = 10;
    // A window of 2^w bytes can reference back (2^w - 16) bytes.
    while lgwin < 24 && (1u64 << lgwin) - 16 < size {
        lgwin += 1;
    }
    lgwin
}

/// Whether a variant of `variant_size` bytes is worth keeping next to an identity of
/// `identity_size` bytes: it must save at least `min_percent` % and `min_bytes` bytes.
pub fn keep_variant(
    identity_size: u64,
    variant_size: u64,
    min_percent: f64,
    min_bytes: u64,
) -> bool {
    let Some(saved) = identity_size.checked_sub(variant_size) else {
        return false;
    };
    saved >= min_bytes && (saved as f64) >= identity_size as f64 * min_percent / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEVELS: Levels = Levels {
        gzip: 9,
        brotli: 11,
        zstd: 19,
    };

    fn round_trip(encoding: Encoding, data: &[u8]) -> Vec<u8> {
        let mut compressed = Vec::new();
        encode(
            encoding,
            LEVELS,
            data.len() as u64,
            &mut &data[..],
            &mut compressed,
        )
        .unwrap();
        let mut again = Vec::new();
        encode(
            encoding,
            LEVELS,
            data.len() as u64,
            &mut &data[..],
            &mut again,
        )
        .unwrap();
        assert_eq!(compressed, again, "{encoding} output is deterministic");
        let mut plain = Vec::new();
        decode(encoding, &mut &compressed[..], &mut plain).unwrap();
        plain
    }

    #[test]
    fn every_encoding_round_trips_and_is_deterministic() {
        let text = "body { color: red; } /* repeated */ ".repeat(500);
        for encoding in Encoding::ALL {
            assert_eq!(round_trip(encoding, text.as_bytes()), text.as_bytes());
            assert_eq!(round_trip(encoding, b""), b"");
        }
    }

    #[test]
    fn brotli_window_grows_with_size_up_to_24_bits() {
        assert_eq!(brotli_window(0), 10);
        assert_eq!(brotli_window(1000), 10);
        assert_eq!(brotli_window(5000), 13);
        assert_eq!(brotli_window(1 << 30), 24);
    }

    #[test]
    fn variants_are_kept_only_when_meaningfully_smaller() {
        assert!(keep_variant(10_000, 2_000, 5.0, 256));
        assert!(
            !keep_variant(10_000, 9_800, 5.0, 256),
            "2% saving is too little"
        );
        assert!(
            !keep_variant(1_000, 800, 5.0, 256),
            "200 bytes is too little"
        );
        assert!(
            !keep_variant(100, 120, 0.0, 0),
            "a larger variant is never kept"
        );
    }
}
