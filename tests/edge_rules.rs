//! `edgeship edge-rules`: the configuration printed for nginx, a Cloudflare Worker and a
//! CloudFront Function makes each edge answer as edgeship's own origin does — the same
//! coding, bytes, Content-Type, Cache-Control, Vary and Use-As-Dictionary, deltas
//! included. Each edge runs for real: Debian's nginx on the local site's directory; the
//! Worker in workerd (miniflare) with an R2 bucket holding the site's objects; the
//! CloudFront Function in node, in front of the same site deployed to S3 (moto). The
//! origin (`serve`) answers the same requests, and the answers are compared.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::http::{Response, TestApp};
use common::releases::{NEW_BUNDLE, OLD_BUNDLE, two_releases};
use edgeship::pipeline::delta::{DeltaEncoding, Sha256};
use edgeship::pipeline::manifest::Manifest;

/// The origin with v1 then v2 of the fixture site deployed, so the new bundle has dcz and
/// dcb deltas from the old one.
async fn origin_after_two_deploys() -> TestApp {
    let app = TestApp::spawn_with(|config| {
        config.deploy.dictionaries.encodings = vec![DeltaEncoding::Dcz, DeltaEncoding::Dcb];
    })
    .await;
    let (v1, v2) = two_releases();
    app.deploy_dir(v1.path()).await;
    app.deploy_dir(v2.path()).await;
    app
}

fn site_dir(app: &TestApp) -> PathBuf {
    app.data.path().join("sites/default")
}

fn manifest_of(app: &TestApp) -> Manifest {
    Manifest::from_json(&std::fs::read(site_dir(app).join(".edgeship/manifest")).unwrap()).unwrap()
}

/// `edgeship edge-rules` run against the app's data directory.
fn edge_rules(app: &TestApp, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_edgeship"))
        .arg("edge-rules")
        .args(args)
        .current_dir(app.data.path())
        .env_remove("EDGESHIP_CONFIG")
        .env("EDGESHIP_DATA_DIR", app.data.path())
        .env("EDGESHIP_CACHE_DIR", app.data.path().join("cache"))
        .env("EDGESHIP_LOG__LEVEL", "warn")
        .output()
        .unwrap()
}

