//! The disk tier on foyer: a disk-only `HybridCache<String, Vec<u8>>` (its memory part admits
//! nothing: L1 is ours) of [`record`](super::record)s, and what this process knows of each key.
//!
//! Trust. foyer finds a key's latest record, but that is not always the value to serve: a write
//! it dropped (a full buffer, a full disk) leaves the one before readable, a removed entry still
//! in its write queue stays readable for a moment, and after a restart every record predates
//! whatever happened to Redis meanwhile. So each key this process wrote, read back or removed
//! has a [`Known`] state, and a record is *trusted* only when its checksum is the one last
//! written. Anything else is either refused (an older version, a deleted key) or *unverified*
//! (a record this process has no state for): the engine then checks it against Redis's copy by
//! its content id (20 bytes read instead of the value), or, without Redis, against the rules
//! file ([`super::rules`]). Invalidations that cannot be applied key by key (a pattern, a lost
//! subscription) make every record unverified again.
//!
//! Failure. foyer never reports a failed write: the health check writes and reads back a probe,
//! and watches the directory. Two failed probes, a replaced directory, or repeated read errors
//! disable the tier for the rest of the process; calls go on through L1, Redis and the loader.
//!
//! Opening and closing are in `open`, the writer task in `writer`, the health check in `health`.

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use foyer::{HybridCache, HybridCacheEntry};
use parking_lot::Mutex;

use super::record::{self, HEADER};
use super::rules::{Rules, MAX_RULES};
use super::{DiskCounters, DiskStats};
use crate::config::{DiskConfig, DiskPolicies, Policy};
use crate::error::Result;
use crate::pattern::Pattern;

mod health;
mod open;
mod writer;

use health::health;
use open::{block_size, dir_ino, open_foyer, META_FILE};
use writer::{barrier, Op, Writer, QUEUE_MAX_BYTES};

type Foyer = HybridCache<String, Vec<u8>>;

/// Read errors in a row that disable the tier.
const ERRORS_TO_DISABLE: u32 = 3;
/// How long a removed key is remembered as removed (foyer's write queue is long gone by then).
const DELETED_KEPT: Duration = Duration::from_secs(60);

/// What this process knows of a key's record.
#[derive(Debug, Clone, Copy)]
enum Known {
    /// Its latest record has this checksum (written or checked at `at`); `size`: the
    /// envelope's bytes.
    Written { id: u64, size: u64, at: Instant },
    /// Removed at this instant: no record of it is served.
    Deleted(Instant),
}

/// The open tier.
struct Open {
    cache: Foyer,
    ops: tokio::sync::mpsc::UnboundedSender<Op>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
    rt: Mutex<Option<tokio::runtime::Runtime>>,
    rules: Option<Arc<Rules>>,
    dir_ino: u64,
    _lock: File,
}

/// The disk tier (see the module doc).
pub(crate) struct Disk {
    open: Option<Open>,
    enabled: AtomicBool,
    reason: Mutex<Option<String>>,
    policies: DiskPolicies,
    promote_max: u64,
    dir: PathBuf,
    capacity: u64,
    max_record: usize,
    known: Mutex<HashMap<u64, Known>>,
    /// When every record was last made unverified (a pattern, a clear, a lost subscription).
    untrusted_at: Mutex<Option<Instant>>,
    /// Emptying in the background: the rules cannot be trusted until it is done.
    clearing: Arc<AtomicBool>,
    /// How long a removed key must be remembered: the longest life of an L1 entry that may
    /// still be written to disk when evicted (ms; at least [`DELETED_KEPT`]).
    deleted_kept_ms: std::sync::atomic::AtomicU64,
    read_errors: AtomicU32,
    probe_failures: AtomicU32,
    queued: Arc<AtomicUsize>,
    pub(crate) counters: Arc<DiskCounters>,
}

/// A record found for a key.
pub(crate) struct Found {
    entry: HybridCacheEntry<String, Vec<u8>>,
    written_ms: u64,
    id: u64,
    head: Option<[u8; crate::codec::ID_HEADER]>,
    /// When this process last wrote or checked it; `None`: it did not.
    trusted_at: Option<Instant>,
}

impl Found {
    /// The envelope, as Redis holds it.
    pub(crate) fn envelope(&self) -> &[u8] {
        self.entry.value().get(HEADER..).unwrap_or_default()
    }

