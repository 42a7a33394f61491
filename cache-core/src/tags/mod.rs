//! Cache tags: invalidating a group of entries in O(1), whatever their keys and however many.
//!
//! Why this file is past ~600 lines: a tag's state (its seqlock), the registry and the token
//! reads with their single flight are one protocol whose orderings must be read together; its
//! tests are in `tests.rs`.
//!
//! Invalidating a tag scans nothing and lists nothing. It writes one small value in Redis, the
//! tag's *token* (`tiered-cache:tag:<tag>`, a fresh random value each time; absent = never
//! invalidated), and publishes it on the invalidation bus. Every tagged entry carries, in its
//! envelope, the token of each of its tags as its load saw them *before* it ran; a read compares
//! them with the current tokens and treats any difference as a miss. So a load that began
//! before an invalidation stores an entry that reads as stale everywhere: no clocks compared,
//! no race to win.
//!
//! In process, each tag is a `TagState` shared by every L1 entry that carries it: a version
//! bumped by each invalidation (local or heard on the bus), and the last token known from
//! Redis. An L1 entry holds `(state, version)` pairs (`Stamp`), so invalidating a tag makes
//! all its L1 entries stale at once, and a tagged L1 hit makes no round trip: while the
//! process's tag generation has not moved since the entry was last checked, it compares that one
//! number (`EntryTags`); else it checks its stamps, one atomic load per tag. They are dropped physically when next read or evicted (removing them eagerly would
//! need an index from tags to entries on every write). Redis copies are never deleted: they
//! read as misses and are overwritten by the next load, or expire.
//!
//! Known tokens are kept fresh by the bus; without one (`l1_invalidation = false`) nothing
//! tells this instance about other instances' invalidations, so tokens are read from Redis for
//! every remote read of a tagged entry. Even with a bus a token is re-read after
//! `KNOWN_FOR`, which bounds how long a lost message or an expired record can mislead.
//! Concurrent reads of an unknown token share one Redis read (single flight per tag).
//!
//! Tag records expire `tag_ttl` after their last invalidation, and a tagged entry's Redis TTL
//! is capped at `tag_ttl`: an entry written before an invalidation is gone before the record
//! of that invalidation is.
//!
//! When Redis cannot be asked for a token, a remote entry carrying that tag is a miss, fail-safe
//! included: an entry is never served when one of its tags may have been invalidated. L1 entries
//! still answer from their versions, which this instance's own invalidations always bump.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{CacheError, Result};
use crate::tier::RemoteTier;

/// Where a tag's record lives in Redis: this prefix and the tag, under the cache's namespace.
pub const TAG_PREFIX: &str = "tiered-cache:tag:";
/// How long a token read from Redis is trusted without a fresh read.
pub(crate) const KNOWN_FOR: Duration = Duration::from_secs(60);
/// The longest tag, in bytes.
pub const MAX_TAG_LEN: usize = 4096;
/// The most tags one entry may carry.
pub const MAX_TAGS_PER_ENTRY: usize = 256;
const SHARDS: usize = 16;
/// States no entry refers to, kept per shard for their known tokens before a prune.
const KEPT_PER_SHARD: usize = 4096;

