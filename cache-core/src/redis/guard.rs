//! The Redis side of the stale-set guard ([`crate::guard`]): invalidation markers, the pattern
//! epoch, and the store script that compares them.

use std::time::Duration;

use super::{ttl_ms, RedisL2};
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

    fn marker(&self, key: &str) -> String {
        format!("{}{MARKER_PREFIX}{key}", self.ns.as_deref().unwrap_or(""))
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
    /// as `seen`, checked on the server), with the notice, in one round trip. Returns, per
    /// item, whether it was stored.
    pub(crate) async fn guarded_set(
        &self,
        items: &[GuardedItem<'_>],
        notice: Option<&Notice>,
    ) -> Result<Vec<bool>> {
        let Some(first) = items.first() else {
            return Ok(Vec::new());
        };
        let mut inv = self.guarded_set.prepare_invoke();
        inv.key(&*self.k(EPOCH_KEY)).arg(&first.3.epoch[..]);
        match notice {
            Some(n) => inv.arg(&n.channel).arg(&n.text),
            None => inv.arg("").arg(""),
        };
        for (k, v, ttl, seen) in items {
            inv.key(&*self.k(k))
                .key(self.marker(k))
                .arg(*v)
                .arg(ttl_ms(*ttl))
                .arg(&seen.marker[..]);
        }
        let inv = &inv;
        let stored: Vec<i64> = self
            .run(|mut c| async move { inv.invoke_async(&mut c).await })
            .await?;
        Ok(stored.into_iter().map(|s| s == 1).collect())
    }
}
