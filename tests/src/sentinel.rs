//! A Sentinel group: one primary, one replica and three sentinels, all private processes.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::{try_query, RedisServer, ServerTls, Spec};

/// Options of [`SentinelGroup::start_with_options`].
#[derive(Clone, Debug, Default)]
pub struct SentinelOptions {
    /// Extra `redis-server` arguments for the primary and the replica.
    pub data_args: Vec<String>,
    /// A password on the data nodes: `--requirepass` and `--masterauth` there, and
    /// `sentinel auth-pass` in each sentinel. The sentinels themselves take no password.
    pub password: Option<String>,
    /// Extra lines for each sentinel's config file.
    pub sentinel_lines: Vec<String>,
    /// TLS on every node (data nodes and sentinels also keep their plain port): replication,
    /// sentinel-to-node and sentinel-to-sentinel links go over TLS (`tls-replication yes`), so
    /// the sentinels name TLS ports.
    pub tls: Option<ServerTls>,
}

/// One primary, one replica and three sentinels (quorum 2, down-after 1 s, failover-timeout
/// 5 s), all killed on drop.
pub struct SentinelGroup {
    // Declared first, so dropped first: no failover while the data nodes go down.
    sentinels: Vec<RedisServer>,
    data: Vec<RedisServer>,
    name: String,
}

fn sentinel_cmd(args: &[&str]) -> redis::Cmd {
    let mut cmd = redis::cmd("SENTINEL");
    cmd.arg(args);
    cmd
}

fn info_field(info: &str, field: &str) -> Option<String> {
    let prefix = format!("{field}:");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().to_owned())
}

impl SentinelGroup {
    /// Starts the group monitoring `master_name`, and waits (20 s at most) until the replica
    /// is linked and every sentinel sees the replica and the two other sentinels.
    ///
    /// # Panics
    /// When any process does not start or the group does not settle in time.
    pub fn start(master_name: &str) -> SentinelGroup {
        Self::start_with_options(master_name, SentinelOptions::default())
    }

    /// [`start`](Self::start) with extra `redis-server` arguments for the data nodes.
    pub fn start_with(master_name: &str, data_args: &[&str]) -> SentinelGroup {
        let data_args = data_args.iter().map(|s| s.to_string()).collect();
        Self::start_with_options(
            master_name,
            SentinelOptions {
                data_args,
                ..SentinelOptions::default()
            },
        )
    }

    /// [`start`](Self::start) with a password, TLS or other extra settings.
    pub fn start_with_options(master_name: &str, options: SentinelOptions) -> SentinelGroup {
        let tls = options.tls.clone().map(|t| ServerTls {
            replication: true,
            ..t
        });
        // The replica syncs at once (not after the 5 s diskless-sync delay).
        let mut data_args = vec!["--repl-diskless-sync-delay".to_owned(), "0".to_owned()];
        data_args.extend(options.data_args.iter().cloned());
        if let Some(pw) = &options.password {
            data_args.extend([
                "--requirepass".into(),
                pw.clone(),
                "--masterauth".into(),
                pw.clone(),
            ]);
        }
        let spec = Spec {
            extra: data_args.clone(),
            tls: tls.clone(),
            ..Spec::default()
        };
        let primary = RedisServer::start_spec(spec.clone());
        // Replicas and sentinels reach the primary on its TLS port when TLS is on.
        let primary_port = primary.tls_port().unwrap_or(primary.port());
        let mut replica_spec = spec;
        replica_spec
            .extra
            .extend(["--replicaof".into(), "127.0.0.1".into(), primary_port.to_string()]);
        let replica = RedisServer::start_spec(replica_spec);

        let name = master_name.to_owned();
        let mut body = vec![
            format!("sentinel monitor {name} 127.0.0.1 {primary_port} 2"),
            format!("sentinel down-after-milliseconds {name} 1000"),
            format!("sentinel failover-timeout {name} 5000"),
            format!("sentinel parallel-syncs {name} 1"),
        ];
        if let Some(pw) = &options.password {
            body.push(format!("sentinel auth-pass {name} {pw}"));
        }
        body.extend(options.sentinel_lines.iter().cloned());
        let sentinel_spec = Spec {
            tls,
            sentinel_conf: Some(body.join("\n")),
            ..Spec::default()
        };
        let mut group = SentinelGroup {
            sentinels: Vec::new(),
            data: vec![primary, replica],
            name,
        };
        group.wait_replica_linked(Instant::now() + Duration::from_secs(20));
        let deadline = Instant::now() + Duration::from_secs(20);
        group.sentinels = (0..3)
            .map(|_| RedisServer::start_spec(sentinel_spec.clone()))
            .collect();
        group.wait_sentinels_settled(deadline);
        group
    }

