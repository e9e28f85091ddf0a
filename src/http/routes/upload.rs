//! Receiving a request body to a file: deploy archives and CDN log files. A slot per
//! upload (limited per key and in total), a size cap, and idle and whole-upload
//! timeouts, so slow or stalled clients cannot hold the service's connections.

use std::path::Path;
use std::time::Duration;

use actix_web::{HttpRequest, web};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::ApiError;
use crate::api_keys::ApiKey;
use crate::config::ServerConfig;
use crate::http::AppState;
use crate::http::uploads::{Full, UploadSlot};

/// A slot for an upload with `key`, or 429 `too_many_uploads`.
pub(crate) fn slot(state: &AppState, key: &ApiKey) -> Result<UploadSlot, ApiError> {
    state.uploads().take(&key.id).map_err(|full| {
        let message = match full {
            Full::Key(n) => format!(
                "key `{}` already has {n} uploads being received (server.max_uploads_per_key); wait for one to finish",
                key.name
            ),
            Full::Total(n) => format!(
                "the service already receives {n} uploads (server.max_concurrent_uploads); try again shortly"
            ),
        };
        ApiError::RateLimited {
            code: "too_many_uploads",
            message,
            retry_after: Duration::from_secs(5),
        }
    })
}

/// Streams the body into a new file at `path`: at most `server.max_upload_bytes` (413),
/// no pause longer than `upload_idle_timeout_secs` and no longer than
/// `upload_timeout_secs` in all (408). Returns the bytes received.
pub(crate) async fn receive(
    req: &HttpRequest,
    payload: &mut web::Payload,
    path: &Path,
    server: &ServerConfig,
) -> Result<u64, ApiError> {
    let limit = server.max_upload_bytes;
    let too_large = || ApiError::TooLarge {
        code: "body_too_large",
        message: format!("uploads are limited to {limit} bytes (server.max_upload_bytes)"),
    };
    let cannot_store = |err: std::io::Error| {
        tracing::error!(error = %err, "cannot store the upload");
        ApiError::Storage {
            message: "cannot store the upload".into(),
        }
    };
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(too_large());
    }
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(|err| ApiError::internal("cannot store the upload", &err))?;
    let mut received: u64 = 0;
    let idle = Duration::from_secs(server.upload_idle_timeout_secs);
    let whole = Duration::from_secs(server.upload_timeout_secs);
    let deadline = tokio::time::Instant::now() + whole;
    loop {
        let next_by = deadline.min(tokio::time::Instant::now() + idle);
        let chunk = match tokio::time::timeout_at(next_by, payload.next()).await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(_) => {
                let message = if tokio::time::Instant::now() >= deadline {
                    format!(
                        "the upload was not received within {} s (server.upload_timeout_secs); nothing was kept",
                        whole.as_secs()
                    )
                } else {
                    format!(
                        "no bytes of the upload arrived for {} s (server.upload_idle_timeout_secs); nothing was kept",
                        idle.as_secs()
                    )
                };
                return Err(ApiError::Timeout {
                    code: "upload_timeout",
                    message,
                });
            }
        };
        let chunk = chunk.map_err(|err| {
            ApiError::bad_request("bad_body", format!("reading the upload: {err}"))
        })?;
        received += chunk.len() as u64;
        if received > limit {
            return Err(too_large());
        }
        file.write_all(&chunk).await.map_err(cannot_store)?;
    }
    file.flush().await.map_err(cannot_store)?;
    Ok(received)
}
