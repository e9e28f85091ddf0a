//! The fake Cloudflare cache purge API as a process of its own, for `scripts/bench purge`
//! (the fake enforces the documented request shapes and per-call limits and answers as the
//! real API does; see `edgeship_providers::cloudflare::testing`).
//!
//! ```text
//! cargo test --bench fake_cdn -- serve
//! ```
//!
//! Prints one JSON line with the fake's base URL, token, zone and account, then serves
//! until its standard input closes, and prints a second JSON line counting the purge
//! calls it answered (by status) and the URLs they named.

use std::collections::BTreeMap;
use std::io::Write;

use edgeship_providers::cloudflare::testing::{ACCOUNT, FakeCloudflare, TOKEN, ZONE};
use serde_json::json;

type BenchResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() -> BenchResult {
    // `cargo bench` appends `--bench`; ignore it.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    if args.first().map(String::as_str) != Some("serve") {
        // Run by a test harness (`--list`, filters) or without arguments: nothing to do.
        eprintln!("usage: fake_cdn serve");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    runtime.block_on(serve())
}

async fn serve() -> BenchResult {
    let fake = FakeCloudflare::start().await;
    println!(
        "{}",
        json!({ "cloudflare": fake.base(), "token": TOKEN, "zone": ZONE, "account": ACCOUNT })
    );
    std::io::stdout().flush()?;
    // Serve until the driver closes our standard input.
    tokio::task::spawn_blocking(|| {
        std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink())
    })
    .await??;
    let mut by_status: BTreeMap<u16, u64> = BTreeMap::new();
    let mut urls = 0;
    for call in fake.calls() {
        *by_status.entry(call.status).or_default() += 1;
        if call.status == 200 {
            urls += call.body["files"].as_array().map_or(0, Vec::len);
        }
    }
    println!(
        "{}",
        json!({ "calls_by_status": by_status, "urls_purged": urls })
    );
    Ok(())
}
