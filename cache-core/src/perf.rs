//! Performance utilities: per-function execution statistics and a timing helper.
//!
//! Every macro-cached function has a [`FnStats`] (a `static` in its expansion): hits, loads, the
//! loader's own run time on a miss (HdrHistogram) and a sampled L1 hit latency: the L1 reads
//! the engine times ([`crate::latency`]: each thread's first, then about one in
//! [`L1_SAMPLE`](crate::latency::L1_SAMPLE) at random gaps, so functions called in a fixed
//! order each get their share; with every 64th read timed, one called at an odd position of an
//! even-length loop was never timed and reported 0.0). [`functions`] reports
//! them with the estimated time the cache saved (hits × mean load time). [`measure`] times any
//! future into the same kind of record under a label.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crossbeam_utils::CachePadded;
use thread_local::ThreadLocal;

/// One thread's counts of a [`FnStats`].
#[derive(Default)]
struct Counts {
    hits: AtomicU64,
    past_l1: AtomicU64,
    loads: AtomicU64,
}

/// Statistics of one cached function (or one [`measure`] label).
pub struct FnStats {
    name: &'static str,
    registered: AtomicBool,
    /// The three counts in one slot per thread: one `ThreadLocal` is ≈ 0.5 KB of static data,
    /// and every cached function has this record (three of them made 1.7 KB a function).
    counts: ThreadLocal<CachePadded<Counts>>,
    load_time: Mutex<Option<Histogram<u64>>>,
    hit_time: Mutex<Option<Histogram<u64>>>,
    /// Entries its `max_entries` evicted from L1 ([`EntryLimit`]).
    evicted: AtomicU64,
}

pub use crate::limit::EntryLimit;

fn registry() -> &'static Mutex<Vec<&'static FnStats>> {
    static REGISTRY: OnceLock<Mutex<Vec<&'static FnStats>>> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(Vec::new()))
}

fn record(h: &Mutex<Option<Histogram<u64>>>, d: Duration) {
    let mut h = h.lock();
    if h.is_none() {
        *h = crate::latency::new_histogram().ok();
    }
    if let Some(h) = h.as_mut() {
        let _ = h.record((d.as_nanos() as u64).max(1));
    }
}

impl FnStats {
    /// A record named `name` (the macros use the function's path). `const`, so it can be a
    /// `static`.
    pub const fn new(name: &'static str) -> Self {
        FnStats {
            name,
            registered: AtomicBool::new(false),
            counts: ThreadLocal::new(),
            load_time: Mutex::new(None),
            hit_time: Mutex::new(None),
            evicted: AtomicU64::new(0),
        }
    }

    #[inline]
    fn register(&'static self) {
        // A plain load first: the locked swap would cost every call a contended write.
        if !self.registered.load(Ordering::Acquire) && !self.registered.swap(true, Ordering::AcqRel) {
            registry().lock().push(self);
        }
    }

    /// A hit; `took` when this one was timed (sampled).
    #[inline]
    pub fn hit(&'static self, took: Option<Duration>) {
        self.bump(|c| &c.hits);
        if let Some(d) = took {
            self.timed_hit(d);
        }
    }

    /// A timed hit: into the histogram.
    #[cold]
    fn timed_hit(&'static self, d: Duration) {
        self.register();
        record(&self.hit_time, d);
    }

    /// A call that L1 did not answer (Redis, another caller's load or the function will).
    pub fn past_l1(&'static self) {
        self.register();
        self.bump(|c| &c.past_l1);
    }

    /// A run of the function itself.
    pub fn load(&'static self, took: Duration) {
        self.register();
        self.bump(|c| &c.loads);
        record(&self.load_time, took);
    }

