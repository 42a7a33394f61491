//! What deleting only the cache's own entries costs: `Cache::clear` (SCAN pages, each checked and
//! unlinked on the server by a Lua script that reads the envelope magic) against the plain
//! `SCAN MATCH` + `UNLINK` it replaced, on 100 k entries (`CLEAR_KEYS` to change), best of 3.
//!
//! `cargo bench -p cache-bench --bench clear_cost`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use cache_core::{Cache, CacheConfig};
use cache_test_harness::RedisServer;

async fn fill(cache: &Cache, n: usize) {
    let value = vec![7u8; 64];
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let items: Vec<(String, Vec<u8>)> = chunk
            .iter()
            .map(|i| (format!("query:bench:{i}"), value.clone()))
            .collect();
        cache.mset(&items, None).await.unwrap();
    }
}

/// The old way: SCAN MATCH * COUNT 1000, UNLINK every 500 keys, whatever they are.
async fn scan_unlink(conn: &mut redis::aio::MultiplexedConnection) -> u64 {
    let mut cursor: u64 = 0;
    let mut removed = 0;
    let mut batch: Vec<Vec<u8>> = Vec::new();
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg("*")
            .arg("COUNT")
            .arg(1000)
            .query_async(conn)
            .await
            .unwrap();
        batch.extend(keys);
        if batch.len() >= 500 || (next == 0 && !batch.is_empty()) {
            let n: u64 = redis::cmd("UNLINK").arg(&batch).query_async(conn).await.unwrap();
            removed += n;
            batch.clear();
        }
        if next == 0 {
            return removed;
        }
        cursor = next;
    }
}

fn main() {
    let n: usize = cache_bench::env_number("CLEAR_KEYS").unwrap_or(100_000);
    let redis = RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let cache = Cache::new(
            CacheConfig::builder()
                .redis_url(redis.url())
                .l1_enabled(false)
                .build()
                .unwrap(),
        )
        .unwrap();
        let mut conn = redis.conn().await;
        let (mut ours, mut old) = (Duration::MAX, Duration::MAX);
        for _ in 0..3 {
            fill(&cache, n).await;
            let t = Instant::now();
            let removed = cache.clear().await.unwrap();
            ours = ours.min(t.elapsed());
            assert_eq!(removed, n as u64);

            fill(&cache, n).await;
            let t = Instant::now();
            let removed = scan_unlink(&mut conn).await;
            old = old.min(t.elapsed());
            assert_eq!(removed, n as u64);
        }
        println!("| clear of {n} entries | time (best of 3) | per key |");
        println!("|---|---|---|");
        println!(
            "| SCAN + UNLINK (deletes anything) | {:.1} ms | {:.2} µs |",
            old.as_secs_f64() * 1e3,
            old.as_secs_f64() * 1e6 / n as f64
        );
        println!(
            "| SCAN + Lua envelope check + UNLINK (own entries only) | {:.1} ms | {:.2} µs |",
            ours.as_secs_f64() * 1e3,
            ours.as_secs_f64() * 1e6 / n as f64
        );
        println!(
            "| ratio | {:.2}× the time | |",
            ours.as_secs_f64() / old.as_secs_f64()
        );
    });
}
