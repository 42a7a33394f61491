//! Access patterns: which keys are read, how often, how often they hit, and which key usually
//! follows which (for predictive loading).
//!
//! Each thread that reads keeps its own table, and readers of the figures add the tables up: a
//! table is written by one thread only, so a sampled read does not pull the table's cache lines
//! (its lock, the key's counters) over from another core. With one shared table, two threads of
//! L1 hits lost a tenth of their throughput to that (P1 at 4 tasks on 2 threads, same runs:
//! 10.5–11.8 → 12.2–13.0 M hits/s).
//!
//! Memory is bounded: at most `capacity` keys are tracked per reading thread, kept with the
//! Space-Saving rule (a new key replaces the least-counted one and inherits its count + 1, so
//! counts never under-estimate a heavy hitter), and each key keeps at most [`SUCCESSORS`]
//! successors. Reads are sampled (`access_sample_rate`: one in N, 0 = off) so the L1 hit path
//! pays a thread-local counter, not a lock; counts are scaled back by N, so with N > 1 every
//! figure of an [`AccessPattern`] is an estimate in steps of N (`samples` says how many reads
//! were actually recorded): two reads of a key may show as 16 reads or none. `hits + misses ==
//! count` in every row; what Space-Saving adds for a key that replaced another is apart, in
//! `inherited`.
//!
//! With anomaly detection on, each recorded read is also counted per key prefix (the prefix's
//! slot is looked up once, when the key enters the thread's table): the per-prefix hit rates
//! of `crate::anomaly` come from here, so the L1 hit path itself does no work for them.
//!
//! The sequence model is a first-order Markov chain over each thread's reads (a task's reads in a
//! row mostly run on one thread; other threads' reads in between are noise for it): after key A
//! is read, B is predicted when B followed A at least [`MIN_SUPPORT`] times and in at least half
//! of A's recorded transitions.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::clock::{self, Instant};
use crossbeam_utils::CachePadded;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use thread_local::ThreadLocal;
use tokio::sync::mpsc;

use crate::anomaly::Prefixes;
use crate::key::{Fingerprint, KeyText};
use crate::l1::FingerprintHash;

/// Successors remembered per key.
pub const SUCCESSORS: usize = 4;
/// Transitions needed before a successor is predicted.
pub const MIN_SUPPORT: u32 = 2;

/// One hot key, as returned by [`Cache::access_patterns`](crate::Cache::access_patterns).
///
/// With a sample rate N > 1 (`access_sample_rate`, 16 by default) the counts are estimates:
/// recorded reads × N.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AccessPattern {
    /// The readable key.
    pub key: String,
    /// Reads since the key was tracked, estimated: `samples` × sample rate; `hits + misses`.
    pub count: u64,
    /// Of those, hits (estimated the same way).
    pub hits: u64,
    /// Of those, misses (estimated the same way).
    #[serde(default)]
    pub misses: u64,
    /// Reads actually recorded for the key (one in the sample rate).
    #[serde(default)]
    pub samples: u64,
    /// Space-Saving's allowance: the count of the least-read key this one replaced when the
    /// table was full. The key was read at most `count + inherited` times; ranking uses that
    /// sum, so a heavy hitter is never under-counted. 0 for a key tracked from the start.
    #[serde(default)]
    pub inherited: u64,
    /// hits / count.
    pub hit_ratio: f64,
    /// Milliseconds since the last recorded read.
    pub last_access_ms_ago: u64,
}

struct KeyStat {
    key: Box<str>,
    /// Estimated reads including `inherited` (what ranking and eviction use).
    count: u64,
    hits: u64,
    /// Recorded (sampled) reads.
    samples: u64,
    /// Space-Saving's floor: the count of the key this one replaced.
    inherited: u64,
    last: Instant,
    next: Vec<(u128, u32)>,
    /// Its key prefix's slot for anomaly detection ([`crate::anomaly`]; 0 when off).
    slot: usize,
}

#[derive(Default)]
struct Inner {
    keys: HashMap<u128, KeyStat, FingerprintHash>,
    previous: Option<u128>,
    /// Recorded reads and hits per key prefix slot (anomaly detection's per-prefix hit rate).
    prefix_reads: Vec<[u64; 2]>,
}

