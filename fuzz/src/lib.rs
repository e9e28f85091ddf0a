//! The checks behind edgeship's fuzz targets, one public function per target.
//!
//! Each takes the fuzzer's bytes, feeds them to one parser or decoder of untrusted input
//! the way edgeship does, and asserts what must hold for every input (a failed assertion
//! is a crash the fuzzer reports), not only that nothing panics. The fuzz targets in
//! `fuzz_targets/` call these functions; `tests/fuzz_corpus.rs` compiles this file too
//! and replays every committed corpus file and regression through [`check`], so the
//! normal test suite keeps them green without a fuzz build.
//!
//! Only crates edgeship itself depends on are used here, so the test can compile it.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

use actix_web::http::header::{self, EntityTag, HeaderValue};
use actix_web::test::TestRequest;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use edgeship::analytics::SavingsByType;
use edgeship::analytics::logs::parse::{self, CloudfrontColumns, LogFormat, LogRecord};
use edgeship::analytics::logs::{self, LogError, PathTotals};
use edgeship::api_keys::ApiKey;
use edgeship::archive::{self, Limits};
use edgeship::cache::codec::Header;
use edgeship::cache::{Codec, Compression, Format};
use edgeship::config::Config;
use edgeship::http::origin::conditional::{self, RangeAnswer, Validators};
use edgeship::http::origin::dictionary::parse_available_dictionary;
use edgeship::http::origin::negotiate::{AcceptedEncodings, Coding};
use edgeship::pipeline::compress::Encoding;
use edgeship::pipeline::hash::ContentHash;
use edgeship::pipeline::manifest::{Manifest, ManifestEntry};
use edgeship::purge::pattern::{Pattern, PatternError};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Every target, by the name of its corpus directory.
pub const TARGETS: [&str; 9] = [
    "pattern",
    "archive",
    "codec",
    "config",
    "accept_encoding",
    "range",
    "available_dictionary",
    "log_line",
    "log_file",
];

/// Runs the check of `target` on `data`; `false` when there is no such target.
pub fn check(target: &str, data: &[u8]) -> bool {
    match target {
        "pattern" => pattern(data),
        "archive" => archive(data),
        "codec" => codec(data),
        "config" => config(data),
        "accept_encoding" => accept_encoding(data),
        "range" => range(data),
        "available_dictionary" => available_dictionary(data),
        "log_line" => log_line(data),
        "log_file" => log_file(data),
        _ => return false,
    }
    true
}

/// The latest time an RFC 3339 date can name (9999-12-31T23:59:59-23:59), Unix seconds.
const LAST_RFC3339_SECOND: u64 = 253_402_300_799 + 86_399;

// --- pattern --------------------------------------------------------------------------

/// Purge patterns (`Pattern::parse`, input: the pattern as UTF-8).
///
/// Parsing never panics; a pattern parses to the kind its text says and matches what it
/// names; an error names the pattern and points at a character boundary inside it (or
/// just past its end), at the character its reason talks about.
pub fn pattern(data: &[u8]) {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    match Pattern::parse(input) {
        Ok(parsed) => check_parsed_pattern(input, &parsed),
        Err(err) => check_pattern_error(input, &err),
    }
}

fn check_parsed_pattern(input: &str, parsed: &Pattern) {
    match parsed {
        Pattern::Exact(path) => {
            assert_eq!(path, input);
            let key = if path == "/" {
                "index.html"
            } else {
                &path[1..]
            };
            assert!(parsed.matches(key, &[]), "{input:?} matches its own path");
        }
        Pattern::Prefix(prefix) => {
            assert_eq!(prefix, input);
            assert!(prefix.ends_with('/'));
            let under = format!("{}index.html", &prefix[1..]);
            assert!(parsed.matches(&under, &[]), "{input:?} matches {under:?}");
        }
        Pattern::Glob { source, .. } => {
            assert_eq!(source, input);
            assert!(input.starts_with('/'));
            for path in ["", "index.html", &input[1..]] {
                let _ = parsed.matches(path, &[]);
            }
        }
        Pattern::Tag(tag) => {
            assert_eq!(input.strip_prefix("tag:"), Some(tag.as_str()));
            assert!(parsed.matches("a.js", std::slice::from_ref(tag)));
            assert!(!parsed.matches("a.js", &[]));
        }
        Pattern::Everything => {
            assert!(input == "/*" || input == "/**");
            assert!(parsed.matches("any/path.js", &[]));
        }
    }
}

