//! What the detectors need beyond the engine's counters, counted where it happens: per-prefix
//! misses and keys never seen before (the miss path), remote call times (`Engine::timed`).
//! None of it is on the L1 hit path: a hit never misses, and per-prefix hits come from the
//! access tracker's sampled reads (`crate::access`), one read in `access_sample_rate`.
//!
//! **New keys.** A key is new when neither of two rotating bitsets (a Bloom filter with two
//! hash positions taken from the key's fingerprint, which is already a 128-bit hash) has seen
//! it. The current set takes every missed key; once it has taken [`ROTATE_AFTER`] keys it
//! becomes the previous one and an empty set takes over, so memory is fixed
//! (2 × [`BITS`] bits, 64 KiB) and "seen" means "missed within the last one or two
//! rotations". A flush that reloads known keys is then a miss storm but not a cardinality
//! explosion; a timestamp in the key makes every miss a new key. The false "seen" rate stays
//! under about 4 % (each set at most ~12 % full), which only lowers the count of new keys.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::key::Fingerprint;

/// Bits per set.
pub(crate) const BITS: usize = 1 << 18;
/// Keys a set takes before it rotates (about 12 % of its bits set, with two positions a key).
pub(crate) const ROTATE_AFTER: u64 = (BITS / 16) as u64;

/// The name under which the prefixes past `max_prefixes` are counted together.
pub(crate) const OTHER: &str = "~other";

/// Per-prefix counts kept on the miss path.
#[derive(Default)]
pub(crate) struct PrefixCounts {
    pub misses: AtomicU64,
    pub new_keys: AtomicU64,
}

/// Key prefixes tracked apart, each with a slot; slot 0 is [`OTHER`].
pub(crate) struct Prefixes {
    max: usize,
    slots: RwLock<HashMap<Box<str>, usize>>,
    /// Slot → its name and counts; grows up to `max + 1`.
    names: RwLock<Vec<(Box<str>, Arc<PrefixCounts>)>>,
}

impl Prefixes {
    pub(crate) fn new(max: usize) -> Self {
        Prefixes {
            max,
            slots: RwLock::new(HashMap::new()),
            names: RwLock::new(vec![(OTHER.into(), Default::default())]),
        }
    }

    /// The slot of `prefix` (a [`crate::trace::prefix`]), taken if it is new and room is left.
    pub(crate) fn slot(&self, prefix: &str) -> usize {
        if let Some(&slot) = self.slots.read().get(prefix) {
            return slot;
        }
        let mut slots = self.slots.write();
        if let Some(&slot) = slots.get(prefix) {
            return slot;
        }
        if slots.len() >= self.max {
            return 0;
        }
        let mut names = self.names.write();
        let slot = names.len();
        names.push((prefix.into(), Default::default()));
        slots.insert(prefix.into(), slot);
        slot
    }

    /// The counts of `slot`.
    pub(crate) fn counts(&self, slot: usize) -> Option<Arc<PrefixCounts>> {
        self.names.read().get(slot).map(|(_, c)| c.clone())
    }

    /// Every slot's name and counts, in slot order.
    pub(crate) fn all(&self) -> Vec<(Box<str>, Arc<PrefixCounts>)> {
        self.names.read().clone()
    }
}

/// Two rotating bitsets of missed keys.
pub(crate) struct SeenKeys {
    sets: [Vec<AtomicU64>; 2],
    /// Which set is current (0 or 1).
    current: AtomicUsize,
    /// Keys the current set took.
    taken: AtomicU64,
    /// One rotation at a time.
    rotating: AtomicBool,
}

impl Default for SeenKeys {
    fn default() -> Self {
        let set = || (0..BITS / 64).map(|_| AtomicU64::new(0)).collect();
        SeenKeys {
            sets: [set(), set()],
            current: AtomicUsize::new(0),
            taken: AtomicU64::new(0),
            rotating: AtomicBool::new(false),
        }
    }
}

impl SeenKeys {
    /// Two bit positions of the fingerprint.
    fn positions(fp: Fingerprint) -> [usize; 2] {
        [(fp.0 as usize) % BITS, ((fp.0 >> 64) as usize) % BITS]
    }

    fn has(set: &[AtomicU64], bits: [usize; 2]) -> bool {
        bits.iter()
            .all(|&b| set[b / 64].load(Ordering::Relaxed) & (1 << (b % 64)) != 0)
    }

    /// Records a missed key; whether it was new.
    pub(crate) fn note(&self, fp: Fingerprint) -> bool {
        let bits = Self::positions(fp);
        let cur = self.current.load(Ordering::Relaxed) & 1;
        if Self::has(&self.sets[cur], bits) {
            return false;
        }
        let known = Self::has(&self.sets[cur ^ 1], bits);
        for b in bits {
            self.sets[cur][b / 64].fetch_or(1 << (b % 64), Ordering::Relaxed);
        }
        if self.taken.fetch_add(1, Ordering::Relaxed) + 1 >= ROTATE_AFTER {
            self.rotate();
        }
        !known
    }

