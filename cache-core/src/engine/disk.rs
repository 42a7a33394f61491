//! The disk tier's rules ([`crate::disk`]): the read order below L1, when a record is served,
//! when values are written to disk. Compiled whether or not the `disk` feature is: without it
//! `self.disk` is always `None` and these paths are never taken.
//!
//! A record is served as fresh when it is trusted (this process wrote or checked it since the
//! last invalidation it could not apply key by key), or when it is checked now: with Redis, its
//! first [`ID_HEADER`] bytes against Redis's copy (one `GETRANGE`, whatever the value's size);
//! without Redis, against the invalidations recorded in the tier's rules file. Its tags go
//! through the same check as Redis's copies. A record that cannot be checked (Redis down) is
//! only ever served by fail-safe, as a stale value.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::read::Live;
use super::{unix_ms, Engine};
use crate::codec::{content_id, with_content_id, Decoded, ID_HEADER};
use crate::config::{Policy, ReadOrder, WritePolicy};
use crate::disk::{Disk, Found};
use crate::error::Result;
use crate::l1::{self, Entry, Spill, SpillMeta};
use crate::values::{AnyValue, ValueOps};

/// What travels to the spill task: an entry L1 evicted for room, or a barrier answered once
/// every entry before it was handed to the disk ([`Engine::flush_spills`]).
pub(crate) enum SpillMsg {
    Entry(Entry),
    Barrier(tokio::sync::oneshot::Sender<()>),
}

/// Where the spill task reads.
pub(crate) type SpillRx = tokio::sync::mpsc::Receiver<SpillMsg>;
/// How barriers are sent to it.
pub(crate) type SpillTx = tokio::sync::mpsc::Sender<SpillMsg>;

/// Evicted entries waiting for the disk at most; past it they are dropped (counted).
const SPILL_QUEUE: usize = 1024;

/// L1's eviction hook for the write-on-eviction policy, and where its entries arrive.
pub(crate) fn spill_channel(disk: &Disk) -> (Spill, SpillTx, SpillRx) {
    let (tx, rx) = tokio::sync::mpsc::channel(SPILL_QUEUE);
    let counters = disk.counters();
    let hook = tx.clone();
    let spill: Spill = Arc::new(move |e: Entry| {
        if hook.try_send(SpillMsg::Entry(e)).is_err() {
            counters.dropped.incr();
        }
    });
    (spill, tx, rx)
}

/// What a check of an unverified record against Redis found.
enum Check {
    Current,
    Stale,
    /// Redis did not answer.
    Unknown,
}

impl Engine {
    /// The disk tier and its policy for `key`, when the tier is on and takes the key.
    pub(crate) fn l3_for(&self, key: &str) -> Option<(&Disk, Policy)> {
        let disk = self.disk.as_deref()?;
        if !disk.is_enabled() {
            return None;
        }
        disk.policy(key).map(|p| (disk, p))
    }

    /// Whether values of `key` are written to disk (then they are encoded with a content id).
    pub(crate) fn l3_takes(&self, key: &str) -> bool {
        self.l3_for(key).is_some()
    }

