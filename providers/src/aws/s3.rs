//! How objects map onto S3: metadata, extra headers, multipart part plans and bodies.
//!
//! S3 stores a fixed set of response headers per object (`Content-Type`,
//! `Content-Encoding`, `Cache-Control`, `Content-Disposition`, `Content-Language`, …) plus
//! user metadata (`x-amz-meta-*`, keys lowercased, about 2 KB in all). So:
//!
//! - content type, encoding and cache control use S3's own fields (served as real headers);
//! - user metadata keys must be lowercase (`edgeship-hash`), so what `head` returns is
//!   exactly what `put` stored; other keys are refused instead of silently changed;
//! - extra headers are kept verbatim (names in their case) as JSON in one metadata entry,
//!   [`HEADERS_META`], so `head` returns them exactly; `Content-Disposition` and
//!   `Content-Language` also go to S3's fields, so they are served. S3 cannot serve other
//!   headers per object: put them on the CloudFront distribution (a response headers
//!   policy).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_s3::primitives::{ByteStream, Length};

use crate::error::Rejected;
use crate::object::{Body, ObjectMeta, PutRequest, check_header_value};

/// The user-metadata entry holding an object's extra headers as JSON.
pub(crate) const HEADERS_META: &str = "edgeship-headers";

/// What a put sends besides the body.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Stored {
    /// `x-amz-meta-*`.
    pub(crate) metadata: HashMap<String, String>,
    /// `Content-Disposition`.
    pub(crate) content_disposition: Option<String>,
    /// `Content-Language`.
    pub(crate) content_language: Option<String>,
}

/// The metadata and native headers for a put, or why S3 cannot store it as given.
pub(crate) fn stored(request: &PutRequest) -> Result<Stored, Rejected> {
    let mut out = Stored::default();
    for (key, value) in &request.metadata {
        if key.is_empty()
            || !key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        {
            return Err(Rejected::new(format!(
                "metadata key `{}`: S3 keeps only lowercase letters, digits, `-` and `_` as given",
                key.escape_debug()
            )));
        }
        if key == HEADERS_META {
            return Err(Rejected::new(format!(
                "metadata key `{HEADERS_META}` is reserved"
            )));
        }
        check_header_value(key, value)?;
        out.metadata.insert(key.clone(), value.clone());
    }
    if !request.headers.is_empty() {
        request.check_headers()?;
        for (name, value) in &request.headers {
            // Extra headers S3 also stores in a field of its own, and so serves.
            match name.to_ascii_lowercase().as_str() {
                "content-disposition" => out.content_disposition = Some(value.clone()),
                "content-language" => out.content_language = Some(value.clone()),
                _ => {}
            }
        }
        let json =
            serde_json::to_string(&request.headers).map_err(|e| Rejected::new(e.to_string()))?;
        out.metadata.insert(HEADERS_META.to_string(), json);
    }
    Ok(out)
}

/// What S3 says about an object, as [`ObjectMeta`] (the inverse of [`stored`]).
pub(crate) fn object_meta(
    key: &str,
    size: Option<i64>,
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    cache_control: Option<&str>,
    metadata: Option<&HashMap<String, String>>,
) -> ObjectMeta {
    let mut meta = ObjectMeta {
        key: key.to_string(),
        size: size.and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
        content_type: content_type.map(str::to_owned),
        content_encoding: content_encoding.map(str::to_owned),
        cache_control: cache_control.map(str::to_owned),
        ..ObjectMeta::default()
    };
    for (k, v) in metadata.into_iter().flatten() {
        let k = k.to_ascii_lowercase();
        if k == HEADERS_META {
            meta.headers = serde_json::from_str::<BTreeMap<String, String>>(v).unwrap_or_default();
        } else {
            meta.metadata.insert(k, v.clone());
        }
    }
    meta
}

/// The parts of a multipart upload of `size` bytes: `(offset, length)` each, at least
/// `part_size` long except the last, never more than [`super::MAX_PARTS`].
pub(crate) fn part_plan(size: u64, part_size: u64) -> Vec<(u64, u64)> {
    let part = part_size.max(size.div_ceil(super::MAX_PARTS)).max(1);
    let mut parts = Vec::with_capacity(size.div_ceil(part) as usize);
    let mut offset = 0;
    while offset < size {
        let len = part.min(size - offset);
        parts.push((offset, len));
        offset += len;
    }
    parts
}

/// File ranges up to this size are read into memory in one go instead of streamed: a
/// streamed body costs a thread hand-off per read, a chunked upload encoding and a
/// trailing checksum, which for the typical small web asset is most of the CPU of its PUT.
/// At most one such body per transfer is in memory: 16 MiB at 64 transfers.
pub(crate) const IN_MEMORY_BODY_MAX: u64 = 256 * 1024;

