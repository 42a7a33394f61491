//! Writes: encoding and its limits, direct writes, and a load's guarded store
//! ([`crate::guard`]).

use std::any::Any;
use std::time::Duration;

use tracing::Instrument;

use super::read::ToL1;
use super::{unix_ms, Engine};
use crate::bus::Message;
use crate::codec::{CodecError, PLAIN_HEADER};
use crate::error::{CacheError, Result};
use crate::guard::{Invalidated, LoadStart, Seen};
use crate::key::Fingerprint;
use crate::l1::Entry;
use crate::latency::Op;
use crate::loader::LoadOptions;
use crate::tags::{self, TagStamp};
use crate::tier::{GuardedItem, Item, Notice, RemoteTier};
use crate::trace;
use crate::values::{AnyValue, ValueOps};

/// Key prefixes remembered for the once-per-prefix warning about oversize values.
const TOO_LARGE_PREFIXES_KEPT: usize = 1024;

/// One value of a batch load on its way to the tiers.
struct Pending<'a> {
    key: &'a str,
    fp: Fingerprint,
    value: AnyValue,
    start: &'a LoadStart,
    ttl: Duration,
    /// The learned-TTL settings that gave `ttl`, if any.
    auto: Option<crate::config::AutoTtl>,
    /// The encoded bytes (with a remote tier).
    bytes: Option<Vec<u8>>,
    /// Its weight in L1.
    size: usize,
    /// Its logical expiry, unix ms.
    exp: u64,
}

impl Engine {
    /// A value made ready for the tiers there are: its remote bytes (with a remote tier) and its
    /// weight in L1, or the (logged, counted) error that keeps it out of every tier.
    fn encode_for_tiers(
        &self,
        key: &str,
        value: &(dyn Any + Send + Sync),
        ops: &'static ValueOps,
        expires_at_ms: u64,
        tags: &[(&str, u64)],
    ) -> Result<(Option<Vec<u8>>, usize)> {
        let to_disk = self.l3_takes(key);
        if self.remote.is_none() && !to_disk {
            let payload = (ops.encoded_len)(&self.codec, value).saturating_sub(PLAIN_HEADER);
            let max = self.config.max_value_size;
            if payload > max {
                return Err(self.too_large(key, payload, max));
            }
            return Ok((None, payload + PLAIN_HEADER));
        }
        match (ops.encode)(&self.codec, value, expires_at_ms, tags) {
            Ok(enc) => {
                let c = &self.counters;
                let raw = enc.raw_len;
                c.raw_bytes.add(raw as u64);
                c.stored_bytes.add(enc.bytes.len() as u64);
                if enc.compressed {
                    c.compressions.incr();
                    c.bytes_saved.add(raw.saturating_sub(enc.bytes.len()) as u64);
                }
                // A disk copy is checked against Redis's by the content id (`crate::disk`).
                let bytes = if to_disk {
                    crate::codec::with_content_id(enc.bytes)
                } else {
                    enc.bytes
                };
                match self.security.seal(key, bytes) {
                    Ok(bytes) => Ok((Some(bytes), raw)),
                    Err(e) => {
                        let e = CacheError::Codec(e.into());
                        self.record_error("encrypt", key, &e);
                        Err(e)
                    }
                }
            }
            Err(CodecError::TooLarge { size, max }) => Err(self.too_large(key, size, max)),
            Err(e) => {
                let e = CacheError::Codec(e);
                self.record_error("encode", key, &e);
                Err(e)
            }
        }
    }

    /// Counts a value over `max_value_size` and logs it once per key prefix (a function that
    /// returns huge values would otherwise log on every call).
    fn too_large(&self, key: &str, size: usize, max: usize) -> CacheError {
        self.counters.too_large.incr();
        let prefix = crate::perf::prefix_of(key);
        let mut warned = self.too_large_warned.lock();
        if warned.len() < TOO_LARGE_PREFIXES_KEPT && warned.insert(prefix.to_owned()) {
            tracing::warn!(
                key,
                size,
                max,
                "value over max_value_size is not cached (logged once per key prefix)"
            );
        }
        CacheError::ValueTooLarge {
            key: key.to_owned(),
            size,
            max,
        }
    }

