//! [`Cache`]: the handle that ties L1, L2, the codec, single flight and the counters together.
//!
//! Why this file is past ~600 lines: it is the public facade and the read-through protocol in
//! one `impl`, which the tier-seam issue (17) splits into a thin facade, one loader module and
//! tier modules as one deliberate redesign; until then it stays whole rather than being cut
//! twice.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::clock::{self, Instant};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::access::{AccessPattern, AccessTracker};
use crate::codec::{Codec, CodecError};
use crate::config::{CacheConfig, TtlRules};
use crate::error::{CacheError, Result};
use crate::flight::{Flights, Outcome, Share};
use crate::guard::{Invalidated, InvalidationLog, LoadStart, Seen};
use crate::invalidation::{self, Message};
use crate::key::{Fingerprint, KeyText};
use crate::l1::{self, Entry, FifoStore, MokaStore, QuickStore, Store, L1};
use crate::l2::{BreakerState, GuardedItem, Notice, PoolStatus, RedisL2};
use crate::latency::{sample_l1, Latencies, Level, Op, OpLatency};
use crate::pattern::Pattern;
use crate::stats::{Counters, Stats};
use crate::strategy::{Adaptive, AdaptiveChoice, Eviction};

/// What a value needs to be cached: serializable for Redis, cloneable for L1 hits.
///
/// Implemented for every type with those traits.
pub trait CacheValue: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}
impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> CacheValue for T {}

/// The two-level cache. Cheap to clone: clones share everything.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
/// use cache_core::{Cache, CacheConfig};
/// let cache = Cache::new(CacheConfig::default())?; // no redis_url: L1 only
/// cache.set("query:users:list", &vec![1u64, 2, 3], None).await?;
/// assert_eq!(cache.get::<Vec<u64>>("query:users:list").await?, Some(vec![1, 2, 3]));
/// let n = cache.get_or_insert_with("query:answer", None, || async { 42u32 }).await;
/// assert_eq!(n, 42);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    config: CacheConfig,
    ttl_rules: TtlRules,
    codec: Codec,
    l1: Option<L1>,
    l2: Option<RedisL2>,
    flights: Flights,
    counters: Counters,
    access: AccessTracker,
    latency: Latencies,
    adaptive: Option<Adaptive>,
    adaptive_choices: parking_lot::Mutex<std::collections::VecDeque<AdaptiveChoice>>,
    /// This instance's id on the invalidation channel.
    origin: u64,
    /// The invalidation channel, when other instances are told about writes.
    channel: Option<String>,
    local_locks: parking_lot::Mutex<std::collections::HashMap<String, (String, Instant)>>,
    /// Invalidations numbered for the loads in flight ([`crate::guard`]).
    log: InvalidationLog,
    /// Key prefixes already warned about for values over `max_value_size`.
    too_large_warned: parking_lot::Mutex<std::collections::HashSet<String>>,
}

/// Per-call options of the loading path (what the macros set).
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Explicit TTL; `None` takes it from the pattern table.
    pub ttl: Option<Duration>,
    /// Whether this call may use L1 (`l1 = false` in the macro keeps a function Redis-only).
    pub use_l1: bool,
    /// `Some(true)`: adaptive TTL for this call (`strategy = adaptive`); `Some(false)`: the
    /// pattern table (`strategy = ttl`); `None`: the cache's strategy decides.
    pub adaptive: Option<bool>,
    /// Fail-safe: keep the value this long past its TTL and serve it when the loader fails or
    /// exceeds `soft_timeout` (`stale_if_error = "10m"` in the macro).
    pub stale_for: Option<Duration>,
    /// Fail-safe: with a stale value at hand, wait this long for the loader, then serve the stale
    /// value while the loader finishes in the background (`soft_timeout = "200ms"`).
    pub soft_timeout: Option<Duration>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            ttl: None,
            use_l1: true,
            adaptive: None,
            stale_for: None,
            soft_timeout: None,
        }
    }
}

/// The answer of [`Cache::performance`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Performance {
    /// Latency per operation, L1 and L2 apart.
    pub operations: Vec<OpLatency>,
    /// What compression did to Redis writes.
    pub compression: CompressionStats,
    /// L1 and Redis memory.
    pub memory: MemoryStats,
    /// Per cached function in this process: calls, hit rate, load time, time saved.
    pub functions: Vec<crate::perf::FunctionStats>,
}

/// Compression figures of [`Performance`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompressionStats {
    /// Values stored compressed.
    pub compressions: u64,
    /// Bytes saved by compression.
    pub bytes_saved: u64,
    /// Bytes of all written values before compression.
    pub raw_bytes: u64,
    /// Bytes of all written values as stored.
    pub stored_bytes: u64,
    /// stored / raw (1.0 before any write).
    pub ratio: f64,
}

/// Memory figures of [`Performance`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemoryStats {
    /// Entries in L1.
    pub l1_entries: u64,
    /// Approximate bytes in L1.
    pub l1_bytes: u64,
    /// Redis `used_memory`.
    pub redis_used_memory: Option<u64>,
    /// Redis `used_memory_human`.
    pub redis_used_memory_human: Option<String>,
}

/// Whether the cache runs with Redis behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// No `redis_url`: in-process only.
    L1Only,
    /// L1 in front of Redis.
    TwoLevel,
}

/// The answer of [`Cache::health`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Health {
    /// False only when Redis is configured and unreachable. L1-only mode is healthy.
    pub healthy: bool,
    /// L1-only or two-level.
    pub mode: Mode,
    /// Entries in L1.
    pub l1_entries: u64,
    /// Approximate bytes in L1.
    pub l1_bytes: u64,
    /// Redis details; `None` in L1-only mode.
    pub redis: Option<RedisHealth>,
}

/// Redis part of [`Health`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RedisHealth {
    /// The URL, password masked.
    pub url: String,
    /// Whether a `PING` got through.
    pub reachable: bool,
    /// Round trip of that `PING`.
    pub latency_ms: Option<f64>,
    /// Why it failed.
    pub error: Option<String>,
    /// Circuit breaker state.
    pub breaker: BreakerState,
    /// Connection pool figures.
    pub pool: PoolStatus,
    /// `maxmemory` in bytes (0 = unlimited).
    pub maxmemory: Option<u64>,
    /// `maxmemory-policy`.
    pub maxmemory_policy: Option<String>,
    /// Configuration risks worth a look (e.g. `noeviction` without `maxmemory`).
    pub warnings: Vec<String>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("mode", &self.mode())
            .field("l1_entries", &self.inner.l1.as_ref().map(L1::len))
            .finish_non_exhaustive()
    }
}

/// How waiting for another instance's load ended.
enum Waited<T> {
    /// Its value appeared in Redis.
    Value((T, u64, usize)),
    /// Its lock went away without a value; this instance holds it now.
    Lead(String),
    /// Bound reached or Redis failed: load without the lock.
    GaveUp,
}

/// One value of a batch load on its way to the tiers.
struct Pending<'a, T> {
    key: &'a str,
    fp: Fingerprint,
    value: T,
    start: &'a LoadStart,
    ttl: Duration,
    /// The encoded bytes (two-level mode).
    bytes: Option<Vec<u8>>,
    /// Its weight in L1.
    size: usize,
}

/// Adaptive bounds for `strategy = adaptive` on a cache configured without them.
static DEFAULT_ADAPTIVE: std::sync::LazyLock<crate::strategy::AdaptiveTtl> =
    std::sync::LazyLock::new(crate::strategy::AdaptiveTtl::default);

/// Key prefixes remembered for the once-per-prefix warning about oversize values.
const TOO_LARGE_PREFIXES_KEPT: usize = 1024;

/// Adaptive TTL decisions listed in the stats.
const ADAPTIVE_CHOICES_KEPT: usize = 32;

