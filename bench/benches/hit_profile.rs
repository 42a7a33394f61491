//! A hot loop of L1 hits of one `#[cache]` function, for `perf record` / callgrind.
//! `cargo bench -p cache-bench --bench hit_profile`; `MODE=raw` runs the same loop over a raw
//! quick_cache `get` (the limit P1 is measured against), `MODE=sync` the same hit without the
//! async fn around it, `MODE=str`/`rawstr` a string key, `MODE=floor`/`floorstr` the least a
//! hit with stats and expiry can do ([`cache_bench::floor_hit`], [`cache_bench::floor_hit_str`]),
//! `MODE=fp`/`fpold` the text rule's fingerprint now and before 2026-12-02, `ACCESS_SAMPLE=N`
//! the access tracker's sample rate (0: off), `OPS` the number of hits.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::hint::black_box;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use cache_bench::{
    env_number, floor_head, floor_hit, floor_hit_str, floor_key, FloorCache, FloorEntry, FloorStrCache,
};
use cache_core::{cache, Cache, CacheConfig};

static C: LazyLock<Cache> = LazyLock::new(|| {
    let mut config = CacheConfig::default();
    if let Some(rate) = env_number::<u32>("ACCESS_SAMPLE") {
        config.access_sample_rate = rate;
    }
    Cache::new(config).unwrap()
});

#[cache(prefix = "bench", cache = C)]
async fn hit(id: u64) -> Arc<Vec<u8>> {
    Arc::new(vec![0; 150])
}

#[cache(prefix = "bench", cache = C)]
async fn hit_str(name: &str) -> Arc<Vec<u8>> {
    Arc::new(vec![0; name.len()])
}

/// `hit`'s L1 hit as its expansion makes it, from a plain fn: the same key head (so the same
/// entries), options and `__private` call. `MODE=sync` runs it in the same async loop as the
/// others; the difference to `hit` is what the async fn around the hit costs.
fn sync_hit(id: u64) -> Option<Arc<Vec<u8>>> {
    use cache_core::__private::{FnStats, KeyHead, LoadOptions};
    static HEAD: KeyHead = KeyHead::new(concat!("bench:", module_path!(), "::hit:"));
    static FN: FnStats = FnStats::new(concat!(module_path!(), "::sync_hit"));
    let key = HEAD.key(id);
    // `hit`'s options as far as a hit reads them (L1 on, no sliding expiry): the defaults.
    let opts = LoadOptions::default();
    let fp = key.fingerprint();
    cache_core::__private::hit(&C, &key, fp, &opts, &FN)
}

/// The fingerprint rule before 2026-12-02 for keys whose tail is not an integer (`MODE=fpold`):
/// the integer-tail check (`split_int_tail`, copied), then xxh3-128 of the whole text.
fn old_rule(key: &[u8]) -> u128 {
    match split_int_tail(key) {
        Some((_, n)) => n as u128,
        None => xxhash_rust::xxh3::xxh3_128(key),
    }
}

