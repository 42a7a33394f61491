//! Fail-safe: expired values kept for a grace period and served when the function fails or is
//! too slow.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use cache_core::{cache, Cache, CacheConfig};
use cache_test_harness::TestRedis;

mod common;
use redis::AsyncCommands;

static FAIL: AtomicBool = AtomicBool::new(false);
static CALLS: AtomicUsize = AtomicUsize::new(0);
static RESULT_CACHE: OnceLock<Cache> = OnceLock::new();

fn result_cache() -> &'static Cache {
    RESULT_CACHE.get().unwrap()
}

#[cache(prefix = "query", cache = result_cache(), ttl = "300ms", stale_if_error = "10m")]
async fn price(id: u64) -> Result<u64, String> {
    let n = CALLS.fetch_add(1, Ordering::SeqCst) as u64;
    if FAIL.load(Ordering::SeqCst) {
        Err("upstream down".into())
    } else {
        Ok(id * 100 + n)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_value_is_served_when_the_function_fails() {
    let redis = TestRedis::start();
    let _ =
        RESULT_CACHE.set(Cache::new(common::on(&redis, CacheConfig::builder()).build().unwrap()).unwrap());
    let first = price(1).await.unwrap();
    let pttl: i64 = redis.conn().await.pttl("query:failsafe::price:1").await.unwrap();
    assert!(pttl > 590_000, "kept for the grace period in Redis: {pttl}");
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Expired: a plain read does not see it...
    assert_eq!(
        result_cache()
            .get::<u64>("query:failsafe::price:1")
            .await
            .unwrap(),
        None
    );
    // ...but a failing function is covered by it.
    FAIL.store(true, Ordering::SeqCst);
    assert_eq!(price(1).await, Ok(first));
    assert_eq!(result_cache().stats().await.stale_served, 1);
    // The stale value was not stored as fresh: the next call tries the function again.
    let calls = CALLS.load(Ordering::SeqCst);
    assert_eq!(price(1).await, Ok(first));
    assert_eq!(CALLS.load(Ordering::SeqCst), calls + 1);
    // Recovery: a fresh value replaces it.
    FAIL.store(false, Ordering::SeqCst);
    let fresh = price(1).await.unwrap();
    assert_ne!(fresh, first);
    assert_eq!(price(1).await.unwrap(), fresh);
    // Without a stale value an error still reaches the caller.
    FAIL.store(true, Ordering::SeqCst);
    assert_eq!(price(2).await, Err("upstream down".into()));
    FAIL.store(false, Ordering::SeqCst);
}

static SLOW: AtomicBool = AtomicBool::new(false);
static SLOW_DONE: AtomicBool = AtomicBool::new(false);
static SLOW_CACHE: OnceLock<Cache> = OnceLock::new();

fn slow_cache() -> &'static Cache {
    SLOW_CACHE.get().unwrap()
}

#[cache(prefix = "query", cache = slow_cache(), ttl = "1s", stale_if_error = "1m", soft_timeout = "50ms")]
async fn report(id: u64) -> Vec<u64> {
    if SLOW.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(400)).await;
        SLOW_DONE.store(true, Ordering::SeqCst);
        vec![id, 2]
    } else {
        vec![id, 1]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soft_timeout_serves_stale_and_finishes_in_the_background() {
    // L1-only: the stale copy comes from L1.
    let _ = SLOW_CACHE.set(Cache::new(CacheConfig::default()).unwrap());
    assert_eq!(report(7).await, vec![7, 1]);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    SLOW.store(true, Ordering::SeqCst);
    assert_eq!(report(7).await, vec![7, 1], "stale value served");
    assert!(
        !SLOW_DONE.load(Ordering::SeqCst),
        "answered before the slow call finished"
    );
    // The slow call completes in the background and stores its result: waited for through
    // the engine's `get`, which serves only a fresh entry and never loads (a fixed sleep here
    // let the stored copy's 300 ms expire before the read on a loaded CI machine).
    common::within_5s("the background load stored its value", || async {
        slow_cache()
            .get::<Vec<u64>>("query:failsafe::report:7")
            .await
            .unwrap()
            == Some(vec![7, 2])
    })
    .await;
    let hits = slow_cache().stats().await.l1_hits;
    assert_eq!(report(7).await, vec![7, 2]);
    assert_eq!(
        slow_cache().stats().await.l1_hits,
        hits + 1,
        "served from the background refresh"
    );
}

#[tokio::test]
async fn fail_safe_on_the_engine_api_is_opt_in() {
    let redis = TestRedis::start();
    let c = Cache::new(common::on(&redis, CacheConfig::builder()).build().unwrap()).unwrap();
    c.set("query:plain", &1u8, Some(Duration::from_millis(200)))
        .await
        .unwrap();
    let pttl: i64 = redis.conn().await.pttl("query:plain").await.unwrap();
    assert!(pttl <= 200, "no grace period unless asked: {pttl}");
}