    /// When it was written (unix ms).
    pub(crate) fn written_ms(&self) -> u64 {
        self.written_ms
    }

    /// When this process last wrote or checked this very record (`None`: it did not).
    pub(crate) fn trusted_at(&self) -> Option<Instant> {
        self.trusted_at
    }

    /// The first bytes of the envelope as Redis holds it, to compare with Redis's copy.
    pub(crate) fn redis_head(&self) -> Option<&[u8]> {
        self.head.as_ref().map(|h| &h[..])
    }
}

fn key_hash(key: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(key.as_bytes())
}

impl Disk {
    /// Opens the tier in `c.dir`. Never fails: a tier that cannot open is returned disabled, its
    /// reason logged, counted and in its stats. `local`: there is no Redis to check records
    /// against (the rules file is kept then).
    pub(crate) fn open(c: &DiskConfig, local: bool, max_value: usize) -> Result<Arc<Disk>> {
        let policies = DiskPolicies::compile(c)?;
        let dir = c.dir.clone().unwrap_or_default();
        let capacity = c.capacity.as_u64();
        let bs = block_size(capacity);
        let mut disk = Disk {
            open: None,
            enabled: AtomicBool::new(false),
            reason: Mutex::new(None),
            policies,
            promote_max: c.promote_max.as_u64(),
            dir: dir.clone(),
            capacity,
            max_record: bs / 2,
            known: Mutex::default(),
            untrusted_at: Mutex::new(None),
            clearing: Arc::default(),
            deleted_kept_ms: std::sync::atomic::AtomicU64::new(DELETED_KEPT.as_millis() as u64),
            read_errors: AtomicU32::new(0),
            probe_failures: AtomicU32::new(0),
            queued: Arc::default(),
            counters: Arc::default(),
        };
        match open_foyer(&dir, capacity, bs, local) {
            Ok((open, rx)) => {
                let writer = Writer {
                    cache: open.cache.clone(),
                    counters: Arc::clone(&disk.counters),
                    queued: Arc::clone(&disk.queued),
                    // Inflated, a record still fits its block.
                    max_body: max_value.min(disk.max_record),
                    pace: disk.max_record,
                };
                if let Some(rt) = open.rt.lock().as_ref() {
                    *open.writer.lock() = Some(rt.spawn(writer.run(rx)));
                }
                disk.open = Some(open);
                disk.enabled.store(true, Ordering::Release);
                tracing::info!(dir = %dir.display(), capacity, block_size = bs, "disk tier (L3) open");
            }
            Err(e) => {
                disk.counters.errors.incr();
                tracing::error!(dir = %dir.display(), error = %e, "disk tier (L3) disabled: it cannot open");
                *disk.reason.lock() = Some(format!("cannot open: {e}"));
            }
        }
        let disk = Arc::new(disk);
        if let Some(open) = &disk.open {
            if let Some(rt) = open.rt.lock().as_ref() {
                rt.spawn(health(Arc::downgrade(&disk), c.health_interval));
            }
        }
        Ok(disk)
    }

    /// The tier's counters, shared (L1's eviction hook counts what it drops).
    pub(crate) fn counters(&self) -> Arc<DiskCounters> {
        Arc::clone(&self.counters)
    }

