//! The origin: serves the local site the service fronts (`server.origin_site`).
//!
//! Assets in the site's manifest are served as deployed (see [`crate::http::origin`]):
//! the representation is negotiated from `Accept-Encoding` (identity or a stored br /
//! zstd / gzip variant), with the `Content-Type`, `Cache-Control` and extra headers the
//! rules chose at deploy time, `Vary: Accept-Encoding`, a strong `ETag` per
//! representation, `Last-Modified` from the file, `304` for `If-None-Match` /
//! `If-Modified-Since`, and single byte ranges (`206`, `416`, `If-Range`) on identity.
//! Files not in the manifest (a site without one, or written by other tools) are served
//! as they are, with headers from the current rules.
//!
//! `/` and `/dir/` serve `index.html`; nothing outside the site root and nothing under
//! `.edgeship/` is ever served. Errors are the JSON error shape.

use std::path::{Component, Path, PathBuf};

use actix_web::http::header::HeaderValue;
use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder, web};

use super::error_response;
use crate::http::origin::body::{FileBody, HeadBody, Loaded};
use crate::http::origin::conditional::{self, RangeAnswer, Validators};
use crate::http::origin::dictionary;
use crate::http::origin::negotiate::{AcceptedEncodings, Coding};
use crate::http::origin::{AssetRef, Origin, Snapshot};
use crate::http::{AppState, OriginSite};
use crate::pipeline::classify;

/// The environment variable that adds the benchmark's baseline route.
pub const BENCH_HELLO_ENV: &str = "EDGESHIP_BENCH_HELLO";

/// The path of the benchmark's baseline route.
pub const BENCH_HELLO_PATH: &str = "/__bench/hello";

/// Whether [`bench_hello`] is routed: only when `EDGESHIP_BENCH_HELLO=1`.
pub fn bench_hello_enabled() -> bool {
    std::env::var(BENCH_HELLO_ENV).is_ok_and(|v| v == "1")
}

/// The plainest actix handler, routed only for `scripts/bench http` (see
/// [`bench_hello_enabled`]): the baseline the origin's throughput is compared with.
pub async fn bench_hello() -> &'static str {
    "hello"
}

/// Serves `GET`/`HEAD` for any path not claimed by another route.
pub async fn serve_file(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some(site) = state.origin_site() else {
        return error_response(
            StatusCode::NOT_FOUND,
            "no_origin_site",
            "this service serves no site: several sites are configured and none is `default`; set server.origin_site",
        );
    };
    let response = respond(&req, site).await;
    site.origin().stats().record_status(response.status());
    response
}

async fn respond(req: &HttpRequest, site: &OriginSite) -> HttpResponse {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut response = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "only GET and HEAD are served here",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let Some(public_path) = public_path(req.path()) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "bad_path",
            "the path is not a valid asset path",
        );
    };
    if hidden(&public_path) {
        return not_found(&public_path);
    }
    let origin = site.origin();
    let snapshot = origin.snapshot().await;
    if let Some(asset) = snapshot.find(&public_path) {
        return serve_asset(req, origin, &snapshot, asset).await;
    }
    serve_unlisted(req, site, &public_path).await
}