fn check_pattern_error(input: &str, err: &PatternError) {
    assert_eq!(err.pattern, input);
    let position = err.position;
    assert!(
        position <= input.len() && input.is_char_boundary(position),
        "{input:?}: position {position} is not a character boundary of the pattern ({err})"
    );
    let at = &input[position..];
    let first = at.chars().next();
    let reason = err.reason.as_str();
    // The character the reason talks about, where it names one.
    let expected: &[char] = if reason.starts_with("`[`")
        || reason.starts_with("invalid range")
        || reason.starts_with("unclosed character class")
    {
        &['[']
    } else if reason.starts_with("`]`") {
        &[']']
    } else if reason.starts_with("`{`") {
        &['{']
    } else if reason.starts_with("`}`") {
        &['}']
    } else if reason.contains("alternate") {
        &['{', '}']
    } else if reason.starts_with("dangling") {
        &['\\']
    } else if reason.starts_with("`**`") {
        &['*']
    } else {
        &[]
    };
    if !expected.is_empty() {
        assert!(
            first.is_some_and(|c| expected.contains(&c)),
            "{input:?}: `{reason}` points at byte {position} ({first:?}), not at {expected:?}"
        );
    }
    if reason.starts_with("control character") {
        assert!(first.is_some_and(char::is_control), "{input:?}: {err}");
    }
    if reason.starts_with("`.` and `..`") {
        assert!(at.starts_with('.') && input[..position].ends_with('/'));
    }
    assert!(
        err.to_string().len() < 512,
        "the message stays short whatever the pattern: {err}"
    );
}

// --- archive --------------------------------------------------------------------------

/// The limits the archive target extracts with: small, so bombs are cheap to find.
const ARCHIVE_LIMITS: Limits = Limits {
    max_files: 64,
    max_bytes: 4 << 20,
    max_ratio: 100,
};

