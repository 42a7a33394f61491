//! One Redis for a test, of the topology `CACHE_TEST_TOPOLOGY` names: `single` (the default: a
//! [`RedisServer`]) or `cluster` (a [`RedisCluster`] of 3 primaries and 3 replicas). A suite
//! written against [`TestRedis`] runs unchanged on both; `scripts/test.sh` runs the engine,
//! macro, batch, invalidation and warmer suites a second time with `CACHE_TEST_TOPOLOGY=cluster`.

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use crate::{RedisCluster, RedisServer};

/// The Redis a test runs against.
pub enum TestRedis {
    /// One server.
    Single(RedisServer),
    /// A cluster.
    Cluster(RedisCluster),
}

/// Where a cache finds a [`TestRedis`].
#[derive(Clone, Debug)]
pub enum RedisUrls {
    /// `redis_url`.
    Single(String),
    /// `redis_cluster_urls`.
    Cluster(Vec<String>),
}

impl RedisUrls {
    /// As the environment names them (`REDIS_URL` or `REDIS_CLUSTER_URLS`): for a child
    /// process that plays another instance.
    pub fn env(&self) -> (&'static str, String) {
        match self {
            RedisUrls::Single(u) => ("REDIS_URL", u.clone()),
            RedisUrls::Cluster(us) => ("REDIS_CLUSTER_URLS", us.join(",")),
        }
    }
}

impl TestRedis {
    /// Starts the topology `CACHE_TEST_TOPOLOGY` names.
    ///
    /// # Panics
    /// On an unknown topology name, or when the servers do not start.
    pub fn start() -> TestRedis {
        match std::env::var("CACHE_TEST_TOPOLOGY").as_deref() {
            Ok("cluster") => TestRedis::Cluster(RedisCluster::start(3, 1)),
            Ok("single") | Ok("") | Err(_) => TestRedis::Single(RedisServer::start()),
            Ok(other) => panic!("CACHE_TEST_TOPOLOGY={other:?}: expected `single` or `cluster`"),
        }
    }

    /// A single server whatever the topology: for tests of what only one server shows (exact
    /// command counts, `CLIENT PAUSE`, a crash and restart).
    pub fn single() -> TestRedis {
        TestRedis::Single(RedisServer::start())
    }

    /// The single server.
    ///
    /// # Panics
    /// On a cluster.
    pub fn server(&self) -> &RedisServer {
        match self {
            TestRedis::Single(s) => s,
            TestRedis::Cluster(_) => panic!("a single-server test got a cluster"),
        }
    }

    /// The single server, to stop or restart it.
    ///
    /// # Panics
    /// On a cluster.
    pub fn server_mut(&mut self) -> &mut RedisServer {
        match self {
            TestRedis::Single(s) => s,
            TestRedis::Cluster(_) => panic!("a single-server test got a cluster"),
        }
    }

    /// Whether this is a cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, TestRedis::Cluster(_))
    }

    /// The URLs a cache is configured with.
    pub fn urls(&self) -> RedisUrls {
        match self {
            TestRedis::Single(s) => RedisUrls::Single(s.url()),
            TestRedis::Cluster(c) => RedisUrls::Cluster(c.seed_urls()),
        }
    }

    /// A raw connection for checks and fault injection; on a cluster it routes by slot (`KEYS`,
    /// `FLUSHALL` go to every primary).
    ///
    /// # Panics
    /// When it cannot connect.
    pub async fn conn(&self) -> TestConn {
        match self {
            TestRedis::Single(s) => TestConn::Single(s.conn().await),
            TestRedis::Cluster(c) => TestConn::Cluster(
                redis::cluster::ClusterClient::new(c.seed_urls())
                    .expect("cluster client")
                    .get_async_connection()
                    .await
                    .expect("connect to the test cluster"),
            ),
        }
    }

    /// Calls of `command` since start, summed over the primaries (replicas count the writes
    /// they replay).
    pub async fn command_calls(&self, command: &str) -> u64 {
        match self {
            TestRedis::Single(s) => s.command_calls(command).await,
            TestRedis::Cluster(c) => {
                let mut sum = 0;
                for port in c.primaries().await {
                    sum += c.command_calls(port, command).await;
                }
                sum
            }
        }
    }

    /// Pub/sub client connections open now, on every node (`CLIENT LIST TYPE pubsub`).
    pub async fn pubsub_clients(&self) -> usize {
        let mut n = 0;
        for node in self.running_nodes() {
            let list: String = redis::cmd("CLIENT")
                .arg("LIST")
                .arg("TYPE")
                .arg("pubsub")
                .query_async(&mut node.conn().await)
                .await
                .expect("CLIENT LIST TYPE pubsub");
            n += list.lines().filter(|l| !l.trim().is_empty()).count();
        }
        n
    }

    /// The running servers: the one, or every live cluster node.
    fn running_nodes(&self) -> Vec<&RedisServer> {
        match self {
            TestRedis::Single(s) => vec![s],
            TestRedis::Cluster(c) => c.nodes().iter().filter(|n| n.is_running()).collect(),
        }
    }

    /// Closes every pub/sub client connection (`CLIENT KILL TYPE pubsub` on each node); returns
    /// how many were closed.
    pub async fn kill_pubsub_clients(&self) -> u64 {
        let mut killed = 0;
        for n in self.running_nodes() {
            let k: u64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("pubsub")
                .query_async(&mut n.conn().await)
                .await
                .expect("CLIENT KILL TYPE pubsub");
            killed += k;
        }
        killed
    }
}

/// A raw connection to a [`TestRedis`].
#[derive(Clone)]
pub enum TestConn {
    /// To the one server.
    Single(MultiplexedConnection),
    /// To the cluster.
    Cluster(ClusterConnection),
}

impl ConnectionLike for TestConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            TestConn::Single(c) => c.req_packed_command(cmd),
            TestConn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            TestConn::Single(c) => c.req_packed_commands(pipeline, offset, count),
            TestConn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            TestConn::Single(c) => c.get_db(),
            TestConn::Cluster(c) => c.get_db(),
        }
    }
}
