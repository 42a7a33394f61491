//! The cache-off switch (issue 22): `CacheConfig::enabled`, `Cache::set_enabled` and
//! `POST /api/v1/cache/enabled`, against a real Redis. Off, every cached function runs its body,
//! nothing is read or written in any tier, invalidations do nothing, the stats say `disabled`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use cache_admin::{Action, AdminConfig, AdminToken};
use cache_core::{cache, Cache, CacheConfig};
use cache_test_harness::RedisServer;
use reqwest::StatusCode;
use serde_json::{json, Value};

static CALLS: AtomicUsize = AtomicUsize::new(0);
static WARMED: AtomicUsize = AtomicUsize::new(0);

#[cache(cache = cache, ttl = 600)]
async fn answer(cache: &Cache, n: u32) -> u32 {
    CALLS.fetch_add(1, Ordering::SeqCst);
    n * 2
}

fn two_level(redis: &RedisServer, enabled: bool) -> Cache {
    Cache::new(
        CacheConfig::builder()
            .redis_url(redis.url())
            .enabled(enabled)
            .build()
            .unwrap(),
    )
    .unwrap()
}

/// Every command Redis has run so far, `INFO commandstats` summed (the `INFO` calls that ask
/// are counted too: the caller compares two readings taken the same way).
async fn commands(redis: &RedisServer) -> u64 {
    let mut total = 0;
    for cmd in [
        "get", "set", "mget", "del", "unlink", "exists", "pttl", "eval", "evalsha", "publish", "scan",
    ] {
        total += redis.command_calls(cmd).await;
    }
    total
}

#[tokio::test]
async fn off_runs_every_body_reads_and_fills_nothing() {
    let redis = RedisServer::start();
    let cache = two_level(&redis, true);
    CALLS.store(0, Ordering::SeqCst);
    assert_eq!(answer(&cache, 21).await, 42);
    assert_eq!(answer(&cache, 21).await, 42);
    assert_eq!(CALLS.load(Ordering::SeqCst), 1, "on: the second call is a hit");
    cache.set("query:kept", &7u8, None).await.unwrap();
    cache.set("query:gone", &8u8, None).await.unwrap();

    assert!(cache.set_enabled(false), "it was on");
    assert!(!cache.is_enabled());
    let before = commands(&redis).await;
    for _ in 0..3 {
        assert_eq!(answer(&cache, 21).await, 42);
    }
    assert_eq!(CALLS.load(Ordering::SeqCst), 4, "off: every call runs the body");
    let loads = AtomicUsize::new(0);
    for _ in 0..2 {
        let v = cache
            .get_or_insert_with("query:loaded", None, || async {
                loads.fetch_add(1, Ordering::SeqCst);
                5u8
            })
            .await;
        assert_eq!(v, 5);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 2);
    let batch: Vec<Option<u8>> = cache
        .get_many_or_compute(
            &["query:kept", "query:b"],
            None,
            |missing: Vec<String>| async move {
                Ok::<_, std::io::Error>(missing.into_iter().map(|k| (k, 9u8)).collect())
            },
        )
        .await
        .unwrap();
    assert_eq!(
        batch,
        vec![Some(9), Some(9)],
        "off: the batch loader gets every key"
    );
    assert_eq!(
        cache.get::<u8>("query:kept").await.unwrap(),
        None,
        "off: reads miss"
    );
    assert!(!cache.exists("query:kept").await.unwrap());
    cache.set("query:new", &1u8, None).await.unwrap();
    let after = commands(&redis).await;
    // The readings themselves are INFO calls, not counted above: nothing else reached Redis.
    assert_eq!(after, before, "off: no read or fill reached Redis");

    // Invalidations still run: another instance must not serve what this one's write replaced.
    assert!(cache.delete("query:gone").await.unwrap());

    let stats = cache.stats().await;
    assert!(!stats.enabled);
    assert_eq!(stats.status, "disabled");
    assert_eq!(
        stats.bypassed, 6,
        "three macro calls, two get_or_insert_with, one batch"
    );
    let json = serde_json::to_value(&stats).unwrap();
    assert_eq!(json["status"], "disabled");

    // Back on: Redis's copies answer again, L1 starts empty.
    assert!(!cache.set_enabled(true));
    let mut conn = redis.conn().await;
    let exists = |k: &'static str| {
        let mut conn = conn.clone();
        async move {
            redis::cmd("EXISTS")
                .arg(k)
                .query_async::<bool>(&mut conn)
                .await
                .unwrap()
        }
    };
    assert!(exists("query:kept").await, "reads while off removed nothing");
    assert!(!exists("query:gone").await, "the delete while off reached Redis");
    assert!(!exists("query:new").await, "the write while off wrote nothing");
    let _ = &mut conn;
    assert_eq!(
        cache.stats().await.local_cache_size,
        0,
        "L1 emptied on the way back"
    );
    assert_eq!(cache.get::<u8>("query:kept").await.unwrap(), Some(7));
    assert_eq!(answer(&cache, 21).await, 42);
    assert_eq!(CALLS.load(Ordering::SeqCst), 4, "on again: Redis's copy answers");
}

