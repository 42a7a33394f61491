//! Cache strategies: how L1 evicts and how long entries live.
//!
//! | strategy | L1 eviction | TTL | use it when |
//! |---|---|---|---|
//! | [`Strategy::Ttl`] (default) | quick_cache (CLOCK-Pro family, fastest reads) | pattern table | most services |
//! | [`Strategy::TinyLfu`] | moka, TinyLFU admission + LRU eviction | pattern table | a skewed working set larger than L1: frequency decides what stays |
//! | [`Strategy::Lru`] | moka, plain LRU | pattern table | recency matters more than frequency (sessions, feeds) |
//! | [`Strategy::Fifo`] | `lru` crate read with `peek` (reads never reorder): insertion order | pattern table | entries that are all equally likely to be read once |
//! | [`Strategy::Adaptive`] | quick_cache | from read frequency, within `[min, max]` | mixed hot and cold keys under one pattern |
//! | [`Strategy::Hybrid`] | any of the above | pattern table, adaptive for chosen patterns | combinations, set declaratively |
//!
//! TinyLFU admission: when moka's L1 is full, a new entry is admitted only if it is estimated to
//! be read more often than the entry it would evict, so never-read entries may be refused.
//! Warmed entries are read before they are needed, so the engine raises their frequency
//! estimate before inserting them (inside [`crate::warming`]).
//!
//! Adaptive TTL: `ttl = min + (max - min) × min(1, ln(1 + reads) / ln(1 + hot_reads))`, where
//! `reads` is the key's recorded read count (access patterns, sampled). A never-read key gets
//! `min`, a key read `hot_reads` times or more gets `max`; the log keeps the first reads from
//! dominating. The chosen TTLs are listed in [`Stats::adaptive_ttls`](crate::Stats::adaptive_ttls).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{CacheError, Result};
use crate::pattern::Pattern;

/// Which structure backs L1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Eviction {
    /// quick_cache: the fast default.
    #[default]
    Fast,
    /// moka with TinyLFU.
    TinyLfu,
    /// moka with LRU.
    Lru,
    /// Insertion order.
    Fifo,
}

/// TTL from read frequency, within bounds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdaptiveTtl {
    /// TTL of a never-read key.
    #[serde(with = "humantime_serde")]
    pub min: Duration,
    /// TTL of a key read `hot_reads` times or more.
    #[serde(with = "humantime_serde")]
    pub max: Duration,
    /// Reads at which a key counts as fully hot.
    pub hot_reads: u64,
    /// Keys it applies to (globs); empty = every key without an explicit TTL.
    #[serde(default)]
    pub patterns: Vec<String>,
}

impl Default for AdaptiveTtl {
    fn default() -> Self {
        AdaptiveTtl {
            min: Duration::from_secs(60),
            max: Duration::from_secs(3600),
            hot_reads: 100,
            patterns: Vec::new(),
        }
    }
}

impl AdaptiveTtl {
    /// The TTL for a key read `reads` times.
    ///
    /// ```
    /// use std::time::Duration;
    /// let a = cache_core::strategy::AdaptiveTtl { min: Duration::from_secs(10), max: Duration::from_secs(1000), hot_reads: 100, patterns: vec![] };
    /// assert_eq!(a.ttl_for(0), Duration::from_secs(10));
    /// assert_eq!(a.ttl_for(100), Duration::from_secs(1000));
    /// assert!(a.ttl_for(10) > Duration::from_secs(400) && a.ttl_for(10) < Duration::from_secs(600));
    /// ```
    pub fn ttl_for(&self, reads: u64) -> Duration {
        let hot = self.hot_reads.max(1) as f64;
        let f = ((1.0 + reads as f64).ln() / (1.0 + hot).ln()).clamp(0.0, 1.0);
        self.min + (self.max.saturating_sub(self.min)).mul_f64(f)
    }

    fn validate(&self) -> Result<()> {
        if self.min.is_zero() || self.max < self.min {
            return Err(CacheError::Config(format!(
                "adaptive TTL needs 0 < min <= max (min {:?}, max {:?})",
                self.min, self.max
            )));
        }
        for p in &self.patterns {
            Pattern::new(p)?;
        }
        Ok(())
    }
}

/// The cache's strategy; see the [module docs](self) for when to use which.
///
/// ```
/// use cache_core::{CacheConfig, strategy::{Strategy, Eviction, AdaptiveTtl}};
/// let c = CacheConfig::builder()
///     .strategy(Strategy::Hybrid {
///         eviction: Eviction::Lru,
///         adaptive: Some(AdaptiveTtl { patterns: vec!["query:*".into()], ..Default::default() }),
///     })
///     .build()
///     .unwrap();
/// # let _ = c;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Strategy {
    /// Pattern-table TTLs, quick_cache L1.
    #[default]
    Ttl,
    /// moka TinyLFU L1.
    TinyLfu,
    /// moka LRU L1.
    Lru,
    /// Insertion-order L1.
    Fifo,
    /// Frequency-based TTL for every key.
    Adaptive(AdaptiveTtl),
    /// An eviction policy plus, optionally, adaptive TTL for some patterns.
    Hybrid {
        /// L1 eviction.
        eviction: Eviction,
        /// Adaptive TTL and where it applies.
        adaptive: Option<AdaptiveTtl>,
    },
}

impl Strategy {
    /// The L1 eviction this strategy uses.
    pub fn eviction(&self) -> Eviction {
        match self {
            Strategy::Ttl | Strategy::Adaptive(_) => Eviction::Fast,
            Strategy::TinyLfu => Eviction::TinyLfu,
            Strategy::Lru => Eviction::Lru,
            Strategy::Fifo => Eviction::Fifo,
            Strategy::Hybrid { eviction, .. } => *eviction,
        }
    }

    /// The adaptive TTL settings, if any.
    pub fn adaptive(&self) -> Option<&AdaptiveTtl> {
        match self {
            Strategy::Adaptive(a) => Some(a),
            Strategy::Hybrid { adaptive, .. } => adaptive.as_ref(),
            _ => None,
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.adaptive().map_or(Ok(()), AdaptiveTtl::validate)
    }
}

/// Compiled adaptive rules.
pub(crate) struct Adaptive {
    pub settings: AdaptiveTtl,
    patterns: Vec<Pattern>,
}

impl Adaptive {
    pub(crate) fn compile(settings: &AdaptiveTtl) -> Result<Self> {
        Ok(Adaptive {
            patterns: settings
                .patterns
                .iter()
                .map(|p| Pattern::new(p))
                .collect::<Result<_>>()?,
            settings: settings.clone(),
        })
    }

    pub(crate) fn applies(&self, key: &str) -> bool {
        self.patterns.is_empty() || self.patterns.iter().any(|p| p.matches(key))
    }
}

/// One adaptive TTL decision, as listed in the stats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdaptiveChoice {
    /// The key.
    pub key: String,
    /// Its recorded reads when written.
    pub reads: u64,
    /// The TTL chosen, in seconds.
    pub ttl_secs: f64,
}
