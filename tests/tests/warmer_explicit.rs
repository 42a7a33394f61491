//! Explicit warming runs whatever the startup flag says; the flags gate only warming that starts
//! by itself; calls that cannot do what their name says return an error saying why.
//!
//! A file of its own: its `#[warmup_cache]` registrations and the global cache are per process,
//! and tests/tests/warmer.rs counts the calls of its own.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use cache_core::{cache_query, warmup_cache, Cache, CacheConfig};
use cache_test_harness::TestRedis;

mod common;
use cache_warmer::{EntryStatus, Warmer, WarmerError};

static REPORT_CALLS: AtomicUsize = AtomicUsize::new(0);

#[warmup_cache(id = 3)]
#[cache_query]
async fn monthly_report(id: u64) -> String {
    REPORT_CALLS.fetch_add(1, Ordering::SeqCst);
    format!("report {id}")
}

/// `warm_up` used to answer "skipped" for every entry unless `CACHE_WARMUP_ON_STARTUP=true`:
/// an explicit call did nothing. Now only the startup functions look at the flag.
/// The only test here that uses the global cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_warm_up_runs_with_startup_warmup_off() {
    let redis = TestRedis::start();
    let cache = Cache::new(
        common::on(&redis, CacheConfig::builder())
            .warmup_on_startup(false)
            .build()
            .unwrap(),
    )
    .unwrap();
    assert!(cache_core::init(cache.clone()).is_ok());

    // The startup forms are gated: nothing runs.
    let report = cache_warmer::warm_up_on_startup(&cache).await;
    assert_eq!((report.ok, report.skipped), (0, 1), "{report:#?}");
    assert_eq!(report.entries[0].status, EntryStatus::Skipped);
    let warmer = Warmer::new(cache.clone());
    let registered = std::sync::Arc::new(AtomicUsize::new(0));
    let r = registered.clone();
    warmer.register("static_tools", move || {
        r.fetch_add(1, Ordering::SeqCst);
        async {}
    });
    let report = warmer.warm_up_on_startup().await;
    assert_eq!((report.ok, report.skipped), (0, 2), "{report:#?}");
    assert_eq!(REPORT_CALLS.load(Ordering::SeqCst), 0);
    assert_eq!(registered.load(Ordering::SeqCst), 0);

    // The explicit free function runs the attribute registration and fills the cache.
    let report = cache_warmer::warm_up(&cache).await;
    assert_eq!(
        (report.ok, report.failed, report.skipped),
        (1, 0, 0),
        "{report:#?}"
    );
    assert_eq!(REPORT_CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(monthly_report(3).await, "report 3");
    assert_eq!(
        REPORT_CALLS.load(Ordering::SeqCst),
        1,
        "warmed: the call was a hit"
    );
    assert_eq!(redis.command_calls("set").await, 1);

    // The explicit method runs attribute and registered entries.
    let report = warmer.warm_up().await;
    assert_eq!(
        (report.ok, report.failed, report.skipped),
        (2, 0, 0),
        "{report:#?}"
    );
    assert_eq!(registered.load(Ordering::SeqCst), 1);
}

/// Smart warming that cannot start says why instead of returning quietly.
#[tokio::test]
async fn smart_warming_that_cannot_start_says_why() {
    let off = Cache::new(
        CacheConfig::builder()
            .smart_warmup_enabled(false)
            .build()
            .unwrap(),
    )
    .unwrap();
    let err = Warmer::new(off).start_smart_warming().unwrap_err();
    assert!(matches!(err, WarmerError::SmartWarmingDisabled), "{err}");
    assert!(err.to_string().contains("CACHE_SMART_WARMUP_ENABLED"), "{err}");

    let untracked = Cache::new(
        CacheConfig::builder()
            .smart_warmup_enabled(true)
            .access_sample_rate(0)
            .build()
            .unwrap(),
    )
    .unwrap();
    let err = Warmer::new(untracked).start_smart_warming().unwrap_err();
    assert!(matches!(err, WarmerError::AccessTrackingOff), "{err}");

    let on = Cache::new(CacheConfig::builder().smart_warmup_enabled(true).build().unwrap()).unwrap();
    let warmer = Warmer::new(on);
    warmer.start_smart_warming().unwrap();
    assert!(warmer.status().running);
    let err = warmer.start_smart_warming().unwrap_err();
    assert!(matches!(err, WarmerError::SmartWarmingRunning), "{err}");
    tokio::time::timeout(Duration::from_secs(10), warmer.shutdown())
        .await
        .expect("shutdown returned");
    assert!(!warmer.status().running);
}