/// Serves an asset of the manifest.
async fn serve_asset(
    req: &HttpRequest,
    origin: &Origin,
    snapshot: &Snapshot,
    found: AssetRef<'_>,
) -> HttpResponse {
    let asset = found.asset;
    let accepted = AcceptedEncodings::of(req);
    // A client holding an earlier version gets the delta from it (RFC 9842).
    let mut chosen = None;
    if let Some(delta) = dictionary::choose(req, asset, &accepted) {
        match origin.open(snapshot, found, delta).await {
            Ok(loaded) => chosen = Some((delta, loaded)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %asset.path, coding = %delta.coding, "a delta the manifest lists is missing");
            }
            Err(err) => return read_failed(&asset.path, &err),
        }
    }
    // Variants whose file turned out to be missing (a damaged site): the next acceptable
    // representation is served instead.
    let mut missing = [false; Coding::ALL.len()];
    let (representation, loaded) = loop {
        if let Some(chosen) = chosen.take() {
            break chosen;
        }
        let candidates = asset.offered.iter().filter(|(c, _)| !missing[c.index()]);
        let Some(coding) = accepted.choose(candidates) else {
            if missing.contains(&true) {
                return not_found(&asset.path);
            }
            if asset.single.is_some() && accepted.accepts(Coding::Identity) {
                return serve_decoded(req, origin, snapshot, found).await;
            }
            return not_acceptable(asset);
        };
        let Some(representation) = asset.representation(coding) else {
            return read_failed(
                &asset.path,
                &std::io::Error::other("no such representation"),
            );
        };
        match origin.open(snapshot, found, representation).await {
            Ok(loaded) => break (representation, loaded),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                tracing::warn!(path = %asset.path, %coding, "a file the manifest lists is missing");
                missing[coding.index()] = true;
            }
            Err(err) => return read_failed(&asset.path, &err),
        }
    };
    let coding = representation.coding;
    let info = match &loaded {
        Loaded::Memory(file) => &file.info,
        Loaded::File(info, _) => info,
    };
    let validators = Validators {
        etag: &representation.etag,
        modified: info.modified,
    };

    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::VARY, asset.vary.clone()))
        .insert_header((header::ETAG, representation.etag_header.clone()))
        .insert_header((header::CACHE_CONTROL, asset.cache_control.clone()));
    if let Some(last_modified) = &info.last_modified {
        response.insert_header((header::LAST_MODIFIED, last_modified.clone()));
    }
    if conditional::not_modified(req, validators) {
        origin.stats().record_not_modified();
        return response.status(StatusCode::NOT_MODIFIED).finish();
    }

    let len = info.len;
    let answer = if coding == Coding::Identity && req.method() == Method::GET {
        conditional::range(req, len, validators)
    } else {
        RangeAnswer::Full
    };
    if coding == Coding::Identity {
        response.insert_header((header::ACCEPT_RANGES, HeaderValue::from_static("bytes")));
    }
    let (start, sent) = match answer {
        RangeAnswer::Full => (0, len),
        RangeAnswer::Partial { start, end } => {
            response
                .status(StatusCode::PARTIAL_CONTENT)
                .insert_header((header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}")));
            (start, end - start + 1)
        }
        RangeAnswer::Unsatisfiable => {
            return range_not_satisfiable(response, &asset.path, len);
        }
    };
    response.insert_header((header::CONTENT_TYPE, asset.content_type.clone()));
    if let Some(encoding) = coding.header_value() {
        response.insert_header((header::CONTENT_ENCODING, encoding));
    }
    for (name, value) in &asset.headers {
        response.insert_header((name.clone(), value.clone()));
    }
    if let Some(value) = &asset.use_as_dictionary {
        response.insert_header((dictionary::USE_AS_DICTIONARY, value.clone()));
    }
    // What the same response would have carried as identity (ranges are identity only).
    let identity_bytes = if coding == Coding::Identity {
        sent
    } else {
        asset.identity_size()
    };
    if req.method() == Method::HEAD {
        origin.stats().record_sent(coding, 0, 0);
        return response.body(HeadBody(sent));
    }
    if matches!(coding, Coding::Dcb | Coding::Dcz) {
        origin
            .stats()
            .record_delta(coding, sent, identity_bytes, asset.br_size());
    } else {
        origin.stats().record_sent(coding, sent, identity_bytes);
    }
    match loaded {
        Loaded::Memory(file) => {
            let end = usize::try_from(start + sent).unwrap_or(usize::MAX);
            let start = usize::try_from(start).unwrap_or(usize::MAX);
            response.body(file.bytes.slice(start..end.min(file.bytes.len())))
        }
        Loaded::File(_, file) => stream(response, &asset.path, file, start, sent).await,
    }
}

