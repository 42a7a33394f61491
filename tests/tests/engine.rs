//! `cache-core` against a real, private Redis: one server, or a cluster under
//! `CACHE_TEST_TOPOLOGY=cluster` (tests of what only one server shows start one whatever the
//! topology: `TestRedis::single`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cache_core::{Cache, CacheConfig, CacheError, Mode};
use cache_test_harness::TestRedis;

mod common;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    user: String,
    items: Vec<String>,
}

fn order(id: u64) -> Order {
    Order {
        id,
        user: format!("user-{id}"),
        items: vec!["a".into(), "b".into()],
    }
}

fn config(redis: &TestRedis) -> cache_core::CacheConfigBuilder {
    common::on(redis, CacheConfig::builder())
}

fn cache(redis: &TestRedis) -> Cache {
    Cache::new(config(redis).build().unwrap()).unwrap()
}

async fn raw_get(redis: &TestRedis, key: &str) -> Option<Vec<u8>> {
    redis.conn().await.get(key).await.unwrap()
}

async fn pttl(redis: &TestRedis, key: &str) -> i64 {
    redis.conn().await.pttl(key).await.unwrap()
}

#[tokio::test]
async fn set_get_delete_exists_round_trip_through_redis() {
    let redis = TestRedis::start();
    let a = cache(&redis);
    let b = cache(&redis); // a second process, as far as L1 is concerned
    assert_eq!(a.mode(), Mode::TwoLevel);

    a.set("query:orders:1", &order(1), None).await.unwrap();
    assert!(raw_get(&redis, "query:orders:1").await.is_some());
    assert_eq!(b.get::<Order>("query:orders:1").await.unwrap(), Some(order(1)));
    assert_eq!(b.stats().await.l2_hits, 1);
    assert_eq!(b.get::<Order>("query:orders:1").await.unwrap(), Some(order(1)));
    assert_eq!(b.stats().await.l1_hits, 1, "second read is served by L1");
    assert!(b.exists("query:orders:1").await.unwrap());

    assert!(a.delete("query:orders:1").await.unwrap());
    assert!(raw_get(&redis, "query:orders:1").await.is_none());
    assert_eq!(a.get::<Order>("query:orders:1").await.unwrap(), None);
    assert!(!a.delete("query:orders:1").await.unwrap());
    assert!(!a.exists("query:orders:1").await.unwrap());
    assert_eq!(a.get::<Order>("never:set").await.unwrap(), None);
}

#[tokio::test]
async fn ttl_comes_from_the_most_specific_pattern() {
    let redis = TestRedis::start();
    let c = Cache::new(
        config(&redis)
            .ttl_pattern("resource:freight:*", Duration::from_secs(42))
            .build()
            .unwrap(),
    )
    .unwrap();
    for (key, secs) in [
        ("query:users:list", 300),
        ("resource:users:1", 600),
        ("resource:freight:123", 42),
        ("analysis:trends:2025-01", 1800),
        ("ml:prediction:model1", 3600),
        ("static:logo", 86_400),
        ("plain", 300),
    ] {
        c.set(key, &1u8, None).await.unwrap();
        let ms = pttl(&redis, key).await;
        assert!(ms <= secs * 1000 && ms > secs * 1000 - 5_000, "{key}: pttl {ms}");
    }
    c.set("explicit", &1u8, Some(Duration::from_secs(7)))
        .await
        .unwrap();
    let ms = pttl(&redis, "explicit").await;
    assert!(ms <= 7000 && ms > 2000, "explicit pttl {ms}");
}

#[tokio::test]
async fn l1_never_outlives_the_entry_ttl() {
    let redis = TestRedis::start();
    let c = cache(&redis);
    c.set("short", &5u32, Some(Duration::from_millis(150)))
        .await
        .unwrap();
    assert_eq!(c.get::<u32>("short").await.unwrap(), Some(5));
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(c.get::<u32>("short").await.unwrap(), None);

    // An entry read from Redis keeps its remaining Redis TTL in L1 too.
    let writer = cache(&redis);
    writer
        .set("short2", &6u32, Some(Duration::from_millis(300)))
        .await
        .unwrap();
    let reader = cache(&redis);
    assert_eq!(reader.get::<u32>("short2").await.unwrap(), Some(6));
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(reader.get::<u32>("short2").await.unwrap(), None);
}

