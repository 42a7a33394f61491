//! The topology harness (TLS, ACL, Sentinel, Cluster) checked with the raw `redis` crate.
//! Each test starts its own processes; all are killed on drop.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::time::{Duration, Instant};

use cache_test_harness::{RedisCluster, RedisServer, SentinelGroup, SentinelOptions, TlsFiles};
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{AsyncCommands, IntoConnectionInfo, RedisResult};

const BOUND: Duration = Duration::from_secs(10);

/// Connects and runs PING, within 10 s.
async fn ping(client: &redis::Client) -> RedisResult<()> {
    let attempt = async {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .map(drop)
    };
    let result = tokio::time::timeout(BOUND, attempt)
        .await
        .expect("TLS connect attempt hung");
    if let Err(e) = &result {
        eprintln!("connection refused as expected? {e}");
    }
    result
}

fn pem(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).expect("read PEM")
}

#[tokio::test]
async fn tls_server_accepts_trusted_clients_only() {
    let started = Instant::now();
    let files = TlsFiles::generate();
    let server = RedisServer::start_tls(&files, false);
    assert!(server.tls_url().starts_with("rediss://127.0.0.1:"));

    let client = redis::Client::build_with_tls(server.tls_url(), files.certificates(false)).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = conn.set("tls:k", "v").await.unwrap();
    let got: String = conn.get("tls:k").await.unwrap();
    assert_eq!(got, "v");
    // The plain port serves the same data (admin checks).
    let plain: String = server.conn().await.get("tls:k").await.unwrap();
    assert_eq!(plain, "v");

    // A client trusting only the unrelated CA rejects the server's certificate.
    let wrong_root = redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(pem(&files.other_ca_cert)),
    };
    let client = redis::Client::build_with_tls(server.tls_url(), wrong_root).unwrap();
    assert!(
        ping(&client).await.is_err(),
        "a client trusting another CA must not connect"
    );

    // Mutual TLS: no client certificate, or one from the other CA, is refused.
    let mtls = RedisServer::start_tls(&files, true);
    let client = redis::Client::build_with_tls(mtls.tls_url(), files.certificates(false)).unwrap();
    assert!(
        ping(&client).await.is_err(),
        "mTLS server accepted a client without certificate"
    );
    let other_client = redis::TlsCertificates {
        client_tls: Some(redis::ClientTlsConfig {
            client_cert: pem(&files.other_client_cert),
            client_key: pem(&files.other_client_key),
        }),
        root_cert: Some(pem(&files.ca_cert)),
    };
    let client = redis::Client::build_with_tls(mtls.tls_url(), other_client).unwrap();
    assert!(
        ping(&client).await.is_err(),
        "mTLS server accepted a certificate of another CA"
    );
    let client = redis::Client::build_with_tls(mtls.tls_url(), files.certificates(true)).unwrap();
    ping(&client)
        .await
        .expect("mTLS with the right client certificate");

    // restart() keeps both ports.
    let mut mtls = mtls;
    let tls_port = mtls.tls_port();
    mtls.restart();
    assert_eq!(mtls.tls_port(), tls_port);
    ping(&client).await.expect("mTLS after restart");
    eprintln!("tls test: {:?}", started.elapsed());
}

#[tokio::test]
async fn acl_user_is_limited_to_its_keys() {
    let server = RedisServer::start();
    server
        .add_acl_user("app", "s3cret", &["~app:*", "&app:*", "+@all"])
        .await;
    let client = redis::Client::open(format!("redis://app:s3cret@127.0.0.1:{}/", server.port())).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = conn.set("app:x", 1).await.unwrap();
    let err = conn.set::<_, _, ()>("other:x", 1).await.unwrap_err();
    assert_eq!(err.code(), Some("NOPERM"), "expected NOPERM, got {err}");
    let wrong = redis::Client::open(format!("redis://app:nope@127.0.0.1:{}/", server.port())).unwrap();
    assert!(wrong.get_multiplexed_async_connection().await.is_err());
}

#[tokio::test]
async fn sentinel_fails_over_to_the_replica() {
    let started = Instant::now();
    let mut group = SentinelGroup::start("mymaster");
    eprintln!("sentinel group up in {:?}", started.elapsed());
    let mut sentinel = SentinelClient::build(
        group.sentinel_urls(),
        group.master_name(),
        None,
        SentinelServerType::Master,
    )
    .unwrap();
    let mut conn = sentinel.get_async_connection().await.unwrap();
    let _: () = conn.set("s:k", "before").await.unwrap();
    // Acknowledged by the replica, so it survives the failover.
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(2000)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(acked, 1);

    let old = group.master_port().await;
    let killed_at = Instant::now();
    assert_eq!(group.kill_primary(), old);
    let new = group.wait_for_failover(old, Duration::from_secs(20)).await;
    eprintln!("sentinel failover {old} -> {new} in {:?}", killed_at.elapsed());
    assert_ne!(new, old);
    assert!(group.server_on(new).is_some_and(RedisServer::is_running));

    let mut conn = sentinel.get_async_connection().await.unwrap();
    let got: String = conn.get("s:k").await.unwrap();
    assert_eq!(got, "before");
    let _: () = conn.set("s:k", "after").await.unwrap();
    eprintln!("sentinel test: {:?}", started.elapsed());
}

