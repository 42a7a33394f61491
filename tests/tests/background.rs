//! The background work a cache owns (issue 17): started on the runtime it is given, stopped
//! when its last clone is dropped, and reported when it could not start. Against a real Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use cache_core::{Cache, CacheConfig};
use cache_test_harness::RedisServer;

fn config(redis: &RedisServer) -> CacheConfig {
    CacheConfig::builder().redis_url(redis.url()).build().unwrap()
}

/// Subscribers of the cache's invalidation channels, as Redis counts them.
async fn subscribers(redis: &RedisServer) -> usize {
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    clients.lines().filter(|l| !l.trim().is_empty()).count()
}

async fn until(what: &str, cond: impl AsyncFn() -> bool) {
    let t0 = Instant::now();
    while !cond().await {
        assert!(t0.elapsed() < Duration::from_secs(10), "{what}: not within 10 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The listener runs while any clone lives, and its subscription goes when the last one drops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_listener_lives_as_long_as_the_cache() {
    let redis = RedisServer::start();
    let cache = Cache::new(config(&redis)).unwrap();
    let clone = cache.clone();
    until("the subscription", || async { subscribers(&redis).await == 1 }).await;
    drop(cache);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(subscribers(&redis).await, 1, "a clone still lives");
    drop(clone);
    until("the unsubscription", || async { subscribers(&redis).await == 0 }).await;
}

/// A cache built outside any runtime says so, instead of running without its listener unseen;
/// given a runtime, it runs its listener there.
#[test]
fn outside_a_runtime_the_cache_says_so_or_uses_the_one_given() {
    let redis = RedisServer::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let alone = Cache::new(config(&redis)).unwrap();
    let health = rt.block_on(alone.health());
    let warnings = health.redis.expect("two-level").warnings;
    assert!(
        warnings.iter().any(|w| w.contains("outside a tokio runtime")),
        "{warnings:?}"
    );
    let given = Cache::with_runtime(config(&redis), rt.handle()).unwrap();
    rt.block_on(async {
        until("the subscription on the given runtime", || async {
            subscribers(&redis).await == 1
        })
        .await;
        given.set("k", &1u8, None).await.unwrap();
        assert_eq!(given.get::<u8>("k").await.unwrap(), Some(1));
        let warnings = given.health().await.redis.expect("two-level").warnings;
        assert!(!warnings.iter().any(|w| w.contains("runtime")), "{warnings:?}");
    });
}
