//! No stale value survives a write (issue 25): a load that started before an invalidation of its
//! key returns its value to its callers but never stores it, in any tier, on this instance or on
//! another one sharing the Redis. The load is held on a barrier, not timed with sleeps.
//!
//! The cross-process cases run this test binary a second time as the other instance
//! (`STALE_SET_CHILD`), so the invalidation comes from another process, as in production.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cache_core::{Cache, CacheConfig};
use cache_test_harness::TestRedis;

mod common;
use redis::AsyncCommands;
use tokio::sync::{oneshot, Notify};

const KEY: &str = "query:row:1";

#[derive(Clone, Copy, Debug)]
enum Kind {
    Key,
    Pattern,
    Clear,
}

fn build(redis: Option<&TestRedis>, l1: bool, pubsub: bool) -> Cache {
    let mut b = CacheConfig::builder().l1_enabled(l1).l1_invalidation(pubsub);
    if let Some(r) = redis {
        b = common::on(r, b);
    }
    Cache::new(b.build().unwrap()).unwrap()
}

async fn invalidate(c: &Cache, kind: Kind) {
    match kind {
        Kind::Key => {
            c.delete(KEY).await.unwrap();
        }
        Kind::Pattern => {
            c.invalidate_pattern("query:row:*").await.unwrap();
        }
        Kind::Clear => {
            c.clear().await.unwrap();
        }
    }
}

/// The database row the cache fronts.
struct Db {
    version: AtomicU64,
}

/// Starts a load of [`KEY`] that reads the row, says so, and waits for `release` before it
/// returns: the test invalidates in between.
fn slow_load(c: &Cache, db: &Arc<Db>) -> (tokio::task::JoinHandle<u64>, Arc<Notify>, oneshot::Sender<()>) {
    let (c, db) = (c.clone(), db.clone());
    let started = Arc::new(Notify::new());
    let (release, wait) = oneshot::channel::<()>();
    let s = started.clone();
    let task = tokio::spawn(async move {
        c.get_or_insert_with(KEY, Some(Duration::from_secs(600)), || async move {
            let v = db.version.load(Ordering::SeqCst);
            s.notify_one();
            wait.await.unwrap();
            v
        })
        .await
    });
    (task, started, release)
}

async fn read(c: &Cache, db: &Arc<Db>) -> u64 {
    let db = db.clone();
    c.get_or_insert_with(KEY, Some(Duration::from_secs(600)), || async move {
        db.version.load(Ordering::SeqCst)
    })
    .await
}