pub(crate) struct AccessTracker {
    sample_every: u32,
    capacity: usize,
    /// One table per reading thread.
    tables: ThreadLocal<CachePadded<Mutex<Inner>>>,
    predictions: Mutex<Option<mpsc::Sender<String>>>,
    /// Whether a sink is set: without one, a sampled read does not work out (and allocate) a
    /// prediction nobody reads.
    predicting: AtomicBool,
    /// Key prefixes tracked by anomaly detection: sampled reads are also counted per prefix.
    prefixes: Option<Arc<Prefixes>>,
}

thread_local! {
    static TICK: Cell<u32> = const { Cell::new(0) };
}

impl AccessTracker {
    pub(crate) fn new(sample_every: u32, capacity: usize) -> Self {
        AccessTracker {
            sample_every,
            capacity: capacity.max(1),
            tables: ThreadLocal::new(),
            predictions: Mutex::new(None),
            predicting: AtomicBool::new(false),
            prefixes: None,
        }
    }

    /// Also counts sampled reads per key prefix ([`crate::anomaly`]).
    pub(crate) fn with_prefixes(mut self, prefixes: Option<Arc<Prefixes>>) -> Self {
        self.prefixes = prefixes;
        self
    }

    /// Recorded (sampled, not scaled) reads and hits per prefix slot, all threads added up.
    pub(crate) fn prefix_reads(&self) -> Vec<[u64; 2]> {
        let mut sum: Vec<[u64; 2]> = Vec::new();
        for table in self.tables.iter() {
            let t = table.lock();
            if sum.len() < t.prefix_reads.len() {
                sum.resize(t.prefix_reads.len(), [0, 0]);
            }
            for (s, r) in sum.iter_mut().zip(&t.prefix_reads) {
                s[0] += r[0];
                s[1] += r[1];
            }
        }
        sum
    }

    /// The one in N reads that are recorded (0: none).
    pub(crate) fn sample_rate(&self) -> u32 {
        self.sample_every
    }

    /// Records one read (sampled). Cheap when not sampled: a thread-local increment.
    #[inline]
    pub(crate) fn record<K: KeyText + ?Sized>(&self, fp: Fingerprint, key: &K, hit: bool) {
        if self.sample_every == 0 {
            return;
        }
        if self.sample_every > 1 {
            // A countdown, not `n % rate`: a division costs more than the rest of this check.
            let sampled = TICK.with(|t| match t.get() {
                0 => {
                    t.set(self.sample_every - 1);
                    true
                }
                n => {
                    t.set(n - 1);
                    false
                }
            });
            if !sampled {
                return;
            }
        }
        self.record_sampled(fp, key, hit);
    }

    /// The key's text is asked for only when the key is new to this thread's table: turning a
    /// built key into a `&str` checks its bytes, which every sample paid for before.
    #[cold]
    fn record_sampled<K: KeyText + ?Sized>(&self, fp: Fingerprint, key: &K, hit: bool) {
        let weight = u64::from(self.sample_every);
        let predicted = {
            // Sampled statistics can lose a sample rather than make a hit wait for another
            // thread; with every read recorded (rate 1) the counts are exact.
            let table = self.tables.get_or_default();
            // Only a reader of the figures competes for this lock.
            let mut guard = if self.sample_every > 1 {
                match table.try_lock() {
                    Some(g) => g,
                    None => return,
                }
            } else {
                table.lock()
            };
            let inner = &mut *guard;
            let now = clock::now();
            let hits = if hit { weight } else { 0 };
            let slot = match inner.keys.get_mut(&fp.0) {
                Some(stat) => {
                    stat.count += weight;
                    stat.hits += hits;
                    stat.samples += 1;
                    stat.last = now;
                    stat.slot
                }
                None => {
                    let mut floor = 0;
                    if inner.keys.len() >= self.capacity {
                        // Space-Saving: replace the least-counted key, inheriting its count.
                        let evict = inner
                            .keys
                            .iter()
                            .min_by_key(|(_, s)| s.count)
                            .map(|(k, s)| (*k, s.count));
                        if let Some((k, count)) = evict {
                            inner.keys.remove(&k);
                            floor = count;
                        }
                    }
                    let text = key.key_text();
                    let slot = self
                        .prefixes
                        .as_ref()
                        .map_or(0, |p| p.slot(crate::trace::prefix(text)));
                    inner.keys.insert(
                        fp.0,
                        KeyStat {
                            key: text.into(),
                            count: floor + weight,
                            hits,
                            samples: 1,
                            inherited: floor,
                            last: now,
                            next: Vec::new(),
                            slot,
                        },
                    );
                    slot
                }
            };
            if self.prefixes.is_some() {
                if inner.prefix_reads.len() <= slot {
                    inner.prefix_reads.resize(slot + 1, [0, 0]);
                }
                inner.prefix_reads[slot][0] += 1;
                inner.prefix_reads[slot][1] += u64::from(hit);
            }
            let predicted = if self.predicting.load(Ordering::Relaxed) {
                let keys = &inner.keys;
                keys.get(&fp.0)
                    .and_then(predict)
                    .and_then(|b| keys.get(&b).map(|s| s.key.to_string()))
            } else {
                None
            };
            if let Some(prev) = inner.previous.replace(fp.0).filter(|p| *p != fp.0) {
                if let Some(p) = inner.keys.get_mut(&prev) {
                    note_successor(&mut p.next, fp.0);
                }
            }
            predicted
        };
        if let Some(next) = predicted {
            if let Some(tx) = self.predictions.lock().as_ref() {
                // Bounded: a busy predictor drops suggestions rather than slowing reads.
                let _ = tx.try_send(next);
            }
        }
    }