/// Streams `len` bytes of `file` from `start`.
async fn stream(
    mut response: HttpResponseBuilder,
    path: &str,
    file: std::fs::File,
    start: u64,
    len: u64,
) -> HttpResponse {
    let mut file = tokio::fs::File::from_std(file);
    if start > 0 {
        use tokio::io::AsyncSeekExt;
        if let Err(err) = file.seek(std::io::SeekFrom::Start(start)).await {
            return read_failed(path, &err);
        }
    }
    response.body(FileBody::new(file, len))
}

/// The largest `single:<enc>` asset decoded for a client that does not accept its
/// encoding (larger ones get 406).
const MAX_DECODED: u64 = 16 * 1024 * 1024;

/// Serves a `single:<enc>` asset, whose only stored form is encoded, to a client that
/// does not accept that encoding: decoded in memory, as identity.
async fn serve_decoded(
    req: &HttpRequest,
    origin: &Origin,
    snapshot: &Snapshot,
    found: AssetRef<'_>,
) -> HttpResponse {
    let asset = found.asset;
    let (Some(stored), Some(encoding)) = (
        asset.representations.first(),
        asset.single.and_then(Coding::encoding),
    ) else {
        return not_acceptable(asset);
    };
    if asset.identity_size() > MAX_DECODED {
        return not_acceptable(asset);
    }
    let loaded = match origin.open(snapshot, found, stored).await {
        Ok(loaded) => loaded,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return not_found(&asset.path),
        Err(err) => return read_failed(&asset.path, &err),
    };
    let decoded = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
        let mut encoded = Vec::new();
        match loaded {
            Loaded::Memory(file) => encoded.extend_from_slice(&file.bytes),
            Loaded::File(_, mut file) => {
                std::io::Read::read_to_end(&mut file, &mut encoded)?;
            }
        }
        let mut out = Vec::new();
        crate::pipeline::compress::decode(encoding, &mut &encoded[..], &mut out)?;
        Ok(out)
    })
    .await;
    let bytes = match decoded {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(err)) => return read_failed(&asset.path, &err),
        Err(err) => return read_failed(&asset.path, &std::io::Error::other(err)),
    };
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::VARY, asset.vary.clone()))
        .insert_header((header::ETAG, asset.identity_etag.clone()))
        .insert_header((header::CACHE_CONTROL, asset.cache_control.clone()))
        .insert_header((header::CONTENT_TYPE, asset.content_type.clone()));
    for (name, value) in &asset.headers {
        response.insert_header((name.clone(), value.clone()));
    }
    let len = bytes.len() as u64;
    if req.method() == Method::HEAD {
        origin.stats().record_sent(Coding::Identity, 0, 0);
        return response.body(HeadBody(len));
    }
    origin.stats().record_sent(Coding::Identity, len, len);
    response.body(bytes)
}

fn not_acceptable(asset: &crate::http::origin::Asset) -> HttpResponse {
    let available: Vec<&str> = asset.offered.iter().map(|(c, _)| c.token()).collect();
    let mut response = error_response(
        StatusCode::NOT_ACCEPTABLE,
        "not_acceptable",
        &format!(
            "no acceptable encoding for /{}: it is available as {}",
            asset.path,
            available.join(", ")
        ),
    );
    response
        .headers_mut()
        .insert(header::VARY, asset.vary.clone());
    response
}

fn range_not_satisfiable(mut response: HttpResponseBuilder, path: &str, len: u64) -> HttpResponse {
    let body = serde_json::json!({ "error": {
        "code": "range_not_satisfiable",
        "message": format!("the requested range is outside /{path} ({len} bytes)"),
    }});
    response
        .status(StatusCode::RANGE_NOT_SATISFIABLE)
        .insert_header((header::CONTENT_RANGE, format!("bytes */{len}")))
        .json(body)
}