#[tokio::test]
async fn l1_ttl_bounds_local_staleness() {
    let redis = TestRedis::start();
    let c = Cache::new(config(&redis).l1_ttl(Duration::from_millis(100)).build().unwrap()).unwrap();
    c.set("k", &1u32, None).await.unwrap();
    // Another writer changes Redis behind this instance's back (no invalidation message).
    let other = Cache::new(config(&redis).l1_invalidation(false).build().unwrap()).unwrap();
    other.set("k", &2u32, None).await.unwrap();
    assert_eq!(
        c.get::<u32>("k").await.unwrap(),
        Some(1),
        "L1 still serves its copy"
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(
        c.get::<u32>("k").await.unwrap(),
        Some(2),
        "after l1_ttl Redis is read again"
    );
}

#[tokio::test]
async fn mget_and_mset_use_one_command_each() {
    let redis = TestRedis::single();
    let c = cache(&redis);
    let items: Vec<(String, Order)> = (0..100).map(|i| (format!("query:o:{i}"), order(i))).collect();
    c.mset(&items, None).await.unwrap();
    // Each value after its key's invalidation marker (a direct write overtakes loads in
    // flight), all in one pipeline.
    assert_eq!(redis.command_calls("set").await, 2 * 100);
    assert_eq!(redis.command_calls("mset").await, 0);
    assert!(
        pttl(&redis, "query:o:5").await > 290_000,
        "mset applies pattern TTLs"
    );

    let reader = cache(&redis);
    let mut keys: Vec<String> = items.iter().map(|(k, _)| k.clone()).collect();
    keys.insert(50, "query:o:missing".into());
    let got = reader.mget::<Order, _>(&keys).await.unwrap();
    assert_eq!(redis.command_calls("mget").await, 1);
    assert_eq!(redis.command_calls("get").await, 0);
    assert_eq!(got.len(), 101);
    assert_eq!(got[50], None);
    assert_eq!(got[0], Some(order(0)));
    assert_eq!(got[100], Some(order(99)));
    // Second pass: all from L1, no new MGET.
    let again = reader.mget::<Order, _>(&keys[..10]).await.unwrap();
    assert!(again.iter().all(Option::is_some));
    assert_eq!(redis.command_calls("mget").await, 1);
}

#[tokio::test]
async fn pattern_invalidation_scans_and_clears_both_levels() {
    let redis = TestRedis::start();
    let c = cache(&redis);
    let users: Vec<(String, u32)> = (0..2500).map(|i| (format!("resource:users:{i}"), i)).collect();
    c.mset(&users, None).await.unwrap();
    c.set("resource:orders:1", &1u32, None).await.unwrap();
    c.set("query:users:list", &1u32, None).await.unwrap();
    assert_eq!(c.get::<u32>("resource:users:7").await.unwrap(), Some(7)); // in L1

    let removed = c.invalidate_pattern("resource:users:*").await.unwrap();
    assert_eq!(removed, 2500);
    assert_eq!(redis.command_calls("keys").await, 0, "never KEYS");
    assert!(
        redis.command_calls("scan").await >= 2,
        "many keys need several SCAN pages"
    );
    assert_eq!(
        c.get::<u32>("resource:users:7").await.unwrap(),
        None,
        "L1 entry gone too"
    );
    assert_eq!(c.get::<u32>("resource:orders:1").await.unwrap(), Some(1));
    assert_eq!(c.get::<u32>("query:users:list").await.unwrap(), Some(1));

    // A literal pattern deletes just that key.
    assert_eq!(c.invalidate_pattern("resource:orders:1").await.unwrap(), 1);
    // Glob metacharacters in data are escaped, so they match only themselves.
    c.set("tag:a*", &1u8, None).await.unwrap();
    c.set("tag:ab", &1u8, None).await.unwrap();
    let escaped = format!("tag:{}", cache_core::pattern::escape("a*"));
    assert_eq!(c.invalidate_pattern(&escaped).await.unwrap(), 1);
    assert_eq!(c.get::<u8>("tag:ab").await.unwrap(), Some(1));

    assert!(matches!(
        c.invalidate_pattern("resource:[").await,
        Err(CacheError::InvalidPattern { .. })
    ));
    assert_eq!(c.clear().await.unwrap(), 2);
    assert_eq!(c.get::<u8>("tag:ab").await.unwrap(), None);
}

#[tokio::test]
async fn l1_pattern_matching_agrees_with_redis_scan() {
    let redis = TestRedis::single();
    let keys = [
        "a:1", "a:12", "a:b", "a:{t}:1", "b:1", "a?x", "a[1]", "a:", "a-z", "ab", "A:1", "a:1:2",
    ];
    let patterns = [
        "a:*", "a:?", "a:[0-9]*", "a:[^0-9]", "a:{t}:*", "a\\?x", "a\\[1\\]", "*:1", "a*", "[aA]:1",
    ];
    let mut conn = redis.conn().await;
    for k in keys {
        let _: () = conn.set(k, 1).await.unwrap();
    }
    for p in patterns {
        let mut from_redis: Vec<String> = Vec::new();
        let mut cursor = 0u64;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(p)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await
                .unwrap();
            from_redis.extend(batch);
            if next == 0 {
                break;
            }
            cursor = next;
        }
        from_redis.sort();
        let compiled = cache_core::Pattern::new(p).unwrap();
        let mut ours: Vec<String> = keys
            .iter()
            .filter(|k| compiled.matches(k))
            .map(|k| k.to_string())
            .collect();
        ours.sort();
        assert_eq!(ours, from_redis, "pattern {p}");
    }
}

