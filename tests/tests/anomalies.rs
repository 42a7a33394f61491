//! Anomaly detection through its outlets (issue 23): a miss storm on one key prefix, raised by
//! the real sampler task on the real clock (short windows), shows in
//! `GET /api/v1/cache/anomalies` (with the prefix redacted for a token that may not read its
//! keys) and in `/metrics` (`cache_anomalies_total`, `cache_anomalies_active`, described).
//! The detectors' promises on long simulated workloads are cache-core's simulator's
//! (`cache-core/src/anomaly/sim.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use cache_admin::AdminConfig;
use cache_core::{AnomalyKind, Cache, CacheConfig};
use reqwest::StatusCode;
use serde_json::Value;

const TOKENS: &str = r#"
[[tokens]]
name = "tenant-a"
token = "tenant-a-secret"
actions = ["read"]
patterns = ["tenant-a:*"]

[[tokens]]
name = "reader"
token = "reader-secret"
actions = ["read"]
"#;

/// An L1-only cache whose detectors judge 100 ms windows after 5 of them.
fn fast_cache() -> Cache {
    let mut config = CacheConfig::default();
    config.anomaly.window = Duration::from_millis(100);
    config.anomaly.warmup_windows = 5;
    config.anomaly.baseline_half_life = Duration::from_secs(2);
    // The test reads the storms while they are active: three calm 100 ms windows would end
    // them between its HTTP reads on a loaded machine.
    config.anomaly.miss_storm.recovery = 1000;
    config.anomaly.key_cardinality.recovery = 1000;
    Cache::new(config).unwrap()
}

async fn serve(cache: Cache) -> String {
    let app = cache_admin::router(cache, None, AdminConfig::from_tokens_toml(TOKENS).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap()
    });
    base
}

async fn get(base: &str, path: &str, token: &str) -> (StatusCode, String) {
    let r = reqwest::Client::new()
        .get(format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

async fn json(base: &str, path: &str, token: &str) -> Value {
    let (status, text) = get(base, path, token).await;
    assert_eq!(status, StatusCode::OK, "{path}: {text}");
    serde_json::from_str(&text).unwrap()
}

/// `n` reads of `key(i)` through the cache (a load on each miss).
async fn reads(cache: &Cache, n: u64, key: impl Fn(u64) -> String) {
    for i in 0..n {
        let v: u64 = cache.get_or_insert_with(&key(i), None, || async { 7 }).await;
        assert_eq!(v, 7);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_storm_is_listed_counted_and_redacted() {
    let cache = fast_cache();
    let base = serve(cache.clone()).await;

    let quiet = json(&base, "/api/v1/cache/anomalies", "reader-secret").await;
    assert_eq!(quiet["enabled"], true, "{quiet}");
    assert_eq!(quiet["window_secs"], 0.1, "{quiet}");
    assert_eq!(quiet["anomalies"], Value::Array(Vec::new()), "{quiet}");
    assert_eq!(
        quiet["counts"].as_array().unwrap().len(),
        14,
        "every kind x severity: {quiet}"
    );

    // Normal traffic: hot keys, all hits after their first load, past the warm-up.
    for _ in 0..15 {
        reads(&cache, 50, |i| format!("tenant-b:hot:{}", i % 5)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(cache.anomalies().is_empty(), "{:#?}", cache.anomalies());

    // The storm: every read a key never seen, on `tenant-b`.
    let mut n = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let storm = loop {
        reads(&cache, 50, |i| format!("tenant-b:cold:{}", n * 50 + i)).await;
        n += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let raised = cache.anomalies();
        let found = raised
            .iter()
            .find(|a| a.kind == AnomalyKind::MissStorm && a.scope == "tenant-b")
            .cloned();
        if let Some(a) = found {
            break a;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no miss storm raised: {raised:#?}"
        );
    };
    assert!(
        storm.observed > storm.threshold && storm.threshold > storm.baseline,
        "{storm:?}"
    );
    assert!(storm.ended_at.is_none() && storm.started_at > 0, "{storm:?}");

    let all = json(&base, "/api/v1/cache/anomalies", "reader-secret").await;
    let listed = all["anomalies"].as_array().unwrap();
    let row = listed
        .iter()
        .find(|a| a["id"] == storm.id)
        .unwrap_or_else(|| panic!("{all}"));
    assert_eq!(row["kind"], "miss_storm");
    assert_eq!(row["scope"], "tenant-b");
    assert_eq!(row["unit"], "per_second");
    assert!(
        row["ended_at"].is_null() && row["observed"].as_f64().unwrap() > 0.0,
        "{row}"
    );
    let kinds: Vec<&str> = listed.iter().map(|a| a["kind"].as_str().unwrap()).collect();
    assert!(
        kinds.contains(&"key_cardinality"),
        "new keys every read: {kinds:?}"
    );
    let counted: u64 = all["counts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["kind"] == "miss_storm")
        .map(|c| c["raised"].as_u64().unwrap())
        .sum();
    assert!(counted >= 1, "{all}");

    // A token that may not read `tenant-b:*` keys sees the figures, not the prefix.
    let scoped = json(
        &base,
        "/api/v1/cache/anomalies?active=true&limit=50",
        "tenant-a-secret",
    )
    .await;
    let rows = scoped["anomalies"].as_array().unwrap();
    assert!(!rows.is_empty(), "{scoped}");
    assert!(
        rows.iter().all(|a| a["ended_at"].is_null()),
        "active only: {scoped}"
    );
    assert!(rows.iter().all(|a| a["scope"] != "tenant-b"), "{scoped}");
    assert!(rows.iter().any(|a| a["scope"] == "<redacted>"), "{scoped}");
    assert!(
        rows.iter().any(|a| a["scope"] == "*"),
        "the whole cache's storm: {scoped}"
    );

    // /metrics: the counter and the gauge, described.
    let (status, text) = get(&base, "/metrics", "reader-secret").await;
    assert_eq!(status, StatusCode::OK);
    for help in ["# HELP cache_anomalies_total ", "# HELP cache_anomalies_active "] {
        assert!(text.contains(help), "{help} missing:\n{text}");
    }
    let value = |series: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(series))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {series} in:\n{text}"))
    };
    let raised = value(r#"cache_anomalies_total{kind="miss_storm",severity="warning"}"#)
        + value(r#"cache_anomalies_total{kind="miss_storm",severity="critical"}"#);
    assert!(raised >= 2.0, "the prefix's and the whole cache's: {raised}");
    assert!(value(r#"cache_anomalies_active{kind="miss_storm"}"#) >= 1.0);
    assert_eq!(
        value(r#"cache_anomalies_active{kind="l2_latency"}"#),
        0.0,
        "L1-only: never"
    );

    let (status, text) = get(&base, "/api/v1/cache/anomalies?limit=abc", "reader-secret").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
}

/// Detection off: no task, no events, the route says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_raises_nothing_and_says_so() {
    let mut config = CacheConfig::default();
    config.anomaly.enabled = false;
    let cache = Cache::new(config).unwrap();
    let base = serve(cache.clone()).await;
    reads(&cache, 200, |i| format!("k:{i}")).await;
    let body = json(&base, "/api/v1/cache/anomalies", "reader-secret").await;
    assert_eq!(body["enabled"], false);
    assert_eq!(body["anomalies"], Value::Array(Vec::new()));
}
