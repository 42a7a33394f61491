//! L1: the in-process level. Typed values (`Arc` of the value itself), so a hit costs a lookup and
//! a clone, never a decode.
//!
//! Why this file is past ~600 lines: the store trait, the default sharded quick_cache store and
//! its shard lock are one hot path (P1) and are read together, with the tag check of a hit;
//! the tests are a third of it.

use crate::clock::{self, Instant};
use std::any::Any;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;

use crossbeam_utils::sync::{ShardedLock, ShardedLockReadGuard, ShardedLockWriteGuard};
use crossbeam_utils::CachePadded;
use quick_cache::unsync::Cache as UnsyncCache;
use quick_cache::{OptionsBuilder, Weighter};

use crate::error::{CacheError, Result};
use crate::key::Fingerprint;
use crate::tags::{EntryTags, Stamp};
use std::sync::atomic::{AtomicU64, Ordering};

/// One L1 entry. The readable key is kept so pattern invalidation can match L1 entries too.
pub(crate) struct L1Entry<V: ?Sized = dyn Any + Send + Sync> {
    pub key: Box<str>,
    pub expires_at: Instant,
    /// Until when an expired entry is kept for fail-safe (= `expires_at` when not).
    pub stale_until: Instant,
    pub bytes: u64,
    /// The entry's tags as stamped when it was loaded ([`crate::tags`]); `None` when untagged.
    /// Boxed twice so that an untagged entry pays one word for it.
    pub tags: Option<Box<Box<[Stamp]>>>,
    /// The tag generation at which the tags were last seen fresh (see `tagged_fresh`).
    pub tags_seen: AtomicU64,
    /// How to write it to the disk tier when it is evicted for room (the disk's write-on-eviction
    /// policy); `None` for every other entry.
    pub spill: Option<Box<SpillMeta>>,
    pub value: V,
}

pub(crate) type Entry = Arc<L1Entry>;

/// Builds an entry; `bytes` is the value's encoded size (its weight in the byte bound).
pub(crate) fn entry<T: Any + Send + Sync>(key: &str, value: T, expires_at: Instant, bytes: u64) -> Entry {
    let bytes = bytes + key.len() as u64 + ENTRY_OVERHEAD;
    Arc::new(L1Entry {
        key: key.into(),
        expires_at,
        stale_until: expires_at,
        bytes,
        tags: None,
        tags_seen: AtomicU64::new(0),
        spill: None,
        value,
    })
}

/// Gives a fresh (still unshared) entry its tags.
pub(crate) fn set_tags(entry: &mut Entry, tags: Option<EntryTags>) {
    if let (Some(e), Some(t)) = (Arc::get_mut(entry), tags) {
        e.tags = Some(Box::new(t.stamps));
        *e.tags_seen.get_mut() = t.generation;
    }
}

/// What an entry evicted from L1 needs to be written to the disk tier.
#[derive(Clone)]
pub(crate) struct SpillMeta {
    /// Its type's encoder.
    pub ops: &'static crate::values::ValueOps,
    /// Its logical expiry, unix ms (0: none); its L1 deadline may be shorter.
    pub expires_at_ms: u64,
    /// When it was made: a write or invalidation of its key after this is newer than it.
    pub created: std::time::Instant,
}

/// Marks an entry, before it is shared, for the disk when L1 evicts it.
pub(crate) fn set_spill(entry: &mut Entry, meta: SpillMeta) {
    if let Some(e) = Arc::get_mut(entry) {
        e.spill = Some(Box::new(meta));
    }
}

/// Where a store hands the marked entries it evicts for room (never those it expires, replaces
/// or is told to remove): called outside the store's locks.
pub(crate) type Spill = Arc<dyn Fn(Entry) + Send + Sync>;

/// Whether none of a tagged entry's tags was invalidated since it was stamped. While no tag of
/// this process moved since the entry was last seen fresh, that is one comparison; else the
/// stamps are checked and, when fresh, the entry remembers the generation.
#[inline(never)]
fn tagged_fresh(generation: &AtomicU64, e: &L1Entry) -> bool {
    let Some(stamps) = &e.tags else {
        return true;
    };
    let now = generation.load(Ordering::Acquire);
    e.tags_seen.load(Ordering::Relaxed) == now || recheck_tags(e, stamps, now)
}

/// The stamps of an entry, checked after the tag generation moved. `now` was read before them:
/// an invalidation after it moves the generation again, so remembering `now` never hides one.
#[cold]
#[inline(never)]
fn recheck_tags(e: &L1Entry, stamps: &[Stamp], now: u64) -> bool {
    let fresh = crate::tags::fresh(stamps);
    if fresh {
        e.tags_seen.store(now, Ordering::Relaxed);
    }
    fresh
}