    pub(crate) fn set_prediction_sink(&self, tx: Option<mpsc::Sender<String>>) {
        let mut sink = self.predictions.lock();
        self.predicting.store(tx.is_some(), Ordering::Relaxed);
        *sink = tx;
    }

    /// The `n` most-read keys, most first.
    pub(crate) fn top(&self, n: usize) -> Vec<AccessPattern> {
        // The threads' tables added up.
        struct Sum {
            key: Box<str>,
            count: u64,
            hits: u64,
            samples: u64,
            inherited: u64,
            last: Instant,
        }
        let mut merged: HashMap<u128, Sum, FingerprintHash> = HashMap::default();
        for table in self.tables.iter() {
            for (fp, s) in &table.lock().keys {
                merged
                    .entry(*fp)
                    .and_modify(|m| {
                        m.count += s.count;
                        m.hits += s.hits;
                        m.samples += s.samples;
                        m.inherited += s.inherited;
                        m.last = m.last.max(s.last);
                    })
                    .or_insert_with(|| Sum {
                        key: s.key.clone(),
                        count: s.count,
                        hits: s.hits,
                        samples: s.samples,
                        inherited: s.inherited,
                        last: s.last,
                    });
            }
        }
        let now = clock::now();
        let mut all: Vec<(u64, AccessPattern)> = merged
            .into_values()
            .map(|m| {
                // What was recorded for this key, apart from what it inherited.
                let count = m.count.saturating_sub(m.inherited);
                let hits = m.hits.min(count);
                let row = AccessPattern {
                    key: m.key.into(),
                    count,
                    hits,
                    misses: count - hits,
                    samples: m.samples,
                    inherited: m.inherited,
                    hit_ratio: if count == 0 {
                        0.0
                    } else {
                        hits as f64 / count as f64
                    },
                    last_access_ms_ago: now.saturating_duration_since(m.last).as_millis() as u64,
                };
                (m.count, row)
            })
            .collect();
        all.sort_by(|(a, ra), (b, rb)| b.cmp(a).then_with(|| ra.key.cmp(&rb.key)));
        all.truncate(n);
        all.into_iter().map(|(_, row)| row).collect()
    }

    /// Estimated reads of one key (0 when untracked).
    pub(crate) fn count(&self, fp: Fingerprint) -> u64 {
        self.tables
            .iter()
            .map(|t| t.lock().keys.get(&fp.0).map_or(0, |s| s.count))
            .sum()
    }
}

fn note_successor(next: &mut Vec<(u128, u32)>, fp: u128) {
    if let Some(e) = next.iter_mut().find(|(k, _)| *k == fp) {
        e.1 += 1;
        return;
    }
    if next.len() < SUCCESSORS {
        next.push((fp, 1));
    } else if let Some(min) = next.iter_mut().min_by_key(|(_, c)| *c) {
        *min = (fp, min.1 + 1);
    }
}

