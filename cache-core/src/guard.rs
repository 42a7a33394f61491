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
//!   token under `tiered-cache:inv:{key}` that expires after [`MARKER_TTL`]; per pattern or
//!   clear: `INCR tiered-cache:inv-epoch`), and only then deletes. A load reads both after its
//!   Redis miss and stores with a Lua script that writes only if neither changed. No clocks are
//!   compared. A load that took longer than the markers live is not stored in Redis (its marker
//!   may have expired unseen).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;

use crate::key::Fingerprint;
use crate::pattern::Pattern;

/// How long a key's invalidation marker lives in Redis; a load that takes longer is not stored
/// there (see the module docs).
pub(crate) const MARKER_TTL: Duration = Duration::from_secs(60);

/// Invalidations remembered in process. A load that started before the oldest one kept cannot
/// be told apart and does not store: with 4096 kept, that takes thousands of invalidations
/// during one load.
const KEPT: usize = 4096;

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
#[derive(Default)]
pub(crate) struct InvalidationLog {
    seq: AtomicU64,
    recent: Mutex<VecDeque<(u64, Invalidated)>>,
}

impl InvalidationLog {
    /// Where a load starts: the number of the latest invalidation.
    pub(crate) fn start(&self) -> u64 {
        self.seq.load(Ordering::Acquire)
    }

    /// Records an invalidation; call it before removing what it invalidates.
    pub(crate) fn record(&self, what: Invalidated) {
        let mut recent = self.recent.lock();
        let n = self.seq.load(Ordering::Relaxed) + 1;
        if recent.len() == KEPT {
            recent.pop_front();
        }
        recent.push_back((n, what));
        self.seq.store(n, Ordering::Release);
    }

    /// Whether an invalidation since `start` reaches `key`. One atomic load when nothing was
    /// invalidated since (the common case).
    pub(crate) fn overtaken(&self, start: u64, fp: Fingerprint, key: &str) -> bool {
        if self.seq.load(Ordering::Acquire) == start {
            return false;
        }
        let recent = self.recent.lock();
        match recent.front() {
            // Older records were dropped: what happened since `start` is not all known.
            Some((oldest, _)) if *oldest > start + 1 => return true,
            None => return true,
            Some(_) => {}
        }
        recent
            .iter()
            .rev()
            .take_while(|(n, _)| *n > start)
            .any(|(_, what)| match what {
                Invalidated::Key(f) => *f == fp,
                Invalidated::Pattern(p) => p.matches(key),
                Invalidated::All => true,
            })
    }
}

/// What a load saw when it started: the in-process number and, when Redis answered, the key's
/// marker and the pattern epoch.
#[derive(Debug, Clone)]
pub(crate) struct LoadStart {
    pub seq: u64,
    pub seen: Option<Seen>,
    pub at: std::time::Instant,
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
    fn a_load_older_than_what_is_kept_does_not_store() {
        let log = InvalidationLog::default();
        let start = log.start();
        for i in 0..(KEPT + 10) {
            log.record(Invalidated::Key(Fingerprint::of(&format!("other:{i}"))));
        }
        assert!(log.overtaken(start, Fingerprint::of("query:a"), "query:a"));
        let recent = log.start() - 5;
        assert!(!log.overtaken(recent, Fingerprint::of("query:a"), "query:a"));
    }
}
