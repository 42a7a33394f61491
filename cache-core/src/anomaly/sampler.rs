//! The sampler: once a window, one background task per cache reads the counters the engine
//! keeps anyway, turns their growth into per-window figures, and feeds each figure to its
//! detector. Reading counters a few times a minute costs nothing measurable; the per-window
//! arithmetic runs on the task, never on a call.
//!
//! Figures per window (overall, and per key prefix for the first three):
//! - hit rate: hits / reads (overall: the exact counters, judged from `min_reads` reads;
//!   per prefix: the access tracker's sampled reads, judged from 20 recorded reads and
//!   `min_reads` estimated ones, so not at all with `access_sample_rate = 0`);
//! - misses per second, keys never seen before per second ([`super::signals`]);
//! - L1 evictions per second; the remote tier's mean read latency (from 5 reads a window),
//!   its share of failed calls (from 20 calls a window), its breaker's transitions.

use std::sync::atomic::Ordering;

use super::detector::{alpha, binomial_noise, poisson_noise, Detector, Direction, Verdict};
use super::events::{AnomalyKind, Events, Severity};
use crate::config::{AnomalyConfig, Sensitivity};
use crate::engine::Engine;

/// Recorded reads a prefix's window needs before its hit rate is judged.
const MIN_SAMPLED_READS: u64 = 20;
/// Remote reads a window needs before their latency is judged.
const MIN_L2_READS: u64 = 5;
/// Remote calls a window needs before their failures are judged.
const MIN_L2_CALLS: u64 = 20;

/// One detector and the event it has open.
struct Tracked {
    kind: AnomalyKind,
    up: bool,
    z: f64,
    detector: Detector,
    open: Option<u64>,
}

impl Tracked {
    fn new(kind: AnomalyKind, s: Sensitivity, direction: Direction, cfg: &AnomalyConfig) -> Self {
        let half_life = cfg.baseline_half_life.as_secs_f64() / cfg.window.as_secs_f64();
        Tracked {
            kind,
            up: direction == Direction::Up,
            z: s.z,
            detector: Detector::new(s, direction, alpha(half_life), cfg.warmup_windows),
            open: None,
        }
    }

    fn feed(&mut self, scope: &str, value: f64, noise: impl Fn(f64) -> f64, events: &Events, now_ms: u64) {
        match self.detector.observe(value, noise) {
            Verdict::Start(trip) => {
                let severity = if trip.score >= 2.0 * self.z {
                    Severity::Critical
                } else {
                    Severity::Warning
                };
                self.open = Some(events.start(self.kind, scope, severity, trip, now_ms));
            }
            Verdict::Ongoing(trip) => {
                if let Some(id) = self.open {
                    events.ongoing(id, trip.value, self.up);
                }
            }
            Verdict::End => {
                if let Some(id) = self.open.take() {
                    events.end(id, now_ms);
                }
            }
            Verdict::Quiet => {}
        }
        events.nearest(self.kind, self.detector.nearest());
    }
}

/// The detectors of one scope (the whole cache, or one prefix).
struct Scope {
    name: Box<str>,
    hit_rate: Tracked,
    misses: Tracked,
    new_keys: Tracked,
}

impl Scope {
    fn new(name: &str, cfg: &AnomalyConfig) -> Self {
        Scope {
            name: name.into(),
            hit_rate: Tracked::new(AnomalyKind::HitRateDrop, cfg.hit_rate_drop, Direction::Down, cfg),
            misses: Tracked::new(AnomalyKind::MissStorm, cfg.miss_storm, Direction::Up, cfg),
            new_keys: Tracked::new(
                AnomalyKind::KeyCardinality,
                cfg.key_cardinality,
                Direction::Up,
                cfg,
            ),
        }
    }

    /// One window's misses and never-seen keys (counts over `secs`), as rates per second.
    fn feed_counts(&mut self, misses: u64, new_keys: u64, secs: f64, events: &Events, now_ms: u64) {
        let noise = |m: f64| poisson_noise(m, secs);
        self.misses
            .feed(&self.name, misses as f64 / secs, noise, events, now_ms);
        self.new_keys
            .feed(&self.name, new_keys as f64 / secs, noise, events, now_ms);
    }
}

/// A prefix's cumulative figures.
#[derive(Debug, Default, Clone, Copy)]
struct PrefixReading {
    misses: u64,
    new_keys: u64,
    /// Recorded (sampled) reads and hits.
    reads: u64,
    hits: u64,
}

/// The cumulative counters at one instant.
#[derive(Debug, Default, Clone)]
struct Reading {
    hits: u64,
    misses: u64,
    new_keys: u64,
    evictions: u64,
    l2_reads: u64,
    l2_read_us: u64,
    l2_calls: u64,
    errors: u64,
    transitions: u64,
    prefixes: Vec<PrefixReading>,
}

