//! `cache-warmer` against real Redis (and L1-only with tokio's paused clock for schedules).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cache_core::{cache_query, warmup_cache, Cache, CacheConfig};
use cache_test_harness::TestRedis;

mod common;
use cache_warmer::{EntryStatus, Warmer, WarmerConfig};
use parking_lot_free::Stamps;

static PROFILE_CALLS: AtomicUsize = AtomicUsize::new(0);
static FAILING_CALLS: AtomicUsize = AtomicUsize::new(0);

#[warmup_cache(user_id = 1)]
#[warmup_cache(user_id = 2)]
#[cache_query]
async fn get_user_profile(user_id: u64) -> String {
    PROFILE_CALLS.fetch_add(1, Ordering::SeqCst);
    format!("profile {user_id}")
}

#[warmup_cache(id = 7)]
#[cache_query]
async fn flaky_report(id: u64) -> Result<u64, String> {
    FAILING_CALLS.fetch_add(1, Ordering::SeqCst);
    Err(format!("report {id} unavailable"))
}

/// The only test here that uses the global cache.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_warmup_fills_the_cache_and_reports_failures() {
    let redis = TestRedis::start();
    let cache = Cache::new(
        common::on(&redis, CacheConfig::builder())
            .warmup_on_startup(true)
            .build()
            .unwrap(),
    )
    .unwrap();
    assert!(cache_core::init(cache.clone()).is_ok());
    let warmer = Warmer::with_config(
        cache.clone(),
        WarmerConfig {
            // Long enough for the panicking entry to finish unwinding: with RUST_BACKTRACE set
            // (as on CI machines), printing the backtrace of a debug build took more than
            // 300 ms under load, and the panic was reported as a timeout.
            entry_timeout: Duration::from_secs(3),
            ..WarmerConfig::default()
        },
    );
    warmer.register("panics", || async {
        if true {
            panic!("entry bug");
        }
    });
    warmer.register("hangs", || async {
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
    let report = warmer.warm_up_on_startup().await;
    assert_eq!(
        (report.ok, report.failed, report.skipped),
        (2, 3, 0),
        "{report:#?}"
    );
    let failed: Vec<_> = report
        .entries
        .iter()
        .filter(|e| e.status == EntryStatus::Failed)
        .map(|e| e.error.clone().unwrap())
        .collect();
    assert!(failed.iter().any(|e| e == "panicked"), "{failed:?}");
    assert!(failed.iter().any(|e| e.starts_with("timed out")), "{failed:?}");
    assert!(failed.iter().any(|e| e == "returned Err"), "{failed:?}");

    // Warm: the next calls are hits, the function does not run again.
    assert_eq!(PROFILE_CALLS.load(Ordering::SeqCst), 2);
    assert_eq!(get_user_profile(1).await, "profile 1");
    assert_eq!(get_user_profile(2).await, "profile 2");
    assert_eq!(PROFILE_CALLS.load(Ordering::SeqCst), 2);
    assert_eq!(redis.command_calls("set").await, 2);
    assert_eq!(FAILING_CALLS.load(Ordering::SeqCst), 1);

    // With startup warmup disabled, the startup function reports everything skipped (an
    // explicit `warm_up` runs them: tests/tests/warmer_explicit.rs).
    let off = Cache::new(CacheConfig::builder().warmup_on_startup(false).build().unwrap()).unwrap();
    let skipped = cache_warmer::warm_up_on_startup(&off).await;
    assert_eq!((skipped.ok, skipped.failed), (0, 0));
    assert_eq!(skipped.skipped, 3);
    assert_eq!(warmer.status().warmup_tasks, 5);
}

#[tokio::test(start_paused = true)]
async fn schedule_runs_at_the_interval_and_stops_on_shutdown() {
    let cache = Cache::new(CacheConfig::default()).unwrap();
    let warmer = Warmer::with_config(
        cache,
        WarmerConfig {
            jitter: 0.0,
            ..WarmerConfig::default()
        },
    );
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    warmer
        .schedule_warmup("warmup_tools_list", Duration::from_secs(1800), move || {
            let r = r.clone();
            async move {
                r.fetch_add(1, Ordering::SeqCst);
            }
        })
        .unwrap();
    assert!(matches!(
        warmer.schedule_warmup("warmup_tools_list", Duration::from_secs(1), || async {}),
        Err(cache_warmer::WarmerError::DuplicateJob(_))
    ));
    tokio::time::sleep(Duration::from_secs(1800 * 5 + 10)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 5);
    let status = warmer.status();
    assert!(status.running);
    let job = &status.jobs[0];
    assert_eq!(job.tags, vec!["warmup_tools_list"]);
    assert_eq!(job.interval, "30m");
    assert_eq!(job.runs, 5);
    let json = serde_json::to_value(&status).unwrap();
    assert!(json["jobs"][0]["next_run"].as_str().unwrap().ends_with('Z'));

    warmer.shutdown().await;
    assert!(!warmer.status().running);
    tokio::time::sleep(Duration::from_secs(1800 * 3)).await;
    assert_eq!(runs.load(Ordering::SeqCst), 5, "no runs after shutdown");
}

#[tokio::test(start_paused = true)]
async fn overrunning_job_skips_periods_instead_of_stacking() {
    let warmer = Warmer::with_config(
        Cache::new(CacheConfig::default()).unwrap(),
        WarmerConfig {
            jitter: 0.0,
            ..WarmerConfig::default()
        },
    );
    let running = Arc::new(AtomicUsize::new(0));
    let max_parallel = Arc::new(AtomicUsize::new(0));
    let (r, m) = (running.clone(), max_parallel.clone());
    warmer
        .schedule_warmup("slow", Duration::from_secs(10), move || {
            let (r, m) = (r.clone(), m.clone());
            async move {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs(25)).await;
                r.fetch_sub(1, Ordering::SeqCst);
            }
        })
        .unwrap();
    tokio::time::sleep(Duration::from_secs(200)).await;
    assert_eq!(max_parallel.load(Ordering::SeqCst), 1);
    let job = &warmer.jobs()[0];
    assert!(job.skipped_overrun > 0 && job.runs >= 5, "{job:?}");
    warmer.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn refresh_ahead_keeps_a_hot_key_warm_across_ttl_periods() {
    let cache = Cache::new(
        CacheConfig::builder()
            .ttl_pattern("hot:*", Duration::from_secs(10))
            .smart_warmup_enabled(true)
            .access_sample_rate(1)
            .build()
            .unwrap(),
    )
    .unwrap();
    let warmer = Warmer::new(cache.clone());
    let loads = Arc::new(AtomicUsize::new(0));
    let l = loads.clone();
    warmer
        .register_loader("hot:*", move |key: String| {
            let l = l.clone();
            async move {
                l.fetch_add(1, Ordering::SeqCst);
                Ok::<_, String>(format!("value of {key}"))
            }
        })
        .unwrap();
    warmer.start_smart_warming().unwrap();
    cache
        .set("hot:1", &"value of hot:1".to_string(), None)
        .await
        .unwrap();
    cache
        .set("cold:1", &"x".to_string(), Some(Duration::from_secs(10)))
        .await
        .unwrap();
    // 60 s of reads, 6 TTL periods: every read must hit.
    for _ in 0..120 {
        let v = cache.get::<String>("hot:1").await.unwrap();
        assert_eq!(v.as_deref(), Some("value of hot:1"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(cache.stats().await.misses, 0);
    assert!(
        loads.load(Ordering::SeqCst) >= 5,
        "refreshed about once per period"
    );
    // A key nobody reads is left to expire.
    assert_eq!(cache.get::<String>("cold:1").await.unwrap(), None);
    warmer.shutdown().await;
}

/// A repeating access sequence: ten keys read in order, 20 ms apart, each living 50 ms, so
/// without prediction every read misses. Returns the hit rate.
async fn sequence_hit_rate(predict: bool) -> f64 {
    let cache = Cache::new(
        CacheConfig::builder()
            .ttl_pattern("seq:*", Duration::from_millis(50))
            .smart_warmup_enabled(predict)
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
    // Disabled, it says so instead of starting loops that do nothing.
    assert_eq!(warmer.start_smart_warming().is_ok(), predict);
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
    f64::from(hits) / f64::from(reads)
}

#[tokio::test(start_paused = true)]
async fn prediction_raises_the_hit_rate_of_a_repeating_sequence() {
    let without = sequence_hit_rate(false).await;
    let with = sequence_hit_rate(true).await;
    assert!(without < 0.05, "without prediction: {without}");
    assert!(with > 0.8, "with prediction: {with} (without: {without})");
}

/// The sequence model is kept per thread; a task whose reads move between worker threads (woken
/// by the timer on either) must still be predicted. Real time, about 4 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prediction_holds_when_reads_move_between_threads() {
    let with = tokio::spawn(sequence_hit_rate(true)).await.unwrap();
    assert!(with > 0.5, "with prediction on two threads: {with}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_warmers_sharing_redis_run_a_job_once_per_period() {
    let redis = TestRedis::start();
    let stamps = Stamps::default();
    let interval = Duration::from_millis(400);
    let mut warmers = Vec::new();
    for instance in 0..2 {
        let cache = Cache::new(common::on(&redis, CacheConfig::builder()).build().unwrap()).unwrap();
        let w = Warmer::with_config(
            cache,
            WarmerConfig {
                jitter: 0.0,
                ..WarmerConfig::default()
            },
        );
        let s = stamps.clone();
        w.schedule_warmup("shared_job", interval, move || {
            let s = s.clone();
            async move { s.push(instance) }
        })
        .unwrap();
        warmers.push(w);
    }
    tokio::time::sleep(interval * 6 + interval / 2).await;
    for w in &warmers {
        w.shutdown().await;
    }
    let runs = stamps.take();
    assert!(
        runs.len() >= 4 && runs.len() <= 7,
        "{} runs: {runs:?}",
        runs.len()
    );
    for pair in runs.windows(2) {
        assert!(
            pair[1].1 - pair[0].1 >= interval / 2,
            "two runs in one period: {pair:?}"
        );
    }
    let locked: u64 = warmers.iter().map(|w| w.jobs()[0].skipped_locked).sum();
    assert!(locked >= 3, "the other instance skipped its periods: {locked}");
}

mod parking_lot_free {
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    /// Run timestamps shared by the instances of a test.
    #[derive(Clone)]
    pub struct Stamps(Arc<Mutex<Vec<(usize, Duration)>>>, Instant);

    impl Default for Stamps {
        fn default() -> Self {
            Stamps(Arc::default(), Instant::now())
        }
    }

    impl Stamps {
        pub fn push(&self, instance: usize) {
            self.0.lock().unwrap().push((instance, self.1.elapsed()));
        }
        pub fn take(&self) -> Vec<(usize, Duration)> {
            let mut v = self.0.lock().unwrap().clone();
            v.sort_by_key(|(_, t)| *t);
            v
        }
    }
}