/// `len` bytes of `body` from `offset`: small file ranges read into memory, larger ones
/// streamed from disk.
pub(crate) async fn body_range(
    body: &Body,
    offset: u64,
    len: u64,
) -> Result<ByteStream, std::io::Error> {
    match body {
        Body::Bytes(bytes) => {
            let start = usize::try_from(offset).map_err(std::io::Error::other)?;
            let end = usize::try_from(offset + len).map_err(std::io::Error::other)?;
            match bytes.get(start..end) {
                Some(_) => Ok(ByteStream::from(bytes.slice(start..end))),
                None => Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "range past the end of the body",
                )),
            }
        }
        Body::File { path, size } => {
            if offset + len > *size {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "range past the end of the body",
                ));
            }
            if len <= IN_MEMORY_BODY_MAX {
                let path = path.clone();
                let bytes = tokio::task::spawn_blocking(move || read_range(&path, offset, len))
                    .await
                    .map_err(std::io::Error::other)??;
                return Ok(ByteStream::from(bytes));
            }
            ByteStream::read_from()
                .path(path)
                .offset(offset)
                .length(Length::Exact(len))
                .build()
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))
        }
    }
}

/// Exactly `len` bytes of the file at `path` from `offset`; a file that got shorter is an
/// error, never a short upload.
fn read_range(path: &std::path::Path, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut file = std::fs::File::open(path)?;
    if offset > 0 {
        file.seek(SeekFrom::Start(offset))?;
    }
    let mut bytes = vec![0; usize::try_from(len).map_err(std::io::Error::other)?];
    file.read_exact(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::object::{META_ENCODING, META_HASH};

    fn request() -> PutRequest {
        PutRequest {
            headers: BTreeMap::from([
                ("X-Robots-Tag".into(), "noindex".into()),
                ("Content-Disposition".into(), "attachment".into()),
            ]),
            metadata: BTreeMap::from([
                (META_HASH.into(), "ab".repeat(32)),
                (META_ENCODING.into(), "br".into()),
            ]),
            ..PutRequest::bytes("a.js", "x")
        }
    }

    #[test]
    fn headers_and_metadata_round_trip_exactly() {
        let put = request();
        let stored = stored(&put).unwrap();
        assert_eq!(stored.content_disposition.as_deref(), Some("attachment"));
        // S3 answers with lowercased metadata keys.
        let answered: HashMap<String, String> = stored
            .metadata
            .iter()
            .map(|(k, v)| (k.to_ascii_uppercase(), v.clone()))
            .collect();
        let meta = object_meta("a.js", Some(1), None, None, None, Some(&answered));
        assert_eq!(meta.headers, put.headers);
        assert_eq!(meta.metadata, put.metadata);
    }

    #[test]
    fn what_s3_would_change_is_refused() {
        let mut upper = request();
        upper.metadata.insert("Edgeship-Hash".into(), "x".into());
        assert!(stored(&upper).unwrap_err().reason().contains("lowercase"));
        let mut field = request();
        field.headers.insert("Cache-Control".into(), "x".into());
        assert!(
            stored(&field)
                .unwrap_err()
                .reason()
                .contains("cache-control field")
        );
        let mut utf8 = request();
        utf8.metadata.insert("name".into(), "café".into());
        assert!(
            stored(&utf8)
                .unwrap_err()
                .reason()
                .contains("printable ASCII")
        );
        let mut reserved = request();
        reserved.metadata.insert(HEADERS_META.into(), "{}".into());
        assert!(stored(&reserved).unwrap_err().reason().contains("reserved"));
    }

    #[test]
    fn parts_cover_the_body_and_stay_under_ten_thousand() {
        let mib = 1024 * 1024;
        assert_eq!(
            part_plan(21 * mib, 8 * mib),
            vec![(0, 8 * mib), (8 * mib, 8 * mib), (16 * mib, 5 * mib)]
        );
        assert_eq!(part_plan(8 * mib, 8 * mib), vec![(0, 8 * mib)]);
        let huge = 200 * 1024 * mib;
        let parts = part_plan(huge, 8 * mib);
        assert!(parts.len() <= 10_000, "{}", parts.len());
        assert_eq!(parts.iter().map(|(_, len)| len).sum::<u64>(), huge);
    }

    #[tokio::test]
    async fn file_ranges_small_and_streamed_carry_exactly_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("body");
        let big = IN_MEMORY_BODY_MAX as usize + 10;
        let content: Vec<u8> = (0..big).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let body = Body::File {
            path: path.clone(),
            size: big as u64,
        };
        for (offset, len) in [(0, 100), (7, 1000), (0, big as u64), (5, big as u64 - 5)] {
            let stream = body_range(&body, offset, len).await.unwrap();
            let got = stream.collect().await.unwrap().into_bytes();
            let want = &content[offset as usize..(offset + len) as usize];
            assert_eq!(&got[..], want, "range {offset}+{len}");
        }
        // A file that shrank after planning is an error, never a short upload.
        std::fs::write(&path, &content[..50]).unwrap();
        assert!(body_range(&body, 0, 100).await.is_err());
    }
}
