//! P2 on one runtime thread, section `p2one` of the peers bench: the same 64 tasks of L2 hits
//! as P2, on a runtime of one worker thread, every contender's connection and background task
//! made on it, so the second core is the server's.
//!
//! Why it is here: on P2's two worker threads, perf of `l2_profile` puts about a third of the
//! client's samples in the kernel's context switches (`finish_task_switch` and the run queue's
//! unlocks): the two workers parking and waking each other beside the server on two cores.
//! This section measures the same calls without that, in the same run, so what the two-thread
//! rows lose to it is read off the table rather than estimated.

use std::sync::{Arc, OnceLock};

use cache_bench::{payload, L2Floor, Payload};
use cache_core::{cache, Cache, CacheConfig};
use cache_test_harness::RedisServer;
use cached::macros::concurrent_cached;

use super::{best_of, quick, redis_benchmark, rounds, section, throughput, with_cpu, Row};

static ONE_CACHE: OnceLock<Cache> = OnceLock::new();

fn one_cache() -> &'static Cache {
    ONE_CACHE.get().expect("set before use")
}

#[cache(prefix = "bench1w", cache = one_cache(), l1 = false)]
async fn ours_one(id: u64) -> Payload {
    payload(id)
}

// Its own function, so its connection (made on first use) is made on this section's runtime.
#[concurrent_cached(redis = true, ttl_secs = 3600, map_error = |e| format!("{e:?}"))]
async fn cached_redis_one(id: u64) -> Result<Payload, String> {
    Ok(payload(id))
}

/// The section's rows: ours, raw `GET`, `cached`, the `MGET` floor and `redis-benchmark`, with
/// the client's CPU a GET.
pub(crate) fn rows(redis: &RedisServer) -> Vec<Row> {
    if !section("p2one") {
        return Vec::new();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let cache = Cache::with_runtime(
        CacheConfig::builder()
            .redis_url(redis.url())
            .l1_enabled(false)
            .build()
            .unwrap(),
        rt.handle(),
    )
    .unwrap();
    let _ = ONE_CACHE.set(cache);
    let conn = super::preload_l2(&rt, redis, ours_one, cached_redis_one);
    let ops = if quick() { 300 } else { 4000 };
    let floor = Arc::new(L2Floor::new(conn.clone(), 4));
    let floor = move |i: u64| {
        let floor = floor.clone();
        async move { floor.get(i).await }
    };
    let raw = move |i: u64| {
        let mut c = conn.clone();
        async move { cache_bench::read_raw(&mut c, i).await }
    };
    let (mut cpu_ours, mut cpu_raw, mut cpu_cached) = (f64::MAX, f64::MAX, f64::MAX);
    let [ours_tp, raw_tp, cached_tp, floor_tp] = best_of(rounds(2, 3), f64::max, || {
        let (ours, cpu) = with_cpu(64 * ops, || throughput(&rt, 64, ops, ours_one));
        cpu_ours = cpu_ours.min(cpu);
        let (raw, cpu) = with_cpu(64 * ops, || throughput(&rt, 64, ops, raw.clone()));
        cpu_raw = cpu_raw.min(cpu);
        let (cached, cpu) = with_cpu(64 * ops, || {
            throughput(
                &rt,
                64,
                ops,
                |i| async move { cached_redis_one(i).await.unwrap() },
            )
        });
        cpu_cached = cpu_cached.min(cpu);
        [ours, raw, cached, throughput(&rt, 64, ops, floor.clone())]
    });
    let mut peers = vec![
        ("raw multiplexed GET + decode", raw_tp, "-"),
        ("cached #[concurrent_cached(redis)]", cached_tp, "-"),
        ("floor: shared MGETs, one task wake a call", floor_tp, "-"),
    ];
    // redis-benchmark is its own process, so the runtime is nothing to it: run again here, it is
    // the server's rate at the same time as these rows, not another thread count.
    // Only its rate is read here, so the server's CPU is not asked for.
    let size = cache_bench::encode(&payload(0)).len();
    let n = if quick() { 200_000 } else { 2_000_000 };
    if let Some(bench) = redis_benchmark(redis, size, n, &mut || std::time::Duration::ZERO) {
        peers.push(("redis-benchmark -c 64 -P 16 -t get", bench.tp, "-"));
    }
    let mut rows = super::rows_against(
        "P2 L2 hit, 64 tasks on 1 runtime thread",
        "#[cache(l1 = false)] hit (ops/s)",
        ours_tp,
        "ops/s",
        true,
        &peers,
    );
    rows.extend(super::rows_against(
        "P2 client CPU per GET, 1 runtime thread",
        "ours (µs/GET, user + sys of the whole process)",
        cpu_ours,
        "µs",
        false,
        &[
            ("raw multiplexed GET + decode", cpu_raw, "-"),
            ("cached #[concurrent_cached(redis)]", cpu_cached, "-"),
        ],
    ));
    drop(rt);
    rows
}
