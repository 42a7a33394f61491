//! Counters and the stats snapshot.

use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use serde::{Deserialize, Serialize};
use thread_local::ThreadLocal;

/// A counter with one slot per thread: the owning thread adds with a plain load and store (no
/// locked instruction, no shared cache line), readers sum the slots. An L1 hit on several
/// threads must not fight over one atomic: that alone costs a third of the hit.
#[derive(Default)]
pub(crate) struct Counter {
    slots: ThreadLocal<CachePadded<AtomicU64>>,
}

impl Counter {
    #[inline]
    pub(crate) fn incr(&self) {
        self.add(1);
    }

    #[inline]
    pub(crate) fn add(&self, n: u64) {
        let slot = self.slots.get_or_default();
        // Only this thread writes its slot, so load + store loses nothing.
        slot.store(slot.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.slots.iter().map(|s| s.load(Ordering::Relaxed)).sum()
    }
}

/// The engine's live counters.
#[derive(Default)]
pub(crate) struct Counters {
    pub l1_hits: Counter,
    pub l2_hits: Counter,
    pub l3_hits: Counter,
    pub misses: Counter,
    pub errors: Counter,
    pub compressions: Counter,
    pub bytes_saved: Counter,
    pub raw_bytes: Counter,
    pub stored_bytes: Counter,
    pub l2_skipped: Counter,
    pub coalesced: Counter,
    pub stale_served: Counter,
    pub coalesced_remote: Counter,
    pub sets: Counter,
    pub loader_calls: Counter,
    pub too_large: Counter,
    pub stale_discarded: Counter,
    pub tag_stale: Counter,
    pub max_entries_evictions: Counter,
    pub bypassed: Counter,
}

/// A point-in-time view of the cache, shaped like the product's stats JSON.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = cache_core::Cache::new(Default::default()).unwrap();
/// cache.set("k", &1u32, None).await.unwrap();
/// let _ = cache.get::<u32>("k").await.unwrap();
/// let s = cache.stats().await;
/// assert_eq!((s.hits, s.l1_hits, s.local_cache_size), (1, 1, 1));
/// let json = serde_json::to_value(&s).unwrap();
/// assert!(json["hit_rate"].is_number());
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Stats {
    /// Whether the cache is on ([`CacheConfig::enabled`](crate::CacheConfig::enabled)); `false`:
    /// `"disabled"` in [`Stats::status`].
    #[serde(default = "enabled_default")]
    pub enabled: bool,
    /// `"enabled"` or `"disabled"`: the same for people and dashboards.
    #[serde(default)]
    pub status: String,
    /// Cached calls that ran their function directly because the cache was off.
    #[serde(default)]
    pub bypassed: u64,
    /// Entries in L1.
    pub local_cache_size: u64,
    /// Approximate bytes held by L1 (encoded value sizes plus keys).
    pub local_cache_bytes: u64,
    /// Reads answered by L1 or Redis.
    pub hits: u64,
    /// Callers that waited for another caller's load of the same key (single flight); counted in `hits`.
    pub coalesced: u64,
    /// Cold-key callers served by another instance's load (distributed single flight).
    pub coalesced_remote: u64,
    /// Circuit breaker state; `None` in L1-only mode.
    pub breaker: Option<crate::tier::BreakerState>,
    /// Calls answered with a stale value because the loader failed or was too slow (fail-safe).
    pub stale_served: u64,
    /// Reads answered by neither.
    pub misses: u64,
    /// hits / (hits + misses); 0 before any read.
    pub hit_rate: f64,
    /// Reads answered by L1.
    pub l1_hits: u64,
    /// Reads answered by Redis.
    pub l2_hits: u64,
    /// Reads answered by the disk tier.
    pub l3_hits: u64,
    /// Cache failures (Redis errors, timeouts, undecodable entries) that were logged and absorbed.
    pub errors: u64,
    /// Redis calls skipped because the circuit breaker was open.
    pub l2_skipped: u64,
    /// Values stored compressed.
    pub compressions: u64,
    /// Bytes compression saved across all writes.
    pub bytes_saved: u64,
    /// Values written.
    pub sets: u64,
    /// Times a loader (the cached function itself) ran.
    pub loader_calls: u64,
    /// Values not cached because they exceed `max_value_size`.
    pub too_large: u64,
    /// Loaded values returned but not stored, because an invalidation of their key came while
    /// they were loading (they would have been stale).
    pub stale_discarded: u64,
    /// `INFO` fields of the L2 server; `None` in L1-only mode or when Redis is unreachable.
    pub redis_info: Option<RedisInfo>,
    /// The latest TTLs chosen by an adaptive strategy (empty otherwise).
    pub adaptive_ttls: Vec<crate::strategy::AdaptiveChoice>,
    /// Redis entries read as misses because one of their tags was invalidated after they were
    /// loaded (L1 copies are not counted: they are dropped without a lookup).
    pub tag_stale: u64,
    /// L1 entries evicted because their function reached its `max_entries`
    /// (per function: [`crate::perf::FunctionStats::evicted_by_max_entries`]).
    #[serde(default)]
    pub max_entries_evictions: u64,
    /// Tags this instance invalidated ([`Cache::invalidate_tags`](crate::Cache::invalidate_tags)).
    pub tag_invalidations: u64,
    /// The same, per tag prefix (the text before the first `:`; `*` beyond 256 prefixes).
    pub tag_invalidations_by_prefix: std::collections::BTreeMap<String, u64>,
    /// Stored values refused on read (encryption at rest, `crate::config::SecurityConfig`):
    /// tampered, moved to another key, sealed under a key id not configured, or not encrypted
    /// under an encrypted pattern. Each is read as a miss (and counted in `errors`), and the
    /// next store overwrites it.
    pub values_refused: u64,
    /// The disk tier's figures; `None` when it is not configured.
    pub l3: Option<crate::disk::DiskStats>,
}

fn enabled_default() -> bool {
    true
}

/// The `INFO` fields reported in [`Stats`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct RedisInfo {
    /// `connected_clients`.
    pub connected_clients: u64,
    /// `used_memory_human`, e.g. `15.2M`.
    pub used_memory_human: String,
    /// `used_memory` in bytes.
    pub used_memory: u64,
    /// `total_connections_received`.
    pub total_connections_received: u64,
    /// `total_commands_processed`.
    pub total_commands_processed: u64,
    /// `maxmemory` in bytes (0 = unlimited).
    pub maxmemory: u64,
    /// `maxmemory_policy`.
    pub maxmemory_policy: String,
    /// `redis_version`.
    pub redis_version: String,
}

