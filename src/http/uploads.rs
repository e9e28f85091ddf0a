//! Deploy uploads being received: how many at once (in total and per key), so slow or
//! stalled uploads cannot take every connection and file descriptor of the service.
//!
//! A slot is taken after the caller is authenticated and held while its body is read and
//! extracted; the deploy it starts runs without one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::config::ServerConfig;

/// The upload slots of the service.
#[derive(Debug)]
pub struct UploadSlots {
    total: u32,
    per_key: u32,
    taken: Mutex<Taken>,
}

#[derive(Debug, Default)]
struct Taken {
    total: u32,
    by_key: HashMap<String, u32>,
}

/// Why no slot was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The key already has `server.max_uploads_per_key` uploads running.
    Key(u32),
    /// The service already receives `server.max_concurrent_uploads` uploads.
    Total(u32),
}

/// One upload's slot, released when dropped.
#[derive(Debug)]
pub struct UploadSlot {
    slots: Arc<UploadSlots>,
    key: String,
}

impl UploadSlots {
    /// Slots with `config`'s limits.
    pub fn new(config: &ServerConfig) -> Arc<Self> {
        Arc::new(Self {
            total: config.max_concurrent_uploads.max(1),
            per_key: config.max_uploads_per_key.max(1),
            taken: Mutex::new(Taken::default()),
        })
    }

    /// A slot for an upload with the key `key_id`, or which limit is reached.
    pub fn take(self: &Arc<Self>, key_id: &str) -> Result<UploadSlot, Full> {
        let mut taken = self.taken.lock().unwrap_or_else(|p| p.into_inner());
        let of_key = taken.by_key.get(key_id).copied().unwrap_or(0);
        if of_key >= self.per_key {
            return Err(Full::Key(self.per_key));
        }
        if taken.total >= self.total {
            return Err(Full::Total(self.total));
        }
        taken.total += 1;
        taken.by_key.insert(key_id.to_owned(), of_key + 1);
        Ok(UploadSlot {
            slots: Arc::clone(self),
            key: key_id.to_owned(),
        })
    }

    /// Uploads being received now.
    pub fn in_use(&self) -> u32 {
        self.taken.lock().unwrap_or_else(|p| p.into_inner()).total
    }
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut taken = self.slots.taken.lock().unwrap_or_else(|p| p.into_inner());
        taken.total = taken.total.saturating_sub(1);
        if let Some(count) = taken.by_key.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                taken.by_key.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_limited_per_key_and_in_total_and_given_back_on_drop() {
        let config = ServerConfig {
            max_concurrent_uploads: 3,
            max_uploads_per_key: 2,
            ..ServerConfig::default()
        };
        let slots = UploadSlots::new(&config);
        let a1 = slots.take("a").unwrap();
        let _a2 = slots.take("a").unwrap();
        assert_eq!(slots.take("a").unwrap_err(), Full::Key(2));
        let b1 = slots.take("b").unwrap();
        assert_eq!(slots.take("c").unwrap_err(), Full::Total(3));
        assert_eq!(slots.in_use(), 3);
        drop(a1);
        let _c1 = slots.take("c").unwrap();
        assert_eq!(slots.take("a").unwrap_err(), Full::Total(3));
        drop(b1);
        let _a3 = slots.take("a").unwrap();
        assert_eq!(slots.take("a").unwrap_err(), Full::Key(2));
    }
}
