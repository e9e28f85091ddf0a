//! The API's gatekeeper: network allowlists, per-IP and per-key rate limits, bearer-key
//! authentication with scopes, and blocking IPs that keep failing to authenticate.
//!
//! Every `/v1` handler starts with [`Guard::check`], naming the scopes that allow it. The
//! answers are distinct so clients can act on them: 401 (no key, or not a valid one),
//! 403 (a valid key without the scope, or from a network it may not use), 429 with
//! `Retry-After` (over a rate limit, or blocked after repeated failures).
//!
//! The per-key rate limit and the failed-authentication counts live in the cache layer,
//! so with Redis every replica shares them: a key's budget and an address's allowance of
//! failures are the same whichever replica a request reaches. The per-IP rate limit is
//! kept in this process: it runs before authentication, on every request, and guards this
//! replica's own CPU without a round trip to Redis (docs/SCALING.md).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use actix_web::HttpRequest;
use actix_web::http::header;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use ipnet::IpNet;
use serde_json::json;

use super::error::ApiError;
use crate::api_keys::{ApiKey, KeyStore, Scope, parse_token};
use crate::audit::{AuditEvent, AuditLog};
use crate::cache::{Admission, Cache, CacheKey, RateLimit};
use crate::config::ServerConfig;

/// Who may call the API, and how often.
pub struct Guard {
    keys: KeyStore,
    audit: AuditLog,
    /// Where the per-key limits and failure counts are kept (shared through Redis).
    cache: Cache,
    allow_ips: Vec<IpNet>,
    ip_limiter: DefaultKeyedRateLimiter<IpAddr>,
    key_limit: RateLimit,
    /// Keys as last read (or created here): while the key store is degraded (Redis
    /// down, the fallback does not have them) they keep working.
    known: Mutex<HashMap<String, ApiKey>>,
    failures_before_block: u32,
    failure_window: Duration,
    block_for: Duration,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("keys", &self.keys)
            .field("allow_ips", &self.allow_ips)
            .finish_non_exhaustive()
    }
}

fn quota(per_sec: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(per_sec.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(per_sec).max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

/// A 429 with `Retry-After` (whole seconds, at least 1).
fn too_many(code: &'static str, message: impl Into<String>, wait: Duration) -> ApiError {
    ApiError::RateLimited {
        code,
        message: message.into(),
        retry_after: wait,
    }
}

fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Unauthenticated {
        code,
        message: message.into(),
    }
}

fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Forbidden {
        code,
        message: message.into(),
    }
}

/// The client address (the TCP peer; forwarded headers are not trusted).
pub fn client_ip(req: &HttpRequest) -> IpAddr {
    req.peer_addr()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |addr| addr.ip())
}

impl Guard {
    /// A guard with `config`'s limits over `keys`, keeping shared limits in `cache`.
    pub fn new(config: &ServerConfig, keys: KeyStore, audit: AuditLog, cache: Cache) -> Self {
        Self {
            keys,
            audit,
            cache,
            allow_ips: config.allow_ips.clone(),
            ip_limiter: RateLimiter::keyed(quota(config.ip_rate_per_sec, config.ip_burst)),
            key_limit: RateLimit::per_second(config.key_rate_per_sec, config.key_burst),
            known: Mutex::new(HashMap::new()),
            failures_before_block: config.auth_failures_before_block.max(1),
            failure_window: Duration::from_secs(config.auth_failure_window_secs.max(1)),
            block_for: Duration::from_secs(config.block_secs),
        }
    }

