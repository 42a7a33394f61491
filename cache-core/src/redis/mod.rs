//! The Redis tier: every Redis call goes through this module tree ([`RedisL2`], the
//! [`RemoteTier`](crate::tier::RemoteTier) and [`Bus`](crate::tier::Bus) over Redis).
//!
//! Connection model: a few multiplexed connections (`redis_connections`, default 2), taken from a
//! `deadpool` pool and shared by all tasks, so concurrent requests pipeline on one socket
//! instead of each holding a connection (measured ≈ 8× the throughput at 64 tasks). The pool
//! bounds the total, creates connections with the configured timeouts and PINGs a connection
//! before handing it out again; a lane whose connection broke is emptied and refilled from it.
//! [`connect`] makes those connections for each form of Redis: one server (plain, TLS, ACL
//! user), the primary a set of sentinels names (a refill after a failover asks them again), or
//! a cluster (one cluster connection per lane, which routes by slot itself).
//!
//! On a cluster, multi-key writes are grouped by hash slot and pattern scans visit every
//! primary ([`cluster`]).

mod cluster;
mod coalesce;
mod connect;
mod guard;
mod listener;
mod scan;
mod tier;
mod writes;

pub(crate) use connect::mask;

use std::borrow::Cow;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use redis::RedisError;

use coalesce::{Coalescer, Join, Turn};
use connect::{Conn, Connector, Manager};

use crate::config::CacheConfig;
use crate::error::{BackendError, BackendErrorKind, CacheError, Result};
use crate::security::Security;
use crate::stats::RedisInfo;
use crate::tier::breaker::{Breaker, BreakerState};
use crate::tier::PoolStatus;

type Pool = deadpool::managed::Pool<Manager>;
type Pooled = deadpool::managed::Object<Manager>;

struct Lane {
    conn: ArcSwapOption<Pooled>,
    refill: tokio::sync::Mutex<()>,
}

pub(crate) struct RedisL2 {
    connector: Arc<Connector>,
    pool: Pool,
    lanes: Box<[Lane]>,
    next_lane: AtomicUsize,
    breaker: Breaker,
    reads: Arc<Coalescer>,
    connect_timeout: Duration,
    /// The longest a call's attempt may take, whatever the client does.
    call_timeout: Duration,
    /// Keys are spread over hash slots: group multi-key calls by slot, scan every primary.
    cluster: bool,
    /// `{namespace}:` when a namespace is set: every key sent to Redis starts with it.
    ns: Option<String>,
    /// Key obfuscation (names of keys and patterns in Redis): `crate::security`.
    security: Arc<Security>,
    del_if_eq: redis::Script,
    unlink_own: redis::Script,
    guarded_set: redis::Script,
    /// How long a key's invalidation marker lives (see [`crate::guard`]).
    marker_ttl: Duration,
}

impl RedisL2 {
    /// The Redis tier the configuration names, or `None` when it names none.
    pub(crate) fn new(config: &CacheConfig, security: Arc<Security>) -> Result<Option<Self>> {
        let Some(connector) = Connector::new(config)? else {
            return Ok(None);
        };
        let connector = Arc::new(connector);
        let pool = Pool::builder(Manager::new(connector.clone()))
            .max_size(config.pool_max_size)
            .runtime(deadpool::Runtime::Tokio1)
            .wait_timeout(Some(config.connect_timeout))
            .create_timeout(Some(config.connect_timeout))
            .recycle_timeout(Some(config.command_timeout))
            .build()
            .map_err(|e| CacheError::Config(format!("redis pool: {e}")))?;
        let lanes = (0..config.redis_connections)
            .map(|_| Lane {
                conn: ArcSwapOption::empty(),
                refill: tokio::sync::Mutex::new(()),
            })
            .collect();
        Ok(Some(RedisL2 {
            cluster: connector.is_cluster(),
            connector,
            pool,
            lanes,
            next_lane: AtomicUsize::new(0),
            breaker: Breaker::new(config.breaker_threshold, config.breaker_cooldown),
            reads: Arc::new(Coalescer::new(config.l2_reads_in_flight)),
            connect_timeout: config.connect_timeout,
            call_timeout: config.command_timeout + config.command_timeout / 2,
            ns: config.namespace.as_ref().map(|n| format!("{n}:")),
            security,
            unlink_own: redis::Script::new(scan::UNLINK_OWN),
            guarded_set: redis::Script::new(guard::GUARDED_SET),
            marker_ttl: config.load_guard_window,
            del_if_eq: redis::Script::new(
                "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('UNLINK', KEYS[1]) else return 0 end",
            ),
        }))
    }