/// Upload archives (`archive::extract`). Input: one byte saying how to wrap the rest
/// (`1` gzip, `2` zstd, else as is — the extractor still sniffs compression), then the
/// archive.
///
/// Nothing is written outside the extraction directory (the sandbox around it holds
/// only the upload and the directory, the upload is unchanged, and no path an entry
/// names outside the directory appears); the directory holds only regular files and
/// directories; a successful extraction wrote exactly the files and bytes it reports.
pub fn archive(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let upload_bytes = match mode {
        1 => gzip(body),
        2 => zstd::encode_all(body, 1).expect("zstd encodes in memory"),
        _ => body.to_vec(),
    };
    let sandbox = tempfile::tempdir().expect("a temporary directory");
    let upload = sandbox.path().join("upload");
    std::fs::write(&upload, &upload_bytes).expect("the upload is written");
    let target = sandbox.path().join("site");
    std::fs::create_dir(&target).expect("the target is created");
    let outside = destinations_outside(&upload_bytes, &target);

    let result = archive::extract(&upload, &target, &ARCHIVE_LIMITS);

    let mut names: Vec<String> = std::fs::read_dir(sandbox.path())
        .expect("the sandbox is listed")
        .map(|entry| {
            entry
                .expect("an entry")
                .file_name()
                .to_string_lossy()
                .into()
        })
        .collect();
    names.sort();
    assert_eq!(names, ["site", "upload"], "{result:?}");
    assert_eq!(std::fs::read(&upload).expect("the upload"), upload_bytes);
    for path in outside {
        assert!(
            std::fs::symlink_metadata(&path).is_err(),
            "{} was written outside the extraction directory ({result:?})",
            path.display()
        );
    }
    let (files, bytes) = regular_files_under(&target);
    if let Ok(extracted) = result {
        assert_eq!(
            (extracted.files, extracted.bytes),
            (files, bytes),
            "the report counts what is on disk"
        );
        assert!(extracted.files <= ARCHIVE_LIMITS.max_files);
        assert!(extracted.bytes <= ARCHIVE_LIMITS.max_bytes);
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip writes to memory");
    encoder.finish().expect("gzip finishes in memory")
}

/// Where the entries of `upload` that name a path outside `target` would land, read
/// independently of the extractor (only those that do not exist yet: they must not
/// exist afterwards either).
fn destinations_outside(upload: &[u8], target: &Path) -> Vec<PathBuf> {
    let reader: Box<dyn Read> = match upload {
        [0x1f, 0x8b, ..] => Box::new(flate2::read::GzDecoder::new(upload)),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => match zstd::stream::read::Decoder::new(upload) {
            Ok(decoder) => Box::new(decoder),
            Err(_) => return Vec::new(),
        },
        _ => Box::new(upload),
    };
    let mut tar = tar::Archive::new(reader.take(64 << 20));
    let Ok(entries) = tar.entries() else {
        return Vec::new();
    };
    let mut outside = Vec::new();
    for entry in entries.take(1000) {
        let Ok(entry) = entry else { break };
        let Ok(path) = entry.path() else { continue };
        let mut landing = target.to_path_buf();
        for component in path.components() {
            match component {
                Component::Normal(part) => landing.push(part),
                Component::ParentDir => {
                    landing.pop();
                }
                Component::RootDir | Component::Prefix(_) => landing = PathBuf::from("/"),
                Component::CurDir => {}
            }
        }
        if !landing.starts_with(target) && std::fs::symlink_metadata(&landing).is_err() {
            outside.push(landing);
        }
    }
    outside
}

/// The regular files under `dir` and their total size; anything else (a link, a device,
/// a FIFO) fails the check.
fn regular_files_under(dir: &Path) -> (u64, u64) {
    let (mut files, mut bytes) = (0, 0);
    for entry in std::fs::read_dir(dir).expect("the directory is listed") {
        let entry = entry.expect("an entry");
        let kind = entry.file_type().expect("a file type");
        if kind.is_dir() {
            let (f, b) = regular_files_under(&entry.path());
            files += f;
            bytes += b;
        } else {
            assert!(
                kind.is_file(),
                "{} is neither a file nor a directory",
                entry.path().display()
            );
            files += 1;
            bytes += entry.metadata().expect("metadata").len();
        }
    }
    (files, bytes)
}

// --- codec ----------------------------------------------------------------------------

/// Stored cache values (`Codec::decode`). Input: the stored bytes.
///
/// Decoded as each type edgeship stores in the cache layer: whatever decodes
/// has a header this build writes, decodes the same whatever the reading codec is
/// configured to write, and re-encodes with every format, compression and threshold
/// into bytes that decode back to an equal value.
pub fn codec(data: &[u8]) {
    round_trips::<String>(data);
    round_trips::<Vec<u8>>(data);
    round_trips::<u64>(data);
    round_trips::<SavingsByType>(data);
    round_trips::<Manifest>(data);
    round_trips::<BTreeMap<String, PathTotals>>(data);
    round_trips::<ApiKey>(data);
}

fn round_trips<T: Serialize + DeserializeOwned + PartialEq + Debug>(stored: &[u8]) {
    let Ok(value) = Codec::default().decode::<T>(stored) else {
        return;
    };
    assert!(
        Header::parse(stored[0]).is_ok(),
        "decoded without a valid header"
    );
    for format in [Format::MessagePack, Format::Json] {
        for compression in [Compression::None, Compression::Zstd, Compression::Gzip] {
            for threshold in [0, 1024] {
                let codec = Codec::new(format, compression, threshold);
                let again: T = codec
                    .decode(stored)
                    .expect("decoding does not depend on the codec's settings");
                assert_eq!(again, value);
                let encoded = codec
                    .encode(&value)
                    .unwrap_or_else(|err| panic!("{codec:?} cannot encode {value:?}: {err}"));
                let back: T = codec
                    .decode(&encoded.bytes)
                    .unwrap_or_else(|err| panic!("{codec:?} cannot decode {value:?}: {err}"));
                assert_eq!(back, value, "{codec:?}");
            }
        }
    }
}

// --- config ---------------------------------------------------------------------------

/// Config files (`Config::load` of a file, as `edgeship config check` loads it). Input:
/// the file's text.
///
/// A config that loads prints (secrets redacted) as TOML; written back out it loads
/// again to the same config; every site it names resolves, and a site without an
/// explicit `root` lives in its own directory under `<data_dir>/sites`.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("edgeship.toml");
    std::fs::write(&file, text).expect("the config is written");
    let Ok(config) = Config::load(Some(&file), &[]) else {
        return;
    };
    let printed = config
        .to_redacted_toml()
        .expect("`config check` prints every config that loads");
    printed
        .parse::<toml::Table>()
        .unwrap_or_else(|err| panic!("`config check` printed invalid TOML ({err}):\n{printed}"));

    let written = toml::to_string(&config).expect("a loaded config serialises");
    std::fs::write(&file, &written).expect("the config is rewritten");
    let again = Config::load(Some(&file), &[])
        .unwrap_or_else(|err| panic!("the written config does not load ({err}):\n{written}"));
    assert_eq!(
        again, config,
        "the written config loads the same:\n{written}"
    );

    let sites = config.data_dir.join("sites");
    for name in config.site_names() {
        let site = config
            .site(&name)
            .unwrap_or_else(|err| panic!("site {name:?} does not resolve: {err}"));
        if config.sites.get(&name).is_none_or(|s| s.root.is_none()) {
            assert_eq!(site.root.parent(), Some(sites.as_path()), "site {name:?}");
            assert!(
                matches!(
                    Path::new(&name).components().collect::<Vec<_>>()[..],
                    [Component::Normal(_)]
                ),
                "site {name:?} is one plain path component"
            );
        }
    }
    if let Some(origin) = config.origin_site() {
        config
            .site(&origin)
            .unwrap_or_else(|err| panic!("the origin site {origin:?} does not resolve: {err}"));
    }
}

