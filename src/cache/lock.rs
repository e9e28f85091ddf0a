//! A lock with expiry in the cache: one deploy per site at a time.
//!
//! Acquire is `SET key token NX PX ttl`; release deletes the key only if it still holds our
//! token (an atomic compare-and-delete), so a holder whose lock expired and was taken by
//! someone else never releases the new holder's lock.
//!
//! # Behavior
//! - a lock not released (a crashed holder) frees itself after its TTL;
//! - while Redis is unreachable the cache serves from memory, so the lock then excludes
//!   only within this process.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use super::{Cache, CacheKey, Result};

/// A held lock. Release it with [`release`](Self::release); dropping it leaves the lock
/// to expire.
#[derive(Debug)]
pub struct CacheLock {
    cache: Cache,
    key: CacheKey,
    token: String,
}

impl CacheLock {
    /// Takes the lock at `key` for `ttl`, or returns `None` if someone holds it.
    pub async fn acquire(cache: &Cache, key: CacheKey, ttl: Duration) -> Result<Option<Self>> {
        let token = new_token();
        if cache.set_if_absent(&key, &token, Some(ttl)).await? {
            Ok(Some(Self {
                cache: cache.clone(),
                key,
                token,
            }))
        } else {
            Ok(None)
        }
    }

    /// Takes the lock at `key` for `ttl` as `owner`, or takes it back when `owner` holds
    /// it already: a queued job run again after the replica that first ran it died finds
    /// its own lock and continues, instead of waiting for the lock to expire. The check
    /// and the renewal are two commands; only a lock that expires between them (and is
    /// taken by someone else) could be renewed under its new holder, a window of one
    /// round trip at the end of `ttl`.
    pub async fn acquire_as(
        cache: &Cache,
        key: CacheKey,
        ttl: Duration,
        owner: &str,
    ) -> Result<Option<Self>> {
        let held = cache.set_if_absent(&key, owner, Some(ttl)).await?
            || (cache.get::<String>(&key).await?.as_deref() == Some(owner)
                && cache.expire(&key, ttl).await?);
        Ok(held.then(|| Self {
            cache: cache.clone(),
            key,
            token: owner.to_owned(),
        }))
    }

    /// The lock's key.
    pub fn key(&self) -> &CacheKey {
        &self.key
    }

    /// The token that identifies this holder.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Releases the lock; returns `false` if it had already expired (and may be held by
    /// someone else, whose lock is left alone).
    pub async fn release(self) -> Result<bool> {
        self.cache.delete_if_equals(&self.key, &self.token).await
    }
}

/// A token unique across processes and time: process id, wall clock, a counter and a
/// per-process random seed (std's `RandomState`), hashed.
fn new_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    hasher.write_u128(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default(),
    );
    let count = COUNTER.fetch_add(1, Ordering::Relaxed);
    hasher.write_u64(count);
    format!(
        "{:08x}-{count}-{:016x}",
        std::process::id(),
        hasher.finish()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lock_excludes_until_released_and_expires_by_itself() {
        tokio::time::pause();
        let cache = Cache::memory();
        let key = cache.site("www").deploy_lock();
        let held = CacheLock::acquire(&cache, key.clone(), Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        assert!(
            CacheLock::acquire(&cache, key.clone(), Duration::from_secs(30))
                .await
                .unwrap()
                .is_none()
        );
        assert!(held.release().await.unwrap());
        let again = CacheLock::acquire(&cache, key.clone(), Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        tokio::time::advance(Duration::from_secs(31)).await;
        let other = CacheLock::acquire(&cache, key.clone(), Duration::from_secs(30))
            .await
            .unwrap()
            .unwrap();
        assert!(
            !again.release().await.unwrap(),
            "an expired holder does not release the new holder's lock"
        );
        assert_ne!(other.token(), "");
        assert!(other.release().await.unwrap());
    }

    #[tokio::test]
    async fn an_owner_takes_its_own_lock_back_and_others_wait() {
        let cache = Cache::memory();
        let key = cache.site("www").deploy_lock();
        let ttl = Duration::from_secs(30);
        let first = CacheLock::acquire_as(&cache, key.clone(), ttl, "job:d1")
            .await
            .unwrap()
            .unwrap();
        // The process holding it dies without releasing it.
        drop(first);
        assert!(
            CacheLock::acquire_as(&cache, key.clone(), ttl, "job:d2")
                .await
                .unwrap()
                .is_none(),
            "another job waits"
        );
        assert!(
            CacheLock::acquire(&cache, key.clone(), ttl)
                .await
                .unwrap()
                .is_none()
        );
        let again = CacheLock::acquire_as(&cache, key.clone(), ttl, "job:d1")
            .await
            .unwrap()
            .expect("the same job takes its lock back");
        assert!(again.release().await.unwrap());
        assert!(
            CacheLock::acquire_as(&cache, key, ttl, "job:d2")
                .await
                .unwrap()
                .is_some()
        );
    }
}