    /// Writes both levels; returns the L1 entry (shared with single-flight waiters) and the
    /// outcome of the remote write. A value that cannot be encoded or is too large goes nowhere
    /// (the entry is still returned, for the waiters of this load).
    ///
    /// `load` is where the load that produced the value started: then nothing is stored when an
    /// invalidation of the key or of one of its `tags` overtook it ([`crate::guard`],
    /// [`crate::tags`]). Without it this is a direct write, which itself overtakes the loads of
    /// this key in flight here.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn store(
        &self,
        key: &str,
        fp: Fingerprint,
        value: AnyValue,
        ops: &'static ValueOps,
        opts: &LoadOptions,
        load: Option<&LoadStart>,
        tags: &[TagStamp],
    ) -> (Entry, Result<()>) {
        let span = tracing::debug_span!(
            "cache.store",
            cache.key_prefix = trace::prefix(key),
            db.system = trace::db_system(self.remote.is_some()),
            db.operation = "SET",
            cache.outcome = tracing::field::Empty,
            cache.duration_us = tracing::field::Empty,
        );
        let t0 = std::time::Instant::now();
        let (entry, result, outcome) = self
            .write_tiers(key, fp, value, ops, opts, load, tags)
            .instrument(span.clone())
            .await;
        trace::ended(&span, outcome, t0);
        (entry, result)
    }

    /// [`store`](Self::store), saying how it ended for its span.
    #[allow(clippy::too_many_arguments)]
    async fn write_tiers(
        &self,
        key: &str,
        fp: Fingerprint,
        value: AnyValue,
        ops: &'static ValueOps,
        opts: &LoadOptions,
        load: Option<&LoadStart>,
        tags: &[TagStamp],
    ) -> (Entry, Result<()>, &'static str) {
        if !self.enabled() {
            return ((ops.entry)(key, value, self.now(), 0), Ok(()), "off");
        }
        let started = std::time::Instant::now();
        let (ttl, auto) = self.resolve_ttl(key, opts.ttl, opts.adaptive, opts.auto_ttl);
        // Fail-safe entries outlive their TTL physically; readers go by the logical expiry.
        let grace = opts.stale_for.unwrap_or_default();
        let expires_at_ms = unix_ms().saturating_add(ttl.as_millis() as u64);
        let now = self.now();
        match load {
            Some(start) if self.log.overtaken(start.seq, fp, key) || tags::moved(tags) => {
                self.discarded(key);
                return ((ops.entry)(key, value, now, 0), Ok(()), "discarded");
            }
            Some(_) => {}
            None => self.log.record(Invalidated::Key(fp)),
        }
        if !tags.is_empty() {
            let names: Vec<&str> = tags.iter().map(|t| t.state.name()).collect();
            if let Err(e) = tags::validate_all(&names) {
                self.record_error("set", key, &e);
                return ((ops.entry)(key, value, now, 0), Err(e), "error");
            }
        }
        // A token Redis could not give: the entry cannot say what it was loaded under there.
        let remote_ok = tags.iter().all(|t| t.token.is_some());
        let pairs: Vec<(&str, u64)> = tags
            .iter()
            .map(|t| (t.state.name(), t.token.unwrap_or(0)))
            .collect();
        // A tagged entry must be gone before the record of an invalidation after it is.
        let remote_ttl = if tags.is_empty() {
            ttl + grace
        } else {
            (ttl + grace).min(self.config.tag_ttl)
        };
        let (bytes, size) = match self.encode_for_tiers(key, &*value, ops, expires_at_ms, &pairs) {
            Ok(e) => e,
            Err(e) => return ((ops.entry)(key, value, now, 0), Err(e), "error"),
        };
        self.counters.sets.incr();
        let mut result = Ok(());
        if let (Some(remote), Some(bytes), true) = (&self.remote, &bytes, remote_ok) {
            let written = match load {
                // A direct write also overtakes other instances' loads in flight.
                None => {
                    let notice = self.notice(&Message::Keys(vec![key.to_owned()]));
                    let items: [Item<'_>; 1] = [(key, bytes, remote_ttl)];
                    self.timed(Op::Set, remote.set_many(&items, notice.as_ref()))
                        .await
                        .map(|()| true)
                }
                // A load's fill only refreshes other instances' L1.
                Some(start) => {
                    let notice = self.notice(&Message::Filled(vec![key.to_owned()]));
                    self.guarded_write(&**remote, key, bytes, remote_ttl, start, notice.as_ref())
                        .await
                }
            };
            match written {
                Ok(true) => {}
                Ok(false) => {
                    self.discarded(key);
                    return ((ops.entry)(key, value, now, 0), Ok(()), "discarded");
                }
                Err(e) => {
                    self.record_error("set", key, &e);
                    result = Err(e);
                }
            }
        }
        // Not when its tags' tokens are unknown: the record could never be checked.
        if let (Some(bytes), true) = (&bytes, remote_ok) {
            self.l3_store(key, bytes, load.map_or(started, |l| l.at));
        }
        // Digested before L1 takes the value: a load is compared with what it replaces.
        let digest = match load {
            Some(_) if self.config.analytics.enabled => Some((ops.digest)(&*value)),
            Some(_) => None,
            None => {
                self.analytics.wrote(key);
                None
            }
        };
        let entry = self.write_l1(ToL1 {
            key,
            fp,
            value,
            ops,
            ttl,
            size,
            stale_for: grace,
            use_l1: opts.use_l1,
            since: load.map(|s| s.seq),
            tags: tags::stamps_of(tags),
            expires_at_ms,
            limit: opts.max_entries,
            idle: opts.ttl_idle,
        });
        if let Some(digest) = digest {
            self.analytics.observe_load(key, fp, digest, ttl, auto, now);
        }
        let outcome = if result.is_ok() { "stored" } else { "error" };
        (entry, result, outcome)
    }

    /// A load's remote write, guarded by the markers it saw ([`crate::guard`]): `Ok(false)` when
    /// an invalidation overtook it. A load that could not read the markers (the tier failed
    /// then) or outlived them skips the remote tier and fills only L1 (`Ok(true)`).
    async fn guarded_write(
        &self,
        remote: &dyn RemoteTier,
        key: &str,
        bytes: &[u8],
        ttl: Duration,
        start: &LoadStart,
        notice: Option<&Notice>,
    ) -> Result<bool> {
        match &start.seen {
            Some(seen) if self.markers_still_live(remote, start) => {
                let items: [GuardedItem<'_>; 1] = [(key, bytes, ttl, seen)];
                Ok(self
                    .timed(Op::Set, remote.guarded_set(&items, notice))
                    .await?
                    .first()
                    .copied()
                    .unwrap_or(false))
            }
            _ => {
                tracing::debug!(
                    key,
                    "load not written to the remote tier: its start markers are unknown or expired"
                );
                Ok(true)
            }
        }
    }

    /// Whether the markers a load saw are certainly still there when its store runs: younger
    /// than the window, with room for the store's own timeout and its one retry.
    fn markers_still_live(&self, remote: &dyn RemoteTier, start: &LoadStart) -> bool {
        start.at.elapsed() + 2 * self.config.command_timeout < remote.marker_ttl()
    }

    /// Where a load of `keys` starts, for [`store`](Self::store): the in-process number taken
    /// before the caller's reads, and the remote markers read now, after its miss.
    pub(crate) async fn load_start(&self, seq: u64, keys: &[&str]) -> Vec<LoadStart> {
        // Before the markers are read: their lifetime is counted from when they could be set.
        let at = std::time::Instant::now();
        let remote = self.remote.as_ref().filter(|_| self.enabled());
        let seen: Vec<Option<Seen>> = match remote {
            Some(remote) => match remote.guard_seen(keys).await {
                Ok(seen) => seen.into_iter().map(Some).collect(),
                Err(e) => {
                    self.record_error("guard", keys.first().copied().unwrap_or(""), &e);
                    vec![None; keys.len()]
                }
            },
            None => vec![None; keys.len()],
        };
        seen.into_iter()
            .map(|seen| LoadStart {
                seq,
                seen,
                at,
                tags: Vec::new(),
            })
            .collect()
    }

    /// [`load_start`](Self::load_start) of one key, with its tags' states taken before the
    /// load runs.
    pub(crate) async fn load_start_tagged(&self, seq: u64, key: &str, tags: &[&str]) -> LoadStart {
        let mut start = self.load_start(seq, &[key]).await.pop().unwrap_or(LoadStart {
            seq,
            seen: None,
            at: std::time::Instant::now(),
            tags: Vec::new(),
        });
        if !tags.is_empty() && self.enabled() {
            let names = self.security.tag_names(tags);
            let names: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
            start.tags = self.tags.stamps(self.remote.as_deref(), &names).await;
        }
        start
    }

    /// Direct writes of many values in one remote round trip; L1 is filled whatever the remote
    /// tier answers. The first error (encoding, size, remote) is returned.
    pub(crate) async fn store_many(
        &self,
        items: Vec<(&str, AnyValue)>,
        ops: &'static ValueOps,
        ttl: Option<Duration>,
    ) -> Result<()> {
        if !self.enabled() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let now = unix_ms();
        let mut encoded: Vec<(&str, Vec<u8>, Duration)> = Vec::with_capacity(items.len());
        let mut first_error = None;
        for (key, value) in items {
            let (ttl, _) = self.resolve_ttl(key, ttl, None, None);
            let exp = now.saturating_add(ttl.as_millis() as u64);
            let size = match self.encode_for_tiers(key, &*value, ops, exp, &[]) {
                Ok((bytes, size)) => {
                    if let Some(bytes) = bytes {
                        encoded.push((key, bytes, ttl));
                    }
                    size
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            self.counters.sets.incr();
            self.analytics.wrote(key);
            let fp = Fingerprint::of(key);
            // A direct write overtakes the loads of this key in flight here.
            self.log.record(Invalidated::Key(fp));
            self.write_l1(ToL1 {
                key,
                fp,
                value,
                ops,
                ttl,
                size,
                stale_for: Duration::ZERO,
                use_l1: true,
                since: None,
                tags: None,
                expires_at_ms: exp,
                limit: None,
                idle: None,
            });
        }
        let first_error = first_error.map_or(Ok(()), Err);
        for (key, bytes, _) in &encoded {
            self.l3_store(key, bytes, started);
        }
        let Some(remote) = &self.remote else {
            return first_error;
        };
        let refs: Vec<Item<'_>> = encoded.iter().map(|(k, b, t)| (*k, b.as_slice(), *t)).collect();
        let notice = self.notice(&Message::Keys(refs.iter().map(|r| r.0.to_owned()).collect()));
        self.timed(Op::Mset, remote.set_many(&refs, notice.as_ref()))
            .await
            .inspect_err(|e| self.record_error("mset", refs.first().map_or("", |r| r.0), e))?;
        first_error
    }

    /// [`store`](Self::store) for the values of one batch load: each guarded by its key's
    /// start, all written remotely in one call. Failures are logged and counted.
    pub(crate) async fn store_loaded_many(
        &self,
        items: Vec<(&str, AnyValue, &LoadStart)>,
        ops: &'static ValueOps,
        ttl: Option<Duration>,
    ) {
        if !self.enabled() {
            return;
        }
        let now_ms = unix_ms();
        let mut kept: Vec<Pending<'_>> = Vec::with_capacity(items.len());
        for (key, value, start) in items {
            let fp = Fingerprint::of(key);
            if self.log.overtaken(start.seq, fp, key) {
                self.discarded(key);
                continue;
            }
            let (ttl, auto) = self.resolve_ttl(key, ttl, None, None);
            let exp = now_ms.saturating_add(ttl.as_millis() as u64);
            if let Ok((bytes, size)) = self.encode_for_tiers(key, &*value, ops, exp, &[]) {
                kept.push(Pending {
                    key,
                    fp,
                    value,
                    start,
                    ttl,
                    auto,
                    bytes,
                    size,
                    exp,
                });
            }
        }
        let mut stored = vec![true; kept.len()];
        if let Some(remote) = &self.remote {
            // Loads whose markers are unknown or expired skip the remote tier (`guarded_write`).
            let mut at = Vec::new();
            let mut items: Vec<GuardedItem<'_>> = Vec::new();
            for (i, p) in kept.iter().enumerate() {
                if let (Some(seen), Some(bytes)) = (&p.start.seen, &p.bytes) {
                    if self.markers_still_live(&**remote, p.start) {
                        at.push(i);
                        items.push((p.key, bytes, p.ttl, seen));
                    }
                }
            }
            if !items.is_empty() {
                let notice = self.notice(&Message::Filled(items.iter().map(|i| i.0.to_owned()).collect()));
                match self
                    .timed(Op::Mset, remote.guarded_set(&items, notice.as_ref()))
                    .await
                {
                    Ok(flags) => {
                        for (i, ok) in at.into_iter().zip(flags) {
                            stored[i] = ok;
                        }
                    }
                    Err(e) => self.record_error("mset", items[0].0, &e),
                }
            }
        }
        for (p, ok) in kept.into_iter().zip(stored) {
            if !ok {
                self.discarded(p.key);
                continue;
            }
            if let Some(bytes) = &p.bytes {
                self.l3_store(p.key, bytes, p.start.at);
            }
            self.counters.sets.incr();
            if self.config.analytics.enabled {
                let digest = (ops.digest)(&*p.value);
                self.analytics
                    .observe_load(p.key, p.fp, digest, p.ttl, p.auto, self.now());
            }
            self.write_l1(ToL1 {
                key: p.key,
                fp: p.fp,
                value: p.value,
                ops,
                ttl: p.ttl,
                size: p.size,
                stale_for: Duration::ZERO,
                use_l1: true,
                since: Some(p.start.seq),
                tags: None,
                expires_at_ms: p.exp,
                limit: None,
                idle: None,
            });
        }
    }
}
