//! `max_entries` of a cached function: a bound on how many of L1's entries one function holds,
//! so that a function called with unbounded arguments cannot push every other function's
//! entries out of L1.
//!
//! Each limited function has an [`EntryLimit`] (a `static` in its expansion) that remembers the
//! fingerprints of the function's last `max` distinct L1 inserts, least recently stored first.
//! Storing one more evicts the oldest from L1. An entry that left L1 on its own (expiry,
//! invalidation, the cache's own eviction) stays remembered until it is pushed out, so the
//! function holds at most `max` entries, never more; its Redis copies are untouched. All of it
//! runs on the store path: a hit never sees the limit.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};

use lru::LruCache;
use parking_lot::Mutex;

use crate::key::Fingerprint;
use crate::perf::FnStats;

/// The L1 entry bound of one cached function (`#[cache(max_entries = 1000)]`).
///
/// ```
/// use cache_core::perf::{EntryLimit, FnStats};
/// static STATS: FnStats = FnStats::new("app::search");
/// static LIMIT: EntryLimit = EntryLimit::new(1000, &STATS);
/// assert_eq!(LIMIT.max(), 1000);
/// assert_eq!(LIMIT.evicted(), 0);
/// ```
pub struct EntryLimit {
    max: usize,
    stats: &'static FnStats,
    /// Created on the first store: `LruCache::new` is not `const`.
    tracked: Mutex<Option<LruCache<Fingerprint, ()>>>,
    evicted: AtomicU64,
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
    /// A bound of `max` entries (at least 1) for the function whose statistics are `stats`.
    pub const fn new(max: usize, stats: &'static FnStats) -> Self {
        EntryLimit {
            max: if max == 0 { 1 } else { max },
            stats,
            tracked: parking_lot::const_mutex(None),
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

    /// Records a store of `fp` into L1; returns the fingerprint to evict when the function now
    /// holds one too many.
    pub(crate) fn stored(&self, fp: Fingerprint) -> Option<Fingerprint> {
        let mut tracked = self.tracked.lock();
        let lru = tracked
            .get_or_insert_with(|| LruCache::new(NonZeroUsize::new(self.max).unwrap_or(NonZeroUsize::MIN)));
        match lru.push(fp, ()) {
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