/// One tag in this process (see the module docs).
pub(crate) struct TagState {
    name: Box<str>,
    version: AtomicU64,
    /// The writers' record (writers hold the lock); mirrored below for readers.
    known: Mutex<Known>,
    /// A seqlock over the version and the mirror: odd while a writer changes them, so a reader
    /// takes no lock (64 tasks reading one shared tag fought over the mutex).
    seq: AtomicU64,
    /// The current token, when `learned_ms` is not 0.
    token: AtomicU64,
    /// When the token was learned, in ms since the registry's epoch plus 1; 0: not current.
    learned_ms: AtomicU64,
    /// Single flight of token reads.
    flight: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for TagState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TagState")
            .field("name", &self.name)
            .field("version", &self.version.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The last token learned, and whether it may still be used.
#[derive(Clone, Copy, Default)]
struct Known {
    /// The last token learned (from Redis or the bus); `None` before any.
    token: Option<u64>,
    /// When it was learned, while it is current: reset by an invalidation not yet confirmed.
    at: Option<Instant>,
}

impl TagState {
    fn new(name: &str) -> Self {
        TagState {
            name: name.into(),
            version: AtomicU64::new(0),
            known: Mutex::new(Known::default()),
            seq: AtomicU64::new(0),
            token: AtomicU64::new(0),
            learned_ms: AtomicU64::new(0),
            flight: tokio::sync::Mutex::new(()),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    #[inline]
    fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// Opens a write of the version and the mirror (call with `known` locked); the guard closes
    /// it.
    fn writing(&self) -> Writing<'_> {
        self.seq.fetch_add(1, Ordering::Relaxed);
        // The classic seqlock writer: no store of the write may be seen before the odd sequence.
        std::sync::atomic::fence(Ordering::Release);
        Writing(self)
    }
}

struct Writing<'a>(&'a TagState);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.seq.fetch_add(1, Ordering::Release);
    }
}

/// An L1 entry's record of one of its tags: fresh while the tag's version is the one seen.
#[derive(Clone)]
pub(crate) struct Stamp {
    state: Arc<TagState>,
    version: u64,
}

/// Whether no tag of an entry was invalidated since it was stamped: one atomic load per tag.
#[inline]
pub(crate) fn fresh(stamps: &[Stamp]) -> bool {
    stamps.iter().all(|s| s.state.version() == s.version)
}

/// An L1 entry's tags: the stamps, and the generation of the process's tags ([`Tags`]) when they
/// were taken. While the generation has not moved, no tag anywhere was invalidated, and the hit
/// skips the stamps (measured: two per-key tags cost a hit ~20 ns through the stamps, the
/// generation ~1 ns; see `docs/design-notes.md`).
pub(crate) struct EntryTags {
    pub stamps: Box<[Stamp]>,
    pub generation: u64,
}

/// What a load or a write saw of one tag before it ran: the version (for its L1 entry) and the
/// token (for its envelope; `None` when Redis could not be asked: then it is not written there).
#[derive(Debug, Clone)]
pub(crate) struct TagStamp {
    pub state: Arc<TagState>,
    pub version: u64,
    pub token: Option<u64>,
    /// The tag generation read before the version.
    pub generation: u64,
}

impl TagStamp {
    /// The L1 form.
    pub(crate) fn stamp(&self) -> Stamp {
        Stamp {
            state: Arc::clone(&self.state),
            version: self.version,
        }
    }
}

/// L1 stamps of a write's tags; `None` when untagged (the hit then skips the check).
pub(crate) fn stamps_of(tags: &[TagStamp]) -> Option<EntryTags> {
    (!tags.is_empty()).then(|| EntryTags {
        stamps: tags.iter().map(TagStamp::stamp).collect(),
        generation: tags.iter().map(|t| t.generation).min().unwrap_or(0),
    })
}

/// Whether an invalidation of any of these tags came since they were stamped.
pub(crate) fn moved(tags: &[TagStamp]) -> bool {
    tags.iter().any(|t| t.state.version() != t.version)
}

/// The token a tag record's value stands for, as entries carry it in their envelope: its hash,
/// so that any bytes (even another program's) compare consistently; 0 when absent (which no
/// entry written through a Redis tier carries: a tag gets a record before anything is stamped).
///
/// ```
/// use cache_core::tags::token_of;
/// assert_eq!(token_of(None), 0);
/// assert_ne!(token_of(Some(b"0123456789abcdef")), 0);
/// ```
pub fn token_of(value: Option<&[u8]>) -> u64 {
    value.map_or(0, |v| xxhash_rust::xxh3::xxh3_64(v) | 1)
}

/// The Redis key of a tag's record (before the tier adds the namespace).
pub(crate) fn record_key(name: &str) -> String {
    format!("{TAG_PREFIX}{name}")
}