    /// The key store.
    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    /// Admits a request holding a key with any of `scopes`, or answers why not.
    pub async fn check(&self, req: &HttpRequest, scopes: &[Scope]) -> Result<ApiKey, ApiError> {
        let ip = client_ip(req);
        if !self.allow_ips.is_empty() && !self.allow_ips.iter().any(|net| net.contains(&ip)) {
            return Err(forbidden(
                "ip_not_allowed",
                format!("{ip} may not call the API (server.allow_ips)"),
            ));
        }
        // The local limit first: a flood is turned away before it costs a Redis call.
        if let Err(not_until) = self.ip_limiter.check_key(&ip) {
            return Err(too_many(
                "rate_limited",
                "too many requests from this address",
                not_until.wait_time_from(DefaultClock::default().now()),
            ));
        }
        if let Some(wait) = self.blocked_for(ip).await {
            return Err(too_many(
                "blocked",
                "too many failed authentications from this address; try again later",
                wait,
            ));
        }
        let Some(value) = req.headers().get(header::AUTHORIZATION) else {
            return Err(unauthorized(
                "unauthenticated",
                "this route needs an API key: `Authorization: Bearer esk_…` (create one with `edgeship keys create`)",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let key = match token.and_then(parse_token) {
            Some((id, secret)) => match self.lookup(id).await {
                Ok(Some(key)) if key.verify(secret) => key,
                Ok(_) => return Err(self.failed(req, ip, "unknown key or wrong secret").await),
                Err(err) => {
                    tracing::error!(error = %err, "cannot read API keys");
                    return Err(ApiError::unavailable(
                        "keys_unavailable",
                        "API keys cannot be read right now; try again",
                    ));
                }
            },
            None => return Err(self.failed(req, ip, "malformed key").await),
        };
        if let Some(reason) = key.unusable(crate::jobs::unix_now()) {
            return Err(self.failed(req, ip, reason).await);
        }
        if !key.allows_ip(ip) {
            return Err(forbidden(
                "ip_not_allowed",
                format!("key `{}` may not be used from {ip}", key.name),
            ));
        }
        if !scopes.iter().any(|&scope| key.grants(scope)) {
            let has: Vec<&str> = key.scopes.iter().map(|s| s.as_str()).collect();
            let needs: Vec<&str> = scopes.iter().map(|s| s.as_str()).collect();
            return Err(forbidden(
                "forbidden",
                format!(
                    "key `{}` has scopes [{}]; this route needs one of [{}]",
                    key.name,
                    has.join(", "),
                    needs.join(", ")
                ),
            ));
        }
        let slot = self.shared_key(&format!("ratelimit:key:{}", key.id));
        match self.cache.throttle(&slot, self.key_limit).await {
            Ok(Admission::Admitted) => {}
            Ok(Admission::Limited { retry_after }) => {
                return Err(too_many(
                    "rate_limited",
                    format!("too many requests with key `{}`", key.name),
                    retry_after,
                ));
            }
            // The fallback store absorbs outages; anything else must not lock clients out.
            Err(err) => {
                tracing::warn!(error = %err, "cannot count a request against its key's rate limit; admitted")
            }
        }
        Ok(key)
    }

    /// Creates a key (and knows it from then on, even while the store is degraded).
    pub async fn create_key(
        &self,
        name: &str,
        scopes: Vec<Scope>,
    ) -> Result<crate::api_keys::CreatedKey, crate::api_keys::KeyError> {
        let created = self.keys.create(name, scopes, None, Vec::new()).await?;
        self.remember(&created.key);
        Ok(created)
    }

    fn remember(&self, key: &ApiKey) {
        let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
        known.insert(key.id.clone(), key.clone());
    }

    /// A key from the store; the last known copy while the store is degraded or failing.
    async fn lookup(&self, id: &str) -> Result<Option<ApiKey>, crate::api_keys::KeyError> {
        let last_known = || {
            let known = self.known.lock().unwrap_or_else(|p| p.into_inner());
            known.get(id).cloned()
        };
        match self.keys.get(id).await {
            Ok(Some(key)) => {
                self.remember(&key);
                Ok(Some(key))
            }
            Ok(None) if self.keys.is_degraded() => Ok(last_known()),
            Ok(None) => {
                let mut known = self.known.lock().unwrap_or_else(|p| p.into_inner());
                known.remove(id);
                Ok(None)
            }
            Err(err) => last_known().map(Some).ok_or(err),
        }
    }

    /// A global key of the guard's (`<prefix>:global:<name>`).
    fn shared_key(&self, name: &str) -> CacheKey {
        self.cache.keys().global().key(name)
    }

    fn block_key(ip: IpAddr) -> String {
        format!("auth:blocked:{ip}")
    }

    /// How long `ip` stays blocked, if it is: the block key's remaining TTL, the same on
    /// every replica.
    async fn blocked_for(&self, ip: IpAddr) -> Option<Duration> {
        match self.cache.ttl(&self.shared_key(&Self::block_key(ip))).await {
            Ok(left) => left.filter(|left| !left.is_zero()),
            Err(err) => {
                tracing::warn!(error = %err, %ip, "cannot read whether an address is blocked");
                None
            }
        }
    }

    /// Counts a failed authentication; blocks the IP when it reaches the threshold within
    /// the window (counting starts again after the block).
    async fn failed(&self, req: &HttpRequest, ip: IpAddr, reason: &str) -> ApiError {
        tracing::warn!(%ip, path = req.path(), reason, "authentication failed");
        let error = unauthorized("invalid_key", format!("the API key is not valid: {reason}"));
        let counter = self.shared_key(&format!("auth:failures:{ip}"));
        let failures = match self
            .cache
            .incr_by(&counter, 1, Some(self.failure_window))
            .await
        {
            Ok(failures) => failures,
            Err(err) => {
                tracing::warn!(error = %err, %ip, "cannot count a failed authentication");
                return error;
            }
        };
        if failures < i64::from(self.failures_before_block) || self.block_for.is_zero() {
            return error;
        }
        let block = self.shared_key(&Self::block_key(ip));
        // Only the replica that sets the block records it.
        let blocked = self
            .cache
            .set_if_absent(&block, &true, Some(self.block_for))
            .await;
        let _ = self.cache.delete(&counter).await;
        match blocked {
            Ok(true) => self.audit.record(&AuditEvent {
                ip: Some(ip.to_string()),
                ..crate::audit::event(
                    "auth.blocked",
                    "anonymous",
                    json!({
                        "failures": self.failures_before_block,
                        "blocked_secs": self.block_for.as_secs(),
                    }),
                )
            }),
            Ok(false) => {}
            Err(err) => tracing::warn!(error = %err, %ip, "cannot block an address"),
        }
        error
    }

    /// Records an audit event for an API action by `key`.
    pub fn audit(
        &self,
        req: &HttpRequest,
        key: &ApiKey,
        event: &str,
        site: Option<&str>,
        detail: serde_json::Value,
    ) {
        let actor = format!("key:{}", key.id);
        self.audit.record(&AuditEvent {
            ip: Some(client_ip(req).to_string()),
            site,
            ..crate::audit::event(event, &actor, detail)
        });
    }
}
