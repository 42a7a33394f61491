//! Prometheus export through the `metrics` facade. The cache's counters are copied into the
//! recorder when `/metrics` is scraped, so the cache's hot paths never touch the facade.
//!
//! Every metric is described (`# HELP`, with its unit where it has one), so the output passes
//! `promtool check metrics` (tested in `tests/tests/metrics_export.rs`).
//!
//! **Redis down.** `cache_redis_up` is 1 while the scrape's `INFO` got an answer, 0 when it did
//! not (Redis unreachable, or skipped by the open circuit breaker), and
//! `cache_redis_breaker_state` says where the breaker stands (0 closed, 1 half-open, 2 open).
//! The gauges copied from `INFO` (`cache_redis_used_memory_bytes`,
//! `cache_redis_connected_clients`) are then set to `NaN`: the exporter
//! (`metrics-exporter-prometheus`) cannot remove one series (only an idle timeout over every
//! gauge of the process, which would also drop the application's own), and zero would be a
//! false reading ("Redis uses 0 bytes"). `NaN` is Prometheus's "no value": graphs show a gap and
//! comparisons in alert rules are false. In L1-only mode none of the `cache_redis_*` series is
//! written.

use std::sync::{Once, OnceLock};

use cache_core::{AnomalyCount, AnomalyKind, BreakerState, Stats};
use metrics::Unit;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process's Prometheus recorder, installed on first use. `None` when another recorder was
/// installed by the application (its exporter then serves these metrics).
pub(crate) fn handle() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| match PrometheusBuilder::new().install_recorder() {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "a metrics recorder is already installed; /metrics will be empty");
                None
            }
        })
        .as_ref()
}

