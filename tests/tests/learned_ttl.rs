//! `ttl = "auto"` end to end (issue 23): a cached function whose values change on every reload
//! falls to its lower bound, one whose values never change keeps its TTL until the evidence
//! allows a longer one, a direct write's invalidation is not mistaken for a change, and
//! `GET /api/v1/cache/ttl-advice` reports it all behind the admin tokens.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cache_admin::{Action, AdminConfig, AdminToken};
use cache_core::{cache, Cache, CacheConfig, TtlAdvice};
use reqwest::StatusCode;
use serde_json::Value;

static VERSION: AtomicU64 = AtomicU64::new(0);

/// A new value on every run.
#[cache(cache = cache, ttl = "auto", max_stale = "1%", ttl_bounds = ("2s", "10m"))]
async fn changing(cache: &Cache, id: u64) -> u64 {
    VERSION.fetch_add(1, Ordering::SeqCst) + id
}

/// The same value on every run.
#[cache_core::cache_query(cache = cache, ttl = "auto", ttl_bounds = ("1s", "1d"))]
async fn steady(cache: &Cache, id: u64) -> u64 {
    id * 10
}

fn l1_only() -> Cache {
    Cache::new(CacheConfig::builder().build().unwrap()).unwrap()
}

fn advice(cache: &Cache, family_ends_with: &str) -> TtlAdvice {
    cache
        .ttl_advice()
        .into_iter()
        .find(|a| a.family.ends_with(family_ends_with))
        .unwrap_or_else(|| panic!("no family ending in {family_ends_with}: {:?}", cache.ttl_advice()))
}

#[tokio::test(start_paused = true)]
async fn values_that_change_on_every_reload_fall_to_the_lower_bound() {
    let cache = l1_only();
    // The pattern table starts it at 300 s (`ttl_default`): reload 40 times just past expiry.
    for _ in 0..40 {
        changing(&cache, 1).await;
        let left = cache.ttl_remaining(&changing_key(1)).await.unwrap().unwrap();
        tokio::time::advance(left + Duration::from_millis(10)).await;
    }
    let a = advice(&cache, "::changing");
    assert!(a.auto);
    assert_eq!(a.current_ttl_secs, 2.0, "{a:?}");
    assert!(a.changed >= 30.0, "{a:?}");
    // The learned TTL is the one stored: 2 s later the body runs again.
    let before = VERSION.load(Ordering::SeqCst);
    changing(&cache, 2).await;
    tokio::time::advance(Duration::from_millis(1900)).await;
    changing(&cache, 2).await;
    assert_eq!(VERSION.load(Ordering::SeqCst), before + 1, "a hit within 2 s");
    tokio::time::advance(Duration::from_millis(200)).await;
    changing(&cache, 2).await;
    assert_eq!(VERSION.load(Ordering::SeqCst), before + 2, "expired after 2 s");
}

#[tokio::test(start_paused = true)]
async fn values_that_never_change_keep_their_ttl_until_the_evidence_allows_more() {
    let cache = l1_only();
    let key = steady_key;
    let reload_all = |cache: Cache| async move {
        for id in 0..20 {
            steady(&cache, id).await;
        }
    };
    // 20 keys reloaded every 300 s (the `query:*` pattern's TTL), 3 rounds: 60 reloads, none
    // changed, 5 hours of unchanged values in all, not enough to say they change less than
    // once in ~8 h, which 300 s at 1 % would need... the TTL stays at 300 s.
    for _ in 0..3 {
        reload_all(cache.clone()).await;
        tokio::time::advance(Duration::from_secs(301)).await;
    }
    let a = advice(&cache, "::steady");
    assert_eq!(a.current_ttl_secs, 300.0, "{a:?}");
    assert_eq!(a.change_rate_per_hour, Some(0.0), "{a:?}");
    // Enough reloads for the rule to speak (40 compared), and it says: stay.
    assert_eq!(a.recommended_ttl_secs, Some(300.0), "{a:?}");
    // Many more rounds: ~ 60 h of unchanged values; now a longer TTL is safe, and used.
    for _ in 0..15 {
        reload_all(cache.clone()).await;
        let left = cache.ttl_remaining(&key(0)).await.unwrap().unwrap_or_default();
        tokio::time::advance(left + Duration::from_secs(1)).await;
    }
    let a = advice(&cache, "::steady");
    assert!(a.current_ttl_secs > 600.0, "{a:?}");
    assert_eq!(a.changed, 0.0);
}