/// Keeps a fresh (still unshared) entry past its expiry for fail-safe.
pub(crate) fn keep_stale_until(entry: &mut Entry, until: Instant) {
    if let Some(e) = Arc::get_mut(entry) {
        e.stale_until = until.max(e.expires_at);
    }
}

/// Sliding expiration (`ttl_idle`): the entry's L1 deadline is its idle deadline, and its
/// `stale_until` the latest the deadline may move to (the TTL's own, `min(ttl, l1_ttl)`).
pub(crate) fn slide(entry: &mut Entry, idle: std::time::Duration, now: Instant) {
    if let Some(e) = Arc::get_mut(entry) {
        let hard = e.expires_at;
        e.expires_at = hard.min(now + idle);
        e.stale_until = e.stale_until.max(hard);
    }
}

/// The same entry with its idle deadline moved to `expires_at` (a read of a sliding entry): a
/// new `Arc`, since readers hold the old one. `value` is the entry's own, cloned by the reader
/// that knows its type.
pub(crate) fn renewed<T: Any + Send + Sync>(old: &L1Entry, value: T, expires_at: Instant) -> Entry {
    Arc::new(L1Entry {
        key: old.key.clone(),
        expires_at: expires_at.min(old.stale_until),
        stale_until: old.stale_until,
        bytes: old.bytes,
        tags: old.tags.clone(),
        tags_seen: AtomicU64::new(old.tags_seen.load(Ordering::Relaxed)),
        spill: old.spill.clone(),
        value,
    })
}

/// Rough fixed cost of an entry beyond its value and key: the Arc header, the entry fields and the
/// cache's own slot.
const ENTRY_OVERHEAD: u64 = 96;

/// The operations the engine needs from any L1 store. quick_cache backs the default; the strategy
/// module adds stores with other eviction policies behind the same trait.
pub(crate) trait L1Store: Send + Sync + 'static {
    fn get(&self, fp: Fingerprint) -> Option<Entry>;
    fn insert(&self, fp: Fingerprint, entry: Entry);
    fn remove(&self, fp: Fingerprint);
    /// Removes `fp` only if it still holds `entry` (an expired entry may have been replaced).
    fn remove_same(&self, fp: Fingerprint, entry: &Entry);
    /// Removes every entry whose readable key satisfies `pred`; returns how many.
    fn remove_where(&self, pred: &dyn Fn(&str) -> bool) -> u64;
    fn clear(&self);
    fn len(&self) -> u64;
    fn bytes(&self) -> u64;
    /// Inserts an entry that must be kept even if the policy would refuse a never-read entry
    /// (warmed entries).
    fn insert_admitted(&self, fp: Fingerprint, entry: Entry) {
        self.insert(fp, entry);
    }
    /// Applies evictions the store batches (moka); a no-op for the others.
    fn run_pending_tasks(&self) {}
    /// Entries evicted for room so far (not those expired, replaced or removed), counted on
    /// the insert path (anomaly detection: an eviction storm).
    fn evictions(&self) -> u64 {
        0
    }
    /// Calls `f(key, bytes)` for every entry (memory profiling).
    fn visit(&self, f: &mut dyn FnMut(&str, u64));
}

/// The L1 used by the engine: a store plus TTL checks on read.
pub(crate) struct L1 {
    store: Store,
    /// The process's tag generation ([`crate::tags`]).
    tag_generation: Arc<AtomicU64>,
}

/// The default store is named so its reads inline (a hit reads the entry in place); the
/// strategies' stores go through the trait.
pub(crate) enum Store {
    Quick(QuickStore),
    Other(Box<dyn L1Store>),
}

impl Store {
    /// The store of an eviction policy: `max_entries` entries and `max_bytes` bytes, handing the
    /// marked entries it evicts for room to `spill`.
    pub(crate) fn build(
        eviction: crate::strategy::Eviction,
        max_entries: usize,
        max_bytes: u64,
        spill: Option<Spill>,
    ) -> Result<Self> {
        use crate::strategy::Eviction;
        Ok(match eviction {
            Eviction::Fast => Store::Quick(QuickStore::new(max_entries, max_bytes)?.with_spill(spill)),
            Eviction::TinyLfu => Store::Other(Box::new(MokaStore::with_spill(
                max_entries,
                max_bytes,
                false,
                spill,
            ))),
            Eviction::Lru => Store::Other(Box::new(MokaStore::with_spill(
                max_entries,
                max_bytes,
                true,
                spill,
            ))),
            Eviction::Fifo => Store::Other(Box::new(
                FifoStore::new(max_entries, max_bytes)?.with_spill(spill),
            )),
        })
    }
}

