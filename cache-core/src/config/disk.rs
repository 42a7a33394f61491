//! The disk tier's settings ([`DiskConfig`]) and its hierarchy policies: which keys go to disk,
//! in which order the levels are read, when values are written there.

// Without the `disk` feature the settings are read and checked (a configured tier is then an
// error) but never compiled into a policy.
#![cfg_attr(not(feature = "disk"), allow(dead_code))]

use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

use crate::error::{CacheError, Result};
use crate::pattern::Pattern;

/// In which order a miss in L1 reads the levels below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum ReadOrder {
    /// L1 → L3 → L2: the disk before the network.
    DiskFirst,
    /// L1 → L2 → L3: the disk as the fallback when Redis fails or is down.
    RedisFirst,
    /// Disk first for values at least [`DiskConfig::disk_first_min_size`] (or of unknown size,
    /// such as after a restart), Redis first for smaller ones. The default: the disk answered
    /// faster at every size measured (bench P9: 2 KB, 10 KB, 1 MB; `docs/design-notes.md`).
    Auto,
}

/// When a value is written to the disk tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum WritePolicy {
    /// On every store of a key the tier takes (and on every Redis hit of one it lacks).
    WriteThrough,
    /// Only when L1 evicts the value for room (not when it expires or is invalidated): the
    /// disk holds what L1 could not, and a store costs no disk write. Tagged values stay off disk.
    OnEviction,
}

/// The policy of the keys matching one pattern; unset fields take the tier's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct DiskPolicy {
    /// See [`DiskConfig::read_order`].
    pub read_order: Option<ReadOrder>,
    /// See [`DiskConfig::write`].
    pub write: Option<WritePolicy>,
    /// See [`DiskConfig::min_size`].
    pub min_size: Option<ByteSize>,
}

/// The optional disk tier (L3): large, expensive values survive restarts and Redis outages.
/// Needs `cache-core`'s `disk` feature; a configured [`dir`](Self::dir) without it is a
/// configuration error.
///
/// ```
/// use cache_core::config::{DiskConfig, ReadOrder};
/// let c = cache_core::CacheConfig::from_toml_str(r#"
///     [l3]
///     dir = "/var/cache/my-service"
///     capacity = "10GiB"
///     patterns = ["analysis:*", "report:*"]
///     [l3.policies."report:*"]
///     read_order = "redis-first"
/// "#);
/// # #[cfg(feature = "disk")] {
/// let c = c.unwrap();
/// assert_eq!(c.l3.capacity.as_u64(), 10 << 30);
/// assert_eq!(c.l3.policies["report:*"].read_order, Some(ReadOrder::RedisFirst));
/// # }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct DiskConfig {
    /// Directory of the tier's files (created if missing; one process at a time: it is locked).
    /// `None`: no disk tier. Env `CACHE_L3_DIR`.
    pub dir: Option<PathBuf>,
    /// Bytes on disk at most (`10GiB`). Env `CACHE_L3_CAPACITY`.
    pub capacity: ByteSize,
    /// Keys that use the tier (globs). Env `CACHE_L3_PATTERNS` (comma-separated).
    pub patterns: Vec<String>,
    /// Encoded values smaller than this are not written to disk (a 4 KiB page is the least a
    /// record takes). Env `CACHE_L3_MIN_SIZE`.
    pub min_size: ByteSize,
    /// Default read order. Env `CACHE_L3_READ_ORDER` (`disk-first`, `redis-first`, `auto`).
    pub read_order: ReadOrder,
    /// Under [`ReadOrder::Auto`], values this large or larger are read from disk first
    /// (2 KiB: the smallest size measured, where a disk hit took 0.6× a Redis hit).
    pub disk_first_min_size: ByteSize,
    /// Default write policy. Env `CACHE_L3_WRITE` (`write-through`, `on-read`).
    pub write: WritePolicy,
    /// An L3 hit fills L1 only with values up to this size (L1 is bounded by bytes: one huge
    /// value would push out many small ones).
    pub promote_max: ByteSize,
    /// Policies per pattern (most specific wins, as for TTLs); a pattern here also uses the tier.
    pub policies: std::collections::BTreeMap<String, DiskPolicy>,
    /// How often the tier checks its directory (still there, still writable).
    #[serde(with = "humantime_serde")]
    pub health_interval: Duration,
}

impl Default for DiskConfig {
    fn default() -> Self {
        DiskConfig {
            dir: None,
            capacity: ByteSize::gib(10),
            patterns: ["analysis:*", "ml:*", "static:*"].map(String::from).to_vec(),
            min_size: ByteSize::kib(1),
            read_order: ReadOrder::Auto,
            disk_first_min_size: ByteSize::kib(2),
            write: WritePolicy::WriteThrough,
            promote_max: ByteSize::mib(1),
            policies: Default::default(),
            health_interval: Duration::from_secs(5),
        }
    }
}

