//! The zone's cache purge API: `POST {api_base}/client/v4/zones/{zone_id}/purge_cache`
//! with a bearer token, one pooled HTTPS client per site, and the account's rate limits
//! kept client-side.
//!
//! Every answer is an envelope `{ "success", "errors": [{ "code", "message" }], "result" }`;
//! [`classify`] turns a failed one into our error classes. Status and codes (from the API
//! docs and what it answers, see ../../../shared/research/anchors.md § 4):
//! - 429: throttled; `Retry-After` is honoured by the retry layer.
//! - 401, or code 10000 "Authentication error" / 9109 "Invalid access token": the token
//!   is wrong or expired — fatal, never retried.
//! - 403: the token is valid but lacks Zone → Cache Purge on this zone — fatal.
//! - code 6003 "Invalid request headers" (6111: bad `Authorization` format): fatal.
//! - 404, or code 7003 / 7000 "Could not route to …": the zone id is wrong — fatal.
//! - other 4xx: the request was refused (too many files, a bad URL) — not retried.
//! - 5xx and transport failures: temporary, retried.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{CloudflareSettings, PurgeLimits};
use crate::error::{ProviderError, Result};
use crate::object::PurgeRequest;

/// One purge call's body, and how many rate-limit cells it costs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Call {
    /// The JSON body.
    pub(crate) body: Value,
    /// URLs in it (they count against the URL rate), or 0 for other kinds.
    pub(crate) urls: u32,
}

/// The bodies for `request`: one per kind it holds (the API takes one kind per call).
/// Paths become absolute URLs for every host (`https://host/path`), prefixes become
/// `host/path` without scheme, the root prefix `/` a purge of the hosts, tags go as they
/// are.
pub(crate) fn calls(request: &PurgeRequest, hosts: &[String]) -> Vec<Call> {
    if request.everything {
        return vec![Call {
            body: json!({ "purge_everything": true }),
            urls: 0,
        }];
    }
    let mut calls = Vec::new();
    if !request.paths.is_empty() {
        let files: Vec<String> = request
            .paths
            .iter()
            .flat_map(|path| {
                let encoded = crate::aws::cloudfront::encode_path(path);
                hosts
                    .iter()
                    .map(move |host| format!("https://{host}{encoded}"))
            })
            .collect();
        calls.push(Call {
            urls: u32::try_from(files.len()).unwrap_or(u32::MAX),
            body: json!({ "files": files }),
        });
    }
    let (root, prefixes): (Vec<&String>, Vec<&String>) =
        request.prefixes.iter().partition(|p| p.as_str() == "/");
    if !root.is_empty() {
        calls.push(Call {
            body: json!({ "hosts": hosts }),
            urls: 0,
        });
    }
    if !prefixes.is_empty() {
        let prefixes: Vec<String> = prefixes
            .iter()
            .flat_map(|prefix| {
                let path = crate::aws::cloudfront::encode_path(prefix.trim_end_matches('/'));
                hosts.iter().map(move |host| format!("{host}{path}"))
            })
            .collect();
        calls.push(Call {
            body: json!({ "prefixes": prefixes }),
            urls: 0,
        });
    }
    if !request.tags.is_empty() {
        calls.push(Call {
            body: json!({ "tags": request.tags }),
            urls: 0,
        });
    }
    calls
}

/// The rate limits of one account, shared by every site of the process on it.
#[derive(Debug)]
struct AccountLimits {
    urls: DefaultDirectRateLimiter,
    operations: DefaultDirectRateLimiter,
}

/// The account's limiters; the first site of an account sets its limits.
fn account_limits(account: &str, limits: &PurgeLimits) -> Arc<AccountLimits> {
    static ACCOUNTS: OnceLock<Mutex<HashMap<String, Arc<AccountLimits>>>> = OnceLock::new();
    let accounts = ACCOUNTS.get_or_init(Default::default);
    // A std lock: held to look up or insert an `Arc`, never across an await.
    let mut accounts = accounts.lock().unwrap_or_else(|p| p.into_inner());
    let one = NonZeroU32::MIN;
    accounts
        .entry(account.to_string())
        .or_insert_with(|| {
            let urls = NonZeroU32::new(limits.urls_per_second).unwrap_or(one);
            let per_minute = NonZeroU32::new(limits.operations_per_minute).unwrap_or(one);
            let burst = NonZeroU32::new(limits.operation_burst).unwrap_or(one);
            Arc::new(AccountLimits {
                urls: RateLimiter::direct(Quota::per_second(urls)),
                operations: RateLimiter::direct(Quota::per_minute(per_minute).allow_burst(burst)),
            })
        })
        .clone()
}