/// The value of a result that cannot be an error.
pub(crate) fn infallible<T>(r: std::result::Result<T, Infallible>) -> T {
    match r {
        Ok(v) => v,
        Err(never) => match never {},
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Cache {
    /// Builds a cache. Connects lazily: a Redis that is down now is not an error here (calls fall
    /// back until it answers), but an invalid configuration is.
    pub fn new(config: CacheConfig) -> Result<Self> {
        config.validate()?;
        clock::start();
        let ttl_rules = TtlRules::compile(&config)?;
        let (entries, bytes) = (config.max_memory_cache_size, config.l1_max_bytes);
        let l1 = if config.l1_enabled {
            let store = match config.strategy.eviction() {
                Eviction::Fast => Store::Quick(QuickStore::new(entries, bytes)?),
                Eviction::TinyLfu => Store::Other(Box::new(MokaStore::new(entries, bytes, false))),
                Eviction::Lru => Store::Other(Box::new(MokaStore::new(entries, bytes, true))),
                Eviction::Fifo => Store::Other(Box::new(FifoStore::new(entries, bytes)?)),
            };
            Some(L1::new(store))
        } else {
            None
        };
        let adaptive = config.strategy.adaptive().map(Adaptive::compile).transpose()?;
        let l2 = match &config.redis_url {
            Some(url) => Some(RedisL2::new(url, &config)?),
            None => None,
        };
        let channel = match &l2 {
            Some(l2) if config.l1_enabled && config.l1_invalidation => Some(
                l2.channel_name(
                    config
                        .invalidation_channel
                        .as_deref()
                        .unwrap_or(&format!("tiered-cache:invalidate:{}", l2.db())),
                ),
            ),
            _ => None,
        };
        let codec = Codec::new(
            config.compression_threshold,
            config.compression_level,
            config.max_value_size,
        );
        let cache = Cache {
            inner: Arc::new(Inner {
                ttl_rules,
                codec,
                l1,
                l2,
                flights: Flights::default(),
                counters: Counters::default(),
                access: AccessTracker::new(config.access_sample_rate, config.access_capacity),
                local_locks: Default::default(),
                too_large_warned: Default::default(),
                log: Default::default(),
                latency: Latencies::new()?,
                adaptive,
                adaptive_choices: Default::default(),
                origin: fastrand::u64(..),
                channel,
                config,
            }),
        };
        cache.spawn_health_check();
        cache.spawn_invalidation_listener();
        match &cache.inner.l2 {
            Some(l2) => tracing::info!(redis = %l2.display_url(), "cache ready: L1 + Redis"),
            None => tracing::info!("cache ready: L1 only (no REDIS_URL)"),
        }
        Ok(cache)
    }

    /// [`Cache::new`] over [`CacheConfig::from_env`].
    pub fn from_env() -> Result<Self> {
        Cache::new(CacheConfig::from_env()?)
    }

    /// The configuration this cache was built with.
    pub fn config(&self) -> &CacheConfig {
        &self.inner.config
    }

    /// L1-only or two-level.
    pub fn mode(&self) -> Mode {
        if self.inner.l2.is_some() {
            Mode::TwoLevel
        } else {
            Mode::L1Only
        }
    }

    /// The TTL a key gets when none is given: most specific pattern, else the default.
    /// (Adaptive strategies decide at write time; see [`crate::strategy`].)
    pub fn ttl_for(&self, key: &str) -> Duration {
        self.inner.ttl_rules.resolve(key)
    }

    /// The TTL of a write: explicit, else adaptive where it applies, else the pattern table.
    fn resolve_ttl(&self, key: &str, explicit: Option<Duration>, adaptive: Option<bool>) -> Duration {
        if let Some(t) = explicit {
            return t;
        }
        let settings = match (&self.inner.adaptive, adaptive) {
            (_, Some(false)) => None,
            (Some(a), Some(true)) => Some(&a.settings),
            (Some(a), None) if a.applies(key) => Some(&a.settings),
            (None, Some(true)) => Some(&*DEFAULT_ADAPTIVE),
            _ => None,
        };
        let Some(settings) = settings else {
            return self.ttl_for(key);
        };
        let reads = self.inner.access.count(Fingerprint::of(key));
        let ttl = settings.ttl_for(reads);
        let mut choices = self.inner.adaptive_choices.lock();
        if choices.len() == ADAPTIVE_CHOICES_KEPT {
            choices.pop_front();
        }
        choices.push_back(AdaptiveChoice {
            key: key.to_owned(),
            reads,
            ttl_secs: ttl.as_secs_f64(),
        });
        ttl
    }

    /// Applies the evictions that moka-backed strategies batch (they otherwise run as the
    /// cache is used). Tests and capacity checks call it; nothing else needs to.
    pub fn run_pending_tasks(&self) {
        if let Some(l1) = &self.inner.l1 {
            l1.run_pending_tasks();
        }
    }

    fn spawn_health_check(&self) {
        let (Some(_), Ok(rt)) = (&self.inner.l2, tokio::runtime::Handle::try_current()) else {
            return;
        };
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let every = self.inner.config.health_check_interval;
        if every.is_zero() {
            return;
        }
        rt.spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                if let Some(l2) = &inner.l2 {
                    if let Err(e) = l2.ping().await {
                        tracing::warn!(error = %e, "redis health check failed");
                    }
                }
            }
        });
    }

    /// Other instances evict their L1 copies of what this one writes or deletes.
    fn spawn_invalidation_listener(&self) {
        let (Some(l2), Some(channel)) = (&self.inner.l2, &self.inner.channel) else {
            return;
        };
        let client = match l2.client() {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "cross-instance L1 invalidation is off");
                return;
            }
        };
        let alive = Arc::downgrade(&self.inner);
        let on_sub = Arc::downgrade(&self.inner);
        let on_msg = Arc::downgrade(&self.inner);
        invalidation::spawn_listener(
            client,
            channel.clone(),
            self.inner.origin,
            move || alive.strong_count() > 0,
            move || {
                // Messages sent while unsubscribed are lost: start from an empty L1, and let no
                // load in flight store what it read before.
                if let Some(inner) = on_sub.upgrade() {
                    inner.log.record(Invalidated::All);
                    if let Some(l1) = &inner.l1 {
                        l1.clear();
                    }
                }
            },
            move |msg| {
                let Some(inner) = on_msg.upgrade() else { return };
                // Recorded before L1 is touched, so a load in flight either sees the record or
                // has its entry removed here ([`crate::guard`]).
                match msg {
                    Message::Keys(keys) => {
                        for k in &keys {
                            let fp = Fingerprint::of(k);
                            inner.log.record(Invalidated::Key(fp));
                            if let Some(l1) = &inner.l1 {
                                l1.remove(fp);
                            }
                        }
                    }
                    Message::Filled(keys) => {
                        if let Some(l1) = &inner.l1 {
                            keys.iter().for_each(|k| l1.remove(Fingerprint::of(k)));
                        }
                    }
                    Message::Pattern(p) => match Pattern::new(&p) {
                        Ok(p) => {
                            let matches = |k: &str| p.matches(k);
                            if let Some(l1) = &inner.l1 {
                                inner.log.record(Invalidated::Pattern(p.clone()));
                                l1.remove_where(&matches);
                            } else {
                                inner.log.record(Invalidated::Pattern(p));
                            }
                        }
                        Err(_) => {
                            inner.log.record(Invalidated::All);
                            if let Some(l1) = &inner.l1 {
                                l1.clear();
                            }
                        }
                    },
                    Message::Clear => {
                        inner.log.record(Invalidated::All);
                        if let Some(l1) = &inner.l1 {
                            l1.clear();
                        }
                    }
                }
            },
        );
    }

    fn notice(&self, msg: &Message) -> Option<Notice> {
        self.inner.channel.as_ref().map(|channel| Notice {
            channel: channel.clone(),
            text: invalidation::encode(self.inner.origin, msg),
        })
    }

    fn record_error(&self, op: &'static str, key: &str, err: &CacheError) {
        if matches!(err, CacheError::CircuitOpen) {
            self.inner.counters.l2_skipped.incr();
            tracing::debug!(op, key, "redis skipped: circuit breaker open");
        } else {
            self.inner.counters.errors.incr();
            tracing::warn!(op, key, error = %err, "cache error; falling back");
        }
    }

    #[inline]
    fn l1_get<T: CacheValue>(&self, fp: Fingerprint) -> Option<T> {
        self.l1_get_timed(fp).map(|(v, _)| v)
    }

    /// An L1 hit and, one time in [`crate::latency::L1_SAMPLE`], how long it took.
    #[inline]
    fn l1_get_timed<T: CacheValue>(&self, fp: Fingerprint) -> Option<(T, Option<Duration>)> {
        let l1 = self.inner.l1.as_ref()?;
        let timer = sample_l1().then(std::time::Instant::now);
        let v = l1.read(fp, |e| e.value.downcast_ref::<T>().cloned())?;
        let took = timer.map(|t| t.elapsed());
        if let Some(d) = took {
            self.inner.latency.record(Op::Get, Level::L1, d);
        }
        self.inner.counters.l1_hits.incr();
        Some((v, took))
    }

    /// Runs one Redis call and records its latency.
    async fn timed<R>(&self, op: Op, fut: impl Future<Output = R>) -> R {
        let t = std::time::Instant::now();
        let r = fut.await;
        self.inner.latency.record(op, Level::L2, t.elapsed());
        r
    }

    /// When an entry that expires at `expires_at_ms` (unix ms, 0 = never) leaves L1.
    fn l1_deadline(&self, expires_at_ms: u64) -> Instant {
        let mut ttl = self.inner.config.l1_ttl;
        if expires_at_ms != 0 {
            ttl = ttl.min(Duration::from_millis(expires_at_ms.saturating_sub(unix_ms())));
        }
        clock::now() + ttl
    }

    /// Reads `key` from Redis and decodes it; undecodable bytes are a logged miss.
    async fn l2_read<T: CacheValue>(&self, key: &str) -> Result<Option<(T, u64, usize)>> {
        let Some(l2) = &self.inner.l2 else {
            return Ok(None);
        };
        let Some(bytes) = self.timed(Op::Get, l2.get(key)).await? else {
            return Ok(None);
        };
        Ok(self.decode(key, &bytes))
    }

    /// Decodes a live entry: one past its logical expiry (kept for fail-safe) reads as absent.
    fn decode<T: CacheValue>(&self, key: &str, bytes: &[u8]) -> Option<(T, u64, usize)> {
        self.decode_any(key, bytes)
            .filter(|(_, exp, _)| *exp == 0 || *exp > unix_ms())
    }

    fn decode_any<T: CacheValue>(&self, key: &str, bytes: &[u8]) -> Option<(T, u64, usize)> {
        match self.inner.codec.decode::<T>(bytes) {
            Ok(d) => Some((d.value, d.expires_at_ms, d.raw_len)),
            Err(e) => {
                self.record_error("decode", key, &CacheError::Codec(e));
                None
            }
        }
    }

    /// Puts a value into L1. `read_since` is where the read or load that produced it started
    /// ([`crate::guard`]): an invalidation of the key since then takes the entry back out, so a
    /// Redis reply that was on its way while the key was deleted does not linger in L1.
    fn fill_l1<T: CacheValue>(
        &self,
        key: &str,
        fp: Fingerprint,
        value: T,
        deadline: Instant,
        bytes: usize,
        read_since: Option<u64>,
    ) -> Entry {
        let entry = l1::entry(key, value, deadline, bytes as u64);
        if let Some(l1) = &self.inner.l1 {
            l1.insert(fp, entry.clone());
            if read_since.is_some_and(|seq| self.inner.log.overtaken(seq, fp, key)) {
                l1.remove_same(fp, &entry);
                self.discarded(key);
            }
        }
        entry
    }

    /// Reads a value: L1, then Redis (filling L1). A corrupt Redis entry reads as `None` and is
    /// counted in `errors`; a Redis transport failure is returned.
    pub async fn get<T: CacheValue>(&self, key: &str) -> Result<Option<T>> {
        let fp = Fingerprint::of(key);
        if let Some(v) = self.l1_get(fp) {
            self.inner.access.record(fp, key, true);
            return Ok(Some(v));
        }
        let seq = self.inner.log.start();
        match self.l2_read::<T>(key).await {
            Ok(Some(found)) => Ok(Some(self.l2_hit(key, fp, &LoadOptions::default(), found, seq).0)),
            Ok(None) => {
                self.inner.access.record(fp, key, false);
                self.inner.counters.misses.incr();
                Ok(None)
            }
            Err(e) => {
                self.inner.access.record(fp, key, false);
                self.record_error("get", key, &e);
                self.inner.counters.misses.incr();
                Err(e)
            }
        }
    }

    /// Encodes `value` for Redis, counting compression: the bytes and their uncompressed size
    /// (the value's weight in L1). An error (logged and counted) when it cannot be stored.
    fn encode<T: CacheValue>(&self, key: &str, value: &T, expires_at_ms: u64) -> Result<(Vec<u8>, usize)> {
        match self.inner.codec.encode(value, expires_at_ms) {
            Ok(enc) => {
                let c = &self.inner.counters;
                let raw = enc.raw_len + crate::codec::PLAIN_HEADER;
                c.raw_bytes.add(raw as u64);
                c.stored_bytes.add(enc.bytes.len() as u64);
                if enc.compressed {
                    c.compressions.incr();
                    c.bytes_saved.add(raw.saturating_sub(enc.bytes.len()) as u64);
                }
                Ok((enc.bytes, raw))
            }
            Err(CodecError::TooLarge { size, max }) => Err(self.too_large(key, size, max)),
            Err(e) => {
                let e = CacheError::Codec(e);
                self.record_error("encode", key, &e);
                Err(e)
            }
        }
    }

    /// A value made ready for the tiers there are: its Redis bytes (two-level mode) and its
    /// weight in L1, or the (logged, counted) error that keeps it out of every tier.
    fn encode_for_tiers<T: CacheValue>(
        &self,
        key: &str,
        value: &T,
        expires_at_ms: u64,
    ) -> Result<(Option<Vec<u8>>, usize)> {
        match &self.inner.l2 {
            Some(_) => self
                .encode(key, value, expires_at_ms)
                .map(|(b, raw)| (Some(b), raw)),
            None => self.l1_only_size(key, value).map(|raw| (None, raw)),
        }
    }

    /// The encoded size of a value bound for L1 only, or the error that keeps it out.
    fn l1_only_size<T: CacheValue>(&self, key: &str, value: &T) -> Result<usize> {
        let size = self.inner.codec.encoded_len(value);
        let max = self.inner.config.max_value_size;
        let payload = size.saturating_sub(crate::codec::PLAIN_HEADER);
        if payload > max {
            return Err(self.too_large(key, payload, max));
        }
        Ok(size)
    }

    /// Counts a value over `max_value_size` and logs it once per key prefix (a function that
    /// returns huge values would otherwise log on every call).
    fn too_large(&self, key: &str, size: usize, max: usize) -> CacheError {
        self.inner.counters.too_large.incr();
        let prefix = crate::perf::prefix_of(key);
        let mut warned = self.inner.too_large_warned.lock();
        if warned.len() < TOO_LARGE_PREFIXES_KEPT && warned.insert(prefix.to_owned()) {
            tracing::warn!(
                key,
                size,
                max,
                "value over max_value_size is not cached (logged once per key prefix)"
            );
        }
        CacheError::ValueTooLarge {
            key: key.to_owned(),
            size,
            max,
        }
    }

    /// How long a new entry stays in L1: its TTL, capped by `l1_ttl` when Redis is below (the cap
    /// bounds how long this instance may serve a copy that another one replaced; with L1 alone
    /// there is nothing to go stale against).
    fn l1_life(&self, ttl: Duration) -> Duration {
        if self.inner.l2.is_some() {
            ttl.min(self.inner.config.l1_ttl)
        } else {
            ttl
        }
    }

    /// Writes `value` under `key` in both levels. `ttl = None` takes the TTL from the pattern
    /// table. L1 is filled even when Redis fails; the Redis error is returned. A value over
    /// `max_value_size` is stored nowhere: [`CacheError::ValueTooLarge`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use cache_core::{Cache, CacheConfig, CacheError};
    /// let cache = Cache::new(CacheConfig::builder().max_value_size(1024).build().unwrap()).unwrap();
    /// let err = cache.set("k", &vec![0u8; 4096], None).await.unwrap_err();
    /// assert!(matches!(err, CacheError::ValueTooLarge { .. }));
    /// assert_eq!(cache.get::<Vec<u8>>("k").await.unwrap(), None);
    /// # }
    /// ```
    pub async fn set<T: CacheValue>(&self, key: &str, value: &T, ttl: Option<Duration>) -> Result<()> {
        let opts = LoadOptions {
            ttl,
            ..LoadOptions::default()
        };
        self.store(key, Fingerprint::of(key), value.clone(), &opts, None)
            .await
            .1
    }

    /// Writes both levels; returns the L1 entry (shared with single-flight waiters) and the
    /// outcome of the Redis write. A value that cannot be encoded or is too large goes nowhere
    /// (the entry is still returned, for the waiters of this load).
    ///
    /// `load` is where the load that produced the value started: then nothing is stored when an
    /// invalidation of the key overtook it ([`crate::guard`]). Without it this is a direct write,
    /// which itself overtakes the loads of this key in flight here.
    async fn store<T: CacheValue>(
        &self,
        key: &str,
        fp: Fingerprint,
        value: T,
        opts: &LoadOptions,
        load: Option<&LoadStart>,
    ) -> (Entry, Result<()>) {
        let ttl = self.resolve_ttl(key, opts.ttl, opts.adaptive);
        // Fail-safe entries outlive their TTL physically; readers go by the logical expiry.
        let grace = opts.stale_for.unwrap_or_default();
        let expires_at_ms = unix_ms().saturating_add(ttl.as_millis() as u64);
        let now = clock::now();
        match load {
            Some(start) if self.inner.log.overtaken(start.seq, fp, key) => {
                self.discarded(key);
                return (l1::entry(key, value, now, 0), Ok(()));
            }
            Some(_) => {}
            None => self.inner.log.record(Invalidated::Key(fp)),
        }
        let (bytes, size) = match self.encode_for_tiers(key, &value, expires_at_ms) {
            Ok(e) => e,
            Err(e) => return (l1::entry(key, value, now, 0), Err(e)),
        };
        self.inner.counters.sets.incr();
        let mut result = Ok(());
        if let (Some(l2), Some(bytes)) = (&self.inner.l2, bytes) {
            // A load's fill only refreshes other instances' L1; a direct write also overtakes
            // their loads in flight.
            let notice = match load {
                None => self.notice(&Message::Keys(vec![key.to_owned()])),
                Some(_) => self.notice(&Message::Filled(vec![key.to_owned()])),
            };
            let written = match load {
                None => self
                    .timed(Op::Set, l2.set(key, &bytes, ttl + grace, notice.as_ref()))
                    .await
                    .map(|()| true),
                Some(start) => {
                    self.guarded_write(l2, key, &bytes, ttl + grace, start, notice.as_ref())
                        .await
                }
            };
            match written {
                Ok(true) => {}
                Ok(false) => {
                    self.discarded(key);
                    return (l1::entry(key, value, now, 0), Ok(()));
                }
                Err(e) => {
                    self.record_error("set", key, &e);
                    result = Err(e);
                }
            }
        }
        let mut entry = l1::entry(key, value, now + self.l1_life(ttl), size as u64);
        if !grace.is_zero() {
            l1::keep_stale_until(&mut entry, now + ttl + grace);
        }
        if opts.use_l1 {
            if let Some(l1) = &self.inner.l1 {
                l1.insert(fp, entry.clone());
                // An invalidation records itself before it removes from L1: one that came
                // between the check above and this insert is seen now.
                if load.is_some_and(|start| self.inner.log.overtaken(start.seq, fp, key)) {
                    l1.remove_same(fp, &entry);
                    self.discarded(key);
                }
            }
        }
        (entry, result)
    }

    /// A load's Redis write, guarded by the markers it saw ([`crate::guard`]): `Ok(false)` when
    /// an invalidation overtook it. A load that could not read the markers (Redis failed then)
    /// or outlived them skips Redis and fills only L1 (`Ok(true)`).
    async fn guarded_write(
        &self,
        l2: &RedisL2,
        key: &str,
        bytes: &[u8],
        ttl: Duration,
        start: &LoadStart,
        notice: Option<&Notice>,
    ) -> Result<bool> {
        match &start.seen {
            Some(seen) if self.markers_still_live(l2, start) => Ok(self
                .timed(Op::Set, l2.guarded_set(&[(key, bytes, ttl, seen)], notice))
                .await?
                .first()
                .copied()
                .unwrap_or(false)),
            _ => {
                tracing::debug!(
                    key,
                    "load not written to Redis: its start markers are unknown or expired"
                );
                Ok(true)
            }
        }
    }

    /// Whether the markers a load saw are certainly still in Redis when its store runs: younger
    /// than the window, with room for the store's own timeout and its one retry.
    fn markers_still_live(&self, l2: &RedisL2, start: &LoadStart) -> bool {
        start.at.elapsed() + 2 * self.inner.config.command_timeout < l2.marker_ttl()
    }

    /// Counts (and traces) a load whose value an invalidation made stale before it was stored.
    fn discarded(&self, key: &str) {
        self.inner.counters.stale_discarded.incr();
        tracing::debug!(
            key,
            "an invalidation overtook this load: its value is returned, not stored"
        );
    }

    /// Where a load of `keys` starts, for [`store`](Self::store): the in-process number taken
    /// before the caller's reads, and the Redis markers read now, after its miss.
    async fn load_start(&self, seq: u64, keys: &[&str]) -> Vec<LoadStart> {
        // Before the markers are read: their lifetime is counted from when they could be set.
        let at = std::time::Instant::now();
        let seen: Vec<Option<Seen>> = match &self.inner.l2 {
            Some(l2) => match l2.guard_seen(keys).await {
                Ok(seen) => seen.into_iter().map(Some).collect(),
                Err(e) => {
                    self.record_error("guard", keys.first().copied().unwrap_or(""), &e);
                    vec![None; keys.len()]
                }
            },
            None => vec![None; keys.len()],
        };
        seen.into_iter().map(|seen| LoadStart { seq, seen, at }).collect()
    }

    /// Removes `key` from both levels; returns whether Redis held it (L1-only: whether L1 did).
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let fp = Fingerprint::of(key);
        // Only L1-only mode answers from L1; with Redis the answer is UNLINK's.
        let in_l1 = self.inner.l2.is_none() && self.inner.l1.as_ref().is_some_and(|l1| l1.get(fp).is_some());
        self.inner.log.record(Invalidated::Key(fp));
        if let Some(l1) = &self.inner.l1 {
            l1.remove(fp);
        }
        match &self.inner.l2 {
            Some(l2) => match self
                .timed(
                    Op::Delete,
                    l2.unlink_notify(&[key], self.notice(&Message::Keys(vec![key.to_owned()])).as_ref()),
                )
                .await
            {
                Ok(n) => Ok(n > 0),
                Err(e) => {
                    self.record_error("delete", key, &e);
                    Err(e)
                }
            },
            None => Ok(in_l1),
        }
    }

    /// Whether `key` is cached (L1, else Redis).
    pub async fn exists(&self, key: &str) -> Result<bool> {
        let fp = Fingerprint::of(key);
        if self.inner.l1.as_ref().is_some_and(|l1| l1.get(fp).is_some()) {
            return Ok(true);
        }
        match &self.inner.l2 {
            Some(l2) => l2
                .exists(key)
                .await
                .inspect_err(|e| self.record_error("exists", key, e)),
            None => Ok(false),
        }
    }

    /// Reads many keys: L1 first, then ONE `MGET` for the rest. Results are in input order.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::new(Default::default())?;
    /// cache.mset(&[("a", 1u8), ("b", 2u8)], None).await?;
    /// assert_eq!(cache.mget::<u8, _>(&["a", "x", "b"]).await?, vec![Some(1), None, Some(2)]);
    /// # Ok(()) }
    /// ```
    pub async fn mget<T: CacheValue, K: AsRef<str>>(&self, keys: &[K]) -> Result<Vec<Option<T>>> {
        let mut out: Vec<Option<T>> = Vec::with_capacity(keys.len());
        let mut missing: Vec<usize> = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let v = self.l1_get::<T>(Fingerprint::of(k.as_ref()));
            if v.is_none() {
                missing.push(i);
            }
            out.push(v);
        }
        let Some(l2) = &self.inner.l2 else {
            self.inner.counters.misses.add(missing.len() as u64);
            return Ok(out);
        };
        if missing.is_empty() {
            return Ok(out);
        }
        let miss_keys: Vec<&str> = missing.iter().map(|&i| keys[i].as_ref()).collect();
        let seq = self.inner.log.start();
        let values = match self.timed(Op::Mget, l2.mget(&miss_keys)).await {
            Ok(v) => v,
            Err(e) => {
                self.record_error("mget", miss_keys[0], &e);
                self.inner.counters.misses.add(missing.len() as u64);
                return Err(e);
            }
        };
        for (&i, bytes) in missing.iter().zip(values) {
            let key = keys[i].as_ref();
            match bytes.and_then(|b| self.decode::<T>(key, &b)) {
                Some((v, exp, len)) => {
                    self.inner.counters.l2_hits.incr();
                    let deadline = self.l1_deadline(exp);
                    self.fill_l1(key, Fingerprint::of(key), v.clone(), deadline, len, Some(seq));
                    out[i] = Some(v);
                }
                None => self.inner.counters.misses.incr(),
            }
        }
        Ok(out)
    }

    /// Writes many values in ONE pipelined round trip (`SET .. PX` each; `MSET` has no TTL).
    /// `ttl = None` takes each key's TTL from the pattern table.
    pub async fn mset<T: CacheValue, K: AsRef<str>>(
        &self,
        items: &[(K, T)],
        ttl: Option<Duration>,
    ) -> Result<()> {
        let now = unix_ms();
        let mut encoded: Vec<(&str, Vec<u8>, Duration)> = Vec::with_capacity(items.len());
        let mut first_error = None;
        for (k, v) in items {
            let key = k.as_ref();
            let ttl = self.resolve_ttl(key, ttl, None);
            let size = match self.encode_for_tiers(key, v, now.saturating_add(ttl.as_millis() as u64)) {
                Ok((bytes, size)) => {
                    if let Some(bytes) = bytes {
                        encoded.push((key, bytes, ttl));
                    }
                    size
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            self.inner.counters.sets.incr();
            let deadline = clock::now() + self.l1_life(ttl);
            let fp = Fingerprint::of(key);
            // A direct write overtakes the loads of this key in flight here.
            self.inner.log.record(Invalidated::Key(fp));
            self.fill_l1(key, fp, v.clone(), deadline, size, None);
        }
        let first_error = first_error.map_or(Ok(()), Err);
        let Some(l2) = &self.inner.l2 else {
            return first_error;
        };
        let refs: Vec<(&str, &[u8], Duration)> =
            encoded.iter().map(|(k, b, t)| (*k, b.as_slice(), *t)).collect();
        let notice = self.notice(&Message::Keys(refs.iter().map(|r| r.0.to_owned()).collect()));
        self.timed(Op::Mset, l2.mset(&refs, notice.as_ref()))
            .await
            .inspect_err(|e| {
                self.record_error("mset", refs.first().map_or("", |r| r.0), e);
            })?;
        first_error
    }

    /// Deletes the cache's entries matching a Redis glob (`resource:users:*`) from L1 and from
    /// Redis (`SCAN MATCH`, never `KEYS`, and a server-side check that unlinks only values with
    /// the cache's envelope: another program's keys under the same names are left alone).
    /// Returns the number of Redis keys deleted (L1-only: L1 entries). L1 is cleared even when
    /// Redis fails; the error is returned.
    pub async fn invalidate_pattern(&self, pattern: &str) -> Result<u64> {
        let p = Pattern::new(pattern)?;
        if p.is_literal() {
            self.inner
                .log
                .record(Invalidated::Key(Fingerprint::of(p.as_str())));
        } else {
            self.inner.log.record(Invalidated::Pattern(p.clone()));
        }
        let l1_removed = self
            .inner
            .l1
            .as_ref()
            .map_or(0, |l1| l1.remove_where(&|k| p.matches(k)));
        let Some(l2) = &self.inner.l2 else {
            return Ok(l1_removed);
        };
        let result = if p.is_literal() {
            let notice = self.notice(&Message::Keys(vec![p.as_str().to_owned()]));
            self.timed(Op::Invalidate, l2.unlink_notify(&[p.as_str()], notice.as_ref()))
                .await
        } else {
            // The epoch first: loads in flight anywhere then do not store what the scan removes.
            let removed = match l2.bump_epoch().await {
                Ok(()) => self.timed(Op::Invalidate, l2.unlink_matching(p.as_str())).await,
                Err(e) => Err(e),
            };
            // Tell the others even if the scan failed half-way: their copies may be stale.
            if let Some(n) = self.notice(&Message::Pattern(p.as_str().to_owned())) {
                if let Err(e) = l2.publish(&n).await {
                    self.record_error("publish", pattern, &e);
                }
            }
            removed
        };
        result.inspect_err(|e| self.record_error("invalidate_pattern", pattern, e))
    }

    /// Empties L1 and deletes the cache's entries in Redis (inside its namespace when it has one;
    /// by `SCAN`, so other clients are not blocked; only values with the cache's envelope, so
    /// another program's keys survive). Returns the count as
    /// [`invalidate_pattern`](Self::invalidate_pattern) does.
    pub async fn clear(&self) -> Result<u64> {
        self.inner.log.record(Invalidated::All);
        let l1_removed = self.inner.l1.as_ref().map_or(0, |l1| {
            let n = l1.len();
            l1.clear();
            n
        });
        match &self.inner.l2 {
            Some(l2) => {
                let removed = match l2.bump_epoch().await {
                    Ok(()) => l2.unlink_matching("*").await,
                    Err(e) => Err(e),
                };
                if let Some(n) = self.notice(&Message::Clear) {
                    if let Err(e) = l2.publish(&n).await {
                        self.record_error("publish", "*", &e);
                    }
                }
                removed.inspect_err(|e| self.record_error("clear", "*", e))
            }
            None => Ok(l1_removed),
        }
    }

    /// Returns the cached value or runs `load`, caches its result and returns it. Concurrent
    /// callers of a cold key run `load` once. Cache failures are logged and counted, never
    /// returned: the worst case is that `load` runs.
    pub async fn get_or_insert_with<T, F, Fut>(&self, key: &str, ttl: Option<Duration>, load: F) -> T
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let opts = LoadOptions {
            ttl,
            ..LoadOptions::default()
        };
        let r = self
            .load(
                key,
                Fingerprint::of(key),
                opts,
                |_: &T| true,
                || async { Ok::<T, Infallible>(load().await) },
            )
            .await;
        infallible(r)
    }

    /// Runs `load` now and stores its value (warmers, refresh-ahead, after a write): the value
    /// is stored unless an invalidation of `key` came while it was loading, in which case it is
    /// returned but not stored (it would be older than what the invalidation announced).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let cache = cache_core::Cache::new(Default::default()).unwrap();
    /// let v = cache
    ///     .refresh("static:motd", None, || async { Ok::<_, std::io::Error>("hello".to_string()) })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(cache.get::<String>("static:motd").await.unwrap(), Some(v));
    /// # }
    /// ```
    pub async fn refresh<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        load: F,
    ) -> std::result::Result<T, crate::RefreshError<E>>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = std::result::Result<T, E>>,
    {
        let seq = self.inner.log.start();
        let start = self.load_start(seq, &[key]).await.pop();
        let value = load().await.map_err(crate::RefreshError::Load)?;
        let opts = LoadOptions {
            ttl,
            ..LoadOptions::default()
        };
        let (_, stored) = self
            .store(key, Fingerprint::of(key), value.clone(), &opts, start.as_ref())
            .await;
        stored.map_err(crate::RefreshError::Cache)?;
        Ok(value)
    }

    /// Like [`get_or_insert_with`](Self::get_or_insert_with) for a fallible loader: only `Ok`
    /// is cached; an `Err` goes to this caller and is never cached or shared.
    pub async fn try_get_or_insert_with<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        load: F,
    ) -> Result<T, E>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let opts = LoadOptions {
            ttl,
            ..LoadOptions::default()
        };
        self.load(key, Fingerprint::of(key), opts, |_: &T| true, load)
            .await
    }

    /// The one loading path under every cached call: L1 → single flight → Redis → `load`.
    /// `keep` decides whether a loaded value is stored (e.g. not `None` under `skip_none`).
    pub(crate) async fn load<T, E, F, Fut>(
        &self,
        key: &str,
        fp: Fingerprint,
        opts: LoadOptions,
        keep: impl FnOnce(&T) -> bool,
        load: F,
    ) -> Result<T, E>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        if opts.use_l1 {
            if let Some(v) = self.hit::<T>(key, fp) {
                return Ok(v);
            }
        }
        self.load_after_miss(key, fp, opts, keep, load).await
    }

    /// An L1 hit, without any `async` machinery: the macros try this before building the
    /// loading future, which is large and costs more to set up than the hit itself.
    #[inline]
    pub(crate) fn hit<T: CacheValue>(&self, key: &str, fp: Fingerprint) -> Option<T> {
        self.hit_timed(key, fp).map(|(v, _)| v)
    }

    /// [`hit`](Self::hit) with the sampled duration, for the per-function statistics.
    #[inline]
    pub(crate) fn hit_timed<T: CacheValue, K: KeyText + ?Sized>(
        &self,
        key: &K,
        fp: Fingerprint,
    ) -> Option<(T, Option<Duration>)> {
        let hit = self.l1_get_timed::<T>(fp)?;
        self.inner.access.record(fp, key, true);
        Some(hit)
    }

    /// [`load`](Self::load) once L1 has missed: single flight → Redis → `load`.
    pub(crate) async fn load_after_miss<T, E, F, Fut>(
        &self,
        key: &str,
        fp: Fingerprint,
        opts: LoadOptions,
        keep: impl FnOnce(&T) -> bool,
        load: F,
    ) -> Result<T, E>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut keep = Some(keep);
        let outcome = self
            .inner
            .flights
            .run(fp, key, || self.load_miss(key, fp, opts, keep.take(), load))
            .await;
        match outcome {
            Outcome::Led(r) => r,
            Outcome::Joined(entry, load) => match entry.value.downcast_ref::<T>() {
                Some(v) => {
                    self.inner.counters.coalesced.incr();
                    self.inner.access.record(fp, key, true);
                    Ok(v.clone())
                }
                // Two call sites share this key with different types: load this one's own value
                // rather than hand out the wrong type.
                None => {
                    tracing::warn!(key, "key is shared by values of different types");
                    self.inner.counters.errors.incr();
                    load().await.map(|(v, _)| v)
                }
            },
        }
    }

    async fn load_miss<T, E, F, Fut>(
        &self,
        key: &str,
        fp: Fingerprint,
        opts: LoadOptions,
        keep: Option<impl FnOnce(&T) -> bool>,
        load: F,
    ) -> Result<(T, Share), E>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        // Taken before the Redis read: an invalidation from now on keeps this load from storing.
        let seq = self.inner.log.start();
        match self.l2_read::<T>(key).await {
            Ok(Some(found)) => return Ok(self.l2_hit(key, fp, &opts, found, seq)),
            Ok(None) => {}
            Err(e) => self.record_error("get", key, &e),
        }
        // Across instances: one loads, the others wait for its value in Redis (bounded).
        let mut lock = None;
        if let (Some(lock_ttl), Some(_)) = (self.inner.config.distributed_lock, &self.inner.l2) {
            let name = format!("flight:{key}");
            match self.try_lock(&name, lock_ttl).await {
                Ok(Some(token)) => lock = Some((name, token)),
                Ok(None) => match self.wait_for_other_instance::<T>(key, &name, lock_ttl).await {
                    Waited::Value(found) => return Ok(self.l2_hit(key, fp, &opts, found, seq)),
                    Waited::Lead(token) => lock = Some((name, token)),
                    Waited::GaveUp => {}
                },
                Err(e) => self.record_error("lock", key, &e),
            }
        }
        self.inner.counters.misses.incr();
        self.inner.counters.loader_calls.incr();
        self.inner.access.record(fp, key, false);
        let start = self.load_start(seq, &[key]).await.pop();
        let loaded = load().await;
        let result = match loaded {
            Ok(value) => {
                let share = if keep.is_none_or(|keep| keep(&value)) {
                    Share::Entry(self.store(key, fp, value.clone(), &opts, start.as_ref()).await.0)
                } else {
                    Share::Later {
                        expires_at: clock::now(),
                        bytes: 0,
                    }
                };
                Ok((value, share))
            }
            Err(e) => Err(e),
        };
        if let Some((name, token)) = lock {
            if let Err(e) = self.release_lock(&name, &token).await {
                self.record_error("unlock", key, &e);
            }
        }
        result
    }

    /// Counts an L2 hit and fills L1 with it.
    fn l2_hit<T: CacheValue>(
        &self,
        key: &str,
        fp: Fingerprint,
        opts: &LoadOptions,
        found: (T, u64, usize),
        read_since: u64,
    ) -> (T, Share) {
        let (v, exp, len) = found;
        self.inner.counters.l2_hits.incr();
        self.inner.access.record(fp, key, true);
        let deadline = self.l1_deadline(exp);
        let share = if opts.use_l1 && self.inner.l1.is_some() {
            Share::Entry(self.fill_l1(key, fp, v.clone(), deadline, len, Some(read_since)))
        } else {
            Share::Later {
                expires_at: deadline,
                bytes: len as u64,
            }
        };
        (v, share)
    }

    /// Polls Redis while another instance loads `key`, for at most `bound`. If the other
    /// instance's lock goes away without a value (its load failed or it died), this one takes
    /// the lock and loads.
    async fn wait_for_other_instance<T: CacheValue>(
        &self,
        key: &str,
        lock: &str,
        bound: Duration,
    ) -> Waited<T> {
        let deadline = tokio::time::Instant::now() + bound;
        let mut pause = Duration::from_millis(5);
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
            match self.l2_read::<T>(key).await {
                Ok(Some(found)) => {
                    self.inner.counters.coalesced_remote.incr();
                    return Waited::Value(found);
                }
                Ok(None) => {}
                Err(_) => return Waited::GaveUp,
            }
            match self.try_lock(lock, bound).await {
                Ok(Some(token)) => return Waited::Lead(token),
                Ok(None) => {}
                Err(_) => return Waited::GaveUp,
            }
        }
        Waited::GaveUp
    }

    /// A value kept past its TTL for fail-safe: L1's stale copy, else Redis's.
    async fn stale_copy<T: CacheValue>(&self, key: &str, fp: Fingerprint) -> Option<T> {
        if let Some(e) = self.inner.l1.as_ref().and_then(|l1| l1.get_stale(fp)) {
            if let Some(v) = e.value.downcast_ref::<T>() {
                return Some(v.clone());
            }
        }
        let l2 = self.inner.l2.as_ref()?;
        let bytes = l2.get(key).await.ok()??;
        self.decode_any::<T>(key, &bytes).map(|(v, _, _)| v)
    }

    /// [`load_after_miss`](Self::load_after_miss) with fail-safe: when the loader fails, or
    /// outruns `opts.soft_timeout`, and a stale value is at hand, the stale value is served (and
    /// not stored again as fresh); a soft-timed-out loader finishes in the background and stores
    /// its result.
    pub(crate) async fn load_fail_safe<T, E, F, Fut>(
        &self,
        key: &str,
        fp: Fingerprint,
        opts: LoadOptions,
        load: F,
    ) -> Result<T, E>
    where
        T: CacheValue,
        E: std::fmt::Debug + Send + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        let served_stale = std::sync::atomic::AtomicBool::new(false);
        let keep = |_: &T| !served_stale.load(std::sync::atomic::Ordering::Relaxed);
        let loader = || async {
            let stale = self.stale_copy::<T>(key, fp).await;
            let Some(stale) = stale else {
                return load().await;
            };
            // A load that may finish in the background stores there, guarded from its own start.
            let start = match opts.soft_timeout {
                Some(_) => self.load_start(self.inner.log.start(), &[key]).await.pop(),
                None => None,
            };
            let mut fut = Box::pin(load());
            let outcome = match opts.soft_timeout {
                Some(soft) => tokio::time::timeout(soft, &mut fut).await.ok(),
                None => Some(fut.as_mut().await),
            };
            match outcome {
                Some(Ok(v)) => Ok(v),
                Some(Err(e)) => {
                    tracing::warn!(key, error = ?e, "loader failed; serving the stale value (fail-safe)");
                    self.inner.counters.stale_served.incr();
                    served_stale.store(true, std::sync::atomic::Ordering::Relaxed);
                    Ok(stale)
                }
                None => {
                    tracing::info!(key, "loader exceeded its soft timeout; serving the stale value");
                    self.inner.counters.stale_served.incr();
                    served_stale.store(true, std::sync::atomic::Ordering::Relaxed);
                    let (this, key) = (self.clone(), key.to_owned());
                    tokio::spawn(async move {
                        match fut.await {
                            Ok(v) => {
                                // store() logs and counts its own failures.
                                if let Some(start) = start {
                                    let _ = this.store(&key, fp, v, &opts, Some(&start)).await;
                                }
                            }
                            Err(e) => {
                                tracing::warn!(key, error = ?e, "background load after soft timeout failed")
                            }
                        }
                    });
                    Ok(stale)
                }
            }
        };
        self.load_after_miss(key, fp, opts, keep, loader).await
    }

    /// Memory per key prefix (L1 from its entries; Redis from `MEMORY USAGE` of up to
    /// `samples_per_prefix` keys per prefix), the ten largest L1 entries, and what compression did.
    pub async fn memory_profile(&self, samples_per_prefix: usize) -> crate::perf::MemoryProfile {
        use crate::perf::{prefix_of, LargeEntry, MemoryProfile, PrefixMemory};
        let mut by_prefix: std::collections::BTreeMap<String, PrefixMemory> = Default::default();
        let mut largest: Vec<LargeEntry> = Vec::new();
        let new_prefix = |p: &str| PrefixMemory {
            prefix: p.to_owned(),
            l1_entries: 0,
            l1_bytes: 0,
            redis_sampled_keys: 0,
            redis_sampled_bytes: 0,
        };
        if let Some(l1) = &self.inner.l1 {
            l1.visit(&mut |key, bytes| {
                let p = prefix_of(key);
                let e = by_prefix.entry(p.to_owned()).or_insert_with(|| new_prefix(p));
                e.l1_entries += 1;
                e.l1_bytes += bytes;
                largest.push(LargeEntry {
                    key: key.to_owned(),
                    bytes,
                });
            });
        }
        largest.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.key.cmp(&b.key)));
        largest.truncate(10);
        let mut redis_used_memory = None;
        if let Some(l2) = &self.inner.l2 {
            // Prefixes known from L1 and from the TTL table.
            for p in self.inner.config.ttl_patterns.keys() {
                let p = prefix_of(p).trim_end_matches('*');
                if !p.is_empty() {
                    by_prefix.entry(p.to_owned()).or_insert_with(|| new_prefix(p));
                }
            }
            for (p, e) in by_prefix.iter_mut() {
                let pattern = format!("{}:*", crate::pattern::escape(p));
                if let Ok((n, bytes)) = l2.sample_memory(&pattern, samples_per_prefix).await {
                    e.redis_sampled_keys = n;
                    e.redis_sampled_bytes = bytes;
                }
            }
            redis_used_memory = l2.info().await.ok().map(|i| i.used_memory);
        }
        let mut prefixes: Vec<PrefixMemory> = by_prefix.into_values().collect();
        prefixes.sort_by(|a, b| b.l1_bytes.cmp(&a.l1_bytes).then_with(|| a.prefix.cmp(&b.prefix)));
        let c = &self.inner.counters;
        MemoryProfile {
            prefixes,
            largest,
            l2_written_raw_bytes: c.raw_bytes.get(),
            l2_written_stored_bytes: c.stored_bytes.get(),
            redis_used_memory,
        }
    }

    /// Reads many keys and computes only the missing ones: one L1 pass, ONE `MGET` for the rest,
    /// `load` called once with exactly the missing keys, ONE guarded write of what it returned
    /// (a value an invalidation overtook is returned but not stored: see the README's consistency section).
    /// Results follow the input order; a key `load` did not return is `None`. Works in L1-only
    /// mode. Redis failures fall back to computing (logged, counted); `load`'s error is returned.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::collections::HashMap;
    /// let cache = cache_core::Cache::new(Default::default()).unwrap();
    /// cache.set("resource:users:1", &"ann".to_string(), None).await.unwrap();
    /// let keys = ["resource:users:1", "resource:users:2"];
    /// let got = cache
    ///     .get_many_or_compute(&keys, None, |missing: Vec<String>| async move {
    ///         assert_eq!(missing, vec!["resource:users:2"]);
    ///         Ok::<_, std::convert::Infallible>(HashMap::from([(missing[0].clone(), "bob".to_string())]))
    ///     })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(got, vec![Some("ann".to_string()), Some("bob".to_string())]);
    /// # }
    /// ```
    pub async fn get_many_or_compute<T, E, K, F, Fut>(
        &self,
        keys: &[K],
        ttl: Option<Duration>,
        load: F,
    ) -> Result<Vec<Option<T>>, E>
    where
        T: CacheValue,
        K: AsRef<str>,
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = Result<std::collections::HashMap<String, T>, E>>,
    {
        self.batch(keys, ttl, |missing: Vec<usize>| async move {
            let wanted: Vec<String> = missing.iter().map(|&i| keys[i].as_ref().to_owned()).collect();
            let mut found = load(wanted.clone()).await?;
            Ok(wanted.iter().map(|k| found.remove(k)).collect())
        })
        .await
    }

    /// The batch path behind [`get_many_or_compute`](Self::get_many_or_compute) and
    /// `#[cache_batch]`: `load` gets the indices of the missing keys and returns their values in
    /// that order.
    pub(crate) async fn batch<T, E, K, F, Fut>(
        &self,
        keys: &[K],
        ttl: Option<Duration>,
        load: F,
    ) -> Result<Vec<Option<T>>, E>
    where
        T: CacheValue,
        K: AsRef<str>,
        F: FnOnce(Vec<usize>) -> Fut,
        Fut: Future<Output = Result<Vec<Option<T>>, E>>,
    {
        let seq = self.inner.log.start();
        let mut out = match self.mget::<T, K>(keys).await {
            Ok(v) => v,
            // mget logged and counted the failure: compute everything.
            Err(_) => (0..keys.len()).map(|_| None).collect(),
        };
        let missing: Vec<usize> = (0..keys.len()).filter(|&i| out[i].is_none()).collect();
        if missing.is_empty() {
            return Ok(out);
        }
        self.inner.counters.loader_calls.incr();
        let missing_keys: Vec<&str> = missing.iter().map(|&i| keys[i].as_ref()).collect();
        let starts = self.load_start(seq, &missing_keys).await;
        let loaded = load(missing.clone()).await?;
        let mut to_store: Vec<(&str, T, &LoadStart)> = Vec::with_capacity(missing.len());
        for ((i, v), start) in missing.into_iter().zip(loaded).zip(&starts) {
            if let Some(v) = v {
                to_store.push((keys[i].as_ref(), v.clone(), start));
                out[i] = Some(v);
            }
        }
        // Logs and counts its own failures: the computed values are returned regardless.
        self.store_loaded_many(to_store, ttl).await;
        Ok(out)
    }

    /// [`store`](Self::store) for the values of one batch load: each guarded by its key's
    /// start, all written to Redis in one script call.
    async fn store_loaded_many<T: CacheValue>(
        &self,
        items: Vec<(&str, T, &LoadStart)>,
        ttl: Option<Duration>,
    ) {
        let now_ms = unix_ms();
        let mut kept: Vec<Pending<'_, T>> = Vec::with_capacity(items.len());
        for (key, value, start) in items {
            let fp = Fingerprint::of(key);
            if self.inner.log.overtaken(start.seq, fp, key) {
                self.discarded(key);
                continue;
            }
            let ttl = self.resolve_ttl(key, ttl, None);
            let expires_at_ms = now_ms.saturating_add(ttl.as_millis() as u64);
            if let Ok((bytes, size)) = self.encode_for_tiers(key, &value, expires_at_ms) {
                kept.push(Pending {
                    key,
                    fp,
                    value,
                    start,
                    ttl,
                    bytes,
                    size,
                });
            }
        }
        let mut stored = vec![true; kept.len()];
        if let Some(l2) = &self.inner.l2 {
            // Loads whose markers are unknown or expired skip Redis (see `guarded_write`).
            let mut at = Vec::new();
            let mut items: Vec<GuardedItem<'_>> = Vec::new();
            for (i, p) in kept.iter().enumerate() {
                if let (Some(seen), Some(bytes)) = (&p.start.seen, &p.bytes) {
                    if self.markers_still_live(l2, p.start) {
                        at.push(i);
                        items.push((p.key, bytes, p.ttl, seen));
                    }
                }
            }
            if !items.is_empty() {
                let notice = self.notice(&Message::Filled(items.iter().map(|i| i.0.to_owned()).collect()));
                match self
                    .timed(Op::Mset, l2.guarded_set(&items, notice.as_ref()))
                    .await
                {
                    Ok(flags) => {
                        for (i, ok) in at.into_iter().zip(flags) {
                            stored[i] = ok;
                        }
                    }
                    Err(e) => self.record_error("mset", items[0].0, &e),
                }
            }
        }
        let now = clock::now();
        for (p, ok) in kept.into_iter().zip(stored) {
            if !ok {
                self.discarded(p.key);
                continue;
            }
            self.inner.counters.sets.incr();
            let deadline = now + self.l1_life(p.ttl);
            self.fill_l1(p.key, p.fp, p.value, deadline, p.size, Some(p.start.seq));
        }
    }

    /// The `n` most-read keys with their read counts and hit ratios (see [`crate::access`]).
    pub fn access_patterns(&self, n: usize) -> Vec<AccessPattern> {
        self.inner.access.top(n)
    }

    /// Estimated reads of `key` so far (0 when not tracked).
    pub fn access_count(&self, key: &str) -> u64 {
        self.inner.access.count(Fingerprint::of(key))
    }

    /// Where predicted next keys are sent (bounded; suggestions are dropped when it is full).
    /// The warmer installs one for predictive loading; `None` stops predictions.
    pub fn set_prediction_sink(&self, sink: Option<tokio::sync::mpsc::Sender<String>>) {
        self.inner.access.set_prediction_sink(sink);
    }

    /// Time until `key` expires: Redis `PTTL` in two-level mode, the L1 entry's deadline in
    /// L1-only mode. `None` when absent or without expiry.
    pub async fn ttl_remaining(&self, key: &str) -> Result<Option<Duration>> {
        match &self.inner.l2 {
            Some(l2) => Ok(l2.pttl(key).await?),
            None => Ok(self
                .inner
                .l1
                .as_ref()
                .and_then(|l1| l1.get(Fingerprint::of(key)))
                .map(|e| e.expires_at.saturating_duration_since(clock::now()))),
        }
    }

    /// Takes a named lock for `ttl` if nobody holds it (Redis `SET NX PX` with a random token, so
    /// instances sharing the Redis agree; L1-only mode: a lock in this process). Returns the
    /// token to pass to [`release_lock`](Self::release_lock), or `None` when it is held.
    pub async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<String>> {
        let token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let key = format!("lock:{name}");
        if let Some(l2) = &self.inner.l2 {
            return Ok(l2.set_nx(&key, &token, ttl).await?.then_some(token));
        }
        let mut locks = self.inner.local_locks.lock();
        let now = clock::now();
        if locks.get(&key).is_some_and(|(_, until)| *until > now) {
            return Ok(None);
        }
        locks.insert(key, (token.clone(), now + ttl));
        Ok(Some(token))
    }

    /// Releases a lock taken by [`try_lock`](Self::try_lock), only if `token` still holds it (a
    /// lock that expired and was taken by another instance is left alone).
    pub async fn release_lock(&self, name: &str, token: &str) -> Result<bool> {
        let key = format!("lock:{name}");
        if let Some(l2) = &self.inner.l2 {
            return l2.del_if_eq(&key, token).await;
        }
        let mut locks = self.inner.local_locks.lock();
        if locks.get(&key).is_some_and(|(t, _)| t == token) {
            locks.remove(&key);
            return Ok(true);
        }
        Ok(false)
    }

    /// Latency per operation and level, compression and memory figures.
    pub async fn performance(&self) -> Performance {
        let c = &self.inner.counters;
        let (raw, stored) = (c.raw_bytes.get(), c.stored_bytes.get());
        let info = match &self.inner.l2 {
            Some(l2) => l2.info().await.ok(),
            None => None,
        };
        let (l1_entries, l1_bytes) = self.inner.l1.as_ref().map_or((0, 0), |l1| (l1.len(), l1.bytes()));
        Performance {
            operations: self.inner.latency.snapshot(),
            compression: CompressionStats {
                compressions: c.compressions.get(),
                bytes_saved: c.bytes_saved.get(),
                raw_bytes: raw,
                stored_bytes: stored,
                ratio: if raw == 0 { 1.0 } else { stored as f64 / raw as f64 },
            },
            memory: MemoryStats {
                l1_entries,
                l1_bytes,
                redis_used_memory: info.as_ref().map(|i| i.used_memory),
                redis_used_memory_human: info.map(|i| i.used_memory_human),
            },
            functions: crate::perf::functions(),
        }
    }

    /// Counters, L1 size and Redis `INFO` (skipped in L1-only mode or when Redis is down).
    pub async fn stats(&self) -> Stats {
        let info = match &self.inner.l2 {
            Some(l2) => l2.info().await.ok(),
            None => None,
        };
        let (len, bytes) = self.inner.l1.as_ref().map_or((0, 0), |l1| (l1.len(), l1.bytes()));
        let mut stats = self.inner.counters.snapshot(len, bytes, info);
        stats.adaptive_ttls = self.inner.adaptive_choices.lock().iter().cloned().collect();
        stats.breaker = self.inner.l2.as_ref().map(RedisL2::breaker_state);
        stats
    }

    /// Reachability and latency of Redis, pool status, L1 size.
    pub async fn health(&self) -> Health {
        let (l1_entries, l1_bytes) = self.inner.l1.as_ref().map_or((0, 0), |l1| (l1.len(), l1.bytes()));
        let Some(l2) = &self.inner.l2 else {
            return Health {
                healthy: true,
                mode: Mode::L1Only,
                l1_entries,
                l1_bytes,
                redis: None,
            };
        };
        let ping = l2.ping().await;
        let info = if ping.is_ok() { l2.info().await.ok() } else { None };
        let mut warnings = Vec::new();
        if let Some(i) = &info {
            if i.maxmemory == 0 && i.maxmemory_policy == "noeviction" {
                warnings.push(
                    "maxmemory is unlimited with policy noeviction: Redis grows until the host runs out \
                     of memory; set maxmemory and an allkeys-* or volatile-* policy"
                        .to_owned(),
                );
            }
        }
        let redis = RedisHealth {
            url: l2.display_url(),
            reachable: ping.is_ok(),
            latency_ms: ping.as_ref().ok().map(|d| d.as_secs_f64() * 1000.0),
            error: ping.as_ref().err().map(ToString::to_string),
            breaker: l2.breaker_state(),
            pool: l2.pool_status(),
            maxmemory: info.as_ref().map(|i| i.maxmemory),
            maxmemory_policy: info.map(|i| i.maxmemory_policy),
            warnings,
        };
        Health {
            healthy: redis.reachable,
            mode: Mode::TwoLevel,
            l1_entries,
            l1_bytes,
            redis: Some(redis),
        }
    }
}