fn predict(stat: &KeyStat) -> Option<u128> {
    let total: u32 = stat.next.iter().map(|(_, c)| c).sum();
    let (best, count) = stat.next.iter().max_by_key(|(_, c)| *c)?;
    (*count >= MIN_SUPPORT && count * 2 >= total).then_some(*best)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(t: &AccessTracker, key: &str, hit: bool) {
        t.record(Fingerprint::of(key), key, hit);
    }

    #[test]
    fn counts_hits_and_orders_by_count() {
        let t = AccessTracker::new(1, 100);
        for _ in 0..5 {
            rec(&t, "a", true);
        }
        rec(&t, "b", false);
        rec(&t, "b", true);
        let top = t.top(10);
        assert_eq!(top[0].key, "a");
        assert_eq!((top[0].count, top[0].hits), (5, 5));
        assert_eq!((top[1].count, top[1].hits), (2, 1));
        assert!((top[1].hit_ratio - 0.5).abs() < 1e-9);
    }

    #[test]
    fn memory_is_bounded_and_heavy_hitters_survive() {
        let t = AccessTracker::new(1, 8);
        for i in 0..1000 {
            rec(&t, "hot", true);
            rec(&t, &format!("cold-{i}"), false);
        }
        let top = t.top(100);
        assert!(top.len() <= 8);
        assert_eq!(top[0].key, "hot");
        assert!(top[0].count >= 1000);
    }

    #[test]
    fn rows_say_what_was_sampled_and_add_up() {
        // The case: two reads of one key (a miss, then a hit) at one in 16.
        let t = AccessTracker::new(16, 100);
        rec(&t, "k", false);
        rec(&t, "k", true);
        let row = serde_json::to_value(&t.top(10)[0]).unwrap();
        assert_eq!(row["samples"], 1, "{row}");
        assert_eq!(row["count"], 16, "{row}");
        let (hits, misses) = (row["hits"].as_u64().unwrap(), row["misses"].as_u64().unwrap());
        assert_eq!(hits + misses, 16, "{row}");
        // Space-Saving's inherited floor is reported apart, not as reads of the key.
        let t = AccessTracker::new(1, 1);
        rec(&t, "a", true);
        rec(&t, "a", true);
        rec(&t, "b", false);
        let row = serde_json::to_value(&t.top(10)[0]).unwrap();
        assert_eq!(row["key"], "b");
        assert_eq!(
            (&row["count"], &row["hits"], &row["misses"], &row["inherited"]),
            (&1.into(), &0.into(), &1.into(), &2.into()),
            "{row}"
        );
    }

    #[test]
    fn sampling_scales_counts() {
        let t = AccessTracker::new(4, 100);
        for _ in 0..400 {
            rec(&t, "k", false);
        }
        assert_eq!(t.count(Fingerprint::of("k")), 400);
    }

    #[tokio::test]
    async fn repeating_sequences_predict_the_next_key() {
        let t = AccessTracker::new(1, 100);
        let (tx, mut rx) = mpsc::channel(16);
        t.set_prediction_sink(Some(tx));
        for _ in 0..3 {
            for k in ["a", "b", "c"] {
                rec(&t, k, false);
            }
        }
        let mut got = Vec::new();
        while let Ok(k) = rx.try_recv() {
            got.push(k);
        }
        // a→b and b→c are seen twice by the third round, c→a twice only after it.
        assert_eq!(got, vec!["b", "c", "a"]);
    }

    #[tokio::test]
    async fn sequences_are_learned_while_nobody_listens() {
        let t = AccessTracker::new(1, 100);
        for _ in 0..3 {
            for k in ["a", "b", "c"] {
                rec(&t, k, false);
            }
        }
        let (tx, mut rx) = mpsc::channel(16);
        t.set_prediction_sink(Some(tx));
        rec(&t, "a", false);
        assert_eq!(rx.try_recv().ok().as_deref(), Some("b"));
    }

    #[test]
    fn threads_tables_add_up() {
        let t = AccessTracker::new(1, 100);
        std::thread::scope(|scope| {
            for n in 0..3 {
                let t = &t;
                scope.spawn(move || {
                    for _ in 0..10 {
                        rec(t, "shared", n % 2 == 0);
                    }
                    rec(t, &format!("own-{n}"), false);
                });
            }
        });
        assert_eq!(t.count(Fingerprint::of("shared")), 30);
        let top = t.top(10);
        assert_eq!(top.len(), 4);
        assert_eq!(
            (top[0].key.as_str(), top[0].count, top[0].hits),
            ("shared", 30, 20)
        );
        assert!(top[1..].iter().all(|p| p.count == 1 && p.key.starts_with("own-")));
    }
}
