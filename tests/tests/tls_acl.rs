//! The engine over TLS, mutual TLS and an ACL user limited to its namespace, against real
//! `redis-server`s started with certificates made at test time. A TLS or ACL failure is a clear
//! error (or a logged, counted fallback), never a panic and never plain text.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use cache_core::{Cache, CacheConfig, CacheError};
use cache_test_harness::{RedisServer, TlsFiles};

mod common;
use common::{exercise, two_instances};

/// The minimal ACL rule of a cache user whose namespace is `app` (the README shows it).
const CACHE_USER_RULES: &[&str] = &[
    "~app:*",
    "&app:*",
    "+get",
    "+getrange",
    "+mget",
    "+set",
    "+unlink",
    "+exists",
    "+pttl",
    "+incr",
    "+eval",
    "+evalsha",
    "+script|load",
    "+publish",
    "+subscribe",
    "+scan",
    "+ping",
    "+info",
    "+memory|usage",
];

fn tls_config(server: &RedisServer, files: &TlsFiles, client_cert: bool) -> CacheConfig {
    let mut b = CacheConfig::builder()
        .redis_url(server.tls_url())
        .redis_tls_ca_file(&files.ca_cert)
        .namespace("app")
        // A TLS handshake before the first command, on a loaded 2-core machine: not a test of
        // speed (the Sentinel-over-TLS test once timed out at the default 1 s).
        .connect_timeout(std::time::Duration::from_secs(10));
    if client_cert {
        b = b.redis_tls_client_cert(&files.client_cert, &files.client_key);
    }
    b.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_works_over_tls() {
    let files = TlsFiles::generate();
    let server = RedisServer::start_tls(&files, false);
    let (a, _b) = two_instances(|| tls_config(&server, &files, false)).await;
    assert!(a.health().await.redis.unwrap().url.starts_with("rediss://"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_works_over_mutual_tls() {
    let files = TlsFiles::generate();
    let server = RedisServer::start_tls(&files, true);
    two_instances(|| tls_config(&server, &files, true)).await;
}

/// The server wants a client certificate and gets none; or the server's certificate is not
/// signed by the configured CA. Either way: errors, counted, reported by health, and every
/// call answered by its function.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_handshake_is_a_counted_error_and_calls_are_answered() {
    let files = TlsFiles::generate();
    let server = RedisServer::start_tls(&files, true);
    let no_client_cert = tls_config(&server, &files, false);
    let wrong_ca = CacheConfig::builder()
        .redis_url(server.tls_url())
        .redis_tls_ca_file(&files.other_ca_cert)
        .redis_tls_client_cert(&files.client_cert, &files.client_key)
        .build()
        .unwrap();
    for (what, config) in [("no client certificate", no_client_cert), ("wrong CA", wrong_ca)] {
        let cache = Cache::new(config).unwrap();
        for i in 0..5u64 {
            let v: u64 = cache
                .get_or_insert_with(&format!("query:x:{i}"), None, || async move { i * 3 })
                .await;
            assert_eq!(v, i * 3, "{what}: the function answers");
        }
        let err = cache.set("query:y", &1u8, None).await.unwrap_err();
        assert!(
            err.is_transport() || matches!(err, CacheError::CircuitOpen),
            "{what}: {err}"
        );
        let stats = cache.stats().await;
        assert!(stats.errors > 0, "{what}: errors counted");
        let health = cache.health().await.redis.unwrap();
        assert!(!health.reachable, "{what}: {health:?}");
        assert!(health.error.is_some(), "{what}: health says why");
    }
    // Nothing reached the server in plain text or otherwise.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut server.conn().await)
        .await
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}

#[test]
fn tls_files_without_a_tls_url_are_refused_not_sent_in_plain_text() {
    let files = TlsFiles::generate();
    let config = CacheConfig::builder()
        .redis_url("redis://127.0.0.1:1/")
        .redis_tls_ca_file(&files.ca_cert)
        .build()
        .unwrap();
    let err = Cache::new(config).unwrap_err().to_string();
    assert!(err.contains("not `rediss://`"), "{err}");
    let missing = CacheConfig::builder()
        .redis_url("rediss://127.0.0.1:1/")
        .redis_tls_ca_file("/nonexistent/ca.pem")
        .build()
        .unwrap();
    let err = Cache::new(missing).unwrap_err().to_string();
    assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    let half = CacheConfig::builder()
        .redis_url("rediss://127.0.0.1:1/")
        .redis_tls_client_cert(&files.client_cert, &files.client_key);
    let mut half = half.build().unwrap();
    half.redis_tls_key_file = None;
    assert!(half.validate().unwrap_err().to_string().contains("go together"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_runs_under_the_minimal_acl_user() {
    let server = RedisServer::start();
    server.add_acl_user("cache", "s3cret", CACHE_USER_RULES).await;
    let url = format!("redis://cache:s3cret@127.0.0.1:{}/", server.port());
    let config = || {
        CacheConfig::builder()
            .redis_url(&url)
            .namespace("app")
            .build()
            .unwrap()
    };
    two_instances(config).await;

    // The same user through REDIS_USERNAME / REDIS_PASSWORD, the URL carrying none.
    let env = std::collections::HashMap::from([
        ("REDIS_URL", server.url()),
        ("REDIS_USERNAME", "cache".to_owned()),
        ("REDIS_PASSWORD", "s3cret".to_owned()),
        ("CACHE_NAMESPACE", "app".to_owned()),
    ]);
    let from_env = CacheConfig::from_lookup(|k| env.get(k).cloned()).unwrap();
    assert!(
        !format!("{from_env:?}").contains("s3cret"),
        "the password never shows in Debug"
    );
    let c = Cache::new(from_env).unwrap();
    exercise(&c).await;
    let health = c.health().await.redis.unwrap();
    assert!(!health.url.contains("s3cret"));
}

/// A user without `SET` (and without the scripts that store): every store fails with an
/// `Auth` error that is logged and counted; every call is still answered by its function, and
/// reads keep working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_lacking_a_command_gets_counted_errors_and_answered_calls() {
    let server = RedisServer::start();
    let rules: Vec<&str> = CACHE_USER_RULES
        .iter()
        .copied()
        .filter(|r| !matches!(*r, "+set" | "+eval" | "+evalsha"))
        .collect();
    server.add_acl_user("reader", "pw", &rules).await;
    let url = format!("redis://reader:pw@127.0.0.1:{}/", server.port());
    let cache = Cache::new(
        CacheConfig::builder()
            .redis_url(url)
            .namespace("app")
            .build()
            .unwrap(),
    )
    .unwrap();
    let calls = Arc::new(AtomicU32::new(0));
    for i in 0..10u64 {
        let c = calls.clone();
        let v: u64 = cache
            .get_or_insert_with(&format!("query:r:{i}"), None, || async move {
                c.fetch_add(1, Ordering::Relaxed);
                i + 100
            })
            .await;
        assert_eq!(v, i + 100);
    }
    assert_eq!(calls.load(Ordering::Relaxed), 10);
    let err = cache.set("query:direct", &1u8, None).await.unwrap_err();
    match &err {
        CacheError::Backend(b) => assert_eq!(b.kind, cache_core::BackendErrorKind::Auth, "{err}"),
        other => panic!("expected an Auth backend error, got {other}"),
    }
    assert!(cache.stats().await.errors >= 1);
    // Reads are allowed: a value another writer stored is served.
    let admin = Cache::new(
        CacheConfig::builder()
            .redis_url(server.url())
            .namespace("app")
            .build()
            .unwrap(),
    )
    .unwrap();
    admin.set("query:shared", &7u64, None).await.unwrap();
    assert_eq!(cache.get::<u64>("query:shared").await.unwrap(), Some(7));
    // Wrong password: an Auth error, not a panic.
    let bad = format!("redis://reader:wrong@127.0.0.1:{}/", server.port());
    let bad = Cache::new(CacheConfig::builder().redis_url(bad).build().unwrap()).unwrap();
    let err = bad.get::<u64>("query:shared").await.unwrap_err();
    assert!(
        matches!(&err, CacheError::Backend(b) if b.kind == cache_core::BackendErrorKind::Auth),
        "{err}"
    );
}
