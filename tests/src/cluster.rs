//! A Redis Cluster of private nodes, created with `redis-cli --cluster create`.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{try_query, RedisServer, Spec};

const SLOTS: u32 = 16384;

/// A running cluster: `primaries` masters with `replicas_per_primary` replicas each, every
/// node a [`RedisServer`] in cluster mode (node timeout 1 s, own bus port), killed on drop.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

/// One line of `CLUSTER NODES`.
#[derive(Clone, Debug)]
struct NodeLine {
    port: u16,
    flags: Vec<String>,
    slots: Vec<(u16, u16)>,
}

impl NodeLine {
    fn is_master(&self) -> bool {
        self.flags.iter().any(|f| f == "master")
    }
    fn is_failed(&self) -> bool {
        self.flags
            .iter()
            .any(|f| f == "fail" || f == "fail?" || f == "noaddr")
    }
    fn slot_count(&self) -> u32 {
        self.slots.iter().map(|&(a, b)| u32::from(b - a) + 1).sum()
    }
}

fn parse_nodes(text: &str) -> Vec<NodeLine> {
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let addr = f.get(1)?.split('@').next()?;
            let port = addr.rsplit(':').next()?.parse().ok()?;
            let slots = f
                .iter()
                .skip(8)
                .filter(|s| !s.starts_with('[')) // [slot->-id] / [slot-<-id]: a migration
                .filter_map(|s| match s.split_once('-') {
                    Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
                    None => s.parse().ok().map(|n| (n, n)),
                })
                .collect();
            Some(NodeLine {
                port,
                flags: f.get(2)?.split(',').map(str::to_owned).collect(),
                slots,
            })
        })
        .collect()
}

