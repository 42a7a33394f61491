//! The optional disk tier (L3, the `disk` feature): large, expensive values that survive
//! restarts and Redis outages, on foyer (`store`), with the engine's rules for it in
//! `crate::engine::disk`.
//!
//! Without the feature [`Disk`] is a type with no values: the engine's disk paths are compiled
//! but never taken, and nothing of foyer is built.

#![cfg_attr(not(feature = "disk"), allow(dead_code))]

#[cfg(feature = "disk")]
mod record;
#[cfg(feature = "disk")]
mod rules;
#[cfg(feature = "disk")]
mod store;

#[cfg(feature = "disk")]
pub(crate) use store::{Disk, Found};

use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::stats::Counter;

/// The disk tier's figures, in [`Stats::l3`](crate::Stats::l3).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DiskStats {
    /// Whether the tier is in use (it disables itself on a failing disk).
    pub enabled: bool,
    /// Why it is not, when it was configured.
    pub disabled_reason: Option<String>,
    /// Its directory.
    pub dir: String,
    /// Its configured capacity.
    pub capacity_bytes: u64,
    /// Reads it answered.
    pub hits: u64,
    /// Reads it could not answer (no record, a stale or corrupt one, an error).
    pub misses: u64,
    /// Records found stale when checked (against Redis, or the rules without Redis) and removed.
    pub stale: u64,
    /// Records from before a restart (or an invalidation by pattern) checked and found current.
    pub verified: u64,
    /// Records handed to foyer, which writes them in batches. Counted by the writer task, off
    /// the caller's path: a write queued a moment ago shows here after [`crate::Cache::flush_disk`].
    pub writes: u64,
    /// Bytes of the records written.
    pub write_bytes: u64,
    /// Bytes of the records read.
    pub read_bytes: u64,
    /// Entries this process wrote or checked that are still there, as far as it knows.
    pub entries: u64,
    /// Their envelopes' bytes.
    pub bytes: u64,
    /// Records written here that the disk let go (a reclaimed block or a dropped write), found
    /// when read.
    pub evictions: u64,
    /// Values too large for a record (half a block), not written.
    pub too_large: u64,
    /// Writes dropped because the write queue was full (64 MiB).
    pub dropped: u64,
    /// Records whose checksum failed.
    pub corrupt: u64,
    /// Failures (open, read, probe, invalidation records), each logged.
    pub errors: u64,
    /// Bytes the device read and wrote.
    pub device_read_bytes: u64,
    /// See [`device_read_bytes`](Self::device_read_bytes).
    pub device_write_bytes: u64,
    /// Latency of a read, found or not.
    pub read_latency: LatencySummary,
    /// Latency of preparing a record and handing it to foyer, in the writer task (the disk
    /// write itself runs in foyer's flusher).
    pub write_latency: LatencySummary,
}

/// Percentiles of one latency histogram, in microseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LatencySummary {
    /// Recorded operations.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Largest.
    pub max_us: f64,
}

/// A latency histogram (disk operations take microseconds to milliseconds: a lock is cheap).
pub(crate) struct Hist(Option<Histogram<u64>>);

impl Default for Hist {
    fn default() -> Self {
        Hist(crate::latency::new_histogram().ok())
    }
}

impl Hist {
    pub(crate) fn record(&mut self, d: Duration) {
        if let Some(h) = &mut self.0 {
            let _ = h.record((d.as_nanos() as u64).max(1));
        }
    }

    fn summary(&self) -> LatencySummary {
        let Some(h) = self.0.as_ref().filter(|h| !h.is_empty()) else {
            return LatencySummary::default();
        };
        let us = |ns: u64| ns as f64 / 1000.0;
        LatencySummary {
            count: h.len(),
            p50_us: us(h.value_at_quantile(0.5)),
            p99_us: us(h.value_at_quantile(0.99)),
            max_us: us(h.max()),
        }
    }
}

/// The tier's counters.
#[derive(Default)]
pub(crate) struct DiskCounters {
    pub hits: Counter,
    pub misses: Counter,
    pub stale: Counter,
    pub verified: Counter,
    pub writes: Counter,
    pub write_bytes: Counter,
    pub read_bytes: Counter,
    pub evictions: Counter,
    pub too_large: Counter,
    pub dropped: Counter,
    pub corrupt: Counter,
    pub errors: Counter,
    pub read_latency: Mutex<Hist>,
    pub write_latency: Mutex<Hist>,
}

