//! Settings of the cache's analytics: learned TTLs ([`AutoTtl`], [`AnalyticsConfig`]); the
//! model behind them is in `crate::analytics`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{CacheError, Result};

/// `ttl = "auto"`: the TTL is learned from how often the values really change, kept where the
/// expected fraction of stale reads stays at `max_stale`, within `[min, max]`.
///
/// In the macros: `#[cache(ttl = "auto", max_stale = "1%", ttl_bounds = ("30s", "1h"))]`. In the
/// configuration, per key pattern:
///
/// ```
/// let c = cache_core::CacheConfig::from_toml_str(r#"
///     [ttl_auto."query:users:*"]
///     max_stale = "0.5%"
///     min = "30s"
///     max = "1h"
/// "#).unwrap();
/// let auto = c.ttl_auto["query:users:*"];
/// assert_eq!(auto.max_stale, 0.005);
/// assert_eq!(auto.max.as_secs(), 3600);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AutoTtl {
    /// Largest expected fraction of reads that may return a value older than the source's
    /// (`"1%"` or `0.01`).
    #[serde(with = "percent")]
    pub max_stale: f64,
    /// Shortest TTL the learning may choose.
    #[serde(with = "humantime_serde")]
    pub min: Duration,
    /// Longest TTL the learning may choose.
    #[serde(with = "humantime_serde")]
    pub max: Duration,
}

impl AutoTtl {
    /// 1 % stale reads, TTLs from 1 s to 1 day.
    pub const DEFAULT: AutoTtl = AutoTtl {
        max_stale: 0.01,
        min: Duration::from_secs(1),
        max: Duration::from_secs(24 * 3600),
    };

    /// The settings the macro writes (`const`, so they live in the function's code).
    ///
    /// ```
    /// use std::time::Duration;
    /// let a = cache_core::config::AutoTtl::new(0.02, Duration::from_secs(5), Duration::from_secs(600));
    /// assert!(a.validate().is_ok());
    /// ```
    pub const fn new(max_stale: f64, min: Duration, max: Duration) -> Self {
        AutoTtl { max_stale, min, max }
    }

    /// A stale target in `(0, 1)` and `0 < min <= max`.
    pub fn validate(&self) -> Result<()> {
        if !(self.max_stale > 0.0 && self.max_stale < 1.0) {
            return Err(CacheError::Config(format!(
                "max_stale must be between 0 and 100 % (exclusive), not {}",
                self.max_stale
            )));
        }
        if self.min.is_zero() || self.min > self.max {
            return Err(CacheError::Config(format!(
                "TTL bounds must satisfy 0 < min <= max, not {:?}..{:?}",
                self.min, self.max
            )));
        }
        Ok(())
    }
}

impl Default for AutoTtl {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// How the cache learns about its families (a function's keys, or a direct key's prefix): the
/// change rates behind `ttl = "auto"` and `GET /api/v1/cache/ttl-advice`.
///
/// ```
/// let c = cache_core::CacheConfig::default();
/// assert!(c.analytics.enabled);
/// assert_eq!(c.analytics.min_observations, 30);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct AnalyticsConfig {
    /// Whether reloads are compared with what they replaced (one digest of the new value per
    /// load, on the miss path only). Off, `ttl = "auto"` keeps its starting TTL and the advice
    /// is empty. Env `CACHE_ANALYTICS_ENABLED`.
    pub enabled: bool,
    /// Reloads of a family needed before its TTL moves from where it started.
    pub min_observations: u32,
    /// Observations after which older evidence counts half, so the learned rate follows a
    /// family whose behaviour changes (counted in reloads, not time, so a family reloaded
    /// rarely still gathers evidence).
    pub half_life_observations: u32,
    /// Keys remembered per family (their last digest and load time; least recently loaded
    /// forgotten first).
    pub tracked_keys: usize,
    /// Families learned about; keys of others count under `(other)`.
    pub max_families: usize,
}

impl Default for AnalyticsConfig {
    fn default() -> Self {
        AnalyticsConfig {
            enabled: true,
            min_observations: 30,
            half_life_observations: 5000,
            tracked_keys: 4096,
            max_families: 256,
        }
    }
}

impl AnalyticsConfig {
    pub(crate) fn validate(&self) -> Result<()> {
        if self.half_life_observations < 2 * self.min_observations.max(1)
            || !(1..=1_000_000).contains(&self.tracked_keys)
            || !(1..=65_536).contains(&self.max_families)
        {
            return Err(CacheError::Config(
                "analytics: half_life_observations must be at least twice min_observations (older \
                 evidence would fade before it is enough), tracked_keys 1 to 1 000 000, max_families \
                 1 to 65 536"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// `"1%"`, `"0.5 %"` or a plain fraction (`0.01`).
pub(crate) fn parse_percent(v: &str) -> std::result::Result<f64, String> {
    let v = v.trim();
    let (num, scale) = match v.strip_suffix('%') {
        Some(n) => (n.trim(), 100.0),
        None => (v, 1.0),
    };
    let x: f64 = num
        .parse()
        .map_err(|_| format!("{v:?} is not a percentage (e.g. \"1%\")"))?;
    let x = x / scale;
    if !(x > 0.0 && x < 1.0) {
        return Err(format!("{v:?} must be between 0 and 100 % (exclusive)"));
    }
    Ok(x)
}

mod percent {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}%", v * 100.0))
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        Text(String),
        Number(f64),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match Either::deserialize(d)? {
            Either::Text(t) => super::parse_percent(&t).map_err(serde::de::Error::custom),
            Either::Number(x) if x > 0.0 && x < 1.0 => Ok(x),
            Either::Number(x) => Err(serde::de::Error::custom(format!(
                "max_stale {x} must be a fraction between 0 and 1 (or \"1%\")"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_parse_and_bad_ones_say_why() {
        assert_eq!(parse_percent("1%").unwrap(), 0.01);
        assert_eq!(parse_percent(" 0.5 % ").unwrap(), 0.005);
        assert_eq!(parse_percent("0.02").unwrap(), 0.02);
        assert!(parse_percent("0%").is_err());
        assert!(parse_percent("100%").is_err());
        assert!(parse_percent("abc").is_err());
        assert!(parse_percent("NaN").is_err());
    }

    #[test]
    fn bounds_are_checked() {
        let bad = AutoTtl::new(0.01, Duration::from_secs(10), Duration::from_secs(5));
        assert!(bad.validate().is_err());
        assert!(AutoTtl::new(1.5, Duration::from_secs(1), Duration::from_secs(5))
            .validate()
            .is_err());
        assert!(AutoTtl::DEFAULT.validate().is_ok());
    }
}
