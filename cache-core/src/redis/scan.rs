//! Work over every key matching a pattern: pattern invalidation, clear and memory samples. A
//! single server is scanned once; a cluster's primaries are each scanned (rediscovered per call,
//! so a failover or a resharding since the last call is seen).

use futures::future::try_join_all;

use super::cluster::{self, Node};
use super::connect::Conn;
use super::RedisL2;
use crate::error::{BackendError, BackendErrorKind, CacheError, Result};

/// Keys deleted per `UNLINK` while invalidating a pattern.
const UNLINK_BATCH: usize = 500;
/// `SCAN ... COUNT` hint.
const SCAN_COUNT: usize = 1000;
/// `SCAN` pages a memory sample may read.
const SAMPLE_PAGES: usize = 10;

/// Unlinks, among `KEYS`, only the strings that start with the cache's envelope (`ARGV[1]` is
/// the magic; the byte after it holds the envelope version, 2 or later). `GETRANGE` on another
/// type is an error reply, caught by `pcall`: one call per key instead of `TYPE` + `GETRANGE`,
/// and one `UNLINK` for the batch (batches stay far below Lua's `unpack` limit). Run on the
/// server per `SCAN` page (per slot of it on a cluster), so telling the cache's entries from
/// foreign data costs no value transfer, and the check and the delete are one atomic step (a key
/// rewritten by another program in between is left alone).
pub(super) const UNLINK_OWN: &str = r"
local own = {}
for _, k in ipairs(KEYS) do
  local h = redis.pcall('GETRANGE', k, 0, 3)
  if type(h) == 'string' and #h == 4 and string.sub(h, 1, 3) == ARGV[1] and string.byte(h, 4) >= 64 then
    own[#own + 1] = k
  end
end
if #own == 0 then return 0 end
return redis.call('UNLINK', unpack(own))
";

/// Where a scan runs.
enum ScanNode {
    /// The one server (or Sentinel primary).
    Only,
    /// A cluster primary.
    Primary(Node),
}

impl std::fmt::Display for ScanNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScanNode::Only => f.write_str("the server"),
            ScanNode::Primary(n) => n.fmt(f),
        }
    }
}

impl RedisL2 {
    /// The nodes a pattern scan must visit: the one server, or every primary of a cluster.
    async fn scan_nodes(&self) -> Result<Vec<ScanNode>> {
        if !self.cluster {
            return Ok(vec![ScanNode::Only]);
        }
        let nodes = self
            .run(|c| async move {
                match c {
                    Conn::Cluster(mut c) => cluster::primaries(&mut c).await,
                    Conn::Node(_) => Ok(Vec::new()),
                }
            })
            .await?;
        if nodes.is_empty() {
            return Err(CacheError::Backend(BackendError::new(
                BackendErrorKind::Other,
                "CLUSTER SLOTS named no primary",
            )));
        }
        Ok(nodes.into_iter().map(ScanNode::Primary).collect())
    }

    /// One `SCAN cursor MATCH pattern COUNT n` page on `node`: the next cursor (0 = done) and
    /// its keys, as bytes (another program's keys need not be UTF-8). `pattern` is already
    /// namespaced.
    async fn scan_page(&self, node: &ScanNode, cursor: u64, pattern: &str) -> Result<(u64, Vec<Vec<u8>>)> {
        self.run(|c| async move {
            match (c, node) {
                (Conn::Cluster(mut c), ScanNode::Primary(n)) => {
                    cluster::scan_page(&mut c, n, cursor, pattern, SCAN_COUNT).await
                }
                (mut c, _) => {
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(pattern)
                        .arg("COUNT")
                        .arg(SCAN_COUNT)
                        .query_async(&mut c)
                        .await
                }
            }
        })
        .await
    }

    /// Deletes the cache's own entries among the keys matching `pattern` (inside the
    /// namespace): `SCAN MATCH` pages on every node (never `KEYS`, which blocks the server),
    /// each batch checked and unlinked on the server by [`UNLINK_OWN`]. Foreign keys under the
    /// same pattern, of any type, are left alone. Returns how many were deleted; on a cluster,
    /// a primary that could not be scanned does not stop the others, and the result is then an
    /// error naming the primaries not reached.
    pub(crate) async fn unlink_matching(&self, pattern: &str) -> Result<u64> {
        let pattern = &*self.kp(pattern)?;
        let nodes = self.scan_nodes().await?;
        let mut removed = 0;
        let mut missed: Vec<(String, CacheError)> = Vec::new();
        for node in &nodes {
            match self.unlink_matching_on(node, pattern).await {
                Ok(n) => removed += n,
                Err(e) => missed.push((node.to_string(), e)),
            }
        }
        match missed.first() {
            None => Ok(removed),
            Some((_, first)) if nodes.len() == 1 => Err(first.clone()),
            Some((_, first)) => {
                let kind = match first {
                    CacheError::Backend(b) => b.kind,
                    _ => BackendErrorKind::Other,
                };
                let names: Vec<String> = missed.iter().map(|(n, e)| format!("{n} ({e})")).collect();
                Err(CacheError::Backend(BackendError::new(
                    kind,
                    format!(
                        "pattern {pattern:?} reached {} of {} primaries ({removed} entries deleted there); not reached: {}",
                        nodes.len() - missed.len(),
                        nodes.len(),
                        names.join(", ")
                    ),
                )))
            }
        }
    }

