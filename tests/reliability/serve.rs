//! `edgeship serve` as a child process on a free port: started, killed with SIGKILL or
//! stopped with SIGTERM, restarted on the same data directory.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use crate::common::Sandbox;
use crate::common::http::{Response, request};

/// A running `edgeship serve`.
pub struct Serve {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Serve {
    /// Starts `serve` in `sandbox` (its config, data and cache directories) with extra
    /// environment variables, and waits until it listens. Returns it and the admin key
    /// it printed (`None` when the data directory already had a key).
    pub fn start(sandbox: &Sandbox, env: &[(&str, &str)]) -> (Self, Option<String>) {
        let port = crate::common::redis::free_port();
        let mut cmd = sandbox.command();
        cmd.args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .env("EDGESHIP_LOG__LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (name, value) in env {
            cmd.env(name, value);
        }
        let mut child = cmd.spawn().expect("start edgeship serve");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel::<String>();
        let reader = {
            let log = Arc::clone(&log);
            // Drains stderr for the life of the process (a full pipe would block it).
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { return };
                    log.lock().unwrap().push_str(&line);
                    log.lock().unwrap().push('\n');
                    let _ = tx.send(line);
                }
            })
        };
        let mut admin = None;
        loop {
            match rx.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    let trimmed = line.trim();
                    if trimmed.starts_with("esk_") {
                        admin = Some(trimmed.to_string());
                    }
                    if trimmed.starts_with("edgeship serving on") {
                        break;
                    }
                }
                Err(_) => panic!("serve did not start within 60 s:\n{}", log.lock().unwrap()),
            }
        }
        let serve = Self {
            base: format!("http://127.0.0.1:{port}"),
            child: Some(child),
            log,
            reader: Some(reader),
        };
        (serve, admin)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGKILL: no chance to save anything or clean up.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// SIGTERM, then waits for the process to exit (and its log to be read to the
    /// end); returns its exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let code = child.wait().unwrap().code();
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        code
    }

    /// One request with `key` as the bearer token.
    pub async fn call(
        &self,
        key: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let auth = format!("Bearer {key}");
        let mut all = vec![("authorization", auth.as_str())];
        all.extend_from_slice(headers);
        request(&self.base, method, path, &all, body).await
    }

    /// Polls `path` (a job) with `key` until `done` accepts it, for at most `limit`.
    pub async fn wait_for(
        &self,
        key: &str,
        path: &str,
        limit: Duration,
        done: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = std::time::Instant::now() + limit;
        loop {
            let r = self.call(key, "GET", path, &[], b"").await;
            let json = r.json();
            if r.status == 200 && done(&json) {
                return json;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{path} still {json} after {limit:?}; log:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}