impl Reading {
    fn take(engine: &Engine) -> Self {
        let c = &engine.counters;
        let s = &engine.signals;
        let sampled = engine.access.prefix_reads();
        let prefixes = s
            .prefixes
            .all()
            .iter()
            .enumerate()
            .map(|(slot, (_, counts))| {
                let [reads, hits] = sampled.get(slot).copied().unwrap_or([0, 0]);
                PrefixReading {
                    misses: counts.misses.load(Ordering::Relaxed),
                    new_keys: counts.new_keys.load(Ordering::Relaxed),
                    reads,
                    hits,
                }
            })
            .collect();
        Reading {
            hits: c.l1_hits.get() + c.l2_hits.get() + c.l3_hits.get() + c.coalesced.get(),
            misses: c.misses.get(),
            new_keys: s.new_keys.load(Ordering::Relaxed),
            evictions: engine.l1.as_ref().map_or(0, |l1| l1.evictions()),
            l2_reads: s.l2_reads.load(Ordering::Relaxed),
            l2_read_us: s.l2_read_us.load(Ordering::Relaxed),
            l2_calls: s.l2_calls.load(Ordering::Relaxed),
            errors: c.errors.get(),
            transitions: engine.remote.as_ref().map_or(0, |r| r.breaker_transitions()),
            prefixes,
        }
    }
}

/// Every detector of one cache, fed by its sampler task.
pub(crate) struct Monitor {
    cfg: AnomalyConfig,
    last: Option<Reading>,
    overall: Scope,
    prefixes: Vec<Scope>,
    latency: Tracked,
    errors: Tracked,
    evictions: Tracked,
    flapping: Tracked,
}

impl Monitor {
    pub(crate) fn new(cfg: &AnomalyConfig) -> Self {
        Monitor {
            last: None,
            overall: Scope::new("*", cfg),
            prefixes: Vec::new(),
            latency: Tracked::new(AnomalyKind::L2Latency, cfg.l2_latency, Direction::Up, cfg),
            errors: Tracked::new(AnomalyKind::L2Errors, cfg.l2_errors, Direction::Up, cfg),
            evictions: Tracked::new(AnomalyKind::EvictionStorm, cfg.eviction_storm, Direction::Up, cfg),
            flapping: Tracked::new(
                AnomalyKind::BreakerFlapping,
                cfg.breaker_flapping,
                Direction::Up,
                cfg,
            ),
            cfg: cfg.clone(),
        }
    }

    /// One window: `secs` since the last one, `now_ms` its end (unix ms on the cache's clock).
    pub(crate) fn tick(&mut self, engine: &Engine, secs: f64, now_ms: u64) {
        let now = Reading::take(engine);
        let Some(prev) = self.last.replace(now.clone()) else {
            return;
        };
        let secs = secs.max(1e-3);
        let events = &engine.anomalies;
        let d = |a: u64, b: u64| a.saturating_sub(b);
        let min_reads = self.cfg.min_reads;

        let o = &mut self.overall;
        let reads = d(now.hits, prev.hits) + d(now.misses, prev.misses);
        if reads >= min_reads.max(1) {
            let rate = d(now.hits, prev.hits) as f64 / reads as f64;
            o.hit_rate
                .feed(&o.name, rate, |m| binomial_noise(m, reads), events, now_ms);
        }
        o.feed_counts(
            d(now.misses, prev.misses),
            d(now.new_keys, prev.new_keys),
            secs,
            events,
            now_ms,
        );

        if engine.l1.is_some() {
            let ev = d(now.evictions, prev.evictions) as f64 / secs;
            self.evictions
                .feed("*", ev, |m| poisson_noise(m, secs), events, now_ms);
        }
        if engine.remote.is_some() {
            let l2_reads = d(now.l2_reads, prev.l2_reads);
            if l2_reads >= MIN_L2_READS {
                let ms = d(now.l2_read_us, prev.l2_read_us) as f64 / l2_reads as f64 / 1000.0;
                self.latency.feed("*", ms, |_| 0.0, events, now_ms);
            }
            let calls = d(now.l2_calls, prev.l2_calls);
            if calls >= MIN_L2_CALLS {
                let failed = (d(now.errors, prev.errors) as f64 / calls as f64).min(1.0);
                self.errors
                    .feed("*", failed, |m| binomial_noise(m, calls), events, now_ms);
            }
            let flips = d(now.transitions, prev.transitions) as f64;
            self.flapping
                .feed("*", flips, |m| m.max(1.0).sqrt(), events, now_ms);
        }

        let names = engine.signals.prefixes.all();
        let rate = u64::from(engine.access.sample_rate());
        for (slot, cur) in now.prefixes.iter().enumerate() {
            if self.prefixes.len() <= slot {
                let Some((name, _)) = names.get(slot) else { break };
                self.prefixes.push(Scope::new(name, &self.cfg));
            }
            let before = prev.prefixes.get(slot).copied().unwrap_or_default();
            let p = &mut self.prefixes[slot];
            let sampled = d(cur.reads, before.reads);
            if rate > 0 && sampled >= MIN_SAMPLED_READS && sampled * rate >= min_reads {
                let hr = d(cur.hits, before.hits) as f64 / sampled as f64;
                p.hit_rate
                    .feed(&p.name, hr, |m| binomial_noise(m, sampled), events, now_ms);
            }
            p.feed_counts(
                d(cur.misses, before.misses),
                d(cur.new_keys, before.new_keys),
                secs,
                events,
                now_ms,
            );
        }
    }
}