impl L1 {
    pub(crate) fn new(store: Store, tag_generation: Arc<AtomicU64>) -> Self {
        L1 {
            store,
            tag_generation,
        }
    }

    /// Whether none of the entry's tags was invalidated since it was stamped.
    #[inline]
    fn tags_fresh(&self, e: &L1Entry) -> bool {
        e.tags.is_none() || tagged_fresh(&self.tag_generation, e)
    }

    #[inline]
    fn store(&self) -> &dyn L1Store {
        match &self.store {
            Store::Quick(q) => q,
            Store::Other(o) => &**o,
        }
    }

    /// `f` applied to the live entry for `fp`, read in place; an expired entry is dropped and
    /// reads as absent.
    #[inline]
    pub(crate) fn read<R>(&self, fp: Fingerprint, f: impl FnOnce(&Entry) -> Option<R>) -> Option<R> {
        let now = clock::now();
        let generation = &*self.tag_generation;
        let check = |e: &Entry| {
            if e.expires_at > now {
                // An untagged entry pays one branch here; a tagged one a call.
                if e.tags.is_some() && !tagged_fresh(generation, e) {
                    // A tag invalidated: dead, fail-safe included.
                    return Err(Some(Arc::clone(e)));
                }
                Ok(f(e))
            } else if e.stale_until <= now || !self.tags_fresh(e) {
                Err(Some(Arc::clone(e)))
            } else {
                Err(None)
            }
        };
        let found = match &self.store {
            Store::Quick(q) => q.read(fp, check)?,
            Store::Other(o) => check(&o.get(fp)?),
        };
        match found {
            Ok(r) => r,
            Err(dead) => {
                if let Some(e) = dead {
                    self.store().remove_same(fp, &e);
                }
                None
            }
        }
    }

    /// The live entry for `fp`; an expired one is dropped and reads as absent.
    #[inline]
    pub(crate) fn get(&self, fp: Fingerprint) -> Option<Entry> {
        self.read(fp, |e| Some(Arc::clone(e)))
    }

    /// An entry past its expiry but inside its fail-safe window.
    pub(crate) fn get_stale(&self, fp: Fingerprint) -> Option<Entry> {
        let e = self.store().get(fp)?;
        (e.stale_until > clock::now() && self.tags_fresh(&e)).then_some(e)
    }

    pub(crate) fn insert(&self, fp: Fingerprint, entry: Entry) {
        if crate::warming::active() {
            self.store().insert_admitted(fp, entry);
        } else {
            self.store().insert(fp, entry);
        }
    }

    pub(crate) fn run_pending_tasks(&self) {
        self.store().run_pending_tasks();
    }

    pub(crate) fn remove(&self, fp: Fingerprint) {
        self.store().remove(fp);
    }

    /// Removes `fp` only if it still holds `entry` (a load whose value turned out stale takes
    /// back its own entry, never a newer one).
    pub(crate) fn remove_same(&self, fp: Fingerprint, entry: &Entry) {
        self.store().remove_same(fp, entry);
    }

    pub(crate) fn remove_where(&self, pred: &dyn Fn(&str) -> bool) -> u64 {
        self.store().remove_where(pred)
    }

    pub(crate) fn clear(&self) {
        self.store().clear();
    }

    pub(crate) fn len(&self) -> u64 {
        self.store().len()
    }

    /// Entries evicted for room so far.
    pub(crate) fn evictions(&self) -> u64 {
        self.store().evictions()
    }

    pub(crate) fn bytes(&self) -> u64 {
        self.store().bytes()
    }

    pub(crate) fn visit(&self, f: &mut dyn FnMut(&str, u64)) {
        self.store().visit(f);
    }
}

/// The fingerprint is already a uniform hash: hashing it again would only cost time.
#[derive(Clone, Default)]
pub(crate) struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = (self.0 ^ u64::from_le_bytes(word)).rotate_left(29);
        }
    }
    #[inline]
    fn write_u128(&mut self, v: u128) {
        self.0 ^= (v as u64) ^ ((v >> 64) as u64);
    }
}

#[derive(Clone, Default)]
pub(crate) struct FingerprintHash;

impl BuildHasher for FingerprintHash {
    type Hasher = FingerprintHasher;
    #[inline]
    fn build_hasher(&self) -> FingerprintHasher {
        FingerprintHasher(0)
    }
}

