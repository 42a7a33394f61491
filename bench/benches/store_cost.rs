//! What a miss costs end to end with Redis: read (miss), run an instant loader, store. Since the
//! stale-set guard (issue 25) a miss also reads its invalidation markers and stores through a
//! Lua script; run this file on an older commit for the figures before.
//!
//! `cargo bench -p cache-bench --bench store_cost`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::{Cache, CacheConfig};
use cache_test_harness::RedisServer;

const MISSES: u64 = 20_000;

/// Misses per second over `MISSES` distinct keys with `tasks` callers; best of 3.
async fn misses_per_sec(cache: &Arc<Cache>, tasks: u64, round: &mut u64) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..3 {
        *round += 1;
        let r = *round;
        let t = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|task| {
                let c = cache.clone();
                tokio::spawn(async move {
                    for i in (task..MISSES).step_by(tasks as usize) {
                        let key = format!("query:store:{r}:{i}");
                        let v = c.get_or_insert_with(&key, None, || async move { i }).await;
                        assert_eq!(v, i);
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        best = best.min(t.elapsed());
    }
    MISSES as f64 / best.as_secs_f64()
}

fn main() {
    let redis = RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cache = Arc::new(
            Cache::new(
                CacheConfig::builder()
                    .redis_url(redis.url())
                    .l1_invalidation(false)
                    .build()
                    .unwrap(),
            )
            .unwrap(),
        );
        let mut round = 0;
        println!("| miss path (read, instant loader, store) | misses/s (best of 3) |");
        println!("|---|---|");
        for tasks in [1, 64] {
            let r = misses_per_sec(&cache, tasks, &mut round).await;
            println!("| {tasks} task(s) | {r:.0} |");
        }
    });
}
