//! How well the L1 chooses what to keep (issue 24): section `hitratio` of the peers bench.
//!
//! Synthetic traces made here with fixed seeds: Zipf(0.8 / 1.0 / 1.2) over the key space
//! (`rand_distr`'s Zipf sampler), Zipf(1.0) with periodic one-pass scans of never-seen keys, a
//! loop larger than every cache size, and a Zipf(1.0) hot set that moves every phase. Each
//! trace is replayed at cache sizes of 1 %, 5 % and 10 % of the keys through every L1 strategy
//! of ours (the store the engine builds for it, through `__private::L1Replay`: its shards,
//! weights, admission and the read's TTL check; `get`, then `insert` on a miss), raw moka
//! (TinyLFU) and raw quick_cache (each with `get`, then `insert` on a miss), and through Bélády's MIN (the offline optimum with bypass, computed here over the
//! same trace). Reported as hit ratios and as fractions of the optimum.
//!
//! Capacities are entry counts: the byte bound is set far above what the entries weigh, so
//! every store holds `capacity` entries. moka batches its evictions: `run_pending_tasks` runs
//! after every miss's insert (ours as well as raw moka), so its size bound holds as the trace
//! runs rather than being caught up with later. Every 16th miss instead saved 10 % of the
//! time (moka's own get and insert are most of it) and moved moka's rows by up to 1.4 points.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::time::Instant;

use cache_core::__private::L1Replay;
use cache_core::strategy::Eviction;
use rand::rngs::StdRng;
use rand::SeedableRng;
use rand_distr::{Distribution, Zipf};

use super::{quick, section, Row};

/// One trace: its name and its requests (key ids).
struct Trace {
    name: &'static str,
    keys: Vec<u32>,
}

/// Key-space and trace sizes for a run.
#[derive(Clone, Copy)]
struct Scale {
    keys: u32,
    requests: usize,
}

/// Full run: 1 M keys, 2 M requests (1 M requests left Zipf 1.0's optimum the same at 5 % and
/// 10 %: every key read twice fit; moka makes the section take minutes). `BENCH_QUICK`: 50 k keys. A debug build (`cargo test --bench peers`,
/// the CI smoke run) replays 5 k keys: it checks that the section runs, not what it measures.
fn scale() -> Scale {
    if cfg!(debug_assertions) {
        Scale {
            keys: 5_000,
            requests: 20_000,
        }
    } else if quick() {
        Scale {
            keys: 50_000,
            requests: 200_000,
        }
    } else {
        Scale {
            keys: 1_000_000,
            requests: 2_000_000,
        }
    }
}

/// Zipf ranks (0-based) over `keys`, `n` of them.
fn zipf_ranks(rng: &mut StdRng, keys: u32, s: f64, n: usize) -> impl Iterator<Item = u32> + '_ {
    let zipf = Zipf::new(f64::from(keys), s).expect("valid Zipf parameters");
    (0..n).map(move |_| zipf.sample(rng) as u32 - 1)
}

fn zipf(sc: Scale, s: f64, seed: u64, name: &'static str) -> Trace {
    let mut rng = StdRng::seed_from_u64(seed);
    Trace {
        name,
        keys: zipf_ranks(&mut rng, sc.keys, s, sc.requests).collect(),
    }
}

/// Zipf(1.0) over the first 80 % of the keys, and after every `period` requests a one-pass
/// scan of `scan` keys from the other 20 %, each read once in the whole trace (a batch job,
/// a crawler). A scan-resistant policy keeps its hot set through them.
fn zipf_with_scans(sc: Scale, seed: u64) -> Trace {
    let mut rng = StdRng::seed_from_u64(seed);
    let hot_keys = sc.keys / 5 * 4;
    let scan = (sc.keys / 20) as usize; // 5 % of the keys: half a 10 % cache
    let period = scan * 4;
    let mut next_cold = hot_keys;
    let mut keys = Vec::with_capacity(sc.requests);
    let zipf = Zipf::new(f64::from(hot_keys), 1.0).expect("valid Zipf parameters");
    while keys.len() < sc.requests {
        for _ in 0..period {
            keys.push(zipf.sample(&mut rng) as u32 - 1);
        }
        for _ in 0..scan {
            keys.push(next_cold);
            next_cold += 1;
            if next_cold == sc.keys {
                next_cold = hot_keys; // only when the trace outlasts the cold keys
            }
        }
    }
    keys.truncate(sc.requests);
    Trace {
        name: "Zipf 1.0 + scans",
        keys,
    }
}

