#![allow(clippy::expect_used)] // a harness that cannot start Redis must fail the test loudly

//! Test harness: a private `redis-server` per test, on a free loopback port, killed on drop
//! (also when the test panics). Tests never assume a Redis on 6379.
//!
//! ```no_run
//! let redis = cache_test_harness::RedisServer::start();
//! let url = redis.url(); // redis://127.0.0.1:<free port>/
//! # let _ = url;
//! ```

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running private `redis-server`.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    dir: PathBuf,
    extra: Vec<String>,
}

fn binary() -> String {
    std::env::var("REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".to_owned())
}

fn free_port() -> u16 {
    // Binding port 0 lets the OS pick; `redis-server --port 0` would disable TCP instead.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral loopback port");
    listener.local_addr().expect("local addr").port()
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
        let dir =
            std::env::temp_dir().join(format!("cache-test-redis-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("create redis work dir");
        let mut server = RedisServer {
            port: 0,
            child: None,
            dir,
            extra: extra.iter().map(|s| s.to_string()).collect(),
        };
        for _ in 0..5 {
            server.port = free_port();
            if server.spawn() {
                return server;
            }
        }
        panic!(
            "redis-server did not start after 5 attempts (is `{}` installed?)",
            binary()
        );
    }

    fn spawn(&mut self) -> bool {
        let child = Command::new(binary())
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir"])
            .arg(&self.dir)
            .args(&self.extra)
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

    fn ping(&self) -> bool {
        let Ok(mut s) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
        if s.write_all(b"PING\r\n").is_err() {
            return false;
        }
        let mut buf = [0u8; 7];
        s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
    }

    /// `redis://127.0.0.1:<port>/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The TCP port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL) and waits for it: a crash, as far as clients can tell.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port (empty: no persistence).
    ///
    /// # Panics
    /// When it does not come back within 10 s.
    pub fn restart(&mut self) {
        self.stop();
        assert!(self.spawn(), "redis-server did not restart on port {}", self.port);
    }

    /// Whether the server is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// A plain client for raw commands (fault injection, checks on what was stored).
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("valid url")
    }

    /// A raw async connection.
    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        self.client()
            .get_multiplexed_async_connection()
            .await
            .expect("connect to test redis")
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

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
