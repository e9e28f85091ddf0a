//! A fake of the Cloudflare cache purge API for tests (there is no emulator): a small
//! HTTP/1.1 server on a loopback port that enforces what the real API documents — the
//! bearer token and its zone permission, the body shapes, the per-call limits — and
//! answers as it does, error envelopes and 429 with `Retry-After` included. Every call is
//! recorded.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

/// What the fake was asked, and what it answered.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeCall {
    /// The request path.
    pub path: String,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// The JSON body (`Null` when it was not JSON).
    pub body: Value,
    /// The status answered.
    pub status: u16,
}

#[derive(Debug)]
struct State {
    zone: String,
    token: String,
    /// A token that authenticates but lacks Zone → Cache Purge.
    read_only_token: String,
    urls_per_call: usize,
    operations_per_call: usize,
    throttle_next: u32,
    retry_after_secs: u64,
    calls: Vec<FakeCall>,
}

/// The running fake; it stops when dropped.
#[derive(Debug)]
pub struct FakeCloudflare {
    base: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeCloudflare {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The token the fake accepts by default.
pub const TOKEN: &str = "cf-test-token-0123456789abcdef0123456789ab";
/// A token that authenticates but may not purge.
pub const READ_ONLY_TOKEN: &str = "cf-read-only-token-0123456789abcdef012345";
/// The zone the fake serves.
pub const ZONE: &str = "fedcba9876543210fedcba9876543210";
/// An account id for settings.
pub const ACCOUNT: &str = "0123456789abcdef0123456789abcdef";

impl FakeCloudflare {
    /// Settings of a site in `bucket` on the S3 `endpoint` (moto), for `hosts`, purging
    /// through this fake.
    pub fn settings(
        &self,
        endpoint: &str,
        bucket: &str,
        hosts: &[&str],
    ) -> super::CloudflareSettings {
        super::CloudflareSettings {
            account_id: ACCOUNT.into(),
            zone_id: ZONE.into(),
            bucket: bucket.into(),
            hosts: hosts.iter().map(|h| h.to_string()).collect(),
            endpoint: Some(endpoint.into()),
            api_base: Some(self.base.clone()),
            ..super::CloudflareSettings::default()
        }
    }

    /// Starts the fake for zone [`ZONE`] with Free-plan limits (100 URLs / 100 operations
    /// per call).
    pub async fn start() -> Self {
        Self::start_with_limits(100, 100).await
    }

    /// Starts the fake with these per-call limits.
    pub async fn start_with_limits(urls_per_call: usize, operations_per_call: usize) -> Self {
        let state = Arc::new(Mutex::new(State {
            zone: ZONE.into(),
            token: TOKEN.into(),
            read_only_token: READ_ONLY_TOKEN.into(),
            urls_per_call,
            operations_per_call,
            throttle_next: 0,
            retry_after_secs: 1,
            calls: Vec::new(),
        }));
        let shared = Arc::clone(&state);
        let (base, task) = crate::fake_http::start(move |request| {
            let path = request.target.clone();
            let authorization = request.header("authorization").map(str::to_owned);
            let json: Value = serde_json::from_slice(&request.body).unwrap_or(Value::Null);
            let mut state = shared.lock().unwrap_or_else(|p| p.into_inner());
            let (status, headers, body) =
                answer(&mut state, &path, authorization.as_deref(), &json);
            state.calls.push(FakeCall {
                path,
                authorization,
                body: json,
                status,
            });
            (status, headers, body)
        })
        .await;
        Self { base, state, task }
    }

    /// The API base URL (`api_base` in the settings).
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Answers the next `n` calls with 429 and `Retry-After: retry_after_secs`.
    pub fn throttle_next(&self, n: u32, retry_after_secs: u64) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.throttle_next = n;
        state.retry_after_secs = retry_after_secs;
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<FakeCall> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .calls
            .clone()
    }

    /// The bodies of the calls answered 200, in order.
    pub fn purges(&self) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|c| c.status == 200)
            .map(|c| c.body)
            .collect()
    }
}

fn envelope(code: u64, message: &str) -> Value {
    json!({ "success": false, "errors": [{ "code": code, "message": message }], "messages": [], "result": null })
}

/// The fake's answer to one request: status, extra headers, body.
fn answer(
    state: &mut State,
    path: &str,
    authorization: Option<&str>,
    body: &Value,
) -> (u16, Vec<(String, String)>, Value) {
    let expected = format!("/client/v4/zones/{}/purge_cache", state.zone);
    if path != expected {
        return (
            404,
            vec![],
            envelope(
                7003,
                &format!("Could not route to {path}, perhaps your object identifier is invalid?"),
            ),
        );
    }
    let token = authorization.and_then(|v| v.strip_prefix("Bearer "));
    match token {
        None => {
            let mut body = envelope(6003, "Invalid request headers");
            body["errors"][0]["error_chain"] =
                json!([{ "code": 6111, "message": "Invalid format for Authorization header" }]);
            return (400, vec![], body);
        }
        Some(t) if t == state.read_only_token => {
            return (403, vec![], envelope(10000, "Authentication error"));
        }
        Some(t) if t != state.token => {
            return (401, vec![], envelope(10000, "Authentication error"));
        }
        Some(_) => {}
    }
    if state.throttle_next > 0 {
        state.throttle_next -= 1;
        let retry = state.retry_after_secs.to_string();
        return (
            429,
            vec![("Retry-After".into(), retry)],
            envelope(
                971,
                "Please wait and consider throttling your request speed",
            ),
        );
    }
    let Some(object) = body.as_object() else {
        return (400, vec![], envelope(1012, "Request must be a JSON object"));
    };
    let kinds: Vec<&String> = object.keys().collect();
    if kinds.len() != 1 {
        return (
            400,
            vec![],
            envelope(
                1012,
                "Request must contain exactly one of \"purge_everything\", \"files\", \"tags\", \"hosts\" or \"prefixes\"",
            ),
        );
    }
    let kind = kinds[0].as_str();
    let items = |value: &Value| {
        value.as_array().map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
    };
    let refused = |message: String| (400, vec![], envelope(1012, &message));
    match kind {
        "purge_everything" if object[kind] == json!(true) => {}
        "files" => {
            let Some(files) = items(&object[kind]) else {
                return refused("files must be a list of URLs".into());
            };
            if files.is_empty() || files.len() > state.urls_per_call {
                return (
                    400,
                    vec![],
                    envelope(
                        1015,
                        &format!("Purge request must hold 1 to {} files", state.urls_per_call),
                    ),
                );
            }
            if let Some(bad) = files
                .iter()
                .find(|f| !(f.starts_with("https://") || f.starts_with("http://")))
            {
                return refused(format!("`{bad}` is not an absolute URL"));
            }
        }
        "prefixes" | "tags" | "hosts" => {
            let Some(values) = items(&object[kind]) else {
                return refused(format!("{kind} must be a list of strings"));
            };
            if values.is_empty() || values.len() > state.operations_per_call {
                return refused(format!(
                    "Purge request must hold 1 to {} {kind}",
                    state.operations_per_call
                ));
            }
            if kind == "prefixes"
                && let Some(bad) = values.iter().find(|p| p.contains("://"))
            {
                return refused(format!("prefix `{bad}` must not have a scheme"));
            }
        }
        _ => return refused(format!("unknown purge field `{kind}`")),
    }
    let id = format!("{:032x}", state.calls.len() + 1);
    (
        200,
        vec![],
        json!({ "success": true, "errors": [], "messages": [], "result": { "id": id } }),
    )
}
