//! The in-memory store (moka): the embedded default, the fallback while Redis is down, and
//! the optional L1 in front of Redis.
//!
//! Entries are bounded by total size (`cache.memory_max_bytes`), evicted least-recently
//! used first when full. Expiry is checked on every read against tokio's clock (so tests
//! can pause and advance time) and entries are also dropped by moka once their TTL passes.
//! Read-modify-write operations (counters, `set_if_absent`, …) run under moka's per-key
//! lock, so concurrent increments never lose updates.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use moka::Expiry;
use moka::ops::compute::Op;
use tokio::time::Instant;

use super::{Admission, CacheError, CacheStore, DeleteReport, RateLimit, Result};

/// Bytes counted per entry on top of key and value, for moka's bookkeeping.
const ENTRY_OVERHEAD: usize = 64;

/// An in-memory [`CacheStore`]. Clones share the same entries.
#[derive(Clone)]
pub struct MemoryStore {
    entries: moka::future::Cache<String, Stored>,
    max_bytes: u64,
}

#[derive(Debug, Clone)]
struct Stored {
    data: Data,
    expires_at: Option<Instant>,
}

#[derive(Debug, Clone)]
enum Data {
    Value(Bytes),
    Counter(i64),
    Hash(Arc<BTreeMap<String, i64>>),
    Sorted(Arc<BTreeMap<String, f64>>),
}

impl Stored {
    fn new(data: Data, ttl: Option<Duration>) -> Self {
        Self {
            data,
            expires_at: ttl.map(|ttl| Instant::now() + ttl),
        }
    }

    fn is_live(&self) -> bool {
        self.expires_at.is_none_or(|at| Instant::now() < at)
    }

    fn remaining(&self) -> Option<Duration> {
        self.expires_at
            .map(|at| at.saturating_duration_since(Instant::now()))
    }

    fn weight(&self) -> usize {
        match &self.data {
            Data::Value(bytes) => bytes.len(),
            Data::Counter(_) => 8,
            Data::Hash(map) => map.keys().map(|k| k.len() + 8).sum(),
            Data::Sorted(set) => set.keys().map(|k| k.len() + 8).sum(),
        }
    }

    /// Keeps an existing expiry; sets `ttl` only when there is none (Redis `PEXPIRE … NX`).
    fn with_data_keeping_expiry(&self, data: Data, ttl: Option<Duration>) -> Self {
        Self {
            data,
            expires_at: self
                .expires_at
                .or_else(|| ttl.map(|ttl| Instant::now() + ttl)),
        }
    }
}

/// Tells moka when each entry expires: its own TTL, not a cache-wide one.
struct PerEntryExpiry;

impl Expiry<String, Stored> for PerEntryExpiry {
    fn expire_after_create(
        &self,
        _key: &String,
        value: &Stored,
        _created_at: std::time::Instant,
    ) -> Option<Duration> {
        value.remaining()
    }

    fn expire_after_update(
        &self,
        _key: &String,
        value: &Stored,
        _updated_at: std::time::Instant,
        _duration_until_expiry: Option<Duration>,
    ) -> Option<Duration> {
        value.remaining()
    }
}

impl MemoryStore {
    /// A store holding at most about `max_bytes` of keys and values.
    pub fn new(max_bytes: u64) -> Self {
        let entries = moka::future::Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|key: &String, value: &Stored| {
                u32::try_from(key.len() + value.weight() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .expire_after(PerEntryExpiry)
            .build();
        Self { entries, max_bytes }
    }

    /// Drops every entry (used when Redis returns, so a later outage never serves values
    /// older than Redis's).
    pub fn clear(&self) {
        self.entries.invalidate_all();
    }

    /// Entries currently held (approximate; expired entries may still be counted).
    pub fn entry_count(&self) -> u64 {
        self.entries.entry_count()
    }

    async fn live(&self, key: &str) -> Option<Stored> {
        self.entries.get(key).await.filter(Stored::is_live)
    }

    /// Runs a read-modify-write on one key under moka's per-key lock. `f` sees the live
    /// entry (expired ones look absent) and returns what to do plus a result.
    async fn update<T, F>(&self, key: &str, f: F) -> Result<T>
    where
        F: FnOnce(Option<&Stored>) -> Result<(Op<Stored>, T)>,
        T: Send,
    {
        let mut output = None;
        let mut failure = None;
        self.entries
            .entry_by_ref(key)
            .and_compute_with(|current| {
                let current = current.map(moka::Entry::into_value);
                let live = current.as_ref().filter(|s| s.is_live());
                let op = match f(live) {
                    Ok((op, value)) => {
                        output = Some(value);
                        op
                    }
                    Err(err) => {
                        failure = Some(err);
                        Op::Nop
                    }
                };
                std::future::ready(op)
            })
            .await;
        match (failure, output) {
            (Some(err), _) => Err(err),
            (None, Some(value)) => Ok(value),
            (None, None) => Err(CacheError::Backend {
                store: "memory".into(),
                operation: "update",
                message: "the update closure did not run".into(),
            }),
        }
    }
}

fn wrong_type(key: &str, operation: &'static str) -> CacheError {
    CacheError::WrongType {
        key: key.into(),
        operation,
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("entries", &self.entries.entry_count())
            .field("max_bytes", &self.max_bytes)
            .finish()
    }
}

impl fmt::Display for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "memory")
    }
}

