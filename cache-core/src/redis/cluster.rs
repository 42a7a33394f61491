//! What a Redis Cluster changes: keys live in 16384 hash slots spread over primaries, a
//! multi-key command or script must keep to one slot, and `SCAN` sees one node.
//!
//! - Multi-key writes are grouped by slot ([`group_by_slot`]); the groups run concurrently on
//!   the multiplexed connections, so each primary gets its commands back to back.
//! - A key's invalidation marker is put in the key's own slot by a hash tag ([`slot_tag`]), so
//!   the guarded store script can compare marker and write atomically.
//! - Pattern scans visit every primary ([`primaries`], rediscovered on each scan).

use std::sync::OnceLock;

use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{RedisResult, Value};

/// Hash slots in a cluster.
const SLOTS: u16 = 16384;

/// The slot of a Redis key: CRC16 (XMODEM) of the key, or of its `{hash tag}` when it has one.
pub(crate) fn slot(key: &[u8]) -> u16 {
    let hashed = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter().position(|&b| b == b'}').map(|close| &rest[..close])
        })
        .filter(|tag| !tag.is_empty())
        .unwrap_or(key);
    crc16::State::<crc16::XMODEM>::calculate(hashed) % SLOTS
}

/// A short text whose hash is `slot`: `{tag}` inside a key puts it in that slot. Computed once
/// per process (about 20 k CRCs; every slot has a tag of three characters or fewer).
pub(crate) fn slot_tag(of: u16) -> &'static str {
    static TAGS: OnceLock<Box<[Box<str>]>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        let mut tags: Vec<Option<Box<str>>> = vec![None; usize::from(SLOTS)];
        let mut missing = usize::from(SLOTS);
        let mut candidates = ALPHABET
            .iter()
            .map(|&a| vec![a])
            .chain(
                ALPHABET
                    .iter()
                    .flat_map(|&a| ALPHABET.iter().map(move |&b| vec![a, b])),
            )
            .chain(ALPHABET.iter().flat_map(|&a| {
                ALPHABET
                    .iter()
                    .flat_map(move |&b| ALPHABET.iter().map(move |&c| vec![a, b, c]))
            }));
        while missing > 0 {
            let Some(c) = candidates.next() else { break };
            let s = usize::from(slot(&c));
            if tags[s].is_none() {
                tags[s] = Some(String::from_utf8_lossy(&c).into());
                missing -= 1;
            }
        }
        // Three characters cover every slot (checked by a test); an uncovered one would fall
        // back to a tag in another slot, which only costs the guard's atomicity for that slot.
        tags.into_iter().map(Option::unwrap_or_default).collect()
    });
    &tags[usize::from(of % SLOTS)]
}

/// Splits `items` into groups that share a slot (`slot_of` each), in first-seen order.
pub(crate) fn group_by_slot<T>(
    items: impl IntoIterator<Item = T>,
    slot_of: impl Fn(&T) -> u16,
) -> Vec<Vec<T>> {
    let mut groups: Vec<(u16, Vec<T>)> = Vec::new();
    let mut index: std::collections::HashMap<u16, usize> = std::collections::HashMap::new();
    for item in items {
        let s = slot_of(&item);
        match index.get(&s) {
            Some(&i) => groups[i].1.push(item),
            None => {
                index.insert(s, groups.len());
                groups.push((s, vec![item]));
            }
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

/// A node's address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Node {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl Node {
    fn route(&self) -> RoutingInfo {
        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
            host: self.host.clone(),
            port: self.port,
        })
    }
}

/// The primaries that serve slots now, from `CLUSTER SLOTS`, asked of a random node (of three
/// at most, so that one slow or dead node does not decide).
pub(crate) async fn primaries(conn: &mut ClusterConnection) -> RedisResult<Vec<Node>> {
    let mut attempt = 0;
    let reply = loop {
        attempt += 1;
        match conn
            .route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await
        {
            Ok(reply) => break reply,
            Err(e) if attempt >= 3 => return Err(e),
            Err(_) => continue,
        }
    };
    let mut nodes: Vec<Node> = Vec::new();
    let Value::Array(ranges) = reply else {
        return Err(unexpected("CLUSTER SLOTS"));
    };
    for range in ranges {
        // [start, end, [host, port, id, ...], replicas...]
        let Value::Array(parts) = range else { continue };
        let Some(Value::Array(primary)) = parts.get(2) else {
            continue;
        };
        let host = match primary.first() {
            Some(Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
            Some(Value::SimpleString(s)) => s.clone(),
            _ => continue,
        };
        let Some(Value::Int(port)) = primary.get(1) else {
            continue;
        };
        let Ok(port) = u16::try_from(*port) else { continue };
        let node = Node { host, port };
        if !nodes.contains(&node) {
            nodes.push(node);
        }
    }
    Ok(nodes)
}

/// One `SCAN` page on one node.
pub(crate) async fn scan_page(
    conn: &mut ClusterConnection,
    node: &Node,
    cursor: u64,
    pattern: &str,
    count: usize,
) -> RedisResult<(u64, Vec<Vec<u8>>)> {
    let mut cmd = redis::cmd("SCAN");
    cmd.arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(count);
    let reply = conn.route_command(cmd, node.route()).await?;
    Ok(redis::from_redis_value(reply)?)
}

/// One command on one node (`INFO`, `MEMORY USAGE` of a key it holds).
pub(crate) async fn on_node<T: redis::FromRedisValue>(
    conn: &mut ClusterConnection,
    node: &Node,
    cmd: redis::Cmd,
) -> RedisResult<T> {
    let reply = conn.route_command(cmd, node.route()).await?;
    Ok(redis::from_redis_value(reply)?)
}

fn unexpected(what: &str) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Parse, "unexpected reply", what.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_cluster_spec() {
        // Values from the Redis Cluster specification's examples and `CLUSTER KEYSLOT`.
        assert_eq!(slot(b"123456789"), 12739);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"foo{}{bar}"), slot(b"foo{}{bar}"), "empty tag: whole key");
        assert_ne!(slot(b"foo{}{bar}"), slot(b"bar"));
    }

    #[test]
    fn every_slot_has_a_tag_that_hashes_to_it() {
        for s in 0..SLOTS {
            let tag = slot_tag(s);
            assert!(!tag.is_empty() && tag.len() <= 3, "slot {s}: {tag:?}");
            assert_eq!(slot(format!("ns:x:{{{tag}}}any key").as_bytes()), s);
        }
    }

    #[test]
    fn groups_keep_order_and_share_slots() {
        let keys = ["a", "{a}1", "b", "{a}2", "{b}"];
        let groups = group_by_slot(keys, |k| slot(k.as_bytes()));
        assert_eq!(groups, vec![vec!["a", "{a}1", "{a}2"], vec!["b", "{b}"]]);
    }
}