#[tokio::test(start_paused = true)]
async fn a_reload_after_a_direct_write_is_not_counted_as_a_change() {
    let cache = l1_only();
    for round in 0..5u64 {
        cache
            .get_or_insert_with("profile:1", None, || async move { round })
            .await;
        // The application writes the key itself, then lets it expire: each next load differs,
        // but the cache was told.
        cache.set("profile:1", &(round + 100), None).await.unwrap();
        tokio::time::advance(Duration::from_secs(301)).await;
    }
    let a = advice(&cache, "profile");
    assert_eq!(a.writes, 5, "{a:?}");
    assert_eq!(a.observations, 0.0, "{a:?}");
    assert_eq!(a.invalidated_reloads, 4, "{a:?}");
}

#[tokio::test]
async fn the_advice_route_needs_read_and_hides_families_outside_a_token_s_patterns() {
    let cache = l1_only();
    for id in 0..3 {
        cache
            .get_or_insert_with(&format!("tenant:{id}"), None, || async { 1u8 })
            .await;
        cache
            .get_or_insert_with(&format!("other:{id}"), None, || async { 2u8 })
            .await;
    }
    let config = AdminConfig::new()
        .token(AdminToken::new("ops", "ops-secret").actions([Action::Read]))
        .unwrap()
        .token(AdminToken::new("clearer", "clear-secret").actions([Action::Clear]))
        .unwrap()
        .token(
            AdminToken::new("tenant", "tenant-secret")
                .actions([Action::Read])
                .patterns(["tenant:*"])
                .unwrap(),
        )
        .unwrap();
    let app = cache_admin::router(cache.clone(), None, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/api/v1/cache/ttl-advice",
        listener.local_addr().unwrap()
    );
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::new();
    let get = |token: &'static str| {
        let req = http.get(&url).bearer_auth(token);
        async move {
            let r = req.send().await.unwrap();
            (r.status(), r.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(get("wrong").await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(get("clear-secret").await.0, StatusCode::FORBIDDEN);
    let (s, body) = get("ops-secret").await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(family_names(&body), ["other", "tenant"], "{body}");
    let row = &body["families"][0];
    assert_eq!(row["loads"], 3, "{body}");
    assert!(
        row["recommended_ttl_secs"].is_null(),
        "not enough evidence: {body}"
    );
    assert_eq!(row["current_ttl_secs"], 300.0, "{body}");
    let (_, body) = get("tenant-secret").await;
    assert_eq!(family_names(&body), ["<redacted>", "tenant"], "{body}");
}

fn family_names(body: &Value) -> Vec<&str> {
    body["families"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["family"].as_str().unwrap())
        .collect()
}

/// The same map on every run, built afresh (so iterated in another order each time).
#[cache(cache = cache, ttl = "auto")]
async fn map_valued(cache: &Cache, id: u64) -> std::collections::HashMap<String, u64> {
    (0..50).map(|i| (format!("field-{i}"), id + i)).collect()
}

#[tokio::test(start_paused = true)]
async fn a_map_rebuilt_in_another_order_is_not_a_change() {
    let cache = l1_only();
    for _ in 0..5 {
        for id in 0..10 {
            map_valued(&cache, id).await;
        }
        tokio::time::advance(Duration::from_secs(301)).await;
    }
    let a = advice(&cache, "::map_valued");
    assert!(a.observations >= 39.0, "{a:?}");
    assert_eq!(a.changed, 0.0, "equal maps digest alike: {a:?}");
}
