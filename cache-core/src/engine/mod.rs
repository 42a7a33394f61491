//! The engine: L1, the remote tier, the codec, the counters and the invalidation log, and the
//! rules by which values move between them. Everything here works on erased values
//! ([`crate::values`]): it is compiled once, whatever the cached types.
//!
//! - [`read`]: reads from L1 and the remote tier, and the one rule that fills L1 ([`Engine::write_l1`]);
//! - [`write`]: stores (direct writes and guarded loads), encoding and its limits;
//! - [`remove`]: deletes, pattern invalidation, clear, and what other instances tell us;
//! - [`background`]: the tasks a cache owns (health checks, the invalidation listener).
//!
//! It may call the tiers ([`crate::l1`], [`crate::tier`]), the codec, the guard log and the
//! counters; it never calls the loader or the facade.

mod background;
pub(crate) mod disk;
mod read;
mod remove;
mod sync_fill;
mod tagged;
mod write;

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;

pub(crate) use background::Background;
pub(crate) use read::Live;

use crate::access::AccessTracker;
use crate::analytics::Analytics;
use crate::anomaly::{Events, Signals};
use crate::bus::{self, Message};
use crate::clock::{self, Instant};
use crate::codec::Codec;
use crate::config::{AutoTtl, CacheConfig, TtlRules};
use crate::disk::Disk;
use crate::error::{CacheError, Result};
use crate::flight::Flights;
use crate::guard::InvalidationLog;
use crate::key::Fingerprint;
use crate::l1::{Store, L1};
use crate::latency::{Latencies, Level, Op};
use crate::security::Security;
use crate::stats::Counters;
use crate::strategy::{Adaptive, AdaptiveChoice, AdaptiveTtl};
use crate::tags::Tags;
use crate::tier::{Notice, RemoteTier};

/// Adaptive bounds for `strategy = adaptive` on a cache configured without them.
static DEFAULT_ADAPTIVE: std::sync::LazyLock<AdaptiveTtl> = std::sync::LazyLock::new(AdaptiveTtl::default);

/// Adaptive TTL decisions listed in the stats.
const ADAPTIVE_CHOICES_KEPT: usize = 32;

/// Everything a cache shares between its clones.
pub(crate) struct Engine {
    pub(crate) config: CacheConfig,
    pub(crate) ttl_rules: TtlRules,
    pub(crate) codec: Codec,
    /// Encryption of values and obfuscation of names ([`crate::security`]).
    pub(crate) security: Arc<Security>,
    pub(crate) l1: Option<L1>,
    pub(crate) remote: Option<Box<dyn RemoteTier>>,
    /// The disk tier (L3), when configured ([`crate::disk`]).
    pub(crate) disk: Option<Arc<Disk>>,
    pub(crate) flights: Flights,
    pub(crate) counters: Counters,
    pub(crate) access: AccessTracker,
    /// Learned TTLs ([`crate::analytics`]).
    pub(crate) analytics: Analytics,
    pub(crate) latency: Latencies,
    adaptive: Option<Adaptive>,
    pub(crate) adaptive_choices: Mutex<VecDeque<AdaptiveChoice>>,
    /// This instance's id on the invalidation channel.
    origin: u64,
    /// The invalidation channel, when other instances are told about writes.
    channel: Option<String>,
    /// The channel listened on, and on which tag invalidations are told: also without L1, so
    /// that tag states stay known ([`crate::tags`]).
    bus_channel: Option<String>,
    /// Tag states ([`crate::tags`]).
    pub(crate) tags: Tags,
    /// Tag invalidations per tag prefix (the text before the first `:`), for the stats.
    pub(crate) tag_invalidations: Mutex<HashMap<String, u64>>,
    pub(crate) local_locks: Mutex<HashMap<String, (String, Instant)>>,
    /// Invalidations numbered for the loads in flight ([`crate::guard`]).
    pub(crate) log: InvalidationLog,
    /// Entries L1 evicted for the disk tier, until the task that writes them takes the receiver.
    pub(crate) spilled: Mutex<Option<disk::SpillRx>>,
    /// Barriers for the spill task ([`Engine::flush_spills`]).
    spill_tx: Option<disk::SpillTx>,
    /// Whether L1 hands evicted entries to the disk tier (some key's write policy says so).
    l1_spills: bool,
    /// Key prefixes already warned about for values over `max_value_size`.
    too_large_warned: Mutex<HashSet<String>>,
    /// The tasks this cache runs; aborted when the last clone drops.
    pub(crate) background: Background,
    /// The cache-off switch ([`CacheConfig::enabled`]): read with one relaxed load on every
    /// path that would touch a tier.
    enabled: AtomicBool,
    /// What anomaly detection counts on the miss and remote paths ([`crate::anomaly`]).
    pub(crate) signals: Signals,
    /// The anomalies raised ([`crate::anomaly`]).
    pub(crate) anomalies: Events,
}

