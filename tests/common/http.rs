//! The real app on a random port, and a minimal HTTP/1.1 client (no client crate needed).

use std::net::TcpListener;

use edgeship::config::Config;
use edgeship::http::{AppState, serve};
use tokio::sync::oneshot;

/// A response: status, lower-cased headers, body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (and it says so in its Content-Type).
    pub fn json(&self) -> serde_json::Value {
        assert_eq!(self.header("content-type"), Some("application/json"));
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// The JSON error code.
    pub fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

/// The app running on a random port with its own data directory.
pub struct TestApp {
    pub base: String,
    pub state: AppState,
    /// An admin key created at start.
    pub admin: String,
    pub config: Config,
    stop: Option<oneshot::Sender<()>>,
    pub data: tempfile::TempDir,
}

impl TestApp {
    /// Starts the app with the default config adjusted by `configure`.
    pub async fn spawn_with(configure: impl FnOnce(&mut Config)) -> Self {
        let data = tempfile::tempdir().unwrap();
        let mut config = Config {
            data_dir: data.path().to_path_buf(),
            cache_dir: data.path().join("cache"),
            ..Config::default()
        };
        configure(&mut config);
        Self::start(config, data).await
    }

    /// Starts the app with `config` (its directories inside `data`, kept as long as the
    /// app) and creates an admin key.
    pub async fn start(config: Config, data: tempfile::TempDir) -> Self {
        let state = AppState::new(&config).unwrap();
        Self::start_state(state, data).await
    }

    /// Starts the app around a sites registry (its providers given by the test).
    pub async fn start_sites(sites: edgeship::site::Sites, data: tempfile::TempDir) -> Self {
        let state = AppState::with_sites(sites).unwrap();
        Self::start_state(state, data).await
    }

    async fn start_state(state: AppState, data: tempfile::TempDir) -> Self {
        let admin = state.ensure_admin_key().await.unwrap().unwrap();
        Self::serve_state(state, data, admin)
    }

    /// A second replica of this app: the same configuration (so the same Redis and
    /// prefix) with its own data directory, serving on its own port. The admin key is
    /// this app's, found through the shared key store.
    pub fn replica(&self) -> Self {
        let data = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: data.path().to_path_buf(),
            cache_dir: data.path().join("cache"),
            ..self.config.clone()
        };
        let state = AppState::new(&config).unwrap();
        Self::serve_state(state, data, self.admin.clone())
    }

    fn serve_state(state: AppState, data: tempfile::TempDir, admin: String) -> Self {
        let config = state.config().clone();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(serve(listener, state.clone(), async move {
            let _ = stopped.await;
        }));
        Self {
            base,
            state,
            admin,
            config,
            stop: Some(stop),
            data,
        }
    }

    /// A request with the admin key.
    pub async fn admin(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Response {
        let auth = format!("Bearer {}", self.admin);
        let mut headers = vec![("authorization", auth.as_str())];
        let bytes = body
            .map(|b| serde_json::to_vec(b).unwrap())
            .unwrap_or_default();
        if body.is_some() {
            headers.push(("content-type", "application/json"));
        }
        self.call(method, path, &headers, &bytes).await
    }

    /// Any request.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        request(&self.base, method, path, headers, body).await
    }
}

impl TestApp {
    /// Uploads the fixture site to the default site over HTTP with `auth` and waits for
    /// the deploy to finish; returns the finished job.
    pub async fn deploy_fixtures(&self, auth: &str) -> serde_json::Value {
        self.upload_and_wait(auth, &super::fixture("site")).await
    }

    /// Deploys `dir` to site `default` through the HTTP API with the admin key; returns
    /// the finished job, which must be `done`.
    pub async fn deploy_dir(&self, dir: &std::path::Path) -> serde_json::Value {
        let auth = format!("Bearer {}", self.admin);
        let job = self.upload_and_wait(&auth, dir).await;
        assert_eq!(job["status"], "done", "{job}");
        job
    }

    /// Uploads `dir` as a deploy of site `default` with `auth` (it must be accepted) and
    /// waits for the job to finish; returns it.
    async fn upload_and_wait(&self, auth: &str, dir: &std::path::Path) -> serde_json::Value {
        let started = self
            .call(
                "POST",
                "/v1/sites/default/deploys",
                &[
                    ("authorization", auth),
                    ("content-type", "application/gzip"),
                ],
                &super::tar_gz_of(dir),
            )
            .await;
        assert_eq!(
            started.status,
            202,
            "{}",
            String::from_utf8_lossy(&started.body)
        );
        let id = started.json()["id"].as_str().unwrap().to_string();
        self.finished_deploy(auth, &id).await
    }

    /// Polls a deploy job until it leaves `queued` / `running`.
    pub async fn finished_deploy(&self, auth: &str, id: &str) -> serde_json::Value {
        let mut job = serde_json::Value::Null;
        for _ in 0..400 {
            job = self
                .call(
                    "GET",
                    &format!("/v1/deploys/{id}"),
                    &[("authorization", auth)],
                    b"",
                )
                .await
                .json();
            if job["status"] != "queued" && job["status"] != "running" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        job
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// One HTTP/1.1 request over a fresh connection.
pub async fn request(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    use tokio::io::AsyncWriteExt;
    let declared = (!body.is_empty() || method == "POST").then_some(body.len());
    let mut stream = start_request(base, method, path, headers, declared).await;
    // The server may answer (413) before reading a large body; a reset then is fine.
    let _ = stream.write_all(body).await;
    read_response(&mut stream).await
}

/// A request whose head (with `Content-Length: declared`) is sent and whose body is
/// left to the caller: for slow and stalled bodies.
pub async fn start_request(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    declared: Option<usize>,
) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let addr = base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(len) = declared {
        head.push_str(&format!("Content-Length: {len}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

/// Reads the response to the request sent on `stream` (until the server closes it).
pub async fn read_response(stream: &mut tokio::net::TcpStream) -> Response {
    use tokio::io::AsyncReadExt;
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw).await;
    parse_response(&raw)
}

/// Reads one response with a `Content-Length` as soon as it is complete, without waiting
/// for the server to close the connection.
pub async fn read_answer(stream: &mut tokio::net::TcpStream) -> Response {
    use tokio::io::AsyncReadExt;
    let mut raw = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if raw.len() >= split + 4 + length {
                return parse_response(&raw);
            }
        }
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return parse_response(&raw);
        }
        raw.extend_from_slice(&chunk[..n]);
    }
}

/// Parses a whole HTTP/1.1 response.
pub fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head: {}", String::from_utf8_lossy(raw)));
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
    Response {
        status,
        headers,
        body,
    }
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
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
