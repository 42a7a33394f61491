//! A hot loop of L1 hits of one `#[cache]` function, for `perf record` / callgrind.
//! `cargo bench -p cache-bench --bench hit_profile`
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::hint::black_box;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use cache_core::{cache, Cache, CacheConfig};

static C: LazyLock<Cache> = LazyLock::new(|| Cache::new(CacheConfig::default()).unwrap());

#[cache(prefix = "bench", cache = C)]
async fn hit(id: u64) -> Arc<Vec<u8>> {
    Arc::new(vec![0; 150])
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ops: u64 = std::env::var("OPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000_000);
    rt.block_on(async {
        for i in 0..1000 {
            hit(i).await;
        }
        let t = Instant::now();
        for i in 0..ops {
            black_box(hit(i % 1000).await);
        }
        println!("{:.1} ns/op", t.elapsed().as_nanos() as f64 / ops as f64);
    });
}