/// Every metric [`publish`] writes: name, kind, unit, help text.
pub(crate) const METRICS: &[(&str, Kind, Option<Unit>, &str)] = &[
    (
        "cache_hits_total",
        Kind::Counter,
        None,
        "Reads answered by the cache, by tier (level: l1, l2, l3).",
    ),
    (
        "cache_coalesced_total",
        Kind::Counter,
        None,
        "Callers that waited for another caller's load of the same key (single flight); counted in hits.",
    ),
    (
        "cache_misses_total",
        Kind::Counter,
        None,
        "Reads answered by no tier.",
    ),
    (
        "cache_errors_total",
        Kind::Counter,
        None,
        "Cache failures (Redis errors, timeouts, undecodable entries) that were logged and absorbed.",
    ),
    (
        "cache_l2_skipped_total",
        Kind::Counter,
        None,
        "Redis calls skipped because the circuit breaker was open.",
    ),
    (
        "cache_compressions_total",
        Kind::Counter,
        None,
        "Values stored compressed.",
    ),
    (
        "cache_compression_saved_bytes_total",
        Kind::Counter,
        Some(Unit::Bytes),
        "Bytes compression saved across all writes.",
    ),
    ("cache_sets_total", Kind::Counter, None, "Values written."),
    (
        "cache_loader_calls_total",
        Kind::Counter,
        None,
        "Times a loader (the cached function itself) ran.",
    ),
    (
        "cache_tag_stale_total",
        Kind::Counter,
        None,
        "Redis entries read as misses because one of their tags was invalidated after they were loaded.",
    ),
    (
        "cache_tag_invalidations_total",
        Kind::Counter,
        None,
        "Tags this instance invalidated, by tag prefix (the text before the first ':').",
    ),
    (
        "cache_bypassed_total",
        Kind::Counter,
        None,
        "Cached calls that ran their function directly because the cache was off.",
    ),
    (
        "cache_enabled",
        Kind::Gauge,
        None,
        "1 while the cache is on, 0 while it is switched off (CACHE_ENABLED, POST /api/v1/cache/enabled).",
    ),
    (
        "cache_hit_rate",
        Kind::Gauge,
        None,
        "hits / (hits + misses) since start; 0 before any read.",
    ),
    (
        "cache_l1_entries",
        Kind::Gauge,
        None,
        "Entries in L1 (in-process).",
    ),
    (
        "cache_l1_bytes",
        Kind::Gauge,
        Some(Unit::Bytes),
        "Approximate bytes held by L1 (encoded value sizes plus keys).",
    ),
    (
        "cache_l3_enabled",
        Kind::Gauge,
        None,
        "1 while the disk tier (L3) works, 0 once it disabled itself after failures.",
    ),
    (
        "cache_l3_hits_total",
        Kind::Counter,
        None,
        "Disk tier reads that found a live entry.",
    ),
    (
        "cache_l3_misses_total",
        Kind::Counter,
        None,
        "Disk tier reads that found nothing.",
    ),
    (
        "cache_l3_stale_total",
        Kind::Counter,
        None,
        "Disk tier records found stale or failing their check.",
    ),
    (
        "cache_l3_writes_total",
        Kind::Counter,
        None,
        "Entries written to the disk tier.",
    ),
    (
        "cache_l3_write_bytes_total",
        Kind::Counter,
        Some(Unit::Bytes),
        "Bytes written to the disk tier.",
    ),
    (
        "cache_l3_read_bytes_total",
        Kind::Counter,
        Some(Unit::Bytes),
        "Bytes read from the disk tier.",
    ),
    (
        "cache_l3_evictions_total",
        Kind::Counter,
        None,
        "Entries the disk tier evicted for room.",
    ),
    (
        "cache_l3_corrupt_total",
        Kind::Counter,
        None,
        "Corrupt disk tier records (read as misses and removed).",
    ),
    (
        "cache_l3_errors_total",
        Kind::Counter,
        None,
        "Disk tier I/O errors.",
    ),
    (
        "cache_l3_entries",
        Kind::Gauge,
        None,
        "Entries in the disk tier (those this process wrote or checked).",
    ),
    (
        "cache_l3_bytes",
        Kind::Gauge,
        Some(Unit::Bytes),
        "Bytes of those entries.",
    ),
    (
        "cache_l3_latency_p50_seconds",
        Kind::Gauge,
        Some(Unit::Seconds),
        "Median latency of a disk tier operation (op: read, write).",
    ),
    (
        "cache_l3_latency_p99_seconds",
        Kind::Gauge,
        Some(Unit::Seconds),
        "99th percentile latency of a disk tier operation (op: read, write).",
    ),
    (
        "cache_anomalies_total",
        Kind::Counter,
        None,
        "Anomalies the cache's detectors raised, by kind and severity (GET /api/v1/cache/anomalies lists them).",
    ),
    (
        "cache_anomalies_active",
        Kind::Gauge,
        None,
        "Anomalies open now, by kind.",
    ),
    (
        "cache_redis_up",
        Kind::Gauge,
        None,
        "1 when Redis answered this scrape's INFO, 0 when it is unreachable or skipped by the open breaker.",
    ),
    (
        "cache_redis_breaker_state",
        Kind::Gauge,
        None,
        "Circuit breaker in front of Redis: 0 closed, 1 half-open, 2 open.",
    ),
    (
        "cache_redis_used_memory_bytes",
        Kind::Gauge,
        Some(Unit::Bytes),
        "Redis used_memory (INFO); NaN while cache_redis_up is 0.",
    ),
    (
        "cache_redis_connected_clients",
        Kind::Gauge,
        None,
        "Redis connected_clients (INFO); NaN while cache_redis_up is 0.",
    ),
];

/// The kind of a metric in [`METRICS`].
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Counter,
    Gauge,
}

/// Registers the help text and unit of every metric with the recorder (once; after it is
/// installed, which [`handle`] does before the first [`publish`]).
fn describe() {
    static DESCRIBED: Once = Once::new();
    DESCRIBED.call_once(|| {
        for &(name, kind, unit, help) in METRICS {
            match (kind, unit) {
                (Kind::Counter, Some(u)) => metrics::describe_counter!(name, u, help),
                (Kind::Counter, None) => metrics::describe_counter!(name, help),
                (Kind::Gauge, Some(u)) => metrics::describe_gauge!(name, u, help),
                (Kind::Gauge, None) => metrics::describe_gauge!(name, help),
            }
        }
    });
}

