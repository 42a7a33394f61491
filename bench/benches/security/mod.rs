//! Security at rest (issue 21), section `p10` of the peers bench: what encryption costs an L2
//! hit (the 150-byte value of P2, 64 tasks), its MB/s on a 10 KB document, and what key
//! obfuscation costs a miss (L2 miss, load, store). Each pair runs interleaved, best of the
//! rounds, on the one Redis.

use std::sync::Arc;
use std::time::Instant;

use cache_bench::{payload, Payload};
use cache_core::{Cache, CacheConfig};
use cache_test_harness::RedisServer;

use super::{best_of, quick, rounds, section, throughput, Row, KEYS};

const KEYRING: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const SECRET: &str = "bench-secret-of-at-least-16-bytes";

/// A cache with L1 off (every read goes to Redis), in its own namespace so that the plain and
/// the encrypted entries do not read each other's.
fn l2_only(rt: &tokio::runtime::Runtime, redis: &RedisServer, ns: &str, keys: bool, secret: bool) -> Cache {
    let mut b = CacheConfig::builder()
        .redis_url(redis.url())
        .namespace(ns)
        .l1_enabled(false);
    if keys {
        b = b.encryption_keys(KEYRING);
    }
    if secret {
        b = b.key_secret(SECRET);
    }
    Cache::with_runtime(b.build().unwrap(), rt.handle()).unwrap()
}

/// A JSON document of about 10 KB (P6's).
fn document() -> String {
    let records: Vec<serde_json::Value> = (0..80)
        .map(|i| serde_json::json!({"id": i, "origin": "Hamburg", "destination": "Rotterdam", "status": if i % 3 == 0 {"delivered"} else {"in_transit"}, "weight_kg": i * 37 % 20000, "tags": ["freight", "eu", "priority"]}))
        .collect();
    serde_json::to_string(&records).unwrap()
}

pub(crate) fn rows(rt: &tokio::runtime::Runtime, redis: &RedisServer) -> Vec<Row> {
    if !section("p10") {
        return Vec::new();
    }
    let mut rows = Vec::new();
    let plain = Arc::new(l2_only(rt, redis, "p10plain", false, false));
    let sealed = Arc::new(l2_only(rt, redis, "p10sealed", true, false));
    let doc = Arc::new(document());
    rt.block_on(async {
        for i in 0..KEYS {
            for c in [&plain, &sealed] {
                c.set(&format!("query:p10:{i}"), &payload(i), None).await.unwrap();
                c.set(&format!("query:p10doc:{i}"), &*doc, None).await.unwrap();
            }
        }
    });
    let hit = |c: &Arc<Cache>| {
        let c = c.clone();
        move |i: u64| {
            let c = c.clone();
            async move {
                c.get::<Payload>(&format!("query:p10:{i}"))
                    .await
                    .unwrap()
                    .unwrap()
            }
        }
    };
    let ops = if quick() { 300 } else { 3000 };
    let [enc_tp, plain_tp] = best_of(rounds(2, 3), f64::max, || {
        [
            throughput(rt, 64, ops, hit(&sealed)),
            throughput(rt, 64, ops, hit(&plain)),
        ]
    });
    rows.push(Row {
        section: "P10 encryption, L2 hit 150 B, 64 tasks",
        what: "encrypted hit (ops/s)".into(),
        ours: enc_tp,
        peer_name: "same cache unencrypted".into(),
        peer: plain_tp,
        unit: "ops/s",
        higher_is_better: true,
        target: "≥ 0.9× (≤ 10 % slower)".into(),
    });

    let doc_hit = |c: &Arc<Cache>| {
        let c = c.clone();
        move |i: u64| {
            let c = c.clone();
            async move {
                c.get::<String>(&format!("query:p10doc:{i}"))
                    .await
                    .unwrap()
                    .unwrap()
                    .len()
            }
        }
    };
    let doc_ops = if quick() { 100 } else { 1000 };
    let [enc_doc, plain_doc] = best_of(rounds(2, 3), f64::max, || {
        [
            throughput(rt, 64, doc_ops, doc_hit(&sealed)),
            throughput(rt, 64, doc_ops, doc_hit(&plain)),
        ]
    });
    let mbs = |tp: f64| tp * doc.len() as f64 / 1e6;
    rows.push(Row {
        section: "P10 encryption, L2 hit 10 KB JSON, 64 tasks",
        what: "encrypted hit (MB/s of values)".into(),
        ours: mbs(enc_doc),
        peer_name: "same cache unencrypted".into(),
        peer: mbs(plain_doc),
        unit: "MB/s",
        higher_is_better: true,
        target: "-".into(),
    });

    // A miss: L2 GET (absent), the load, the store; fresh keys each round.
    let obf = l2_only(rt, redis, "p10obf", false, true);
    let bare = l2_only(rt, redis, "p10bare", false, false);
    let n = if quick() { 500 } else { 4000 };
    let mut round = 0u64;
    let miss = |c: &Cache, round: u64| {
        rt.block_on(async {
            let t = Instant::now();
            for i in 0..n {
                let key = format!("query:app::get_user:user{round}-{i}@example.com");
                c.get_or_insert_with(&key, None, || async { i }).await;
            }
            t.elapsed().as_nanos() as f64 / n as f64 / 1e3
        })
    };
    let [obf_us, bare_us] = best_of(rounds(3, 5), f64::min, || {
        round += 1;
        [miss(&obf, round), miss(&bare, round)]
    });
    rows.push(Row {
        section: "P10 key obfuscation, miss + load + store, 1 task",
        what: "obfuscated keys (µs/miss)".into(),
        ours: obf_us,
        peer_name: "plain keys".into(),
        peer: bare_us,
        unit: "µs",
        higher_is_better: false,
        target: "≥ 0.95×".into(),
    });
    rows
}