fn read_failed(path: &str, err: &std::io::Error) -> HttpResponse {
    tracing::error!(path, error = %err, "origin read failed");
    error_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "read_failed",
        "the asset could not be read",
    )
}

/// Serves a file that is not in the manifest as it is, with the current rules' headers.
async fn serve_unlisted(req: &HttpRequest, site: &OriginSite, public_path: &str) -> HttpResponse {
    let Some(file) = resolve(site.root(), public_path) else {
        if !site.root().is_dir() {
            let message = format!(
                "no asset at /{public_path}: the site has no files yet (its root {} does not exist)",
                site.root().display()
            );
            return error_response(StatusCode::NOT_FOUND, "not_found", &message);
        }
        return not_found(public_path);
    };
    let bytes = match tokio::fs::read(&file).await {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return not_found(public_path),
        Err(err) => return read_failed(public_path, &err),
    };
    let served_path = file
        .strip_prefix(site.root())
        .ok()
        .and_then(Path::to_str)
        .unwrap_or(public_path)
        .replace(std::path::MAIN_SEPARATOR, "/");
    let kind = classify::classify(&served_path, &bytes[..bytes.len().min(512)]);
    let rule = site.rules().resolve(&served_path, kind);
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CONTENT_TYPE, rule.content_type))
        .insert_header((header::CACHE_CONTROL, rule.cache_control));
    for (name, value) in &rule.headers {
        response.insert_header((name.as_str(), value.as_str()));
    }
    let sent = if req.method() == Method::HEAD {
        0
    } else {
        bytes.len() as u64
    };
    site.origin()
        .stats()
        .record_sent(Coding::Identity, sent, sent);
    // For HEAD, actix sends the same headers (Content-Length included) and drops the body.
    response.body(bytes)
}

/// `.edgeship/` holds the manifest and sidecar metadata: never served.
fn hidden(path: &str) -> bool {
    path == ".edgeship" || path.starts_with(".edgeship/")
}

fn not_found(path: &str) -> HttpResponse {
    error_response(
        StatusCode::NOT_FOUND,
        "not_found",
        &format!("no asset at /{path}"),
    )
}

/// Decodes and validates a request path into a relative asset path (`blog/index.html`).
/// Returns `None` for anything that could escape the root or is not a plain path.
fn public_path(raw: &str) -> Option<String> {
    let decoded = percent_decode(raw)?;
    let mut parts = Vec::new();
    for part in decoded.split('/') {
        match part {
            "" | "." => {}
            ".." => return None,
            p if p.contains(['\\', '\0']) => return None,
            p => parts.push(p),
        }
    }
    let mut path = parts.join("/");
    if decoded.ends_with('/') || path.is_empty() {
        if !path.is_empty() {
            path.push('/');
        }
        path.push_str("index.html");
    }
    Some(path)
}

fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Maps a relative asset path to a file under `root`; `dir` falls back to `dir/index.html`.
fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    if hidden(path) {
        return None;
    }
    let candidate = root.join(path);
    if !candidate
        .components()
        .all(|c| !matches!(c, Component::ParentDir))
    {
        return None;
    }
    if candidate.is_file() {
        return Some(candidate);
    }
    let index = candidate.join("index.html");
    index.is_file().then_some(index)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_decoded_and_traversal_is_refused() {
        assert_eq!(public_path("/").as_deref(), Some("index.html"));
        assert_eq!(public_path("/blog/").as_deref(), Some("blog/index.html"));
        assert_eq!(
            public_path("/docs/caf%C3%A9.txt").as_deref(),
            Some("docs/café.txt")
        );
        assert_eq!(public_path("/a/../../etc/passwd"), None);
        assert_eq!(public_path("/%2e%2e/secret"), None);
        assert_eq!(public_path("/a%5c..%5cb"), None);
        assert_eq!(public_path("/bad%zz"), None);
    }
}
