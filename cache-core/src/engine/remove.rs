//! Removal: deletes, pattern invalidation, clear, and the invalidations other instances send.
//! Each records itself in the guard log *before* it touches L1 ([`crate::guard`]).

use super::Engine;
use crate::bus::Message;
use crate::error::Result;
use crate::guard::Invalidated;
use crate::key::Fingerprint;
use crate::latency::Op;
use crate::pattern::Pattern;
use crate::tier::BusHandler;

impl Engine {
    /// Removes `key` from both levels; whether the remote tier held it (alone: whether L1 did).
    pub(crate) async fn delete(&self, key: &str) -> Result<bool> {
        let fp = Fingerprint::of(key);
        // Only an L1 alone answers from L1; with a remote tier the answer is its delete's.
        let in_l1 = self.remote.is_none() && self.l1.as_ref().is_some_and(|l1| l1.get(fp).is_some());
        self.log.record(Invalidated::Key(fp));
        self.analytics.invalidated(key);
        if let Some(l1) = &self.l1 {
            l1.remove(fp);
        }
        if let Some(disk) = &self.disk {
            disk.remove(key);
        }
        let Some(remote) = &self.remote else {
            return Ok(in_l1);
        };
        let notice = self.notice(&Message::Keys(vec![key.to_owned()]));
        match self
            .timed(Op::Delete, remote.delete(&[key], notice.as_ref()))
            .await
        {
            Ok(n) => Ok(n > 0),
            Err(e) => {
                self.record_error("delete", key, &e);
                Err(e)
            }
        }
    }

    /// Deletes the cache's entries matching a glob from L1 and from the remote tier (only the
    /// entries it wrote: see [`crate::tier::RemoteTier::delete_matching`]). Returns the remote
    /// count (alone: L1's). L1 is cleared even when the remote tier fails; the error is returned.
    pub(crate) async fn invalidate_pattern(&self, pattern: &str) -> Result<u64> {
        let p = Pattern::new(pattern)?;
        // Refused before anything is touched when obfuscation leaves Redis nothing to match.
        if self.remote.is_some() {
            self.security.pattern(pattern)?;
        }
        if p.is_literal() {
            self.log.record(Invalidated::Key(Fingerprint::of(p.as_str())));
            self.analytics.invalidated(p.as_str());
        } else {
            self.log.record(Invalidated::Pattern(p.clone()));
            self.analytics.broad_invalidation();
        }
        let l1_removed = self
            .l1
            .as_ref()
            .map_or(0, |l1| l1.remove_where(&|k| p.matches(k)));
        if let Some(disk) = &self.disk {
            if p.is_literal() {
                disk.remove(p.as_str());
            } else {
                disk.invalidate_pattern(&p);
            }
        }
        let Some(remote) = &self.remote else {
            return Ok(l1_removed);
        };
        let result = if p.is_literal() {
            let notice = self.notice(&Message::Keys(vec![p.as_str().to_owned()]));
            self.timed(Op::Invalidate, remote.delete(&[p.as_str()], notice.as_ref()))
                .await
        } else {
            // The epoch first: loads in flight anywhere then do not store what the scan removes.
            let removed = match remote.bump_epoch().await {
                Ok(()) => {
                    self.timed(Op::Invalidate, remote.delete_matching(p.as_str()))
                        .await
                }
                Err(e) => Err(e),
            };
            // A disk record checked while the scan ran may have been confirmed against a value
            // the scan then deleted.
            if let Some(disk) = &self.disk {
                disk.untrust_all();
            }
            // Tell the others even if the scan failed half-way: their copies may be stale.
            self.publish(&Message::Pattern(p.as_str().to_owned()), pattern)
                .await;
            removed
        };
        result.inspect_err(|e| self.record_error("invalidate_pattern", pattern, e))
    }

    /// Empties L1 and deletes the cache's entries in the remote tier. Returns the count as
    /// [`invalidate_pattern`](Self::invalidate_pattern) does.
    pub(crate) async fn clear(&self) -> Result<u64> {
        self.log.record(Invalidated::All);
        self.analytics.broad_invalidation();
        let l1_removed = self.l1.as_ref().map_or(0, |l1| {
            let n = l1.len();
            l1.clear();
            n
        });
        if let Some(disk) = &self.disk {
            disk.clear().await;
        }
        let Some(remote) = &self.remote else {
            return Ok(l1_removed);
        };
        let removed = match remote.bump_epoch().await {
            Ok(()) => remote.delete_matching("*").await,
            Err(e) => Err(e),
        };
        // As for a pattern: nothing checked against Redis while it was emptied stays trusted.
        if let Some(disk) = &self.disk {
            disk.untrust_all();
        }
        self.publish(&Message::Clear, "*").await;
        removed.inspect_err(|e| self.record_error("clear", "*", e))
    }

    /// Sends `msg` on its own (failures logged and counted).
    async fn publish(&self, msg: &Message, what: &str) {
        let (Some(notice), Some(bus)) = (self.notice(msg), self.remote.as_ref().and_then(|r| r.bus())) else {
            return;
        };
        if let Err(e) = bus.publish(&notice).await {
            self.record_error("publish", what, &e);
        }
    }

    /// Drops every L1 copy, and lets no load in flight store what it read before.
    pub(super) fn forget_all(&self) {
        self.log.record(Invalidated::All);
        self.analytics.broad_invalidation();
        self.tags.forget();
        if let Some(l1) = &self.l1 {
            l1.clear();
        }
        if let Some(disk) = &self.disk {
            disk.untrust_all();
        }
    }
}

/// What other instances tell this one. Recorded before L1 is touched, so a load in flight either
/// sees the record or has its entry removed here ([`crate::guard`]).
impl BusHandler for Engine {
    fn resubscribed(&self) {
        // Messages sent while unsubscribed are lost: start from an empty L1.
        self.forget_all();
    }

    fn listening(&self, on: bool) {
        self.tags.set_listening(on);
    }

    fn message(&self, msg: Message) {
        match msg {
            Message::Keys(keys) => {
                for k in &keys {
                    let fp = Fingerprint::of(k);
                    self.log.record(Invalidated::Key(fp));
                    self.analytics.invalidated(k);
                    if let Some(l1) = &self.l1 {
                        l1.remove(fp);
                    }
                    if let Some(disk) = &self.disk {
                        disk.remove(k);
                    }
                }
            }
            // Another instance filled these: drop the copies here, invalidate nothing.
            Message::Filled(keys) => {
                if let Some(l1) = &self.l1 {
                    keys.iter().for_each(|k| l1.remove(Fingerprint::of(k)));
                }
                if let Some(disk) = &self.disk {
                    keys.iter().for_each(|k| disk.remove(k));
                }
            }
            Message::Pattern(p) => match Pattern::new(&p) {
                Ok(p) => {
                    self.log.record(Invalidated::Pattern(p.clone()));
                    self.analytics.broad_invalidation();
                    if let Some(l1) = &self.l1 {
                        l1.remove_where(&|k| p.matches(k));
                    }
                    if let Some(disk) = &self.disk {
                        disk.untrust_all();
                    }
                }
                Err(_) => self.forget_all(),
            },
            Message::Clear => self.forget_all(),
            Message::Tags(tags) => {
                self.analytics.broad_invalidation();
                for (name, _) in &tags {
                    self.tags.heard(name);
                }
            }
        }
    }
}
