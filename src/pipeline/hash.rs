//! Content hashes: blake3 of the bytes, shown as lowercase hex.
//!
//! The hash of an asset's final identity bytes is its diff key and its strong ETag.

use std::io::{self, Read};

use serde::{Deserialize, Serialize};

/// A blake3 content hash in lowercase hex (64 characters).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ContentHash(String);

impl ContentHash {
    /// Hashes a byte slice.
    pub fn of(bytes: &[u8]) -> Self {
        Self(blake3::hash(bytes).to_hex().to_string())
    }

    /// Hashes everything a reader yields, streaming, and returns the hash and byte count.
    pub fn of_reader(reader: &mut dyn Read) -> io::Result<(Self, u64)> {
        let mut hasher = blake3::Hasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            total += n as u64;
        }
        Ok((Self(hasher.finalize().to_hex().to_string()), total))
    }

    /// The hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ContentHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_and_slice_hashes_agree() {
        let data = vec![7u8; 600_000];
        let (streamed, len) = ContentHash::of_reader(&mut &data[..]).unwrap();
        assert_eq!(streamed, ContentHash::of(&data));
        assert_eq!(len, 600_000);
        assert_eq!(ContentHash::of(b"").as_str().len(), 64);
    }
}
