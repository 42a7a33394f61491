//! Reads: the synchronous L1 hit (the one generic part of the engine, so it stays a lookup,
//! a downcast and a clone), remote reads and decoding, and the one rule that fills L1.

use std::time::Duration;

use tracing::Instrument;

use super::{unix_ms, Engine};
use crate::codec::Decoded;
use crate::error::{CacheError, Result};
use crate::key::Fingerprint;
use crate::l1::{self, Entry};
use crate::latency::{sample_l1, Level, Op};
use crate::tags::EntryTags;
use crate::values::{AnyValue, CacheValue, ValueOps};

/// A value on its way into L1 ([`Engine::write_l1`]).
pub(crate) struct ToL1<'a> {
    pub key: &'a str,
    pub fp: Fingerprint,
    pub value: AnyValue,
    pub ops: &'static ValueOps,
    /// Time left to the entry's logical expiry.
    pub ttl: Duration,
    /// Its weight: the encoded size.
    pub size: usize,
    /// Fail-safe: how long it is kept past `ttl` to be served when its loader fails.
    pub stale_for: Duration,
    /// Whether this call may use L1 at all (`l1 = false` in the macro).
    pub use_l1: bool,
    /// Where the read or load that produced it started ([`crate::guard`]); `None` for a
    /// direct write, which nothing can overtake.
    pub since: Option<u64>,
    /// Its tags, stamped before it was loaded or read ([`crate::tags`]).
    pub tags: Option<EntryTags>,
    /// Its logical expiry, unix ms (0: none), as its envelope says (a disk copy written when
    /// L1 evicts it is then the same bytes as Redis's).
    pub expires_at_ms: u64,
    /// The loading function's bound on its L1 entries (`max_entries`).
    pub limit: Option<&'static crate::perf::EntryLimit>,
    /// Its sliding expiration (`ttl_idle`).
    pub idle: Option<Duration>,
}

/// A live remote entry whose tags were checked: the value and its L1 stamps.
pub(crate) struct Live {
    pub d: Decoded<AnyValue>,
    pub stamps: Option<EntryTags>,
    /// Read from the disk tier, not from Redis.
    pub from_disk: bool,
}

impl Engine {
    /// An L1 hit and, one time in [`crate::latency::L1_SAMPLE`], how long it took.
    // Forced inline: called, it returned its `(T, Option<Duration>)` through memory and the
    // caller's reload of it stalled; timed, inlining made a hit 8–10 % faster (design notes,
    // issue 24's fifth session), though callgrind counted the same instructions.
    #[inline(always)]
    pub(crate) fn l1_get_timed<T: CacheValue>(&self, fp: Fingerprint) -> Option<(T, Option<Duration>)> {
        let l1 = self.l1.as_ref().filter(|_| self.enabled())?;
        let timer = sample_l1().then(std::time::Instant::now);
        let v = l1.read(fp, |e| e.value.downcast_ref::<T>().cloned())?;
        let took = timer.map(|t| t.elapsed());
        if let Some(d) = took {
            self.latency.record(Op::Get, Level::L1, d);
        }
        self.counters.l1_hits.incr();
        Some((v, took))
    }

    /// An L1 hit of a function with sliding expiration (`ttl_idle`): a read past half of the
    /// idle window moves the entry's deadline (so the entry is replaced at most twice per
    /// window, never on every read). Not timed: the clock is read anyway.
    #[inline]
    pub(crate) fn l1_get_sliding<T: CacheValue>(&self, fp: Fingerprint, idle: Duration) -> Option<T> {
        let l1 = self.l1.as_ref().filter(|_| self.enabled())?;
        let now = self.now();
        let (v, renew) = l1.read(fp, |e| {
            let v = e.value.downcast_ref::<T>().cloned()?;
            Some((v, e.stale_until > e.expires_at && e.expires_at < now + idle / 2))
        })?;
        if renew {
            self.renew::<T>(l1, fp, idle);
        }
        self.counters.l1_hits.incr();
        Some(v)
    }

