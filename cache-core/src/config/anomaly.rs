//! Anomaly detection settings ([`AnomalyConfig`]); the method is in `crate::anomaly`'s docs and
//! the README's "Anomaly detection" section.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{CacheError, Result};

/// How sensitive one detector is. A window trips it when its figure is past the baseline by at
/// least `z` robust deviations **and** by at least `min_change` **and** (for figures that
/// grow) at least `min_ratio` times the baseline; it raises an event after `persistence`
/// windows in a row (or at once when a window is twice past the trip distance), and ends it
/// after `recovery` windows in a row back under half the trip distance.
///
/// ```
/// let mut c = cache_core::CacheConfig::default();
/// c.anomaly.miss_storm.z = 8.0; // fewer, surer miss storms
/// assert_eq!(c.anomaly.miss_storm.persistence, 2);
/// c.validate().unwrap();
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct Sensitivity {
    /// Robust z threshold: deviations (EWMA of the absolute deviation × 1.25, floored by the
    /// counting noise expected at the window's volume) past the baseline.
    pub z: f64,
    /// Smallest absolute change that counts, in the figure's unit (events per second, a hit
    /// rate fraction, milliseconds, an error fraction, transitions per window).
    pub min_change: f64,
    /// For figures that grow: the smallest ratio to the baseline that counts (1 = none).
    pub min_ratio: f64,
    /// Windows in a row past the threshold before an event starts.
    pub persistence: u32,
    /// Windows in a row back to normal before the event ends.
    pub recovery: u32,
    /// Off: the detector never raises.
    pub enabled: bool,
}

impl Default for Sensitivity {
    fn default() -> Self {
        Sensitivity {
            z: 6.0,
            min_change: 1.0,
            min_ratio: 2.0,
            persistence: 2,
            recovery: 3,
            enabled: true,
        }
    }
}

impl Sensitivity {
    fn with(min_change: f64, min_ratio: f64) -> Self {
        Sensitivity {
            min_change,
            min_ratio,
            ..Sensitivity::default()
        }
    }
}

/// Streaming anomaly detection over the cache's own counters (`crate::anomaly`). On by
/// default: it costs one task waking once a [`window`](Self::window) and nothing on an L1 hit.
///
/// In TOML, under `[anomaly]`; the environment sets `CACHE_ANOMALY_ENABLED` and
/// `CACHE_ANOMALY_WINDOW` (`10s`).
///
/// ```
/// let c = cache_core::CacheConfig::from_toml_str(r#"
///     [anomaly]
///     window = "5s"
///     [anomaly.miss_storm]
///     z = 8.0
/// "#).unwrap();
/// assert_eq!(c.anomaly.window.as_secs(), 5);
/// assert_eq!(c.anomaly.miss_storm.z, 8.0);
/// assert_eq!(c.anomaly.miss_storm.persistence, 2); // the rest keep their defaults
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct AnomalyConfig {
    /// The detectors at all. Env `CACHE_ANOMALY_ENABLED`.
    pub enabled: bool,
    /// How often the counters are read: each window is one observation. Env
    /// `CACHE_ANOMALY_WINDOW`.
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Windows observed before any detector may raise (the baselines settle meanwhile).
    pub warmup_windows: u32,
    /// How fast baselines follow the traffic: the EWMA's half-life. Short against a day (a
    /// daily cycle is followed), long against an incident (a storm is not absorbed before it
    /// has been raised; baselines also stop learning while their detector is tripped).
    #[serde(with = "humantime_serde")]
    pub baseline_half_life: Duration,
    /// Key prefixes tracked apart (`crate::trace::prefix`); the rest are counted together
    /// under `~other`.
    pub max_prefixes: usize,
    /// Recent events kept for [`Cache::anomalies`](crate::Cache::anomalies).
    pub history: usize,
    /// Reads a window needs (overall, or per prefix) before its hit rate is judged.
    pub min_reads: u64,
    /// Hit rate fell (absolute fraction, e.g. 0.15 = 15 points).
    pub hit_rate_drop: Sensitivity,
    /// Misses per second rose.
    pub miss_storm: Sensitivity,
    /// Keys never seen before, per second, rose (a timestamp in the key).
    pub key_cardinality: Sensitivity,
    /// The remote tier's mean read latency rose (milliseconds).
    pub l2_latency: Sensitivity,
    /// The share of remote calls that failed rose (fraction).
    pub l2_errors: Sensitivity,
    /// L1 evictions per second rose.
    pub eviction_storm: Sensitivity,
    /// Breaker open/close transitions per window rose.
    pub breaker_flapping: Sensitivity,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        AnomalyConfig {
            enabled: true,
            window: Duration::from_secs(10),
            warmup_windows: 30,
            baseline_half_life: Duration::from_secs(600),
            max_prefixes: 32,
            history: 256,
            min_reads: 50,
            hit_rate_drop: Sensitivity::with(0.15, 1.0),
            miss_storm: Sensitivity::with(1.0, 2.5),
            key_cardinality: Sensitivity::with(1.0, 3.0),
            l2_latency: Sensitivity::with(5.0, 3.0),
            l2_errors: Sensitivity::with(0.05, 1.0),
            eviction_storm: Sensitivity::with(1.0, 3.0),
            // Each open and each close is a transition; a healthy breaker makes none, an outage
            // two (open, then close once it is over). Four in a window, twice: flapping.
            breaker_flapping: Sensitivity {
                z: 4.0,
                ..Sensitivity::with(4.0, 1.0)
            },
        }
    }
}

