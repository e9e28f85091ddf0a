//! The names of edgeship's own Prometheus metrics, in one place every layer may import:
//! engines record them, `edgeship serve` renders them on `GET /metrics`. (The cache
//! layer's and the providers' names live with them: `cache::metrics::names`,
//! `edgeship_providers::metrics`.)

/// The HTTP service.
pub mod http {
    /// Requests answered, by route, method and status.
    pub const REQUESTS: &str = "edgeship_http_requests_total";
    /// Time to answer, by route and method.
    pub const DURATION: &str = "edgeship_http_request_duration_seconds";
    /// Bytes of deploy uploads received, by site.
    pub const UPLOAD_BYTES: &str = "edgeship_upload_bytes_total";
}

/// The purge engine.
pub mod purge {
    /// Purge jobs started, by site and source (`api`, `cli`, `deploy`).
    pub const JOBS: &str = "edgeship_purge_jobs_total";
    /// Items (paths, wildcards, prefixes, tags) sent in purges, by site.
    pub const ITEMS: &str = "edgeship_purge_items_total";
}

/// The built-in origin.
pub mod origin {
    /// Body bytes sent, by site and encoding.
    pub const BYTES: &str = "edgeship_origin_bytes_total";
    /// Identity bytes the same responses stand for, by site and encoding.
    pub const IDENTITY_BYTES: &str = "edgeship_origin_identity_bytes_total";
    /// Origin responses, by site and status.
    pub const REQUESTS: &str = "edgeship_origin_requests_total";
}

/// Deploys run by the service.
pub mod deploy {
    /// Deploy jobs finished, by site and status (`done`, `partial`, `failed`).
    pub const JOBS: &str = "edgeship_deploy_jobs_total";
}

/// The CDN in front, from its ingested logs.
pub mod cdn {
    /// Hits over hits and misses in the latest hour with requests, by site.
    pub const HIT_RATIO: &str = "edgeship_cdn_hit_ratio";
    /// Requests in that hour, by site.
    pub const REQUESTS: &str = "edgeship_cdn_requests_last_hour";
}
