//! Single flight never hands a caller a value older than a write it saw complete (the load
//! test's stale-read check found one such read in 100: a reader that came after a write joined
//! a load that had begun before it).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use cache_core::{Cache, CacheConfig};
use cache_test_harness::RedisServer;

async fn joiner_after_a_write_sees_it(cache: Cache) {
    // A load that reads the old row, then stalls.
    let leader = common::StalledLoad::start(&cache, "resource:users:7", "old").await;
    // The write ends (its invalidation included) while that load is still running.
    cache.delete("resource:users:7").await.unwrap();
    // A reader after the write joins the load in flight...
    let c = cache.clone();
    let reader = tokio::spawn(async move {
        c.get_or_insert_with("resource:users:7", None, || async { "new".to_owned() })
            .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(
        leader.finish().await,
        "old",
        "the leader's own read began before the write"
    );
    // ...and must not get the value read before the write.
    assert_eq!(reader.await.unwrap(), "new");
    assert_eq!(
        cache.get::<String>("resource:users:7").await.unwrap().as_deref(),
        Some("new"),
        "nor may the old value be stored"
    );
}

#[tokio::test]
async fn l1_only() {
    joiner_after_a_write_sees_it(Cache::new(CacheConfig::default()).unwrap()).await;
}

#[tokio::test]
async fn with_redis() {
    let redis = RedisServer::start();
    let cache = Cache::new(CacheConfig::builder().redis_url(redis.url()).build().unwrap()).unwrap();
    joiner_after_a_write_sees_it(cache).await;
}