impl AnomalyConfig {
    /// Reads the variables named above over these settings.
    pub(crate) fn read_lookup(&mut self, get: &impl Fn(&str) -> Option<String>) -> Result<()> {
        if let Some(v) = get("CACHE_ANOMALY_ENABLED") {
            self.enabled = super::parse_bool(&v).ok_or_else(|| {
                CacheError::Config(format!(
                    "CACHE_ANOMALY_ENABLED={v:?}: expected true/false, 1/0, yes/no, on/off"
                ))
            })?;
        }
        if let Some(v) = get("CACHE_ANOMALY_WINDOW") {
            self.window = super::parse_duration(&v)
                .map_err(|e| CacheError::Config(format!("CACHE_ANOMALY_WINDOW={v:?}: {e}")))?;
        }
        Ok(())
    }

    /// The detectors' settings by name, for validation.
    fn sensitivities(&self) -> [(&'static str, &Sensitivity); 7] {
        [
            ("hit_rate_drop", &self.hit_rate_drop),
            ("miss_storm", &self.miss_storm),
            ("key_cardinality", &self.key_cardinality),
            ("l2_latency", &self.l2_latency),
            ("l2_errors", &self.l2_errors),
            ("eviction_storm", &self.eviction_storm),
            ("breaker_flapping", &self.breaker_flapping),
        ]
    }

    /// Checks the settings: a window of at least 100 ms, positive thresholds, at least one
    /// window of persistence and recovery.
    pub(crate) fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(CacheError::Config(format!("anomaly.{what}")));
        if self.window < Duration::from_millis(100) {
            return bad(format!("window ({:?}) must be at least 100ms", self.window));
        }
        if self.baseline_half_life < self.window {
            return bad("baseline_half_life must be at least one window".into());
        }
        if self.max_prefixes == 0 || self.history == 0 {
            return bad("max_prefixes and history must be greater than zero".into());
        }
        for (name, s) in self.sensitivities() {
            let finite = [s.z, s.min_change, s.min_ratio].iter().all(|v| v.is_finite());
            if !finite || s.z <= 0.0 || s.min_change < 0.0 || s.min_ratio < 1.0 {
                return bad(format!("{name}: z > 0, min_change >= 0 and min_ratio >= 1"));
            }
            if s.persistence == 0 || s.recovery == 0 {
                return bad(format!("{name}: persistence and recovery must be at least 1"));
            }
        }
        Ok(())
    }
}
