//! The engine's protocol on the in-memory fake tier ([`crate::tier::fake`]): read-through,
//! single flight, fail-safe, a failing tier, the L1 write rule and the stale-set guard, without
//! a Redis server. The integration tests (`tests/`) cover the same against real servers.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::Engine;
use crate::cache::Cache;
use crate::config::CacheConfig;
use crate::key::Fingerprint;
use crate::loader::LoadOptions;
use crate::tier::fake::FakeTier;

fn cache_over(fake: &FakeTier, config: CacheConfig) -> Cache {
    let engine = Arc::new(Engine::with_remote(config, Box::new(fake.clone())).expect("engine builds"));
    // As `Cache::new` does: the coarse clock L1 expiry reads runs while a cache lives.
    super::Background::start(&engine, None);
    Cache { engine }
}

fn two_level(fake: &FakeTier) -> Cache {
    cache_over(fake, CacheConfig::default())
}

#[tokio::test]
async fn a_miss_loads_once_and_stores_in_both_tiers() {
    let fake = FakeTier::default();
    let cache = two_level(&fake);
    let runs = AtomicUsize::new(0);
    for _ in 0..3 {
        let v = cache
            .get_or_insert_with("query:a", None, || async {
                runs.fetch_add(1, Ordering::SeqCst);
                vec![1u32, 2]
            })
            .await;
        assert_eq!(v, vec![1, 2]);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    let raw = fake.raw("query:a").expect("stored remotely");
    assert!(raw.starts_with(&crate::codec::MAGIC), "in the cache's envelope");
    assert_eq!(fake.gets(), 1, "later calls hit L1");
    assert_eq!(cache.engine.l1_size().0, 1);
}

#[tokio::test]
async fn a_remote_copy_fills_l1_of_another_instance() {
    let fake = FakeTier::default();
    let (a, b) = (two_level(&fake), two_level(&fake));
    a.set("resource:u:1", &"ann".to_string(), None).await.unwrap();
    let loaded = b
        .get_or_insert_with("resource:u:1", None, || async { "not this".to_string() })
        .await;
    assert_eq!(loaded, "ann");
    let gets = fake.gets();
    assert_eq!(
        b.get::<String>("resource:u:1").await.unwrap().as_deref(),
        Some("ann")
    );
    assert_eq!(fake.gets(), gets, "the second read is an L1 hit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_misses_run_one_loader() {
    let fake = FakeTier::default();
    let cache = two_level(&fake);
    let runs = Arc::new(AtomicUsize::new(0));
    fake.hold_reads();
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let (cache, runs) = (cache.clone(), runs.clone());
            tokio::spawn(async move {
                cache
                    .get_or_insert_with("query:hot", None, || async {
                        runs.fetch_add(1, Ordering::SeqCst);
                        7u64
                    })
                    .await
            })
        })
        .collect();
    // Every caller is either the leader (held in its read) or waiting on it. Released before
    // the 19 others had joined, a late one could start after the leader unregistered its
    // flight and read the tier again (seen once in CI: 2 reads).
    while fake.gets() == 0 || cache.engine.flights.waiters() < 19 {
        tokio::task::yield_now().await;
    }
    fake.release_reads();
    for t in tasks {
        assert_eq!(t.await.unwrap(), 7);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert_eq!(fake.gets(), 1, "one remote read for all of them");
}

#[tokio::test]
async fn a_failing_tier_never_fails_the_call_and_l1_still_serves() {
    let fake = FakeTier::default();
    let cache = two_level(&fake);
    fake.set_failing(true);
    let runs = AtomicUsize::new(0);
    for _ in 0..2 {
        let v = cache
            .get_or_insert_with("query:down", None, || async {
                runs.fetch_add(1, Ordering::SeqCst);
                5u8
            })
            .await;
        assert_eq!(v, 5);
    }
    assert_eq!(runs.load(Ordering::SeqCst), 1, "L1 kept the value");
    let stats = cache.stats().await;
    assert!(
        stats.errors >= 2,
        "read and write failures are counted: {}",
        stats.errors
    );
    assert!(
        cache.set("query:down2", &1u8, None).await.is_err(),
        "the direct API says so"
    );
    assert_eq!(cache.get::<u8>("query:down2").await.unwrap(), Some(1), "from L1");
}

#[tokio::test]
async fn corrupt_remote_bytes_are_a_counted_miss() {
    let fake = FakeTier::default();
    let cache = two_level(&fake);
    fake.put_raw("query:bad", &[0xFF, b'T', b'C', 0x42, 1, 2, 3]);
    let v = cache
        .get_or_insert_with("query:bad", None, || async { 9u32 })
        .await;
    assert_eq!(v, 9);
    assert!(cache.stats().await.errors >= 1);
}

#[tokio::test]
async fn l1_entries_live_at_most_l1_ttl_over_a_remote_tier() {
    let fake = FakeTier::default();
    let config = CacheConfig::builder()
        .l1_ttl(Duration::from_millis(30))
        .build()
        .unwrap();
    let cache = cache_over(&fake, config);
    cache
        .set("query:short", &1u8, Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert_eq!(cache.get::<u8>("query:short").await.unwrap(), Some(1));
    assert_eq!(fake.gets(), 0, "fresh in L1");
    tokio::time::sleep(Duration::from_millis(80)).await;
    assert_eq!(cache.get::<u8>("query:short").await.unwrap(), Some(1));
    assert_eq!(
        fake.gets(),
        1,
        "L1's copy expired at l1_ttl; the remote one did not"
    );
}

#[tokio::test]
async fn use_l1_false_keeps_values_out_of_l1() {
    let fake = FakeTier::default();
    let cache = two_level(&fake);
    let opts = LoadOptions {
        use_l1: false,
        ..LoadOptions::default()
    };
    let fp = Fingerprint::of("query:remote-only");
    let v: Result<u8, ()> = crate::loader::load_after_miss(
        &cache.engine,
        "query:remote-only",
        fp,
        opts,
        None,
        &[],
        crate::loader::Rule::RESULT,
        |_: &u8| true,
        || async { Ok(3) },
    )
    .await;
    assert_eq!(v, Ok(3));
    assert_eq!(cache.engine.l1_size().0, 0);
    assert!(fake.raw("query:remote-only").is_some());
}

#[tokio::test]
async fn l1_weight_is_the_encoded_size() {
    let cache = Cache::new(CacheConfig::default()).unwrap();
    cache.set("query:big", &vec![7u8; 10_000], None).await.unwrap();
    let (_, bytes) = cache.engine.l1_size();
    assert!(bytes >= 10_000, "weighed {bytes} bytes");
}

/// A delete that lands while a load runs keeps the load's (older) value out of both tiers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_during_a_load_discards_its_store() {
    let fake = FakeTier::default();
    let cache = two_level(&fake);
    let (started_tx, started) = tokio::sync::oneshot::channel::<()>();
    let (go, go_rx) = tokio::sync::oneshot::channel::<()>();
    let load = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_or_insert_with("query:raced", None, || async move {
                    let _ = started_tx.send(());
                    let _ = go_rx.await;
                    "old".to_string()
                })
                .await
        })
    };
    started.await.unwrap();
    cache.delete("query:raced").await.unwrap();
    go.send(()).unwrap();
    assert_eq!(load.await.unwrap(), "old", "the caller still gets its value");
    assert_eq!(fake.raw("query:raced"), None, "not stored remotely");
    assert_eq!(
        cache.get::<String>("query:raced").await.unwrap(),
        None,
        "nor in L1"
    );
    assert_eq!(cache.stats().await.stale_discarded, 1);
}

