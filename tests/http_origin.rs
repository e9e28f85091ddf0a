//! The origin against a site deployed by the deploy engine (assets-fixtures/site), with
//! the real app on a random port: negotiation, validators, ranges, reloads, counters.

mod common;

use common::http::{Response, request};

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgeship::analytics::origin::{OriginTotals, origin_totals};
use edgeship::cache::Cache;
use edgeship::config::Config;
use edgeship::deploy::{DeployOptions, Deployer};
use edgeship::pipeline::build::NoProgress;
use edgeship::pipeline::compress::{Encoding, decode};
use edgeship::pipeline::manifest::Manifest;

/// A small fingerprinted script with every variant: identity 7.7 KB, br/gzip/zstd ~3.5 KB.
const SCRIPT: &str = "assets/app.3f9c2a1b.js";

/// The shared test app, started on a deployed site.
struct TestApp(common::http::TestApp);

impl std::ops::Deref for TestApp {
    type Target = common::http::TestApp;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl TestApp {
    /// Deploys `input` (default: the fixture site) with the deploy engine into a fresh
    /// data dir, then starts the app.
    async fn deployed(input: Option<&Path>) -> Self {
        Self::deployed_with(input, |_| {}).await
    }

    /// Like [`TestApp::deployed`], with a config adjusted by `configure`.
    async fn deployed_with(input: Option<&Path>, configure: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: dir.path().join("data"),
            cache_dir: dir.path().join("cache"),
            ..Config::default()
        };
        configure(&mut config);
        let input = input.map_or_else(|| common::fixture("site"), Path::to_path_buf);
        deploy(&config, &input).await;
        Self(common::http::TestApp::start(config, dir).await)
    }

    fn root(&self) -> PathBuf {
        self.config.site("default").unwrap().root
    }

    fn manifest(&self) -> Manifest {
        Manifest::from_json(&std::fs::read(self.root().join(".edgeship/manifest")).unwrap())
            .unwrap()
    }

    fn identity(&self, path: &str) -> Vec<u8> {
        std::fs::read(self.root().join(path)).unwrap()
    }

    fn cache(&self) -> &Cache {
        self.state.cache()
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        raw_request(&self.base, "GET", path, headers).await
    }

