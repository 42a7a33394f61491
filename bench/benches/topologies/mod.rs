//! P2 over TLS, and P2 and P3 on a Redis Cluster (3 primaries + 3 replicas), each against the
//! raw redis-rs client on the same server in the same run. Sections `p2tls`, `p2cluster`,
//! `p3cluster` of the peers bench (a module of it, not a bench of its own).

use std::hint::black_box;
use std::time::Instant;

use cache_bench::{decode, encode, payload, read_raw, Payload};
use cache_core::{Cache, CacheConfig};
use cache_test_harness::{RedisCluster, RedisServer, TlsFiles};

use super::{best_of, quick, rounds, section, throughput, Row, KEYS};

/// Fills `cache` with every key through its read-through path, and the raw keys beside them.
async fn fill<C: redis::aio::ConnectionLike + Clone>(cache: &Cache, raw: &C) {
    for i in 0..KEYS {
        cache
            .get_or_insert_with(&format!("query:p:{i}"), None, || async move { payload(i) })
            .await;
        cache_bench::write_raw(&mut raw.clone(), i).await;
    }
}

/// 64 tasks: ours (read-through, L1 off) against a raw `GET` + decode on `raw`.
fn p2_rows<C>(
    multi: &tokio::runtime::Runtime,
    section_name: &'static str,
    cache: &Cache,
    raw: C,
    raw_name: &str,
) -> Vec<Row>
where
    C: redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
{
    multi.block_on(fill(cache, &raw));
    let ops = if quick() { 300 } else { 3000 };
    let ours = {
        let cache = cache.clone();
        move |i: u64| {
            let cache = cache.clone();
            async move {
                cache
                    .get_or_insert_with(&format!("query:p:{i}"), None, || async move { payload(i) })
                    .await
            }
        }
    };
    let raw_get = move |i: u64| {
        let mut c = raw.clone();
        async move { read_raw(&mut c, i).await }
    };
    let [ours_tp, raw_tp] = best_of(rounds(2, 3), f64::max, || {
        [
            throughput(multi, 64, ops, ours.clone()),
            throughput(multi, 64, ops, raw_get.clone()),
        ]
    });
    vec![Row {
        section: section_name,
        what: "read-through hit, L1 off (ops/s)".into(),
        ours: ours_tp,
        peer_name: raw_name.into(),
        peer: raw_tp,
        unit: "ops/s",
        higher_is_better: true,
        target: "≥ 0.9×".into(),
    }]
}

/// The sections of this module that `BENCH_ONLY` selects.
pub(super) fn rows(multi: &tokio::runtime::Runtime) -> Vec<Row> {
    let mut rows = Vec::new();
    if section("p2tls") {
        let files = TlsFiles::generate();
        let server = RedisServer::start_tls(&files, false);
        let cache = Cache::new(
            CacheConfig::builder()
                .redis_url(server.tls_url())
                .redis_tls_ca_file(&files.ca_cert)
                .l1_enabled(false)
                .build()
                .unwrap(),
        )
        .unwrap();
        let raw = multi.block_on(async {
            redis::Client::build_with_tls(server.tls_url(), files.certificates(false))
                .unwrap()
                .get_multiplexed_async_connection()
                .await
                .unwrap()
        });
        rows.extend(p2_rows(
            multi,
            "P2 L2 hit over TLS, 64 tasks",
            &cache,
            raw,
            "raw TLS multiplexed GET + decode",
        ));
    }
    if !section("p2cluster") && !section("p3cluster") {
        return rows;
    }
    let cluster = RedisCluster::start(3, 1);
    let cache = Cache::new(
        CacheConfig::builder()
            .redis_cluster_urls(cluster.seed_urls())
            .l1_enabled(false)
            .build()
            .unwrap(),
    )
    .unwrap();
    let raw = multi.block_on(async {
        redis::cluster::ClusterClient::new(cluster.seed_urls())
            .unwrap()
            .get_async_connection()
            .await
            .unwrap()
    });
    if section("p2cluster") {
        rows.extend(p2_rows(
            multi,
            "P2 L2 hit on a cluster, 64 tasks",
            &cache,
            raw.clone(),
            "raw ClusterConnection GET + decode",
        ));
    }
    if section("p3cluster") {
        let keys: Vec<String> = (0..100).map(|i| format!("batch:{i}")).collect();
        let raw_keys: Vec<String> = (0..100).map(|i| format!("rawbatch:{i}")).collect();
        let items: Vec<(String, Payload)> = keys.iter().cloned().zip((0..100).map(payload)).collect();
        let n = if quick() { 50 } else { 300 };
        let (ours_us, raw_us, mgets_per_batch, primaries) = multi.block_on(async {
            let mut c = raw.clone();
            cache.mset(&items, None).await.unwrap();
            for (k, (_, v)) in raw_keys.iter().zip(&items) {
                redis::cmd("SET")
                    .arg(k)
                    .arg(encode(v))
                    .query_async::<()>(&mut c)
                    .await
                    .unwrap();
            }
            let count = || async {
                let mut per_primary = Vec::new();
                for p in cluster.primaries().await {
                    per_primary.push(
                        cluster.command_calls(p, "mget").await + cluster.command_calls(p, "eval").await,
                    );
                }
                per_primary
            };
            let before = count().await;
            let t = Instant::now();
            for _ in 0..n {
                black_box(cache.mget::<Payload, _>(&keys).await.unwrap());
            }
            let ours = t.elapsed().as_secs_f64() * 1e6 / n as f64;
            let after = count().await;
            let mgets: Vec<f64> = after
                .iter()
                .zip(&before)
                .map(|(a, b)| (a - b) as f64 / n as f64)
                .collect();
            let t = Instant::now();
            for _ in 0..n {
                let values: Vec<Option<Vec<u8>>> = redis::cmd("MGET")
                    .arg(&raw_keys)
                    .query_async(&mut c)
                    .await
                    .unwrap();
                black_box(values.iter().flatten().map(|b| decode(b)).collect::<Vec<_>>());
            }
            let raw_us = t.elapsed().as_secs_f64() * 1e6 / n as f64;
            (ours, raw_us, mgets, cluster.primaries().await.len())
        });
        rows.push(Row {
            section: "P3 batch of 100 on a cluster",
            what: format!(
                "mget (µs/batch; commands per batch on each of the {primaries} primaries: {mgets_per_batch:?})"
            ),
            ours: ours_us,
            peer_name: "raw ClusterConnection MGET + decode".into(),
            peer: raw_us,
            unit: "µs",
            higher_is_better: false,
            target: "≥ 0.9×".into(),
        });
    }
    rows
}
