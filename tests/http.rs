//! The HTTP service, started on a random port with the real app.

mod common;

use std::net::TcpListener;

use edgeship::config::Config;
use edgeship::http::{AppState, serve};
use tokio::sync::oneshot;

struct TestApp {
    base: String,
    stop: Option<oneshot::Sender<()>>,
    _data: tempfile::TempDir,
}

impl TestApp {
    /// Starts the app with a data dir whose default site holds `files`.
    async fn spawn(files: &[(&str, &[u8])]) -> Self {
        let data = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: data.path().to_path_buf(),
            ..Config::default()
        };
        let root = config.site("default").unwrap().root;
        for (path, bytes) in files {
            let target = root.join(path);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(target, bytes).unwrap();
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let state = AppState::new(&config).unwrap();
        tokio::spawn(serve(listener, state, async move {
            let _ = stopped.await;
        }));
        Self {
            base,
            stop: Some(stop),
            _data: data,
        }
    }

    async fn request(&self, method: &str, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
        raw_request(&self.base, method, path).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A minimal HTTP/1.1 client over a TCP stream, so the tests need no HTTP client crate.
async fn raw_request(
    base: &str,
    method: &str,
    path: &str,
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v == "chunked")
    {
        body = dechunk(&body);
    }
    (status, headers, body)
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).unwrap().trim(), 16)
            .unwrap();
        raw = &raw[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[..size]);
        raw = &raw[size + 2..];
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn healthz_answers_ok() {
    let app = TestApp::spawn(&[]).await;
    let (status, headers, body) = app.request("GET", "/healthz").await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["status"], "ok");
}

#[tokio::test]
async fn origin_serves_site_files_with_rule_headers() {
    let app = TestApp::spawn(&[
        ("index.html", b"<!doctype html><p>home</p>"),
        ("blog/index.html", b"<p>blog</p>"),
        ("assets/app.3f9c2a1b.js", b"console.log(1)"),
        ("assets/styles.css", b"a{color:red}"),
        ("docs/caf\u{e9}.txt", "caf\u{e9}".as_bytes()),
    ])
    .await;
    let (status, headers, body) = app.request("GET", "/").await;
    assert_eq!(status, 200);
    assert_eq!(body, b"<!doctype html><p>home</p>");
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        header(&headers, "cache-control"),
        Some("public, max-age=0, must-revalidate")
    );

    let (status, _, body) = app.request("GET", "/blog/").await;
    assert_eq!((status, body.as_slice()), (200, &b"<p>blog</p>"[..]));

    let (status, headers, _) = app.request("GET", "/assets/app.3f9c2a1b.js").await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        header(&headers, "cache-control"),
        Some("public, max-age=31536000, immutable")
    );

    let (_, headers, _) = app.request("GET", "/assets/styles.css").await;
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/css; charset=utf-8")
    );
    assert_eq!(
        header(&headers, "cache-control"),
        Some("public, max-age=300")
    );

    let (status, _, body) = app.request("GET", "/docs/caf%C3%A9.txt").await;
    assert_eq!((status, body.as_slice()), (200, "caf\u{e9}".as_bytes()));

    let (status, headers, body) = app.request("HEAD", "/assets/app.3f9c2a1b.js").await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "content-length"), Some("14"));
    assert!(body.is_empty());
}

#[tokio::test]
async fn origin_refuses_traversal_and_reports_missing_files_as_json() {
    let app = TestApp::spawn(&[("index.html", b"x"), (".edgeship/manifest.json", b"{}")]).await;
    let (status, _, body) = app.request("GET", "/nope.js").await;
    assert_eq!(status, 404);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"]["code"], "not_found");
    assert_eq!(json["error"]["message"], "no asset at /nope.js");

    let (status, _, _) = app.request("GET", "/%2e%2e/%2e%2e/etc/passwd").await;
    assert_eq!(status, 400);
    let (status, _, _) = app.request("GET", "/.edgeship/manifest.json").await;
    assert_eq!(status, 404);
    let (status, headers, _) = app.request("POST", "/index.html").await;
    assert_eq!(status, 405);
    assert_eq!(header(&headers, "allow"), Some("GET, HEAD"));
}