// --- accept_encoding ------------------------------------------------------------------

/// `Accept-Encoding` negotiation (`AcceptedEncodings::of` on an actix request, then
/// `choose`). Input: one byte choosing the offered variants (bits 0–3: identity, br,
/// zstd, gzip; bit 4: all the same size), then the header value.
///
/// The choice is one of the offered variants; never a coding the header does not name
/// (by token or `*`); identity stays acceptable unless the header names it or `*`; and
/// removing variants that were not chosen does not change the choice.
pub fn accept_encoding(data: &[u8]) {
    let Some((&bits, value)) = data.split_first() else {
        return;
    };
    let Ok(value) = HeaderValue::from_bytes(value) else {
        return;
    };
    let sizes = [1000, 300, 340, 360];
    let offered: Vec<(Coding, u64)> = Coding::ALL
        .iter()
        .zip(sizes)
        .enumerate()
        .filter(|(i, _)| bits & (1 << i) != 0)
        .map(|(_, (&coding, size))| (coding, if bits & 16 != 0 { 500 } else { size }))
        .collect();
    let request = TestRequest::default()
        .insert_header((header::ACCEPT_ENCODING, value.clone()))
        .to_http_request();
    let accepted = AcceptedEncodings::of(&request);
    let chosen = accepted.choose(&offered);
    let named = String::from_utf8_lossy(value.as_bytes()).to_ascii_lowercase();
    if let Some(coding) = chosen {
        assert!(offered.iter().any(|(c, _)| *c == coding));
        if coding != Coding::Identity {
            assert!(
                named.contains(coding.token()) || named.contains('*'),
                "{coding} chosen for {named:?}"
            );
        }
    }
    let identity_offered = offered.iter().any(|(c, _)| *c == Coding::Identity);
    if identity_offered && !named.contains("identity") && !named.contains('*') {
        assert!(chosen.is_some(), "identity refused for {named:?}");
    }
    for subset in 0u8..16 {
        let fewer: Vec<(Coding, u64)> = offered
            .iter()
            .enumerate()
            .filter(|(i, _)| subset & (1 << i) != 0)
            .map(|(_, offer)| *offer)
            .collect();
        if chosen.is_none_or(|c| fewer.iter().any(|(f, _)| *f == c)) {
            let again = accepted.choose(&fewer);
            if chosen.is_some() {
                assert_eq!(again, chosen, "{named:?}: {offered:?} then {fewer:?}");
            } else {
                assert_eq!(again, None, "{named:?}: {offered:?} then {fewer:?}");
            }
        }
    }
}

// --- range ----------------------------------------------------------------------------

/// The validators the range target's representation has.
const RANGE_MODIFIED: u64 = 1_700_000_000;