/// What the tier does with one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Policy {
    pub read_order: ReadOrder,
    pub write: WritePolicy,
    pub min_size: u64,
}

/// The compiled policies: patterns most specific first.
#[derive(Debug, Clone)]
pub(crate) struct DiskPolicies {
    rules: Vec<(Pattern, Policy)>,
    pub disk_first_min_size: u64,
}

impl DiskPolicies {
    pub(crate) fn compile(c: &DiskConfig) -> Result<Self> {
        let base = Policy {
            read_order: c.read_order,
            write: c.write,
            min_size: c.min_size.as_u64(),
        };
        let mut rules = Vec::new();
        for p in &c.patterns {
            if !c.policies.contains_key(p) {
                rules.push((Pattern::new(p)?, base));
            }
        }
        for (p, over) in &c.policies {
            let policy = Policy {
                read_order: over.read_order.unwrap_or(base.read_order),
                write: over.write.unwrap_or(base.write),
                min_size: over.min_size.map_or(base.min_size, |s| s.as_u64()),
            };
            rules.push((Pattern::new(p)?, policy));
        }
        rules.sort_by_key(|(p, _)| std::cmp::Reverse(p.specificity()));
        Ok(DiskPolicies {
            rules,
            disk_first_min_size: c.disk_first_min_size.as_u64(),
        })
    }

    /// The policy of `key`, when the tier takes it.
    pub(crate) fn of(&self, key: &str) -> Option<Policy> {
        self.rules.iter().find(|(p, _)| p.matches(key)).map(|(_, p)| *p)
    }
}

impl DiskConfig {
    /// Reads the `CACHE_L3_*` variables over these settings.
    pub(crate) fn read_lookup(&mut self, get: &impl Fn(&str) -> Option<String>) -> Result<()> {
        let bad =
            |name: &str, v: &str, e: &dyn std::fmt::Display| CacheError::Config(format!("{name}={v:?}: {e}"));
        if let Some(dir) = get("CACHE_L3_DIR").filter(|d| !d.trim().is_empty()) {
            self.dir = Some(PathBuf::from(dir));
        }
        for (name, target) in [
            ("CACHE_L3_CAPACITY", &mut self.capacity),
            ("CACHE_L3_MIN_SIZE", &mut self.min_size),
        ] {
            if let Some(v) = get(name) {
                *target = v.trim().parse().map_err(|e: String| bad(name, &v, &e))?;
            }
        }
        if let Some(v) = get("CACHE_L3_PATTERNS") {
            self.patterns = v
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect();
        }
        if let Some(v) = get("CACHE_L3_READ_ORDER") {
            self.read_order = match v.trim().to_ascii_lowercase().as_str() {
                "disk-first" => ReadOrder::DiskFirst,
                "redis-first" => ReadOrder::RedisFirst,
                "auto" => ReadOrder::Auto,
                _ => {
                    return Err(bad(
                        "CACHE_L3_READ_ORDER",
                        &v,
                        &"expected disk-first, redis-first or auto",
                    ))
                }
            };
        }
        if let Some(v) = get("CACHE_L3_WRITE") {
            self.write = match v.trim().to_ascii_lowercase().as_str() {
                "write-through" => WritePolicy::WriteThrough,
                "on-eviction" => WritePolicy::OnEviction,
                _ => {
                    return Err(bad(
                        "CACHE_L3_WRITE",
                        &v,
                        &"expected write-through or on-eviction",
                    ))
                }
            };
        }
        Ok(())
    }

    /// Whether some key is written to disk when L1 evicts it.
    pub(crate) fn spills(&self) -> bool {
        self.dir.is_some()
            && (self.write == WritePolicy::OnEviction
                || self
                    .policies
                    .values()
                    .any(|p| p.write == Some(WritePolicy::OnEviction)))
    }

    /// Checks the settings (a tier that is not configured is not checked).
    pub(crate) fn validate(&self) -> Result<()> {
        if self.dir.is_none() {
            return Ok(());
        }
        if !cfg!(feature = "disk") {
            return Err(CacheError::Config(
                "a disk tier (l3.dir / CACHE_L3_DIR) is configured but cache-core was built without its `disk` feature"
                    .into(),
            ));
        }
        if self.capacity.as_u64() < MIN_CAPACITY {
            return Err(CacheError::Config(format!(
                "l3.capacity {} is below the least the tier works with ({})",
                self.capacity,
                ByteSize(MIN_CAPACITY)
            )));
        }
        if self.health_interval.is_zero() {
            return Err(CacheError::Config(
                "l3.health_interval must be greater than zero".into(),
            ));
        }
        DiskPolicies::compile(self)?;
        Ok(())
    }
}

/// The smallest disk tier: 16 blocks of 64 KiB.
pub(crate) const MIN_CAPACITY: u64 = 1 << 20;
