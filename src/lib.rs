//! edgeship: a CDN asset pipeline, deploy tool and cache service in one binary.
//!
//! The crate is laid out by concept. `http` and `cli` sit on top; the engines (`deploy`,
//! which builds on `purge` and `analytics`) below them; `site`, `jobs`, `home`,
//! `metric_names`, `pipeline` and `cache` below those; `config` composes every section:
//!
//! - [`config`]: the layered configuration (defaults < file < `EDGESHIP_*` env < flags),
//!   composed of each module's section.
//! - [`site`]: the sites registry — every configured site with its one long-lived
//!   provider stack (retry, breaker, metrics), rules and manifest reader, plus the
//!   process's one [`cache::Cache`]. Built once per process; every engine takes its site
//!   from it.
//! - [`jobs`] (job ids, the clock, the job store), [`home`] (where jobs, locks and keys
//!   live: Redis or the data directory) and [`metric_names`]: shared below the engines.
//! - [`pipeline`]: per-file processing — classify, minify (with a guard that ships the
//!   original whenever the minifier fails), precompress into br/gzip/zstd variants, hash,
//!   apply rules — behind an on-disk processing cache, and `edgeship build`.
//! - [`deploy`]: plan, execute and finish a deploy through a site's provider stack
//!   (adaptive concurrency, resume, ordering: assets, HTML, manifest, deletes, purge).
//! - [`cache`]: the cache layer — a [`cache::CacheStore`] trait with Redis and memory
//!   implementations, the compressing codec, key naming, metrics, and the fallback to
//!   memory while Redis is unreachable; [`cache::Cache`] is the typed handle.
//! - [`purge`]: the purge engine — patterns, expansion against a manifest, reduction and
//!   batching by provider capabilities, cost, jobs.
//! - [`analytics`]: deploy savings per content type and day, the origin's stored
//!   counters, and the report that joins them (`GET /v1/analytics`).
//! - [`http`]: the actix-web service behind `edgeship serve`.
//! - [`api_keys`]: API keys (hashed, scoped, expiring, revocable); [`audit`]: the
//!   append-only audit log of deploy, purge, key and auth events.
//! - [`edge_rules`]: the nginx config, Cloudflare Worker and CloudFront Function that let
//!   an edge pick a site's variants and dictionary deltas as the origin does.
//! - [`cli`]: argument parsing and the command implementations used by `main.rs`.
//!
//! Providers (where assets are stored and purged) live in the `edgeship-providers` crate.
#![warn(missing_docs, unreachable_pub, clippy::use_self)]

pub mod analytics;
pub mod api_keys;
pub mod archive;
pub mod audit;
pub mod cache;
pub mod cli;
pub mod config;
pub mod deploy;
pub mod edge_rules;
pub mod home;
pub mod http;
pub mod jobs;
pub mod metric_names;
pub mod pipeline;
pub mod purge;
pub mod site;
