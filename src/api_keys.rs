//! API keys: creation, hashed storage, scopes, expiry and revocation.
//!
//! A key looks like `esk_<id>_<secret>`: the id (12 hex digits) finds the record, the
//! secret (64 hex digits, 256 random bits) proves possession. Only the blake3 hash of the
//! secret is stored, and it is compared in constant time. Several keys can be active at
//! once, so rotating is: create the new key, switch clients, revoke the old one.
//!
//! Keys live in `<data_dir>/keys.json` (mode 0600, written atomically; the service
//! rereads it when it changes, so `edgeship keys create` works while the service runs).
//! With Redis configured they live in the cache layer too, shared by every replica, and
//! the file stays a durable copy of every key this machine created, revoked or accepted:
//! a Redis that loses its data (a restart without persistence) loses no key — the next
//! use of a key finds it in the file and puts it back.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::cache::{Cache, CacheError};
use crate::home::StateHome;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Upload deploys and read their status.
    Deploy,
    /// Purge and read purge status.
    Purge,
    /// Read analytics, assets, job status and cache stats.
    Read,
    /// Send CDN access logs to the analytics (`POST /v1/sites/{site}/logs`).
    Logs,
    /// Everything, including key management.
    Admin,
}

impl Scope {
    /// Every scope, for messages.
    pub const ALL: [Self; 5] = [
        Self::Deploy,
        Self::Purge,
        Self::Read,
        Self::Logs,
        Self::Admin,
    ];

    /// The scope's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deploy => "deploy",
            Self::Purge => "purge",
            Self::Read => "read",
            Self::Logs => "logs",
            Self::Admin => "admin",
        }
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| {
                format!("unknown scope `{s}` (scopes: deploy, purge, read, logs, admin)")
            })
    }
}

/// A stored key: everything but the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// The public id (`esk_<id>_…`).
    pub id: String,
    /// A name for people (`ci`, `purge-bot`).
    pub name: String,
    /// What it may do.
    pub scopes: Vec<Scope>,
    /// Unix seconds of creation.
    pub created_at: u64,
    /// Unix seconds after which it stops working.
    #[serde(default)]
    pub expires_at: Option<u64>,
    /// Unix seconds of revocation.
    #[serde(default)]
    pub revoked_at: Option<u64>,
    /// Networks it may be used from (empty: anywhere the service allows).
    #[serde(default)]
    pub allow_ips: Vec<IpNet>,
    /// blake3 of the secret, hex.
    pub secret_hash: String,
}

impl ApiKey {
    /// Whether the key grants `needed` (admin grants everything).
    pub fn grants(&self, needed: Scope) -> bool {
        self.scopes
            .iter()
            .any(|&scope| scope == needed || scope == Scope::Admin)
    }

    /// Why the key cannot be used now, if it cannot.
    pub fn unusable(&self, now: u64) -> Option<&'static str> {
        if self.revoked_at.is_some() {
            Some("the key was revoked")
        } else if self.expires_at.is_some_and(|at| at <= now) {
            Some("the key has expired")
        } else {
            None
        }
    }

    /// Whether the key may be used from `ip`.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        self.allow_ips.is_empty() || self.allow_ips.iter().any(|net| net.contains(&ip))
    }

    /// Whether the secret is this key's, in constant time.
    pub fn verify(&self, secret: &str) -> bool {
        let Ok(stored) = blake3::Hash::from_hex(&self.secret_hash) else {
            return false;
        };
        // blake3::Hash's equality is constant-time.
        stored == blake3::hash(secret.as_bytes())
    }
}

/// A key as typed into a header, split into its id and secret; `None` if malformed.
pub fn parse_token(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("esk_")?;
    let (id, secret) = rest.split_once('_')?;
    let hex = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id, 12) && hex(secret, 64)).then_some((id, secret))
}

/// Errors of key management.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The cache layer failed.
    #[error("API keys: {0}")]
    Cache(#[from] CacheError),
    /// The key file could not be read or written.
    #[error("API key file {path}: {message}")]
    File {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// No randomness from the operating system.
    #[error("cannot generate a key: {0}")]
    Random(String),
    /// No key with this id.
    #[error("no API key `{0}`")]
    NotFound(String),
    /// The key's name is empty, too long or has control characters.
    #[error("a key needs a name of 1 to {MAX_NAME} printable characters (got {0:?})")]
    BadName(String),
}

/// The longest key name.
pub const MAX_NAME: usize = 100;

/// A new key and its token (shown once, never stored).
#[derive(Debug, Clone)]
pub struct CreatedKey {
    /// The stored record.
    pub key: ApiKey,
    /// The full token for the `Authorization: Bearer` header.
    pub token: String,
}

fn random_hex(bytes: usize) -> Result<String, KeyError> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|e| KeyError::Random(e.to_string()))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Keys by id, as the key file holds them.
type KeyMap = BTreeMap<String, ApiKey>;

/// Where keys are kept.
#[derive(Debug)]
pub struct KeyStore {
    /// The cache layer, when Redis is configured.
    cache: Option<Cache>,
    /// The key file: the store without Redis, the durable copy with it.
    file: KeyFile,
}