#[inline]
fn split_int_tail(key: &[u8]) -> Option<(&[u8], i128)> {
    // Most keys that do not end in a digit are turned away by this one comparison.
    if !key.last()?.is_ascii_digit() {
        return None;
    }
    let digits_from = key.iter().rposition(|b| !b.is_ascii_digit())? + 1;
    let digits = &key[digits_from..];
    let (negative, head_end) = match key[digits_from - 1] {
        b':' => (false, digits_from),
        b'-' if digits_from >= 2 && key[digits_from - 2] == b':' => (true, digits_from - 1),
        _ => return None,
    };
    if digits.len() > 20 || (digits[0] == b'0' && (digits.len() > 1 || negative)) {
        return None;
    }
    let magnitude = digits
        .iter()
        .fold(0u128, |acc, d| acc * 10 + u128::from(d - b'0'));
    let n = if negative {
        if magnitude > 1u128 << 63 {
            return None;
        }
        -(magnitude as i128)
    } else {
        if magnitude > u128::from(u64::MAX) {
            return None;
        }
        magnitude as i128
    };
    Some((&key[..head_end], n))
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ops = env_number::<u64>("OPS").unwrap_or(20_000_000);
    let mode = std::env::var("MODE").unwrap_or_default();
    let qc: quick_cache::sync::Cache<u64, Arc<Vec<u8>>> = quick_cache::sync::Cache::new(10_000);
    let qc_str: quick_cache::sync::Cache<String, Arc<Vec<u8>>> = quick_cache::sync::Cache::new(10_000);
    let floor: FloorCache<Arc<Vec<u8>>> = quick_cache::sync::Cache::new(10_000);
    let floor_str: FloorStrCache<Arc<Vec<u8>>> = quick_cache::sync::Cache::new(10_000);
    let head = floor_head(concat!("bench:", module_path!(), "::hit_str:"));
    let names: Vec<String> = (0..1000).map(|i| format!("customer-{i:06}")).collect();
    rt.block_on(async {
        for i in 0..1000 {
            hit(i).await;
            hit_str(&names[i as usize]).await;
            qc.insert(i, Arc::new(vec![0; 150]));
            floor.insert(i, FloorEntry::new(Arc::new(vec![0; 150])));
            let key = floor_key(head, &names[i as usize]);
            floor_str.insert(key, FloorEntry::new(Arc::new(vec![0; 150])));
            qc_str.insert(names[i as usize].clone(), Arc::new(vec![0; 150]));
        }
        // `sync_hit` spells `hit`'s key head by hand: a head that drifted would time misses.
        assert!(sync_hit(0).is_some(), "sync_hit reads hit's entries");
        assert!(floor_hit(&floor, 0).await.is_some(), "the floor times hits");
        assert!(floor_hit_str(&floor_str, head, &names[0]).await.is_some());
        let t = Instant::now();
        match mode.as_str() {
            // `MODE=raw`: a raw quick_cache get, in the same async loop.
            "raw" => {
                for i in 0..ops {
                    let qc = &qc;
                    black_box(async move { qc.get(&(i % 1000)) }.await);
                }
            }
            // `MODE=floor`: the least a hit with stats and expiry does (see `floor_hit`).
            "floor" => {
                for i in 0..ops {
                    black_box(floor_hit(&floor, i % 1000).await);
                }
            }
            // `MODE=fp`: the text rule's fingerprint of a key with a text tail (what the text API
            // and a multi-argument key pay); `MODE=fpold`: the rule before 2026-12-02 on the
            // same keys (its integer-tail check, then one xxh3-128 of the whole text).
            "fp" | "fpold" => {
                let texts: Vec<String> = names
                    .iter()
                    .map(|n| format!("bench:hit_profile::f:7:{n}"))
                    .collect();
                let old = mode == "fpold";
                for i in 0..ops {
                    let t = texts[(i % 1000) as usize].as_str();
                    if old {
                        black_box(async move { old_rule(t.as_bytes()) }.await);
                    } else {
                        black_box(async move { cache_core::key::Fingerprint::of(t).0 }.await);
                    }
                }
            }
            "floorstr" => {
                for i in 0..ops {
                    black_box(floor_hit_str(&floor_str, head, &names[(i % 1000) as usize]).await);
                }
            }
            // `MODE=sync`: `hit`'s L1 hit without the async fn around it.
            "sync" => {
                for i in 0..ops {
                    black_box(async move { sync_hit(i % 1000) }.await);
                }
            }
            // `MODE=str`: `#[cache] fn(&str)`; `MODE=rawstr`: quick_cache with a `String` key.
            "str" => {
                for i in 0..ops {
                    black_box(hit_str(&names[(i % 1000) as usize]).await);
                }
            }
            "rawstr" => {
                for i in 0..ops {
                    let (qc, name) = (&qc_str, names[(i % 1000) as usize].as_str());
                    black_box(async move { qc.get(name) }.await);
                }
            }
            _ => {
                for i in 0..ops {
                    black_box(hit(i % 1000).await);
                }
            }
        }
        println!("{:.1} ns/op", t.elapsed().as_nanos() as f64 / ops as f64);
    });
}