/// After `shutdown`, background work is refused: its stop signal was already sent, so it would
/// run forever.
#[tokio::test]
async fn nothing_starts_after_shutdown() {
    let cache = Cache::new(CacheConfig::builder().smart_warmup_enabled(true).build().unwrap()).unwrap();
    let warmer = Warmer::new(cache);
    warmer.shutdown().await;
    let err = warmer.start_smart_warming().unwrap_err();
    assert!(matches!(err, WarmerError::ShutDown), "{err}");
    let err = warmer
        .schedule_warmup("late", Duration::from_secs(60), || async {})
        .unwrap_err();
    assert!(matches!(err, WarmerError::ShutDown), "{err}");
    assert!(!warmer.status().running);
    assert!(warmer.jobs().is_empty());
}

/// `shutdown` right after starting background work returns. The tasks used to subscribe to the
/// stop signal when first polled, which on a current-thread runtime is after `shutdown` sent
/// it: they never stopped and `shutdown` waited for them forever.
#[tokio::test]
async fn shutdown_right_after_starting_returns() {
    let cache = Cache::new(CacheConfig::builder().smart_warmup_enabled(true).build().unwrap()).unwrap();
    let warmer = Warmer::new(cache);
    warmer
        .schedule_warmup("job", Duration::from_secs(60), || async {})
        .unwrap();
    let _ = warmer.start_smart_warming();
    tokio::time::timeout(Duration::from_secs(10), warmer.shutdown())
        .await
        .expect("shutdown returned");
    assert!(!warmer.status().running);
}

/// A second `start_smart_warming` used to start a second prediction loop whose sink replaced the
/// first one's; the first loop then saw its channel close and removed the sink, ending
/// prediction for both. The second call is refused and prediction keeps working.
#[tokio::test(start_paused = true)]
async fn a_second_start_does_not_end_prediction() {
    let cache = Cache::new(
        CacheConfig::builder()
            .ttl_pattern("seq:*", Duration::from_millis(50))
            .smart_warmup_enabled(true)
            .access_sample_rate(1)
            .build()
            .unwrap(),
    )
    .unwrap();
    let warmer = Warmer::new(cache.clone());
    warmer
        .register_loader(
            "seq:*",
            |key: String| async move { Ok::<_, String>(key.len() as u64) },
        )
        .unwrap();
    let first = warmer.start_smart_warming();
    let second = warmer.start_smart_warming();
    assert!(first.is_ok() && second.is_err(), "{first:?} {second:?}");
    // Ten keys read in order, 20 ms apart, each living 50 ms: without prediction every read
    // misses (tests/tests/warmer.rs measures that baseline).
    let (mut hits, mut reads) = (0u32, 0u32);
    for _round in 0..20 {
        for i in 0..10 {
            let key = format!("seq:{i}");
            reads += 1;
            match cache.get::<u64>(&key).await.unwrap() {
                Some(_) => hits += 1,
                None => cache.set(&key, &(key.len() as u64), None).await.unwrap(),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    warmer.shutdown().await;
    let rate = f64::from(hits) / f64::from(reads);
    assert!(
        rate > 0.8,
        "hit rate with prediction after a second start: {rate}"
    );
}