/// One process: the write and its invalidation happen on the cache whose load is in flight.
async fn one_process(redis: Option<&TestRedis>, l1: bool, kind: Kind) {
    let c = build(redis, l1, true);
    let db = Arc::new(Db {
        version: AtomicU64::new(1),
    });
    let (task, started, release) = slow_load(&c, &db);
    started.notified().await;
    db.version.store(2, Ordering::SeqCst);
    invalidate(&c, kind).await;
    release.send(()).unwrap();
    assert_eq!(task.await.unwrap(), 1, "the load's own caller gets what it read");
    assert_eq!(
        read(&c, &db).await,
        2,
        "{kind:?}, l1 {l1}: the stale load was stored"
    );
    assert!(c.stats().await.stale_discarded >= 1);
    if let Some(r) = redis {
        // And what Redis holds now is the new value, written by the second read.
        let fresh = build(Some(r), false, false);
        assert_eq!(fresh.get::<u64>(KEY).await.unwrap(), Some(2));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_during_a_load_wins_in_one_process() {
    let redis = TestRedis::start();
    for kind in [Kind::Key, Kind::Pattern, Kind::Clear] {
        redis.conn().await.del::<_, ()>(KEY).await.unwrap();
        one_process(Some(&redis), true, kind).await;
        redis.conn().await.del::<_, ()>(KEY).await.unwrap();
        one_process(Some(&redis), false, kind).await;
        one_process(None, true, kind).await;
    }
}

/// The other instance: invalidates [`KEY`] as `STALE_SET_CHILD` says, against
/// the Redis its environment names, then exits. Does nothing in an ordinary test run.
#[tokio::test]
async fn child_instance() {
    let Ok(kind) = std::env::var("STALE_SET_CHILD") else {
        return;
    };
    // The parent names its Redis as REDIS_URL or REDIS_CLUSTER_URLS (whatever the topology).
    let c = Cache::new(CacheConfig::from_env().unwrap()).unwrap();
    let kind = match kind.as_str() {
        "key" => Kind::Key,
        "pattern" => Kind::Pattern,
        _ => Kind::Clear,
    };
    invalidate(&c, kind).await;
}

async fn invalidate_from_another_process(redis: &TestRedis, kind: Kind) {
    let exe = std::env::current_exe().unwrap();
    let name = match kind {
        Kind::Key => "key",
        Kind::Pattern => "pattern",
        Kind::Clear => "clear",
    };
    let out = tokio::process::Command::new(exe)
        .args(["--exact", "child_instance"])
        .env("STALE_SET_CHILD", name)
        .env(redis.urls().env().0, redis.urls().env().1)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two processes sharing Redis: the slow load on this one, the write + invalidation on the
/// other. With pub/sub off on the loading instance, only the Redis markers can stop its store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_from_another_process_wins() {
    let redis = TestRedis::start();
    for pubsub in [false, true] {
        for kind in [Kind::Key, Kind::Pattern, Kind::Clear] {
            redis.conn().await.del::<_, ()>(KEY).await.unwrap();
            let a = build(Some(&redis), true, pubsub);
            let db = Arc::new(Db {
                version: AtomicU64::new(1),
            });
            let (task, started, release) = slow_load(&a, &db);
            started.notified().await;
            db.version.store(2, Ordering::SeqCst);
            invalidate_from_another_process(&redis, kind).await;
            release.send(()).unwrap();
            assert_eq!(task.await.unwrap(), 1);
            let stored: Option<Vec<u8>> = redis.conn().await.get(KEY).await.unwrap();
            assert!(
                stored.is_none(),
                "{kind:?} pubsub {pubsub}: the stale value reached Redis"
            );
            assert_eq!(read(&a, &db).await, 2, "{kind:?} pubsub {pubsub}");
            let b = build(Some(&redis), true, pubsub);
            assert_eq!(read(&b, &db).await, 2);
        }
    }
}

/// Batches and refreshes are loads too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_and_refresh_loads_are_guarded() {
    let redis = TestRedis::start();
    let c = build(Some(&redis), true, true);
    let started = Arc::new(Notify::new());
    let (release, wait) = oneshot::channel::<()>();
    let (c2, s) = (c.clone(), started.clone());
    let batch = tokio::spawn(async move {
        c2.get_many_or_compute(&["query:row:1", "query:row:2"], None, |missing| async move {
            s.notify_one();
            wait.await.unwrap();
            Ok::<_, std::convert::Infallible>(missing.into_iter().map(|k| (k, 1u64)).collect())
        })
        .await
        .unwrap()
    });
    started.notified().await;
    c.delete("query:row:1").await.unwrap();
    release.send(()).unwrap();
    assert_eq!(batch.await.unwrap(), vec![Some(1), Some(1)]);
    assert_eq!(
        c.get::<u64>("query:row:1").await.unwrap(),
        None,
        "invalidated: not stored"
    );
    assert_eq!(
        c.get::<u64>("query:row:2").await.unwrap(),
        Some(1),
        "not invalidated: stored"
    );

    let started = Arc::new(Notify::new());
    let (release, wait) = oneshot::channel::<()>();
    let (c2, s) = (c.clone(), started.clone());
    let refresh = tokio::spawn(async move {
        c2.refresh("query:row:3", None, || async move {
            s.notify_one();
            wait.await.unwrap();
            Ok::<_, std::convert::Infallible>(1u64)
        })
        .await
        .unwrap()
    });
    started.notified().await;
    c.invalidate_pattern("query:row:*").await.unwrap();
    release.send(()).unwrap();
    assert_eq!(refresh.await.unwrap(), 1);
    assert_eq!(c.get::<u64>("query:row:3").await.unwrap(), None);
}

/// Markers expire with the guard window and never accumulate: after 10 k invalidations every
/// marker has a TTL within the window, and the epoch is one key.
#[tokio::test]
async fn markers_expire_and_do_not_accumulate() {
    let redis = TestRedis::start();
    let c = Cache::new(
        common::on(&redis, CacheConfig::builder())
            .load_guard_window(Duration::from_secs(2))
            .build()
            .unwrap(),
    )
    .unwrap();
    for i in 0..10_000 {
        c.delete(&format!("query:gone:{}", i % 500)).await.unwrap();
    }
    c.invalidate_pattern("query:*").await.unwrap();
    let mut conn = redis.conn().await;
    let markers: Vec<String> = conn.keys("tiered-cache:inv:*").await.unwrap();
    assert_eq!(
        markers.len(),
        500,
        "one marker per key, however often it is invalidated"
    );
    for m in markers.iter().take(50) {
        let ttl: i64 = conn.pttl(m).await.unwrap();
        assert!(ttl > 0 && ttl <= 2000, "{m}: {ttl}");
    }
    let epochs: Vec<String> = conn.keys("tiered-cache:inv-epoch").await.unwrap();
    assert_eq!(epochs.len(), 1);
}

/// A Redis reply that was on its way while the key was deleted does not stay in L1: the read
/// (its GET queued behind a paused Redis) answers with the old value, but L1 does not keep it.
/// Before, the reply filled L1 after `delete` had cleared it, and the deleted value was served
/// from L1 for `l1_ttl`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_answered_before_a_delete_does_not_refill_l1() {
    let redis = TestRedis::single();
    // A command timeout beyond the pause: the read must wait for its reply, not fall back.
    let a = Cache::new(
        common::on(&redis, CacheConfig::builder().l1_invalidation(false))
            .command_timeout(Duration::from_secs(5))
            .build()
            .unwrap(),
    )
    .unwrap();
    build(Some(&redis), false, false)
        .set(KEY, &1u64, None)
        .await
        .unwrap();
    // Long enough that the delete's UNLINK, spawned 50 ms later, queues behind the read's GET
    // even on a loaded machine.
    redis.server().pause_clients(1000).await;
    let (a1, a2) = (a.clone(), a.clone());
    let read = tokio::spawn(async move { a1.get::<u64>(KEY).await.unwrap() });
    // The read's GET goes out first (it queues on the paused server), then the delete's UNLINK.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let delete = tokio::spawn(async move { a2.delete(KEY).await.unwrap() });
    let got = read.await.unwrap();
    assert!(delete.await.unwrap(), "the key existed until the delete");
    if got == Some(1) {
        assert_eq!(
            a.stats().await.stale_discarded,
            1,
            "the reply's L1 entry was taken back"
        );
    }
    assert_eq!(a.get::<u64>(KEY).await.unwrap(), None, "L1 kept a deleted value");
}