/// Weight in units of `l1_max_bytes / max_entries`, at least one: with a capacity of `max_entries`
/// units this bounds both the entry count and the bytes. Computed from the entry's size when
/// asked (a division), never stored: an entry is shared before it is inserted.
#[derive(Clone)]
struct UnitsWeighter {
    unit_bytes: u64,
}

impl UnitsWeighter {
    #[inline]
    fn units(&self, e: &Entry) -> u32 {
        e.bytes.div_ceil(self.unit_bytes).clamp(1, u64::from(u32::MAX)) as u32
    }
}

impl Weighter<u128, Entry> for UnitsWeighter {
    #[inline]
    fn weight(&self, _key: &u128, val: &Entry) -> u64 {
        u64::from(self.units(val))
    }
}

/// The lock of one L1 shard: `crossbeam`'s `ShardedLock`, whose readers on different threads
/// take different cache lines. With one lock word per shard, every read wrote that word and two
/// threads of hits pulled it back and forth between cores. With this lock, P1 at 4 tasks on 2
/// threads went from 12.6–13.0 to 16.0–18.7 M hits/s; a single thread's hit is unchanged (82 ns).
/// Writes (inserts and removals: misses and sets, not hits) take all eight of its locks.
struct ShardLock<T>(ShardedLock<T>);

impl<T> ShardLock<T> {
    fn new(v: T) -> Self {
        ShardLock(ShardedLock::new(v))
    }

    /// A panic under the lock leaves the shard as consistent as quick_cache left it; reading
    /// on beats refusing every later hit.
    #[inline]
    fn read(&self) -> ShardedLockReadGuard<'_, T> {
        self.0.read().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> ShardedLockWriteGuard<'_, T> {
        self.0.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// quick_cache (CLOCK-Pro-like, S3-FIFO family): the fast default.
///
/// quick_cache's own `sync::Cache` can only hand out a clone of the stored `Arc` entry: two locked
/// instructions (clone and drop) on every hit, a third of the hit's cost here. So the store shards
/// quick_cache's single-threaded `unsync::Cache` behind its own read-write locks ([`ShardLock`]),
/// as `sync::Cache` does inside, and reads the entry by reference under the read lock: a hit
/// clones only the value.
pub(crate) struct QuickStore {
    shards: Box<[CachePadded<ShardLock<QuickShard>>]>,
    /// `shards.len() - 1` (a power of two).
    mask: u64,
    spill: Option<Spill>,
    /// Entries evicted for room so far.
    evictions: AtomicU64,
}

type QuickShard = UnsyncCache<u128, Entry, UnitsWeighter, FingerprintHash, SpillLifecycle>;

/// Collects the marked entries quick_cache evicts during one insert ([`Spill`]) and counts
/// the evictions.
#[derive(Clone, Default)]
struct SpillLifecycle;

/// What one insert evicted.
#[derive(Default)]
struct Evicted {
    /// The key inserted: its own replaced value is not an eviction.
    inserting: u128,
    /// The marked entries, for the disk tier.
    spill: Vec<(u128, Entry)>,
    /// Other keys' entries pushed out.
    count: u64,
}

impl quick_cache::Lifecycle<u128, Entry> for SpillLifecycle {
    type RequestState = Evicted;

    /// Also called with the value an insert replaces (filtered out by the insert).
    #[inline]
    fn on_evict(&self, state: &mut Evicted, key: u128, val: Entry) {
        if key != state.inserting {
            state.count += 1;
        }
        if val.spill.is_some() {
            state.spill.push((key, val));
        }
    }
}

impl QuickStore {
    pub(crate) fn new(max_entries: usize, max_bytes: u64) -> Result<Self> {
        if max_entries == 0 {
            return Err(CacheError::Config("L1 capacity must be greater than zero".into()));
        }
        let unit_bytes = (max_bytes / max_entries as u64).max(1);
        // quick_cache's sync default: four shards a core, but at least 32 entries a shard.
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let mut shards = (cores * 4).next_power_of_two();
        while shards > 1 && max_entries.div_ceil(shards) < 32 {
            shards /= 2;
        }
        let per_shard = max_entries.div_ceil(shards);
        let options = OptionsBuilder::new()
            .estimated_items_capacity(per_shard)
            .weight_capacity(per_shard as u64)
            .build()
            .map_err(|e| CacheError::Config(format!("L1: {e}")))?;
        let shards = (0..shards)
            .map(|_| {
                CachePadded::new(ShardLock::new(UnsyncCache::with_options(
                    options.clone(),
                    UnitsWeighter { unit_bytes },
                    FingerprintHash,
                    SpillLifecycle,
                )))
            })
            .collect::<Box<[_]>>();
        Ok(QuickStore {
            mask: shards.len() as u64 - 1,
            shards,
            spill: None,
            evictions: AtomicU64::new(0),
        })
    }