#[tokio::test]
async fn compression_above_threshold_round_trips_and_is_counted() {
    let redis = TestRedis::start();
    let c = cache(&redis);
    let big: Vec<Order> = (0..200).map(order).collect(); // ~5 KB of repetitive data
    c.set("analysis:big", &big, None).await.unwrap();
    c.set("analysis:small", &order(1), None).await.unwrap();
    let raw_big = raw_get(&redis, "analysis:big").await.unwrap();
    let raw_small = raw_get(&redis, "analysis:small").await.unwrap();
    assert_eq!(raw_big[3] & 0b0001_0000, 0b0001_0000, "zlib flag set");
    assert_eq!(raw_small[3] & 0b0001_0000, 0, "small value stored plain");
    let plain_len = cache_core::codec::Codec::new(usize::MAX, 1, 1 << 30)
        .encode(&big, 0)
        .unwrap()
        .bytes
        .len();
    assert!(raw_big.len() * 2 < plain_len, "{} vs {plain_len}", raw_big.len());

    let reader = cache(&redis);
    assert_eq!(reader.get::<Vec<Order>>("analysis:big").await.unwrap(), Some(big));
    let s = c.stats().await;
    assert_eq!(s.compressions, 1);
    assert!(s.bytes_saved > 0);
}

#[tokio::test]
async fn l1_only_mode_supports_every_operation() {
    let c = Cache::new(CacheConfig::default()).unwrap();
    assert_eq!(c.mode(), Mode::L1Only);
    c.set("query:a", &1u32, None).await.unwrap();
    c.mset(&[("query:b", 2u32), ("resource:c", 3u32)], None)
        .await
        .unwrap();
    assert_eq!(c.get::<u32>("query:a").await.unwrap(), Some(1));
    assert_eq!(
        c.mget::<u32, _>(&["query:a", "query:b", "nope"]).await.unwrap(),
        vec![Some(1), Some(2), None]
    );
    assert!(c.exists("resource:c").await.unwrap());
    assert_eq!(c.invalidate_pattern("query:*").await.unwrap(), 2);
    assert!(c.delete("resource:c").await.unwrap());
    let calls = AtomicUsize::new(0);
    for _ in 0..3 {
        let v = c
            .get_or_insert_with("ml:x", None, || async {
                calls.fetch_add(1, Ordering::SeqCst);
                9u8
            })
            .await;
        assert_eq!(v, 9);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let h = c.health().await;
    assert!(h.healthy && h.redis.is_none());
    let s = c.stats().await;
    assert!(s.redis_info.is_none());
    assert_eq!(s.local_cache_size, 1);
    assert!(s.local_cache_bytes > 0);
}

#[tokio::test]
async fn corrupt_bytes_read_as_a_miss_and_are_repaired() {
    let redis = TestRedis::start();
    let c = cache(&redis);
    let mut conn = redis.conn().await;
    for garbage in [
        &b"not ours"[..],
        &[0x31, 1, 2, 3],
        &[],
        &[0xFF, b'T', b'C', 0x41, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff],
    ] {
        let _: () = conn.set("query:corrupt", garbage).await.unwrap();
        assert_eq!(c.get::<Order>("query:corrupt").await.unwrap(), None);
    }
    assert_eq!(c.stats().await.errors, 4);

    let calls = AtomicUsize::new(0);
    let v = c
        .get_or_insert_with("query:corrupt", None, || async {
            calls.fetch_add(1, Ordering::SeqCst);
            order(3)
        })
        .await;
    assert_eq!(v, order(3));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    // The entry was rewritten: a fresh instance decodes it.
    assert_eq!(
        cache(&redis).get::<Order>("query:corrupt").await.unwrap(),
        Some(order(3))
    );
    // A value of another type under the key is a decode error, not a panic.
    assert_eq!(
        cache(&redis).get::<Vec<u64>>("query:corrupt").await.unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_mid_test_calls_keep_answering_then_recover() {
    let mut redis = TestRedis::single();
    let c = Cache::new(
        config(&redis)
            .l1_enabled(false) // every call must go through the Redis path
            .breaker_cooldown(Duration::from_millis(200))
            .build()
            .unwrap(),
    )
    .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let load = |i: u64| {
        let calls = calls.clone();
        move || async move {
            calls.fetch_add(1, Ordering::SeqCst);
            order(i)
        }
    };
    assert_eq!(c.get_or_insert_with("query:k:1", None, load(1)).await, order(1));
    redis.server_mut().stop();
    for i in 0..50 {
        assert_eq!(
            c.get_or_insert_with("query:k:1", None, load(1)).await,
            order(1),
            "call {i}"
        );
    }
    assert!(matches!(c.get::<Order>("query:k:1").await, Err(e) if e.is_transport()));
    let s = c.stats().await;
    assert!(s.errors >= 1);
    assert!(s.l2_skipped > 0, "breaker opened and skipped Redis");
    let h = c.health().await;
    assert!(!h.healthy);
    assert!(h.redis.unwrap().error.is_some());

    redis.server_mut().restart();
    c.set("query:k:2", &order(2), None).await.ok();
    let start = std::time::Instant::now();
    loop {
        if c.set("query:k:2", &order(2), None).await.is_ok() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "L2 did not come back within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let before = c.stats().await.l2_hits;
    assert_eq!(c.get::<Order>("query:k:2").await.unwrap(), Some(order(2)));
    assert_eq!(c.stats().await.l2_hits, before + 1);
    assert!(c.health().await.healthy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_key_loads_once_for_concurrent_callers() {
    let redis = TestRedis::start();
    let c = cache(&redis);
    let calls = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..500)
        .map(|_| {
            let (c, calls) = (c.clone(), calls.clone());
            tokio::spawn(async move {
                c.get_or_insert_with("analysis:cold", None, || async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    order(77)
                })
                .await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), order(77));
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(redis.command_calls("set").await, 1);
    let s = c.stats().await;
    assert_eq!(s.loader_calls, 1);
    assert_eq!(s.misses, 1);
}

#[tokio::test]
async fn errors_from_the_loader_are_never_cached() {
    let redis = TestRedis::start();
    let c = cache(&redis);
    let r: Result<u32, String> = c
        .try_get_or_insert_with("query:flaky", None, || async { Err("db down".to_string()) })
        .await;
    assert_eq!(r, Err("db down".to_string()));
    assert!(raw_get(&redis, "query:flaky").await.is_none());
    let r: Result<u32, String> = c
        .try_get_or_insert_with("query:flaky", None, || async { Ok(5) })
        .await;
    assert_eq!(r, Ok(5));
    let r: Result<u32, String> = c
        .try_get_or_insert_with("query:flaky", None, || async { Err("not called".to_string()) })
        .await;
    assert_eq!(r, Ok(5));
}

#[tokio::test]
async fn stats_and_health_report_redis() {
    let redis = TestRedis::start();
    let c = cache(&redis);
    c.set("query:x", &1u8, None).await.unwrap();
    let _ = c.get::<u8>("query:x").await.unwrap();
    let _ = c.get::<u8>("query:y").await.unwrap();
    let s = c.stats().await;
    assert_eq!((s.hits, s.misses), (1, 1));
    assert!((s.hit_rate - 0.5).abs() < 1e-9);
    let info = s.redis_info.expect("redis info");
    assert!(info.connected_clients >= 1);
    assert!(info.total_commands_processed > 0);
    assert!(!info.used_memory_human.is_empty());
    let json = serde_json::to_value(c.stats().await).unwrap();
    for field in [
        "local_cache_size",
        "hits",
        "misses",
        "hit_rate",
        "errors",
        "compressions",
    ] {
        assert!(json.get(field).is_some(), "{field}");
    }
    assert!(json["redis_info"]["used_memory_human"].is_string());

    let h = c.health().await;
    assert!(h.healthy);
    let r = h.redis.unwrap();
    assert!(r.reachable && r.latency_ms.is_some());
    assert_eq!(r.maxmemory_policy.as_deref(), Some("noeviction"));
    assert!(!r.warnings.is_empty(), "noeviction without maxmemory is flagged");
    assert!(r.pool.max_size == 50 && r.pool.shared_connected >= 1);
}

#[tokio::test]
async fn oversize_values_are_refused_for_redis_but_served() {
    let redis = TestRedis::start();
    let c = Cache::new(config(&redis).max_value_size(1024).build().unwrap()).unwrap();
    let big = vec![7u8; 10_000];
    let v = c
        .get_or_insert_with("static:big", None, || async { big.clone() })
        .await;
    assert_eq!(v, big);
    assert!(raw_get(&redis, "static:big").await.is_none());
    // Not in L1 either: the next call loads again.
    let again = AtomicUsize::new(0);
    let v = c
        .get_or_insert_with("static:big", None, || async {
            again.fetch_add(1, Ordering::SeqCst);
            big.clone()
        })
        .await;
    assert_eq!((v.len(), again.load(Ordering::SeqCst)), (big.len(), 1));
    let s = c.stats().await;
    assert_eq!((s.too_large, s.errors), (2, 0));
}

/// `set` of a value over `max_value_size` is an error and stores nothing anywhere (it used to
/// return `Ok` and serve the value from L1), in both modes; `mset` stores the others.
#[tokio::test]
async fn set_refuses_oversize_values_everywhere() {
    let redis = TestRedis::start();
    let two_level = Cache::new(config(&redis).max_value_size(1024).build().unwrap()).unwrap();
    let l1_only = Cache::new(CacheConfig::builder().max_value_size(1024).build().unwrap()).unwrap();
    let big = vec![7u8; 20_000];
    for c in [&two_level, &l1_only] {
        let err = c.set("static:big", &big, None).await.unwrap_err();
        assert!(
            matches!(err, CacheError::ValueTooLarge { size, max: 1024, .. } if size > 20_000),
            "{err:?}"
        );
        assert_eq!(c.get::<Vec<u8>>("static:big").await.unwrap(), None);
        assert!(!c.exists("static:big").await.unwrap());
        let err = c
            .mset(&[("static:a", vec![1u8]), ("static:b", big.clone())], None)
            .await
            .unwrap_err();
        assert!(matches!(err, CacheError::ValueTooLarge { .. }), "{err:?}");
        assert_eq!(c.get::<Vec<u8>>("static:a").await.unwrap(), Some(vec![1u8]));
        assert_eq!(c.get::<Vec<u8>>("static:b").await.unwrap(), None);
        assert_eq!(c.stats().await.too_large, 2);
    }
    assert!(raw_get(&redis, "static:big").await.is_none());
    assert!(raw_get(&redis, "static:a").await.is_some());
}

/// Concurrent single-key reads beyond `l2_reads_in_flight` share `MGET`s, and every caller
/// still gets its own key's value (or its own miss).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_are_coalesced_into_mget() {
    let redis = TestRedis::single();
    let writer = cache(&redis);
    let items: Vec<(String, Order)> = (0..200).map(|i| (format!("query:c:{i}"), order(i))).collect();
    writer.mset(&items, None).await.unwrap();

    let reader = Arc::new(
        Cache::new(
            config(&redis)
                .l1_enabled(false)
                .l2_reads_in_flight(1)
                .build()
                .unwrap(),
        )
        .unwrap(),
    );
    // Holds the one in-flight slot while the readers queue behind it.
    redis.server().pause_clients(200).await;
    let tasks: Vec<_> = (0..240u64)
        .map(|i| {
            let r = reader.clone();
            tokio::spawn(async move { (i, r.get::<Order>(&format!("query:c:{i}")).await.unwrap()) })
        })
        .collect();
    for t in tasks {
        let (i, got) = t.await.unwrap();
        assert_eq!(got, (i < 200).then(|| order(i)), "key {i}");
    }
    let (gets, mgets) = (
        redis.command_calls("get").await,
        redis.command_calls("mget").await,
    );
    assert!(mgets >= 1, "no MGET: {gets} GETs");
    assert!(gets + mgets < 240, "{gets} GETs + {mgets} MGETs for 240 reads");
}

/// Concurrent loads of one key that Redis holds, with no L1: one `GET`, and every caller gets the
/// value the leader read (the shared entry is built for them, not for a lone reader).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_loads_of_one_redis_key_share_one_get() {
    let redis = TestRedis::single();
    cache(&redis).set("query:sf", &order(5), None).await.unwrap();
    // The command timeout outlasts the pause: a timed-out GET would run the loader.
    let reader = Arc::new(
        Cache::new(
            config(&redis)
                .l1_enabled(false)
                .command_timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
        )
        .unwrap(),
    );
    let loads = Arc::new(AtomicUsize::new(0));
    // Holds the leader's GET while the others join its flight (long enough for 100 spawns on
    // a loaded machine: a late joiner would read Redis again).
    redis.server().pause_clients(1000).await;
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let (r, loads) = (reader.clone(), loads.clone());
            tokio::spawn(async move {
                r.get_or_insert_with("query:sf", None, || async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    order(0)
                })
                .await
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), order(5));
    }
    assert_eq!(loads.load(Ordering::SeqCst), 0, "Redis had the value");
    assert_eq!(redis.command_calls("get").await, 1);
    assert_eq!(redis.command_calls("mget").await, 0);
    assert_eq!(reader.stats().await.coalesced, 99);
}

/// With coalescing off every read is its own `GET`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalescing_can_be_turned_off() {
    let redis = TestRedis::start();
    let writer = cache(&redis);
    writer.set("query:one", &order(1), None).await.unwrap();
    let reader = Arc::new(
        Cache::new(
            config(&redis)
                .l1_enabled(false)
                .l2_reads_in_flight(0)
                .build()
                .unwrap(),
        )
        .unwrap(),
    );
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let r = reader.clone();
            tokio::spawn(async move { r.get::<Order>("query:one").await.unwrap() })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), Some(order(1)));
    }
    assert_eq!(redis.command_calls("get").await, 50);
    assert_eq!(redis.command_calls("mget").await, 0);
}
