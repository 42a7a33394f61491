//! The demo service and the admin API over HTTP: a real server on a loopback port, a real
//! client, a real Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;

use cache_admin::AdminConfig;
use cache_core::{Cache, CacheConfig};
use cache_test_harness::RedisServer;
use redis::AsyncCommands;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn spawn(app: axum::Router, connect_info: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        if connect_info {
            axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                .await
                .unwrap();
        } else {
            axum::serve(listener, app).await.unwrap();
        }
    });
    format!("http://{addr}")
}

/// The demo test's token: the read routes need it (ignored where no token is configured).
const TOKEN: &str = "s3cret";

async fn get_json(client: &reqwest::Client, url: &str) -> (StatusCode, Value) {
    let r = client.get(url).bearer_auth(TOKEN).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn stat(client: &reqwest::Client, base: &str, field: &str) -> u64 {
    let (_, s) = get_json(client, &format!("{base}/api/v1/cache/stats")).await;
    s["cache"][field].as_u64().unwrap()
}

/// The only test here that uses the global cache (the demo's functions are cached there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_endpoints_against_real_redis() {
    let mut redis = RedisServer::start();
    let cache = Cache::new(
        CacheConfig::builder()
            .redis_url(redis.url())
            .warmup_on_startup(true)
            .access_sample_rate(1)
            .build()
            .unwrap(),
    )
    .unwrap();
    cache_core::init(cache).unwrap();
    let db = std::env::temp_dir().join(format!("cache-demo-test-{}.sqlite", std::process::id()));
    let _ = std::fs::remove_file(&db);
    let admin = AdminConfig::with_token(TOKEN).unwrap();
    let (app, warmer) = cache_examples::demo::app(&db, admin).await.unwrap();
    let base = spawn(app, true).await;
    let http = reqwest::Client::new();
    let mut raw = redis.conn().await;

    // Startup warmup stored users 1 and 2 and the trend of 2025-12.
    assert!(raw.exists::<_, bool>("resource:users:1").await.unwrap());
    assert!(raw.exists::<_, bool>("analysis:trends:2025-12").await.unwrap());

    // A repeated call raises `hits` and does not run the loader again.
    let (s, orders) = get_json(&http, &format!("{base}/users/7/orders")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(orders.as_array().unwrap().len(), 20);
    let (hits, loads) = (
        stat(&http, &base, "hits").await,
        stat(&http, &base, "loader_calls").await,
    );
    let (_, again) = get_json(&http, &format!("{base}/users/7/orders")).await;
    assert_eq!(again, orders);
    assert_eq!(stat(&http, &base, "hits").await, hits + 1);
    assert_eq!(stat(&http, &base, "loader_calls").await, loads);

    let (s, f) = get_json(&http, &format!("{base}/resources/freight/5")).await;
    assert_eq!((s, f["id"].as_i64()), (StatusCode::OK, Some(5)));
    let (s, _) = get_json(&http, &format!("{base}/resources/freight/999999")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, t) = get_json(&http, &format!("{base}/analysis/trends/2025-06")).await;
    assert_eq!((s, t["month"].as_str()), (StatusCode::OK, Some("2025-06")));
    assert!(raw.exists::<_, bool>("analysis:trends:2025-06").await.unwrap());

    // PUT invalidates: the next GET is a miss and shows the new data.
    let (_, before) = get_json(&http, &format!("{base}/users/3")).await;
    assert_eq!(before["name"], "User 3");
    let r = http
        .put(format!("{base}/users/3"))
        .json(&json!({"name": "Renamed"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(!raw.exists::<_, bool>("resource:users:3").await.unwrap());
    let misses = stat(&http, &base, "misses").await;
    let (_, after) = get_json(&http, &format!("{base}/users/3")).await;
    assert_eq!(after["name"], "Renamed");
    assert_eq!(stat(&http, &base, "misses").await, misses + 1);
    let r = http
        .put(format!("{base}/users/3"))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);

    // Stats, health, performance, access patterns, metrics.
    let (s, stats) = get_json(&http, &format!("{base}/api/v1/cache/stats")).await;
    assert_eq!(s, StatusCode::OK);
    for f in [
        "local_cache_size",
        "hits",
        "misses",
        "hit_rate",
        "errors",
        "compressions",
    ] {
        assert!(stats["cache"][f].is_number(), "{f}: {stats}");
    }
    assert!(
        stats["cache"]["redis_info"]["connected_clients"]
            .as_u64()
            .unwrap()
            >= 1
    );
    assert_eq!(stats["warmup"]["running"], true);
    assert_eq!(stats["warmup"]["jobs"][0]["tags"][0], "warmup_trends");
    let (s, h) = get_json(&http, &format!("{base}/api/v1/cache/health")).await;
    assert_eq!((s, h["status"].as_str()), (StatusCode::OK, Some("healthy")));
    let (_, perf) = get_json(&http, &format!("{base}/api/v1/cache/performance")).await;
    let ops = perf["operations"].as_array().unwrap();
    assert!(
        ops.iter()
            .any(|o| o["op"] == "get" && o["level"] == "l2" && o["count"].as_u64() > Some(0)),
        "{perf}"
    );
    assert!(perf["memory"]["redis_used_memory"].as_u64().unwrap() > 0);
    let (_, ap) = get_json(&http, &format!("{base}/api/v1/cache/access-patterns?limit=5")).await;
    let keys = ap["keys"].as_array().unwrap();
    assert!(!keys.is_empty() && keys.len() <= 5);
    assert!(keys[0]["hit_ratio"].is_number());
    let text = http
        .get(format!("{base}/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("cache_hits_total"), "{text}");

    // Clear: token required; "*" needs confirm; bad bodies and patterns are 400s.
    let clear = |body: Value, token: Option<&str>| {
        let mut req = http.post(format!("{base}/api/v1/cache/clear")).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    assert_eq!(
        clear(json!({"pattern": "query:*"}), None).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        clear(json!({"pattern": "query:*"}), Some("wrong"))
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let r = clear(json!({"pattern": "query:*"}), Some("s3cret"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["removed"], 1);
    let left: Vec<String> = raw.keys("query:*").await.unwrap();
    assert!(left.is_empty(), "{left:?}");
    for bad in [
        json!({"pattern": ""}),
        json!({"pattern": "a["}),
        json!({"nope": 1}),
        json!({"pattern": "*"}),
    ] {
        let r = clear(bad.clone(), Some("s3cret")).await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(r.json::<Value>().await.unwrap()["error"].is_string());
    }
    let r = http
        .post(format!("{base}/api/v1/cache/clear"))
        .bearer_auth("s3cret")
        .header("content-type", "application/json")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = clear(json!({"pattern": "*", "confirm": true}), Some("s3cret"))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Only the invalidation bookkeeping is left (markers that expire, the epoch counter).
    let left: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut raw).await.unwrap();
    assert!(left.iter().all(|k| k.starts_with("tiered-cache:inv")), "{left:?}");

    // Warmup trigger refills what startup warmed.
    let r = http
        .post(format!("{base}/api/v1/cache/warmup"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let report: Value = r.json().await.unwrap();
    assert!(report["ok"].as_u64().unwrap() >= 3, "{report}");
    assert!(raw.exists::<_, bool>("resource:users:1").await.unwrap());

    // Redis down: health says 503 with the reason, the endpoints keep answering.
    redis.stop();
    let (s, h) = get_json(&http, &format!("{base}/api/v1/cache/health")).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(h["reason"].as_str().unwrap().contains("redis unreachable"), "{h}");
    let (s, _) = get_json(&http, &format!("{base}/users/11/orders")).await;
    assert_eq!(s, StatusCode::OK);
    warmer.shutdown().await;
    let _ = std::fs::remove_file(&db);
}

#[tokio::test]
async fn without_a_token_mutating_routes_need_a_loopback_peer() {
    let cache = Cache::new(CacheConfig::default()).unwrap();
    cache.set("query:x", &1u8, None).await.unwrap();
    let http = reqwest::Client::new();
    let router = || cache_admin::router(cache.clone(), None, AdminConfig::default());

    // No connection info: the peer is unknown, so refuse.
    let blind = spawn(router(), false).await;
    let r = http
        .post(format!("{blind}/api/v1/cache/clear"))
        .json(&json!({"pattern": "query:*"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // So are the read routes; health answers, with its status only.
    let (s, _) = get_json(&http, &format!("{blind}/api/v1/cache/stats")).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    let (s, h) = get_json(&http, &format!("{blind}/api/v1/cache/health")).await;
    assert_eq!((s, h), (StatusCode::OK, json!({ "status": "healthy" })));

    let local = spawn(router(), true).await;
    // A loopback client sees health in full: L1-only mode is healthy and says so.
    let (s, h) = get_json(&http, &format!("{local}/api/v1/cache/health")).await;
    assert_eq!(s, StatusCode::OK);
    assert!(h["reason"].as_str().unwrap().contains("L1-only"), "{h}");
    let r = http
        .post(format!("{local}/api/v1/cache/clear"))
        .json(&json!({"pattern": "query:*"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(cache.get::<u8>("query:x").await.unwrap(), None);

    // Exposing the routes publicly without a token is refused up front.
    let err = cache_admin::serve_checked("0.0.0.0:0".parse().unwrap(), router(), &AdminConfig::new())
        .await
        .unwrap_err();
    assert!(matches!(err, cache_admin::ServeError::Exposed(_)));
}