    /// Hands the marked entries it evicts to `spill`.
    pub(crate) fn with_spill(mut self, spill: Option<Spill>) -> Self {
        self.spill = spill;
        self
    }

    /// The fingerprint's high half picks the shard; the low half indexes inside it.
    #[inline]
    fn shard(&self, fp: Fingerprint) -> &ShardLock<QuickShard> {
        // `mask < shards.len()`, so the index is always in bounds.
        &self.shards[((fp.0 >> 64) as u64 & self.mask) as usize]
    }

    /// Calls `f` on the entry under the shard's read lock, without cloning the entry.
    #[inline]
    pub(crate) fn read<R>(&self, fp: Fingerprint, f: impl FnOnce(&Entry) -> R) -> Option<R> {
        self.shard(fp).read().get(&fp.0).map(f)
    }
}

impl L1Store for QuickStore {
    #[inline]
    fn get(&self, fp: Fingerprint) -> Option<Entry> {
        self.read(fp, Arc::clone)
    }

    fn insert(&self, fp: Fingerprint, entry: Entry) {
        let new = self.spill.as_ref().map(|_| Arc::clone(&entry));
        let mut evicted = Evicted {
            inserting: fp.0,
            ..Evicted::default()
        };
        self.shard(fp)
            .write()
            .insert_with_lifecycle(fp.0, entry, &mut evicted);
        if evicted.count > 0 {
            self.evictions.fetch_add(evicted.count, Ordering::Relaxed);
        }
        let (Some(spill), Some(new)) = (&self.spill, new) else {
            return;
        };
        for (key, e) in evicted.spill.drain(..) {
            // The value this insert replaced is not evicted; this one, too heavy to keep, is.
            if key != fp.0 || Arc::ptr_eq(&e, &new) {
                spill(e);
            }
        }
    }

    fn remove(&self, fp: Fingerprint) {
        self.shard(fp).write().remove(&fp.0);
    }

    fn remove_same(&self, fp: Fingerprint, entry: &Entry) {
        self.shard(fp).write().remove_if(&fp.0, |e| Arc::ptr_eq(e, entry));
    }

    fn remove_where(&self, pred: &dyn Fn(&str) -> bool) -> u64 {
        let mut removed = 0;
        for shard in &*self.shards {
            let mut shard = shard.write();
            let before = shard.len();
            shard.retain(|_, e| !pred(&e.key));
            removed += before.saturating_sub(shard.len()) as u64;
        }
        removed
    }

    fn clear(&self) {
        for shard in &*self.shards {
            shard.write().clear();
        }
    }

    fn len(&self) -> u64 {
        self.shards.iter().map(|s| s.read().len() as u64).sum()
    }

    fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    fn bytes(&self) -> u64 {
        self.shards
            .iter()
            .map(|s| s.read().iter().map(|(_, e)| e.bytes).sum::<u64>())
            .sum()
    }

    fn visit(&self, f: &mut dyn FnMut(&str, u64)) {
        for shard in &*self.shards {
            shard.read().iter().for_each(|(_, e)| f(&e.key, e.bytes));
        }
    }
}

/// moka (TinyLFU or LRU): for strategies that need its policies.
pub(crate) struct MokaStore {
    cache: moka::sync::Cache<u128, Entry, FingerprintHash>,
    /// Entries evicted for room so far (moka's listener counts them).
    evictions: Arc<AtomicU64>,
}

/// Reads that raise a warmed key's frequency estimate above what TinyLFU admission asks of a
/// never-read key (moka's sketch counts up to 15).
const WARM_TOUCHES: usize = 16;

impl MokaStore {
    /// A store of `max_entries` (and `max_bytes`), handing the marked entries it evicts for
    /// room to `spill`.
    pub(crate) fn with_spill(max_entries: usize, max_bytes: u64, lru: bool, spill: Option<Spill>) -> Self {
        let unit_bytes = (max_bytes / max_entries as u64).max(1);
        let policy = if lru {
            moka::policy::EvictionPolicy::lru()
        } else {
            moka::policy::EvictionPolicy::tiny_lfu()
        };
        let weigher = UnitsWeighter { unit_bytes };
        let builder = moka::sync::Cache::builder()
            .max_capacity(max_entries as u64)
            .weigher(move |_: &u128, e: &Entry| weigher.units(e))
            .eviction_policy(policy);
        let evictions = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&evictions);
        let cache = builder
            .eviction_listener(move |_, e: Entry, cause| {
                if cause == moka::notification::RemovalCause::Size {
                    counted.fetch_add(1, Ordering::Relaxed);
                    if let Some(spill) = spill.as_ref().filter(|_| e.spill.is_some()) {
                        spill(e);
                    }
                }
            })
            .build_with_hasher(FingerprintHash);
        MokaStore { cache, evictions }
    }
}