#[tokio::test]
async fn sentinel_group_with_tls_and_password() {
    let started = Instant::now();
    let files = TlsFiles::generate();
    let options = SentinelOptions {
        password: Some("pw".into()),
        tls: Some(files.server_tls(true)),
        ..SentinelOptions::default()
    };
    let mut group = SentinelGroup::start_with_options("tlsmaster", options);
    let sentinels = group
        .sentinel_tls_urls()
        .into_iter()
        .map(|u| u.into_connection_info().unwrap().addr().clone());
    let mut sentinel = SentinelClientBuilder::new(sentinels, group.master_name(), SentinelServerType::Master)
        .unwrap()
        .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure)
        .set_client_to_sentinel_certificates(files.certificates(true))
        .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
        .set_client_to_redis_certificates(files.certificates(true))
        .set_client_to_redis_password("pw")
        .build()
        .unwrap();
    let mut conn = sentinel.get_async_connection().await.unwrap();
    let _: () = conn.set("t:k", "v").await.unwrap();
    let port = group.master_port().await;
    assert_eq!(group.server_on(port).and_then(RedisServer::tls_port), Some(port));
    // Failover over TLS links: sentinels reach the nodes and each other on TLS ports.
    let killed_at = Instant::now();
    let old = group.kill_primary();
    let new = group.wait_for_failover(old, Duration::from_secs(20)).await;
    eprintln!(
        "tls sentinel failover {old} -> {new} in {:?}",
        killed_at.elapsed()
    );
    let mut conn = sentinel.get_async_connection().await.unwrap();
    let _: () = conn.set("t:k", "after").await.unwrap();
    eprintln!("tls sentinel test: {:?}", started.elapsed());
}

#[tokio::test]
async fn cluster_serves_fails_over_and_migrates() {
    let started = Instant::now();
    let mut cluster = RedisCluster::start(3, 1);
    eprintln!("cluster 3+3 up in {:?}", started.elapsed());
    let first = cluster.nodes()[0].port();
    for key in ["k1", "foo", "{user1}.a", "x{}y", "{a}b{c}"] {
        let slot: u16 = redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut cluster.nodes()[0].conn().await)
            .await
            .unwrap_or_else(|e| panic!("CLUSTER KEYSLOT {key} on {first}: {e}"));
        assert_eq!(RedisCluster::slot_of(key), slot, "slot of {key}");
    }
    assert_eq!(cluster.primaries().await.len(), 3);

    let client = redis::cluster::ClusterClient::builder(cluster.seed_urls())
        .connection_timeout(Duration::from_secs(1))
        .response_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut conn = client.get_async_connection().await.unwrap();
    for i in 0..100 {
        let _: () = conn.set(format!("k{i}"), i).await.unwrap();
    }
    for i in 0..100 {
        let v: i64 = conn.get(format!("k{i}")).await.unwrap();
        assert_eq!(v, i);
    }
    assert!(cluster.sum_command_calls("set").await >= 100);

    let victim = cluster.primary_for_slot(RedisCluster::slot_of("k1")).await;
    let killed_at = Instant::now();
    cluster.kill_node(victim);
    cluster.wait_for_failover(victim, Duration::from_secs(20)).await;
    eprintln!("cluster failover of {victim} in {:?}", killed_at.elapsed());
    let promoted = cluster.primary_for_slot(RedisCluster::slot_of("k1")).await;
    assert_ne!(promoted, victim);
    // The client notices the dead node on its next calls; give it a bounded number of tries.
    let deadline = Instant::now() + BOUND;
    loop {
        match conn.set::<_, _, ()>("k1", "after").await {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("SET after failover: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cluster connection did not recover after failover: {e}"),
        }
    }
    let v: String = conn.get("k1").await.unwrap();
    assert_eq!(v, "after");
    eprintln!("cluster serving again {:?} after the kill", killed_at.elapsed());

    // Move a slot with a key to another primary; the client follows MOVED.
    let key = "k2";
    let slot = RedisCluster::slot_of(key);
    let owner = cluster.primary_for_slot(slot).await;
    let target = *cluster.primaries().await.iter().find(|&&p| p != owner).unwrap();
    cluster.migrate_slot(slot, target).await;
    assert_eq!(cluster.primary_for_slot(slot).await, target);
    let v: i64 = conn.get(key).await.unwrap();
    assert_eq!(v, 2);
    assert!(cluster.command_calls(target, "get").await >= 1);

    // Mid-migration: a new key in a migrating slot lands on the target through ASK.
    let key = "k3";
    let slot = RedisCluster::slot_of(key);
    let owner = cluster.primary_for_slot(slot).await;
    let target = *cluster.primaries().await.iter().find(|&&p| p != owner).unwrap();
    let source = cluster.begin_migration(slot, target).await;
    assert_eq!(source, owner);
    let _: () = conn.set("{k3}new", "asked").await.unwrap();
    let v: String = conn.get("{k3}new").await.unwrap();
    assert_eq!(v, "asked");
    let v: i64 = conn.get(key).await.unwrap();
    assert_eq!(v, 3);
    cluster.finish_migration(slot, target).await;
    assert_eq!(cluster.primary_for_slot(slot).await, target);
    let v: String = conn.get("{k3}new").await.unwrap();
    assert_eq!(v, "asked");
    eprintln!("cluster test: {:?}", started.elapsed());
}