    async fn unlink_matching_on(&self, node: &ScanNode, pattern: &str) -> Result<u64> {
        let mut removed = 0;
        let mut cursor: u64 = 0;
        let mut batch: Vec<Vec<u8>> = Vec::new();
        loop {
            let (next, keys) = self.scan_page(node, cursor, pattern).await?;
            batch.extend(keys);
            if batch.len() >= UNLINK_BATCH || (next == 0 && !batch.is_empty()) {
                removed += self.unlink_own(&batch).await?;
                batch.clear();
            }
            if next == 0 {
                return Ok(removed);
            }
            cursor = next;
        }
    }

    /// [`UNLINK_OWN`] over `keys` (Redis keys), once per slot on a cluster, concurrently.
    async fn unlink_own(&self, keys: &[Vec<u8>]) -> Result<u64> {
        let groups: Vec<Vec<&Vec<u8>>> = if self.cluster {
            cluster::group_by_slot(keys.iter(), |k| cluster::slot(k))
        } else {
            vec![keys.iter().collect()]
        };
        let script = &self.unlink_own;
        let counts = try_join_all(groups.iter().map(|group| {
            self.run(move |mut c| async move {
                script
                    .key(group.as_slice())
                    .arg(&crate::codec::MAGIC[..])
                    .invoke_async::<u64>(&mut c)
                    .await
            })
        }))
        .await?;
        Ok(counts.into_iter().sum())
    }

    /// Up to `n` keys matching `pattern` (a few `SCAN` pages at most, from the first node that
    /// has any) and the sum of their `MEMORY USAGE`.
    pub(crate) async fn sample_memory(&self, pattern: &str, n: usize) -> Result<(u64, u64)> {
        let pattern = &*self.kp(pattern)?;
        for node in &self.scan_nodes().await? {
            let mut keys: Vec<Vec<u8>> = Vec::new();
            let mut cursor: u64 = 0;
            for _page in 0..SAMPLE_PAGES {
                let (next, batch) = self.scan_page(node, cursor, pattern).await?;
                keys.extend(batch);
                if keys.len() >= n || next == 0 {
                    break;
                }
                cursor = next;
            }
            keys.truncate(n);
            if keys.is_empty() {
                continue;
            }
            let sizes: Vec<Option<u64>> = match node {
                // One server: one pipeline.
                ScanNode::Only => {
                    let mut pipe = redis::pipe();
                    for k in &keys {
                        pipe.cmd("MEMORY").arg("USAGE").arg(k);
                    }
                    let pipe = &pipe;
                    self.run(|mut c| async move { pipe.query_async(&mut c).await })
                        .await?
                }
                // A cluster primary: each key's command routed to the node that listed it.
                ScanNode::Primary(n) => {
                    try_join_all(keys.iter().map(|k| {
                        self.run(move |c| async move {
                            let mut cmd = redis::cmd("MEMORY");
                            cmd.arg("USAGE").arg(k);
                            match c {
                                Conn::Cluster(mut c) => cluster::on_node::<Option<u64>>(&mut c, n, cmd).await,
                                mut c => cmd.query_async::<Option<u64>>(&mut c).await,
                            }
                        })
                    }))
                    .await?
                }
            };
            return Ok((keys.len() as u64, sizes.into_iter().flatten().sum()));
        }
        Ok((0, 0))
    }

    /// Server figures: the server's own `INFO`, or the first primary's on a cluster.
    pub(crate) async fn info_text(&self) -> Result<String> {
        let node = self.scan_nodes().await?.into_iter().next();
        self.run(|c| {
            let node = &node;
            async move {
                match (c, node) {
                    (Conn::Cluster(mut c), Some(ScanNode::Primary(n))) => {
                        cluster::on_node::<String>(&mut c, n, redis::cmd("INFO")).await
                    }
                    (mut c, _) => redis::cmd("INFO").query_async(&mut c).await,
                }
            }
        })
        .await
    }
}