/// Milliseconds since the Unix epoch (the codec's expiry clock).
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Engine {
    /// Builds the engine over the tiers the configuration names. Starts nothing.
    pub(crate) fn new(config: CacheConfig) -> Result<Self> {
        config.validate()?;
        let ttl_rules = TtlRules::compile(&config)?;
        let security = Arc::new(Security::new(&config.security, config.namespace.as_deref())?);
        let remote = remote_tier(&config, &security)?;
        let disk = match &config.l3.dir {
            Some(_) => Some(Disk::open(&config.l3, remote.is_none(), config.max_value_size)?),
            None => None,
        };
        let bus_channel = match &remote {
            Some(r) if config.l1_invalidation && r.bus().is_some() => {
                Some(r.channel_name(config.invalidation_channel.as_deref()))
            }
            _ => None,
        };
        // Known tokens are trusted once the listener has subscribed (it says so).
        let tags = Tags::new(false, config.tag_ttl);
        let (spill, spill_tx, spilled) = match (&disk, config.l1_enabled && config.l3.spills()) {
            (Some(d), true) => {
                let (spill, tx, rx) = disk::spill_channel(d);
                (Some(spill), Some(tx), Some(rx))
            }
            _ => (None, None, None),
        };
        let (entries, bytes) = (config.max_memory_cache_size, config.l1_max_bytes);
        let l1 = if config.l1_enabled {
            let store = Store::build(config.strategy.eviction(), entries, bytes, spill)?;
            Some(L1::new(store, tags.generation()))
        } else {
            None
        };
        let adaptive = config.strategy.adaptive().map(Adaptive::compile).transpose()?;
        // Others are told about writes when they may hold copies: in L1, or on disk.
        let channel = bus_channel
            .clone()
            .filter(|_| config.l1_enabled || config.l3.dir.is_some());
        let signals = Signals::new(config.anomaly.enabled, config.anomaly.max_prefixes);
        let access = AccessTracker::new(config.access_sample_rate, config.access_capacity)
            .with_prefixes(signals.on().then(|| signals.prefixes.clone()));
        let codec = Codec::new(
            config.compression_threshold,
            config.compression_level,
            config.max_value_size,
        );
        Ok(Engine {
            ttl_rules,
            codec,
            security,
            l1,
            remote,
            disk,
            flights: Flights::default(),
            counters: Counters::default(),
            analytics: Analytics::new(&config)?,
            access,
            local_locks: Default::default(),
            too_large_warned: Default::default(),
            log: InvalidationLog::default(),
            l1_spills: spilled.is_some(),
            spill_tx,
            spilled: Mutex::new(spilled),
            latency: Latencies::new()?,
            adaptive,
            adaptive_choices: Default::default(),
            origin: fastrand::u64(..),
            channel,
            tags,
            tag_invalidations: Default::default(),
            bus_channel,
            background: Background::default(),
            enabled: AtomicBool::new(config.enabled),
            signals,
            anomalies: Events::new(config.anomaly.history),
            config,
        })
    }

    /// An engine over a given remote tier (the unit tests' fake).
    #[cfg(test)]
    pub(crate) fn with_remote(config: CacheConfig, remote: Box<dyn RemoteTier>) -> Result<Self> {
        let mut config = config;
        config.redis_url = None;
        config.redis_sentinel_urls.clear();
        config.redis_cluster_urls.clear();
        let mut e = Engine::new(config)?;
        e.remote = Some(remote);
        Ok(e)
    }

    /// Whether the cache is on ([`CacheConfig::enabled`]). Relaxed: a call that races with the
    /// switch may go either way, and the switch makes no promise about calls in flight.
    #[inline]
    pub(crate) fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Turns the cache on or off; returns whether it was on. Off, nothing is read or filled;
    /// invalidations still run, so that the other instances (and this one, later) never serve
    /// what a write made while off replaced. Back on, first everything a load in flight could
    /// still store is refused and L1 is emptied (as after a lost bus connection), then reads
    /// resume: a load that began before the switch went off and ends after it is back on
    /// stores nothing.
    pub(crate) fn set_enabled(&self, on: bool) -> bool {
        if on {
            if self.enabled() {
                return true;
            }
            self.forget_all();
            self.enabled.store(true, Ordering::SeqCst);
            tracing::warn!("cache turned on: L1 emptied, loads begun before dropped; reads and fills resume");
            return false;
        }
        let was = self.enabled.swap(false, Ordering::SeqCst);
        if was {
            tracing::warn!(
                "cache turned off: every cached call runs its body; nothing is read or filled (invalidations still run)"
            );
        }
        was
    }

    /// The TTL a key gets when none is given: most specific pattern, else the default.
    pub(crate) fn ttl_for(&self, key: &str) -> Duration {
        self.ttl_rules.resolve(key)
    }

    /// The TTL of a write: explicit, else learned where `auto` applies (the call's, else a
    /// `ttl_auto` pattern's; returned with the TTL), else adaptive where it applies, else the
    /// pattern table.
    pub(crate) fn resolve_ttl(
        &self,
        key: &str,
        explicit: Option<Duration>,
        adaptive: Option<bool>,
        auto: Option<AutoTtl>,
    ) -> (Duration, Option<AutoTtl>) {
        if let Some(t) = explicit {
            return (t, None);
        }
        if let Some(auto) = self.analytics.auto_for(key, auto) {
            return (self.analytics.ttl(key, self.ttl_for(key), &auto), Some(auto));
        }
        (self.unlearned_ttl(key, adaptive), None)
    }

    /// [`resolve_ttl`](Self::resolve_ttl) without an explicit or learned TTL.
    fn unlearned_ttl(&self, key: &str, adaptive: Option<bool>) -> Duration {
        let settings = match (&self.adaptive, adaptive) {
            (_, Some(false)) => None,
            (Some(a), Some(true)) => Some(&a.settings),
            (Some(a), None) if a.applies(key) => Some(&a.settings),
            (None, Some(true)) => Some(&*DEFAULT_ADAPTIVE),
            _ => None,
        };
        let Some(settings) = settings else {
            return self.ttl_for(key);
        };
        let reads = self.access.count(Fingerprint::of(key));
        let ttl = settings.ttl_for(reads);
        let mut choices = self.adaptive_choices.lock();
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

    /// The notice of a tag invalidation: sent whenever there is a bus, L1 or not.
    pub(crate) fn tag_notice(&self, msg: &Message) -> Option<Notice> {
        self.bus_channel.as_ref().map(|channel| Notice {
            channel: channel.clone(),
            text: bus::seal(bus::encode(self.origin, msg), self.security.obfuscator()),
        })
    }

    /// The notice of `msg` for other instances, when they are told.
    pub(crate) fn notice(&self, msg: &Message) -> Option<Notice> {
        self.channel.as_ref().map(|channel| Notice {
            channel: channel.clone(),
            text: bus::seal(bus::encode(self.origin, msg), self.security.obfuscator()),
        })
    }

    /// Logs and counts a cache failure the caller falls back from.
    pub(crate) fn record_error(&self, op: &'static str, key: &str, err: &CacheError) {
        if matches!(err, CacheError::CircuitOpen) {
            self.counters.l2_skipped.incr();
            tracing::debug!(op, key, "redis skipped: circuit breaker open");
        } else {
            self.counters.errors.incr();
            tracing::warn!(op, key, error = %err, "cache error; falling back");
        }
    }

    /// Runs one remote call and records its latency. Under `tokio-clock` on tokio's clock, so
    /// a slow tier simulated under a paused clock registers (the anomaly simulator).
    pub(crate) async fn timed<R>(&self, op: Op, fut: impl Future<Output = R>) -> R {
        #[cfg(feature = "tokio-clock")]
        let t = tokio::time::Instant::now();
        #[cfg(not(feature = "tokio-clock"))]
        let t = std::time::Instant::now();
        let r = fut.await;
        let took = t.elapsed();
        self.latency.record(op, Level::L2, took);
        self.signals.l2_call(matches!(op, Op::Get | Op::Mget), took);
        r
    }

    /// Counts a read no tier answered (and tells anomaly detection its key).
    pub(crate) fn count_miss(&self, key: &str, fp: Fingerprint) {
        self.counters.misses.incr();
        self.signals.miss(key, fp);
    }

    /// Counts (and traces) a load whose value an invalidation made stale before it was stored.
    pub(crate) fn discarded(&self, key: &str) {
        self.counters.stale_discarded.incr();
        tracing::debug!(
            key,
            "an invalidation overtook this load: its value is returned, not stored"
        );
    }

    /// L1 and its byte figure: (entries, bytes).
    pub(crate) fn l1_size(&self) -> (u64, u64) {
        self.l1.as_ref().map_or((0, 0), |l1| (l1.len(), l1.bytes()))
    }

    /// The clock the L1 deadlines are on.
    pub(crate) fn now(&self) -> Instant {
        clock::now()
    }
}

/// The remote tier the configuration names, if any.
#[cfg(feature = "redis")]
fn remote_tier(config: &CacheConfig, security: &Arc<Security>) -> Result<Option<Box<dyn RemoteTier>>> {
    Ok(match crate::redis::RedisL2::new(config, security.clone())? {
        Some(l2) => Some(Box::new(l2)),
        None => None,
    })
}

/// Without the `redis` feature a Redis URL is a configuration error, never a silent L1-only run.
#[cfg(not(feature = "redis"))]
fn remote_tier(config: &CacheConfig, _security: &Arc<Security>) -> Result<Option<Box<dyn RemoteTier>>> {
    if config.has_redis() {
        return Err(CacheError::Config(
            "a Redis is configured but cache-core was built without its `redis` feature".into(),
        ));
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
