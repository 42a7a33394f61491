//! Prometheus export through the `metrics` facade. The cache's counters are copied into the
//! recorder when `/metrics` is scraped, so the cache's hot paths never touch the facade.

use std::sync::OnceLock;

use cache_core::Stats;
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

pub(crate) fn publish(s: &Stats) {
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
            metrics::gauge!("cache_l3_latency_p50_us", "op" => op).set(lat.p50_us);
            metrics::gauge!("cache_l3_latency_p99_us", "op" => op).set(lat.p99_us);
        }
    }
    if let Some(info) = &s.redis_info {
        metrics::gauge!("cache_redis_used_memory_bytes").set(info.used_memory as f64);
        metrics::gauge!("cache_redis_connected_clients").set(info.connected_clients as f64);
    }
}