#[async_trait]
impl CacheStore for MemoryStore {
    fn kind(&self) -> &'static str {
        "memory"
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        match self.live(key).await.map(|s| s.data) {
            None => Ok(None),
            Some(Data::Value(bytes)) => Ok(Some(bytes)),
            // As Redis: a counter is a string holding its decimal value.
            Some(Data::Counter(n)) => Ok(Some(Bytes::from(n.to_string()))),
            Some(_) => Err(wrong_type(key, "get")),
        }
    }

    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Bytes>>> {
        let mut values = Vec::with_capacity(keys.len());
        for key in keys {
            // As Redis MGET: a key of another kind reads as missing.
            values.push(self.get(key).await.unwrap_or(None));
        }
        Ok(values)
    }

    async fn set(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<()> {
        self.entries
            .insert(key.to_owned(), Stored::new(Data::Value(value), ttl))
            .await;
        Ok(())
    }

    async fn set_many(&self, entries: &[(String, Bytes)], ttl: Option<Duration>) -> Result<()> {
        for (key, value) in entries {
            self.set(key, value.clone(), ttl).await?;
        }
        Ok(())
    }

    async fn set_if_absent(&self, key: &str, value: Bytes, ttl: Option<Duration>) -> Result<bool> {
        self.update(key, |current| {
            Ok(match current {
                Some(_) => (Op::Nop, false),
                None => (Op::Put(Stored::new(Data::Value(value), ttl)), true),
            })
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<bool> {
        Ok(self.entries.remove(key).await.is_some_and(|s| s.is_live()))
    }

    async fn delete_if_equals(&self, key: &str, expected: &[u8]) -> Result<bool> {
        self.update(key, |current| {
            Ok(match current.map(|s| &s.data) {
                Some(Data::Value(bytes)) if bytes.as_ref() == expected => (Op::Remove, true),
                _ => (Op::Nop, false),
            })
        })
        .await
    }

    async fn delete_pattern(&self, pattern: &str) -> Result<DeleteReport> {
        let started = std::time::Instant::now();
        let matching: Vec<Arc<String>> = self
            .entries
            .iter()
            .filter(|(key, _)| super::keyspace::glob_match(pattern.as_bytes(), key.as_bytes()))
            .map(|(key, _)| key)
            .collect();
        let mut deleted = 0;
        for key in matching {
            if self
                .entries
                .remove(key.as_str())
                .await
                .is_some_and(|s| s.is_live())
            {
                deleted += 1;
            }
        }
        Ok(DeleteReport {
            deleted,
            batches: 1,
            longest_batch: started.elapsed(),
        })
    }

    async fn expire(&self, key: &str, ttl: Duration) -> Result<bool> {
        self.update(key, |current| {
            Ok(match current {
                Some(stored) => (Op::Put(Stored::new(stored.data.clone(), Some(ttl))), true),
                None => (Op::Nop, false),
            })
        })
        .await
    }

    async fn incr_by(&self, key: &str, delta: i64, ttl: Option<Duration>) -> Result<i64> {
        self.update(key, |current| {
            let (base, value) = match current {
                None => (None, 0),
                Some(stored) => match &stored.data {
                    Data::Counter(n) => (Some(stored), *n),
                    Data::Value(bytes) => {
                        let n = std::str::from_utf8(bytes)
                            .ok()
                            .and_then(|s| s.parse::<i64>().ok())
                            .ok_or_else(|| wrong_type(key, "incr_by"))?;
                        (Some(stored), n)
                    }
                    _ => return Err(wrong_type(key, "incr_by")),
                },
            };
            let new = value
                .checked_add(delta)
                .ok_or_else(|| CacheError::Backend {
                    store: "memory".into(),
                    operation: "incr_by",
                    message: format!("{key}: increment would overflow"),
                })?;
            let stored = match base {
                Some(base) => base.with_data_keeping_expiry(Data::Counter(new), ttl),
                None => Stored::new(Data::Counter(new), ttl),
            };
            Ok((Op::Put(stored), new))
        })
        .await
    }

    async fn hash_incr_by(
        &self,
        key: &str,
        field: &str,
        delta: i64,
        ttl: Option<Duration>,
    ) -> Result<i64> {
        self.update(key, |current| {
            let mut map = match current.map(|s| &s.data) {
                None => BTreeMap::new(),
                Some(Data::Hash(map)) => (**map).clone(),
                Some(_) => return Err(wrong_type(key, "hash_incr_by")),
            };
            let slot = map.entry(field.to_owned()).or_insert(0);
            *slot = slot.checked_add(delta).ok_or_else(|| CacheError::Backend {
                store: "memory".into(),
                operation: "hash_incr_by",
                message: format!("{key} {field}: increment would overflow"),
            })?;
            let new = *slot;
            let data = Data::Hash(Arc::new(map));
            let stored = match current {
                Some(base) => base.with_data_keeping_expiry(data, ttl),
                None => Stored::new(data, ttl),
            };
            Ok((Op::Put(stored), new))
        })
        .await
    }

    async fn hash_get_all(&self, key: &str) -> Result<BTreeMap<String, i64>> {
        match self.live(key).await.map(|s| s.data) {
            None => Ok(BTreeMap::new()),
            Some(Data::Hash(map)) => Ok((*map).clone()),
            Some(_) => Err(wrong_type(key, "hash_get_all")),
        }
    }

    async fn sorted_add(&self, key: &str, member: &str, score: f64) -> Result<bool> {
        self.update(key, |current| {
            let mut set = match current.map(|s| &s.data) {
                None => BTreeMap::new(),
                Some(Data::Sorted(set)) => (**set).clone(),
                Some(_) => return Err(wrong_type(key, "sorted_add")),
            };
            let is_new = set.insert(member.to_owned(), score).is_none();
            let data = Data::Sorted(Arc::new(set));
            let stored = match current {
                Some(base) => base.with_data_keeping_expiry(data, None),
                None => Stored::new(data, None),
            };
            Ok((Op::Put(stored), is_new))
        })
        .await
    }

    async fn sorted_range_by_score(
        &self,
        key: &str,
        min: f64,
        max: f64,
        limit: usize,
    ) -> Result<Vec<(String, f64)>> {
        let set = match self.live(key).await.map(|s| s.data) {
            None => return Ok(Vec::new()),
            Some(Data::Sorted(set)) => set,
            Some(_) => return Err(wrong_type(key, "sorted_range_by_score")),
        };
        let mut members: Vec<(String, f64)> = set
            .iter()
            .filter(|(_, score)| (min..=max).contains(*score))
            .map(|(member, score)| (member.clone(), *score))
            .collect();
        members.sort_by(|a, b| a.1.total_cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
        members.truncate(limit);
        Ok(members)
    }

    async fn sorted_remove(&self, key: &str, member: &str) -> Result<bool> {
        self.update(key, |current| {
            let mut set = match current.map(|s| &s.data) {
                None => return Ok((Op::Nop, false)),
                Some(Data::Sorted(set)) => (**set).clone(),
                Some(_) => return Err(wrong_type(key, "sorted_remove")),
            };
            if set.remove(member).is_none() {
                return Ok((Op::Nop, false));
            }
            // As Redis: an emptied set no longer exists.
            if set.is_empty() {
                return Ok((Op::Remove, true));
            }
            let data = Data::Sorted(Arc::new(set));
            let stored = match current {
                Some(base) => base.with_data_keeping_expiry(data, None),
                None => Stored::new(data, None),
            };
            Ok((Op::Put(stored), true))
        })
        .await
    }

    async fn ttl(&self, key: &str) -> Result<Option<Duration>> {
        Ok(self.live(key).await.and_then(|stored| stored.remaining()))
    }

    async fn throttle(&self, key: &str, limit: RateLimit) -> Result<Admission> {
        // The entry's expiry is the theoretical arrival time: once it passes, the key is
        // as good as absent.
        self.update(key, |current| {
            let now = Instant::now();
            let arrival = current
                .and_then(|stored| stored.expires_at)
                .map_or(now, |at| at.max(now));
            let next = arrival + limit.interval;
            let ahead = next.duration_since(now);
            if ahead > limit.tolerance() {
                let retry_after = ahead - limit.tolerance();
                return Ok((Op::Nop, Admission::Limited { retry_after }));
            }
            let stored = Stored {
                data: Data::Value(Bytes::new()),
                expires_at: Some(next),
            };
            Ok((Op::Put(stored), Admission::Admitted))
        })
        .await
    }

    async fn ping(&self) -> Result<()> {
        Ok(())
    }
}