fn info_u64(info: &str, field: &str) -> Option<u64> {
    let prefix = format!("{field}:");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

/// CRC16/XMODEM (poly 0x1021, init 0), as Redis Cluster hashes keys.
fn crc16(data: &[u8]) -> u16 {
    data.iter().fold(0u16, |mut crc, &byte| {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
        crc
    })
}

impl RedisCluster {
    /// Starts `primaries * (1 + replicas_per_primary)` nodes, joins them with
    /// `redis-cli --cluster create`, and waits (30 s at most) until every node reports
    /// `cluster_state:ok`, knows every node and agrees on the slot map.
    ///
    /// # Panics
    /// When `primaries < 3` (redis-cli refuses), `redis-cli` fails, or the cluster does not
    /// settle in time.
    pub fn start(primaries: usize, replicas_per_primary: usize) -> RedisCluster {
        assert!(
            primaries >= 3,
            "redis-cli --cluster create needs at least 3 primaries"
        );
        let count = primaries * (1 + replicas_per_primary);
        // Replicas sync at once (the 5 s diskless-sync delay would leave them unsynced, unable
        // to fail over).
        let extra = vec!["--repl-diskless-sync-delay".to_owned(), "0".to_owned()];
        let spec = Spec {
            cluster: true,
            extra,
            ..Spec::default()
        };
        let cluster = RedisCluster {
            nodes: (0..count)
                .map(|_| RedisServer::start_spec(spec.clone()))
                .collect(),
        };
        let cli = std::env::var("REDIS_CLI_BIN").unwrap_or_else(|_| "redis-cli".to_owned());
        let out = Command::new(&cli)
            .arg("--cluster")
            .arg("create")
            .args(cluster.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())))
            .args([
                "--cluster-replicas",
                &replicas_per_primary.to_string(),
                "--cluster-yes",
            ])
            .output()
            .unwrap_or_else(|e| panic!("cannot run `{cli}`: {e}"));
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.wait_settled(count, Instant::now() + Duration::from_secs(30));
        cluster
    }

    fn wait_settled(&self, count: usize, deadline: Instant) {
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.settled_blocking(count) {
                Ok(()) => return,
                Err(why) => last = why,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("cluster did not settle within 30 s: {last}");
    }

    /// Ok when every node is ok, knows `count` nodes, and all report the same slot map.
    fn settled_blocking(&self, count: usize) -> Result<(), String> {
        let mut maps = Vec::new();
        for n in &self.nodes {
            let mut conn = n.blocking_conn().map_err(|e| e.to_string())?;
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut conn)
                .map_err(|e| e.to_string())?;
            let ok = info.contains("cluster_state:ok")
                && info_u64(&info, "cluster_slots_ok") == Some(u64::from(SLOTS))
                && info_u64(&info, "cluster_known_nodes") == Some(count as u64);
            if !ok {
                return Err(format!("node {}: {info}", n.port()));
            }
            let repl: String = redis::cmd("INFO")
                .arg("replication")
                .query(&mut conn)
                .map_err(|e| e.to_string())?;
            if repl.contains("role:slave") && !repl.contains("master_link_status:up") {
                return Err(format!("replica {} not linked: {repl}", n.port()));
            }
            let text: String = redis::cmd("CLUSTER")
                .arg("NODES")
                .query(&mut conn)
                .map_err(|e| e.to_string())?;
            let lines = parse_nodes(&text);
            // Right after `--cluster create` a replica-to-be can still show as a master without
            // slots (a CI run counted 6 primaries of 3 + 3): settled means every master serves.
            if let Some(l) = lines.iter().find(|l| l.is_master() && l.slots.is_empty()) {
                return Err(format!("node {} is a master without slots yet", l.port));
            }
            maps.push(slot_map(&lines));
        }
        if maps.windows(2).all(|w| w[0] == w[1]) {
            Ok(())
        } else {
            Err(format!("nodes disagree on the slot map: {maps:?}"))
        }
    }

    /// `redis://127.0.0.1:<port>` of every node (also dead ones).
    pub fn seed_urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port()))
            .collect()
    }

    /// Every node, dead or alive.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// The node on `port`.
    pub fn node(&self, port: u16) -> Option<&RedisServer> {
        self.nodes.iter().find(|n| n.port() == port)
    }

    /// The slot of `key` (CRC16/XMODEM mod 16384 of the key, or of its `{hash tag}`).
    pub fn slot_of(key: &str) -> u16 {
        let bytes = key.as_bytes();
        let hashed = bytes
            .iter()
            .position(|&b| b == b'{')
            .and_then(|open| {
                let rest = &bytes[open + 1..];
                rest.iter()
                    .position(|&b| b == b'}')
                    .filter(|&close| close > 0)
                    .map(|close| &rest[..close])
            })
            .unwrap_or(bytes);
        (u32::from(crc16(hashed)) % SLOTS) as u16
    }

    /// `CLUSTER NODES` as a running node sees it.
    async fn view(&self) -> Vec<NodeLine> {
        for n in self.nodes.iter().filter(|n| n.is_running()) {
            if let Ok(text) = try_query::<String>(n.port(), redis::cmd("CLUSTER").arg("NODES")).await {
                return parse_nodes(&text);
            }
        }
        panic!("no cluster node answered CLUSTER NODES");
    }

    /// Ports of the running masters, as a running node sees the cluster.
    pub async fn primaries(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .view()
            .await
            .into_iter()
            .filter(|l| {
                l.is_master() && !l.is_failed() && self.node(l.port).is_some_and(RedisServer::is_running)
            })
            .map(|l| l.port)
            .collect();
        ports.sort_unstable();
        ports
    }

    /// The port of the master that owns `slot` (during a migration: the source).
    pub async fn primary_for_slot(&self, slot: u16) -> u16 {
        self.view()
            .await
            .iter()
            .find(|l| l.is_master() && l.slots.iter().any(|&(a, b)| (a..=b).contains(&slot)))
            .map(|l| l.port)
            .unwrap_or_else(|| panic!("no master owns slot {slot}"))
    }

    /// The node id (`CLUSTER MYID`) of the node on `port`.
    pub async fn node_id(&self, port: u16) -> String {
        try_query(port, redis::cmd("CLUSTER").arg("MYID"))
            .await
            .unwrap_or_else(|e| panic!("CLUSTER MYID on {port}: {e}"))
    }

    /// SIGKILLs the node on `port` (it stays in [`nodes`](Self::nodes), not running).
    pub fn kill_node(&mut self, port: u16) {
        let node = self.nodes.iter_mut().find(|n| n.port() == port);
        node.unwrap_or_else(|| panic!("no cluster node on port {port}"))
            .stop();
    }

    /// Waits until every running node reports `cluster_state:ok` and sees all 16384 slots
    /// served by healthy masters other than `dead_port` (its replica was promoted).
    ///
    /// # Panics
    /// On timeout, with the last reason.
    pub async fn wait_for_failover(&self, dead_port: u16, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last = String::new();
        while Instant::now() < deadline {
            match self.failed_over(dead_port).await {
                Ok(()) => return,
                Err(why) => last = why,
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no failover from node {dead_port} within {timeout:?}: {last}");
    }

    async fn failed_over(&self, dead_port: u16) -> Result<(), String> {
        for n in self.nodes.iter().filter(|n| n.is_running()) {
            let info: String = try_query(n.port(), redis::cmd("CLUSTER").arg("INFO"))
                .await
                .map_err(|e| format!("node {}: {e}", n.port()))?;
            let text: String = try_query(n.port(), redis::cmd("CLUSTER").arg("NODES"))
                .await
                .map_err(|e| format!("node {}: {e}", n.port()))?;
            if !info.contains("cluster_state:ok") {
                return Err(format!("node {} is not ok:\n{info}\n{text}", n.port()));
            }
            let served: u32 = parse_nodes(&text)
                .iter()
                .filter(|l| l.is_master() && !l.is_failed() && l.port != dead_port)
                .map(NodeLine::slot_count)
                .sum();
            if served != SLOTS {
                return Err(format!(
                    "node {} sees {served} slots on healthy masters:\n{text}",
                    n.port()
                ));
            }
        }
        Ok(())
    }

    /// Moves `slot` (and its keys) to the master on `to_port`:
    /// [`begin_migration`](Self::begin_migration) then [`finish_migration`](Self::finish_migration).
    pub async fn migrate_slot(&self, slot: u16, to_port: u16) {
        self.begin_migration(slot, to_port).await;
        self.finish_migration(slot, to_port).await;
    }

    /// `CLUSTER SETSLOT slot IMPORTING <src>` on the target, then `MIGRATING <dst>` on the
    /// owner; keys stay where they are, so the owner answers ASK for keys it lacks.
    /// Returns the owner's (source's) port.
    pub async fn begin_migration(&self, slot: u16, to_port: u16) -> u16 {
        let from_port = self.primary_for_slot(slot).await;
        assert_ne!(from_port, to_port, "slot {slot} is already on {to_port}");
        let (src, dst) = (self.node_id(from_port).await, self.node_id(to_port).await);
        setslot(to_port, slot, &["IMPORTING", &src]).await;
        setslot(from_port, slot, &["MIGRATING", &dst]).await;
        from_port
    }

    /// Moves the slot's keys (`GETKEYSINSLOT` + `MIGRATE .. KEYS`) from its owner to
    /// `to_port`, then `CLUSTER SETSLOT slot NODE <dst>` on the target, the source and every
    /// other master. Call after [`begin_migration`](Self::begin_migration).
    pub async fn finish_migration(&self, slot: u16, to_port: u16) {
        let from_port = self.primary_for_slot(slot).await;
        let dst = self.node_id(to_port).await;
        loop {
            let keys: Vec<String> = try_query(
                from_port,
                redis::cmd("CLUSTER").arg("GETKEYSINSLOT").arg(slot).arg(100),
            )
            .await
            .unwrap_or_else(|e| panic!("GETKEYSINSLOT {slot} on {from_port}: {e}"));
            if keys.is_empty() {
                break;
            }
            let mut migrate = redis::cmd("MIGRATE");
            migrate
                .arg("127.0.0.1")
                .arg(to_port)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys);
            let _: redis::Value = try_query(from_port, &migrate)
                .await
                .unwrap_or_else(|e| panic!("MIGRATE slot {slot} from {from_port} to {to_port}: {e}"));
        }
        setslot(to_port, slot, &["NODE", &dst]).await;
        setslot(from_port, slot, &["NODE", &dst]).await;
        for port in self.primaries().await {
            if port != to_port && port != from_port {
                setslot(port, slot, &["NODE", &dst]).await;
            }
        }
    }

    /// Calls of `command` on the node on `port` since it started (`INFO commandstats`).
    pub async fn command_calls(&self, port: u16, command: &str) -> u64 {
        let node = self
            .node(port)
            .unwrap_or_else(|| panic!("no cluster node on port {port}"));
        node.command_calls(command).await
    }

    /// [`command_calls`](Self::command_calls) summed over the running nodes.
    pub async fn sum_command_calls(&self, command: &str) -> u64 {
        let mut sum = 0;
        for n in self.nodes.iter().filter(|n| n.is_running()) {
            sum += n.command_calls(command).await;
        }
        sum
    }

    /// [`RedisServer::add_acl_user`] on every running node (ACLs do not propagate).
    pub async fn add_acl_user(&self, name: &str, password: &str, rules: &[&str]) {
        for n in self.nodes.iter().filter(|n| n.is_running()) {
            n.add_acl_user(name, password, rules).await;
        }
    }
}

async fn setslot(port: u16, slot: u16, args: &[&str]) {
    let mut cmd = redis::cmd("CLUSTER");
    cmd.arg("SETSLOT").arg(slot).arg(args);
    let _: () = try_query(port, &cmd)
        .await
        .unwrap_or_else(|e| panic!("CLUSTER SETSLOT {slot} {args:?} on {port}: {e}"));
}

/// Slot ranges by owner port, masters only: comparable across nodes' views.
fn slot_map(lines: &[NodeLine]) -> BTreeMap<(u16, u16), u16> {
    lines
        .iter()
        .filter(|l| l.is_master())
        .flat_map(|l| l.slots.iter().map(move |&r| (r, l.port)))
        .collect()
}
