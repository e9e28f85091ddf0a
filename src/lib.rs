//! edgeship: a CDN asset pipeline, deploy tool and cache service in one binary.
//!
//! The crate is laid out by concept:
//!
//! - [`config`]: the layered configuration (defaults < file < `EDGESHIP_*` env < flags).
//! - [`pipeline`]: per-file processing — classify, minify (with a guard that ships the
//!   original whenever the minifier fails), precompress into br/gzip/zstd variants, hash,
//!   apply rules — behind an on-disk processing cache, and `edgeship build`.
//! - [`deploy`]: plan and execute a deploy through a provider (retries, breaker,
//!   adaptive concurrency, resume, ordering: assets, HTML, manifest, deletes, purge).
//! - [`cache`]: the cache layer — a [`cache::CacheStore`] trait with Redis and memory
//!   implementations, the compressing codec, key namespacing, metrics, and the fallback to
//!   memory while Redis is unreachable; [`cache::Cache`] is the typed handle.
//! - [`purge`]: the purge engine — patterns, expansion against a manifest, reduction and
//!   batching by provider capabilities, cost, jobs.
//! - [`analytics`]: deploy savings per content type and day, and the report that joins
//!   them with the origin's served-bytes counters (`GET /v1/analytics`).
//! - [`http`]: the actix-web service behind `edgeship serve`.
//! - [`keys`]: API keys (hashed, scoped, expiring, revocable); [`audit`]: the append-only
//!   audit log of deploy, purge, key and auth events.
//! - [`cli`]: argument parsing and the command implementations used by `main.rs`.
//!
//! Providers (where assets are stored and purged) live in the `edgeship-providers` crate.
#![warn(missing_docs, unreachable_pub, clippy::use_self)]

pub mod analytics;
pub mod archive;
pub mod audit;
pub mod cache;
pub mod cli;
pub mod config;
pub mod deploy;
pub mod http;
pub mod keys;
pub mod pipeline;
pub mod purge;
