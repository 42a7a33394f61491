//! `max_entries` of a cached function: a bound on how many of L1's entries one function holds,
//! so that a function called with unbounded arguments cannot push every other function's
//! entries out of L1.
//!
//! Each limited function has an [`EntryLimit`] (a `static` in its expansion, and one in its
//! `f_refresh`: both name the function, and share one record per cache) that remembers the
//! fingerprints of the function's last `max` distinct L1 inserts into that cache, least recently
//! stored first.
//! Storing one more evicts the oldest from L1. An entry that left L1 on its own (expiry,
//! invalidation, the cache's own eviction) stays remembered until it is pushed out, so the
//! function holds at most `max` entries, never more; its Redis copies are untouched. All of it
//! runs on the store path: a hit never sees the limit.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use lru::LruCache;
use parking_lot::Mutex;

use crate::key::Fingerprint;
use crate::perf::FnStats;

/// The L1 entry bound of one cached function (`#[cache(max_entries = 1000)]`).
///
/// ```
/// use cache_core::perf::{EntryLimit, FnStats};
/// static STATS: FnStats = FnStats::new("app::search");
/// static LIMIT: EntryLimit = EntryLimit::new(1000, "app::search", &STATS);
/// assert_eq!(LIMIT.max(), 1000);
/// assert_eq!(LIMIT.evicted(), 0);
/// ```
pub struct EntryLimit {
    max: usize,
    /// The function's path: the records of one function in one cache are shared by name.
    name: &'static str,
    stats: &'static FnStats,
    evicted: AtomicU64,
}

/// One function's stored fingerprints in one cache.
type Tracked = Arc<Mutex<LruCache<Fingerprint, ()>>>;

/// The records, by (the cache's engine, function). An engine's address may be reused after it
/// is dropped; its successor then starts from the old record, whose fingerprints it evicts
/// harmlessly (removing an absent key does nothing).
fn records() -> &'static Mutex<HashMap<(usize, &'static str), Tracked>> {
    static RECORDS: OnceLock<Mutex<HashMap<(usize, &'static str), Tracked>>> = OnceLock::new();
    RECORDS.get_or_init(Default::default)
}

impl std::fmt::Debug for EntryLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EntryLimit")
            .field("max", &self.max)
            .field("evicted", &self.evicted())
            .finish()
    }
}

impl EntryLimit {
    /// A bound of `max` entries (at least 1) for the function `name`, whose statistics are
    /// `stats`.
    pub const fn new(max: usize, name: &'static str, stats: &'static FnStats) -> Self {
        EntryLimit {
            max: if max == 0 { 1 } else { max },
            name,
            stats,
            evicted: AtomicU64::new(0),
        }
    }

    /// The bound.
    pub fn max(&self) -> usize {
        self.max
    }

    /// How many of the function's entries the bound has evicted from L1.
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    /// Records a store of `fp` into the L1 of the cache `cache` (its engine's address); returns
    /// the fingerprint to evict when the function now holds one too many there.
    pub(crate) fn stored(&self, cache: usize, fp: Fingerprint) -> Option<Fingerprint> {
        let tracked = records()
            .lock()
            .entry((cache, self.name))
            .or_insert_with(|| {
                let cap = NonZeroUsize::new(self.max).unwrap_or(NonZeroUsize::MIN);
                Arc::new(Mutex::new(LruCache::new(cap)))
            })
            .clone();
        let pushed = tracked.lock().push(fp, ());
        match pushed {
            // The same key again: only its place moved.
            Some((old, ())) if old == fp => None,
            Some((old, ())) => {
                self.evicted.fetch_add(1, Ordering::Relaxed);
                self.stats.evicted_by_limit();
                Some(old)
            }
            None => None,
        }
    }
}
