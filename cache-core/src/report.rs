//! What a cache reports about itself: [`Cache::stats`], [`Cache::health`],
//! [`Cache::performance`] and [`Cache::memory_profile`], and the types they answer with.

use serde::{Deserialize, Serialize};

use crate::cache::Cache;
use crate::latency::OpLatency;
use crate::stats::Stats;
use crate::tier::{BreakerState, PoolStatus};

/// The answer of [`Cache::performance`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Performance {
    /// Latency per operation, L1 and L2 apart.
    pub operations: Vec<OpLatency>,
    /// What compression did to Redis writes.
    pub compression: CompressionStats,
    /// L1 and Redis memory.
    pub memory: MemoryStats,
    /// Per cached function in this process: calls, hit rate, load time, time saved.
    pub functions: Vec<crate::perf::FunctionStats>,
    /// The disk tier: hits, misses, bytes, evictions, errors, read and write latency; `None`
    /// when it is not configured.
    pub l3: Option<crate::disk::DiskStats>,
}

/// Compression figures of [`Performance`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[non_exhaustive]
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
#[non_exhaustive]
pub struct MemoryStats {
    /// Entries in L1.
    pub l1_entries: u64,
    /// Approximate bytes in L1.
    pub l1_bytes: u64,
    /// Redis `used_memory`.
    pub redis_used_memory: Option<u64>,
    /// Redis `used_memory_human`.
    pub redis_used_memory_human: Option<String>,
    /// Entries in the disk tier (as far as this process knows: those it wrote or checked).
    pub l3_entries: Option<u64>,
    /// Their bytes.
    pub l3_bytes: Option<u64>,
    /// The disk tier's capacity.
    pub l3_capacity_bytes: Option<u64>,
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
#[non_exhaustive]
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
#[non_exhaustive]
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

impl Cache {
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
        if let Some(l1) = &self.engine.l1 {
            l1.visit(&mut |key, bytes| {
                // Grouped by the name Redis knows: with a key secret, a key without `:` is
                // all hash, and its text must not become a prefix.
                let name = self.engine.security.name(key);
                let p = prefix_of(&name);
                let e = by_prefix.entry(p.to_owned()).or_insert_with(|| new_prefix(p));
                e.l1_entries += 1;
                e.l1_bytes += bytes;
                largest.push(LargeEntry {
                    // The key itself: listings outside the process show `Cache::display_key`.
                    key: key.to_owned(),
                    bytes,
                });
            });
        }
        largest.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.key.cmp(&b.key)));
        largest.truncate(10);
        let mut redis_used_memory = None;
        if let Some(remote) = &self.engine.remote {
            // Prefixes known from L1 and from the TTL table.
            for p in self.engine.config.ttl_patterns.keys() {
                let p = prefix_of(p).trim_end_matches('*');
                if !p.is_empty() {
                    by_prefix.entry(p.to_owned()).or_insert_with(|| new_prefix(p));
                }
            }
            for (p, e) in by_prefix.iter_mut() {
                let pattern = format!("{}:*", crate::pattern::escape(p));
                if let Ok((n, bytes)) = remote.sample_memory(&pattern, samples_per_prefix).await {
                    e.redis_sampled_keys = n;
                    e.redis_sampled_bytes = bytes;
                }
            }
            redis_used_memory = remote.info().await.ok().map(|i| i.used_memory);
        }
        let mut prefixes: Vec<PrefixMemory> = by_prefix.into_values().collect();
        prefixes.sort_by(|a, b| b.l1_bytes.cmp(&a.l1_bytes).then_with(|| a.prefix.cmp(&b.prefix)));
        let c = &self.engine.counters;
        MemoryProfile {
            prefixes,
            largest,
            l2_written_raw_bytes: c.raw_bytes.get(),
            l2_written_stored_bytes: c.stored_bytes.get(),
            redis_used_memory,
            l3: self.engine.disk.as_ref().map(|d| {
                let s = d.stats();
                crate::perf::DiskMemory {
                    entries: s.entries,
                    bytes: s.bytes,
                    capacity_bytes: s.capacity_bytes,
                    device_write_bytes: s.device_write_bytes,
                }
            }),
        }
    }

    /// Latency per operation and level, compression and memory figures.
    pub async fn performance(&self) -> Performance {
        let c = &self.engine.counters;
        let (raw, stored) = (c.raw_bytes.get(), c.stored_bytes.get());
        let info = match &self.engine.remote {
            Some(remote) => remote.info().await.ok(),
            None => None,
        };
        let (l1_entries, l1_bytes) = self
            .engine
            .l1
            .as_ref()
            .map_or((0, 0), |l1| (l1.len(), l1.bytes()));
        let l3 = self.engine.disk.as_ref().map(|d| d.stats());
        Performance {
            operations: self.engine.latency.snapshot(),
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
                l3_entries: l3.as_ref().map(|s| s.entries),
                l3_bytes: l3.as_ref().map(|s| s.bytes),
                l3_capacity_bytes: l3.as_ref().map(|s| s.capacity_bytes),
            },
            functions: crate::perf::functions(),
            l3,
        }
    }

    /// Counters, L1 size and Redis `INFO` (skipped in L1-only mode or when Redis is down).
    pub async fn stats(&self) -> Stats {
        let enabled = self.engine.enabled();
        let info = match &self.engine.remote {
            Some(remote) => remote.info().await.ok(),
            None => None,
        };
        let (len, bytes) = self
            .engine
            .l1
            .as_ref()
            .map_or((0, 0), |l1| (l1.len(), l1.bytes()));
        let mut stats = self.engine.counters.snapshot(len, bytes, info);
        stats.adaptive_ttls = self.engine.adaptive_choices.lock().iter().cloned().collect();
        stats.tag_invalidations_by_prefix = self
            .engine
            .tag_invalidations
            .lock()
            .iter()
            .map(|(p, n)| (p.clone(), *n))
            .collect();
        stats.tag_invalidations = stats.tag_invalidations_by_prefix.values().sum();
        stats.values_refused = self.engine.security.refused();
        stats.breaker = self.engine.remote.as_ref().map(|r| r.breaker_state());
        stats.l3 = self.engine.disk.as_ref().map(|d| d.stats());
        stats.enabled = enabled;
        if !enabled {
            "disabled".clone_into(&mut stats.status);
        }
        stats
    }

    /// Reachability and latency of Redis, pool status, L1 size.
    pub async fn health(&self) -> Health {
        let (l1_entries, l1_bytes) = self
            .engine
            .l1
            .as_ref()
            .map_or((0, 0), |l1| (l1.len(), l1.bytes()));
        let Some(remote) = &self.engine.remote else {
            return Health {
                healthy: true,
                mode: Mode::L1Only,
                l1_entries,
                l1_bytes,
                redis: None,
            };
        };
        let ping = remote.ping().await;
        let info = if ping.is_ok() {
            remote.info().await.ok()
        } else {
            None
        };
        let mut warnings = self.engine.background.warnings.lock().clone();
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
            url: remote.display_url(),
            reachable: ping.is_ok(),
            latency_ms: ping.as_ref().ok().map(|d| d.as_secs_f64() * 1000.0),
            error: ping.as_ref().err().map(ToString::to_string),
            breaker: remote.breaker_state(),
            pool: remote.pool_status(),
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
