//! Classification: what kind of asset a file is, from its extension, or by sniffing its
//! first bytes when it has none. The kind decides minification and compression.

use serde::{Deserialize, Serialize};

/// What kind of asset a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetKind {
    /// JavaScript (`js`, `mjs`, `cjs`).
    Js,
    /// CSS.
    Css,
    /// HTML.
    Html,
    /// SVG images (text, compressible).
    Svg,
    /// JSON and its dialects (`json`, `map`, `webmanifest`).
    Json,
    /// Other text (`txt`, `xml`, `csv`, …).
    Text,
    /// Binary formats that compress well (`wasm`, `ttf`, `otf`, `eot`, `ico`, …).
    CompressibleBinary,
    /// Formats that are already compressed (`woff2`, `png`, `jpg`, `zip`, …): passed through.
    Compressed,
    /// Unknown binary: compression is attempted and kept only if it helps.
    Binary,
}

impl AssetKind {
    /// Whether variants are attempted for this kind.
    pub fn is_compressible(self) -> bool {
        self != Self::Compressed
    }
}

/// Extension table, lowercase. Policy as data: extend here, not with `if` chains.
const BY_EXTENSION: &[(&str, AssetKind)] = &[
    ("js", AssetKind::Js),
    ("mjs", AssetKind::Js),
    ("cjs", AssetKind::Js),
    ("css", AssetKind::Css),
    ("html", AssetKind::Html),
    ("htm", AssetKind::Html),
    ("svg", AssetKind::Svg),
    ("json", AssetKind::Json),
    ("map", AssetKind::Json),
    ("webmanifest", AssetKind::Json),
    ("txt", AssetKind::Text),
    ("xml", AssetKind::Text),
    ("csv", AssetKind::Text),
    ("md", AssetKind::Text),
    ("rss", AssetKind::Text),
    ("atom", AssetKind::Text),
    ("ics", AssetKind::Text),
    ("wasm", AssetKind::CompressibleBinary),
    ("ttf", AssetKind::CompressibleBinary),
    ("otf", AssetKind::CompressibleBinary),
    ("eot", AssetKind::CompressibleBinary),
    ("ico", AssetKind::CompressibleBinary),
    ("bmp", AssetKind::CompressibleBinary),
    ("woff", AssetKind::Compressed),
    ("woff2", AssetKind::Compressed),
    ("png", AssetKind::Compressed),
    ("jpg", AssetKind::Compressed),
    ("jpeg", AssetKind::Compressed),
    ("webp", AssetKind::Compressed),
    ("avif", AssetKind::Compressed),
    ("gif", AssetKind::Compressed),
    ("mp4", AssetKind::Compressed),
    ("webm", AssetKind::Compressed),
    ("mp3", AssetKind::Compressed),
    ("ogg", AssetKind::Compressed),
    ("zip", AssetKind::Compressed),
    ("gz", AssetKind::Compressed),
    ("br", AssetKind::Compressed),
    ("zst", AssetKind::Compressed),
    ("pdf", AssetKind::Compressed),
];

/// Classifies a file by its name, falling back to sniffing `head` (its first bytes)
/// when the extension is missing or unknown.
pub fn classify(file_name: &str, head: &[u8]) -> AssetKind {
    let extension = file_name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase());
    if let Some(ext) = extension
        && let Some((_, kind)) = BY_EXTENSION.iter().find(|(e, _)| *e == ext)
    {
        return *kind;
    }
    sniff(head)
}

/// Magic numbers of already-compressed formats.
const COMPRESSED_MAGIC: &[&[u8]] = &[
    b"\x89PNG",
    b"GIF8",
    b"\xFF\xD8\xFF",
    b"wOF2",
    b"wOFF",
    b"\x1F\x8B",
    b"PK\x03\x04",
    b"%PDF",
    b"\x28\xB5\x2F\xFD",
];

fn sniff(head: &[u8]) -> AssetKind {
    if COMPRESSED_MAGIC.iter().any(|magic| head.starts_with(magic))
        || (head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WEBP"))
    {
        return AssetKind::Compressed;
    }
    if head.starts_with(b"\0asm") {
        return AssetKind::CompressibleBinary;
    }
    // Text if the sample is UTF-8 (allowing a character cut at the end) without NULs.
    let text = match std::str::from_utf8(head) {
        Ok(text) => text,
        Err(err) if err.error_len().is_none() => {
            std::str::from_utf8(&head[..err.valid_up_to()]).unwrap_or_default()
        }
        Err(_) => return AssetKind::Binary,
    };
    if text.contains('\0') {
        return AssetKind::Binary;
    }
    let start = text
        .trim_start_matches('\u{feff}')
        .trim_start()
        .to_ascii_lowercase();
    if start.starts_with("<!doctype html") || start.starts_with("<html") {
        AssetKind::Html
    } else if start.starts_with("<svg") || (start.starts_with("<?xml") && start.contains("<svg")) {
        AssetKind::Svg
    } else {
        AssetKind::Text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_decide_when_known() {
        assert_eq!(classify("app.3f9c2a1b.js", b""), AssetKind::Js);
        assert_eq!(classify("A.MJS", b""), AssetKind::Js);
        assert_eq!(classify("site.webmanifest", b""), AssetKind::Json);
        assert_eq!(classify("font.woff2", b"anything"), AssetKind::Compressed);
        assert_eq!(classify("x.wasm", b""), AssetKind::CompressibleBinary);
    }

    #[test]
    fn files_without_extension_are_sniffed() {
        assert_eq!(classify("index", b"<!DOCTYPE html><html>"), AssetKind::Html);
        assert_eq!(classify("logo", b"<svg xmlns="), AssetKind::Svg);
        assert_eq!(classify("pic", b"\x89PNG\r\n"), AssetKind::Compressed);
        assert_eq!(classify("notes", b"hello world"), AssetKind::Text);
        assert_eq!(
            classify("blob", &[0xff, 0xfe, 0x00, 0x81]),
            AssetKind::Binary
        );
        assert_eq!(classify("unknown.xyz", b"plain"), AssetKind::Text);
    }
}