/// The purge client of one site.
pub(crate) struct PurgeApi {
    provider: String,
    url: String,
    zone_id: String,
    token_env: String,
    token: Option<SecretString>,
    http: reqwest::Client,
    limits: Arc<AccountLimits>,
}

impl std::fmt::Debug for PurgeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("PurgeApi")
            .field("url", &self.url)
            .field("token_set", &self.token.is_some())
            .finish_non_exhaustive()
    }
}

impl PurgeApi {
    /// The client for `settings`, its token read from `settings.token_env` now (absent:
    /// purges fail with an error saying which variable to set).
    pub(crate) fn new(provider: &str, settings: &CloudflareSettings) -> Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_millis(settings.connect_timeout_ms))
            .timeout(Duration::from_millis(settings.read_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(concat!("edgeship/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| ProviderError::Misconfigured {
                provider: provider.to_string(),
                message: format!("cannot build the HTTPS client: {err}"),
            })?;
        let token = std::env::var(&settings.token_env)
            .ok()
            .filter(|token| !token.trim().is_empty())
            .map(|token| SecretString::from(token.trim().to_string()));
        Ok(Self {
            provider: provider.to_string(),
            url: format!(
                "{}/client/v4/zones/{}/purge_cache",
                settings.api_base(),
                settings.zone_id
            ),
            zone_id: settings.zone_id.clone(),
            token_env: settings.token_env.clone(),
            token,
            http,
            limits: account_limits(&settings.account_id, &settings.limits()),
        })
    }

    /// Uses this token instead of the environment's (tests, embedding).
    pub(crate) fn set_token(&mut self, token: SecretString) {
        self.token = Some(token);
    }

    /// Sends one call, after waiting for room under the account's rate limits. Returns
    /// the purge id Cloudflare gives.
    pub(crate) async fn send(&self, call: &Call) -> Result<String> {
        let Some(token) = &self.token else {
            return Err(ProviderError::Unauthenticated {
                provider: self.provider.clone(),
                message: format!(
                    "no API token: set {} to a token with Zone → Cache Purge on zone {}",
                    self.token_env, self.zone_id
                ),
            });
        };
        self.wait_for_room(call).await;
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(token.expose_secret())
            .json(&call.body)
            .send()
            .await
            .map_err(|err| self.transport(&err))?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response.bytes().await.map_err(|err| self.transport(&err))?;
        let envelope: Envelope = serde_json::from_slice(&bytes).unwrap_or_default();
        if (200..300).contains(&status) && envelope.success {
            return Ok(envelope
                .result
                .and_then(|r| r.id)
                .unwrap_or_else(|| "cloudflare".into()));
        }
        Err(classify(
            &self.provider,
            &self.zone_id,
            status,
            retry_after,
            &envelope,
        ))
    }

    async fn wait_for_room(&self, call: &Call) {
        if call.urls > 0 {
            let cells = NonZeroU32::new(call.urls).unwrap_or(NonZeroU32::MIN);
            // More URLs than the per-second rate in one call: wait a full second instead.
            if self.limits.urls.until_n_ready(cells).await.is_err() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        } else {
            self.limits.operations.until_ready().await;
        }
    }

    fn transport(&self, err: &reqwest::Error) -> ProviderError {
        ProviderError::Retryable {
            provider: self.provider.clone(),
            message: format!("purge request to the Cloudflare API failed: {err}"),
        }
    }
}

/// The API's answer.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Envelope {
    #[serde(default)]
    success: bool,
    #[serde(default)]
    errors: Vec<ApiMessage>,
    #[serde(default)]
    result: Option<PurgeResult>,
}

#[derive(Debug, Deserialize)]
struct ApiMessage {
    #[serde(default)]
    code: u64,
    #[serde(default)]
    message: String,
    #[serde(default)]
    error_chain: Vec<Self>,
}

#[derive(Debug, Deserialize)]
struct PurgeResult {
    #[serde(default)]
    id: Option<String>,
}