/// The switch is per process: a write on an instance that is off still evicts the copies of
/// an instance that is on.
#[tokio::test]
async fn an_instance_that_is_off_still_invalidates_the_others() {
    let redis = RedisServer::start();
    let off = two_level(&redis, true);
    let on = two_level(&redis, true);
    // `on` hears others once its subscription, made in the background, is up.
    common::until_subscribed(&on, &off).await;
    on.set("resource:users:1", &"old".to_owned(), None).await.unwrap();
    assert_eq!(
        on.get::<String>("resource:users:1").await.unwrap().as_deref(),
        Some("old")
    );
    off.set_enabled(false);
    off.delete("resource:users:1").await.unwrap();
    // The other instance's L1 copy goes with the pub/sub message.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while on.get::<String>("resource:users:1").await.unwrap().is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "the instance that is on still serves the old value"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// A load that began before the switch went off and ends after it is back on may have read the
/// data before a write made while off: it is not stored.
#[tokio::test]
async fn a_load_across_off_and_on_is_not_stored() {
    let redis = RedisServer::start();
    let cache = two_level(&redis, true);
    let load = common::StalledLoad::start(&cache, "query:slow", "read before the write").await;
    cache.set_enabled(false);
    cache.set_enabled(true);
    assert_eq!(load.finish().await, "read before the write");
    assert_eq!(
        cache.get::<String>("query:slow").await.unwrap(),
        None,
        "not stored"
    );
}

#[tokio::test]
async fn configured_off_from_the_start_and_from_the_environment() {
    let redis = RedisServer::start();
    let cache = two_level(&redis, false);
    cache.set("query:x", &1u8, None).await.unwrap();
    assert_eq!(cache.get::<u8>("query:x").await.unwrap(), None);
    let mut conn = redis.conn().await;
    let n: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
    assert_eq!(n, 0);

    let off = CacheConfig::from_lookup(|k| (k == "CACHE_ENABLED").then(|| "false".to_owned())).unwrap();
    assert!(!off.enabled);
    let err = CacheConfig::from_lookup(|k| (k == "CACHE_ENABLED").then(|| "maybe".to_owned())).unwrap_err();
    assert!(err.to_string().contains("CACHE_ENABLED"), "{err}");
    let toml = CacheConfig::from_toml_str("enabled = false").unwrap();
    assert!(!toml.enabled);
    assert!(CacheConfig::default().enabled);
}

struct Admin {
    cache: Cache,
    http: reqwest::Client,
    base: String,
    _redis: RedisServer,
}

async fn admin() -> Admin {
    let redis = RedisServer::start();
    let cache = two_level(&redis, true);
    let config = AdminConfig::new()
        .token(AdminToken::new("ops", "ops-secret").actions(Action::ALL))
        .unwrap()
        .token(AdminToken::new("reader", "read-secret").actions([Action::Read, Action::Clear]))
        .unwrap()
        .token(
            AdminToken::new("tenant", "tenant-secret")
                .actions(Action::ALL)
                .patterns(["tenant:*"])
                .unwrap(),
        )
        .unwrap();
    let warmer = cache_warmer::Warmer::new(cache.clone());
    warmer.register("counted", || async {
        WARMED.fetch_add(1, Ordering::SeqCst);
        Ok::<(), std::io::Error>(())
    });
    let app = cache_admin::router(cache.clone(), Some(warmer), config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Admin {
        cache,
        http: reqwest::Client::new(),
        base,
        _redis: redis,
    }
}

impl Admin {
    /// `method path` with `token` (and a JSON body): the status and the JSON answer.
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.unwrap();
        let status = r.status();
        (status, r.json().await.unwrap())
    }

    async fn switch(&self, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(reqwest::Method::POST, "/api/v1/cache/enabled", token, Some(body))
            .await
    }
}

#[tokio::test]
async fn the_admin_switch_needs_its_action_and_every_key() {
    let a = admin().await;
    let (s, body) = a.switch("read-secret", json!({"enabled": false})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(a.cache.is_enabled());
    let (s, body) = a.switch("tenant-secret", json!({"enabled": false})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{body}");
    assert!(body["error"].as_str().unwrap().contains("every key"), "{body}");
    assert!(a.cache.is_enabled());
    let (s, body) = a.switch("wrong", json!({"enabled": false})).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{body}");
    let (s, body) = a.switch("ops-secret", json!({"enabled": "no"})).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["error"].as_str().unwrap().contains("enabled"), "{body}");

    let (s, body) = a.switch("ops-secret", json!({"enabled": false})).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body, json!({"enabled": false, "was": true}));
    assert!(!a.cache.is_enabled());
    let (_, stats) = a
        .call(reqwest::Method::GET, "/api/v1/cache/stats", "ops-secret", None)
        .await;
    assert_eq!(stats["cache"]["status"], "disabled", "{stats}");
    // A warmup while off runs nothing: its entry is reported skipped and never called.
    let (_, report) = a
        .call(reqwest::Method::POST, "/api/v1/cache/warmup", "ops-secret", None)
        .await;
    assert_eq!(
        (report["ok"].as_u64(), report["skipped"].as_u64()),
        (Some(0), Some(1)),
        "{report}"
    );
    assert_eq!(WARMED.load(Ordering::SeqCst), 0);

    let (s, body) = a.switch("ops-secret", json!({"enabled": true})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(body, json!({"enabled": true, "was": false}));
    assert!(a.cache.is_enabled());
    let (_, report) = a
        .call(reqwest::Method::POST, "/api/v1/cache/warmup", "ops-secret", None)
        .await;
    assert_eq!(report["ok"].as_u64(), Some(1), "{report}");
    assert_eq!(WARMED.load(Ordering::SeqCst), 1);
}
