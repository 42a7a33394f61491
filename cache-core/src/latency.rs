//! Per-operation latency histograms (HdrHistogram), L1 and L2 apart.
//!
//! Every Redis call is timed. L1 hits are timed one in [`L1_SAMPLE`] on average: reading the
//! clock twice costs more than the hit itself, so timing every hit would change what is measured.
//!
//! The sampler is a per-thread countdown (a thread-local load, compare and store on an untimed
//! hit; no lock, no shared cache line). The first L1 read on each thread is timed, so a handful
//! of reads already give an L1 row; after each timed read the next gap is drawn at random from
//! `1..2·L1_SAMPLE` (mean [`L1_SAMPLE`]), so a loop that reads keys or calls functions in a fixed
//! rhythm cannot fall between the samples (a fixed "every 64th read" never timed a function
//! called at an odd position of an even-length loop). A cached function's hit latency
//! ([`crate::perf::FnStats`]) reuses these measurements: random gaps give every function its
//! share, so it needs no countdown of its own.

use std::cell::Cell;
use std::time::Duration;

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use thread_local::ThreadLocal;

/// One L1 hit in this many is timed (on average; the first read on each thread always).
pub const L1_SAMPLE: u32 = 64;

/// Operations that are timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Get = 0,
    Set = 1,
    Mget = 2,
    Mset = 3,
    Delete = 4,
    Invalidate = 5,
}

const OPS: [&str; 6] = ["get", "set", "mget", "mset", "delete", "invalidate"];

/// Where the operation was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    L1 = 0,
    L2 = 1,
}

/// Latency summary of one operation at one level, in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct OpLatency {
    /// `get`, `set`, `mget`, `mset`, `delete` or `invalidate`.
    pub op: String,
    /// `l1` or `l2`.
    pub level: String,
    /// Recorded calls. L1: the timed ones only (`sampled`), about one read in
    /// [`L1_SAMPLE`] plus each thread's first, not the number of L1 reads.
    pub count: u64,
    /// Whether `count` and the figures come from a sample of the calls (L1) rather than every
    /// call (L2).
    #[serde(default)]
    pub sampled: bool,
    /// Mean.
    pub mean_us: f64,
    /// Median.
    pub p50_us: f64,
    /// 95th percentile.
    pub p95_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// Largest.
    pub max_us: f64,
}

/// One set of histograms per thread (merged when read): recording never waits for another
/// thread, which at a few hundred thousand Redis calls a second a shared lock would.
pub(crate) struct Latencies {
    per_thread: ThreadLocal<Mutex<Vec<Histogram<u64>>>>,
    template: Vec<Histogram<u64>>,
}

thread_local! {
    /// L1 reads left before the next timed one; 0: time the next read.
    static TICK: Cell<u32> = const { Cell::new(0) };
}

/// Whether this L1 read should be timed. Cheap when not: a thread-local countdown.
#[inline]
pub(crate) fn sample_l1() -> bool {
    TICK.with(|t| match t.get() {
        0 => {
            t.set(next_gap(L1_SAMPLE));
            true
        }
        n => {
            t.set(n - 1);
            false
        }
    })
}

/// Reads to skip before the next sample: uniform in `0..2·mean-1`, so one read in `mean` is
/// timed on average and no fixed rhythm of reads lines up with the samples. Called only when a
/// sample is taken.
#[cold]
pub(crate) fn next_gap(mean: u32) -> u32 {
    fastrand::u32(0..mean.saturating_mul(2).saturating_sub(1).max(1))
}

/// A histogram of nanoseconds, 1 ns .. 1 h at 2 significant digits (a few KiB).
pub(crate) fn new_histogram() -> Result<Histogram<u64>, hdrhistogram::CreationError> {
    Histogram::new_with_bounds(1, 3_600_000_000_000, 2)
}

impl Latencies {
    pub(crate) fn new() -> Result<Self, crate::CacheError> {
        let template = (0..OPS.len() * 2)
            .map(|_| {
                new_histogram().map_err(|e| crate::CacheError::Config(format!("latency histogram: {e}")))
            })
            .collect::<Result<_, _>>()?;
        Ok(Latencies {
            per_thread: ThreadLocal::new(),
            template,
        })
    }

    pub(crate) fn record(&self, op: Op, level: Level, d: Duration) {
        let ns = (d.as_nanos() as u64).max(1);
        let mine = self.per_thread.get_or(|| Mutex::new(self.template.clone()));
        let _ = mine.lock()[op as usize * 2 + level as usize].record(ns);
    }

    pub(crate) fn snapshot(&self) -> Vec<OpLatency> {
        let mut merged = self.template.clone();
        for thread in self.per_thread.iter() {
            for (m, h) in merged.iter_mut().zip(thread.lock().iter()) {
                let _ = m.add(h);
            }
        }
        let mut out = Vec::new();
        for (i, h) in merged.iter().enumerate() {
            if h.is_empty() {
                continue;
            }
            let us = |ns: u64| ns as f64 / 1000.0;
            out.push(OpLatency {
                op: OPS[i / 2].to_owned(),
                level: if i % 2 == 0 { "l1" } else { "l2" }.to_owned(),
                count: h.len(),
                sampled: i % 2 == 0,
                mean_us: h.mean() / 1000.0,
                p50_us: us(h.value_at_quantile(0.50)),
                p95_us: us(h.value_at_quantile(0.95)),
                p99_us: us(h.value_at_quantile(0.99)),
                max_us: us(h.max()),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_and_summarises() {
        let l = Latencies::new().unwrap();
        for us in 1..=100 {
            l.record(Op::Get, Level::L2, Duration::from_micros(us));
        }
        let s = l.snapshot();
        assert_eq!(s.len(), 1);
        assert_eq!(
            (s[0].op.as_str(), s[0].level.as_str(), s[0].count),
            ("get", "l2", 100)
        );
        assert!((s[0].p50_us - 50.0).abs() < 1.0, "{:?}", s[0]);
        assert!(s[0].p99_us >= 98.0 && s[0].max_us >= 99.0);
    }
}

#[cfg(test)]
mod l1_row_tests {
    #[test]
    fn a_few_l1_reads_give_an_l1_row() {
        // On a fresh thread (the sampler is per thread): set, then two reads.
        std::thread::scope(|s| {
            s.spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
                rt.block_on(async {
                    let cache = crate::Cache::new(Default::default()).unwrap();
                    cache.set("k", &1u32, None).await.unwrap();
                    for _ in 0..2 {
                        assert_eq!(cache.get::<u32>("k").await.unwrap(), Some(1));
                    }
                    let perf = cache.performance().await;
                    let row = perf.operations.iter().find(|o| o.op == "get" && o.level == "l1");
                    let row = row.unwrap_or_else(|| panic!("no L1 get row: {:?}", perf.operations));
                    assert!(row.count >= 1 && row.mean_us > 0.0, "{row:?}");
                });
            })
            .join()
            .unwrap();
        });
    }
}