/// A failed answer as one of our error classes (see the module docs).
pub(crate) fn classify(
    provider: &str,
    zone: &str,
    status: u16,
    retry_after: Option<Duration>,
    envelope: &Envelope,
) -> ProviderError {
    let said: Vec<String> = envelope
        .errors
        .iter()
        .flat_map(|e| std::iter::once(e).chain(&e.error_chain))
        .map(|e| format!("{} {}", e.code, e.message))
        .collect();
    let said = if said.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {}", said.join("; "))
    };
    let has = |codes: &[u64]| {
        envelope
            .errors
            .iter()
            .flat_map(|e| std::iter::once(e).chain(&e.error_chain))
            .any(|e| codes.contains(&e.code))
    };
    let provider = provider.to_string();
    match status {
        429 => ProviderError::Throttled {
            provider,
            retry_after,
        },
        403 => ProviderError::PermissionDenied {
            provider,
            message: format!(
                "the API token may not purge zone {zone} ({said}); give it the Zone → Cache Purge permission for that zone"
            ),
        },
        401 => ProviderError::Unauthenticated {
            provider,
            message: format!(
                "the API token was refused for zone {zone} ({said}); check the token (it needs Zone → Cache Purge on that zone)"
            ),
        },
        _ if has(&[10000, 9109, 6003, 6111, 9103]) => ProviderError::Unauthenticated {
            provider,
            message: format!(
                "the API token was refused for zone {zone} ({said}); check the token (it needs Zone → Cache Purge on that zone)"
            ),
        },
        _ if status == 404 || has(&[7000, 7003]) => ProviderError::Misconfigured {
            provider,
            message: format!(
                "zone {zone} was not found ({said}); check sites.NAME.cloudflare.zone_id"
            ),
        },
        500..=599 => ProviderError::Retryable {
            provider,
            message: format!("the Cloudflare API failed ({said})"),
        },
        _ => ProviderError::Invalid {
            provider,
            message: format!("the Cloudflare API refused the purge ({said})"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(json: &str) -> Envelope {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn paths_become_urls_for_every_host_and_prefixes_lose_their_scheme() {
        let hosts = vec!["www.example.com".to_string(), "example.com".to_string()];
        let request = PurgeRequest {
            paths: vec!["/a b.css".into(), "/blog/".into()],
            prefixes: vec!["/img/".into(), "/".into()],
            tags: vec!["product-42".into()],
            ..PurgeRequest::default()
        };
        let split = calls(&request, &hosts);
        assert_eq!(
            split[0].body,
            json!({ "files": [
                "https://www.example.com/a%20b.css", "https://example.com/a%20b.css",
                "https://www.example.com/blog/", "https://example.com/blog/",
            ]})
        );
        assert_eq!(split[0].urls, 4);
        assert_eq!(
            split[1].body,
            json!({ "hosts": ["www.example.com", "example.com"] })
        );
        assert_eq!(
            split[2].body,
            json!({ "prefixes": ["www.example.com/img", "example.com/img"] })
        );
        assert_eq!(split[3].body, json!({ "tags": ["product-42"] }));
        let everything = PurgeRequest {
            everything: true,
            ..PurgeRequest::default()
        };
        assert_eq!(
            calls(&everything, &hosts)[0].body,
            json!({ "purge_everything": true })
        );
    }

    #[test]
    fn error_envelopes_map_to_error_classes() {
        let auth = envelope(
            r#"{"success":false,"errors":[{"code":10000,"message":"Authentication error"}]}"#,
        );
        let err = classify("cf", "z1", 400, None, &auth);
        assert!(
            matches!(err, ProviderError::Unauthenticated { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("Cache Purge") && err.to_string().contains("z1"));
        assert!(err.is_fatal_for_provider());
        let denied = classify("cf", "z1", 403, None, &auth);
        assert!(
            matches!(denied, ProviderError::PermissionDenied { .. }),
            "{denied}"
        );
        let throttled = classify(
            "cf",
            "z1",
            429,
            Some(Duration::from_secs(3)),
            &Envelope::default(),
        );
        assert_eq!(throttled.retry_after(), Some(Duration::from_secs(3)));
        let zone = envelope(
            r#"{"success":false,"errors":[{"code":7003,"message":"Could not route to /zones/x/purge_cache"}]}"#,
        );
        assert!(matches!(
            classify("cf", "z1", 400, None, &zone),
            ProviderError::Misconfigured { .. }
        ));
        assert!(classify("cf", "z1", 502, None, &Envelope::default()).is_retryable());
        let refused =
            envelope(r#"{"success":false,"errors":[{"code":1015,"message":"too many files"}]}"#);
        let err = classify("cf", "z1", 400, None, &refused);
        assert!(
            matches!(err, ProviderError::Invalid { .. })
                && err.to_string().contains("1015 too many files"),
            "{err}"
        );
    }
}
