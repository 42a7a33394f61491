//! Loads that an invalidation overtook do not store ("stale set", issue 25).
//!
//! A load reads the database, then stores what it read. If a write and its invalidation happen
//! between the two, storing would put the old value back for the entry's whole TTL. So every
//! load remembers where it started, and its store is dropped (the value still goes to its
//! callers) when an invalidation of its key has happened since:
//!
//! - **In this process**: an [`InvalidationLog`] numbers every invalidation this instance makes
//!   or hears of on the pub/sub channel (by key, by pattern, clear, a direct write). A load takes
//!   the current number when it starts; before its store it asks whether anything since then
//!   reaches its key. An L1 insert is checked again after it is made, because an invalidation
//!   records itself *before* it removes L1 entries: either the removal sees the new entry, or the
//!   second check sees the record.
//! - **In Redis, across instances**: every invalidation first writes a marker (per key: a random
//!   token under `tiered-cache:inv:{key}` that expires after `load_guard_window`; per pattern or
//!   clear: `INCR tiered-cache:inv-epoch`), and only then deletes; a direct write writes the
//!   key's marker before its value. A load reads both after its
//!   Redis miss and stores with a Lua script that writes only if neither changed. No clocks are
//!   compared. A load that took longer than the markers live is not stored in Redis (its marker
//!   may have expired unseen).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::key::Fingerprint;
use crate::pattern::Pattern;

/// The default `load_guard_window`: how long a key's invalidation marker lives in Redis; a load
/// that takes longer is not stored there (see the module docs).
pub(crate) const MARKER_TTL: Duration = Duration::from_secs(60);

/// Buckets of key invalidations: each holds the number of the latest invalidation of a key that
/// hashes to it, so key invalidations never run out of room, however many there are during one
/// load; two keys sharing a bucket can only make a load skip its store, never store stale.
const KEY_BUCKETS: usize = 4096;

/// Pattern invalidations and clears remembered. A load that started before the oldest one kept
/// does not store: that takes this many of them during one load.
const BROAD_KEPT: usize = 1024;

/// What an invalidation reached.
pub(crate) enum Invalidated {
    /// One key (delete, direct write, a key named by another instance).
    Key(Fingerprint),
    /// Every key matching.
    Pattern(Pattern),
    /// Everything (`clear`, or a resubscription that may have missed messages).
    All,
}

/// The numbered invalidations of this process (see the module docs).
pub(crate) struct InvalidationLog {
    seq: AtomicU64,
    keys: Box<[AtomicU64]>,
    broad: Mutex<VecDeque<(u64, Option<Pattern>)>>,
}

impl Default for InvalidationLog {
    fn default() -> Self {
        InvalidationLog {
            seq: AtomicU64::new(0),
            keys: (0..KEY_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            broad: Mutex::new(VecDeque::new()),
        }
    }
}

impl InvalidationLog {
    /// Where a load starts: the number of the latest invalidation.
    pub(crate) fn start(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    fn bucket(&self, fp: Fingerprint) -> &AtomicU64 {
        &self.keys[(fp.0 as usize) % KEY_BUCKETS]
    }

    /// Records an invalidation; call it before removing what it invalidates.
    pub(crate) fn record(&self, what: Invalidated) {
        // One lock orders the numbers and what they name: a reader that sees a number sees
        // its record too.
        let mut broad = self.broad.lock();
        let n = self.seq.load(Ordering::Relaxed) + 1;
        match what {
            Invalidated::Key(fp) => {
                self.bucket(fp).store(n, Ordering::Release);
            }
            Invalidated::Pattern(p) => push_broad(&mut broad, n, Some(p)),
            Invalidated::All => push_broad(&mut broad, n, None),
        }
        self.seq.store(n, Ordering::Release);
    }

    /// Whether an invalidation since `start` reaches `key`. One atomic load when nothing was
    /// invalidated since (the common case), one more for its key's bucket.
    pub(crate) fn overtaken(&self, start: u64, fp: Fingerprint, key: &str) -> bool {
        if self.seq.load(Ordering::Acquire) == start {
            return false;
        }
        if self.bucket(fp).load(Ordering::Acquire) > start {
            return true;
        }
        let broad = self.broad.lock();
        if broad.len() == BROAD_KEPT && broad.front().is_some_and(|(oldest, _)| *oldest > start) {
            // Older records were dropped: what happened since `start` is not all known.
            return true;
        }
        broad
            .iter()
            .rev()
            .take_while(|(n, _)| *n > start)
            .any(|(_, p)| p.as_ref().is_none_or(|p| p.matches(key)))
    }
}

fn push_broad(broad: &mut VecDeque<(u64, Option<Pattern>)>, n: u64, what: Option<Pattern>) {
    if broad.len() == BROAD_KEPT {
        broad.pop_front();
    }
    broad.push_back((n, what));
}

/// What a load saw when it started: the in-process number and, when Redis answered, the key's
/// marker and the pattern epoch.
#[derive(Debug, Clone)]
pub(crate) struct LoadStart {
    pub seq: u64,
    pub seen: Option<Seen>,
    pub at: std::time::Instant,
    /// The load's tags as they were before it ran ([`crate::tags`]).
    pub tags: Vec<crate::tags::TagStamp>,
}

/// The Redis markers a load read after its miss; its store compares them again on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Seen {
    pub marker: Vec<u8>,
    pub epoch: Vec<u8>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_invalidations_since_the_start_that_reach_the_key_count() {
        let log = InvalidationLog::default();
        let a = Fingerprint::of("query:a");
        let before = log.start();
        log.record(Invalidated::Key(Fingerprint::of("query:b")));
        let start = log.start();
        assert!(!log.overtaken(start, a, "query:a"));
        assert!(!log.overtaken(before, a, "query:a"), "another key");
        log.record(Invalidated::Pattern(Pattern::new("resource:*").unwrap()));
        assert!(!log.overtaken(start, a, "query:a"));
        log.record(Invalidated::Pattern(Pattern::new("query:*").unwrap()));
        assert!(log.overtaken(start, a, "query:a"));
        let later = log.start();
        assert!(!log.overtaken(later, a, "query:a"));
        log.record(Invalidated::Key(a));
        assert!(log.overtaken(later, a, "query:a"));
        let last = log.start();
        log.record(Invalidated::All);
        assert!(log.overtaken(last, Fingerprint::of("x"), "x"));
    }

    #[test]
    fn key_invalidations_never_run_out_of_room() {
        let log = InvalidationLog::default();
        let start = log.start();
        let a = Fingerprint::of("query:a");
        for i in 0..100_000 {
            let fp = Fingerprint::of(&format!("other:{i}"));
            if !std::ptr::eq(log.bucket(fp), log.bucket(a)) {
                log.record(Invalidated::Key(fp));
            }
        }
        assert!(!log.overtaken(start, a, "query:a"), "other keys only");
        log.record(Invalidated::Key(a));
        assert!(log.overtaken(start, a, "query:a"));
    }

    #[test]
    fn a_load_older_than_the_broad_records_kept_does_not_store() {
        let log = InvalidationLog::default();
        let start = log.start();
        for i in 0..(BROAD_KEPT + 10) {
            log.record(Invalidated::Pattern(
                Pattern::new(&format!("other:{i}:*")).unwrap(),
            ));
        }
        assert!(log.overtaken(start, Fingerprint::of("query:a"), "query:a"));
        let recent = log.start() - 5;
        assert!(!log.overtaken(recent, Fingerprint::of("query:a"), "query:a"));
    }
}