    async fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        raw_request(&self.base, method, path, headers).await
    }

    /// Polls the flushed counters until `done` holds (the flusher runs every second).
    async fn totals_when(&self, done: impl Fn(&OriginTotals) -> bool) -> OriginTotals {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let totals = origin_totals(self.cache(), "default").await.unwrap();
            if done(&totals) {
                return totals;
            }
            assert!(
                Instant::now() < deadline,
                "counters never got there: {totals:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

async fn deploy(config: &Config, input: &Path) {
    let options = DeployOptions {
        input: input.to_path_buf(),
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
}

/// One request; the origin always sends a Content-Length, never a chunked body.
async fn raw_request(base: &str, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let response = request(base, method, path, headers, b"").await;
    assert!(
        response.header("transfer-encoding").is_none(),
        "the origin always sends a Content-Length"
    );
    response
}

fn decoded(encoding: Option<&str>, body: &[u8]) -> Vec<u8> {
    let encoding = match encoding {
        None => return body.to_vec(),
        Some("br") => Encoding::Br,
        Some("gzip") => Encoding::Gzip,
        Some("zstd") => Encoding::Zstd,
        Some(other) => panic!("unexpected Content-Encoding {other}"),
    };
    let mut out = Vec::new();
    decode(encoding, &mut &body[..], &mut out).unwrap();
    out
}

#[tokio::test]
async fn each_variant_is_chosen_by_accept_encoding_and_decodes_to_the_identity_bytes() {
    let app = TestApp::deployed(None).await;
    let manifest = app.manifest();
    let entry = &manifest.assets[SCRIPT];
    let identity = app.identity(SCRIPT);
    assert_eq!(identity.len() as u64, entry.size);
    let size = |e: Encoding| entry.variants[&e].to_string();
    let hash = entry.hash.as_str();
    let cases: &[(Option<&str>, Option<&str>)] = &[
        (None, None),
        (Some("br"), Some("br")),
        (Some("gzip"), Some("gzip")),
        (Some("zstd"), Some("zstd")),
        (Some("identity"), None),
        // Equal weights: the smallest variant (br, per the manifest's sizes).
        (Some("gzip, deflate, br, zstd"), Some("br")),
        (Some("*"), Some("br")),
        // q-values outrank size.
        (Some("br;q=0.5, gzip;q=0.8, zstd;q=0.1"), Some("gzip")),
        (Some("br;q=0.1, identity;q=0.5"), None),
        // q=0 excludes; `*` covers what is not listed.
        (Some("br;q=0, *"), Some("zstd")),
        (Some("br;q=0"), None),
        (Some("deflate"), None),
    ];
    for (accept, expected) in cases {
        let headers: Vec<(&str, &str)> = accept.iter().map(|a| ("accept-encoding", *a)).collect();
        let response = app.get(&format!("/{SCRIPT}"), &headers).await;
        assert_eq!(response.status, 200, "{accept:?}");
        assert_eq!(response.header("content-encoding"), *expected, "{accept:?}");
        assert_eq!(
            response.header("vary"),
            Some("accept-encoding"),
            "{accept:?}"
        );
        assert_eq!(
            response.header("content-type"),
            Some(entry.content_type.as_str())
        );
        assert_eq!(
            response.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        let (etag, length) = match expected {
            None => (format!("\"{hash}\""), entry.size.to_string()),
            Some("br") => (format!("\"{hash}-br\""), size(Encoding::Br)),
            Some("gzip") => (format!("\"{hash}-gzip\""), size(Encoding::Gzip)),
            Some(_) => (format!("\"{hash}-zstd\""), size(Encoding::Zstd)),
        };
        assert_eq!(response.header("etag"), Some(etag.as_str()), "{accept:?}");
        assert_eq!(
            response.header("content-length"),
            Some(length.as_str()),
            "{accept:?}"
        );
        assert_eq!(
            response.header("accept-ranges"),
            expected.is_none().then_some("bytes"),
            "{accept:?}"
        );
        assert!(response.header("last-modified").is_some());
        assert_eq!(
            decoded(*expected, &response.body),
            identity,
            "{accept:?}: the body decodes to the identity bytes"
        );
    }
}

#[tokio::test]
async fn nothing_acceptable_is_406_with_vary() {
    let app = TestApp::deployed(None).await;
    let response = app
        .get(&format!("/{SCRIPT}"), &[("accept-encoding", "*;q=0")])
        .await;
    assert_eq!(response.status, 406);
    assert_eq!(response.header("vary"), Some("accept-encoding"));
    let json = response.json();
    assert_eq!(json["error"]["code"], "not_acceptable");
    assert_eq!(
        json["error"]["message"],
        format!(
            "no acceptable encoding for /{SCRIPT}: it is available as identity, br, gzip, zstd"
        )
    );

    // An image has no variants: br is not available, identity is refused.
    let response = app
        .get(
            "/images/hero.png",
            &[("accept-encoding", "br, identity;q=0")],
        )
        .await;
    assert_eq!(response.status, 406);
    let response = app
        .get("/images/hero.png", &[("accept-encoding", "br")])
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-encoding"), None);
    assert_eq!(response.header("content-type"), Some("image/png"));
    assert_eq!(response.body, app.identity("images/hero.png"));
}

#[tokio::test]
async fn if_none_match_gives_304_for_the_same_variant_only() {
    let app = TestApp::deployed(None).await;
    let path = format!("/{SCRIPT}");
    let br = app.get(&path, &[("accept-encoding", "br")]).await;
    let br_tag = br.header("etag").unwrap().to_owned();
    let gzip_tag = app
        .get(&path, &[("accept-encoding", "gzip")])
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    assert_ne!(br_tag, gzip_tag);

    let weak = format!("W/{br_tag}");
    let list = format!("\"nope\", {gzip_tag}, {br_tag}");
    for if_none_match in [br_tag.as_str(), weak.as_str(), list.as_str(), "*"] {
        let response = app
            .get(
                &path,
                &[("accept-encoding", "br"), ("if-none-match", if_none_match)],
            )
            .await;
        assert_eq!(response.status, 304, "{if_none_match}");
        assert!(response.body.is_empty());
        assert_eq!(response.header("etag"), Some(br_tag.as_str()));
        assert_eq!(response.header("vary"), Some("accept-encoding"));
        assert_eq!(
            response.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert_eq!(response.header("content-encoding"), None);
    }

    // The client holds the gzip variant but now takes br: a full br response.
    let response = app
        .get(
            &path,
            &[("accept-encoding", "br"), ("if-none-match", &gzip_tag)],
        )
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("etag"), Some(br_tag.as_str()));
    assert_eq!(response.body, br.body);
}

#[tokio::test]
async fn if_modified_since_applies_only_without_if_none_match() {
    let app = TestApp::deployed(None).await;
    let first = app.get("/index.html", &[]).await;
    let last_modified = first.header("last-modified").unwrap().to_owned();
    let response = app
        .get("/index.html", &[("if-modified-since", &last_modified)])
        .await;
    assert_eq!(response.status, 304);
    assert_eq!(
        response.header("last-modified"),
        Some(last_modified.as_str())
    );
    let response = app
        .get(
            "/index.html",
            &[("if-modified-since", "Thu, 01 Jan 1998 00:00:00 GMT")],
        )
        .await;
    assert_eq!(response.status, 200);
    let response = app
        .get(
            "/index.html",
            &[
                ("if-modified-since", &last_modified),
                ("if-none-match", "\"other\""),
            ],
        )
        .await;
    assert_eq!(response.status, 200, "If-None-Match decides when present");
}

#[tokio::test]
async fn head_has_the_headers_of_get_and_no_body() {
    let app = TestApp::deployed(None).await;
    let path = format!("/{SCRIPT}");
    let get = app.get(&path, &[("accept-encoding", "br")]).await;
    let head = app
        .request("HEAD", &path, &[("accept-encoding", "br")])
        .await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    for name in [
        "content-length",
        "content-encoding",
        "content-type",
        "etag",
        "vary",
        "cache-control",
        "last-modified",
    ] {
        assert_eq!(head.header(name), get.header(name), "{name}");
    }
    assert_eq!(
        head.header("content-length").unwrap(),
        get.body.len().to_string()
    );
}

#[tokio::test]
async fn ranges_are_served_on_identity() {
    let app = TestApp::deployed(None).await;
    let path = format!("/{SCRIPT}");
    let identity = app.identity(SCRIPT);
    let len = identity.len();
    let etag = app.get(&path, &[]).await.header("etag").unwrap().to_owned();

    let response = app.get(&path, &[("range", "bytes=10-19")]).await;
    assert_eq!(response.status, 206);
    assert_eq!(
        response.header("content-range"),
        Some(format!("bytes 10-19/{len}").as_str())
    );
    assert_eq!(response.header("content-length"), Some("10"));
    assert_eq!(response.header("etag"), Some(etag.as_str()));
    assert_eq!(response.body, &identity[10..20]);

    let response = app.get(&path, &[("range", "bytes=-5")]).await;
    assert_eq!(response.status, 206);
    assert_eq!(response.body, &identity[len - 5..]);

    let response = app.get(&path, &[("range", &format!("bytes={len}-"))]).await;
    assert_eq!(response.status, 416);
    assert_eq!(
        response.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    assert_eq!(response.json()["error"]["code"], "range_not_satisfiable");

    // Several ranges: the whole representation.
    let response = app.get(&path, &[("range", "bytes=0-1,5-9")]).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, identity);

    // If-Range: the current ETag keeps the range; a stale one gets everything.
    let response = app
        .get(&path, &[("range", "bytes=0-3"), ("if-range", &etag)])
        .await;
    assert_eq!(
        (response.status, response.body.as_slice()),
        (206, &identity[..4])
    );
    let response = app
        .get(&path, &[("range", "bytes=0-3"), ("if-range", "\"stale\"")])
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, identity);

    // An encoded variant is never ranged.
    let response = app
        .get(&path, &[("range", "bytes=0-3"), ("accept-encoding", "br")])
        .await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-encoding"), Some("br"));
    assert_eq!(response.header("accept-ranges"), None);
    assert_eq!(decoded(Some("br"), &response.body), identity);
}

#[tokio::test]
async fn directory_paths_serve_their_index_from_the_manifest() {
    let app = TestApp::deployed(None).await;
    let manifest = app.manifest();
    for (path, key) in [
        ("/", "index.html"),
        ("/blog/", "blog/index.html"),
        ("/blog", "blog/index.html"),
    ] {
        let response = app.get(path, &[("accept-encoding", "gzip")]).await;
        assert_eq!(response.status, 200, "{path}");
        let etag = format!("\"{}-gzip\"", manifest.assets[key].hash);
        assert_eq!(response.header("etag"), Some(etag.as_str()), "{path}");
        assert_eq!(
            response.header("cache-control"),
            Some("public, max-age=0, must-revalidate")
        );
        assert_eq!(decoded(Some("gzip"), &response.body), app.identity(key));
    }
    let response = app.get("/docs/caf%C3%A9-men%C3%BC.txt", &[]).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, app.identity("docs/café-menü.txt"));
}

#[tokio::test]
async fn a_redeploy_is_served_without_a_restart() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("site");
    common::copy_tree(&common::fixture("site"), &input);
    let app = TestApp::deployed(Some(&input)).await;
    let before = app.get("/about/", &[("accept-encoding", "br")]).await;
    let old_tag = before.header("etag").unwrap().to_owned();
    // Warm the memory cache with the old bytes.
    assert_eq!(app.get("/about/", &[]).await.status, 200);

    let page = input.join("about/index.html");
    let changed = std::fs::read_to_string(&page)
        .unwrap()
        .replace("</body>", "<p>redeployed</p></body>");
    std::fs::write(&page, &changed).unwrap();
    deploy(&app.config, &input).await;
    let new_hash = app.manifest().assets["about/index.html"].hash.clone();

    let deadline = Instant::now() + Duration::from_secs(5);
    let after = loop {
        let response = app.get("/about/", &[("accept-encoding", "br")]).await;
        if response.header("etag") != Some(old_tag.as_str()) {
            break response;
        }
        assert!(Instant::now() < deadline, "the redeploy was never served");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        after.header("etag"),
        Some(format!("\"{new_hash}-br\"").as_str())
    );
    let body = decoded(Some("br"), &after.body);
    assert_eq!(body, app.identity("about/index.html"));
    assert!(String::from_utf8(body).unwrap().contains("redeployed"));
    let identity = app.get("/about/", &[]).await;
    assert_eq!(identity.body, app.identity("about/index.html"));
    // The old tag no longer validates.
    let response = app.get("/about/", &[("if-none-match", &old_tag)]).await;
    assert_eq!(response.status, 200);
}

#[tokio::test]
async fn a_missing_variant_file_falls_back_to_the_next_acceptable_representation() {
    let app = TestApp::deployed(None).await;
    std::fs::remove_file(app.root().join(format!("{SCRIPT}.br"))).unwrap();
    let path = format!("/{SCRIPT}");
    let response = app.get(&path, &[("accept-encoding", "br, gzip")]).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-encoding"), Some("gzip"));
    assert_eq!(decoded(Some("gzip"), &response.body), app.identity(SCRIPT));
    let response = app.get(&path, &[("accept-encoding", "br")]).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-encoding"), None);
    let response = app
        .get(&path, &[("accept-encoding", "br, identity;q=0")])
        .await;
    assert_eq!(response.status, 404);
}

#[tokio::test]
async fn traversal_and_the_edgeship_directory_are_refused() {
    let app = TestApp::deployed(None).await;
    for path in [
        "/.edgeship/manifest",
        "/.edgeship/meta/index.html.json",
        "/.edgeship",
        "/%2Eedgeship/manifest",
    ] {
        let response = app.get(path, &[]).await;
        assert_eq!(response.status, 404, "{path}");
        assert_eq!(response.json()["error"]["code"], "not_found");
    }
    for path in ["/%2e%2e/%2e%2e/etc/passwd", "/assets/..%2f..%2fsecret"] {
        let response = app.get(path, &[]).await;
        assert_eq!(response.status, 400, "{path}");
        assert_eq!(response.json()["error"]["code"], "bad_path");
    }
    let response = app.request("DELETE", "/index.html", &[]).await;
    assert_eq!(response.status, 405);
}

#[tokio::test]
async fn files_outside_the_manifest_are_served_as_they_are() {
    let app = TestApp::deployed(None).await;
    std::fs::write(app.root().join("extra.txt"), b"not deployed").unwrap();
    let response = app.get("/extra.txt", &[("accept-encoding", "br")]).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"not deployed");
    assert_eq!(response.header("content-encoding"), None);
    assert_eq!(response.header("etag"), None);
    assert_eq!(
        response.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(app.get("/missing.txt", &[]).await.status, 404);
}

#[tokio::test]
async fn large_files_are_streamed_with_ranges() {
    let work = tempfile::tempdir().unwrap();
    let input = work.path().join("site");
    std::fs::create_dir_all(&input).unwrap();
    // Above the memory cache's 1 MiB: 1.5 MiB of noise in a format the pipeline passes
    // through (no variants), and 1.2 MiB of text (variants, themselves small).
    let mut noise = Vec::with_capacity(3 << 19);
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while noise.len() < 3 << 19 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(input.join("noise.png"), &noise).unwrap();
    let text: String = (0..130_000).map(|i| format!("line {i:06}\n")).collect();
    assert!(text.len() > 1 << 20);
    std::fs::write(input.join("big.txt"), &text).unwrap();
    // Fast levels: the maximum ones spend most of this test compressing a megabyte.
    let app = TestApp::deployed_with(Some(&input), |config| {
        config.pipeline.brotli_quality = 4;
        config.pipeline.gzip_level = 4;
        config.pipeline.zstd_level = 3;
    })
    .await;
    assert!(app.manifest().assets["noise.png"].variants.is_empty());

    let response = app.get("/noise.png", &[("accept-encoding", "br")]).await;
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-encoding"), None);
    assert_eq!(response.body, noise);
    let response = app
        .get("/noise.png", &[("range", "bytes=1048570-1148570")])
        .await;
    assert_eq!(response.status, 206);
    assert_eq!(response.body, &noise[1_048_570..=1_148_570]);
    let head = app.request("HEAD", "/noise.png", &[]).await;
    assert_eq!(
        head.header("content-length"),
        Some(noise.len().to_string().as_str())
    );
    assert!(head.body.is_empty());

    let response = app.get("/big.txt", &[]).await;
    assert_eq!(response.body, text.as_bytes());
    let response = app.get("/big.txt", &[("accept-encoding", "zstd")]).await;
    assert_eq!(decoded(Some("zstd"), &response.body), text.as_bytes());
}

#[tokio::test]
async fn bytes_served_are_counted_per_encoding_for_analytics_and_prometheus() {
    let app = TestApp::deployed(None).await;
    let manifest = app.manifest();
    let entry = &manifest.assets[SCRIPT];
    let path = format!("/{SCRIPT}");
    let br = app.get(&path, &[("accept-encoding", "br")]).await;
    app.get(&path, &[("accept-encoding", "br")]).await;
    app.get(&path, &[("accept-encoding", "gzip")]).await;
    app.get(&path, &[]).await;
    app.request("HEAD", &path, &[("accept-encoding", "zstd")])
        .await;
    app.get(&path, &[("range", "bytes=0-99")]).await;
    let etag = br.header("etag").unwrap();
    let not_modified = app
        .get(&path, &[("accept-encoding", "br"), ("if-none-match", etag)])
        .await;
    assert_eq!(not_modified.status, 304);
    assert_eq!(app.get("/nope", &[]).await.status, 404);

    let totals = app
        .totals_when(|t| t.requests >= 6 && t.not_modified >= 1)
        .await;
    let br_size = entry.variants[&Encoding::Br];
    let gzip_size = entry.variants[&Encoding::Gzip];
    assert_eq!(totals.requests, 6);
    assert_eq!(totals.not_modified, 1);
    assert_eq!(totals.by_encoding["br"].requests, 2);
    assert_eq!(totals.by_encoding["br"].bytes, 2 * br_size);
    assert_eq!(totals.by_encoding["br"].identity_bytes, 2 * entry.size);
    assert_eq!(totals.by_encoding["gzip"].bytes, gzip_size);
    assert_eq!(
        totals.by_encoding["zstd"].requests, 1,
        "HEAD counts a request"
    );
    assert_eq!(totals.by_encoding["zstd"].bytes, 0, "and no bytes");
    assert_eq!(totals.by_encoding["identity"].requests, 2);
    assert_eq!(totals.by_encoding["identity"].bytes, entry.size + 100);
    assert_eq!(totals.bytes, 2 * br_size + gzip_size + entry.size + 100);
    assert_eq!(totals.saved_bytes, totals.identity_bytes - totals.bytes);

    let metrics = app.get("/metrics", &[]).await;
    let text = String::from_utf8(metrics.body).unwrap();
    for line in [
        "edgeship_origin_bytes_total{site=\"default\",encoding=\"br\"}",
        "edgeship_origin_identity_bytes_total{site=\"default\",encoding=\"gzip\"}",
        "edgeship_origin_requests_total{site=\"default\",status=\"304\"}",
        "edgeship_origin_requests_total{site=\"default\",status=\"404\"}",
    ] {
        assert!(text.contains(line), "{line} missing from:\n{text}");
    }
}