    /// Runs `task` on the tier's runtime (the work that feeds it: see the engine's spill task).
    pub(crate) fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        if let Some(rt) = self
            .open
            .as_ref()
            .and_then(|o| o.rt.lock().as_ref().map(|rt| rt.handle().clone()))
        {
            rt.spawn(task);
        }
    }

    /// The policy of `key`, when the tier takes it.
    pub(crate) fn policy(&self, key: &str) -> Option<Policy> {
        self.policies.of(key)
    }

    /// Under `Auto`, the smallest value read from disk before Redis.
    pub(crate) fn disk_first_min_size(&self) -> u64 {
        self.policies.disk_first_min_size
    }

    /// The largest value an L3 hit puts into L1.
    pub(crate) fn promote_max(&self) -> u64 {
        self.promote_max
    }

    /// Whether the tier is in use.
    pub(crate) fn is_enabled(&self) -> bool {
        self.enabled.load(Ordering::Acquire)
    }

    fn live(&self) -> Option<&Open> {
        self.open.as_ref().filter(|_| self.is_enabled())
    }

    /// Stops using the tier for the rest of the process. Without Redis its invalidations from
    /// now on are not recorded, so its marker goes: the next open starts empty.
    pub(crate) fn disable(&self, why: &str) {
        if self.enabled.swap(false, Ordering::AcqRel) {
            self.counters.errors.incr();
            tracing::error!(dir = %self.dir.display(), reason = why, "disk tier (L3) disabled; calls go on without it");
            *self.reason.lock() = Some(why.to_owned());
            if self.is_local() {
                let _ = std::fs::remove_file(self.dir.join(META_FILE));
            }
        }
    }

    /// The size of the value last written for `key` here, when known.
    pub(crate) fn known_size(&self, key: &str) -> Option<u64> {
        match self.known.lock().get(&key_hash(key)) {
            Some(Known::Written { size, .. }) => Some(*size),
            _ => None,
        }
    }

    /// Whether the record last written for `key` holds exactly `envelope`.
    pub(crate) fn holds(&self, key: &str, envelope: &[u8]) -> bool {
        matches!(self.known.lock().get(&key_hash(key)),
            Some(Known::Written { id, .. }) if *id == record::id_of(envelope))
    }

    /// `key`'s record, if there is one worth looking at (see the module doc on trust). Counts
    /// misses, evictions, corrupt records and errors; hits are counted by whoever serves it.
    pub(crate) async fn get(&self, key: &str) -> Option<Found> {
        let open = self.live()?;
        let t = Instant::now();
        let h = key_hash(key);
        let mut got = open.cache.get(key).await;
        if matches!(got, Ok(None)) && matches!(self.known.lock().get(&h), Some(Known::Written { .. })) {
            // Its write may still be queued (an entry L1 evicted a moment ago): once the writer
            // has handed it to foyer, foyer finds it.
            barrier(open).await;
            got = open.cache.get(key).await;
        }
        self.counters.read_latency.lock().record(t.elapsed());
        let entry = match got {
            Ok(Some(e)) => {
                self.read_errors.store(0, Ordering::Relaxed);
                e
            }
            Ok(None) => {
                self.counters.misses.incr();
                let mut known = self.known.lock();
                if let Some(Known::Written { .. }) = known.get(&h) {
                    // Written here and never removed: foyer let it go (a reclaimed block or a
                    // dropped write).
                    known.remove(&h);
                    self.counters.evictions.incr();
                }
                return None;
            }
            Err(e) => {
                self.counters.misses.incr();
                self.counters.errors.incr();
                tracing::warn!(key, error = %e, "disk tier read failed; read as a miss");
                if self.read_errors.fetch_add(1, Ordering::Relaxed) + 1 >= ERRORS_TO_DISABLE {
                    self.disable(&format!("{ERRORS_TO_DISABLE} reads in a row failed: {e}"));
                }
                return None;
            }
        };
        self.counters.read_bytes.add(entry.value().len() as u64);
        let Some(p) = record::parse(entry.value()) else {
            self.counters.misses.incr();
            self.counters.corrupt.incr();
            tracing::warn!(key, "disk tier record is corrupt; removed and read as a miss");
            self.remove(key);
            return None;
        };
        let (written_ms, id, head) = (p.written_ms, p.id, p.redis_head());
        let trusted_at = match self.known.lock().get(&h) {
            Some(Known::Written { id: last, at, .. }) if *last == id => Some(*at),
            // An older version (the newer write was dropped or is on its way), or a removed key.
            Some(_) => {
                self.counters.misses.incr();
                return None;
            }
            None => None,
        };
        Some(Found {
            entry,
            written_ms,
            id,
            head,
            trusted_at,
        })
    }

    /// A record the engine served.
    pub(crate) fn hit(&self) {
        self.counters.hits.incr();
    }

    /// A record the engine could not use now (it cannot be checked, or it is past its expiry):
    /// a miss, the record kept.
    pub(crate) fn untried(&self) {
        self.counters.misses.incr();
    }

    /// A record the engine checked and found stale: removed, counted as a miss.
    pub(crate) fn refuse(&self, key: &str) {
        self.counters.stale.incr();
        self.counters.misses.incr();
        self.remove(key);
    }

    /// A record checked (against Redis or the rules) from `started` on and found current:
    /// trusted from now on, unless its key was written or removed, or every record made
    /// unverified, since the check started (it may have seen the state before).
    pub(crate) fn confirm(&self, key: &str, found: &Found, started: Instant) {
        self.counters.verified.incr();
        let size = found.envelope().len() as u64;
        let mut known = self.known.lock();
        if self.changed_since(&known, key_hash(key), started) {
            return;
        }
        known.insert(
            key_hash(key),
            Known::Written {
                id: found.id,
                size,
                at: Instant::now(),
            },
        );
    }

    /// Whether `h`'s state, or every record's, changed at or after `since`.
    fn changed_since(&self, known: &HashMap<u64, Known>, h: u64, since: Instant) -> bool {
        let key_at = match known.get(&h) {
            Some(Known::Written { at, .. } | Known::Deleted(at)) => Some(*at),
            None => None,
        };
        key_at
            .max(*self.untrusted_at.lock())
            .is_some_and(|at| at >= since)
    }

    /// Whether the rules say a record of `key` written at `written_ms` with `tags` is stale;
    /// always false with Redis (records are checked against it instead).
    pub(crate) fn ruled_out(&self, key: &str, tags: &[&str], written_ms: u64) -> bool {
        // Being emptied: the rules may already be gone while the records are not.
        self.clearing.load(Ordering::Acquire)
            || self
                .live()
                .and_then(|o| o.rules.as_ref())
                .is_some_and(|r| r.stale(key, tags, written_ms))
    }

    /// Whether there is no Redis to check records against (the rules decide).
    pub(crate) fn is_local(&self) -> bool {
        self.open.as_ref().is_some_and(|o| o.rules.is_some())
    }

    /// Writes `envelope` as `key`'s record, unless the key was written or removed here (or
    /// every record made unverified) at or after `since`: that is newer than this value, which
    /// was read, loaded or made before. Queued for the writer task (the caller pays a hash and
    /// a send; inflating, checksumming and foyer's enqueue happen there). Too large for a block,
    /// or the queue full: not written, and any older record of the key removed.
    pub(crate) fn put_unless_changed(&self, key: &str, envelope: Vec<u8>, since: Instant) {
        let Some(open) = self.live() else { return };
        if envelope.len() + HEADER + key.len() + 64 > self.max_record {
            self.counters.too_large.incr();
            self.remove(key);
            return;
        }
        if self.queued.load(Ordering::Relaxed) + envelope.len() > QUEUE_MAX_BYTES {
            self.counters.dropped.incr();
            self.remove(key);
            return;
        }
        let id = record::id_of(&envelope);
        let mut known = self.known.lock();
        if self.changed_since(&known, key_hash(key), since) {
            return;
        }
        known.insert(
            key_hash(key),
            Known::Written {
                id,
                size: envelope.len() as u64,
                at: Instant::now(),
            },
        );
        self.queued.fetch_add(envelope.len(), Ordering::Relaxed);
        // Under the lock: the writer gets a key's operations in the order its state changed.
        let _ = open.ops.send(Op::Put {
            key: key.to_owned(),
            envelope,
            id,
            at_ms: crate::engine::unix_ms(),
        });
        drop(known);
    }

    /// Removes `key`'s record; no record of it is served until it is written again.
    pub(crate) fn remove(&self, key: &str) {
        let Some(open) = self.open.as_ref() else { return };
        let mut known = self.known.lock();
        known.insert(key_hash(key), Known::Deleted(Instant::now()));
        let _ = open.ops.send(Op::Remove(key.to_owned()));
        drop(known);
    }

    /// An L1 entry that may be written to disk when evicted lives up to `ttl`: removals are
    /// remembered that long (`None`: no expiry, so for good).
    pub(crate) fn keep_removals_for(&self, ttl: Option<Duration>) {
        let ms = ttl.map_or(u64::MAX, |t| t.as_millis() as u64);
        self.deleted_kept_ms.fetch_max(ms, Ordering::Relaxed);
    }

    /// After an invalidation that cannot be applied key by key: every record is checked again
    /// before it is served (removed keys stay removed).
    pub(crate) fn untrust_all(&self) {
        let mut known = self.known.lock();
        *self.untrusted_at.lock() = Some(Instant::now());
        known.retain(|_, k| matches!(k, Known::Deleted(_)));
    }

    /// Forgets every key's state (the tier is being emptied).
    fn forget_known(&self) {
        let mut known = self.known.lock();
        *self.untrusted_at.lock() = Some(Instant::now());
        known.clear();
    }

    /// A pattern invalidation: recorded in the rules without Redis, and no record trusted.
    pub(crate) fn invalidate_pattern(&self, p: &Pattern) {
        self.untrust_all();
        if let Some(rules) = self.live().and_then(|o| o.rules.as_ref()) {
            let added = rules.add_pattern(p, crate::engine::unix_ms());
            self.after_rule(added);
        }
    }

    /// Tag invalidations: recorded in the rules without Redis (with Redis the envelopes' tag
    /// tokens are checked as for Redis's own copies).
    pub(crate) fn invalidate_tags(&self, tags: &[&str]) {
        if let Some(rules) = self.live().and_then(|o| o.rules.as_ref()) {
            let now = crate::engine::unix_ms();
            for t in tags {
                let added = rules.add_tag(t, now);
                if !self.after_rule(added) {
                    return;
                }
            }
        }
    }

    /// An invalidation that could not be recorded must not be forgotten at the next restart:
    /// the tier is emptied (and disabled when even that fails). Too many rules: emptied too.
    fn after_rule(&self, added: std::result::Result<usize, super::rules::RulesError>) -> bool {
        match added {
            Ok(n) if n <= MAX_RULES => true,
            Ok(_) => {
                self.spawn_clear();
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "disk tier cannot record an invalidation; emptying it");
                self.spawn_clear();
                self.disable(&format!("cannot record an invalidation: {e}"));
                false
            }
        }
    }

    /// Empties the tier in the background (after what is queued); the rules are reset once
    /// the records are gone, and until then every record is ruled out (for good, when either
    /// fails).
    fn spawn_clear(&self) {
        let Some(open) = self.open.as_ref() else { return };
        self.forget_known();
        self.clearing.store(true, Ordering::Release);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = open.ops.send(Op::Barrier(tx));
        let (cache, rules, clearing) = (open.cache.clone(), open.rules.clone(), Arc::clone(&self.clearing));
        let Some(rt) = open.rt.lock().as_ref().map(|rt| rt.handle().clone()) else {
            return;
        };
        rt.spawn(async move {
            let _ = rx.await;
            let emptied = cache.clear().await.map_err(|e| e.to_string());
            let reset = emptied.and_then(|()| rules.map_or(Ok(()), |r| r.clear().map_err(|e| e.to_string())));
            match reset {
                Ok(()) => clearing.store(false, Ordering::Release),
                Err(e) => {
                    tracing::error!(error = %e, "disk tier could not be emptied; its records stay ruled out")
                }
            }
        });
    }

    /// Empties the tier, durably (before the rules, which stop mattering only then).
    pub(crate) async fn clear(&self) {
        let Some(open) = self.live() else { return };
        self.forget_known();
        barrier(open).await;
        if let Err(e) = open.cache.clear().await {
            self.disable(&format!("cannot be emptied: {e}"));
            return;
        }
        if let Some(Err(e)) = open.rules.as_deref().map(Rules::clear) {
            self.disable(&format!("cannot reset its rules: {e}"));
        }
    }

    /// Waits until what was written so far is on disk (tests, benchmarks, a planned restart).
    pub(crate) async fn flush(&self) {
        if let Some(open) = self.live() {
            barrier(open).await;
            open.cache.storage().wait().await;
        }
    }

    /// Figures for the stats.
    pub(crate) fn stats(&self) -> DiskStats {
        let known = self.known.lock();
        let (entries, bytes) = known.values().fold((0u64, 0u64), |(n, b), k| match k {
            Known::Written { size, .. } => (n + 1, b + size),
            Known::Deleted(_) => (n, b),
        });
        drop(known);
        let device = self.open.as_ref().map(|o| o.cache.statistics());
        DiskStats {
            enabled: self.is_enabled(),
            disabled_reason: self.reason.lock().clone(),
            dir: self.dir.display().to_string(),
            capacity_bytes: self.capacity,
            device_read_bytes: device.map_or(0, |d| d.disk_read_bytes() as u64),
            device_write_bytes: device.map_or(0, |d| d.disk_write_bytes() as u64),
            ..self.counters.snapshot(entries, bytes)
        }
    }

    /// The tier's foyer handle, while it is in use (the health check probes through it
    /// without holding the tier).
    fn foyer(&self) -> Option<Foyer> {
        self.live().map(|o| o.cache.clone())
    }

    fn dir_replaced(&self) -> bool {
        let Some(open) = self.open.as_ref() else {
            return false;
        };
        dir_ino(&self.dir) != Some(open.dir_ino)
    }
}