/// One request of the comparison: a path and its headers.
#[derive(Debug, Clone)]
struct Ask {
    path: String,
    headers: Vec<(&'static str, String)>,
}

impl Ask {
    fn pairs(&self) -> Vec<(&str, &str)> {
        self.headers.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }
}

/// A manifest path as a request path: `/` and every byte outside the unreserved set
/// percent-encoded (`docs/café.txt` → `/docs/caf%C3%A9.txt`).
fn url_path(path: &str) -> String {
    let mut out = String::from("/");
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Every deployed path (and a few others) under several `Accept-Encoding`s, and the new
/// bundle under every `Available-Dictionary` case. With `ties`, also headers listing
/// several codings at one weight, where the origin sends the smallest (only edges that
/// know the sizes can follow).
fn asks(manifest: &Manifest, ties: bool) -> Vec<Ask> {
    let mut paths: Vec<String> = manifest.assets.keys().map(|p| url_path(p)).collect();
    paths.extend(["/", "/blog/", "/no-such-file.js"].map(String::from));
    let mut encodings = vec![
        None,
        Some("gzip"),
        Some("br"),
        Some("zstd"),
        Some("br;q=1, zstd;q=0.5, gzip;q=0.2"),
        Some("gzip, br;q=0"),
        Some("identity"),
    ];
    if ties {
        encodings.push(Some("gzip, deflate, br, zstd"));
    }
    let mut asks = Vec::new();
    for path in &paths {
        for encoding in &encodings {
            asks.push(Ask {
                path: path.clone(),
                headers: encoding
                    .map(|e| vec![("accept-encoding", e.to_string())])
                    .unwrap_or_default(),
            });
        }
    }
    let old = &manifest.assets[OLD_BUNDLE];
    let held = format!(":{}:", old.dictionary.as_ref().unwrap().sha256.base64());
    let unknown = format!(":{}:", Sha256::of(b"some other version").base64());
    let mut dictionary_cases = vec![
        ("dcz, br", held.clone()),
        ("dcb, br", held.clone()),
        ("br, dcz;q=0.5", held.clone()),
        ("br, dcb, dcz", unknown),
        ("br, dcb, dcz", held.trim_matches(':').to_string()),
        ("br, dcb, dcz", ":%%%:".to_string()),
        ("br", held.clone()),
        ("br, *", held.clone()),
    ];
    if ties {
        dictionary_cases.push(("gzip, deflate, br, zstd, dcb, dcz", held.clone()));
    }
    for (encoding, dictionary) in dictionary_cases {
        asks.push(Ask {
            path: format!("/{NEW_BUNDLE}"),
            headers: vec![
                ("accept-encoding", encoding.to_string()),
                ("available-dictionary", dictionary),
            ],
        });
    }
    asks
}

/// The headers both answers must agree on.
const COMPARED: [&str; 5] = [
    "content-encoding",
    "content-type",
    "cache-control",
    "vary",
    "use-as-dictionary",
];

/// Checks that `edge` answered `ask` as `origin` did; returns the coding.
fn assert_same(edge_name: &str, ask: &Ask, edge: &Response, origin: &Response) -> String {
    assert_eq!(
        edge.status,
        origin.status,
        "{edge_name}: status of {ask:?}: {}",
        String::from_utf8_lossy(&edge.body)
    );
    if origin.status != 200 {
        return String::new();
    }
    for name in COMPARED {
        assert_eq!(
            edge.header(name),
            origin.header(name),
            "{edge_name}: `{name}` of {ask:?}"
        );
    }
    assert!(
        edge.body == origin.body,
        "{edge_name}: the body of {ask:?} differs from the origin's ({} and {} bytes)",
        edge.body.len(),
        origin.body.len()
    );
    origin
        .header("content-encoding")
        .unwrap_or("identity")
        .to_string()
}

/// A GET read to the end of its response — by `Content-Length`, or to the last chunk —
/// without waiting for the server to close the connection (workerd may keep it open).
async fn fetch(base: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    use tokio::io::AsyncReadExt;
    let mut stream = common::http::start_request(base, "GET", path, headers, None).await;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
            let body = &raw[split + 4..];
            let done = if head.contains("transfer-encoding: chunked") {
                body.ends_with(b"0\r\n\r\n")
            } else {
                let length: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                body.len() >= length
            };
            if done {
                return common::http::parse_response(&raw);
            }
        }
        let n = tokio::time::timeout(std::time::Duration::from_secs(20), stream.read(&mut chunk))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no complete answer to {path} {headers:?}: {}",
                    String::from_utf8_lossy(&raw)
                )
            })
            .unwrap_or(0);
        if n == 0 {
            return common::http::parse_response(&raw);
        }
        raw.extend_from_slice(&chunk[..n]);
    }
}

/// `body` decoded from `coding` (gzip or br).
fn decoded(coding: &str, body: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    match coding {
        "gzip" => flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .unwrap(),
        "br" => brotli::Decompressor::new(body, 4096)
            .read_to_end(&mut out)
            .unwrap(),
        other => panic!("no decoder for {other}"),
    };
    out
}

/// Compares `edge` with the origin over `asks`; returns how many answers were deltas.
///
/// With `recompresses`, the edge may re-encode text among identity, gzip and br by what
/// the client accepts (Cloudflare's front line does, after the Worker; miniflare plays
/// it, preferring the first of gzip and br the client lists); the bytes must then decode
/// to the origin's.
async fn compare_with(
    edge_name: &str,
    edge_base: &str,
    app: &TestApp,
    asks: &[Ask],
    recompresses: bool,
) -> usize {
    let mut deltas = 0;
    let mut codings = std::collections::BTreeSet::new();
    for ask in asks {
        let origin = app.call("GET", &ask.path, &ask.pairs(), b"").await;
        let mut origin = origin;
        let mut edge = fetch(edge_base, &ask.path, &ask.pairs()).await;
        let coding_of = |r: &Response| {
            r.header("content-encoding")
                .unwrap_or("identity")
                .to_string()
        };
        let (edge_coding, origin_coding) = (coding_of(&edge), coding_of(&origin));
        let transcodable = ["identity", "gzip", "br"];
        if recompresses
            && origin.status == 200
            && edge_coding != origin_coding
            && transcodable.contains(&edge_coding.as_str())
            && transcodable.contains(&origin_coding.as_str())
        {
            for (response, coding) in [(&mut edge, edge_coding), (&mut origin, origin_coding)] {
                if coding != "identity" {
                    response.body = decoded(&coding, &response.body);
                }
                response
                    .headers
                    .retain(|(name, _)| name != "content-encoding");
            }
        }
        let coding = assert_same(edge_name, ask, &edge, &origin);
        if coding == "dcz" || coding == "dcb" {
            deltas += 1;
        }
        codings.insert(coding);
    }
    for coding in ["identity", "br", "gzip", "zstd", "dcz", "dcb"] {
        assert!(
            codings.contains(coding),
            "{edge_name}: no answer was {coding}: {codings:?}"
        );
    }
    deltas
}