    /// Where the tier is (URL, sentinels or seed nodes), any password masked, for logs and
    /// health output.
    pub(crate) fn display_url(&self) -> String {
        self.connector.display().to_owned()
    }

    /// The Redis key of a cache key: the key itself, or `{namespace}:key`, its argument part
    /// obfuscated when a key secret is set (`crate::security`).
    fn k<'a>(&self, key: &'a str) -> Cow<'a, str> {
        self.ns_of(self.security.name(key))
    }

    /// `name` inside the namespace.
    fn ns_of<'a>(&self, name: Cow<'a, str>) -> Cow<'a, str> {
        match &self.ns {
            Some(ns) => Cow::Owned(format!("{ns}{name}")),
            None => name,
        }
    }

    /// The Redis pattern of a key pattern (namespaced, and mapped like keys); an error when
    /// obfuscation makes it impossible.
    fn kp<'a>(&self, pattern: &'a str) -> Result<Cow<'a, str>> {
        Ok(self.ns_of(self.security.pattern(pattern)?))
    }

    /// The name a channel gets in Redis (namespaced like keys, never obfuscated: the channel's
    /// name is the cache's, and its messages are sealed instead).
    pub(crate) fn channel_name(&self, name: &str) -> String {
        self.ns_of(Cow::Borrowed(name)).into_owned()
    }

    /// What makes this tier's connections (the pub/sub listener's too).
    pub(crate) fn connector(&self) -> Arc<Connector> {
        self.connector.clone()
    }

    /// The logical database of the URL (`redis://host/3` → 3), for per-keyspace channels.
    pub(crate) fn db(&self) -> i64 {
        self.connector.db()
    }

    pub(crate) fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    pub(crate) fn pool_status(&self) -> PoolStatus {
        let s = self.pool.status();
        PoolStatus {
            max_size: s.max_size,
            size: s.size,
            available: s.available,
            shared_connected: self.lanes.iter().filter(|l| l.conn.load().is_some()).count(),
        }
    }

    async fn lane_conn(&self) -> Result<(usize, Conn)> {
        let i = self.next_lane.fetch_add(1, Ordering::Relaxed) % self.lanes.len();
        let lane = &self.lanes[i];
        if let Some(c) = lane.conn.load().as_deref() {
            return Ok((i, (**c).clone()));
        }
        let _guard = lane.refill.lock().await;
        if let Some(c) = lane.conn.load().as_deref() {
            return Ok((i, (**c).clone()));
        }
        let obj = match tokio::time::timeout(self.connect_timeout, self.pool.get()).await {
            Ok(Ok(obj)) => obj,
            Ok(Err(e)) => return Err(pool_error(e)),
            Err(_) => return Err(CacheError::Timeout(self.connect_timeout)),
        };
        let conn = (*obj).clone();
        lane.conn.store(Some(Arc::new(obj)));
        Ok((i, conn))
    }

    fn drop_lane(&self, i: usize) {
        if let Some(obj) = self.lanes[i].conn.swap(None) {
            // Detach a broken connection instead of returning it to the pool.
            if let Ok(obj) = Arc::try_unwrap(obj) {
                drop(Pooled::take(obj));
            }
        }
    }

    /// Runs one Redis call through the breaker, retrying once on a timeout or a dropped
    /// connection (every call made here is idempotent).
    async fn run<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: Fn(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if !self.breaker.allow() {
            return Err(CacheError::CircuitOpen);
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (lane, conn) = match self.lane_conn().await {
                Ok(c) => c,
                Err(e) => {
                    self.breaker.failure();
                    return Err(e);
                }
            };
            // The client's own response timeout fires first; this one bounds what it does not
            // cover (a cluster connection queueing calls while it rediscovers its nodes).
            let result = match tokio::time::timeout(self.call_timeout, f(conn)).await {
                Ok(r) => r,
                Err(_) => Err(RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no reply within {:?}", self.call_timeout),
                ))),
            };
            match result {
                Ok(v) => {
                    self.breaker.success();
                    return Ok(v);
                }
                Err(e) => {
                    // A slow server is not a broken connection: keep it (a new one would wait
                    // for the same server). A primary demoted to replica (`READONLY`) is: the
                    // next connection asks the sentinels again.
                    let broken = e.is_connection_dropped()
                        || e.is_connection_refusal()
                        || (e.is_io_error() && !e.is_timeout())
                        || e.code() == Some("READONLY");
                    if broken {
                        self.drop_lane(lane);
                    }
                    let transport = broken || e.is_timeout() || is_unavailable(&e);
                    if transport && attempt < 2 {
                        tracing::debug!(error = %e, "redis call failed; retrying once");
                        continue;
                    }
                    if transport {
                        self.breaker.failure();
                    } else {
                        // Redis answered (with a refusal): the transport works, and a probe
                        // must report either way or the breaker would wait on it.
                        self.breaker.success();
                    }
                    return Err(backend(e));
                }
            }
        }
    }

    /// `GET`, coalesced with concurrent reads into one `MGET` under load (see [`coalesce`]).
    /// Boxed by its one caller, the [`RemoteTier`](crate::tier::RemoteTier) impl: a Redis read
    /// is tens of microseconds, an allocation is not, and unboxed the future of a cached fn
    /// nested so deep that rustc's layout queries overflowed in the caller's crate.
    ///
    /// The reads themselves are boxed here, apart: inline, their state machines made this
    /// future ≈ 10.7 KB, allocated for every read, waiters included (most reads under load
    /// wait for another's `MGET` and never run one; dhat on `l2_profile`).
    pub(crate) async fn get_coalesced(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let (others, _lead) = match self.reads.join(key) {
            Join::Alone => return Box::pin(self.get_one(key)).await,
            Join::Lead(lead) => (Vec::new(), lead),
            Join::Wait(rx) => match rx.await {
                Ok(Turn::Done(r)) => return r,
                Ok(Turn::Lead(others, lead)) => (others, lead),
                // The leader was cancelled with this read in its batch: read alone.
                Err(_) => return Box::pin(self.get_one(key)).await,
            },
        };
        if others.is_empty() {
            return Box::pin(self.get_one(key)).await;
        }
        Box::pin(self.get_batch(key, others)).await
    }

    /// One `MGET` for this caller's key and the queued ones; answers each queued caller.
    async fn get_batch(&self, key: &str, others: Vec<coalesce::Waiter>) -> Result<Option<Vec<u8>>> {
        let mut keys: Vec<&str> = Vec::with_capacity(others.len() + 1);
        keys.push(key);
        keys.extend(others.iter().map(|w| w.key.as_str()));
        let values = self.mget(&keys).await.and_then(|values| {
            if values.len() == keys.len() {
                Ok(values)
            } else {
                Err(CacheError::Backend(BackendError::new(
                    BackendErrorKind::Other,
                    format!("MGET returned {} values for {} keys", values.len(), keys.len()),
                )))
            }
        });
        match values {
            Ok(values) => {
                let mut values = values.into_iter();
                let mine = values.next().flatten();
                for (w, v) in others.into_iter().zip(values) {
                    w.answer(Ok(v));
                }
                Ok(mine)
            }
            Err(e) => {
                for w in others {
                    w.answer(Err(e.clone()));
                }
                Err(e)
            }
        }
    }

    async fn get_one(&self, key: &str) -> Result<Option<Vec<u8>>> {
        let key = &*self.k(key);
        self.run(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await
    }

    /// One `MGET` for all keys.
    pub(crate) async fn mget(&self, keys: &[&str]) -> Result<Vec<Option<Vec<u8>>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // Without a namespace or key obfuscation the caller's keys go out as they are (the
        // coalesced read path copies nothing).
        if self.ns.is_none() && self.security.obfuscator().is_none() {
            return self
                .run(|mut c| async move { redis::cmd("MGET").arg(keys).query_async(&mut c).await })
                .await;
        }
        let owned: Vec<String> = keys.iter().map(|k| self.k(k).into_owned()).collect();
        let owned = &owned;
        self.run(|mut c| async move { redis::cmd("MGET").arg(owned).query_async(&mut c).await })
            .await
    }

    /// Milliseconds left on `key`; `None` when it does not exist or never expires.
    pub(crate) async fn pttl(&self, key: &str) -> Result<Option<Duration>> {
        let key = &*self.k(key);
        let ms: i64 = self
            .run(|mut c| async move { redis::cmd("PTTL").arg(key).query_async(&mut c).await })
            .await?;
        Ok((ms >= 0).then(|| Duration::from_millis(ms as u64)))
    }

    /// `GETRANGE key 0 n-1`; an absent key reads as empty, so `None`.
    pub(crate) async fn head(&self, key: &str, n: usize) -> Result<Option<Vec<u8>>> {
        let key = &*self.k(key);
        let end = n.saturating_sub(1);
        let bytes: Vec<u8> = self
            .run(|mut c| async move {
                redis::cmd("GETRANGE")
                    .arg(key)
                    .arg(0)
                    .arg(end)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok((!bytes.is_empty()).then_some(bytes))
    }

    /// `SET key value NX PX ttl`: whether this call set it.
    pub(crate) async fn set_nx(&self, key: &str, value: &str, ttl: Duration) -> Result<bool> {
        let ms = ttl_ms(ttl);
        let key = &*self.k(key);
        let reply: Option<String> = self
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(value)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(reply.is_some())
    }

    /// Deletes `key` only if it still holds `value` (atomic, in a Lua script).
    pub(crate) async fn del_if_eq(&self, key: &str, value: &str) -> Result<bool> {
        let script = &self.del_if_eq;
        let key = &*self.k(key);
        let n: i64 = self
            .run(|mut c| async move { script.key(key).arg(value).invoke_async(&mut c).await })
            .await?;
        Ok(n == 1)
    }

    pub(crate) async fn exists(&self, key: &str) -> Result<bool> {
        let key = &*self.k(key);
        self.run(|mut c| async move { redis::cmd("EXISTS").arg(key).query_async(&mut c).await })
            .await
    }

    pub(crate) async fn info(&self) -> Result<RedisInfo> {
        Ok(RedisInfo::parse(&self.info_text().await?))
    }

    /// Round-trip time of a `PING`.
    pub(crate) async fn ping(&self) -> Result<Duration> {
        let start = Instant::now();
        let _: String = self
            .run(|mut c| async move { redis::cmd("PING").query_async(&mut c).await })
            .await?;
        Ok(start.elapsed())
    }
}

fn ttl_ms(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

/// Replies that say the server cannot serve now but soon will: loading its data, a cluster
/// or primary failing over, a slot in the middle of a move.
fn is_unavailable(e: &RedisError) -> bool {
    matches!(
        e.code(),
        Some("LOADING" | "CLUSTERDOWN" | "TRYAGAIN" | "MASTERDOWN" | "READONLY")
    )
}

fn pool_error(e: deadpool::managed::PoolError<RedisError>) -> CacheError {
    match e {
        deadpool::managed::PoolError::Backend(e) => backend(e),
        other => CacheError::Pool(other.to_string()),
    }
}

/// The client library's error, classified for [`CacheError::Backend`]: no `redis` type leaves
/// this module.
pub(crate) fn backend(e: RedisError) -> CacheError {
    let kind = if e.is_timeout() {
        BackendErrorKind::Timeout
    } else if e.is_connection_dropped() {
        BackendErrorKind::ConnectionDropped
    } else if e.is_connection_refusal() {
        BackendErrorKind::ConnectionRefused
    } else if e.is_io_error() {
        BackendErrorKind::Io
    } else if matches!(e.kind(), redis::ErrorKind::AuthenticationFailed)
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"))
    {
        BackendErrorKind::Auth
    } else if e.code().is_some() {
        BackendErrorKind::Server
    } else {
        BackendErrorKind::Other
    };
    CacheError::Backend(BackendError::new(kind, e.to_string()))
}