/// `<data_dir>/keys.json`, reread when it changes.
#[derive(Debug)]
struct KeyFile {
    path: PathBuf,
    /// The last read: the file's modification time and its keys.
    snapshot: Mutex<Option<(SystemTime, Arc<KeyMap>)>>,
}

const INDEX: &str = "apikeys";

impl KeyStore {
    /// The store of the process's state home: the cache layer with Redis (and the key
    /// file under `data_dir` as its durable copy), else the key file alone.
    pub fn new(home: &StateHome, data_dir: &std::path::Path) -> Self {
        let file = KeyFile::new(data_dir.join("keys.json"));
        match home {
            StateHome::Cache(cache) => Self {
                cache: Some(cache.clone()),
                file,
            },
            StateHome::Dir(dir) => Self {
                cache: None,
                file: KeyFile::new(dir.join("keys.json")),
            },
        }
    }

    /// A store in the JSON file at `path` alone.
    pub fn file(path: PathBuf) -> Self {
        Self {
            cache: None,
            file: KeyFile::new(path),
        }
    }

    /// Creates a key.
    pub async fn create(
        &self,
        name: &str,
        scopes: Vec<Scope>,
        expires_at: Option<u64>,
        allow_ips: Vec<IpNet>,
    ) -> Result<CreatedKey, KeyError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control)
        {
            return Err(KeyError::BadName(name.to_string()));
        }
        let id = random_hex(6)?;
        let secret = random_hex(32)?;
        let key = ApiKey {
            id: id.clone(),
            name: name.to_string(),
            scopes,
            created_at: crate::jobs::unix_now(),
            expires_at,
            revoked_at: None,
            allow_ips,
            secret_hash: blake3::hash(secret.as_bytes()).to_hex().to_string(),
        };
        self.put(&key).await?;
        Ok(CreatedKey {
            token: format!("esk_{id}_{secret}"),
            key,
        })
    }

    /// Revokes a key (it stays listed, marked revoked).
    pub async fn revoke(&self, id: &str) -> Result<ApiKey, KeyError> {
        let mut key = self
            .get(id)
            .await?
            .ok_or_else(|| KeyError::NotFound(id.to_string()))?;
        if key.revoked_at.is_none() {
            key.revoked_at = Some(crate::jobs::unix_now());
            self.put(&key).await?;
        }
        Ok(key)
    }

    /// One key by id. With Redis, a key Redis has is copied to the file when the file's
    /// copy differs (revoked elsewhere, say), and a key only the file has is put back
    /// into Redis.
    pub async fn get(&self, id: &str) -> Result<Option<ApiKey>, KeyError> {
        let Some(cache) = &self.cache else {
            return Ok(self.file.read()?.get(id).cloned());
        };
        let record = cache.keys().global().key(&format!("apikey:{id}"));
        let stored: Option<ApiKey> = cache.get(&record).await?;
        let copy = self.file.read()?.get(id).cloned();
        match (stored, copy) {
            (Some(key), copy) => {
                if copy.as_ref() != Some(&key)
                    && let Err(err) = self.file.insert(&key)
                {
                    tracing::warn!(error = %err, "cannot update the durable copy of an API key");
                }
                Ok(Some(key))
            }
            (None, Some(key)) => {
                if !cache.metrics().is_degraded() {
                    tracing::warn!(key = %key.id, "API key missing from Redis (did it lose its data?); restored from the key file");
                    if let Err(err) = self.put_cache(cache, &key).await {
                        tracing::warn!(error = %err, "cannot restore an API key into Redis");
                    }
                }
                Ok(Some(key))
            }
            (None, None) => Ok(None),
        }
    }

    /// Every key, oldest first (with Redis: its keys and the file's, Redis's copy first).
    pub async fn list(&self) -> Result<Vec<ApiKey>, KeyError> {
        let mut keys = BTreeMap::clone(&*self.file.read()?);
        if let Some(cache) = &self.cache {
            let global = cache.keys().global();
            let ids = cache
                .sorted_range_by_score(&global.key(INDEX), f64::MIN, f64::MAX, 100_000)
                .await?;
            let lookups: Vec<_> = ids
                .iter()
                .map(|(id, _)| global.key(&format!("apikey:{id}")))
                .collect();
            for key in cache
                .get_many::<ApiKey>(&lookups)
                .await?
                .into_iter()
                .flatten()
            {
                keys.insert(key.id.clone(), key);
            }
        }
        let mut keys: Vec<ApiKey> = keys.into_values().collect();
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(keys)
    }

    /// Whether the store is answering from a fallback (Redis unreachable), so a missing
    /// key may only be missing from the fallback.
    pub fn is_degraded(&self) -> bool {
        self.cache
            .as_ref()
            .is_some_and(|cache| cache.metrics().is_degraded())
    }

    /// Whether any key is usable now (the service creates an admin key when none is).
    pub async fn has_usable_key(&self) -> Result<bool, KeyError> {
        let now = crate::jobs::unix_now();
        Ok(self.list().await?.iter().any(|k| k.unusable(now).is_none()))
    }

    async fn put(&self, key: &ApiKey) -> Result<(), KeyError> {
        if let Some(cache) = &self.cache {
            self.put_cache(cache, key).await?;
        }
        self.file.insert(key)
    }

    async fn put_cache(&self, cache: &Cache, key: &ApiKey) -> Result<(), KeyError> {
        let global = cache.keys().global();
        cache
            .set(&global.key(&format!("apikey:{}", key.id)), key, None)
            .await?;
        cache
            .sorted_add(&global.key(INDEX), &key.id, key.created_at as f64)
            .await?;
        Ok(())
    }
}

