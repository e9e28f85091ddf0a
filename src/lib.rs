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
//! - [`http`]: the actix-web service behind `edgeship serve`.
//! - [`cli`]: argument parsing and the command implementations used by `main.rs`.
//!
//! Providers (where assets are stored and purged) live in the `edgeship-providers` crate.
#![warn(missing_docs, unreachable_pub, clippy::use_self)]

pub mod cli;
pub mod config;
pub mod deploy;
pub mod http;
pub mod pipeline;
