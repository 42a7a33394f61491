//! The cache deletes only what it wrote (issue 16): foreign keys of every Redis type survive
//! `clear`, pattern invalidation and the admin clear, with and without a namespace; a namespace
//! fences off every key, lock and channel; keys with glob characters and newlines round-trip
//! through every path, pub/sub to another instance included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use cache_admin::AdminConfig;
use cache_core::{invalidate_cache, Cache, CacheConfig};
use cache_test_harness::RedisServer;
use redis::AsyncCommands;
use serde_json::json;

fn cache(redis: &RedisServer, namespace: Option<&str>) -> Cache {
    let mut b = CacheConfig::builder().redis_url(redis.url());
    if let Some(ns) = namespace {
        b = b.namespace(ns);
    }
    Cache::new(b.build().unwrap()).unwrap()
}

/// Another program's data under the same names the cache uses: one of each Redis type, a string
/// that starts like the old envelope (0x21) and one whose key is not UTF-8.
async fn seed_foreign(redis: &RedisServer, prefix: &str) -> Vec<Vec<u8>> {
    let mut c = redis.conn().await;
    let k = |s: &str| format!("{prefix}{s}").into_bytes();
    let _: () = c.set(k("session:abc"), "user=42").await.unwrap();
    let _: () = c.set(k("query:looks-old"), &[0x21u8, 0, 0, 0][..]).await.unwrap();
    let _: () = c.rpush(k("jobs:queue"), "job-1").await.unwrap();
    let _: () = c.rpush(k("query:list"), "x").await.unwrap();
    let _: () = c.hset(k("query:hash"), "f", "v").await.unwrap();
    let _: () = c.sadd(k("query:set"), "m").await.unwrap();
    let _: () = c.zadd(k("query:zset"), "m", 1).await.unwrap();
    let _: String = redis::cmd("XADD")
        .arg(k("query:stream"))
        .arg("*")
        .arg("f")
        .arg("v")
        .query_async(&mut c)
        .await
        .unwrap();
    let mut binary = prefix.as_bytes().to_vec();
    binary.extend_from_slice(b"query:\xff\xfe");
    let _: () = c.set(&binary, "bytes").await.unwrap();
    let mut all: Vec<Vec<u8>> = [
        "session:abc",
        "query:looks-old",
        "jobs:queue",
        "query:list",
        "query:hash",
        "query:set",
        "query:zset",
        "query:stream",
    ]
    .iter()
    .map(|s| k(s))
    .collect();
    all.push(binary);
    all
}

