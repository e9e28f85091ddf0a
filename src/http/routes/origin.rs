//! The origin: serves the files of the local site with the rules' `Content-Type` and
//! `Cache-Control`. `/` and `/dir/` serve `index.html`; nothing outside the site root and
//! nothing under `.edgeship/` is ever served.

use std::path::{Component, Path, PathBuf};

use actix_web::http::{Method, StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};

use super::error_response;
use crate::http::AppState;
use crate::pipeline::classify;

/// Serves `GET`/`HEAD` for any path not claimed by another route.
pub async fn serve_file(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut response = error_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "only GET and HEAD are served here",
        );
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let Some(public_path) = public_path(req.path()) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "bad_path",
            "the path is not a valid asset path",
        );
    };
    let Some(file) = resolve(state.origin_root(), &public_path) else {
        if !state.origin_root().is_dir() {
            let message = format!(
                "no asset at /{public_path}: the site has no files yet (its root {} does not exist)",
                state.origin_root().display()
            );
            return error_response(StatusCode::NOT_FOUND, "not_found", &message);
        }
        return not_found(&public_path);
    };
    let bytes = match tokio::fs::read(&file).await {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return not_found(&public_path),
        Err(err) => {
            tracing::error!(path = %public_path, error = %err, "origin read failed");
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "read_failed",
                "the asset could not be read",
            );
        }
    };
    let served_path = file
        .strip_prefix(state.origin_root())
        .ok()
        .and_then(Path::to_str)
        .unwrap_or(&public_path)
        .replace(std::path::MAIN_SEPARATOR, "/");
    let kind = classify::classify(&served_path, &bytes[..bytes.len().min(512)]);
    let rule = state.origin_rules().resolve(&served_path, kind);
    let mut response = HttpResponse::Ok();
    response
        .insert_header((header::CONTENT_TYPE, rule.content_type))
        .insert_header((header::CACHE_CONTROL, rule.cache_control));
    for (name, value) in &rule.headers {
        response.insert_header((name.as_str(), value.as_str()));
    }
    // For HEAD, actix sends the same headers (Content-Length included) and drops the body.
    response.body(bytes)
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
    if path == ".edgeship" || path.starts_with(".edgeship/") {
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