impl RedisInfo {
    /// Reads the fields out of an `INFO` reply.
    ///
    /// ```
    /// let info = cache_core::RedisInfo::parse("# Clients\r\nconnected_clients:5\r\nused_memory_human:15.2M\r\n");
    /// assert_eq!(info.connected_clients, 5);
    /// assert_eq!(info.used_memory_human, "15.2M");
    /// ```
    pub fn parse(text: &str) -> Self {
        let mut info = RedisInfo::default();
        for line in text.lines() {
            let Some((k, v)) = line.trim_end().split_once(':') else {
                continue;
            };
            let num = || v.parse().unwrap_or(0);
            match k {
                "connected_clients" => info.connected_clients = num(),
                "used_memory_human" => info.used_memory_human = v.to_owned(),
                "used_memory" => info.used_memory = num(),
                "total_connections_received" => info.total_connections_received = num(),
                "total_commands_processed" => info.total_commands_processed = num(),
                "maxmemory" => info.maxmemory = num(),
                "maxmemory_policy" => info.maxmemory_policy = v.to_owned(),
                "redis_version" => info.redis_version = v.to_owned(),
                _ => {}
            }
        }
        info
    }
}

impl Counters {
    pub(crate) fn snapshot(&self, l1_len: u64, l1_bytes: u64, redis_info: Option<RedisInfo>) -> Stats {
        let (l1_hits, l2_hits, misses) = (self.l1_hits.get(), self.l2_hits.get(), self.misses.get());
        let l3_hits = self.l3_hits.get();
        let coalesced = self.coalesced.get();
        let hits = l1_hits + l2_hits + l3_hits + coalesced;
        let hit_rate = if hits + misses == 0 {
            0.0
        } else {
            hits as f64 / (hits + misses) as f64
        };
        Stats {
            enabled: true,
            status: "enabled".to_owned(),
            bypassed: self.bypassed.get(),
            local_cache_size: l1_len,
            local_cache_bytes: l1_bytes,
            hits,
            coalesced,
            stale_served: self.stale_served.get(),
            coalesced_remote: self.coalesced_remote.get(),
            breaker: None,
            misses,
            hit_rate,
            l1_hits,
            l2_hits,
            l3_hits,
            errors: self.errors.get(),
            l2_skipped: self.l2_skipped.get(),
            compressions: self.compressions.get(),
            bytes_saved: self.bytes_saved.get(),
            sets: self.sets.get(),
            loader_calls: self.loader_calls.get(),
            too_large: self.too_large.get(),
            stale_discarded: self.stale_discarded.get(),
            redis_info,
            adaptive_ttls: Vec::new(),
            tag_stale: self.tag_stale.get(),
            max_entries_evictions: self.max_entries_evictions.get(),
            tag_invalidations: 0,
            tag_invalidations_by_prefix: Default::default(),
            values_refused: 0,
            l3: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn striped_counter_sums_across_threads() {
        let c = std::sync::Arc::new(Counter::default());
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || (0..1000).for_each(|_| c.incr()))
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        assert_eq!(c.get(), 8000);
    }

    #[test]
    fn hit_rate_is_zero_before_reads() {
        let s = Counters::default().snapshot(0, 0, None);
        assert_eq!(s.hit_rate, 0.0);
    }
}