    /// An entry of this function evicted from L1 by its `max_entries`.
    pub(crate) fn evicted_by_limit(&'static self) {
        self.register();
        self.evicted.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds one to this thread's slot of a count (only this thread writes it: load + store).
    #[inline]
    fn bump(&self, count: impl Fn(&Counts) -> &AtomicU64) {
        let slot = count(self.counts.get_or_default());
        slot.store(slot.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    }

    fn sum(&self, count: impl Fn(&Counts) -> &AtomicU64) -> u64 {
        self.counts.iter().map(|c| count(c).load(Ordering::Relaxed)).sum()
    }

    fn report(&self) -> FunctionStats {
        let loads = self.sum(|c| &c.loads);
        let calls = self.sum(|c| &c.hits) + self.sum(|c| &c.past_l1);
        let hits = calls.saturating_sub(loads);
        let (mean_load_ms, p99_load_ms) = self.load_time.lock().as_ref().map_or((0.0, 0.0), |h| {
            (h.mean() / 1e6, h.value_at_quantile(0.99) as f64 / 1e6)
        });
        let (mean_hit_us, hit_samples) = self
            .hit_time
            .lock()
            .as_ref()
            .map_or((0.0, 0), |h| (h.mean() / 1e3, h.len()));
        FunctionStats {
            name: self.name.to_owned(),
            calls,
            hits,
            loads,
            hit_rate: if calls == 0 {
                0.0
            } else {
                hits as f64 / calls as f64
            },
            mean_load_ms,
            p99_load_ms,
            mean_hit_us,
            hit_samples,
            time_saved_ms: hits as f64 * mean_load_ms,
            evicted_by_max_entries: self.evicted.load(Ordering::Relaxed),
        }
    }
}

/// One function's figures, as reported by [`functions`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FunctionStats {
    /// `module::path::function`, or the [`measure`] label.
    pub name: String,
    /// hits + loads.
    pub calls: u64,
    /// Calls answered by the cache (L1, Redis, or another caller's load).
    pub hits: u64,
    /// Calls that ran the function.
    pub loads: u64,
    /// Its entries evicted from L1 by its `max_entries` bound (0 without one).
    #[serde(default)]
    pub evicted_by_max_entries: u64,
    /// hits / calls.
    pub hit_rate: f64,
    /// Mean run time of the function itself.
    pub mean_load_ms: f64,
    /// 99th percentile of the same.
    pub p99_load_ms: f64,
    /// Mean latency of an L1 hit, from the timed ones (`hit_samples`): each thread times the
    /// function's first L1 hit, then about one in 64. 0.0 only while `hit_samples` is 0 (no L1
    /// hit yet, e.g. a function with `l1 = false`, whose hits are Redis hits).
    pub mean_hit_us: f64,
    /// L1 hits that were timed for `mean_hit_us`.
    #[serde(default)]
    pub hit_samples: u64,
    /// hits × mean load time: what the cache saved.
    pub time_saved_ms: f64,
}

/// Every function that has been called at least once (a miss registers it), most time saved
/// first.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let v = cache_core::perf::measure("demo::sum", async { (1..=10).sum::<u32>() }).await;
/// assert_eq!(v, 55);
/// let all = cache_core::perf::functions();
/// assert!(all.iter().any(|f| f.name == "demo::sum" && f.loads == 1));
/// # }
/// ```
pub fn functions() -> Vec<FunctionStats> {
    let mut out: Vec<FunctionStats> = registry().lock().iter().map(|f| f.report()).collect();
    out.sort_by(|a, b| {
        b.time_saved_ms
            .total_cmp(&a.time_saved_ms)
            .then_with(|| a.name.cmp(&b.name))
    });
    out
}

/// Runs `fut` and records its duration under `label`, beside the cached functions.
pub async fn measure<F: Future>(label: &str, fut: F) -> F::Output {
    let stats = labelled(label);
    stats.past_l1();
    let t = Instant::now();
    let out = fut.await;
    stats.load(t.elapsed());
    out
}

/// Records for [`measure`] labels: created once per label and kept for the process.
fn labelled(label: &str) -> &'static FnStats {
    static LABELS: OnceLock<Mutex<HashMap<String, &'static FnStats>>> = OnceLock::new();
    let mut map = LABELS.get_or_init(|| Mutex::new(HashMap::new())).lock();
    if let Some(s) = map.get(label) {
        return s;
    }
    // Leaked on purpose: one small record per distinct label, alive as long as the registry.
    let name: &'static str = Box::leak(label.to_owned().into_boxed_str());
    let stats: &'static FnStats = Box::leak(Box::new(FnStats::new(name)));
    map.insert(label.to_owned(), stats);
    stats
}