    /// Moves a sliding entry's deadline: a new entry in its place, unless an invalidation of
    /// its key came meanwhile (the order is the one [`Self::write_l1`] keeps).
    #[cold]
    fn renew<T: CacheValue>(&self, l1: &crate::l1::L1, fp: Fingerprint, idle: Duration) {
        let seq = self.log.start();
        let Some(old) = l1.get(fp) else { return };
        let Some(v) = old.value.downcast_ref::<T>().cloned() else {
            return;
        };
        let entry = l1::renewed(&old, v, self.now() + idle);
        l1.insert(fp, entry.clone());
        if self.log.overtaken(seq, fp, &old.key) {
            l1.remove_same(fp, &entry);
        }
    }

    /// The one rule by which a value enters L1, whoever produced it (a store, a remote read, a
    /// batch): it lives `min(ttl, l1_ttl)` when a remote tier is below (the cap bounds how long
    /// this instance may serve a copy another one replaced; alone, there is nothing to go stale
    /// against, so the full TTL), weighs its encoded size, and is left out when the call does not
    /// use L1. When an invalidation of its key came since `since`, it is taken back out: a remote
    /// reply or a load that was on its way while the key was deleted does not linger.
    ///
    /// Returns the entry in every case: single-flight waiters share it.
    pub(crate) fn write_l1(&self, w: ToL1<'_>) -> Entry {
        let now = self.now();
        let life = match self.remote {
            Some(_) => w.ttl.min(self.config.l1_ttl),
            None => w.ttl,
        };
        let mut entry = (w.ops.entry)(w.key, w.value, now + life, w.size as u64);
        if w.tags.is_some() {
            l1::set_tags(&mut entry, w.tags);
        } else if w.use_l1 && self.l1_spills {
            self.mark_for_spill(&mut entry, w.key, w.ops, w.expires_at_ms);
        }
        if !w.stale_for.is_zero() {
            l1::keep_stale_until(&mut entry, now + w.ttl + w.stale_for);
        }
        if let Some(idle) = w.idle {
            l1::slide(&mut entry, idle, now);
        }
        if !w.use_l1 {
            return entry;
        }
        if let Some(l1) = &self.l1 {
            l1.insert(w.fp, entry.clone());
            // An invalidation records itself before it removes from L1: one that came between
            // the caller's check and this insert is seen now.
            if w.since.is_some_and(|seq| self.log.overtaken(seq, w.fp, w.key)) {
                l1.remove_same(w.fp, &entry);
                self.discarded(w.key);
            } else if let Some(old) = w
                .limit
                .and_then(|limit| limit.stored(self as *const Engine as usize, w.fp))
            {
                l1.remove(old);
                self.counters.max_entries_evictions.incr();
            }
        }
        entry
    }

    /// Time left to an expiry in unix ms (0: none, so as long as L1 may keep anything).
    pub(crate) fn time_left(expires_at_ms: u64) -> Duration {
        match expires_at_ms {
            0 => Duration::MAX,
            exp => Duration::from_millis(exp.saturating_sub(unix_ms())),
        }
    }

    /// Reads `key` from the remote tier and decodes it; undecodable bytes are a logged miss, and
    /// so is an entry one of whose tags was invalidated since it was loaded.
    /// `for_l1`: whether the value may go into L1 (then it gets its tags' stamps).
    pub(crate) async fn remote_read(
        &self,
        key: &str,
        ops: &'static ValueOps,
        for_l1: bool,
    ) -> Result<Option<Live>> {
        Ok(self
            .remote_read_raw(key, ops, for_l1)
            .await?
            .map(|(live, _)| live))
    }

    /// [`remote_read`](Self::remote_read), and the bytes it decoded.
    pub(crate) async fn remote_read_raw(
        &self,
        key: &str,
        ops: &'static ValueOps,
        for_l1: bool,
    ) -> Result<Option<(Live, Vec<u8>)>> {
        let Some(remote) = &self.remote else {
            return Ok(None);
        };
        let Some(bytes) = self.timed(Op::Get, remote.get(key)).await? else {
            return Ok(None);
        };
        match self.decode(key, &bytes, ops) {
            Some(d) => Ok(self.live(key, d, for_l1).await?.map(|live| (live, bytes))),
            None => Ok(None),
        }
    }

