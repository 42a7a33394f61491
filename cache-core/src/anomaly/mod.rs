//! Anomaly detection: streaming detectors over the figures the cache keeps anyway, overall and
//! per key prefix, that raise structured events ([`Anomaly`]) through three outlets: a
//! `tracing` warning (and an info line when it ends), counters for `/metrics`
//! (`cache_anomalies_total{kind,severity}`, `cache_anomalies_active{kind}`, by the admin
//! crate), and [`Cache::anomalies`](crate::Cache::anomalies) (the admin API's
//! `GET /api/v1/cache/anomalies`).
//!
//! Why it is written here rather than taken from a crate: the crates looked at (December 2026)
//! are batch or heavy. `anomaly_detection` (Twitter's S-H-ESD, GPL-3.0) fits a whole series at
//! once and needs its period; `augurs` (MSTL/ETS forecasting, outlier detection) is built for
//! offline series, with dependencies this crate does not otherwise pull; `rcf3` and other
//! random cut forests are multivariate models whose memory and cost are out of proportion
//! with seven scalar figures a window; `anomalyzer-ts` (Skyline's tests) is young and scores
//! rather than decides. What the cache needs is a few floating-point operations per figure
//! and window, deterministic under a paused clock, with bounded memory: a documented robust
//! method ([`detector`]: EWMA baseline, EWMA absolute deviation as scale, Poisson/binomial
//! noise floors, persistence and hysteresis) in a few hundred lines.
//!
//! Why no seasonal (time-of-day) baseline: it needs days of history before it knows anything,
//! and a process restarted daily never gets them; a baseline whose half-life (10 minutes) is
//! short against a day follows a 5x daily cycle within a few percent, which the guards
//! (`min_ratio`, noise floors) absorb. The simulator's 24-hour run
//! (`sim`, in the unit tests) checks that claim.
//!
//! What the L1 hit path pays: nothing. Misses, new keys and remote call times are counted on
//! the miss and remote paths ([`signals`]); evictions on L1's insert path; per-prefix hits
//! come from the access tracker's already-sampled reads.

mod detector;
mod events;
mod sampler;
mod signals;
#[cfg(all(test, feature = "tokio-clock"))]
mod sim;

use std::sync::Weak;

pub(crate) use events::Events;
pub use events::{Anomaly, AnomalyCount, AnomalyKind, Severity};
pub(crate) use signals::{Prefixes, Signals};

use crate::engine::Engine;

/// The clock windows are timed on: tokio's under `tokio-clock` (a paused clock moves it),
/// else the precise one (this is read once a window, so its cost does not matter).
#[cfg(feature = "tokio-clock")]
pub(crate) type Clock = tokio::time::Instant;
#[cfg(not(feature = "tokio-clock"))]
pub(crate) type Clock = std::time::Instant;

/// Unix milliseconds now, on the windows' clock: the wall clock when the cache started plus
/// the clock's time since (under a paused clock, simulated time).
pub(crate) struct Stamp {
    unix_ms: u64,
    at: Clock,
}

impl Stamp {
    pub(crate) fn new() -> Self {
        Stamp {
            unix_ms: crate::engine::unix_ms(),
            at: Clock::now(),
        }
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.unix_ms + self.at.elapsed().as_millis() as u64
    }
}

/// The sampler task of one cache: a window at a time until the cache is gone.
pub(crate) async fn run(engine: Weak<Engine>) {
    let (window, mut monitor) = {
        let Some(e) = engine.upgrade() else { return };
        let cfg = &e.config.anomaly;
        (cfg.window, sampler::Monitor::new(cfg))
    };
    let mut tick = tokio::time::interval(window);
    // Windows stay on their grid; a late one is measured (`secs`), a missed one skipped.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    tick.tick().await;
    let mut last = Clock::now();
    {
        let Some(e) = engine.upgrade() else { return };
        monitor.tick(&e, window.as_secs_f64(), e.anomalies.now_ms());
    }
    loop {
        tick.tick().await;
        let Some(e) = engine.upgrade() else { break };
        let now = Clock::now();
        let secs = now.duration_since(last).as_secs_f64();
        last = now;
        monitor.tick(&e, secs, e.anomalies.now_ms());
    }
}

// The accessors live here, beside what they read, rather than in `cache.rs`.
impl crate::Cache {
    /// The recent anomalies (newest first, at most `anomaly.history`), open ones with
    /// `ended_at: None`. Empty when detection is off
    /// ([`AnomalyConfig::enabled`](crate::config::AnomalyConfig::enabled)) or nothing was
    /// raised; detection needs the cache built inside a tokio runtime (its sampler is a task).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let cache = cache_core::Cache::new(Default::default()).unwrap();
    /// for a in cache.anomalies() {
    ///     let line = format!("{} on {}: {} (baseline {})", a.kind.as_str(), a.scope, a.observed, a.baseline);
    ///     # let _ = line;
    /// }
    /// assert!(cache.anomalies().is_empty()); // a new cache has seen nothing unusual
    /// # }
    /// ```
    pub fn anomalies(&self) -> Vec<Anomaly> {
        self.engine.anomalies.recent()
    }

    /// How many anomalies were raised since the cache started and how many are open, per kind
    /// and severity (every pair, zeros included: what `/metrics` exports).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use cache_core::{AnomalyKind, Severity};
    /// let cache = cache_core::Cache::new(Default::default()).unwrap();
    /// let counts = cache.anomaly_counts();
    /// assert_eq!(counts.len(), AnomalyKind::ALL.len() * Severity::ALL.len());
    /// assert!(counts.iter().all(|c| c.raised == 0 && c.active == 0));
    /// # }
    /// ```
    pub fn anomaly_counts(&self) -> Vec<AnomalyCount> {
        self.engine.anomalies.counts()
    }
}
