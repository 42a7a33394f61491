//! 64 tasks of L2 hits (L1 off) on 2 threads, the workload of the peers bench's P2, for `perf record`.
//! `cargo bench -p cache-bench --bench l2_profile`; `OPS` GETs a task, `IN_FLIGHT` the
//! coalescer's reads in flight (`l2_reads_in_flight`, default 4).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::Instant;

use cache_bench::{env_number, payload, Payload};
use cache_core::{cache, Cache, CacheConfig};
use cache_test_harness::RedisServer;

static C: OnceLock<Cache> = OnceLock::new();

#[cache(prefix = "bench", cache = C.get().unwrap(), l1 = false)]
async fn hit(id: u64) -> Payload {
    payload(id)
}

fn main() {
    let redis = RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ops: u64 = env_number("OPS").unwrap_or(5_000);
    rt.block_on(async {
        let _ = C.set(
            Cache::new(
                CacheConfig::builder()
                    .redis_url(redis.url())
                    .l1_enabled(false)
                    .l2_reads_in_flight(env_number("IN_FLIGHT").unwrap_or(4))
                    .build()
                    .unwrap(),
            )
            .unwrap(),
        );
        for i in 0..1000 {
            hit(i).await;
        }
        let t = Instant::now();
        let tasks: Vec<_> = (0..64u64)
            .map(|task| {
                tokio::spawn(async move {
                    for i in 0..ops {
                        black_box(hit((task * 7919 + i) % 1000).await);
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let rate = (64 * ops) as f64 / t.elapsed().as_secs_f64();
        // How the GETs were answered: Redis read by this call, or shared from another task's
        // in-process flight for the same key (a clone of the shared value).
        let s = C.get().unwrap().stats().await;
        println!(
            "{rate:.0} ops/s; L2 hits {} , joined another's flight {}",
            s.l2_hits, s.coalesced
        );
    });
}
