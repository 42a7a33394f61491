#![allow(clippy::expect_used)] // a harness that cannot start Redis must fail the test loudly

//! Test harness: a private `redis-server` per test, on a free loopback port, killed on drop
//! (also when the test panics). Tests never assume a Redis on 6379.
//!
//! ```no_run
//! let redis = cache_test_harness::RedisServer::start();
//! let url = redis.url(); // redis://127.0.0.1:<free port>/
//! # let _ = url;
//! ```
//!
//! Topologies: [`TlsFiles`] + [`RedisServer::start_tls`] (TLS and mutual TLS),
//! [`SentinelGroup`] (primary, replica, three sentinels) and [`RedisCluster`].

mod cluster;
mod sentinel;
mod tls;
mod topology;

pub use cluster::RedisCluster;
pub use sentinel::{SentinelGroup, SentinelOptions};
pub use tls::{install_crypto_provider, ServerTls, TlsFiles};
pub use topology::{RedisUrls, TestConn, TestRedis};

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A running private `redis-server` (or sentinel).
pub struct RedisServer {
    port: u16,
    tls_port: Option<u16>,
    bus_port: Option<u16>,
    child: Option<Child>,
    dir: PathBuf,
    spec: Spec,
}

/// How a server is launched; kept so that `restart` launches it the same way.
#[derive(Clone, Default)]
pub(crate) struct Spec {
    /// Extra `redis-server` arguments.
    pub(crate) extra: Vec<String>,
    /// Also listen with TLS on a second port.
    pub(crate) tls: Option<ServerTls>,
    /// Cluster mode, with its own `nodes.conf` and a separately chosen bus port.
    pub(crate) cluster: bool,
    /// Sentinel mode: config lines after `port`/`bind`/`dir` (e.g. `sentinel monitor ..`).
    pub(crate) sentinel_conf: Option<String>,
}

fn binary() -> String {
    std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_owned())
}

fn free_port() -> u16 {
    // Binding port 0 lets the OS pick; `redis-server --port 0` would disable TCP instead.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    listener.local_addr().expect("local addr").port()
}

/// A free port other than those in `taken`.
fn free_port_except(taken: &[u16]) -> u16 {
    loop {
        let p = free_port();
        if !taken.contains(&p) {
            return p;
        }
    }
}

/// A new, empty, process-unique directory under the system temp dir.
pub(crate) fn fresh_dir(prefix: &str) -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir); // left over by an earlier process with this pid
    std::fs::create_dir_all(&dir).expect("create a temp dir");
    dir
}

/// The value after `flag` in `args` (e.g. the password of `--requirepass`).
fn arg_value<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    let i = args.iter().position(|a| a == flag)?;
    args.get(i + 1).map(String::as_str)
}

impl RedisServer {
    /// Starts a server with no persistence.
    ///
    /// # Panics
    /// When `redis-server` is not installed (run `scripts/test.sh`, which installs it) or does
    /// not come up within 10 s.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts a server with extra `redis-server` arguments, e.g. `["--maxmemory", "1mb"]`.
    pub fn start_with(extra: &[&str]) -> Self {
        Self::start_spec(Spec {
            extra: extra.iter().map(|s| s.to_string()).collect(),
            ..Spec::default()
        })
    }

    /// Starts a server that serves plain TCP on [`port`](Self::port) (for admin checks: `url()`,
    /// `conn()`, `command_calls()`) and TLS on [`tls_port`](Self::tls_port), with the
    /// certificates of `files`, which must outlive the server (and any `restart`).
    /// `require_client_cert` sets `--tls-auth-clients yes` (mutual TLS) rather than `no`.
    pub fn start_tls(files: &TlsFiles, require_client_cert: bool) -> Self {
        Self::start_with_tls(&[], files.server_tls(require_client_cert))
    }

    /// [`start_tls`](Self::start_tls) with extra `redis-server` arguments and TLS settings.
    pub fn start_with_tls(extra: &[&str], tls: ServerTls) -> Self {
        Self::start_spec(Spec {
            extra: extra.iter().map(|s| s.to_string()).collect(),
            tls: Some(tls),
            ..Spec::default()
        })
    }

    pub(crate) fn start_spec(spec: Spec) -> Self {
        let mut server = RedisServer {
            port: 0,
            tls_port: None,
            bus_port: None,
            child: None,
            dir: fresh_dir("cache-test-redis"),
            spec,
        };
        for _ in 0..5 {
            server.port = free_port();
            server.tls_port = server.spec.tls.as_ref().map(|_| free_port_except(&[server.port]));
            server.bus_port = server
                .spec
                .cluster
                .then(|| free_port_except(&[server.port, server.tls_port.unwrap_or(0)]));
            if server.spawn(true) {
                return server;
            }
        }
        panic!(
            "redis-server did not start after 5 attempts (is `{}` installed?)",
            binary()
        );
    }

    fn command(&self, fresh: bool) -> Command {
        let mut cmd = Command::new(binary());
        if let Some(body) = &self.spec.sentinel_conf {
            let conf = self.dir.join("sentinel.conf");
            if fresh {
                // Sentinel rewrites this file with what it learns, so a restart keeps it.
                let text = format!(
                    "port {}\nbind 127.0.0.1\ndir \"{}\"\n{body}\n",
                    self.port,
                    self.dir.display()
                );
                std::fs::write(&conf, text).expect("write sentinel.conf");
            }
            cmd.arg(&conf).arg("--sentinel");
        } else {
            cmd.arg("--port").arg(self.port.to_string());
            cmd.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir"]);
            cmd.arg(&self.dir);
        }
        if let (Some(bus), true) = (self.bus_port, self.spec.cluster) {
            cmd.args(["--cluster-enabled", "yes", "--cluster-config-file"]);
            cmd.arg(self.dir.join("nodes.conf"));
            cmd.args(["--cluster-node-timeout", "1000", "--cluster-port"]);
            cmd.arg(bus.to_string());
        }
        if let (Some(tls), Some(port)) = (&self.spec.tls, self.tls_port) {
            cmd.args(tls.args(port));
        }
        cmd.args(&self.spec.extra);
        cmd
    }

