//! The engine through Redis Sentinel: it finds the primary by asking the sentinels, and follows
//! a failover (primary killed, replica promoted) under load with no failed call and no wrong
//! value.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use cache_core::{Cache, CacheConfig};
use cache_test_harness::{SentinelGroup, SentinelOptions, TlsFiles};

mod common;
use common::{failover_under_load, two_instances};

fn config(group: &SentinelGroup) -> CacheConfig {
    CacheConfig::builder()
        .redis_sentinel(group.sentinel_urls(), group.master_name())
        .namespace("app")
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_works_through_sentinel() {
    let group = SentinelGroup::start("cache-primary");
    let (a, _b) = two_instances(|| config(&group)).await;
    let url = a.health().await.redis.unwrap().url;
    assert!(url.starts_with("sentinel://cache-primary@"), "{url}");
}

/// 64 tasks call a cached function (L1 off: every call reads Redis) while the primary is
/// SIGKILLed. Every call is answered with its own value; once the sentinels promote the
/// replica, the cache reads Redis again without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_under_64_tasks_fails_no_call() {
    let mut group = SentinelGroup::start("cache-primary");
    let cache = Cache::new(
        CacheConfig::builder()
            .redis_sentinel(group.sentinel_urls(), group.master_name())
            .l1_enabled(false)
            .command_timeout(Duration::from_millis(250))
            .build()
            .unwrap(),
    )
    .unwrap();
    let nodes = &mut group;
    failover_under_load("sentinel failover", &cache, || async move {
        let old = nodes.kill_primary();
        let new = nodes.wait_for_failover(old, Duration::from_secs(30)).await;
        format!("primary {old} killed, sentinels named {new}")
    })
    .await;
}

/// Sentinels and data nodes over mutual TLS, the data nodes with a password the sentinels do
/// not have (they take their URLs' credentials: none here): the engine works, and follows a
/// failover over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_works_through_sentinel_over_tls_with_a_password() {
    let files = TlsFiles::generate();
    let mut group = SentinelGroup::start_with_options(
        "secure-primary",
        SentinelOptions {
            password: Some("node-pw".into()),
            tls: Some(files.server_tls(true)),
            ..SentinelOptions::default()
        },
    );
    let config = || {
        CacheConfig::builder()
            .redis_sentinel(group.sentinel_tls_urls(), group.master_name())
            .redis_credentials("default", "node-pw")
            .redis_tls_ca_file(&files.ca_cert)
            .redis_tls_client_cert(&files.client_cert, &files.client_key)
            .namespace("app")
            // Two TLS handshakes before the first command (the sentinel's, the primary's):
            // on the 2-core machine under a concurrent build they once took over the default
            // 1 s. This test is of function, not of speed.
            .connect_timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    };
    let (a, b) = two_instances(config).await;
    drop(b);
    let killed_at = Instant::now();
    let old = group.kill_primary();
    group.wait_for_failover(old, Duration::from_secs(30)).await;
    let v: u64 = loop {
        // Fresh keys: the function answers during the outage, Redis again after it.
        a.set("query:after", &9u64, None).await.ok();
        if let Ok(Some(v)) = a.get::<u64>("query:after").await {
            break v;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(30),
            "no Redis after the failover"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(v, 9);
    // A wrong data-node password is a counted error, and calls are answered.
    let wrong = Cache::new(
        CacheConfig::builder()
            .redis_sentinel(group.sentinel_tls_urls(), group.master_name())
            .redis_credentials("default", "wrong")
            .redis_tls_ca_file(&files.ca_cert)
            .redis_tls_client_cert(&files.client_cert, &files.client_key)
            .build()
            .unwrap(),
    )
    .unwrap();
    let v: u64 = wrong.get_or_insert_with("query:w", None, || async { 5 }).await;
    assert_eq!(v, 5);
    assert!(wrong.stats().await.errors > 0);
}
