//! Performance utilities: batch get-or-compute, `#[cache_batch]`, per-function timings, memory
//! profile — against a real Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use cache_core::{cache_batch, cache_query, Cache, CacheConfig};
use cache_test_harness::RedisServer;

fn two_level(redis: &RedisServer, l1: bool) -> Cache {
    Cache::new(
        CacheConfig::builder()
            .redis_url(redis.url())
            .l1_enabled(l1)
            .build()
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn get_many_or_compute_loads_only_the_missing_keys_in_one_round_trip_each() {
    let redis = RedisServer::start();
    let c = two_level(&redis, false);
    let keys: Vec<String> = (0..100).map(|i| format!("resource:items:{i}")).collect();
    let cached: Vec<(String, u64)> = (0..100)
        .filter(|i| i % 10 != 0)
        .map(|i| (keys[i].clone(), i as u64))
        .collect();
    c.mset(&cached, None).await.unwrap();
    let sets_before = redis.command_calls("set").await;

    let seen = Mutex::new(Vec::new());
    let got = c
        .get_many_or_compute(&keys, None, |missing: Vec<String>| {
            seen.lock().unwrap().push(missing.clone());
            async move {
                Ok::<_, String>(
                    missing
                        .iter()
                        .map(|k| (k.clone(), k.rsplit(':').next().unwrap().parse::<u64>().unwrap()))
                        .collect::<HashMap<_, _>>(),
                )
            }
        })
        .await
        .unwrap();
    let calls = seen.into_inner().unwrap();
    assert_eq!(calls.len(), 1, "the loader is called once");
    let expected: Vec<String> = (0..100)
        .filter(|i| i % 10 == 0)
        .map(|i| keys[i].clone())
        .collect();
    assert_eq!(
        calls[0], expected,
        "with exactly the missing keys, in input order"
    );
    assert_eq!(
        got,
        (0..100).map(|i| Some(i as u64)).collect::<Vec<_>>(),
        "results in input order"
    );
    // One MGET for the values, one for the invalidation markers of the missing keys (read
    // before the loader runs, so a write during the load keeps its values out: issue 25).
    assert_eq!(redis.command_calls("mget").await, 2);
    // One guarded write: its EVALSHA, refused once by this fresh server (NOSCRIPT), the script
    // loaded, the EVALSHA again.
    assert_eq!(
        (
            redis.command_calls("evalsha").await,
            redis.command_calls("eval").await
        ),
        (2, 0),
        "one guarded write"
    );
    // No value is read with GET: the only GETs are the guarded write's own, on the server (the
    // epoch, then each key's marker).
    assert_eq!(redis.command_calls("get").await, 1 + 10);
    assert_eq!(
        redis.command_calls("set").await - sets_before,
        10,
        "the ten results, one pipeline"
    );

    // Everything cached now: no loader call.
    let again = c
        .get_many_or_compute(&keys, None, |_m: Vec<String>| async {
            Err::<HashMap<String, u64>, _>("not called")
        })
        .await
        .unwrap();
    assert_eq!(again.len(), 100);
    // A loader error reaches the caller.
    let err = c
        .get_many_or_compute(&["resource:items:new"], None, |_m: Vec<String>| async {
            Err::<HashMap<String, u64>, _>("db down")
        })
        .await;
    assert_eq!(err, Err("db down"));
}

#[tokio::test]
async fn get_many_or_compute_works_l1_only() {
    let c = Cache::new(CacheConfig::default()).unwrap();
    c.set("k:1", &1u8, None).await.unwrap();
    let got = c
        .get_many_or_compute(&["k:1", "k:2"], None, |m: Vec<String>| async move {
            assert_eq!(m, vec!["k:2"]);
            Ok::<_, ()>(HashMap::from([("k:2".to_string(), 2u8)]))
        })
        .await
        .unwrap();
    assert_eq!(got, vec![Some(1), Some(2)]);
    assert_eq!(c.get::<u8>("k:2").await.unwrap(), Some(2));
}

static BATCH_CACHE: OnceLock<Cache> = OnceLock::new();
static BATCH_SEEN: Mutex<Vec<Vec<u64>>> = Mutex::new(Vec::new());

#[cache_batch(prefix = "resource:users", cache = BATCH_CACHE.get().unwrap())]
async fn user_names(ids: &[u64], suffix: &str) -> HashMap<u64, String> {
    BATCH_SEEN.lock().unwrap().push(ids.to_vec());
    ids.iter()
        .filter(|id| **id != 13)
        .map(|id| (*id, format!("user {id}{suffix}")))
        .collect()
}

#[tokio::test]
async fn cache_batch_calls_the_function_once_with_the_missing_ids() {
    let redis = RedisServer::start();
    let _ = BATCH_CACHE.set(two_level(&redis, false));
    let first: Vec<u64> = (0..90).collect();
    let m = user_names(&first, "").await;
    assert_eq!(m.len(), 89, "id 13 has no user");
    let all: Vec<u64> = (0..100).collect();
    let m = user_names(&all, "").await;
    assert_eq!(m.len(), 99);
    assert_eq!(m[&95], "user 95");
    let seen = BATCH_SEEN.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    let mut expected: Vec<u64> = vec![13];
    expected.extend(90..100);
    assert_eq!(
        seen[1], expected,
        "100 ids with 89 cached: one call for the 11 others"
    );
    assert_eq!(
        redis.command_calls("mget").await,
        4,
        "per call: one MGET of the values, one of the missing keys' invalidation markers"
    );
    // The guarded writes' own GETs on the server: the epoch and each stored key's marker
    // (89 values, then 10); no value is read with GET.
    assert_eq!(redis.command_calls("get").await, (1 + 89) + (1 + 10));
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("resource:users:*")
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    assert_eq!(keys.len(), 99);
}

static WARM_BATCH_CACHE: std::sync::LazyLock<Cache> =
    std::sync::LazyLock::new(|| Cache::new(CacheConfig::default()).unwrap());
static WARM_BATCH_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cache_batch(prefix = "resource:warm", cache = WARM_BATCH_CACHE)]
#[cache_core::warmup_cache(ids = &[1, 2, 3])]
async fn warm_batch(ids: &[u64]) -> HashMap<u64, u64> {
    WARM_BATCH_CALLS.fetch_add(1, Ordering::SeqCst);
    ids.iter().map(|i| (*i, i * 10)).collect()
}

#[tokio::test]
async fn batch_warmup_uses_the_batch_path() {
    let entry = cache_core::warmup::registered()
        .find(|e| e.function == "perf::warm_batch")
        .expect("registered");
    (entry.run)().await.unwrap();
    assert_eq!(WARM_BATCH_CALLS.load(Ordering::SeqCst), 1);
    let got = WARM_BATCH_CACHE
        .mget::<u64, _>(&["resource:warm:1", "resource:warm:2", "resource:warm:3"])
        .await
        .unwrap();
    assert_eq!(got, vec![Some(10), Some(20), Some(30)]);
    assert_eq!(warm_batch(&[1, 2, 3]).await.len(), 3);
    assert_eq!(WARM_BATCH_CALLS.load(Ordering::SeqCst), 1, "warm: no second call");
}

static SLOW_CALLS: AtomicUsize = AtomicUsize::new(0);
static PERF_CACHE: OnceLock<Cache> = OnceLock::new();

#[cache_query(cache = PERF_CACHE.get().unwrap())]
async fn slow_lookup(id: u64) -> u64 {
    SLOW_CALLS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await;
    id
}

#[tokio::test]
async fn per_function_timings_move_when_calls_are_made() {
    let redis = RedisServer::start();
    let _ = PERF_CACHE.set(two_level(&redis, true));
    let name = "perf::slow_lookup";
    let find = || cache_core::perf::functions().into_iter().find(|f| f.name == name);
    assert!(find().is_none(), "not registered before the first call");
    slow_lookup(1).await;
    for _ in 0..200 {
        slow_lookup(1).await;
    }
    slow_lookup(2).await;
    let f = find().unwrap();
    assert_eq!((f.calls, f.hits, f.loads), (202, 200, 2), "{f:?}");
    assert!(f.mean_load_ms >= 20.0 && f.p99_load_ms >= 20.0, "{f:?}");
    assert!(f.time_saved_ms >= 200.0 * 20.0, "{f:?}");
    assert!(f.mean_hit_us > 0.0, "sampled hits were timed: {f:?}");
    assert!((f.hit_rate - 200.0 / 202.0).abs() < 1e-9);

    let v = cache_core::perf::measure("perf::manual", async {
        tokio::time::sleep(Duration::from_millis(5)).await;
        3
    })
    .await;
    assert_eq!(v, 3);
    let m = cache_core::perf::functions()
        .into_iter()
        .find(|f| f.name == "perf::manual")
        .unwrap();
    assert_eq!(m.loads, 1);
    assert!(m.mean_load_ms >= 5.0);

    let perf = PERF_CACHE.get().unwrap().performance().await;
    assert!(perf.functions.iter().any(|f| f.name == name));
}

#[tokio::test]
async fn memory_profile_by_prefix_with_sampled_redis_usage() {
    let redis = RedisServer::start();
    let c = two_level(&redis, true);
    for i in 0..50 {
        c.set(&format!("query:q:{i}"), &vec![i as u8; 100], None)
            .await
            .unwrap();
    }
    for i in 0..5 {
        c.set(&format!("resource:r:{i}"), &vec![1u8; 5000 + i], None)
            .await
            .unwrap();
    }
    let p = c.memory_profile(10).await;
    let q = p.prefixes.iter().find(|x| x.prefix == "query").unwrap();
    let r = p.prefixes.iter().find(|x| x.prefix == "resource").unwrap();
    assert_eq!((q.l1_entries, r.l1_entries), (50, 5));
    assert_eq!(q.redis_sampled_keys, 10, "bounded sample");
    assert_eq!(r.redis_sampled_keys, 5);
    assert!(q.redis_sampled_bytes > 0 && r.redis_sampled_bytes > 0);
    assert_eq!(p.largest.len(), 10);
    assert!(p.largest[0].key.starts_with("resource:r:"));
    assert!(p.largest.windows(2).all(|w| w[0].bytes >= w[1].bytes));
    assert!(p.l2_written_stored_bytes > 0 && p.l2_written_raw_bytes >= p.l2_written_stored_bytes);
    assert!(p.redis_used_memory.unwrap() > 0);
    assert_eq!(redis.command_calls("keys").await, 0, "never KEYS");
}
