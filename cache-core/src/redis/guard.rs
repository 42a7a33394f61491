//! The Redis side of the stale-set guard ([`crate::guard`]): invalidation markers, the pattern
//! epoch, and the store script that compares them.

use std::time::Duration;

use futures::future::try_join_all;

use super::{cluster, ttl_ms, RedisL2};
use crate::error::Result;
use crate::guard::Seen;
use crate::tier::{GuardedItem, Notice};

/// Where a key's invalidation marker lives (namespaced like every key; see [`crate::guard`]).
const MARKER_PREFIX: &str = "tiered-cache:inv:";
/// The counter every pattern invalidation and clear increments.
const EPOCH_KEY: &str = "tiered-cache:inv-epoch";

/// Stores a load's values only if no invalidation overtook the load ([`crate::guard`]).
/// `KEYS[1]` the epoch, then per item its key and its marker; `ARGV[1]` the epoch the load saw,
/// `ARGV[2]`/`ARGV[3]` the invalidation channel and message (`''`: none), then per item its
/// value, TTL in ms and the marker the load saw. Returns a 0/1 per item. The notice is published
/// from the script when anything was stored, so a store stays one round trip.
pub(super) const GUARDED_SET: &str = r"
local stored = {}
local n = (#KEYS - 1) / 2
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then
  for i = 1, n do stored[i] = 0 end
  return stored
end
local any = false
for i = 1, n do
  if (redis.call('GET', KEYS[2 * i + 1]) or '') == ARGV[3 * i + 3] then
    redis.call('SET', KEYS[2 * i], ARGV[3 * i + 1], 'PX', ARGV[3 * i + 2])
    stored[i] = 1
    any = true
  else
    stored[i] = 0
  end
end
if any and ARGV[2] ~= '' then redis.call('PUBLISH', ARGV[2], ARGV[3]) end
return stored
";

impl RedisL2 {
    /// Marks `keys` as written for the loads in flight anywhere ([`crate::guard`]): a random
    /// token, set before the write or delete it announces.
    pub(super) fn add_markers(
        &self,
        pipe: &mut redis::Pipeline,
        keys: impl Iterator<Item = impl AsRef<str>>,
    ) {
        let token = format!("{:016x}", fastrand::u64(..));
        for k in keys {
            pipe.cmd("SET")
                .arg(self.marker(k.as_ref()))
                .arg(&token)
                .arg("PX")
                .arg(ttl_ms(self.marker_ttl))
                .ignore();
        }
    }

    /// The marker's name. On a cluster a hash tag puts it in its key's slot, so that the store
    /// script may read it beside the key (the namespace holds no braces: config validation).
    fn marker(&self, key: &str) -> String {
        let ns = self.ns.as_deref().unwrap_or("");
        let slot_key = key;
        let key = self.security.name(key);
        if self.cluster {
            let tag = cluster::slot_tag(self.slot_of(slot_key));
            format!("{ns}{MARKER_PREFIX}{{{tag}}}{key}")
        } else {
            format!("{ns}{MARKER_PREFIX}{key}")
        }
    }

    /// The epoch key the store script compares. On a cluster it must sit in the items' slot,
    /// where the real epoch cannot: the script gets a per-slot name that is never written (so
    /// it always matches the empty epoch passed with it) and the epoch is checked after the
    /// store instead ([`RedisL2::guarded_set`]).
    fn script_epoch(&self, slot: u16) -> String {
        let ns = self.ns.as_deref().unwrap_or("");
        format!("{ns}{EPOCH_KEY}:{{{}}}", cluster::slot_tag(slot))
    }

    /// How long invalidation markers live: a load that took longer is not stored in Redis.
    pub(crate) fn marker_ttl(&self) -> Duration {
        self.marker_ttl
    }

    /// The markers a load reads after its Redis miss: the epoch and each key's marker.
    pub(crate) async fn guard_seen(&self, keys: &[&str]) -> Result<Vec<Seen>> {
        let mut names = Vec::with_capacity(keys.len() + 1);
        names.push(self.k(EPOCH_KEY).into_owned());
        names.extend(keys.iter().map(|k| self.marker(k)));
        let names = &names;
        let values: Vec<Option<Vec<u8>>> = self
            .run(|mut c| async move { redis::cmd("MGET").arg(names).query_async(&mut c).await })
            .await?;
        let mut values = values.into_iter().map(Option::unwrap_or_default);
        let epoch = values.next().unwrap_or_default();
        Ok(values
            .map(|marker| Seen {
                marker,
                epoch: epoch.clone(),
            })
            .collect())
    }

    /// Bumps the pattern epoch: every load in flight anywhere will not store (pattern
    /// invalidation and clear call it before they delete).
    pub(crate) async fn bump_epoch(&self) -> Result<()> {
        let key = &*self.k(EPOCH_KEY);
        self.run(|mut c| async move { redis::cmd("INCR").arg(key).query_async::<i64>(&mut c).await })
            .await
            .map(drop)
    }

    /// Stores loaded values unless an invalidation overtook their load (same epoch and markers
    /// as `seen`, checked on the server), with the notice, in one round trip (one per slot on a
    /// cluster). Returns, per item, whether it was stored.
    ///
    /// On a cluster the epoch lives in one slot and the items in others, so no script can
    /// compare them atomically. The epoch is read right after the store instead: if it moved
    /// since the load began, the values just stored are unlinked again (with the notice, so
    /// other instances drop copies they read meanwhile). Either the pattern delete that bumped
    /// it ran its scan after this store (and deleted the values), or this read sees the bump.
    pub(crate) async fn guarded_set(
        &self,
        items: &[GuardedItem<'_>],
        notice: Option<&Notice>,
    ) -> Result<Vec<bool>> {
        let Some(first) = items.first() else {
            return Ok(Vec::new());
        };
        let groups = self.groups(items, |i| i.0);
        let invocations: Vec<redis::ScriptInvocation<'_>> = groups
            .iter()
            .map(|group| {
                let mut inv = self.guarded_set.prepare_invoke();
                if self.cluster {
                    inv.key(self.script_epoch(self.slot_of(items[group[0]].0)))
                        .arg("");
                } else {
                    inv.key(&*self.k(EPOCH_KEY)).arg(&first.3.epoch[..]);
                }
                // On one server the script publishes after its writes. A cluster's groups run
                // concurrently, so no group's script is the last: the notice follows them all.
                match notice.filter(|_| !self.cluster) {
                    Some(nt) => inv.arg(&nt.channel).arg(&nt.text),
                    None => inv.arg("").arg(""),
                };
                for (k, v, ttl, seen) in group.iter().map(|&i| &items[i]) {
                    inv.key(&*self.k(k))
                        .key(self.marker(k))
                        .arg(*v)
                        .arg(ttl_ms(*ttl))
                        .arg(&seen.marker[..]);
                }
                inv
            })
            .collect();
        let results = try_join_all(
            invocations
                .iter()
                .map(|inv| self.run(move |mut c| async move { inv.invoke_async::<Vec<i64>>(&mut c).await })),
        )
        .await?;
        let mut stored = vec![false; items.len()];
        for (group, result) in groups.iter().zip(results) {
            for (&i, s) in group.iter().zip(result) {
                stored[i] = s == 1;
            }
        }
        if self.cluster && stored.iter().any(|s| *s) {
            let key = &*self.k(EPOCH_KEY);
            let epoch: Option<Vec<u8>> = self
                .run(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
                .await?;
            if epoch.unwrap_or_default() != first.3.epoch {
                let undo: Vec<&str> = items
                    .iter()
                    .zip(&stored)
                    .filter_map(|(i, s)| s.then_some(i.0))
                    .collect();
                self.unlink_notify(&undo, notice).await?;
                return Ok(vec![false; items.len()]);
            }
            self.notice_after(notice).await?;
        }
        Ok(stored)
    }
}