impl L1Store for MokaStore {
    fn get(&self, fp: Fingerprint) -> Option<Entry> {
        self.cache.get(&fp.0)
    }
    fn insert(&self, fp: Fingerprint, entry: Entry) {
        self.cache.insert(fp.0, entry);
    }
    fn insert_admitted(&self, fp: Fingerprint, entry: Entry) {
        for _ in 0..WARM_TOUCHES {
            let _ = self.cache.get(&fp.0);
        }
        self.cache.run_pending_tasks();
        self.insert(fp, entry);
        self.cache.run_pending_tasks();
    }
    fn remove(&self, fp: Fingerprint) {
        self.cache.invalidate(&fp.0);
    }
    fn remove_same(&self, fp: Fingerprint, entry: &Entry) {
        // Not atomic in moka: a replacement landing in between is dropped too, which only costs
        // one miss.
        if self.cache.get(&fp.0).is_some_and(|e| Arc::ptr_eq(&e, entry)) {
            self.cache.invalidate(&fp.0);
        }
    }
    fn remove_where(&self, pred: &dyn Fn(&str) -> bool) -> u64 {
        let doomed: Vec<u128> = self
            .cache
            .iter()
            .filter(|(_, e)| pred(&e.key))
            .map(|(k, _)| *k)
            .collect();
        for k in &doomed {
            self.cache.invalidate(k);
        }
        doomed.len() as u64
    }
    fn clear(&self) {
        self.cache.invalidate_all();
        self.cache.run_pending_tasks();
    }
    fn len(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
    fn bytes(&self) -> u64 {
        self.cache.iter().map(|(_, e)| e.bytes).sum()
    }
    fn run_pending_tasks(&self) {
        self.cache.run_pending_tasks();
    }
    fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
    fn visit(&self, f: &mut dyn FnMut(&str, u64)) {
        self.cache.iter().for_each(|(_, e)| f(&e.key, e.bytes));
    }
}

/// Insertion-order eviction: an `lru::LruCache` that is only ever read with `peek`, so reads
/// never reorder it and the entry evicted is always the oldest insertion.
pub(crate) struct FifoStore {
    inner: parking_lot::Mutex<FifoInner>,
    max_bytes: u64,
    spill: Option<Spill>,
    /// Entries evicted for room so far.
    evictions: AtomicU64,
}

struct FifoInner {
    list: lru::LruCache<u128, Entry, FingerprintHash>,
    bytes: u64,
}

impl FifoStore {
    pub(crate) fn new(max_entries: usize, max_bytes: u64) -> Result<Self> {
        let cap = std::num::NonZeroUsize::new(max_entries)
            .ok_or_else(|| CacheError::Config("L1 capacity must be greater than zero".into()))?;
        Ok(FifoStore {
            inner: parking_lot::Mutex::new(FifoInner {
                list: lru::LruCache::with_hasher(cap, FingerprintHash),
                bytes: 0,
            }),
            max_bytes,
            spill: None,
            evictions: AtomicU64::new(0),
        })
    }