/// Two call sites sharing a key with different value types never see each other's value.
#[tokio::test]
async fn value_types_sharing_a_key_load_apart() {
    let fake = FakeTier::default();
    let cache = two_level(&fake);
    let n = cache
        .get_or_insert_with("query:shared", None, || async { 1u64 })
        .await;
    let s = cache
        .get_or_insert_with("query:shared", None, || async { "text".to_string() })
        .await;
    assert_eq!((n, s.as_str()), (1, "text"));
}

#[tokio::test]
async fn fail_safe_serves_the_stale_value_when_the_loader_fails() {
    let fake = FakeTier::default();
    let cache = two_level(&fake);
    let opts = LoadOptions {
        ttl: Some(Duration::from_millis(20)),
        stale_for: Some(Duration::from_secs(600)),
        ..LoadOptions::default()
    };
    let fp = Fingerprint::of("query:fs");
    let first: Result<u32, &str> =
        crate::loader::fail_safe::load_fail_safe(&cache.engine, "query:fs", fp, opts, &[], || async {
            Ok(1)
        })
        .await;
    assert_eq!(first, Ok(1));
    tokio::time::sleep(Duration::from_millis(60)).await;
    let second: Result<u32, &str> =
        crate::loader::fail_safe::load_fail_safe(&cache.engine, "query:fs", fp, opts, &[], || async {
            Err("db down")
        })
        .await;
    assert_eq!(second, Ok(1), "the stale value, not the error");
    assert_eq!(cache.stats().await.stale_served, 1);
}

#[tokio::test]
async fn clear_deletes_only_what_the_cache_wrote() {
    let fake = FakeTier::default();
    let cache = two_level(&fake);
    cache.set("query:mine", &1u8, None).await.unwrap();
    fake.put_raw("query:theirs", b"another program's value");
    cache.clear().await.unwrap();
    assert_eq!(fake.raw("query:mine"), None);
    assert_eq!(
        fake.raw("query:theirs").as_deref(),
        Some(&b"another program's value"[..])
    );
    assert!(
        fake.calls().contains(&"bump_epoch"),
        "loads in flight are told first"
    );
}

#[tokio::test]
async fn batch_reads_once_and_loads_only_the_missing() {
    let fake = FakeTier::default();
    let cache = two_level(&fake);
    cache.set("resource:1", &10u32, None).await.unwrap();
    let other = two_level(&fake);
    let keys = ["resource:1", "resource:2"];
    let got = other
        .get_many_or_compute(&keys, None, |missing: Vec<String>| async move {
            assert_eq!(missing, vec!["resource:2".to_string()]);
            Ok::<_, ()>(std::collections::HashMap::from([(missing[0].clone(), 20u32)]))
        })
        .await
        .unwrap();
    assert_eq!(got, vec![Some(10), Some(20)]);
    assert!(fake.raw("resource:2").is_some());
}
