//! An L1 store alone, for the peers bench's hit-ratio section (issue 24): each strategy's real
//! store (its shards, weights, admission and the TTL check of a read) without the engine around
//! it, so a trace of millions of requests replays in seconds. Not a public API.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::{self, Instant, Upkeep};
use crate::error::Result;
use crate::key::Fingerprint;
use crate::l1::{self, Store, L1};
use crate::strategy::Eviction;

/// One strategy's L1 store, read and filled by key.
pub struct L1Replay {
    l1: L1,
    /// Every entry's expiry: past the replay's end.
    expires_at: Instant,
    _upkeep: Upkeep,
}

impl L1Replay {
    /// The store `eviction` gives a cache of `max_entries` entries and `max_bytes` bytes.
    pub fn new(eviction: Eviction, max_entries: usize, max_bytes: u64) -> Result<Self> {
        let upkeep = clock::start();
        let store = Store::build(eviction, max_entries, max_bytes, None)?;
        Ok(L1Replay {
            l1: L1::new(store, Arc::new(AtomicU64::new(0))),
            expires_at: clock::now() + Duration::from_secs(24 * 3600),
            _upkeep: upkeep,
        })
    }

    /// Whether `key` is in (a read: it counts for the policy as a hit does).
    pub fn get(&self, key: &str) -> bool {
        self.l1.read(Fingerprint::of(key), |_| Some(())).is_some()
    }

    /// Inserts `key` with a value that encodes to `value_bytes` (its weight in the byte bound).
    pub fn insert(&self, key: &str, value_bytes: u64) {
        let entry = l1::entry(key, (), self.expires_at, value_bytes);
        self.l1.insert(Fingerprint::of(key), entry);
    }

    /// Applies the evictions moka batches.
    pub fn run_pending_tasks(&self) {
        self.l1.run_pending_tasks();
    }

    /// Entries held.
    pub fn len(&self) -> u64 {
        self.l1.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
