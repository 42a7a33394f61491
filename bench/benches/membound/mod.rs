//! Whether the L1's byte bound holds (issue 24): part of section `memory` of the peers bench.
//!
//! Values of 1 B to 1 MB (log-uniform, fixed seed, incompressible bytes) are `set` into an
//! L1-only cache whose byte bound binds long before its entry bound, four times over the bound
//! in all; then the process allocator's live bytes since the cache was made (`stats_alloc`:
//! what the cache holds, its tables included) are compared with `l1_max_bytes`. One row per
//! strategy. A store that holds less than its bound wastes room; one that holds more breaks it.

use std::time::Instant;

use cache_core::strategy::Strategy;
use cache_core::{Cache, CacheConfig};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use stats_alloc::Region;

use super::{quick, Row, GLOBAL};

/// The bound every store is given.
const BOUND: u64 = 64 << 20;

/// Sizes 1 B ..= 1 MB, log-uniform: as many values in each power of two.
fn sizes(n: usize) -> Vec<usize> {
    let mut rng = StdRng::seed_from_u64(24);
    (0..n)
        .map(|_| 2f64.powf(rng.random_range(0.0..=20.0)).round() as usize)
        .collect()
}

/// Live bytes after writing `sizes` through a cache of `strategy`, and the entries it then holds.
fn live_bytes(rt: &tokio::runtime::Runtime, strategy: Strategy, sizes: &[usize]) -> (f64, u64) {
    let cache = Cache::new(
        CacheConfig::builder()
            .strategy(strategy)
            .max_memory_cache_size(1_000_000)
            .l1_max_bytes(BOUND)
            // Incompressible bytes; zlib would only spend time.
            .compression_threshold(2 << 20)
            .build()
            .unwrap(),
    )
    .unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let region = Region::new(GLOBAL);
    rt.block_on(async {
        for (i, &n) in sizes.iter().enumerate() {
            let mut value = vec![0u8; n];
            rng.fill_bytes(&mut value);
            cache.set(&format!("mem:{i}"), &value, None).await.unwrap();
        }
    });
    cache.run_pending_tasks();
    let s = region.change();
    let live = s.bytes_allocated as f64 - s.bytes_deallocated as f64;
    let entries = rt.block_on(cache.health()).l1_entries;
    (live, entries)
}

/// One row per strategy: live bytes against the bound.
pub(super) fn rows(rt: &tokio::runtime::Runtime) -> Vec<Row> {
    let started = Instant::now();
    // Mean size ≈ 1 MB / (20 ln 2) ≈ 76 KB: 3 500 values write ≈ 4× the 64 MB bound.
    let n = if cfg!(debug_assertions) {
        300 // the CI smoke run: that it runs
    } else if quick() {
        1_200
    } else {
        3_500
    };
    let sizes = sizes(n);
    let written: usize = sizes.iter().sum();
    let mut rows = Vec::new();
    for (name, strategy) in [
        ("Ttl (default)", Strategy::Ttl),
        ("TinyLfu", Strategy::TinyLfu),
        ("Lru", Strategy::Lru),
        ("Fifo", Strategy::Fifo),
    ] {
        let (live, entries) = live_bytes(rt, strategy, &sizes);
        rows.push(Row {
            section: "Memory",
            what: format!(
                "{name}: live bytes under a 1 B–1 MB mix ({entries} entries held, {:.0} MB written)",
                written as f64 / 1e6
            ),
            ours: live / 1e6,
            peer_name: "l1_max_bytes".into(),
            peer: BOUND as f64 / 1e6,
            unit: "MB",
            higher_is_better: false,
            target: "≥ 0.95× (at most 5 % over)".into(),
        });
    }
    println!("(byte-bound check: {:.1} s)", started.elapsed().as_secs_f64());
    rows
}
