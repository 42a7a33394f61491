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

use std::time::Duration;

use super::read::Live;
use super::{unix_ms, Engine};
use crate::codec::{content_id, Decoded, ID_HEADER};
use crate::config::{Policy, ReadOrder};
use crate::disk::Disk;
use crate::error::Result;
use crate::values::{AnyValue, ValueOps};

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
        match self.remote_read_raw(key, ops, for_l1).await {
            Ok(Some((live, bytes))) => {
                if bytes.len() as u64 >= policy.min_size && !disk.holds(key, &bytes) {
                    disk.put(key, bytes);
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
        let envelope = found.envelope();
        let local = disk.is_local();
        if !found.trusted() && !local {
            if !verify {
                disk.untried();
                return None;
            }
            let remote = self.remote.as_deref()?;
            match self
                .timed(crate::latency::Op::Get, remote.head(key, ID_HEADER))
                .await
            {
                Ok(Some(head))
                    if found.redis_head().is_some_and(|h| content_id(h).is_some() && h == &head[..]) => {}
                Ok(_) => {
                    disk.refuse(key);
                    return None;
                }
                Err(e) => {
                    self.record_error("l3_verify", key, &e);
                    disk.untried();
                    return None;
                }
            }
        }
        let Some(d) = self.decode_any(key, envelope, ops) else {
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
        if !found.trusted() {
            disk.confirm(key, &found);
        }
        disk.hit();
        Some(Live {
            from_disk: true,
            ..live
        })
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

    /// Writes a stored value's envelope to disk under the key's policy (a value below the
    /// policy's minimum size removes the key's older record instead).
    pub(crate) fn l3_store(&self, key: &str, bytes: &[u8]) {
        if let Some((disk, policy)) = self.l3_for(key) {
            if bytes.len() as u64 >= policy.min_size {
                disk.put(key, bytes.to_vec());
            } else {
                disk.remove(key);
            }
        }
    }

    /// Fail-safe's last resort: `key`'s record whatever its trust, if within `stale_for` of
    /// its expiry and none of its tags is (or may have been) invalidated.
    pub(crate) async fn l3_stale(
        &self,
        key: &str,
        ops: &'static ValueOps,
        stale_for: Duration,
    ) -> Option<AnyValue> {
        let disk = self.disk.as_deref().filter(|d| d.is_enabled())?;
        disk.policy(key)?;
        let found = disk.get(key).await?;
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
