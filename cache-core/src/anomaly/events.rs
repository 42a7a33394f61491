//! Anomaly events: what a detector raised, kept in a bounded ring of recent events and counted
//! for `/metrics`. Each start is a `tracing` warning and each end an info line, with the
//! figures that tripped it.

use std::collections::{HashMap, VecDeque};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::detector::Trip;
use super::Stamp;

/// What went wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum AnomalyKind {
    /// The hit rate fell (`observed` and `baseline` are fractions).
    HitRateDrop,
    /// Misses per second rose.
    MissStorm,
    /// Keys never seen before, per second, rose: often a timestamp or a request id in the key.
    KeyCardinality,
    /// The remote tier's mean read latency rose (milliseconds).
    L2Latency,
    /// The share of remote calls that failed rose (fraction).
    L2Errors,
    /// L1 evictions per second rose.
    EvictionStorm,
    /// The circuit breaker opened and closed again and again (transitions per window).
    BreakerFlapping,
}

impl AnomalyKind {
    /// Every kind, in a stable order.
    pub const ALL: [AnomalyKind; 7] = [
        AnomalyKind::HitRateDrop,
        AnomalyKind::MissStorm,
        AnomalyKind::KeyCardinality,
        AnomalyKind::L2Latency,
        AnomalyKind::L2Errors,
        AnomalyKind::EvictionStorm,
        AnomalyKind::BreakerFlapping,
    ];

    /// The name used in JSON, logs and metric labels.
    ///
    /// ```
    /// assert_eq!(cache_core::AnomalyKind::MissStorm.as_str(), "miss_storm");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            AnomalyKind::HitRateDrop => "hit_rate_drop",
            AnomalyKind::MissStorm => "miss_storm",
            AnomalyKind::KeyCardinality => "key_cardinality",
            AnomalyKind::L2Latency => "l2_latency",
            AnomalyKind::L2Errors => "l2_errors",
            AnomalyKind::EvictionStorm => "eviction_storm",
            AnomalyKind::BreakerFlapping => "breaker_flapping",
        }
    }

    /// The unit of its `observed`, `baseline` and `threshold`.
    pub(crate) fn unit(self) -> &'static str {
        match self {
            AnomalyKind::HitRateDrop | AnomalyKind::L2Errors => "fraction",
            AnomalyKind::MissStorm | AnomalyKind::KeyCardinality | AnomalyKind::EvictionStorm => "per_second",
            AnomalyKind::L2Latency => "ms",
            AnomalyKind::BreakerFlapping => "per_window",
        }
    }
}

/// How far past its threshold an anomaly started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Severity {
    /// Past the detector's threshold.
    Warning,
    /// At least twice its `z` robust deviations past the baseline.
    Critical,
}

impl Severity {
    /// Every severity.
    pub const ALL: [Severity; 2] = [Severity::Warning, Severity::Critical];

    /// The name used in JSON, logs and metric labels.
    ///
    /// ```
    /// assert_eq!(cache_core::Severity::Critical.as_str(), "critical");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// One anomaly a detector raised ([`Cache::anomalies`](crate::Cache::anomalies)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Anomaly {
    /// Its number in this process (increasing).
    pub id: u64,
    /// What went wrong.
    pub kind: AnomalyKind,
    /// `"*"`: the whole cache; otherwise the key prefix it was seen on (`query`,
    /// `app::get_user`, `~other` for prefixes past `anomaly.max_prefixes`).
    pub scope: String,
    /// How far past the threshold it started.
    pub severity: Severity,
    /// When it started (the end of the window that raised it), unix milliseconds.
    pub started_at: u64,
    /// When it ended; `None` while it goes on.
    pub ended_at: Option<u64>,
    /// The figure of the window that raised it, in `unit`.
    pub observed: f64,
    /// What the figure normally was (its baseline then).
    pub baseline: f64,
    /// What it had to pass.
    pub threshold: f64,
    /// Robust deviations past the baseline (the "z" it reached).
    pub score: f64,
    /// The worst figure seen while it went on.
    pub peak: f64,
    /// `per_second`, `fraction`, `ms` or `per_window`.
    pub unit: String,
}

/// How many anomalies of one kind and severity were raised, and how many are open
/// ([`Cache::anomaly_counts`](crate::Cache::anomaly_counts)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AnomalyCount {
    /// The kind.
    pub kind: AnomalyKind,
    /// The severity.
    pub severity: Severity,
    /// Raised since the cache started.
    pub raised: u64,
    /// Still open.
    pub active: u64,
}