    /// The previous set is emptied and becomes current. A key noted during the clearing may be
    /// lost from the sets (it is then counted new once more): harmless for a rate.
    #[cold]
    fn rotate(&self) {
        if self.rotating.swap(true, Ordering::Acquire) {
            return;
        }
        let next = (self.current.load(Ordering::Relaxed) & 1) ^ 1;
        for w in &self.sets[next] {
            w.store(0, Ordering::Relaxed);
        }
        self.taken.store(0, Ordering::Relaxed);
        self.current.store(next, Ordering::Relaxed);
        self.rotating.store(false, Ordering::Release);
    }
}

/// The figures the engine feeds to the anomaly sampler.
pub(crate) struct Signals {
    on: bool,
    pub(crate) prefixes: Arc<Prefixes>,
    seen: SeenKeys,
    /// Keys never seen before, missed (all prefixes).
    pub(crate) new_keys: AtomicU64,
    /// Remote reads timed, and their summed time in microseconds.
    pub(crate) l2_reads: AtomicU64,
    pub(crate) l2_read_us: AtomicU64,
    /// Remote calls of any kind.
    pub(crate) l2_calls: AtomicU64,
}

impl Signals {
    pub(crate) fn new(on: bool, max_prefixes: usize) -> Self {
        Signals {
            on,
            prefixes: Arc::new(Prefixes::new(max_prefixes)),
            seen: if on {
                SeenKeys::default()
            } else {
                SeenKeys::empty()
            },
            new_keys: AtomicU64::new(0),
            l2_reads: AtomicU64::new(0),
            l2_read_us: AtomicU64::new(0),
            l2_calls: AtomicU64::new(0),
        }
    }

    /// Whether anomaly detection is on.
    pub(crate) fn on(&self) -> bool {
        self.on
    }

    /// A read that no tier answered.
    pub(crate) fn miss(&self, key: &str, fp: Fingerprint) {
        if !self.on {
            return;
        }
        let slot = self.prefixes.slot(crate::trace::prefix(key));
        let new = self.seen.note(fp);
        if new {
            self.new_keys.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(c) = self.prefixes.counts(slot) {
            c.misses.fetch_add(1, Ordering::Relaxed);
            if new {
                c.new_keys.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// One remote call and how long it took; `read`: a `GET` or `MGET`.
    pub(crate) fn l2_call(&self, read: bool, took: std::time::Duration) {
        if !self.on {
            return;
        }
        self.l2_calls.fetch_add(1, Ordering::Relaxed);
        if read {
            self.l2_reads.fetch_add(1, Ordering::Relaxed);
            self.l2_read_us
                .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        }
    }
}

impl SeenKeys {
    /// Sets of no bits (detection off): nothing allocated.
    fn empty() -> Self {
        SeenKeys {
            sets: [Vec::new(), Vec::new()],
            current: AtomicUsize::new(0),
            taken: AtomicU64::new(0),
            rotating: AtomicBool::new(false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_are_not_new_and_rotation_keeps_the_previous_set() {
        let seen = SeenKeys::default();
        let fp = |i: u64| Fingerprint::of(&format!("k:{i}"));
        assert!((0..1000).all(|i| seen.note(fp(i))), "first sight: new");
        assert!((0..1000).all(|i| !seen.note(fp(i))), "seen again: known");
        // One rotation: the keys are still known (the previous set).
        for i in 0..ROTATE_AFTER {
            seen.note(fp(1_000_000 + i));
        }
        let known = (0..1000).filter(|&i| !seen.note(fp(i))).count();
        assert_eq!(known, 1000);
        // Past two rotations without them: forgotten (apart from false positives).
        for i in 0..2 * ROTATE_AFTER + 10 {
            seen.note(fp(2_000_000 + i));
        }
        let new = (0..1000).filter(|&i| seen.note(fp(i))).count();
        assert!(new > 900, "{new}");
    }

    #[test]
    fn prefixes_are_capped_and_misses_counted() {
        let s = Signals::new(true, 2);
        for key in ["a:1", "a:2", "b:1", "c:1", "d:1", "a:1"] {
            s.miss(key, Fingerprint::of(key));
        }
        let all = s.prefixes.all();
        let names: Vec<&str> = all.iter().map(|(n, _)| &**n).collect();
        assert_eq!(names, [OTHER, "a", "b"]);
        let misses: Vec<u64> = all
            .iter()
            .map(|(_, c)| c.misses.load(Ordering::Relaxed))
            .collect();
        let new: Vec<u64> = all
            .iter()
            .map(|(_, c)| c.new_keys.load(Ordering::Relaxed))
            .collect();
        assert_eq!(misses, [2, 3, 1]);
        assert_eq!(new, [2, 2, 1], "a:1 was missed twice: new once");
        assert_eq!(s.new_keys.load(Ordering::Relaxed), 5);
        let off = Signals::new(false, 2);
        off.miss("a:1", Fingerprint::of("a:1"));
        assert_eq!(off.new_keys.load(Ordering::Relaxed), 0);
    }
}