    /// The read below L1: Redis alone, or the disk tier and Redis in the key's read order.
    /// A Redis hit of a disk key the tier lacks is written there.
    pub(crate) async fn tiered_read(
        &self,
        key: &str,
        ops: &'static ValueOps,
        for_l1: bool,
    ) -> Result<Option<Live>> {
        if !self.enabled() {
            return Ok(None);
        }
        let Some((disk, policy)) = self.l3_for(key) else {
            return self.remote_read(key, ops, for_l1).await;
        };
        let disk_first = self.remote.is_none()
            || match policy.read_order {
                ReadOrder::DiskFirst => true,
                ReadOrder::RedisFirst => false,
                ReadOrder::Auto => disk
                    .known_size(key)
                    .is_none_or(|s| s >= disk.disk_first_min_size()),
            };
        if disk_first {
            if let Some(live) = self.l3_read(disk, key, ops, for_l1, true).await {
                return Ok(Some(live));
            }
        }
        // An invalidation of the key heard while Redis answers keeps its reply off the disk.
        let started = Instant::now();
        match self.remote_read_raw(key, ops, for_l1).await {
            Ok(Some((live, bytes))) => {
                // Under write-on-eviction the value reaches the disk when L1 lets it go.
                if policy.write == WritePolicy::WriteThrough
                    && bytes.len() as u64 >= policy.min_size
                    && !disk.holds(key, &bytes)
                {
                    disk.put_unless_changed(key, bytes, started);
                }
                Ok(Some(live))
            }
            Ok(None) => Ok(None),
            // Redis failing: a trusted record is as good as L1's copy would be.
            Err(e) if !disk_first => match self.l3_read(disk, key, ops, for_l1, false).await {
                Some(live) => {
                    self.record_error("get", key, &e);
                    Ok(Some(live))
                }
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    /// `key`'s record, if it may be served as fresh (see the module doc). `verify`: an
    /// untrusted record may be checked against Redis now (not when Redis just failed).
    async fn l3_read(
        &self,
        disk: &Disk,
        key: &str,
        ops: &'static ValueOps,
        for_l1: bool,
        verify: bool,
    ) -> Option<Live> {
        let found = disk.get(key).await?;
        let started = Instant::now();
        let local = disk.is_local();
        let trusted = self.l3_trusted(&found);
        if !trusted && !local {
            if !verify {
                disk.untried();
                return None;
            }
            match self.check(key, &found).await {
                Check::Current => {}
                Check::Stale => {
                    disk.refuse(key);
                    return None;
                }
                Check::Unknown => {
                    disk.untried();
                    return None;
                }
            }
        }
        let Some(d) = self.decode_any(key, found.envelope(), ops) else {
            disk.refuse(key);
            return None;
        };
        if d.expires_at_ms != 0 && d.expires_at_ms <= unix_ms() {
            // Kept for fail-safe; a miss as fresh.
            disk.untried();
            return None;
        }
        let live = if local {
            self.l3_local_tags(disk, key, d, found.written_ms(), for_l1)
                .await?
        } else {
            match self.live(key, d, for_l1).await {
                Ok(Some(live)) => live,
                Ok(None) => {
                    disk.refuse(key);
                    return None;
                }
                Err(e) => {
                    self.record_error("tags", key, &e);
                    disk.untried();
                    return None;
                }
            }
        };
        if !trusted {
            disk.confirm(key, &found, started);
        }
        disk.hit();
        Some(Live {
            from_disk: true,
            ..live
        })
    }

    /// Whether a record may be served without a check: this process wrote or checked it since
    /// the last invalidation it could not apply key by key, and either it hears other instances
    /// now or that was less than `l1_ttl` ago (the bound L1's copies have in the same case).
    fn l3_trusted(&self, found: &Found) -> bool {
        found.trusted_at().is_some_and(|at| {
            self.remote.is_none() || self.tags.is_listening() || at.elapsed() < self.config.l1_ttl
        })
    }

    /// An unverified record against Redis's copy: the first [`ID_HEADER`] bytes, which hold
    /// the content id of every value the disk takes (one `GETRANGE`, whatever the size).
    async fn check(&self, key: &str, found: &Found) -> Check {
        let Some(remote) = self.remote.as_deref() else {
            return Check::Unknown;
        };
        match self
            .timed(crate::latency::Op::Get, remote.head(key, ID_HEADER))
            .await
        {
            Ok(Some(head))
                if found
                    .redis_head()
                    .is_some_and(|h| content_id(h).is_some() && h == &head[..]) =>
            {
                Check::Current
            }
            Ok(_) => Check::Stale,
            Err(e) => {
                self.record_error("l3_verify", key, &e);
                Check::Unknown
            }
        }
    }

    /// Without Redis: a record is stale when a pattern or one of its tags was invalidated
    /// after it was written (the rules outlive restarts; tag tokens do not). Its L1 stamps are
    /// taken before the check, so an invalidation after it still reaches the L1 copy.
    async fn l3_local_tags(
        &self,
        disk: &Disk,
        key: &str,
        d: Decoded<AnyValue>,
        written_ms: u64,
        for_l1: bool,
    ) -> Option<Live> {
        let names: Vec<&str> = d.tags.iter().map(|(n, _)| &**n).collect();
        let stamps = if names.is_empty() || !for_l1 {
            None
        } else {
            crate::tags::stamps_of(&self.tags.stamps(None, &names).await)
        };
        if disk.ruled_out(key, &names, written_ms) {
            disk.refuse(key);
            return None;
        }
        drop(names);
        Some(Live {
            d,
            stamps,
            from_disk: true,
        })
    }

    /// Writes a stored value's envelope to disk under the key's policy, unless the key was
    /// written or invalidated since `since` (when the store's load or write began). A value
    /// below the policy's minimum size, or one the disk gets only when L1 evicts it, removes
    /// the key's older record instead.
    pub(crate) fn l3_store(&self, key: &str, bytes: &[u8], since: Instant) {
        if let Some((disk, policy)) = self.l3_for(key) {
            if bytes.len() as u64 >= policy.min_size && policy.write == WritePolicy::WriteThrough {
                disk.put_unless_changed(key, bytes.to_vec(), since);
            } else {
                disk.remove(key);
            }
        }
    }

    /// Marks an L1 entry of a key written to disk on eviction (untagged: tag tokens are not
    /// kept in L1, so a tagged value could not be checked once on disk).
    pub(crate) fn mark_for_spill(
        &self,
        entry: &mut Entry,
        key: &str,
        ops: &'static ValueOps,
        expires_at_ms: u64,
    ) {
        let Some((disk, policy)) = self.l3_for(key) else {
            return;
        };
        if policy.write != WritePolicy::OnEviction {
            return;
        }
        // A removal must be remembered as long as an entry made before it may be evicted.
        disk.keep_removals_for(match expires_at_ms {
            0 => None,
            exp => Some(Duration::from_millis(exp.saturating_sub(unix_ms()))),
        });
        l1::set_spill(
            entry,
            SpillMeta {
                ops,
                expires_at_ms,
                created: Instant::now(),
            },
        );
    }

    /// Writes the entries L1 evicts to disk, until the engine is gone.
    pub(crate) async fn spill_task(engine: Weak<Engine>, mut rx: SpillRx) {
        while let Some(msg) = rx.recv().await {
            match msg {
                SpillMsg::Entry(entry) => {
                    let Some(engine) = engine.upgrade() else { return };
                    engine.spill(&entry);
                }
                SpillMsg::Barrier(done) => {
                    let _ = done.send(());
                }
            }
        }
    }

    /// Waits until the entries L1 evicted so far were handed to the disk.
    pub(crate) async fn flush_spills(&self) {
        let Some(tx) = self.spill_tx.as_ref() else { return };
        let (done, wait) = tokio::sync::oneshot::channel();
        if tx.send(SpillMsg::Barrier(done)).await.is_ok() {
            let _ = wait.await;
        }
    }

    /// One evicted entry to disk: not when it expired or the disk holds it already, nor (the
    /// disk checks, by its own record of changes) when its key was written or invalidated
    /// after the entry was made: that is newer than it.
    fn spill(&self, e: &Entry) {
        if !self.enabled() {
            return;
        }
        let Some(meta) = e.spill.as_deref() else { return };
        let Some((disk, policy)) = self.l3_for(&e.key) else {
            return;
        };
        if policy.write != WritePolicy::OnEviction
            || (meta.expires_at_ms != 0 && meta.expires_at_ms <= unix_ms())
        {
            return;
        }
        let bytes = match (meta.ops.encode)(&self.codec, &e.value, meta.expires_at_ms, &[]) {
            Ok(enc) => match self.security.seal(&e.key, with_content_id(enc.bytes)) {
                Ok(bytes) => bytes,
                Err(err) => {
                    self.record_error("l3_spill", &e.key, &crate::error::CacheError::Codec(err.into()));
                    return;
                }
            },
            Err(err) => {
                self.record_error("l3_spill", &e.key, &crate::error::CacheError::Codec(err));
                return;
            }
        };
        if (bytes.len() as u64) < policy.min_size || disk.holds(&e.key, &bytes) {
            return;
        }
        disk.put_unless_changed(&e.key, bytes, meta.created);
    }

    /// Fail-safe's last resort: `key`'s record, if within `stale_for` of its expiry, none of
    /// its tags is (or may have been) invalidated, and Redis, when it answers, still holds the
    /// same value (an unverified record of a key deleted there is not served; one Redis cannot
    /// be asked about is: that is what `stale_if_error` is for).
    pub(crate) async fn l3_stale(
        &self,
        key: &str,
        ops: &'static ValueOps,
        stale_for: Duration,
    ) -> Option<AnyValue> {
        let disk = self.disk.as_deref().filter(|d| d.is_enabled())?;
        disk.policy(key)?;
        let found = disk.get(key).await?;
        if !disk.is_local() && !self.l3_trusted(&found) {
            if let Check::Stale = self.check(key, &found).await {
                disk.refuse(key);
                return None;
            }
        }
        let d = self.decode_any(key, found.envelope(), ops)?;
        let until = d.expires_at_ms.saturating_add(stale_for.as_millis() as u64);
        if d.expires_at_ms != 0 && until <= unix_ms() {
            return None;
        }
        let value = if disk.is_local() {
            self.l3_local_tags(disk, key, d, found.written_ms(), false)
                .await?
                .d
                .value
        } else {
            self.live(key, d, false).await.ok()??.d.value
        };
        disk.hit();
        Some(value)
    }
}