impl KeyFile {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            snapshot: Mutex::new(None),
        }
    }

    fn error(&self, message: String) -> KeyError {
        KeyError::File {
            path: self.path.clone(),
            message,
        }
    }

    /// Adds or replaces one key.
    fn insert(&self, key: &ApiKey) -> Result<(), KeyError> {
        let mut keys = BTreeMap::clone(&*self.read()?);
        keys.insert(key.id.clone(), key.clone());
        write_file(&self.path, &keys)
    }

    /// The file's contents, reread only when its modification time changed. Shared, not
    /// copied: the service reads it on every authenticated request.
    fn read(&self) -> Result<Arc<KeyMap>, KeyError> {
        let modified = match std::fs::metadata(&self.path) {
            Ok(meta) => meta.modified().map_err(|e| self.error(e.to_string()))?,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Arc::default()),
            Err(err) => return Err(self.error(err.to_string())),
        };
        let mut snapshot = self.snapshot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((seen, keys)) = snapshot.as_ref()
            && *seen == modified
        {
            return Ok(Arc::clone(keys));
        }
        let bytes = std::fs::read(&self.path).map_err(|e| self.error(e.to_string()))?;
        let keys: KeyMap =
            serde_json::from_slice(&bytes).map_err(|e| self.error(format!("unreadable: {e}")))?;
        let keys = Arc::new(keys);
        *snapshot = Some((modified, Arc::clone(&keys)));
        Ok(keys)
    }
}

fn write_file(path: &std::path::Path, keys: &BTreeMap<String, ApiKey>) -> Result<(), KeyError> {
    let error = |message: String| KeyError::File {
        path: path.to_path_buf(),
        message,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| error(e.to_string()))?;
    }
    let json = serde_json::to_vec_pretty(keys).map_err(|e| error(e.to_string()))?;
    let temp = path.with_extension("json.tmp");
    write_private(&temp, &json).map_err(|e| error(e.to_string()))?;
    std::fs::rename(&temp, path).map_err(|e| error(e.to_string()))
}

/// Writes a file only its owner can read (it holds key hashes).
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_are_created_verified_expired_and_revoked_in_the_file_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = KeyStore::file(dir.path().join("keys.json"));
        let created = store
            .create("ci", vec![Scope::Deploy], None, vec![])
            .await
            .unwrap();
        let (id, secret) = parse_token(&created.token).unwrap();
        let stored = store.get(id).await.unwrap().unwrap();
        assert!(stored.verify(secret));
        assert!(!stored.verify(&"0".repeat(64)));
        assert!(
            !std::fs::read_to_string(dir.path().join("keys.json"))
                .unwrap()
                .contains(secret),
            "the secret is never stored"
        );
        assert!(stored.grants(Scope::Deploy) && !stored.grants(Scope::Purge));
        assert_eq!(stored.unusable(stored.created_at), None);
        let expiring = ApiKey {
            expires_at: Some(10),
            ..stored.clone()
        };
        assert_eq!(expiring.unusable(11), Some("the key has expired"));
        let revoked = store.revoke(id).await.unwrap();
        assert!(revoked.revoked_at.is_some());
        assert_eq!(store.list().await.unwrap().len(), 1);
        assert!(!store.has_usable_key().await.unwrap());
        assert!(matches!(
            store.revoke("000000000000").await,
            Err(KeyError::NotFound(_))
        ));
    }

    #[test]
    fn tokens_are_parsed_strictly_and_ips_checked_against_networks() {
        let token = format!("esk_{}_{}", "a1".repeat(6), "0f".repeat(32));
        assert!(parse_token(&token).is_some());
        for bad in [
            "",
            "esk_",
            "Bearer x",
            &token[..token.len() - 1],
            &token.replace("esk_", "sk_"),
        ] {
            assert!(parse_token(bad).is_none(), "{bad}");
        }
        let key = ApiKey {
            id: "a".into(),
            name: "n".into(),
            scopes: vec![Scope::Admin],
            created_at: 0,
            expires_at: None,
            revoked_at: None,
            allow_ips: vec!["10.0.0.0/8".parse().unwrap()],
            secret_hash: String::new(),
        };
        assert!(key.allows_ip("10.1.2.3".parse().unwrap()));
        assert!(!key.allows_ip("192.168.0.1".parse().unwrap()));
        assert!(key.grants(Scope::Purge), "admin grants everything");
        assert_eq!("purge".parse::<Scope>(), Ok(Scope::Purge));
        assert!(
            "root"
                .parse::<Scope>()
                .unwrap_err()
                .contains("unknown scope")
        );
    }
}