    fn spawn(&mut self, fresh: bool) -> bool {
        if fresh && self.spec.cluster {
            let _ = std::fs::remove_file(self.dir.join("nodes.conf"));
        }
        let child = self
            .command(fresh)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => panic!(
                "cannot run `{}`: {e}. Install it (apt-get install -y redis-server) or set REDIS_SERVER_BIN",
                binary()
            ),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return false; // port taken between our probe and its bind
            }
            if self.ping() {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Up: answers PING with PONG, or with NOAUTH when it requires a password.
    fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).is_ok() && (&buf == b"+PONG\r\n" || buf.starts_with(b"-NOAUTH"))
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// `rediss://127.0.0.1:<tls port>/`.
    ///
    /// # Panics
    /// When the server was not started with TLS.
    pub fn tls_url(&self) -> String {
        let port = self
            .tls_port
            .expect("tls_url() on a server not started with TLS (use start_tls)");
        format!("rediss://127.0.0.1:{port}/")
    }

    /// The plain TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The TLS port, when started with TLS.
    pub fn tls_port(&self) -> Option<u16> {
        self.tls_port
    }

    /// The cluster bus port, in cluster mode.
    pub fn bus_port(&self) -> Option<u16> {
        self.bus_port
    }

    /// Whether `port` is this server's plain or TLS port.
    pub fn listens_on(&self, port: u16) -> bool {
        self.port == port || self.tls_port == Some(port)
    }

    /// This server's private directory (working dir, `nodes.conf`, `sentinel.conf`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kills the server (SIGKILL) and waits for it: a crash, as far as clients can tell.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same ports (empty: no persistence; a cluster node or
    /// sentinel keeps its `nodes.conf` / `sentinel.conf`).
    ///
    /// # Panics
    /// When it does not come back within 10 s.
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.spawn(false),
            "redis-server did not restart on port {}",
            self.port
        );
    }

    /// Whether the server is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// A plain client for raw commands (fault injection, checks on what was stored). It
    /// authenticates with the `--requirepass` password, if the server was given one.
    pub fn client(&self) -> redis::Client {
        let auth = match arg_value(&self.spec.extra, "--requirepass") {
            Some(pw) => format!(":{pw}@"),
            None => String::new(),
        };
        redis::Client::open(format!("redis://{auth}127.0.0.1:{}/", self.port)).expect("valid url")
    }

    /// A raw async connection.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        self.client()
            .get_multiplexed_async_connection()
            .await
            .expect("connect to test redis")
    }

    /// An async connection with 2 s connect / 5 s response timeouts, errors returned.
    pub(crate) async fn admin_conn(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        self.client()
            .get_multiplexed_async_connection_with_config(&admin_config())
            .await
    }

    /// A blocking connection (5 s timeouts), for setup code outside async contexts.
    pub fn blocking_conn(&self) -> redis::RedisResult<redis::Connection> {
        let conn = self
            .client()
            .get_connection_with_timeout(Duration::from_secs(2))?;
        conn.set_read_timeout(Some(Duration::from_secs(5)))?;
        Ok(conn)
    }

    /// Holds every client's commands for `ms` milliseconds (`CLIENT PAUSE .. ALL`): calls made
    /// meanwhile queue, so a test can line callers up behind one slow Redis call.
    pub async fn pause_clients(&self, ms: u64) {
        let _: () = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(ms)
            .arg("ALL")
            .query_async(&mut self.conn().await)
            .await
            .expect("CLIENT PAUSE");
    }

    /// Creates (or resets) an ACL user: `ACL SETUSER name reset on >password rules..`, with
    /// rules as given, e.g. `["~app:*", "&app:*", "+@all"]`.
    pub async fn add_acl_user(&self, name: &str, password: &str, rules: &[&str]) {
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg(name)
            .arg("reset")
            .arg("on")
            .arg(format!(">{password}"))
            .arg(rules)
            .query_async(&mut self.conn().await)
            .await
            .unwrap_or_else(|e| panic!("ACL SETUSER {name} on port {}: {e}", self.port));
    }

    /// Calls of one command since start, from `INFO commandstats` (e.g. `"mget"`).
    pub async fn command_calls(&self, command: &str) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut self.conn().await)
            .await
            .expect("INFO commandstats");
        let prefix = format!("cmdstat_{}:calls=", command.to_ascii_lowercase());
        info.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

/// Timeouts for harness connections, so a dead or paused node fails a check instead of hanging.
pub(crate) fn admin_config() -> redis::AsyncConnectionConfig {
    redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(Duration::from_secs(2)))
        .set_response_timeout(Some(Duration::from_secs(5)))
}

/// One command on `127.0.0.1:port` over a fresh async connection, errors returned.
pub(crate) async fn try_query<T: redis::FromRedisValue>(
    port: u16,
    cmd: &redis::Cmd,
) -> redis::RedisResult<T> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&admin_config())
        .await?;
    cmd.query_async(&mut conn).await
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