impl DiskCounters {
    #[cfg_attr(not(feature = "disk"), allow(dead_code))]
    pub(crate) fn snapshot(&self, entries: u64, bytes: u64) -> DiskStats {
        DiskStats {
            hits: self.hits.get(),
            misses: self.misses.get(),
            stale: self.stale.get(),
            verified: self.verified.get(),
            writes: self.writes.get(),
            write_bytes: self.write_bytes.get(),
            read_bytes: self.read_bytes.get(),
            entries,
            bytes,
            evictions: self.evictions.get(),
            too_large: self.too_large.get(),
            dropped: self.dropped.get(),
            corrupt: self.corrupt.get(),
            errors: self.errors.get(),
            read_latency: self.read_latency.lock().summary(),
            write_latency: self.write_latency.lock().summary(),
            ..Default::default()
        }
    }
}

#[cfg(not(feature = "disk"))]
pub(crate) use off::{Disk, Found};

/// The tier without the `disk` feature: no value of these types exists.
#[cfg(not(feature = "disk"))]
mod off {
    use std::sync::Arc;

    use super::DiskStats;
    use crate::config::{DiskConfig, Policy};
    use crate::error::{CacheError, Result};
    use crate::pattern::Pattern;

    pub(crate) enum Disk {}
    pub(crate) enum Found {}

    impl Found {
        pub(crate) fn envelope(&self) -> &[u8] {
            match *self {}
        }
        pub(crate) fn written_ms(&self) -> u64 {
            match *self {}
        }
        pub(crate) fn trusted_at(&self) -> Option<std::time::Instant> {
            match *self {}
        }
        pub(crate) fn redis_head(&self) -> Option<&[u8]> {
            match *self {}
        }
    }

    #[allow(clippy::unused_async, unused_variables)]
    impl Disk {
        pub(crate) fn open(c: &DiskConfig, local: bool, max_value: usize) -> Result<Arc<Disk>> {
            Err(CacheError::Config(
                "cache-core was built without its `disk` feature".into(),
            ))
        }
        pub(crate) fn policy(&self, key: &str) -> Option<Policy> {
            match *self {}
        }
        pub(crate) fn disk_first_min_size(&self) -> u64 {
            match *self {}
        }
        pub(crate) fn promote_max(&self) -> u64 {
            match *self {}
        }
        pub(crate) fn is_enabled(&self) -> bool {
            match *self {}
        }
        pub(crate) fn known_size(&self, key: &str) -> Option<u64> {
            match *self {}
        }
        pub(crate) fn holds(&self, key: &str, envelope: &[u8]) -> bool {
            match *self {}
        }
        pub(crate) async fn get(&self, key: &str) -> Option<Found> {
            match *self {}
        }
        pub(crate) fn hit(&self) {
            match *self {}
        }
        pub(crate) fn untried(&self) {
            match *self {}
        }
        pub(crate) fn refuse(&self, key: &str) {
            match *self {}
        }
        pub(crate) fn counters(&self) -> Arc<super::DiskCounters> {
            match *self {}
        }
        pub(crate) fn keep_removals_for(&self, ttl: Option<std::time::Duration>) {
            match *self {}
        }
        pub(crate) fn confirm(&self, key: &str, found: &Found, started: std::time::Instant) {
            match *self {}
        }
        pub(crate) fn ruled_out(&self, key: &str, tags: &[&str], written_ms: u64) -> bool {
            match *self {}
        }
        pub(crate) fn is_local(&self) -> bool {
            match *self {}
        }
        pub(crate) fn remove(&self, key: &str) {
            match *self {}
        }
        pub(crate) fn put_unless_changed(&self, key: &str, envelope: Vec<u8>, evicted: std::time::Instant) {
            match *self {}
        }
        pub(crate) fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
            match *self {}
        }
        pub(crate) fn untrust_all(&self) {
            match *self {}
        }
        pub(crate) fn invalidate_pattern(&self, p: &Pattern) {
            match *self {}
        }
        pub(crate) fn invalidate_tags(&self, tags: &[&str]) {
            match *self {}
        }
        pub(crate) async fn clear(&self) {
            match *self {}
        }
        pub(crate) async fn flush(&self) {
            match *self {}
        }
        pub(crate) fn stats(&self) -> DiskStats {
            match *self {}
        }
    }
}
