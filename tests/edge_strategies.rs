//! How a site stores its encodings for the edge: `strategy = "single:<enc>"` rules store
//! one encoded object per path (no identity, no siblings), which the origin serves as
//! stored or decodes for clients that do not accept it; switching back to `variants`
//! restores the identity and its siblings.

mod common;

use std::path::Path;
use std::sync::Arc;

use edgeship::config::Config;
use edgeship::deploy::{DeployOptions, Deployer};
use edgeship::pipeline::build::NoProgress;
use edgeship::pipeline::compress::{Encoding, decode};
use edgeship::pipeline::manifest::Manifest;
use edgeship::pipeline::rules::{RuleConfig, Strategy};

const CSS: &str = "assets/styles.5b6c7d8e.css";

fn config(dir: &Path, strategy: Option<Strategy>) -> Config {
    let mut config = Config {
        data_dir: dir.join("data"),
        cache_dir: dir.join("cache"),
        ..Config::default()
    };
    config.sites.insert(
        "default".into(),
        edgeship::site::SiteConfig {
            rules: vec![RuleConfig {
                pattern: "*.css".into(),
                strategy,
                ..RuleConfig::default()
            }],
            ..Default::default()
        },
    );
    config
}

async fn deploy(config: &Config) -> edgeship::deploy::DeployReport {
    let options = DeployOptions {
        input: common::fixture("site"),
        dry_run: false,
        delete: true,
        max_deletes: 256,
        concurrency: 8,
    };
    let report = Deployer::new(&edgeship::site::Sites::new(config).unwrap(), "default")
        .unwrap()
        .run(&options, Arc::new(NoProgress))
        .await
        .unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    report
}

fn unzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    decode(Encoding::Gzip, &mut &bytes[..], &mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_gzip_stores_one_encoded_object_and_the_origin_serves_or_decodes_it() {
    let dir = tempfile::tempdir().unwrap();
    let single = config(dir.path(), Some(Strategy::Single(Encoding::Gzip)));
    deploy(&single).await;
    let root = single.site("default").unwrap().root;
    let manifest =
        Manifest::from_json(&std::fs::read(root.join(".edgeship/manifest")).unwrap()).unwrap();
    let entry = &manifest.assets[CSS];
    assert_eq!(entry.single, Some(Encoding::Gzip));
    let stored = std::fs::read(root.join(CSS)).unwrap();
    assert_eq!(stored.len() as u64, entry.variants[&Encoding::Gzip]);
    let identity = unzip(&stored);
    assert_eq!(identity.len() as u64, entry.size);
    for sibling in [".gz", ".br", ".zst"] {
        assert!(!root.join(format!("{CSS}{sibling}")).exists(), "{sibling}");
    }
    // Other files keep their variants.
    assert!(root.join("assets/app.3f9c2a1b.js.br").exists());

    let app = common::http::TestApp::start(single.clone(), tempfile::tempdir().unwrap()).await;
    let path = format!("/{CSS}");
    let r = app
        .call("GET", &path, &[("accept-encoding", "gzip, br")], b"")
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.body, stored);
    let r = app.call("GET", &path, &[], b"").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-encoding"),
        None,
        "decoded for a client without gzip"
    );
    assert_eq!(r.body, identity);
    assert_eq!(
        r.header("etag"),
        Some(format!("\"{}\"", entry.hash).as_str())
    );
    let r = app
        .call(
            "GET",
            &path,
            &[("accept-encoding", "br, identity;q=0")],
            b"",
        )
        .await;
    assert_eq!(r.status, 406);
    drop(app);

    // Back to variants: the identity returns at the path, with its siblings.
    let variants = config(dir.path(), None);
    let report = deploy(&variants).await;
    assert!(report.uploaded >= 2, "{report:?}");
    assert_eq!(std::fs::read(root.join(CSS)).unwrap(), identity);
    assert!(root.join(format!("{CSS}.gz")).exists());
    let manifest =
        Manifest::from_json(&std::fs::read(root.join(".edgeship/manifest")).unwrap()).unwrap();
    assert_eq!(manifest.assets[CSS].single, None);
    // And again to single: the object at the path is replaced, stale siblings deleted.
    deploy(&single).await;
    assert_eq!(std::fs::read(root.join(CSS)).unwrap(), stored);
    assert!(
        !root.join(format!("{CSS}.gz")).exists(),
        "--delete removed the sibling"
    );
}