/// The admin API over `c`, served on a free loopback port (token `t`); its base URL.
async fn serve_admin(c: &Cache) -> String {
    let app = cache_admin::router(c.clone(), None, AdminConfig::with_token("t").unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

async fn exists(redis: &RedisServer, key: &[u8]) -> bool {
    redis.conn().await.exists(key).await.unwrap()
}

const OWN: [&str; 4] = ["query:a", "query:b", "resource:users:1", "static:x"];

async fn seed_own(c: &Cache) {
    for k in OWN {
        c.set(k, &1u32, None).await.unwrap();
    }
}

async fn assert_only_own_gone(redis: &RedisServer, c: &Cache, foreign: &[Vec<u8>], how: &str) {
    for f in foreign {
        assert!(
            exists(redis, f).await,
            "{how} deleted foreign key {:?}",
            String::from_utf8_lossy(f)
        );
    }
    for k in OWN {
        assert_eq!(c.get::<u32>(k).await.unwrap(), None, "{how} left {k}");
    }
}

/// `clear()` deleted `session:abc` and `jobs:queue` on the old code (measured).
#[tokio::test]
async fn clear_and_invalidation_delete_only_the_cache_entries() {
    let redis = RedisServer::start();
    let foreign = seed_foreign(&redis, "").await;
    let c = cache(&redis, None);

    seed_own(&c).await;
    let removed = c.clear().await.unwrap();
    assert_eq!(
        removed,
        OWN.len() as u64,
        "the count is of the cache's own entries"
    );
    assert_only_own_gone(&redis, &c, &foreign, "clear()").await;

    seed_own(&c).await;
    c.invalidate_pattern("*").await.unwrap();
    assert_only_own_gone(&redis, &c, &foreign, "invalidate_pattern(\"*\")").await;

    seed_own(&c).await;
    assert_eq!(c.invalidate_pattern("query:*").await.unwrap(), 2);
    for f in &foreign {
        assert!(exists(&redis, f).await);
    }
    assert_eq!(c.get::<u32>("static:x").await.unwrap(), Some(1));

    seed_own(&c).await;
    wipe_everything(&c).await;
    assert_only_own_gone(&redis, &c, &foreign, "#[invalidate_cache(\"*\")]").await;

    // The admin API's clear, over HTTP.
    seed_own(&c).await;
    let base = serve_admin(&c).await;
    let r = reqwest::Client::new()
        .post(format!("{base}/api/v1/cache/clear"))
        .bearer_auth("t")
        .json(&json!({"pattern": "*", "confirm": true}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
    assert_only_own_gone(&redis, &c, &foreign, "admin clear").await;
}

#[invalidate_cache("*", cache = cache)]
async fn wipe_everything(cache: &Cache) -> u8 {
    0
}

/// With a namespace every key, lock and channel lives under it; the API's keys do not change;
/// clearing one namespace leaves the other namespace and foreign data alone.
#[tokio::test]
async fn a_namespace_fences_off_keys_locks_and_channels() {
    let redis = RedisServer::start();
    let foreign = seed_foreign(&redis, "").await;
    let a = cache(&redis, Some("app1"));
    let b = cache(&redis, Some("app2"));
    seed_own(&a).await;
    seed_own(&b).await;
    let mut conn = redis.conn().await;
    let mut keys: Vec<String> = conn.keys("app1:*").await.unwrap();
    keys.sort();
    // The direct writes' invalidation markers live in the namespace too.
    let (markers, keys): (Vec<String>, Vec<String>) = keys
        .into_iter()
        .partition(|k| k.starts_with("app1:tiered-cache:inv:"));
    assert_eq!(markers.len(), OWN.len(), "{markers:?}");
    assert_eq!(
        keys,
        vec![
            "app1:query:a",
            "app1:query:b",
            "app1:resource:users:1",
            "app1:static:x"
        ]
    );
    assert!(!exists(&redis, b"query:a").await, "nothing outside the namespace");
    assert_eq!(a.get::<u32>("query:a").await.unwrap(), Some(1));
    assert!(a.exists("query:a").await.unwrap());
    assert!(a.ttl_remaining("query:a").await.unwrap().is_some());

    // Locks.
    let token = a
        .try_lock("nightly", Duration::from_secs(5))
        .await
        .unwrap()
        .unwrap();
    assert!(exists(&redis, b"app1:lock:nightly").await);
    assert!(
        b.try_lock("nightly", Duration::from_secs(5))
            .await
            .unwrap()
            .is_some(),
        "other namespace"
    );
    assert!(a.release_lock("nightly", &token).await.unwrap());

    // The invalidation channel (subscribed shortly after the cache is built).
    let mut channels: Vec<String> = Vec::new();
    for _ in 0..100 {
        channels = redis::cmd("PUBSUB")
            .arg("CHANNELS")
            .query_async(&mut conn)
            .await
            .unwrap();
        if channels.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    channels.sort();
    assert_eq!(
        channels,
        vec!["app1:tiered-cache:invalidate:0", "app2:tiered-cache:invalidate:0"]
    );

    // Clearing app1 touches neither app2 nor foreign data, even under "*".
    a.clear().await.unwrap();
    assert_eq!(a.get::<u32>("query:a").await.unwrap(), None);
    assert_eq!(b.get::<u32>("query:a").await.unwrap(), Some(1));
    for f in &foreign {
        assert!(exists(&redis, f).await);
    }
    // Foreign data inside the namespace is not the cache's either.
    let inside = seed_foreign(&redis, "app1:").await;
    a.invalidate_pattern("*").await.unwrap();
    for f in &inside {
        assert!(exists(&redis, f).await);
    }
}

/// Keys that Redis globs, logs and line-based protocols treat specially.
const HOSTILE: [&str; 9] = [
    "query:star*key",
    "query:q?[a-z]\\",
    "query:line\nbreak",
    "query:crlf\r\nx",
    "query:space key",
    "query:ünï/日本",
    "query:%3A:%25",
    "query:{tag}",
    "query:",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_keys_round_trip_through_every_path() {
    let redis = RedisServer::start();
    let a = cache(&redis, None);
    let b = cache(&redis, None);
    // Both listeners subscribed before anything is written (a message sent earlier is lost).
    let mut conn = redis.conn().await;
    for _ in 0..500 {
        let (_, n): (String, u64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg("tiered-cache:invalidate:0")
            .query_async(&mut conn)
            .await
            .unwrap();
        if n >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for (i, k) in HOSTILE.iter().enumerate() {
        a.set(k, &(i as u32), None).await.unwrap();
        assert_eq!(b.get::<u32>(k).await.unwrap(), Some(i as u32), "{k:?}");
    }
    // Other keys a glob in one of them could reach stay put.
    a.set("query:starXkey", &99u32, None).await.unwrap();

    // One write of many keys: B drops each of its L1 copies (one pub/sub message).
    let items: Vec<(&str, u32)> = HOSTILE.iter().map(|k| (*k, 1000)).collect();
    a.mset(&items, None).await.unwrap();
    for k in HOSTILE {
        eventually(|| async { b.get::<u32>(k).await.unwrap() == Some(1000) }, k).await;
    }
    // One key at a time.
    for k in HOSTILE {
        a.set(k, &2000u32, None).await.unwrap();
        eventually(|| async { b.get::<u32>(k).await.unwrap() == Some(2000) }, k).await;
    }
    // A pattern made from an escaped key reaches that key only.
    let p = cache_core::pattern::escape("query:star*key");
    assert_eq!(a.invalidate_pattern(&p).await.unwrap(), 1);
    assert_eq!(b.get::<u32>("query:starXkey").await.unwrap(), Some(99));
    eventually(
        || async { b.get::<u32>("query:star*key").await.unwrap().is_none() },
        "star",
    )
    .await;
    // The admin API: a pattern with a newline and glob characters arrives as JSON, escaped, and
    // reaches exactly its key; keys with newlines come back as valid JSON.
    let base = serve_admin(&a).await;
    let http = reqwest::Client::new();
    let pattern = cache_core::pattern::escape("query:q?[a-z]\\").into_owned() + "*";
    let r = http
        .post(format!("{base}/api/v1/cache/clear"))
        .bearer_auth("t")
        .json(&json!({ "pattern": pattern }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
    assert!(!exists(&redis, "query:q?[a-z]\\".as_bytes()).await);
    assert!(exists(&redis, b"query:line\nbreak").await);
    let r = http
        .post(format!("{base}/api/v1/cache/clear"))
        .bearer_auth("t")
        .json(&json!({ "pattern": "query:line\nbreak" }))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{:?}", r.text().await);
    assert!(!exists(&redis, b"query:line\nbreak").await);
    assert!(exists(&redis, b"query:crlf\r\nx").await);
    let stats: serde_json::Value = http
        .get(format!("{base}/api/v1/cache/access-patterns"))
        .bearer_auth("t")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(stats.is_object() || stats.is_array(), "{stats}");

    // Deletes.
    for k in HOSTILE.iter().skip(3) {
        assert!(a.delete(k).await.unwrap(), "{k:?}");
        eventually(|| async { b.get::<u32>(k).await.unwrap().is_none() }, k).await;
    }
}

/// Polls `check` for up to 3 s: pub/sub delivery is asynchronous.
async fn eventually<F, Fut>(check: F, what: &str)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("not seen by the other instance: {what:?}");
}