/// `Range`, `If-Range` and the conditional headers (`conditional::range` and
/// `not_modified` on an actix request). Input: 8 bytes of representation length
/// (little-endian), then up to four header values separated by `\n`: `Range`,
/// `If-Range`, `If-None-Match`, `If-Modified-Since` (empty: not sent).
///
/// A partial answer lies inside the representation; without `Range` the answer is the
/// whole representation and without `If-None-Match`/`If-Modified-Since` nothing is
/// `304`; and a plain `bytes=A-B`, `bytes=A-` or `bytes=-N` (no `If-Range`) gets exactly
/// the bytes RFC 9110 §14.1.2 says.
pub fn range(data: &[u8]) {
    let Some((length, rest)) = data.split_first_chunk::<8>() else {
        return;
    };
    let len = u64::from_le_bytes(*length);
    let names = [
        header::RANGE,
        header::IF_RANGE,
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
    ];
    let mut request = TestRequest::default();
    let mut sent: [Option<&[u8]>; 4] = [None; 4];
    for ((name, value), slot) in names.iter().zip(rest.split(|b| *b == b'\n')).zip(&mut sent) {
        if value.is_empty() {
            continue;
        }
        let Ok(header_value) = HeaderValue::from_bytes(value) else {
            return;
        };
        request = request.insert_header((name.clone(), header_value));
        *slot = Some(value);
    }
    let request = request.to_http_request();
    let etag = EntityTag::new_strong("abc-br".into());
    let validators = Validators {
        etag: &etag,
        modified: Some(RANGE_MODIFIED),
    };
    let answer = conditional::range(&request, len, validators);
    match answer {
        RangeAnswer::Partial { start, end } => {
            assert!(start <= end && end < len, "{answer:?} of {len} bytes")
        }
        RangeAnswer::Unsatisfiable => assert!(sent[0].is_some()),
        RangeAnswer::Full => {}
    }
    if sent[0].is_none() {
        assert_eq!(answer, RangeAnswer::Full);
    }
    if let (Some(range), None) = (sent[0], sent[1])
        && let Some(expected) = simple_range(range, len)
    {
        assert_eq!(
            answer,
            expected,
            "{:?} of {len} bytes",
            range.escape_ascii()
        );
    }
    let not_modified = conditional::not_modified(&request, validators);
    if sent[2].is_none() && sent[3].is_none() {
        assert!(!not_modified);
    }
}

/// The answer to a `Range` of the plain forms `bytes=A-B`, `bytes=A-`, `bytes=-N` (ASCII
/// digits only) for `len` bytes, by RFC 9110 §14.1.2; `None` for any other form.
fn simple_range(range: &[u8], len: u64) -> Option<RangeAnswer> {
    let spec = std::str::from_utf8(range).ok()?.strip_prefix("bytes=")?;
    let (first, last) = spec.split_once('-')?;
    // `None` for an empty part; a part that is not all digits is another form.
    let number = |text: &str| -> Option<Option<u64>> {
        if text.is_empty() {
            return Some(None);
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        text.parse().ok().map(Some)
    };
    Some(match (number(first)?, number(last)?) {
        (None, None) => return None,
        (Some(first), Some(last)) if first > last => RangeAnswer::Full,
        (Some(first), _) if first >= len => RangeAnswer::Unsatisfiable,
        (Some(first), last) => RangeAnswer::Partial {
            start: first,
            end: last.unwrap_or(u64::MAX).min(len - 1),
        },
        (None, Some(0)) => RangeAnswer::Unsatisfiable,
        (None, Some(_)) if len == 0 => RangeAnswer::Unsatisfiable,
        (None, Some(suffix)) => RangeAnswer::Partial {
            start: len - suffix.min(len),
            end: len - 1,
        },
    })
}

// --- available_dictionary -------------------------------------------------------------

/// `Available-Dictionary` values (`parse_available_dictionary`, input: the header value).
///
/// Parsing never panics; it accepts exactly optional SP/HTAB around `:<base64>:`, where
/// the base64 is the standard, padded, canonical encoding of 32 bytes (judged here
/// independently of the base64 crate), and a digest it returns re-encodes to the same
/// text and parses back to itself.
pub fn available_dictionary(data: &[u8]) {
    let parsed = parse_available_dictionary(data);
    let start = data
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(data.len());
    let end = data
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |last| last + 1);
    let trimmed = &data[start..end];
    assert_eq!(
        parsed.is_some(),
        is_sf_sha256(trimmed),
        "{data:?} parsed to {parsed:?}"
    );
    if let Some(hash) = parsed {
        let encoded = BASE64.encode(hash);
        assert_eq!(
            &trimmed[1..trimmed.len() - 1],
            encoded.as_bytes(),
            "{data:?} holds the one encoding of its digest"
        );
        let again = format!(":{encoded}:");
        assert_eq!(parse_available_dictionary(again.as_bytes()), Some(hash));
    }
}

