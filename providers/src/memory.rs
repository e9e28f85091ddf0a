//! `memory`: the test provider. Objects live in memory and every successful call is
//! recorded in order, so tests can assert what was uploaded, deleted and purged, and in
//! which order. Combine with [`crate::faults::Faulty`] to inject failures.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;
use bytes::Bytes;

use crate::capabilities::Capabilities;
use crate::error::{ProviderError, Result};
use crate::object::{ListPage, ObjectMeta, PurgeReceipt, PurgeRequest, PurgeStatus, PutRequest};
use crate::provider::{Provider, validate_key};

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// A put of this key.
    Put(String),
    /// A head of this key.
    Head(String),
    /// A get of this key.
    Get(String),
    /// A listing page under this prefix.
    List(String),
    /// A delete of these keys.
    Delete(Vec<String>),
    /// A purge.
    Purge(PurgeRequest),
}

#[derive(Debug, Default)]
struct State {
    objects: BTreeMap<String, (ObjectMeta, Bytes)>,
    calls: Vec<Call>,
    /// Purges by caller reference, for CloudFront-style idempotency.
    references: BTreeMap<String, (PurgeRequest, String)>,
}

/// An in-memory provider.
#[derive(Debug)]
pub struct MemoryProvider {
    name: String,
    page_size: usize,
    capabilities: Option<Capabilities>,
    // A std Mutex is fine: it is never held across an await and critical sections are
    // map operations.
    state: Mutex<State>,
}

impl Default for MemoryProvider {
    fn default() -> Self {
        Self::new("memory")
    }
}

impl MemoryProvider {
    /// An empty provider named `name` in logs.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            page_size: 1000,
            capabilities: None,
            state: Mutex::new(State::default()),
        }
    }

    /// Sets the listing page size.
    pub fn with_page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// Declares (and enforces) other capabilities, e.g. [`Capabilities::cloudfront`],
    /// so tests of purge planning run against a CDN's real limits. The listing page size
    /// stays as set by [`Self::with_page_size`].
    pub fn with_capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = Some(capabilities);
        self
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the map half-updated (each
        // operation is one insert/remove), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every successful call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// Forgets the recorded calls (objects stay).
    pub fn clear_calls(&self) {
        self.state().calls.clear();
    }

    /// The keys of all stored objects.
    pub fn keys(&self) -> Vec<String> {
        self.state().objects.keys().cloned().collect()
    }

    /// A stored object, if present.
    pub fn object(&self, key: &str) -> Option<(ObjectMeta, Bytes)> {
        self.state().objects.get(key).cloned()
    }

    fn not_found(&self, key: &str) -> ProviderError {
        ProviderError::NotFound {
            provider: self.name.clone(),
            key: key.to_string(),
        }
    }
}

impl fmt::Display for MemoryProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[async_trait]
impl Provider for MemoryProvider {
    fn capabilities(&self) -> Capabilities {
        let declared = self.capabilities.clone().unwrap_or(Capabilities {
            purge_tags: true,
            purge_prefixes: true,
            purge_is_noop: true,
            ..Capabilities::default()
        });
        Capabilities {
            list_page_size: self.page_size,
            ..declared
        }
    }

    async fn put(&self, request: PutRequest) -> Result<ObjectMeta> {
        validate_key(&request.key).map_err(|err| ProviderError::Invalid {
            provider: self.name.clone(),
            message: err.to_string(),
        })?;
        let bytes = request
            .body
            .read_all()
            .await
            .map_err(|e| ProviderError::from_io(&self.name, &request.key, e))?;
        let meta = ObjectMeta {
            size: bytes.len() as u64,
            ..request.meta()
        };
        let mut state = self.state();
        state
            .objects
            .insert(request.key.clone(), (meta.clone(), bytes));
        state.calls.push(Call::Put(request.key));
        Ok(meta)
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let mut state = self.state();
        state.calls.push(Call::Head(key.to_string()));
        state
            .objects
            .get(key)
            .map(|(meta, _)| meta.clone())
            .ok_or_else(|| self.not_found(key))
    }

    async fn get(&self, key: &str) -> Result<(ObjectMeta, Bytes)> {
        let mut state = self.state();
        state.calls.push(Call::Get(key.to_string()));
        state
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| self.not_found(key))
    }

    async fn list_page(&self, prefix: &str, cursor: Option<String>) -> Result<ListPage> {
        let mut state = self.state();
        state.calls.push(Call::List(prefix.to_string()));
        let start = cursor.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        let mut objects: Vec<ObjectMeta> = state
            .objects
            .range::<String, _>((start, std::ops::Bound::Unbounded))
            .filter(|(key, _)| key.starts_with(prefix))
            .take(self.page_size + 1)
            .map(|(_, (meta, _))| meta.clone())
            .collect();
        let next = if objects.len() > self.page_size {
            objects.truncate(self.page_size);
            objects.last().map(|m| m.key.clone())
        } else {
            None
        };
        Ok(ListPage { objects, next })
    }

    async fn delete_many(&self, keys: &[String]) -> Result<()> {
        let mut state = self.state();
        for key in keys {
            state.objects.remove(key);
        }
        state.calls.push(Call::Delete(keys.to_vec()));
        Ok(())
    }

    /// Enforces the declared limits, and CloudFront's caller-reference rule: the same
    /// reference with the same request returns the first purge (and records no call);
    /// with a different request it is rejected.
    async fn purge(&self, request: &PurgeRequest) -> Result<PurgeReceipt> {
        self.capabilities().validate_purge(&self.name, request)?;
        let mut state = self.state();
        if let Some(reference) = &request.reference
            && let Some((first, id)) = state.references.get(reference)
        {
            if first == request {
                return Ok(PurgeReceipt {
                    id: id.clone(),
                    status: PurgeStatus::Done,
                });
            }
            return Err(ProviderError::Invalid {
                provider: self.name.clone(),
                message: format!(
                    "purge reference `{reference}` was already used for a different request"
                ),
            });
        }
        state.calls.push(Call::Purge(request.clone()));
        let id = format!("memory-purge-{}", state.calls.len());
        if let Some(reference) = &request.reference {
            state
                .references
                .insert(reference.clone(), (request.clone(), id.clone()));
        }
        Ok(PurgeReceipt {
            id,
            status: PurgeStatus::Done,
        })
    }

    async fn purge_status(&self, _id: &str) -> Result<PurgeStatus> {
        Ok(PurgeStatus::Done)
    }
}