    /// A decoded entry, if none of its tags was invalidated since it was loaded. A tag whose
    /// state Redis cannot give makes it a miss: the error is returned.
    pub(crate) async fn live(&self, key: &str, d: Decoded<AnyValue>, for_l1: bool) -> Result<Option<Live>> {
        if d.tags.is_empty() {
            return Ok(Some(Live {
                d,
                stamps: None,
                from_disk: false,
            }));
        }
        match self.tags.check(self.remote.as_deref(), &d.tags, for_l1).await? {
            Some(stamps) => Ok(Some(Live {
                d,
                stamps,
                from_disk: false,
            })),
            None => {
                self.counters.tag_stale.incr();
                tracing::trace!(
                    key,
                    "remote entry read as a miss: one of its tags was invalidated"
                );
                Ok(None)
            }
        }
    }

    /// Decodes a live entry: one past its logical expiry (kept for fail-safe) reads as absent.
    pub(crate) fn decode(
        &self,
        key: &str,
        bytes: &[u8],
        ops: &'static ValueOps,
    ) -> Option<Decoded<AnyValue>> {
        self.decode_any(key, bytes, ops)
            .filter(|d| d.expires_at_ms == 0 || d.expires_at_ms > unix_ms())
    }

    /// Decodes an entry whatever its logical expiry (fail-safe reads stale ones).
    pub(crate) fn decode_any(
        &self,
        key: &str,
        bytes: &[u8],
        ops: &'static ValueOps,
    ) -> Option<Decoded<AnyValue>> {
        let plain = match self.security.open(key, bytes) {
            Ok(plain) => plain,
            Err(e) => {
                // A forged, moved or unreadable value: a miss, which the next store overwrites.
                self.record_error("decrypt", key, &CacheError::Codec(e.into()));
                return None;
            }
        };
        match (ops.decode)(&self.codec, &plain) {
            Ok(d) => Some(d),
            Err(e) => {
                self.record_error("decode", key, &CacheError::Codec(e));
                None
            }
        }
    }

    /// A remote hit: counted, and into L1 under the fill rule and the reading function's
    /// options (`l1`, `max_entries`, `ttl_idle`; a direct read passes the defaults).
    pub(crate) fn remote_hit(
        &self,
        key: &str,
        fp: Fingerprint,
        found: Live,
        ops: &'static ValueOps,
        since: u64,
        opts: &crate::loader::LoadOptions,
    ) -> Entry {
        let (use_l1, limit, idle) = (opts.use_l1, opts.max_entries, opts.ttl_idle);
        let Live { d, stamps, from_disk } = found;
        let use_l1 = if from_disk {
            self.counters.l3_hits.incr();
            // One huge value would push many small ones out of L1.
            use_l1
                && self
                    .disk
                    .as_ref()
                    .is_some_and(|disk| d.raw_len as u64 <= disk.promote_max())
        } else {
            self.counters.l2_hits.incr();
            use_l1
        };
        self.access.record(fp, key, true);
        self.write_l1(ToL1 {
            key,
            fp,
            value: d.value,
            ops,
            ttl: Self::time_left(d.expires_at_ms),
            size: d.raw_len,
            stale_for: Duration::ZERO,
            use_l1,
            since: Some(since),
            tags: stamps,
            expires_at_ms: d.expires_at_ms,
            limit,
            idle,
        })
    }

    /// A direct read after its L1 miss: the remote copy (into L1), counted as a hit or a miss.
    pub(crate) async fn get_after_miss(
        &self,
        key: &str,
        fp: Fingerprint,
        ops: &'static ValueOps,
    ) -> Result<Option<Entry>> {
        if !self.enabled() {
            return Ok(None);
        }
        let span = crate::trace::get_span(key, self.remote.is_some());
        let t0 = std::time::Instant::now();
        let seq = self.log.start();
        let found = self.tiered_read(key, ops, true).instrument(span.clone()).await;
        if let Ok(Some(found)) = found {
            crate::trace::answered(&span, crate::trace::tier(found.from_disk), "hit", t0);
            return Ok(Some(self.remote_hit(
                key,
                fp,
                found,
                ops,
                seq,
                &Default::default(),
            )));
        }
        self.access.record(fp, key, false);
        self.count_miss(key, fp);
        let outcome = if found.is_ok() { "miss" } else { "error" };
        crate::trace::answered(&span, "none", outcome, t0);
        found
            .map(|_| None)
            .inspect_err(|e| self.record_error("get", key, e))
    }