/// A new token's Redis value.
pub(crate) fn new_token_value() -> String {
    format!("{:016x}", fastrand::u64(..))
}

/// Checks a tag given by a caller.
pub(crate) fn validate(tag: &str) -> Result<()> {
    let reason = if tag.len() > MAX_TAG_LEN {
        format!("{} bytes is over the limit of {MAX_TAG_LEN}", tag.len())
    } else {
        return Ok(());
    };
    let mut shown: String = tag.chars().take(64).collect();
    if shown.len() < tag.len() {
        shown.push_str("...");
    }
    Err(CacheError::InvalidTag { tag: shown, reason })
}

/// Checks the tags of one entry.
pub(crate) fn validate_all(tags: &[&str]) -> Result<()> {
    if tags.len() > MAX_TAGS_PER_ENTRY {
        return Err(CacheError::InvalidTag {
            tag: tags.first().map(|t| (*t).to_owned()).unwrap_or_default(),
            reason: format!("{} tags on one entry; at most {MAX_TAGS_PER_ENTRY}", tags.len()),
        });
    }
    tags.iter().try_for_each(|t| validate(t))
}

/// The tags of one process: a state per tag some entry or load refers to (plus recently used
/// ones, for their known tokens).
pub(crate) struct Tags {
    shards: Box<[parking_lot::RwLock<Shard>]>,
    /// Where `learned_ms` counts from.
    epoch: Instant,
    /// Bumped after every version bump of any tag: L1 reads it to skip the stamps.
    generation: Arc<AtomicU64>,
    hasher: std::hash::RandomState,
    /// Whether the bus is subscribed now, so that known tokens are kept fresh (see the module
    /// docs); set by the listener on every subscription, cleared when one is lost.
    listening: std::sync::atomic::AtomicBool,
    /// How long a tag record lives in Redis (`tag_ttl`).
    record_ttl: Duration,
}

struct Shard {
    map: HashMap<Box<str>, Arc<TagState>>,
    prune_at: usize,
}

impl Tags {
    /// `listening`: whether known tokens may be trusted from the start (the unit tests; a cache
    /// starts without and is told by its listener).
    pub(crate) fn new(listening: bool, record_ttl: Duration) -> Self {
        Tags {
            shards: (0..SHARDS)
                .map(|_| {
                    parking_lot::RwLock::new(Shard {
                        map: HashMap::new(),
                        prune_at: KEPT_PER_SHARD,
                    })
                })
                .collect(),
            epoch: Instant::now(),
            hasher: std::hash::RandomState::new(),
            generation: Arc::new(AtomicU64::new(0)),
            listening: std::sync::atomic::AtomicBool::new(listening),
            record_ttl,
        }
    }

    /// The bus subscribed (`true`) or lost its subscription (`false`). Until it subscribes again
    /// no token known from memory is used: they are read from Redis.
    pub(crate) fn set_listening(&self, listening: bool) {
        self.listening.store(listening, Ordering::Release);
    }