async fn compare(edge_name: &str, edge_base: &str, app: &TestApp, asks: &[Ask]) -> usize {
    compare_with(edge_name, edge_base, app, asks, false).await
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_for_port(port: u16, child: &mut Child) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the server exited before listening: {status}");
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("nothing listens on {port}");
}

/// Closes a child's standard input and waits for it to exit (killing it after 20 s),
/// when dropped.
struct Closed(Child);

impl Drop for Closed {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        for _ in 0..200 {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs a stop command, then waits for the child, when dropped.
struct Stopped(Command, Child);

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = self.0.status();
        let _ = self.1.wait();
    }
}

fn nginx() -> PathBuf {
    let path = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    path.expect("nginx is not installed: scripts/test installs it (Debian package `nginx`)")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_answers_as_the_origin_does() {
    let app = origin_after_two_deploys().await;
    let manifest = manifest_of(&app);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("edgeship-default.conf");
    let out = edge_rules(
        &app,
        &[
            "--for",
            "nginx",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--out",
            conf.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let generated = std::fs::read_to_string(&conf).unwrap();
    assert!(generated.contains(&format!(
        "\":{}:\" {};",
        manifest.assets[OLD_BUNDLE].dictionary.as_ref().unwrap().sha256.base64(),
        manifest.assets[OLD_BUNDLE].dictionary.as_ref().unwrap().sha256.hex()
    )));

    // A minimal nginx.conf around it, as root only when the test runs as root (the
    // temporary directories are private to their owner).
    let root_user = String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout)
        .unwrap()
        .trim()
        == "0";
    let temp = dir.path().join("tmp");
    std::fs::create_dir(&temp).unwrap();
    let t = temp.display();
    std::fs::write(
        dir.path().join("nginx.conf"),
        format!(
            "{user}worker_processes 1;\nerror_log {d}/error.log;\npid {d}/nginx.pid;\nevents {{}}\n\
             http {{\n  access_log off;\n  client_body_temp_path {t}; proxy_temp_path {t}; \
             fastcgi_temp_path {t}; uwsgi_temp_path {t}; scgi_temp_path {t};\n  include {conf};\n}}\n",
            user = if root_user { "user root;\n" } else { "" },
            d = dir.path().display(),
            conf = conf.display(),
        ),
    )
    .unwrap();
    let nginx_args = |extra: &[&str]| {
        let mut cmd = Command::new(nginx());
        cmd.arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd
    };
    let mut child = nginx_args(&["-g", "daemon off;"]).spawn().unwrap();
    wait_for_port(port, &mut child).await;
    // Stopped through its master, which stops its workers too.
    let _nginx = Stopped(nginx_args(&["-s", "stop"]), child);
    let base = format!("http://127.0.0.1:{port}");

    // nginx picks by a fixed order among the codings listed with q > 0, so ties between
    // codings of one weight are left out (the origin sends the smallest).
    let deltas = compare("nginx", &base, &app, &asks(&manifest, false)).await;
    assert!(deltas >= 2, "dcz and dcb deltas were sent");

    // What the origin never serves, nginx does not either.
    for path in ["/.edgeship/manifest", "/.edgeship/history/index.json"] {
        let r = common::http::request(&base, "GET", path, &[], b"").await;
        assert_eq!(r.status, 404, "{path}");
    }
    // Without the header a client gets no delta even when asking for the file's name.
    let r = common::http::request(
        &base,
        "GET",
        &format!("/{NEW_BUNDLE}"),
        &[("accept-encoding", "dcz, dcb")],
        b"",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloudflare_worker_answers_as_the_origin_does() {
    let corpus = std::env::var("EDGESHIP_JS_CORPUS").expect(
        "EDGESHIP_JS_CORPUS is not set: run the tests through scripts/test (it installs miniflare with the JS corpus)",
    );
    let app = origin_after_two_deploys().await;
    let manifest = manifest_of(&app);
    let dir = tempfile::tempdir().unwrap();
    let worker = dir.path().join("worker.js");
    let out = edge_rules(
        &app,
        &["--for", "cloudflare", "--out", worker.to_str().unwrap()],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The bucket also holds a delta no manifest names (as an interrupted deploy may leave
    // one): the Worker never sends it.
    let bucket = tempfile::tempdir().unwrap();
    common::copy_tree(&site_dir(&app), bucket.path());
    let stray = Sha256::of(b"some other version");
    std::fs::write(
        bucket
            .path()
            .join(format!("{NEW_BUNDLE}.{}.dcz", stray.hex())),
        b"not the new version",
    )
    .unwrap();

    let mut child = Command::new("node")
        .arg(common::repo().join("tests/js/edge-worker.mjs"))
        .arg(&worker)
        .arg(bucket.path())
        .arg("SITE")
        .env("NODE_PATH", format!("{corpus}/node_modules"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || BufReader::new(stdout).lines().next())
        .await
        .unwrap()
        .expect("no line from tests/js/edge-worker.mjs")
        .unwrap();
    // Closing its standard input makes the harness dispose of miniflare, which stops
    // workerd (a SIGKILL would leave workerd running).
    let _worker = Closed(child);
    let mut words = line.split(' ');
    assert_eq!(words.next(), Some("ready"), "{line}");
    let base = words.next().unwrap().to_string();

    // The Worker knows every size from the manifest: it follows the origin exactly.
    let asks = asks(&manifest, true);
    // Cloudflare (and miniflare, which plays it) compresses text the Worker sends as
    // identity when the client accepts gzip or br.
    let deltas = compare_with("worker", &base, &app, &asks, true).await;
    assert!(deltas >= 3);

    for path in ["/.edgeship/manifest", "/.edgeship/history/index.json"] {
        let r = common::http::request(&base, "GET", path, &[], b"").await;
        assert_eq!(r.status, 404, "{path}");
    }
    let r = common::http::request(&base, "POST", "/index.html", &[], b"x").await;
    assert_eq!(r.status, 405);
    let etag = {
        let r = common::http::request(
            &base,
            "GET",
            "/index.html",
            &[("accept-encoding", "br")],
            b"",
        )
        .await;
        r.header("etag").unwrap().to_string()
    };
    let r = common::http::request(
        &base,
        "GET",
        "/index.html",
        &[("accept-encoding", "br"), ("if-none-match", &etag)],
        b"",
    )
    .await;
    assert_eq!(r.status, 304);
}

#[cfg(feature = "aws")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloudfront_function_in_front_of_s3_answers_as_the_origin_does() {
    use edgeship_providers::aws::testing;

    let app = origin_after_two_deploys().await;
    let manifest = manifest_of(&app);

    // The same two releases deployed to S3 (moto) by the CLI.
    let endpoint = testing::moto_endpoint();
    let bucket = testing::unique_bucket("edge");
    testing::create_bucket(&endpoint, &bucket).await;
    let sandbox = common::Sandbox::new();
    std::fs::write(
        sandbox.path("edgeship.toml"),
        format!(
            "[deploy.dictionaries]\nencodings = [\"dcz\", \"dcb\"]\n\
             [sites.default]\nprovider = \"aws\"\n\
             [sites.default.aws]\nbucket = \"{bucket}\"\nregion = \"us-east-1\"\n\
             endpoint = \"{endpoint}\"\nforce_path_style = true\n"
        ),
    )
    .unwrap();
    let (v1, v2) = two_releases();
    let run = |args: Vec<String>| {
        let mut cmd = sandbox.command();
        cmd.args(&args);
        common::s3::with_credentials(
            &mut cmd,
            sandbox.dir.path(),
            testing::ACCESS_KEY,
            testing::SECRET_KEY,
        );
        cmd.output().unwrap()
    };
    for release in [&v1, &v2] {
        let out = run(vec!["deploy".into(), release.path().display().to_string()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let function = sandbox.path("function.js");
    let out = run(vec![
        "edge-rules".into(),
        "--for".into(),
        "cloudfront".into(),
        "--out".into(),
        function.display().to_string(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let size = std::fs::metadata(&function).unwrap().len();
    assert!(size <= 10 * 1024, "CloudFront takes 10 KB: {size}");

    // CloudFront knows no sizes: ties between codings of one weight are left out.
    let asks = asks(&manifest, false);
    let requests: Vec<serde_json::Value> = asks
        .iter()
        .map(|a| {
            serde_json::json!({
                "uri": a.path,
                "headers": a.headers.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<std::collections::BTreeMap<_, _>>(),
            })
        })
        .collect();
    let mut child = Command::new("node")
        .arg(common::repo().join("tests/js/edge-cloudfront.mjs"))
        .arg(&function)
        .arg(format!("{endpoint}/{bucket}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(serde_json::to_string(&requests).unwrap().as_bytes())
            .unwrap();
    }
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(output.status.success());
    let answers: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answers.len(), asks.len());

    let mut deltas = 0;
    for (ask, answer) in asks.iter().zip(&answers) {
        let origin = app.call("GET", &ask.path, &ask.pairs(), b"").await;
        use base64::Engine;
        let edge = Response {
            status: answer["status"].as_u64().unwrap() as u16,
            headers: answer["headers"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.to_string(), v.as_str().unwrap().to_string()))
                .collect(),
            body: base64::engine::general_purpose::STANDARD
                .decode(answer["body"].as_str().unwrap())
                .unwrap(),
        };
        // S3 answers 403 for a key it does not have, to anonymous readers of a private
        // bucket, where the origin answers 404.
        if origin.status == 404 {
            assert!(
                edge.status == 404 || edge.status == 403,
                "{ask:?}: {}",
                edge.status
            );
            continue;
        }
        // A path with nothing to choose is not in the function's table: S3 sends it as
        // stored, without the origin's `Vary: accept-encoding`.
        let mut edge = edge;
        let entry = manifest
            .assets
            .iter()
            .find(|(path, _)| url_path(path) == ask.path)
            .map(|(_, e)| e);
        if edge.header("vary").is_none()
            && entry.is_some_and(|e| {
                e.variants.is_empty() && e.deltas.is_empty() && e.dictionary.is_none()
            })
            && let Some(vary) = origin.header("vary")
        {
            edge.headers.push(("vary".into(), vary.to_string()));
        }
        let coding = assert_same("cloudfront", ask, &edge, &origin);
        if coding == "dcz" || coding == "dcb" {
            deltas += 1;
            assert!(
                answer["origin_uri"]
                    .as_str()
                    .unwrap()
                    .ends_with(&format!(".{coding}")),
                "the delta is its own object, and so its own cache key: {answer}"
            );
        }
    }
    assert!(deltas >= 2);
}

#[test]
fn a_site_without_a_manifest_or_an_unservable_site_is_a_clear_error() {
    let sandbox = common::Sandbox::new();
    let out = sandbox.run(&["edge-rules", "--for", "nginx"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = common::stderr(&out);
    assert!(
        stderr.contains("has no manifest yet") && stderr.contains("edgeship deploy"),
        "{stderr}"
    );
    let out = sandbox.run(&["edge-rules", "--for", "varnish"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        common::stderr(&out).contains("nginx"),
        "the choices are listed"
    );
}

/// The CloudFront Function's table has a limit; a site over it is refused with the
/// reason and the alternatives (the table is built from the manifest alone).
#[test]
fn a_site_too_large_for_a_cloudfront_function_is_refused_with_the_alternatives() {
    let mut manifest = Manifest::default();
    let entry: edgeship::pipeline::manifest::ManifestEntry =
        serde_json::from_value(serde_json::json!({
            "hash": "0".repeat(64), "size": 2000, "source_size": 2000,
            "content_type": "text/html; charset=utf-8", "cache_control": "public, max-age=0",
            "variants": {"br": 500, "gzip": 600},
        }))
        .unwrap();
    for i in 0..600 {
        manifest
            .assets
            .insert(format!("blog/post-{i}/index.html"), entry.clone());
    }
    let site = edgeship::edge_rules::EdgeSite {
        name: "www",
        manifest: &manifest,
        manifest_key: ".edgeship/manifest",
        prefix: "",
        bucket: None,
        root: None,
    };
    let err = edgeship::edge_rules::cloudfront::render(&site).unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("600 paths") && message.contains("10240") && message.contains("Worker"),
        "{message}"
    );
    // nginx needs a directory; the Worker has no limit.
    assert!(
        edgeship::edge_rules::nginx::render(&site, &Default::default())
            .unwrap_err()
            .to_string()
            .contains("--root")
    );
    let worker = edgeship::edge_rules::worker::render(&site, &Default::default());
    assert!(worker.contains("export default") && !worker.contains("__"));
}
