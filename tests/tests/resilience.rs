//! Faults against a real redis-server: the cache must never fail a call, must recover by itself,
//! and must not let another instance serve stale L1 data after a write.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::{Cache, CacheConfig};
use cache_test_harness::{RedisServer, TestRedis};

mod common;
use redis::AsyncCommands;

fn cache(redis: &TestRedis) -> Cache {
    Cache::new(
        common::on(redis, CacheConfig::builder())
            .breaker_cooldown(Duration::from_millis(200))
            .build()
            .unwrap(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_on_one_instance_evicts_l1_on_the_other() {
    let redis = TestRedis::start();
    let (a, b) = (cache(&redis), cache(&redis));
    common::until_subscribed(&b, &a).await;
    a.set("resource:users:1", &"v1".to_string(), None).await.unwrap();
    assert_eq!(
        b.get::<String>("resource:users:1").await.unwrap().as_deref(),
        Some("v1")
    );
    a.set("resource:users:1", &"v2".to_string(), None).await.unwrap();
    let t = common::within_5s("set propagates", || async {
        b.get::<String>("resource:users:1").await.unwrap().as_deref() == Some("v2")
    })
    .await;
    eprintln!("set on A seen by B after {t:?}");

    a.delete("resource:users:1").await.unwrap();
    common::within_5s("delete propagates", || async {
        b.get::<String>("resource:users:1").await.unwrap().is_none()
    })
    .await;

    a.mset(&[("resource:users:2", 2u32), ("resource:users:3", 3u32)], None)
        .await
        .unwrap();
    assert_eq!(b.get::<u32>("resource:users:2").await.unwrap(), Some(2));
    a.set("resource:users:2", &20u32, None).await.unwrap();
    common::within_5s("mset/set propagates", || async {
        b.get::<u32>("resource:users:2").await.unwrap() == Some(20)
    })
    .await;

    b.get::<u32>("resource:users:3").await.unwrap();
    a.invalidate_pattern("resource:users:*").await.unwrap();
    common::within_5s("pattern propagates", || async {
        b.get::<u32>("resource:users:3").await.unwrap().is_none()
    })
    .await;

    a.set("static:x", &1u8, None).await.unwrap();
    b.get::<u8>("static:x").await.unwrap();
    a.clear().await.unwrap();
    common::within_5s("clear propagates", || async {
        b.get::<u8>("static:x").await.unwrap().is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribing_clears_l1_so_lost_messages_leave_nothing_stale() {
    let redis = TestRedis::start();
    let b = cache(&redis);
    b.set("query:k", &1u32, None).await.unwrap();
    assert_eq!(b.get::<u32>("query:k").await.unwrap(), Some(1));
    // Drop B's subscription once it is made (in the background, after the cache is built),
    // then change the value while B cannot hear about it.
    common::within_5s("B subscribed", || async { redis.pubsub_clients().await == 1 }).await;
    assert_eq!(redis.kill_pubsub_clients().await, 1);
    let other = Cache::new(
        common::on(&redis, CacheConfig::builder())
            .l1_invalidation(false)
            .build()
            .unwrap(),
    )
    .unwrap();
    other.set("query:k", &2u32, None).await.unwrap();
    let t = common::within_5s("B re-reads after resubscribing", || async {
        b.get::<u32>("query:k").await.unwrap() == Some(2)
    })
    .await;
    eprintln!("pub/sub killed: B consistent again after {t:?}");
}

/// 64 tasks call a cached function for 3 s while Redis is killed after 1 s and restarted after 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_under_load_fails_no_call() {
    let mut redis = TestRedis::single();
    let c = Cache::new(
        common::on(&redis, CacheConfig::builder())
            .l1_enabled(false)
            .breaker_cooldown(Duration::from_millis(200))
            .command_timeout(Duration::from_millis(200))
            .build()
            .unwrap(),
    )
    .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let (calls, wrong) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let tasks: Vec<_> = (0..64u64)
        .map(|t| {
            let (c, stop, calls, wrong) = (c.clone(), stop.clone(), calls.clone(), wrong.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let k = (t * 31 + i) % 200;
                    let v = c
                        .get_or_insert_with(&format!("query:load:{k}"), None, || async move { k * 2 })
                        .await;
                    if v != k * 2 {
                        wrong.fetch_add(1, Ordering::Relaxed);
                    }
                    calls.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                    tokio::task::yield_now().await;
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.server_mut().stop();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let calls_while_down_start = calls.load(Ordering::Relaxed);
    redis.server_mut().restart();
    let restarted = Instant::now();
    let hits_before = c.stats().await.l2_hits;
    let recovered = common::within_5s("L2 hits resume", || async {
        c.stats().await.l2_hits > hits_before
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut panicked = 0;
    for t in tasks {
        panicked += u64::from(t.await.is_err());
    }
    let s = c.stats().await;
    eprintln!(
        "kill/restart under load: {} calls, {} failed, {} wrong, recovered {:?} after restart ({:?} measured from restart), errors {}, skipped {}, calls before restart {}",
        calls.load(Ordering::Relaxed),
        panicked,
        wrong.load(Ordering::Relaxed),
        recovered,
        restarted.elapsed(),
        s.errors,
        s.l2_skipped,
        calls_while_down_start
    );
    assert_eq!(panicked, 0);
    assert_eq!(wrong.load(Ordering::Relaxed), 0);
    assert!(calls.load(Ordering::Relaxed) > 1000);
    assert!(s.errors + s.l2_skipped > 0, "the outage was seen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_kill_of_our_connections_is_absorbed() {
    // One server: `CLIENT KILL ... SKIPME` must reach the node the cache's connections are on.
    let redis = TestRedis::single();
    let c = Cache::new(
        common::on(&redis, CacheConfig::builder())
            .l1_enabled(false)
            .build()
            .unwrap(),
    )
    .unwrap();
    c.set("query:a", &1u32, None).await.unwrap();
    let mut raw = redis.conn().await;
    let mut failed = 0;
    for round in 0..5 {
        let _: () = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("normal")
            .arg("SKIPME")
            .arg("yes")
            .query_async(&mut raw)
            .await
            .unwrap();
        for _ in 0..20 {
            let v = c.get_or_insert_with("query:a", None, || async { 1u32 }).await;
            failed += u32::from(v != 1);
        }
        assert!(
            c.get::<u32>("query:a").await.is_ok(),
            "round {round}: L2 reachable again"
        );
    }
    assert_eq!(failed, 0);
    eprintln!(
        "CLIENT KILL x5: 100 calls, 0 failed, errors {}",
        c.stats().await.errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_sleep_beyond_the_command_timeout_falls_back() {
    let redis = TestRedis::Single(RedisServer::start_with(&["--enable-debug-command", "local"]));
    let c = Cache::new(
        common::on(&redis, CacheConfig::builder())
            .l1_enabled(false)
            .command_timeout(Duration::from_millis(100))
            // A sleeping Redis also stalls new connections' handshakes.
            .connect_timeout(Duration::from_millis(100))
            .build()
            .unwrap(),
    )
    .unwrap();
    c.set("query:slow", &1u32, None).await.unwrap();
    let no_timeout = redis::AsyncConnectionConfig::new().set_response_timeout(None);
    let mut raw = redis
        .server()
        .client()
        .get_multiplexed_async_connection_with_config(&no_timeout)
        .await
        .unwrap();
    // Asleep once a PING goes unanswered for 50 ms (a fixed wait could end before the
    // spawned DEBUG SLEEP reached the server, and the read would find the value). Connected
    // first: a sleeping server stalls the handshake too.
    let quick = redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_millis(50)));
    let probe = redis
        .server()
        .client()
        .get_multiplexed_async_connection_with_config(&quick)
        .await
        .unwrap();
    let sleeper = tokio::spawn(async move {
        let _: () = redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg("1")
            .query_async(&mut raw)
            .await
            .unwrap();
    });
    common::within_5s("Redis asleep", || async {
        redis::cmd("PING")
            .query_async::<String>(&mut probe.clone())
            .await
            .is_err()
    })
    .await;
    let t = Instant::now();
    let v = c.get_or_insert_with("query:slow", None, || async { 7u32 }).await;
    let waited = t.elapsed();
    assert_eq!(v, 7, "Redis asleep: the function answered (after {waited:?})");
    assert!(c.stats().await.errors >= 1);
    sleeper.await.unwrap();
    common::within_5s("Redis answers again", || async {
        c.get::<u32>("query:slow").await.is_ok()
    })
    .await;
    eprintln!("DEBUG SLEEP 1 with a 100 ms timeout: call answered after {waited:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maxmemory_noeviction_refuses_writes_but_reads_are_served() {
    let redis = TestRedis::Single(RedisServer::start_with(&[
        "--maxmemory",
        "2mb",
        "--maxmemory-policy",
        "noeviction",
    ]));
    let c = Cache::new(
        common::on(&redis, CacheConfig::builder())
            .l1_enabled(false)
            .build()
            .unwrap(),
    )
    .unwrap();
    c.set("static:kept", &"still here".to_string(), None)
        .await
        .unwrap();
    let blob: Vec<u64> = (0..20_000).collect(); // ~40 KB, incompressible enough
    let mut refused = 0;
    for i in 0..200 {
        if c.set(&format!("static:fill:{i}"), &blob, None).await.is_err() {
            refused += 1;
        }
    }
    assert!(refused > 0, "Redis ran out of memory");
    assert_eq!(
        c.get::<String>("static:kept").await.unwrap().as_deref(),
        Some("still here")
    );
    let v = c.get_or_insert_with("static:new", None, || async { 5u8 }).await;
    assert_eq!(v, 5, "a failed write still returns the value");
    let h = c.health().await;
    assert!(h.healthy);
    let mut raw = redis.conn().await;
    let used: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(used.contains("maxmemory_policy:noeviction"));
    let kept: Option<Vec<u8>> = raw.get("static:kept").await.unwrap();
    assert!(kept.is_some());
    eprintln!(
        "maxmemory 2mb noeviction: {refused}/200 writes refused, reads served, errors {}",
        c.stats().await.errors
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn distributed_single_flight_loads_once_across_instances() {
    let redis = TestRedis::start();
    let make = || {
        Cache::new(
            common::on(&redis, CacheConfig::builder())
                .distributed_lock(Some(Duration::from_secs(2)))
                .build()
                .unwrap(),
        )
        .unwrap()
    };
    let (a, b) = (make(), make());
    let calls = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..40 {
        let c = if i % 2 == 0 { a.clone() } else { b.clone() };
        let calls = calls.clone();
        tasks.push(tokio::spawn(async move {
            c.get_or_insert_with("analysis:shared", None, || async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
                42u32
            })
            .await
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 42);
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one load for both instances");
    let remote = a.stats().await.coalesced_remote + b.stats().await.coalesced_remote;
    assert_eq!(remote, 1, "the other instance's leader waited for Redis");
    assert_eq!(a.stats().await.breaker, Some(cache_core::BreakerState::Closed));

    // A lock whose holder never writes: waiters give up after the bound and load themselves.
    let mut raw = redis.conn().await;
    let _: () = redis::cmd("SET")
        .arg("lock:flight:analysis:orphan")
        .arg("x")
        .arg("PX")
        .arg(300)
        .query_async(&mut raw)
        .await
        .unwrap();
    let v = a
        .get_or_insert_with("analysis:orphan", None, || async { 7u32 })
        .await;
    assert_eq!(v, 7);
}