pub(crate) fn publish(s: &Stats) {
    describe();
    metrics::counter!("cache_hits_total", "level" => "l1").absolute(s.l1_hits);
    metrics::counter!("cache_hits_total", "level" => "l2").absolute(s.l2_hits);
    metrics::counter!("cache_hits_total", "level" => "l3").absolute(s.l3_hits);
    metrics::counter!("cache_coalesced_total").absolute(s.coalesced);
    metrics::counter!("cache_misses_total").absolute(s.misses);
    metrics::counter!("cache_errors_total").absolute(s.errors);
    metrics::counter!("cache_l2_skipped_total").absolute(s.l2_skipped);
    metrics::counter!("cache_compressions_total").absolute(s.compressions);
    metrics::counter!("cache_compression_saved_bytes_total").absolute(s.bytes_saved);
    metrics::counter!("cache_sets_total").absolute(s.sets);
    metrics::counter!("cache_loader_calls_total").absolute(s.loader_calls);
    metrics::counter!("cache_tag_stale_total").absolute(s.tag_stale);
    for (prefix, n) in &s.tag_invalidations_by_prefix {
        metrics::counter!("cache_tag_invalidations_total", "prefix" => prefix.clone()).absolute(*n);
    }
    metrics::counter!("cache_bypassed_total").absolute(s.bypassed);
    metrics::gauge!("cache_enabled").set(if s.enabled { 1.0 } else { 0.0 });
    metrics::gauge!("cache_hit_rate").set(s.hit_rate);
    metrics::gauge!("cache_l1_entries").set(s.local_cache_size as f64);
    metrics::gauge!("cache_l1_bytes").set(s.local_cache_bytes as f64);
    if let Some(l3) = &s.l3 {
        metrics::gauge!("cache_l3_enabled").set(if l3.enabled { 1.0 } else { 0.0 });
        metrics::counter!("cache_l3_hits_total").absolute(l3.hits);
        metrics::counter!("cache_l3_misses_total").absolute(l3.misses);
        metrics::counter!("cache_l3_stale_total").absolute(l3.stale);
        metrics::counter!("cache_l3_writes_total").absolute(l3.writes);
        metrics::counter!("cache_l3_write_bytes_total").absolute(l3.write_bytes);
        metrics::counter!("cache_l3_read_bytes_total").absolute(l3.read_bytes);
        metrics::counter!("cache_l3_evictions_total").absolute(l3.evictions);
        metrics::counter!("cache_l3_corrupt_total").absolute(l3.corrupt);
        metrics::counter!("cache_l3_errors_total").absolute(l3.errors);
        metrics::gauge!("cache_l3_entries").set(l3.entries as f64);
        metrics::gauge!("cache_l3_bytes").set(l3.bytes as f64);
        for (op, lat) in [("read", &l3.read_latency), ("write", &l3.write_latency)] {
            metrics::gauge!("cache_l3_latency_p50_seconds", "op" => op).set(lat.p50_us / 1e6);
            metrics::gauge!("cache_l3_latency_p99_seconds", "op" => op).set(lat.p99_us / 1e6);
        }
    }
    // `breaker` is `Some` exactly when a Redis is configured.
    if let Some(breaker) = s.breaker {
        metrics::gauge!("cache_redis_breaker_state").set(match breaker {
            BreakerState::Closed => 0.0,
            BreakerState::HalfOpen => 1.0,
            BreakerState::Open => 2.0,
        });
        let info = s.redis_info.as_ref();
        metrics::gauge!("cache_redis_up").set(if info.is_some() { 1.0 } else { 0.0 });
        // Stale values must not stay on display: NaN (no value) while Redis does not answer.
        let (memory, clients) = info.map_or((f64::NAN, f64::NAN), |i| {
            (i.used_memory as f64, i.connected_clients as f64)
        });
        metrics::gauge!("cache_redis_used_memory_bytes").set(memory);
        metrics::gauge!("cache_redis_connected_clients").set(clients);
    }
}

/// The anomaly counters: every kind and severity, zeros included, so alert rules see the
/// series before the first anomaly.
pub(crate) fn publish_anomalies(counts: &[AnomalyCount]) {
    describe();
    for kind in AnomalyKind::ALL {
        let mut active = 0;
        for c in counts.iter().filter(|c| c.kind == kind) {
            metrics::counter!(
                "cache_anomalies_total",
                "kind" => kind.as_str(),
                "severity" => c.severity.as_str()
            )
            .absolute(c.raised);
            active += c.active;
        }
        metrics::gauge!("cache_anomalies_active", "kind" => kind.as_str()).set(active as f64);
    }
}