struct Inner {
    recent: VecDeque<Anomaly>,
    next_id: u64,
    raised: HashMap<(AnomalyKind, Severity), u64>,
    /// Open events: id → kind and severity (also those the ring dropped).
    open: HashMap<u64, (AnomalyKind, Severity)>,
    /// Per kind, the closest any detector came to tripping without an event open (1 trips).
    nearest: HashMap<AnomalyKind, f64>,
}

/// The events of one cache.
pub(crate) struct Events {
    keep: usize,
    stamp: Stamp,
    inner: Mutex<Inner>,
}

impl Events {
    pub(crate) fn new(keep: usize) -> Self {
        Events {
            keep: keep.max(1),
            stamp: Stamp::new(),
            inner: Mutex::new(Inner {
                recent: VecDeque::new(),
                next_id: 1,
                raised: HashMap::new(),
                open: HashMap::new(),
                nearest: HashMap::new(),
            }),
        }
    }

    /// Unix milliseconds now, on the windows' clock ([`Stamp`]).
    pub(crate) fn now_ms(&self) -> u64 {
        self.stamp.now_ms()
    }

    /// Opens an event; its id.
    pub(crate) fn start(
        &self,
        kind: AnomalyKind,
        scope: &str,
        severity: Severity,
        trip: Trip,
        now_ms: u64,
    ) -> u64 {
        let mut inner = self.inner.lock();
        let id = inner.next_id;
        inner.next_id += 1;
        *inner.raised.entry((kind, severity)).or_default() += 1;
        inner.open.insert(id, (kind, severity));
        if inner.recent.len() >= self.keep {
            inner.recent.pop_front();
        }
        inner.recent.push_back(Anomaly {
            id,
            kind,
            scope: scope.to_owned(),
            severity,
            started_at: now_ms,
            ended_at: None,
            observed: trip.value,
            baseline: trip.baseline,
            threshold: trip.threshold,
            score: trip.score,
            peak: trip.value,
            unit: kind.unit().to_owned(),
        });
        drop(inner);
        tracing::warn!(
            anomaly.id = id,
            anomaly.kind = kind.as_str(),
            anomaly.scope = scope,
            anomaly.severity = severity.as_str(),
            anomaly.observed = trip.value,
            anomaly.baseline = trip.baseline,
            anomaly.threshold = trip.threshold,
            anomaly.score = trip.score,
            anomaly.unit = kind.unit(),
            "cache anomaly started"
        );
        id
    }

    /// The open event `id` saw another window past normal: its peak follows.
    pub(crate) fn ongoing(&self, id: u64, value: f64, up: bool) {
        let mut inner = self.inner.lock();
        if let Some(a) = inner.recent.iter_mut().rev().find(|a| a.id == id) {
            let worse = if up { value > a.peak } else { value < a.peak };
            if worse && value.is_finite() {
                a.peak = value;
            }
        }
    }

    /// Closes the event `id`.
    pub(crate) fn end(&self, id: u64, now_ms: u64) {
        let mut inner = self.inner.lock();
        let Some((kind, _)) = inner.open.remove(&id) else {
            return;
        };
        let mut scope = String::new();
        let mut lasted = 0;
        let mut peak = f64::NAN;
        if let Some(a) = inner.recent.iter_mut().rev().find(|a| a.id == id) {
            a.ended_at = Some(now_ms);
            scope.clone_from(&a.scope);
            lasted = now_ms.saturating_sub(a.started_at);
            peak = a.peak;
        }
        drop(inner);
        tracing::info!(
            anomaly.id = id,
            anomaly.kind = kind.as_str(),
            anomaly.scope = scope,
            anomaly.duration_ms = lasted,
            anomaly.peak = peak,
            "cache anomaly ended"
        );
    }

    /// A detector of `kind` came within `ratio` of its trip distance (kept: the largest).
    pub(crate) fn nearest(&self, kind: AnomalyKind, ratio: f64) {
        let mut inner = self.inner.lock();
        let n = inner.nearest.entry(kind).or_default();
        *n = n.max(ratio);
    }

    /// Per kind, the closest call so far (the simulator's margin).
    #[cfg(all(test, feature = "tokio-clock"))]
    pub(crate) fn closest(&self, kind: AnomalyKind) -> f64 {
        self.inner.lock().nearest.get(&kind).copied().unwrap_or(0.0)
    }

