//! Issue 21's access control against a real Redis: scoped handles refuse outside their
//! patterns before any I/O, and the engine runs under the ACL rule `CacheConfig::acl_rule`
//! prints while the server refuses every other key. (The admin API's tokens:
//! `admin_access.rs`.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};

use cache_core::{cache_resource, Cache, CacheConfig, CacheError};
use cache_test_harness::RedisServer;

mod common;

const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const SECRET: &str = "test-secret-of-at-least-16-bytes";
const EMAIL: &str = "alice@example.com";

static LOADS: AtomicU64 = AtomicU64::new(0);

#[cache_resource(cache = c, key = "users:{email}", tags = ["user:{email}"])]
async fn profile(c: &Cache, email: &str) -> String {
    LOADS.fetch_add(1, Ordering::SeqCst);
    format!("profile of {email}")
}

fn builder(redis: &RedisServer) -> cache_core::CacheConfigBuilder {
    CacheConfig::builder().redis_url(redis.url())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_handle_refuses_outside_its_patterns_before_any_io() {
    let redis = RedisServer::start();
    let cache = Cache::new(builder(&redis).build().unwrap()).unwrap();
    cache
        .set("tenant-b:users:1", &"b".to_string(), None)
        .await
        .unwrap();
    let a = cache.scoped(&["tenant-a:*"]).unwrap();

    // Allowed.
    a.set("tenant-a:users:1", &"a".to_string(), None).await.unwrap();
    assert_eq!(
        a.get::<String>("tenant-a:users:1").await.unwrap().as_deref(),
        Some("a")
    );
    assert!(a.exists("tenant-a:users:1").await.unwrap());
    a.set_tagged("tenant-a:t", &1u8, None, &["tenant-a:tag"])
        .await
        .unwrap();
    a.invalidate_tags(&["tenant-a:tag"]).await.unwrap();
    assert_eq!(a.invalidate_pattern("tenant-a:users:*").await.unwrap(), 1);
    assert_eq!(
        a.get_or_insert_with("tenant-a:x", None, || async { 5u8 })
            .await
            .unwrap(),
        5
    );
    assert!(a.delete("tenant-a:x").await.unwrap());

    // Refused, with nothing sent to Redis and no loader run.
    // Every data command the engine sends (connection set-up and health checks aside).
    let calls = || async {
        let mut n = 0;
        for c in [
            "get", "mget", "set", "unlink", "exists", "pttl", "incr", "eval", "evalsha", "scan", "publish",
        ] {
            n += redis.command_calls(c).await;
        }
        n
    };
    let before = calls().await;
    let out = |r: Result<(), CacheError>| matches!(r, Err(CacheError::OutOfScope { .. }));
    assert!(out(a.get::<String>("tenant-b:users:1").await.map(drop)));
    assert!(out(a.set("tenant-b:users:1", &"x".to_string(), None).await));
    assert!(out(a.delete("tenant-b:users:1").await.map(drop)));
    assert!(out(a.exists("tenant-b:users:1").await.map(drop)));
    assert!(out(a.ttl_remaining("tenant-b:users:1").await.map(drop)));
    assert!(out(a
        .set_tagged("tenant-a:t", &1u8, None, &["tenant-b:tag"])
        .await));
    assert!(out(a.invalidate_tags(&["user:1"]).await));
    for p in ["tenant-b:*", "tenant-*", "*", "?enant-a:*"] {
        assert!(out(a.invalidate_pattern(p).await.map(drop)), "{p}");
    }
    let ran = AtomicU64::new(0);
    let r = a
        .get_or_insert_with("tenant-b:users:1", None, || async {
            ran.fetch_add(1, Ordering::SeqCst);
            "loaded".to_string()
        })
        .await;
    assert!(out(r.map(drop)));
    assert_eq!(ran.load(Ordering::SeqCst), 0, "the loader never ran");
    assert_eq!(calls().await, before, "no command reached Redis");
    assert_eq!(
        cache.get::<String>("tenant-b:users:1").await.unwrap().as_deref(),
        Some("b")
    );
    assert_eq!(
        a.clear().await.unwrap(),
        1,
        "clear is the scope's own: tenant-a:t"
    );
    assert_eq!(
        cache.get::<String>("tenant-b:users:1").await.unwrap().as_deref(),
        Some("b")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_runs_under_the_acl_rule_it_prints_and_the_server_refuses_the_rest() {
    let redis = RedisServer::start();
    let config = || {
        builder(&redis)
            .namespace("app")
            .key_secret(SECRET)
            .encryption_keys(K1)
            .build()
            .unwrap()
    };
    let rule = config()
        .acl_rule("tenant", "pw-1", &["query:*", "resource:*"])
        .unwrap();
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&rule.user)
        .arg(&rule.rules)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    let as_user = || {
        let mut c = config();
        c.redis_url = Some(format!("redis://tenant:pw-1@127.0.0.1:{}/", redis.port()));
        c
    };
    let a = Cache::new(as_user()).unwrap();
    let b = Cache::new(as_user()).unwrap();
    common::until_subscribed(&b, &a).await;
    profile(&a, EMAIL).await;
    a.set("query:x", &1u8, None).await.unwrap();
    assert_eq!(b.get::<u8>("query:x").await.unwrap(), Some(1));
    a.invalidate_tags(&[&format!("user:{EMAIL}")]).await.unwrap();
    // `query:x` and `until_subscribed`'s probe.
    assert_eq!(a.invalidate_pattern("query:*").await.unwrap(), 2);
    let loads = LOADS.load(Ordering::SeqCst);
    profile(&b, EMAIL).await;
    assert_eq!(
        LOADS.load(Ordering::SeqCst),
        loads + 1,
        "B reads the entry as invalidated"
    );
    assert_eq!(a.stats().await.errors, 0);
    assert_eq!(b.stats().await.errors, 0);
    // Outside its patterns the server itself refuses, whatever the client does.
    let e = a.set("static:x", &1u8, None).await.unwrap_err();
    assert!(e.to_string().to_lowercase().contains("perm"), "{e}");
}