/// Whether `value` is `:<44 characters>:` holding 32 bytes in canonical standard base64:
/// 43 alphabet characters (the last with its 2 unused bits zero), then one `=`.
fn is_sf_sha256(value: &[u8]) -> bool {
    let sextet = |b: u8| match b {
        b'A'..=b'Z' => Some(b - b'A'),
        b'a'..=b'z' => Some(b - b'a' + 26),
        b'0'..=b'9' => Some(b - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let [b':', inner @ .., b':'] = value else {
        return false;
    };
    let [digits @ .., b'='] = inner else {
        return false;
    };
    digits.len() == 43
        && digits.iter().all(|b| sextet(*b).is_some())
        && sextet(digits[42]).is_some_and(|last| last & 0b11 == 0)
}

// --- log_line -------------------------------------------------------------------------

/// The `#Fields:` line of a CloudFront standard log (all 33 columns, as delivered).
const CLOUDFRONT_FIELDS: &str = "#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len sc-range-start sc-range-end";

/// One log line through each format's parser (`parse::cloudfront`, `logpush`,
/// `front_door`, `LogFormat::detect`). Input: UTF-8; with a `\n`, the part before it is
/// the CloudFront `#Fields:` line, else the standard one is used.
///
/// Records have a time an RFC 3339 date can name; CloudFront and Front Door records
/// have a path that starts with `/`, a CloudFront record's path is one of the line's
/// fields and a Front Door record's has no query.
pub fn log_line(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (fields, line) = text.split_once('\n').unwrap_or((CLOUDFRONT_FIELDS, text));
    let _ = LogFormat::detect(line);
    let columns = CloudfrontColumns::from_fields_line(fields);
    if let Ok(record) = parse::cloudfront(line, &columns) {
        check_record(&record);
        assert!(record.path.starts_with('/'), "{record:?}");
        assert!(line.split('\t').any(|field| field == record.path));
    }
    if let Ok(record) = parse::logpush(line) {
        check_record(&record);
    }
    if let Ok(records) = parse::front_door(line) {
        for record in records.iter().flatten() {
            check_record(record);
            assert!(record.path.starts_with('/'), "{record:?}");
            assert!(!record.path.contains('?'), "{record:?}");
        }
    }
}

fn check_record(record: &LogRecord) {
    assert!(record.time <= LAST_RFC3339_SECOND, "{record:?}");
}

// --- log_file -------------------------------------------------------------------------

/// A manifest with a page and a script, each with variants, so log lines for them are
/// matched against deployed sizes.
fn log_manifest() -> Manifest {
    let entry = |size: u64, variants: &[(Encoding, u64)], content_type: &str| ManifestEntry {
        hash: ContentHash::of(&size.to_le_bytes()),
        size,
        source_size: size,
        content_type: content_type.into(),
        cache_control: "public, max-age=60".into(),
        headers: BTreeMap::new(),
        tags: Vec::new(),
        variants: variants.iter().copied().collect(),
        dictionary: None,
        deltas: Vec::new(),
        single: None,
    };
    let mut manifest = Manifest::default();
    manifest.assets.insert(
        "index.html".into(),
        entry(
            1000,
            &[(Encoding::Br, 300), (Encoding::Gzip, 400)],
            "text/html",
        ),
    );
    manifest.assets.insert(
        "assets/app.js".into(),
        entry(
            5000,
            &[
                (Encoding::Br, 1200),
                (Encoding::Zstd, 1300),
                (Encoding::Gzip, 1500),
            ],
            "text/javascript",
        ),
    );
    manifest
}

/// A whole log file (`logs::read_file`, the streaming reader behind `edgeship logs
/// ingest` and `logs pull`). Input: one byte (bits 0–1: format detected, `cloudfront`,
/// `logpush`, `front_door`; bit 2: gzip the rest), then the file.
///
/// Reading fails only on an undetectable format; every line is counted; the
/// fingerprint is the file's blake3; and the aggregates add up: the report's totals,
/// the hour buckets, the path table and the status, cache and encoding breakdowns all
/// count the same requests and bytes (no counter negative; sums saturate at
/// `i64::MAX`), and every request lies between `first` and `last`.
pub fn log_file(data: &[u8]) {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let format = match mode & 3 {
        0 => None,
        1 => Some(LogFormat::Cloudfront),
        2 => Some(LogFormat::Logpush),
        _ => Some(LogFormat::FrontDoor),
    };
    let wrapped = mode & 4 != 0;
    let bytes = if wrapped { gzip(body) } else { body.to_vec() };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("access.log");
    std::fs::write(&file, &bytes).expect("the log is written");

    let aggregate = match logs::read_file(&file, format, &log_manifest()) {
        Ok(aggregate) => aggregate,
        Err(LogError::UnknownFormat { .. }) if format.is_none() => return,
        Err(err) => panic!("reading failed: {err}"),
    };
    let report = &aggregate.report;
    assert_eq!(
        aggregate.fingerprint,
        blake3::hash(&bytes).to_hex().as_str()
    );
    let read_as_plain = wrapped || !body.starts_with(&[0x1f, 0x8b]);
    if read_as_plain && report.truncated.is_none() {
        let newlines = body.iter().filter(|b| **b == b'\n').count();
        let lines = newlines + usize::from(!body.is_empty() && !body.ends_with(b"\n"));
        assert_eq!(report.lines, lines as u64, "every line is counted");
    }
    assert!(report.examples.len() as u64 <= report.malformed.min(5));

    // Counters saturate at i64::MAX (Redis's integers) rather than wrap: a total is the
    // sum of its parts, capped there.
    let capped = |sum: u128| sum.min(i64::MAX as u128);
    let totals = &report.totals;
    let requests = u128::from(report.requests);
    assert_eq!(u128::from(totals.requests), requests);
    let sum = |values: &mut dyn Iterator<Item = u64>| values.map(u128::from).sum::<u128>();
    assert_eq!(
        sum(&mut [totals.hits, totals.misses, totals.other].into_iter()),
        requests
    );
    assert_eq!(
        sum(&mut totals.requests_by_status.values().copied()),
        requests
    );
    assert_eq!(
        capped(sum(&mut totals.bytes_by_encoding.values().copied())),
        u128::from(totals.bytes),
        "bytes by encoding add up to the bytes: {totals:?}"
    );
    assert!(
        capped(u128::from(totals.hit_bytes) + u128::from(totals.miss_bytes))
            <= u128::from(totals.bytes)
    );
    assert!(totals.deployed_bytes <= totals.deployed_identity_bytes);
    assert_eq!(
        totals.saved_bytes,
        totals.deployed_identity_bytes - totals.deployed_bytes
    );

    let field = |fields: &BTreeMap<String, i64>, name: &str| {
        let value = fields.get(name).copied().unwrap_or(0);
        assert!(value >= 0, "{name} = {value}");
        value as u128
    };
    let hourly_requests: u128 = aggregate
        .hours
        .values()
        .map(|fields| field(fields, "requests"))
        .sum();
    let hourly_bytes: u128 = aggregate
        .hours
        .values()
        .map(|fields| field(fields, "bytes"))
        .sum();
    assert_eq!(hourly_requests, requests);
    assert_eq!(capped(hourly_bytes), u128::from(totals.bytes));
    let path_requests: u128 = aggregate
        .paths
        .values()
        .flat_map(|paths| paths.values())
        .map(|path| u128::from(path.requests))
        .sum();
    assert_eq!(path_requests + u128::from(report.paths_untracked), requests);

    match (report.first, report.last) {
        (Some(first), Some(last)) => {
            assert!(first <= last && last <= LAST_RFC3339_SECOND);
            for hour in aggregate.hours.keys() {
                assert!(
                    first - first % 3600 <= *hour && *hour <= last,
                    "hour {hour}"
                );
            }
        }
        (None, None) => assert_eq!(requests, 0),
        other => panic!("first and last: {other:?}"),
    }
}