/// Memory per key prefix (the text before the first `:`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PrefixMemory {
    /// `query`, `resource`, ...
    pub prefix: String,
    /// L1 entries under it.
    pub l1_entries: u64,
    /// L1 bytes under it (encoded values plus keys).
    pub l1_bytes: u64,
    /// Redis keys sampled under it (bounded, by `SCAN`; never `KEYS`).
    pub redis_sampled_keys: u64,
    /// Sum of `MEMORY USAGE` over the sampled keys.
    pub redis_sampled_bytes: u64,
}

/// One of the largest L1 entries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LargeEntry {
    /// The key.
    pub key: String,
    /// Its L1 bytes.
    pub bytes: u64,
}

/// The answer of [`Cache::memory_profile`](crate::Cache::memory_profile).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct MemoryProfile {
    /// Per prefix, largest L1 share first.
    pub prefixes: Vec<PrefixMemory>,
    /// The ten largest L1 entries.
    pub largest: Vec<LargeEntry>,
    /// Bytes of values written to Redis before compression.
    pub l2_written_raw_bytes: u64,
    /// Bytes of the same as stored.
    pub l2_written_stored_bytes: u64,
    /// Redis `used_memory`.
    pub redis_used_memory: Option<u64>,
    /// The disk tier, when configured.
    pub l3: Option<DiskMemory>,
}

/// The disk tier's share of a [`MemoryProfile`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct DiskMemory {
    /// Entries this process wrote or checked that are still there, as far as it knows.
    pub entries: u64,
    /// Their envelopes' bytes.
    pub bytes: u64,
    /// The configured capacity.
    pub capacity_bytes: u64,
    /// Bytes the device wrote (foyer's records, 4 KiB aligned).
    pub device_write_bytes: u64,
}

/// The prefix of a key: the text before the first `:` (the whole key when it has none).
pub(crate) fn prefix_of(key: &str) -> &str {
    key.split_once(':').map_or(key, |(p, _)| p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::Fingerprint;
    use crate::{Cache, LoadOptions};

    static A: FnStats = FnStats::new("perf::tests::a");
    static B: FnStats = FnStats::new("perf::tests::b");
    static FEW: FnStats = FnStats::new("perf::tests::few");

    fn report(name: &str) -> FunctionStats {
        functions()
            .into_iter()
            .find(|f| f.name == name)
            .unwrap_or_else(|| panic!("{name} not registered"))
    }

    /// Each test on a fresh thread: the samplers are per thread.
    fn on_fresh_thread(f: impl FnOnce() + Send) {
        std::thread::scope(|s| {
            s.spawn(f).join().unwrap();
        });
    }

    fn hits(cache: &Cache, key: &str, stats: &'static FnStats, n: usize) {
        for _ in 0..n {
            let v = crate::__private::hit::<u64, str>(
                cache,
                key,
                Fingerprint::of(key),
                &LoadOptions::default(),
                stats,
            );
            assert_eq!(v, Some(7));
        }
    }

    async fn cache_with(keys: &[&str]) -> Cache {
        let cache = Cache::new(Default::default()).unwrap();
        for k in keys {
            cache.set(k, &7u64, None).await.unwrap();
        }
        cache
    }

    #[test]
    fn a_few_hits_give_a_mean_hit_latency() {
        on_fresh_thread(|| {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let cache = rt.block_on(cache_with(&["few"]));
            FEW.past_l1();
            hits(&cache, "few", &FEW, 3);
            let f = report("perf::tests::few");
            assert!(f.mean_hit_us > 0.0, "the first L1 hit is timed: {f:?}");
        });
    }

    #[test]
    fn functions_called_in_a_fixed_rhythm_each_get_samples() {
        // A then B, over and over: an even-length loop. With one shared "every 64th read"
        // counter, B's reads were never the 64th and its mean read 0.0 however long it ran.
        on_fresh_thread(|| {
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let cache = rt.block_on(cache_with(&["a", "b"]));
            A.past_l1();
            B.past_l1();
            for _ in 0..6400 {
                hits(&cache, "a", &A, 1);
                hits(&cache, "b", &B, 1);
            }
            for name in ["perf::tests::a", "perf::tests::b"] {
                let f = report(name);
                assert!(f.mean_hit_us > 0.0, "{f:?}");
            }
        });
    }
}