    fn wait_replica_linked(&self, deadline: Instant) {
        let replica = &self.data[1];
        let mut last = String::new();
        while Instant::now() < deadline {
            let info: redis::RedisResult<String> = replica
                .blocking_conn()
                .and_then(|mut c| redis::cmd("INFO").arg("replication").query(&mut c));
            match info {
                Ok(info) if info_field(&info, "master_link_status").as_deref() == Some("up") => return,
                Ok(info) => last = info,
                Err(e) => last = e.to_string(),
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "replica on port {} did not link to its primary within 20 s: {last}",
            replica.port()
        );
    }

    fn wait_sentinels_settled(&self, deadline: Instant) {
        let mut last = String::new();
        while Instant::now() < deadline {
            let settled = self.sentinels.iter().all(|s| {
                let state: redis::RedisResult<HashMap<String, String>> = s
                    .blocking_conn()
                    .and_then(|mut c| sentinel_cmd(&["MASTER", &self.name]).query(&mut c));
                match state {
                    Ok(m) => {
                        let ok = m.get("num-slaves").map(String::as_str) == Some("1")
                            && m.get("num-other-sentinels").map(String::as_str) == Some("2");
                        if !ok {
                            last = format!("sentinel {}: {m:?}", s.port());
                        }
                        ok
                    }
                    Err(e) => {
                        last = format!("sentinel {}: {e}", s.port());
                        false
                    }
                }
            });
            if settled {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("sentinels did not see 1 replica and 2 other sentinels within 20 s; last: {last}");
    }

    /// `redis://127.0.0.1:<port>` of each sentinel (plain ports).
    pub fn sentinel_urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("redis://127.0.0.1:{}", s.port()))
            .collect()
    }

    /// `rediss://127.0.0.1:<tls port>` of each sentinel.
    ///
    /// # Panics
    /// When the group was started without TLS.
    pub fn sentinel_tls_urls(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| {
                format!(
                    "rediss://127.0.0.1:{}",
                    s.tls_port().expect("group started without TLS")
                )
            })
            .collect()
    }

    /// The monitored master's name.
    pub fn master_name(&self) -> &str {
        &self.name
    }

    /// The master's port as the first answering sentinel names it (its TLS port under TLS).
    ///
    /// # Panics
    /// When no sentinel answers.
    pub async fn master_port(&self) -> u16 {
        let cmd = sentinel_cmd(&["get-master-addr-by-name", &self.name]);
        for s in self.sentinels.iter().filter(|s| s.is_running()) {
            if let Ok((_, port)) = try_query::<(String, u16)>(s.port(), &cmd).await {
                return port;
            }
        }
        panic!("no sentinel named a master for {}", self.name);
    }

    fn master_port_blocking(&self) -> u16 {
        let cmd = sentinel_cmd(&["get-master-addr-by-name", &self.name]);
        self.sentinels
            .iter()
            .filter(|s| s.is_running())
            .find_map(|s| {
                s.blocking_conn()
                    .and_then(|mut c| cmd.query::<(String, u16)>(&mut c))
                    .ok()
            })
            .map(|(_, port)| port)
            .unwrap_or_else(|| panic!("no sentinel named a master for {}", self.name))
    }

    /// SIGKILLs the server the sentinels currently name as master; returns the port they
    /// named (as [`master_port`](Self::master_port)).
    pub fn kill_primary(&mut self) -> u16 {
        let port = self.master_port_blocking();
        let server = self
            .data
            .iter_mut()
            .find(|s| s.listens_on(port))
            .unwrap_or_else(|| panic!("sentinels name port {port}, which is no data node of this group"));
        server.stop();
        port
    }

    /// Waits until every running sentinel names a master other than `old_port` and that node
    /// answers `ROLE` as master; returns its port (as the sentinels name it).
    ///
    /// # Panics
    /// On timeout, with what the sentinels said last.
    pub async fn wait_for_failover(&self, old_port: u16, timeout: Duration) -> u16 {
        let deadline = Instant::now() + timeout;
        let cmd = sentinel_cmd(&["get-master-addr-by-name", &self.name]);
        let mut last = Vec::new();
        while Instant::now() < deadline {
            last.clear();
            for s in self.sentinels.iter().filter(|s| s.is_running()) {
                last.push(
                    try_query::<(String, u16)>(s.port(), &cmd)
                        .await
                        .map(|(_, p)| p)
                        .ok(),
                );
            }
            if let Some(Some(port)) = last.first().copied() {
                if port != old_port && last.iter().all(|p| *p == Some(port)) && self.is_master(port).await {
                    return port;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no failover from port {old_port} within {timeout:?}; sentinels name {last:?}");
    }

    async fn is_master(&self, port: u16) -> bool {
        let Some(server) = self.server_on(port) else {
            return false;
        };
        let Ok(mut conn) = server.admin_conn().await else {
            return false;
        };
        let role: redis::RedisResult<Vec<redis::Value>> = redis::cmd("ROLE").query_async(&mut conn).await;
        match role.ok().and_then(|r| r.into_iter().next()) {
            Some(first) => redis::from_redis_value::<String>(first).is_ok_and(|r| r == "master"),
            None => false,
        }
    }

    /// The data node (primary or replica) listening on `port` (plain or TLS), dead or alive.
    pub fn server_on(&self, port: u16) -> Option<&RedisServer> {
        self.data.iter().find(|s| s.listens_on(port))
    }

    /// The data nodes: the initial primary, then the replica.
    pub fn data_nodes(&self) -> &[RedisServer] {
        &self.data
    }

    /// The three sentinels.
    pub fn sentinels(&self) -> &[RedisServer] {
        &self.sentinels
    }

    /// [`RedisServer::add_acl_user`] on every running data node (ACLs do not replicate).
    pub async fn add_acl_user(&self, name: &str, password: &str, rules: &[&str]) {
        for s in self.data.iter().filter(|s| s.is_running()) {
            s.add_acl_user(name, password, rules).await;
        }
    }
}