/// The keys 0..loop_len in order, again and again: 20 % of the keys, twice the largest cache.
/// LRU and FIFO keep nothing of it; the optimum keeps a fixed part.
fn looping(sc: Scale) -> Trace {
    let loop_len = sc.keys / 5;
    Trace {
        name: "loop (20 % of keys)",
        keys: (0..sc.requests).map(|i| (i as u32) % loop_len).collect(),
    }
}

/// Zipf(1.0), whose ranks map to other keys in each of five phases: the hot set moves and
/// what was hot goes cold.
fn shifting(sc: Scale, seed: u64) -> Trace {
    let mut rng = StdRng::seed_from_u64(seed);
    let phases = 5;
    let per_phase = sc.requests.div_ceil(phases);
    let shift = sc.keys / 7; // phases share nothing of their hottest 14 %
    let keys = zipf_ranks(&mut rng, sc.keys, 1.0, sc.requests)
        .enumerate()
        .map(|(i, r)| {
            ((u64::from(r) + (i / per_phase) as u64 * u64::from(shift)) % u64::from(sc.keys)) as u32
        })
        .collect();
    Trace {
        name: "shifting hot set",
        keys,
    }
}

/// Bélády's MIN with bypass: on a miss, the key whose next use is farthest (the new one
/// included) is the one left out. Hits of the offline optimum; O(n log c).
fn belady(keys: &[u32], capacity: usize) -> u64 {
    const NEVER: usize = usize::MAX;
    let space = keys.iter().copied().max().map_or(0, |m| m as usize + 1);
    let mut next_use = vec![NEVER; keys.len()];
    let mut last = vec![NEVER; space];
    for (i, &k) in keys.iter().enumerate().rev() {
        next_use[i] = last[k as usize];
        last[k as usize] = i;
    }
    // (next use, key) of every cached key; `cached[k]` whether k is in.
    let mut by_next: BTreeSet<(usize, u32)> = BTreeSet::new();
    let mut cached = vec![false; space];
    let mut hits = 0;
    for (i, &k) in keys.iter().enumerate() {
        let next = next_use[i];
        if cached[k as usize] {
            hits += 1;
            by_next.remove(&(i, k));
        } else if by_next.len() == capacity {
            // Full: the farthest next use goes, unless it is the new key's own.
            let &(far, far_key) = by_next.last().expect("a full cache is not empty");
            if far <= next {
                continue;
            }
            by_next.pop_last();
            cached[far_key as usize] = false;
        }
        if next == NEVER {
            cached[k as usize] = false;
        } else {
            by_next.insert((next, k));
            cached[k as usize] = true;
        }
    }
    hits
}

/// Hits of one of our strategies: its real L1 store ([`L1Replay`]: the store the engine builds
/// for it, read with the engine's TTL check), `get` then `insert` on a miss.
fn ours(eviction: Eviction, keys: &[u32], capacity: usize) -> u64 {
    // Far above what the entries weigh (~110 B each): the count is the bound.
    let l1 = L1Replay::new(eviction, capacity, capacity as u64 * 4096).unwrap();
    let mut key = String::with_capacity(24);
    let mut hits = 0;
    for &k in keys {
        key.clear();
        write!(key, "hr:{k}").unwrap();
        if l1.get(&key) {
            hits += 1;
        } else {
            l1.insert(&key, 4);
            l1.run_pending_tasks();
        }
    }
    hits
}

fn raw_moka(keys: &[u32], capacity: usize) -> u64 {
    let m: moka::sync::Cache<u32, ()> = moka::sync::Cache::new(capacity as u64);
    let mut hits = 0;
    for &k in keys {
        if m.get(&k).is_some() {
            hits += 1;
        } else {
            m.insert(k, ());
            m.run_pending_tasks();
        }
    }
    hits
}

fn raw_quick_cache(keys: &[u32], capacity: usize) -> u64 {
    let q: quick_cache::sync::Cache<u32, ()> = quick_cache::sync::Cache::new(capacity);
    let mut hits = 0;
    for &k in keys {
        if q.get(&k).is_some() {
            hits += 1;
        } else {
            q.insert(k, ());
        }
    }
    hits
}

