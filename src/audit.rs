//! The append-only audit log: one JSON line per deploy, purge, key and auth event, in
//! `<data_dir>/audit.log`. Lines are written with `O_APPEND` in one `write` each, so
//! concurrent writers (the service and the CLI) never interleave within a line.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// One audit event.
#[derive(Debug, Clone, Serialize)]
pub struct AuditEvent<'a> {
    /// Unix seconds.
    pub at: u64,
    /// What happened: `key.create`, `key.revoke`, `auth.blocked`, `deploy.start`,
    /// `purge.start`, …
    pub event: &'a str,
    /// Who: `key:<id>` for API calls, `cli` for the command line.
    pub actor: &'a str,
    /// The client address, for API calls.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    /// The site concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub site: Option<&'a str>,
    /// Event details (job id, key id, reason).
    pub detail: serde_json::Value,
}

/// The audit log of a data directory.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
}

impl AuditLog {
    /// The log under `data_dir`.
    pub fn new(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join("audit.log"),
        }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends an event. A failure is logged, never fatal: the action itself matters more
    /// than its record, and the tracing log has it too.
    pub fn record(&self, event: &AuditEvent<'_>) {
        tracing::info!(target: "edgeship::audit", event = event.event, actor = event.actor, site = event.site, detail = %event.detail, "audit");
        if let Err(err) = self.append(event) {
            tracing::warn!(path = %self.path.display(), error = %err, "cannot write the audit log");
        }
    }

    fn append(&self, event: &AuditEvent<'_>) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(event)?;
        line.push(b'\n');
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        file.write_all(&line)
    }
}

/// An event happening now.
pub fn event<'a>(event: &'a str, actor: &'a str, detail: serde_json::Value) -> AuditEvent<'a> {
    AuditEvent {
        at: crate::jobs::unix_now(),
        event,
        actor,
        ip: None,
        site: None,
        detail,
    }
}