    /// Reads many keys remotely (L1 was tried by the caller), filling L1; `None` per miss. A
    /// remote failure is logged, counted and returned.
    pub(crate) async fn remote_read_many(
        &self,
        keys: &[&str],
        ops: &'static ValueOps,
    ) -> Result<Vec<Option<Entry>>> {
        if !self.enabled() {
            return Ok(vec![None; keys.len()]);
        }
        let Some(remote) = &self.remote else {
            keys.iter().for_each(|k| self.count_miss(k, Fingerprint::of(k)));
            return Ok(vec![None; keys.len()]);
        };
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let seq = self.log.start();
        let values = match self.timed(Op::Mget, remote.mget(keys)).await {
            Ok(v) => v,
            Err(e) => {
                self.record_error("mget", keys[0], &e);
                keys.iter().for_each(|k| self.count_miss(k, Fingerprint::of(k)));
                return Err(e);
            }
        };
        let mut out = Vec::with_capacity(keys.len());
        for (key, bytes) in keys.iter().zip(values) {
            let found = match bytes.and_then(|b| self.decode(key, &b, ops)) {
                Some(d) => self.live(key, d, true).await.unwrap_or_else(|e| {
                    self.record_error("tags", key, &e);
                    None
                }),
                None => None,
            };
            out.push(match found {
                Some(d) => Some(self.remote_hit(key, Fingerprint::of(key), d, ops, seq, &Default::default())),
                None => {
                    self.count_miss(key, Fingerprint::of(key));
                    None
                }
            });
        }
        Ok(out)
    }

    /// Whether `key` is cached (L1, else the remote tier).
    pub(crate) async fn exists(&self, key: &str) -> Result<bool> {
        if !self.enabled() {
            return Ok(false);
        }
        if self
            .l1
            .as_ref()
            .is_some_and(|l1| l1.get(Fingerprint::of(key)).is_some())
        {
            return Ok(true);
        }
        match &self.remote {
            Some(r) => r
                .exists(key)
                .await
                .inspect_err(|e| self.record_error("exists", key, e)),
            None => Ok(false),
        }
    }

    /// Time until `key` expires: remote `PTTL` with a remote tier, else the L1 deadline.
    pub(crate) async fn ttl_remaining(&self, key: &str) -> Result<Option<Duration>> {
        if !self.enabled() {
            return Ok(None);
        }
        match &self.remote {
            Some(r) => r.pttl(key).await,
            None => Ok(self
                .l1
                .as_ref()
                .and_then(|l1| l1.get(Fingerprint::of(key)))
                .map(|e| e.expires_at.saturating_duration_since(self.now()))),
        }
    }

    /// A value kept past its TTL for fail-safe: L1's stale copy, else the remote one, else the
    /// disk tier's (kept up to `stale_for` past its expiry).
    pub(crate) async fn stale_copy(
        &self,
        key: &str,
        fp: Fingerprint,
        ops: &'static ValueOps,
        stale_for: Duration,
    ) -> Option<Entry> {
        if !self.enabled() {
            return None;
        }
        if let Some(e) = self.l1.as_ref().and_then(|l1| l1.get_stale(fp)) {
            if crate::values::holds(&e, ops) {
                return Some(e);
            }
        }
        if let Some(value) = self.remote_stale(key, ops).await {
            return Some((ops.entry)(key, value, self.now(), 0));
        }
        let value = self.l3_stale(key, ops, stale_for).await?;
        Some((ops.entry)(key, value, self.now(), 0))
    }

    /// The remote copy of `key` whatever its logical expiry, if none of its tags was (or may
    /// have been) invalidated.
    async fn remote_stale(&self, key: &str, ops: &'static ValueOps) -> Option<AnyValue> {
        let remote = self.remote.as_ref()?;
        let bytes = remote.get(key).await.ok()??;
        let d = self.decode_any(key, &bytes, ops)?;
        Some(self.live(key, d, false).await.ok()??.d.value)
    }
}