    /// Hands the marked entries it evicts to `spill`.
    pub(crate) fn with_spill(mut self, spill: Option<Spill>) -> Self {
        self.spill = spill;
        self
    }
}

impl L1Store for FifoStore {
    fn get(&self, fp: Fingerprint) -> Option<Entry> {
        self.inner.lock().list.peek(&fp.0).cloned()
    }
    fn insert(&self, fp: Fingerprint, entry: Entry) {
        let mut evicted = Vec::new();
        let mut inner = self.inner.lock();
        let added = entry.bytes;
        // `push` returns the entry it replaced or evicted by count.
        let mut count = 0;
        if let Some((key, old)) = inner.list.push(fp.0, entry) {
            inner.bytes = inner.bytes.saturating_sub(old.bytes);
            if key != fp.0 {
                count += 1;
            }
            if key != fp.0 && old.spill.is_some() {
                evicted.push(old);
            }
        }
        inner.bytes += added;
        while inner.bytes > self.max_bytes && inner.list.len() > 1 {
            match inner.list.pop_lru() {
                Some((_, old)) => {
                    inner.bytes = inner.bytes.saturating_sub(old.bytes);
                    count += 1;
                    if old.spill.is_some() {
                        evicted.push(old);
                    }
                }
                None => break,
            }
        }
        drop(inner);
        if count > 0 {
            self.evictions.fetch_add(count, Ordering::Relaxed);
        }
        if let Some(spill) = &self.spill {
            evicted.into_iter().for_each(|e| spill(e));
        }
    }
    fn remove(&self, fp: Fingerprint) {
        let mut inner = self.inner.lock();
        if let Some(old) = inner.list.pop(&fp.0) {
            inner.bytes = inner.bytes.saturating_sub(old.bytes);
        }
    }
    fn remove_same(&self, fp: Fingerprint, entry: &Entry) {
        let mut inner = self.inner.lock();
        if inner.list.peek(&fp.0).is_some_and(|e| Arc::ptr_eq(e, entry)) {
            if let Some(old) = inner.list.pop(&fp.0) {
                inner.bytes = inner.bytes.saturating_sub(old.bytes);
            }
        }
    }
    fn remove_where(&self, pred: &dyn Fn(&str) -> bool) -> u64 {
        let mut inner = self.inner.lock();
        let doomed: Vec<u128> = inner
            .list
            .iter()
            .filter(|(_, e)| pred(&e.key))
            .map(|(k, _)| *k)
            .collect();
        for k in &doomed {
            if let Some(old) = inner.list.pop(k) {
                inner.bytes = inner.bytes.saturating_sub(old.bytes);
            }
        }
        doomed.len() as u64
    }
    fn clear(&self) {
        let mut inner = self.inner.lock();
        inner.list.clear();
        inner.bytes = 0;
    }
    fn len(&self) -> u64 {
        self.inner.lock().list.len() as u64
    }
    fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
    fn bytes(&self) -> u64 {
        self.inner.lock().bytes
    }
    fn visit(&self, f: &mut dyn FnMut(&str, u64)) {
        self.inner
            .lock()
            .list
            .iter()
            .for_each(|(_, e)| f(&e.key, e.bytes));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn fp(s: &str) -> Fingerprint {
        Fingerprint::of(s)
    }

    /// Each store counts the entries it evicts for room, not those replaced, removed or
    /// cleared (anomaly detection's eviction storm).
    #[test]
    fn every_store_counts_evictions_for_room_only() {
        let later = clock::now() + Duration::from_secs(60);
        let stores: Vec<(&str, Box<dyn L1Store>)> = vec![
            ("quick", Box::new(QuickStore::new(64, 1 << 20).unwrap())),
            ("moka", Box::new(MokaStore::with_spill(64, 1 << 20, false, None))),
            ("lru", Box::new(MokaStore::with_spill(64, 1 << 20, true, None))),
            ("fifo", Box::new(FifoStore::new(64, 1 << 20).unwrap())),
        ];
        for (name, store) in stores {
            for i in 0..32 {
                let k = format!("k{i}");
                store.insert(fp(&k), entry(&k, 1u32, later, 4));
                store.insert(fp(&k), entry(&k, 2u32, later, 4));
            }
            store.remove(fp("k0"));
            store.run_pending_tasks();
            assert_eq!(
                store.evictions(),
                0,
                "{name}: replaced and removed are not evicted"
            );
            for i in 0..1000 {
                let k = format!("n{i}");
                store.insert(fp(&k), entry(&k, 1u32, later, 4));
            }
            store.run_pending_tasks();
            let (len, ev) = (store.len(), store.evictions());
            assert!(len <= 64 && ev >= 900, "{name}: {len} entries, {ev} evictions");
        }
    }

    /// The generation lets a hit skip the stamps only while no tag moved: another tag's
    /// invalidation sends it to the stamps (fresh, and it remembers the new generation), its own
    /// makes it dead, fail-safe read included.
    #[test]
    fn the_tag_generation_never_hides_an_invalidation() {
        let tags = crate::tags::Tags::new(true, Duration::from_secs(60));
        let l1 = L1::new(
            Store::Quick(QuickStore::new(100, 1 << 20).unwrap()),
            tags.generation(),
        );
        let later = clock::now() + Duration::from_secs(60);
        let stamps = futures::executor::block_on(tags.stamps(None, &["mine", "shared"]));
        let mut e = entry("k", 1u32, later, 4);
        set_tags(&mut e, crate::tags::stamps_of(&stamps));
        l1.insert(fp("k"), e);
        assert!(l1.get(fp("k")).is_some());
        tags.invalidate_here("other");
        let seen = |l1: &L1| l1.get(fp("k")).map(|e| e.tags_seen.load(Ordering::Relaxed));
        let g = seen(&l1).expect("another tag moved: still fresh");
        assert_eq!(
            g,
            tags.generation().load(Ordering::Relaxed),
            "remembers the new generation"
        );
        assert!(l1.get(fp("k")).is_some());
        tags.invalidate_here("shared");
        assert!(l1.get_stale(fp("k")).is_none(), "no fail-safe copy either");
        assert!(l1.get(fp("k")).is_none(), "its own tag moved");
        assert_eq!(l1.len(), 0, "and it is dropped");
    }

    #[test]
    fn expired_entries_read_as_absent() {
        let l1 = L1::new(
            Store::Quick(QuickStore::new(100, 1 << 20).unwrap()),
            Default::default(),
        );
        let past = clock::now() - Duration::from_millis(1);
        l1.insert(fp("a"), entry("a", 1u32, past, 4));
        l1.insert(
            fp("b"),
            entry("b", 2u32, clock::now() + Duration::from_secs(60), 4),
        );
        assert!(l1.get(fp("a")).is_none());
        assert_eq!(l1.len(), 1);
        let b = l1.get(fp("b")).unwrap();
        assert_eq!(b.value.downcast_ref::<u32>(), Some(&2));
    }

    #[test]
    fn bounded_by_count_and_bytes() {
        let later = clock::now() + Duration::from_secs(60);
        let by_count = QuickStore::new(100, 1 << 30).unwrap();
        for i in 0..1000 {
            by_count.insert(fp(&i.to_string()), entry(&i.to_string(), i, later, 8));
        }
        assert!(by_count.len() <= 100, "len {}", by_count.len());
        // 1 MiB for up to 1000 entries: 100 KiB values fit about ten at a time.
        let by_bytes = QuickStore::new(1000, 1 << 20).unwrap();
        for i in 0..100 {
            by_bytes.insert(fp(&i.to_string()), entry(&i.to_string(), i, later, 100 * 1024));
        }
        assert!(by_bytes.bytes() <= 1 << 20, "bytes {}", by_bytes.bytes());
        assert!(by_bytes.len() >= 1);
    }

    /// Regression: weights were stored in the entry only when its Arc was unique, so entries
    /// shared with single-flight waiters weighed 0 and were never evicted.
    #[test]
    fn shared_entries_are_weighed_too() {
        let later = clock::now() + Duration::from_secs(60);
        let store = QuickStore::new(1000, 1 << 20).unwrap();
        let mut kept = Vec::new();
        for i in 0..100 {
            let e = entry(&i.to_string(), i, later, 100 * 1024);
            kept.push(e.clone());
            store.insert(fp(&i.to_string()), e);
        }
        assert!(store.bytes() <= 1 << 20, "bytes {}", store.bytes());
    }

    #[test]
    fn remove_where_matches_readable_keys() {
        let later = clock::now() + Duration::from_secs(60);
        let s = QuickStore::new(100, 1 << 20).unwrap();
        for k in ["q:1", "q:2", "r:1"] {
            s.insert(fp(k), entry(k, 0u8, later, 1));
        }
        assert_eq!(s.remove_where(&|k| k.starts_with("q:")), 2);
        assert_eq!(s.len(), 1);
        assert!(s.get(fp("r:1")).is_some());
    }

    /// Readers on several threads while others insert and remove: a read finds its own key's
    /// value or nothing, and every write lands.
    #[test]
    fn concurrent_reads_and_writes_keep_each_key_its_value() {
        let later = clock::now() + Duration::from_secs(60);
        let l1 = L1::new(
            Store::Quick(QuickStore::new(10_000, 1 << 30).unwrap()),
            Default::default(),
        );
        let key = |i: u64| format!("k:{i}");
        for i in 0..500 {
            l1.insert(fp(&key(i)), entry(&key(i), i, later, 8));
        }
        std::thread::scope(|scope| {
            for t in 0..4u64 {
                let l1 = &l1;
                scope.spawn(move || {
                    for n in 0..20_000u64 {
                        let i = (n * 7 + t) % 1000;
                        let got = l1.read(fp(&key(i)), |e| e.value.downcast_ref::<u64>().copied());
                        assert!(got.is_none() || got == Some(i), "key {i} read {got:?}");
                    }
                });
            }
            for w in 0..2u64 {
                let l1 = &l1;
                scope.spawn(move || {
                    for i in (500 + w..1000).step_by(2) {
                        l1.insert(fp(&key(i)), entry(&key(i), i, later, 8));
                    }
                    for i in (w..500).step_by(2) {
                        l1.remove(fp(&key(i)));
                    }
                });
            }
        });
        assert_eq!(l1.len(), 500);
        assert!(l1.get(fp(&key(999))).is_some() && l1.get(fp(&key(0))).is_none());
    }
}