    /// The recent events, newest first.
    pub(crate) fn recent(&self) -> Vec<Anomaly> {
        self.inner.lock().recent.iter().rev().cloned().collect()
    }

    /// One row per kind and severity, zeros included.
    pub(crate) fn counts(&self) -> Vec<AnomalyCount> {
        let inner = self.inner.lock();
        let mut rows = Vec::with_capacity(AnomalyKind::ALL.len() * Severity::ALL.len());
        for kind in AnomalyKind::ALL {
            for severity in Severity::ALL {
                rows.push(AnomalyCount {
                    kind,
                    severity,
                    raised: inner.raised.get(&(kind, severity)).copied().unwrap_or(0),
                    active: inner.open.values().filter(|o| **o == (kind, severity)).count() as u64,
                });
            }
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trip(v: f64) -> Trip {
        Trip {
            value: v,
            baseline: 1.0,
            threshold: 2.0,
            score: 9.0,
        }
    }

    /// A shared buffer the test subscriber writes to.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Held by the tests of this module that start and end events: tracing caches each call
    /// site's interest when it is first hit, and a first hit on another thread while no
    /// subscriber listened there left the end line unseen.
    static EMITTING: Mutex<()> = Mutex::new(());

    #[test]
    fn a_start_is_a_warning_and_an_end_an_info_line_with_the_numbers() {
        let _one_at_a_time = EMITTING.lock();
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            // Another test may have registered these call sites while no subscriber listened
            // (interest "never", cached): ask again now that one does.
            tracing::callsite::rebuild_interest_cache();
            let e = Events::new(4);
            let id = e.start(
                AnomalyKind::KeyCardinality,
                "user",
                Severity::Critical,
                trip(42.0),
                1000,
            );
            e.end(id, 61_000);
        });
        let text = String::from_utf8(out.0.lock().clone()).unwrap();
        let started = text
            .lines()
            .find(|l| l.contains("cache anomaly started"))
            .unwrap_or("");
        assert!(started.contains("WARN"), "{text}");
        for field in [
            "anomaly.kind=\"key_cardinality\"",
            "anomaly.scope=\"user\"",
            "anomaly.severity=\"critical\"",
            "anomaly.observed=42",
            "anomaly.baseline=1",
            "anomaly.threshold=2",
        ] {
            assert!(started.contains(field), "{field} in {started}");
        }
        let ended = text
            .lines()
            .find(|l| l.contains("cache anomaly ended"))
            .unwrap_or("");
        assert!(
            ended.contains("INFO") && ended.contains("anomaly.duration_ms=60000"),
            "{text}"
        );
    }

    #[test]
    fn the_ring_is_bounded_and_counts_outlive_it() {
        let _one_at_a_time = EMITTING.lock();
        let e = Events::new(2);
        let a = e.start(AnomalyKind::MissStorm, "*", Severity::Warning, trip(5.0), 1000);
        let b = e.start(
            AnomalyKind::MissStorm,
            "query",
            Severity::Critical,
            trip(6.0),
            2000,
        );
        e.ongoing(b, 9.0, true);
        e.ongoing(b, 7.0, true);
        let c = e.start(AnomalyKind::L2Latency, "*", Severity::Warning, trip(50.0), 3000);
        e.end(b, 4000);
        let recent = e.recent();
        assert_eq!(recent.iter().map(|a| a.id).collect::<Vec<_>>(), [c, b]);
        assert_eq!((recent[1].peak, recent[1].ended_at), (9.0, Some(4000)));
        assert_eq!(recent[0].ended_at, None);
        let counts = e.counts();
        assert_eq!(counts.len(), 14);
        let row = |k, s| {
            counts
                .iter()
                .find(|r| r.kind == k && r.severity == s)
                .cloned()
                .unwrap()
        };
        assert_eq!(row(AnomalyKind::MissStorm, Severity::Warning).raised, 1);
        assert_eq!(
            row(AnomalyKind::MissStorm, Severity::Warning).active,
            1,
            "a: open, dropped from the ring"
        );
        assert_eq!(row(AnomalyKind::MissStorm, Severity::Critical).active, 0);
        e.end(a, 5000);
        assert_eq!(e.counts().iter().map(|r| r.active).sum::<u64>(), 1);
        let json = serde_json::to_value(&e.recent()[0]).unwrap();
        assert_eq!(
            (json["kind"].as_str(), json["unit"].as_str()),
            (Some("l2_latency"), Some("ms"))
        );
    }
}
