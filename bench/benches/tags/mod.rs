//! Cache tags (issue 19): P8, invalidating one tag over N entries against `invalidate_pattern`
//! over the same N keys; P8b, what tags cost a hit (tagged against untagged, L1 and L2).
//! Sections `p8` and `p8b` of the peers bench (a module of it, not a bench of its own).

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_bench::{payload, Payload};
use cache_core::codec::Codec;
use cache_core::{cache, Cache, CacheConfig};
use cache_test_harness::RedisServer;

use super::{best_of, l2_cache, ns_per_op_async, quick, rounds, section, throughput, Row, L1_CACHE};

// `Arc`: the hit's own work shows, not the clone of the payload (as in P1).
#[cache(prefix = "bench9", cache = L1_CACHE)]
async fn untagged_l1(id: u64) -> Arc<Payload> {
    Arc::new(payload(id))
}

#[cache(prefix = "bench9", cache = L1_CACHE, tags = ["item:{id}", "all"])]
async fn tagged_l1(id: u64) -> Arc<Payload> {
    Arc::new(payload(id))
}

#[cache(prefix = "bench9s", cache = L1_CACHE, tags = ["all"])]
async fn shared_tag_l1(id: u64) -> Arc<Payload> {
    Arc::new(payload(id))
}

#[cache(prefix = "bench9", cache = l2_cache(), l1 = false)]
async fn untagged_l2(id: u64) -> Payload {
    payload(id)
}

#[cache(prefix = "bench9", cache = l2_cache(), l1 = false, tags = ["item:{id}", "all"])]
async fn tagged_l2(id: u64) -> Payload {
    payload(id)
}

/// `n` cache entries `p8:{n}:{i}` carrying the tag `p8:{n}`, written straight into Redis by
/// pipelines (the same bytes the cache writes: its codec, and the tag's record written first).
async fn fill(conn: &mut redis::aio::MultiplexedConnection, n: u64) {
    let codec = Codec::new(1024, 1, 1 << 20);
    let tag = format!("p8:{n}");
    let record = format!("seed-{n}");
    redis::cmd("SET")
        .arg(format!("{}{tag}", cache_core::tags::TAG_PREFIX))
        .arg(&record)
        .query_async::<()>(conn)
        .await
        .unwrap();
    let token = cache_core::tags::token_of(Some(record.as_bytes()));
    let mut pipe = redis::pipe();
    for i in 0..n {
        let bytes = codec.encode_tagged(&i, 0, &[(&tag, token)]).unwrap().bytes;
        pipe.cmd("SET")
            .arg(format!("p8:{n}:{i}"))
            .arg(bytes)
            .arg("EX")
            .arg(3600)
            .ignore();
        if i % 10_000 == 9_999 || i == n - 1 {
            pipe.query_async::<()>(conn).await.unwrap();
            pipe = redis::pipe();
        }
    }
}

/// P8 and P8b rows.
pub(super) fn rows(multi: &tokio::runtime::Runtime, redis: &RedisServer) -> Vec<Row> {
    let mut rows = Vec::new();
    if section("p8") {
        rows.extend(p8(multi, redis));
    }
    if section("p8b") {
        rows.extend(p8b(multi));
    }
    rows
}

fn p8(multi: &tokio::runtime::Runtime, redis: &RedisServer) -> Vec<Row> {
    let cache = Cache::new(CacheConfig::builder().redis_url(redis.url()).build().unwrap()).unwrap();
    let sizes: &[u64] = if quick() {
        &[10_000, 100_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    let mut rows = Vec::new();
    multi.block_on(async {
        let mut conn = redis.conn().await;
        for &n in sizes {
            fill(&mut conn, n).await;
            let tag = format!("p8:{n}");
            let probe = format!("p8:{n}:{}", n / 2);
            assert_eq!(cache.get::<u64>(&probe).await.unwrap(), Some(n / 2));
            // Median of 21 invalidations of the tag (the entries stay in Redis, stale).
            let mut times: Vec<Duration> = (0..21).map(|_| Duration::ZERO).collect();
            for t in &mut times {
                let t0 = Instant::now();
                cache.invalidate_tags(&[&tag]).await.unwrap();
                *t = t0.elapsed();
            }
            times.sort();
            let tag_us = times[times.len() / 2].as_secs_f64() * 1e6;
            assert_eq!(
                cache.get::<u64>(&probe).await.unwrap(),
                None,
                "the tag reached it"
            );
            let t0 = Instant::now();
            let removed = cache.invalidate_pattern(&format!("p8:{n}:*")).await.unwrap();
            let pattern_us = t0.elapsed().as_secs_f64() * 1e6;
            assert_eq!(removed, n);
            println!("P8 {n} entries: tag {tag_us:.0} µs, pattern {pattern_us:.0} µs");
            rows.push(Row {
                section: "P8 invalidate a group",
                what: format!("invalidate_tags, 1 tag over {n} entries (µs, median of 21)"),
                ours: tag_us,
                peer_name: format!("invalidate_pattern over the same {n} keys (SCAN + UNLINK)"),
                peer: pattern_us,
                unit: "µs",
                higher_is_better: false,
                target: "tag ≤ 1 ms, flat in N".into(),
            });
        }
    });
    rows
}

fn p8b(multi: &tokio::runtime::Runtime) -> Vec<Row> {
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let keys = super::KEYS;
    single.block_on(async {
        for i in 0..keys {
            untagged_l1(i).await;
            tagged_l1(i).await;
            shared_tag_l1(i).await;
        }
    });
    multi.block_on(async {
        for i in 0..keys {
            untagged_l2(i).await;
            tagged_l2(i).await;
        }
    });
    let hit_ops = if quick() { 200_000 } else { 2_000_000 };
    let [untagged, tagged, shared] = best_of(rounds(3, 7), f64::min, || {
        [
            ns_per_op_async(&single, hit_ops, untagged_l1),
            ns_per_op_async(&single, hit_ops, tagged_l1),
            ns_per_op_async(&single, hit_ops, shared_tag_l1),
        ]
    });
    let l2_ops = if quick() { 300 } else { 4000 };
    let [untagged_tp, tagged_tp] = best_of(rounds(2, 3), f64::max, || {
        [
            throughput(
                multi,
                64,
                l2_ops,
                |i| async move { black_box(untagged_l2(i).await) },
            ),
            throughput(
                multi,
                64,
                l2_ops,
                |i| async move { black_box(tagged_l2(i).await) },
            ),
        ]
    });
    let row = |what: &str, ours: f64, untagged: f64, unit: &'static str, higher_is_better: bool| Row {
        section: "P8b cost of tags on a hit",
        what: what.into(),
        ours,
        peer_name: "the same fn untagged".into(),
        peer: untagged,
        unit,
        higher_is_better,
        target: "≥ 0.91× (≤ 10 % slower)".into(),
    };
    vec![
        row(
            "#[cache(tags = [\"item:{id}\", \"all\"])] L1 hit (ns/op)",
            tagged,
            untagged,
            "ns",
            false,
        ),
        row(
            "#[cache(tags = [\"all\"])] L1 hit, one tag shared by every key (ns/op)",
            shared,
            untagged,
            "ns",
            false,
        ),
        row(
            "#[cache(l1 = false, tags = [2 tags])] L2 hit, 64 tasks (ops/s)",
            tagged_tp,
            untagged_tp,
            "ops/s",
            true,
        ),
    ]
}