/// The contenders, in the table's column order (the optimum first).
const COLUMNS: [&str; 7] = [
    "MIN (optimum)",
    "ours: Ttl (default, quick_cache)",
    "ours: TinyLfu (moka)",
    "ours: Lru (moka)",
    "ours: Fifo",
    "raw moka (TinyLFU)",
    "raw quick_cache",
];

/// The hit-ratio rows for the report, and the full table (markdown) to print beside it.
pub(super) fn rows() -> (Vec<Row>, String) {
    if !section("hitratio") {
        return (Vec::new(), String::new());
    }
    let sc = scale();
    let started = Instant::now();
    let mut md = format!(
        "### L1 hit ratio ({} keys, {} requests a trace; hit % and × of the optimum)\n\n| trace | cache | {} |\n|---|---|{}\n",
        sc.keys,
        sc.requests,
        COLUMNS.join(" | "),
        "---|".repeat(COLUMNS.len())
    );
    let mut rows = Vec::new();
    let traces: [&dyn Fn() -> Trace; 6] = [
        &|| zipf(sc, 0.8, 8, "Zipf 0.8"),
        &|| zipf(sc, 1.0, 10, "Zipf 1.0"),
        &|| zipf(sc, 1.2, 12, "Zipf 1.2"),
        &|| zipf_with_scans(sc, 20),
        &|| looping(sc),
        &|| shifting(sc, 30),
    ];
    let mut spent = [0f64; 7];
    for make in traces {
        let trace = make();
        let n = trace.keys.len() as f64;
        for pct in [1, 5, 10] {
            let cap = sc.keys as usize * pct / 100;
            let keys = &trace.keys;
            let runs: [&dyn Fn() -> u64; 7] = [
                &|| belady(keys, cap),
                &|| ours(Eviction::Fast, keys, cap),
                &|| ours(Eviction::TinyLfu, keys, cap),
                &|| ours(Eviction::Lru, keys, cap),
                &|| ours(Eviction::Fifo, keys, cap),
                &|| raw_moka(keys, cap),
                &|| raw_quick_cache(keys, cap),
            ];
            let hits = std::array::from_fn::<u64, 7, _>(|i| {
                let t = Instant::now();
                let h = runs[i]();
                spent[i] += t.elapsed().as_secs_f64();
                h
            });
            let ratio = hits.map(|h| h as f64 / n);
            let opt = ratio[0];
            write!(md, "| {} | {pct} % |", trace.name).unwrap();
            for (i, r) in ratio.iter().enumerate() {
                if i == 0 {
                    write!(md, " {:.1} % |", r * 100.0).unwrap();
                } else {
                    write!(md, " {:.1} % ({:.2}×) |", r * 100.0, r / opt).unwrap();
                }
            }
            md.push('\n');
            let best_peer = ratio[5].max(ratio[6]);
            let peer_name = if ratio[5] >= ratio[6] {
                "raw moka TinyLFU"
            } else {
                "raw quick_cache"
            };
            rows.push(Row {
                section: "Hit ratio",
                what: format!("{} @ {pct} %: default L1 hit %", trace.name),
                ours: ratio[1] * 100.0,
                peer_name: format!("best peer, {peer_name} (MIN {:.1} %)", opt * 100.0),
                peer: best_peer * 100.0,
                unit: "%",
                higher_is_better: true,
                target: "≥ 0.95×".into(),
            });
            if trace.name == "Zipf 1.0" && pct == 10 {
                rows.push(Row {
                    section: "Hit ratio",
                    what: format!("{} @ {pct} %: default L1 hit %", trace.name),
                    ours: ratio[1] * 100.0,
                    peer_name: "Bélády's MIN".into(),
                    peer: opt * 100.0,
                    unit: "%",
                    higher_is_better: true,
                    target: "≥ 0.9×".into(),
                });
            }
        }
    }
    let _ = write!(
        md,
        "\nSeconds spent replaying (section {:.0} s):",
        started.elapsed().as_secs_f64()
    );
    for (name, t) in COLUMNS.iter().zip(spent) {
        let _ = write!(md, " {name} {t:.1};");
    }
    md.push('\n');
    (rows, md)
}
