//! Providers: where edgeship stores assets and how it purges CDN caches.
//!
//! This crate will hold the provider trait (storage + purge, with `capabilities()`), one
//! module per provider (`local`, `memory`, and the cloud ones behind cargo features) and the
//! conformance suite every provider passes. Only the crate exists so far; the trait and the
//! `local` and `memory` providers are the next step (see the issue tracker).
#![warn(missing_docs, unreachable_pub, clippy::use_self)]