    /// Whether the bus is subscribed now (what other instances change is heard).
    pub(crate) fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    /// The generation counter, for L1's hit check.
    pub(crate) fn generation(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.generation)
    }

    /// Marks every entry stamped with `s` so far stale; call with `s.known` locked. The version
    /// first: a reader that sees the new generation sees the new version.
    fn bump(&self, s: &TagState) -> u64 {
        let v = s.version.fetch_add(1, Ordering::AcqRel) + 1;
        self.generation.fetch_add(1, Ordering::AcqRel);
        v
    }

    fn shard(&self, name: &str) -> &parking_lot::RwLock<Shard> {
        &self.shards[(self.hasher.hash_one(name) as usize) % SHARDS]
    }

    /// The state of `name`, created if needed.
    pub(crate) fn state(&self, name: &str) -> Arc<TagState> {
        let shard = self.shard(name);
        if let Some(s) = shard.read().map.get(name) {
            return Arc::clone(s);
        }
        let mut shard = shard.write();
        if let Some(s) = shard.map.get(name) {
            return Arc::clone(s);
        }
        if shard.map.len() >= shard.prune_at {
            // States only this map holds have no entry to invalidate; forgetting them costs a
            // token read when they come back.
            shard.map.retain(|_, s| Arc::strong_count(s) > 1);
            shard.prune_at = (2 * shard.map.len()).max(KEPT_PER_SHARD);
        }
        let s = Arc::new(TagState::new(name));
        shard.map.insert(name.into(), Arc::clone(&s));
        s
    }

    fn existing(&self, name: &str) -> Option<Arc<TagState>> {
        self.shard(name).read().map.get(name).cloned()
    }

    /// Now, as `learned_ms` counts.
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Copies the writers' record into what readers see; call inside [`TagState::writing`].
    fn mirror(&self, s: &TagState, k: &Known) {
        let learned = match (k.token, k.at) {
            (Some(token), Some(at)) => {
                s.token.store(token, Ordering::Relaxed);
                at.saturating_duration_since(self.epoch).as_millis() as u64 + 1
            }
            _ => 0,
        };
        s.learned_ms.store(learned, Ordering::Relaxed);
    }

    /// The token known for `s` and its version, if still usable.
    fn current(&self, s: &TagState) -> Option<(u64, u64)> {
        self.current_at(s, self.now_ms())
    }

    /// [`current`](Self::current) at `now_ms`, without a lock: a seqlock read.
    fn current_at(&self, s: &TagState, now_ms: u64) -> Option<(u64, u64)> {
        if !self.listening.load(Ordering::Acquire) {
            return None;
        }
        let before = s.seq.load(Ordering::Acquire);
        if before & 1 == 1 {
            return None;
        }
        let version = s.version.load(Ordering::Acquire);
        let token = s.token.load(Ordering::Acquire);
        let learned = s.learned_ms.load(Ordering::Acquire);
        std::sync::atomic::fence(Ordering::Acquire);
        if s.seq.load(Ordering::Relaxed) != before || learned == 0 {
            return None;
        }
        (now_ms.saturating_sub(learned) < KNOWN_FOR.as_millis() as u64).then_some((version, token))
    }

    /// What a load or write of an entry with `names` sees of them now: each tag's version, and
    /// its token (from memory, else read from Redis; `None` when that read failed).
    pub(crate) async fn stamps(&self, remote: Option<&dyn RemoteTier>, names: &[&str]) -> Vec<TagStamp> {
        self.try_stamps(remote, names).await.0
    }

    /// [`stamps`](Self::stamps), and the error that kept the tokens unknown (`token: None`).
    pub(crate) async fn try_stamps(
        &self,
        remote: Option<&dyn RemoteTier>,
        names: &[&str],
    ) -> (Vec<TagStamp>, Option<crate::error::CacheError>) {
        let states: Vec<Arc<TagState>> = names.iter().map(|n| self.state(n)).collect();
        let generation = self.generation.load(Ordering::Acquire);
        match self.tokens(remote, &states).await {
            Ok(cur) => (
                states
                    .into_iter()
                    .zip(cur)
                    .map(|(state, (version, token))| TagStamp {
                        state,
                        version,
                        token: Some(token),
                        generation,
                    })
                    .collect(),
                None,
            ),
            Err(e) => {
                tracing::warn!(error = %e, "tag states unreadable: the value goes to L1 only");
                let stamps = states
                    .into_iter()
                    .map(|state| TagStamp {
                        version: state.version(),
                        state,
                        token: None,
                        generation,
                    })
                    .collect();
                (stamps, Some(e))
            }
        }
    }

    /// Whether an entry carrying `tags` (name, token) is fresh (`None`: stale), and then its L1
    /// stamps when it goes into L1 (`for_l1`).
    pub(crate) async fn check(
        &self,
        remote: Option<&dyn RemoteTier>,
        tags: &[(Box<str>, u64)],
        for_l1: bool,
    ) -> Result<Option<Option<EntryTags>>> {
        if !for_l1 {
            // Every token known: compared under the shards' read locks, no state touched or
            // made (a tag every key shares would otherwise bounce its counts between threads).
            let now_ms = self.now_ms();
            let mut all_known = true;
            for (name, token) in tags {
                let current = match self.shard(name).read().map.get(&**name) {
                    Some(s) => self.current_at(s, now_ms),
                    None => None,
                };
                match current {
                    Some((_, now)) if now == *token => {}
                    Some(_) => return Ok(None),
                    None => {
                        all_known = false;
                        break;
                    }
                }
            }
            if all_known {
                return Ok(Some(None));
            }
        }
        let states: Vec<Arc<TagState>> = tags.iter().map(|(n, _)| self.state(n)).collect();
        let generation = self.generation.load(Ordering::Acquire);
        let cur = self.tokens(remote, &states).await?;
        if tags.iter().zip(&cur).any(|((_, token), (_, now))| token != now) {
            return Ok(None);
        }
        Ok(Some(for_l1.then(|| {
            EntryTags {
                stamps: states
                    .into_iter()
                    .zip(cur)
                    .map(|(state, (version, _))| Stamp { state, version })
                    .collect(),
                generation,
            }
        })))
    }

    /// `(version, token)` of each state: known ones from memory, the others read from Redis in
    /// one call, concurrent readers of one tag sharing that call.
    async fn tokens(
        &self,
        remote: Option<&dyn RemoteTier>,
        states: &[Arc<TagState>],
    ) -> Result<Vec<(u64, u64)>> {
        let Some(remote) = remote else {
            // Alone, versions are the whole story.
            return Ok(states.iter().map(|s| (s.version(), 0)).collect());
        };
        let now_ms = self.now_ms();
        let mut out: Vec<Option<(u64, u64)>> = states.iter().map(|s| self.current_at(s, now_ms)).collect();
        if out.iter().all(Option::is_some) {
            return Ok(out.into_iter().flatten().collect());
        }
        let mut lead = Vec::new();
        let mut guards = Vec::new();
        let mut wait = Vec::new();
        for (i, s) in states.iter().enumerate().filter(|(i, _)| out[*i].is_none()) {
            match s.flight.try_lock() {
                Ok(g) => {
                    guards.push(g);
                    lead.push(i);
                }
                Err(_) => wait.push(i),
            }
        }
        if !lead.is_empty() {
            let read = self.read(remote, lead.iter().map(|&i| &*states[i])).await;
            drop(guards);
            for (i, got) in lead.into_iter().zip(read?) {
                out[i] = Some(got);
            }
        }
        let mut rest = Vec::new();
        for i in wait {
            // The other reader's call ends; its answer is known then, unless it failed.
            drop(states[i].flight.lock().await);
            match self.current(&states[i]) {
                Some(c) => out[i] = Some(c),
                None => rest.push(i),
            }
        }
        if !rest.is_empty() {
            let read = self.read(remote, rest.iter().map(|&i| &*states[i])).await?;
            for (i, got) in rest.into_iter().zip(read) {
                out[i] = Some(got);
            }
        }
        Ok(out.into_iter().map(Option::unwrap_or_default).collect())
    }

    /// Reads tokens from Redis and learns them. An answer that an invalidation overtook (the
    /// version moved during the read) is not learned: the invalidation's token is newer.
    async fn read<'s>(
        &self,
        remote: &dyn RemoteTier,
        states: impl Iterator<Item = &'s TagState>,
    ) -> Result<Vec<(u64, u64)>> {
        let states: Vec<(&TagState, u64)> = states.map(|s| (s, s.version())).collect();
        let keys: Vec<String> = states.iter().map(|(s, _)| record_key(&s.name)).collect();
        let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
        let mut values = remote.mget(&refs).await?;
        if values.len() != refs.len() {
            return Err(crate::error::CacheError::Backend(
                crate::error::BackendError::new(
                    crate::error::BackendErrorKind::Other,
                    format!(
                        "MGET of {} tag states answered {} values",
                        refs.len(),
                        values.len()
                    ),
                ),
            ));
        }
        // An absent record must not vouch for anything: entries written before a tag's first
        // invalidation would read as fresh again once Redis evicted its record. So a tag gets a
        // record (a random token, `SET NX`) before any entry is stamped with it.
        let absent: Vec<usize> = (0..values.len()).filter(|&i| values[i].is_none()).collect();
        if !absent.is_empty() {
            let fresh: Vec<String> = absent.iter().map(|_| new_token_value()).collect();
            let items: Vec<crate::tier::Item<'_>> = absent
                .iter()
                .zip(&fresh)
                .map(|(&i, v)| (refs[i], v.as_bytes(), self.record_ttl))
                .collect();
            let now_there = remote.init_plain(&items).await?;
            if now_there.len() != absent.len() || now_there.iter().any(Option::is_none) {
                return Err(crate::error::CacheError::Backend(
                    crate::error::BackendError::new(
                        crate::error::BackendErrorKind::Other,
                        "a tag record could not be created",
                    ),
                ));
            }
            for (&i, v) in absent.iter().zip(now_there) {
                values[i] = v;
            }
        }
        let now = Instant::now();
        Ok(states
            .into_iter()
            .zip(values)
            .map(|((s, before), value)| {
                let token = token_of(value.as_deref());
                let mut k = s.known.lock();
                if s.version() != before {
                    return (before, token);
                }
                let _w = s.writing();
                // A token that changed unannounced (a lost message): this instance's copies
                // stamped with the old one are stale.
                let version = match k.token {
                    Some(old) if old != token => self.bump(s),
                    _ => before,
                };
                *k = Known {
                    token: Some(token),
                    at: Some(now),
                };
                self.mirror(s, &k);
                (version, token)
            })
            .collect())
    }

    /// This instance invalidates `name`: its entries here are stale at once. Returns the state
    /// and its new version, for [`confirmed`](Self::confirmed) once Redis holds the new token.
    pub(crate) fn invalidate_here(&self, name: &str) -> (Arc<TagState>, u64) {
        let s = self.state(name);
        let v = {
            let mut k = s.known.lock();
            let _w = s.writing();
            k.at = None;
            self.mirror(&s, &k);
            self.bump(&s)
        };
        (s, v)
    }

    /// Redis holds `token` for the state invalidated at `version`. Bumps the version again:
    /// a read between the two may have found the old token and stamped an entry with it.
    pub(crate) fn confirmed(&self, s: &TagState, version: u64, token: u64) {
        let mut k = s.known.lock();
        let _w = s.writing();
        let unchanged = s.version() == version;
        self.bump(s);
        *k = Known {
            token: Some(token),
            // Anything else since (a message, a read that saw another token): which token Redis
            // holds now is not known.
            at: unchanged.then(Instant::now),
        };
        self.mirror(s, &k);
    }

    /// Another instance invalidated `name`. Its entries here are stale, and the token is read
    /// from Redis again: the message's own token is not trusted, because two instances'
    /// invalidations may reach Redis in one order and this instance in the other.
    pub(crate) fn heard(&self, name: &str) {
        // No state: no entry here carries the tag, and no token of it is known.
        let Some(s) = self.existing(name) else { return };
        self.unknown(&s);
    }

    /// An invalidation of `s` that Redis may or may not have applied: stale here, token unknown.
    pub(crate) fn failed(&self, s: &TagState) {
        self.unknown(s);
    }

    fn unknown(&self, s: &TagState) {
        let mut k = s.known.lock();
        let _w = s.writing();
        k.at = None;
        self.mirror(s, &k);
        self.bump(s);
    }

    /// Messages may have been lost: every tag is stale here and every token unknown.
    pub(crate) fn forget(&self) {
        for shard in self.shards.iter() {
            for s in shard.read().map.values() {
                let mut k = s.known.lock();
                let _w = s.writing();
                k.at = None;
                self.mirror(s, &k);
                self.bump(s);
            }
        }
    }
}

#[cfg(test)]
mod tests;
