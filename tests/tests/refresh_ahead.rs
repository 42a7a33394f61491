//! Refresh-ahead in L1-only mode with the demo's settings (issue 16): an idle demo recomputed its
//! 30-minute trend analysis every second, because `ttl_remaining` reported the L1 deadline
//! (capped at `l1_ttl`, 60 s) rather than the entry's own expiry. Only what is about to expire
//! is refreshed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cache_core::{Cache, CacheConfig};
use cache_warmer::Warmer;

#[tokio::test(start_paused = true)]
async fn an_idle_l1_only_cache_refreshes_only_what_is_about_to_expire() {
    // The demo's cache: L1 only, the product's TTL table (analysis:* 1800 s), default l1_ttl
    // (60 s), smart warming on; every read sampled so the key counts as hot at once.
    let cache = Cache::new(CacheConfig::builder().access_sample_rate(1).build().unwrap()).unwrap();
    let warmer = Warmer::new(cache.clone());
    let loads = Arc::new(AtomicUsize::new(0));
    let l = loads.clone();
    warmer
        .register_loader("analysis:trends:*", move |_key: String| {
            let l = l.clone();
            async move {
                l.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                Ok::<_, String>(vec![1.0f64, 2.0])
            }
        })
        .unwrap();
    warmer.start_smart_warming().unwrap();
    cache
        .set("analysis:trends:2026-11", &vec![1.0f64, 2.0], None)
        .await
        .unwrap();
    for _ in 0..5 {
        assert!(cache
            .get::<Vec<f64>>("analysis:trends:2026-11")
            .await
            .unwrap()
            .is_some());
    }
    let left = cache
        .ttl_remaining("analysis:trends:2026-11")
        .await
        .unwrap()
        .unwrap();
    assert!(
        left > Duration::from_secs(1790),
        "the entry's own expiry, not l1_ttl: {left:?}"
    );

    // Idle for 30 s, then for 20 minutes: nothing is near its end, nothing is recomputed
    // (the old code recomputed it on every 1 s check).
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(loads.load(Ordering::SeqCst), 0);
    tokio::time::sleep(Duration::from_secs(20 * 60)).await;
    assert_eq!(
        loads.load(Ordering::SeqCst),
        0,
        "refreshed long before the end of its TTL"
    );
    assert!(cache
        .get::<Vec<f64>>("analysis:trends:2026-11")
        .await
        .unwrap()
        .is_some());

    // Within the last fifth of the TTL (360 s) it is refreshed, once per period.
    tokio::time::sleep(Duration::from_secs(6 * 60)).await;
    let refreshed = loads.load(Ordering::SeqCst);
    assert!(
        (1..=2).contains(&refreshed),
        "refreshed {refreshed} times near expiry"
    );
    warmer.shutdown().await;
}
