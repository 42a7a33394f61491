//! Direct writes and deletes by key: each with its keys' invalidation markers and the notice
//! for other instances, in one round trip per hash slot (one in all on a single server).

use futures::future::try_join_all;

use super::{cluster, ttl_ms, RedisL2};
use crate::error::Result;
use crate::tier::{Item, Notice};

pub(super) fn add_notice(pipe: &mut redis::Pipeline, notice: Option<&Notice>) {
    if let Some(n) = notice {
        pipe.cmd("PUBLISH").arg(&n.channel).arg(&n.text).ignore();
    }
}

impl RedisL2 {
    /// Splits work on `items` by hash slot on a cluster (a pipeline or script must keep to one
    /// slot there), as indices into `items`; one group on a single server.
    pub(super) fn groups<T>(&self, items: &[T], key: impl Fn(&T) -> &str) -> Vec<Vec<usize>> {
        if !self.cluster {
            return vec![(0..items.len()).collect()];
        }
        cluster::group_by_slot(0..items.len(), |&i| self.slot_of(key(&items[i])))
    }

    /// The hash slot of a cache key's Redis key (namespace included).
    pub(super) fn slot_of(&self, key: &str) -> u16 {
        cluster::slot(self.k(key).as_bytes())
    }

    /// Publishes an invalidation notice on its own.
    pub(crate) async fn publish(&self, notice: &Notice) -> Result<()> {
        let mut pipe = redis::pipe();
        add_notice(&mut pipe, Some(notice));
        let pipe = &pipe;
        self.run(|mut c| async move { pipe.query_async::<()>(&mut c).await })
            .await
    }

    /// Direct writes, each after its key's marker (`MSET` cannot carry a TTL), pipelined per
    /// slot; the notice goes after every write ([`RedisL2::notice_after`]).
    pub(crate) async fn mset(&self, items: &[Item<'_>], notice: Option<&Notice>) -> Result<()> {
        self.write(items, notice, true).await
    }

    /// Writes of values that are not entries (tag states): as [`mset`](Self::mset), without
    /// markers.
    pub(crate) async fn set_plain(&self, items: &[Item<'_>], notice: Option<&Notice>) -> Result<()> {
        self.write(items, notice, false).await
    }

    /// Creates each absent key with its value (`SET NX PX`) and reads what each holds now, one
    /// pipeline per slot.
    pub(crate) async fn init_plain(&self, items: &[Item<'_>]) -> Result<Vec<Option<Vec<u8>>>> {
        let groups = self.groups(items, |i| i.0);
        let pipes: Vec<redis::Pipeline> = groups
            .iter()
            .map(|group| {
                let mut pipe = redis::pipe();
                for &(k, v, ttl) in group.iter().map(|&i| &items[i]) {
                    let key = self.k(k);
                    pipe.cmd("SET")
                        .arg(&*key)
                        .arg(v)
                        .arg("NX")
                        .arg("PX")
                        .arg(ttl_ms(ttl))
                        .ignore();
                    pipe.cmd("GET").arg(&*key);
                }
                pipe
            })
            .collect();
        let replies: Vec<Vec<Option<Vec<u8>>>> = try_join_all(pipes.iter().map(|pipe| {
            self.run(move |mut c| async move { pipe.query_async::<Vec<Option<Vec<u8>>>>(&mut c).await })
        }))
        .await?;
        let mut out = vec![None; items.len()];
        for (group, reply) in groups.iter().zip(replies) {
            for (&i, v) in group.iter().zip(reply) {
                out[i] = v;
            }
        }
        Ok(out)
    }

    async fn write(&self, items: &[Item<'_>], notice: Option<&Notice>, markers: bool) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let groups = self.groups(items, |i| i.0);
        let pipes: Vec<redis::Pipeline> = groups
            .iter()
            .map(|group| {
                let mut pipe = redis::pipe();
                if markers {
                    self.add_markers(&mut pipe, group.iter().map(|&i| items[i].0));
                }
                for &(k, v, ttl) in group.iter().map(|&i| &items[i]) {
                    pipe.cmd("SET")
                        .arg(&*self.k(k))
                        .arg(v)
                        .arg("PX")
                        .arg(ttl_ms(ttl))
                        .ignore();
                }
                if !self.cluster {
                    // The one group: the notice rides in its pipeline, after the writes.
                    add_notice(&mut pipe, notice);
                }
                pipe
            })
            .collect();
        try_join_all(
            pipes
                .iter()
                .map(|pipe| self.run(move |mut c| async move { pipe.query_async::<()>(&mut c).await })),
        )
        .await?;
        self.notice_after(notice).await
    }

    /// On a cluster the notice cannot ride in a slot's pipeline (the client routes `PUBLISH` by
    /// its channel's slot, and refuses a pipeline that spans two): it follows the writes, one
    /// round trip later.
    pub(super) async fn notice_after(&self, notice: Option<&Notice>) -> Result<()> {
        match notice {
            Some(n) if self.cluster => self.publish(n).await,
            _ => Ok(()),
        }
    }

    /// `UNLINK` plus the invalidation notice, one round trip per slot. These are keys the caller
    /// names one by one (`delete`, a literal pattern); only scans check whose entries they are.
    pub(crate) async fn unlink_notify(&self, keys: &[&str], notice: Option<&Notice>) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let groups = self.groups(keys, |k| k);
        let pipes: Vec<redis::Pipeline> = groups
            .iter()
            .map(|group| {
                let mut pipe = redis::pipe();
                // Markers first: a guarded store that runs between the two then sees the
                // marker, and one that ran before has its value unlinked.
                self.add_markers(&mut pipe, group.iter().map(|&i| keys[i]));
                let cmd = pipe.cmd("UNLINK");
                for &i in group {
                    cmd.arg(&*self.k(keys[i]));
                }
                if !self.cluster {
                    // The one group: the notice rides in its pipeline, after the writes.
                    add_notice(&mut pipe, notice);
                }
                pipe
            })
            .collect();
        let counts = try_join_all(
            pipes
                .iter()
                .map(|pipe| self.run(move |mut c| async move { pipe.query_async::<(u64,)>(&mut c).await })),
        )
        .await?;
        self.notice_after(notice).await?;
        Ok(counts.into_iter().map(|(n,)| n).sum())
    }
}
