//! The engine on a Redis Cluster (3 primaries + 3 replicas, private processes): every call
//! across slots, pattern invalidation and clear on every primary (and a clear error naming a
//! primary that could not be reached), cross-instance L1 invalidation, the stale-set guard,
//! and, under 64 tasks, a primary killed and a slot migrated with live keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::{Cache, CacheConfig};
use cache_test_harness::RedisCluster;
use tokio::sync::{oneshot, Notify};

mod common;
use common::{failover_under_load, l2_hits_again, two_instances, value_of, Load};

fn builder(cluster: &RedisCluster) -> cache_core::CacheConfigBuilder {
    CacheConfig::builder().redis_cluster_urls(cluster.seed_urls())
}

fn cache(cluster: &RedisCluster) -> Cache {
    Cache::new(builder(cluster).namespace("app").build().unwrap()).unwrap()
}

/// Keys of the cache's namespace on each live primary.
async fn keys_per_primary(cluster: &RedisCluster, pattern: &str) -> Vec<(u16, usize)> {
    let mut out = Vec::new();
    for port in cluster.primaries().await {
        let mut c = cluster.node(port).unwrap().conn().await;
        let keys: Vec<String> = redis::cmd("KEYS").arg(pattern).query_async(&mut c).await.unwrap();
        out.push((port, keys.len()));
    }
    out
}

/// Encryption and key obfuscation on a cluster (issue 21): every call, batches and pub/sub
/// included, with names hashed (slots follow the hashed names, markers beside them) and values
/// sealed. Two readable segments keep `exercise`'s `query:t:*` a prefix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_works_on_a_cluster_with_encryption_and_obfuscated_keys() {
    let cluster = RedisCluster::start(3, 1);
    let config = || {
        let mut c = builder(&cluster)
            .namespace("app")
            .encryption_keys("k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")
            .key_secret("cluster-secret-of-16-bytes+")
            .build()
            .unwrap();
        c.security.readable_segments = 2;
        c
    };
    let (a, b) = two_instances(config).await;
    let items: Vec<(String, u64)> = (0..300u64)
        .map(|i| (format!("query:c:user{i}@example.com"), value_of(i)))
        .collect();
    a.mset(&items, None).await.unwrap();
    let keys: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
    let got = b.mget::<u64, _>(&keys).await.unwrap();
    assert_eq!(got, items.iter().map(|(_, v)| Some(*v)).collect::<Vec<_>>());
    let spread = keys_per_primary(&cluster, "app:query:c:*").await;
    assert!(spread.iter().all(|(_, n)| *n > 0), "{spread:?}");
    assert_eq!(spread.iter().map(|(_, n)| n).sum::<usize>(), 300, "{spread:?}");
    assert_eq!(
        keys_per_primary(&cluster, "*example*")
            .await
            .iter()
            .map(|(_, n)| n)
            .sum::<usize>(),
        0
    );
    assert_eq!(a.invalidate_pattern("query:c:*").await.unwrap(), 300);
    assert_eq!(a.stats().await.errors, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_works_on_a_cluster() {
    let cluster = RedisCluster::start(3, 1);
    let (a, b) = two_instances(|| builder(&cluster).namespace("app").build().unwrap()).await;
    assert!(a.health().await.redis.unwrap().url.starts_with("cluster://"));

    // 300 keys land on all three primaries; one batch read returns each its own value.
    let items: Vec<(String, u64)> = (0..300u64)
        .map(|i| (format!("query:c:{i}"), value_of(i)))
        .collect();
    a.mset(&items, None).await.unwrap();
    let keys: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
    let got = b.mget::<u64, _>(&keys).await.unwrap();
    assert_eq!(got, items.iter().map(|(_, v)| Some(*v)).collect::<Vec<_>>());
    let spread = keys_per_primary(&cluster, "app:query:c:*").await;
    assert!(spread.iter().all(|(_, n)| *n > 0), "{spread:?}");

    // Batch get-or-compute: present keys read, missing ones computed and stored, once each.
    let calls = AtomicU64::new(0);
    let wanted: Vec<String> = (250..350u64).map(|i| format!("query:c:{i}")).collect();
    let values = a
        .get_many_or_compute::<u64, std::convert::Infallible, _, _, _>(&wanted, None, |missing| {
            calls.fetch_add(missing.len() as u64, Ordering::Relaxed);
            let out: std::collections::HashMap<String, u64> = missing
                .iter()
                .map(|k| {
                    (
                        k.clone(),
                        value_of(k.rsplit(':').next().unwrap().parse().unwrap()),
                    )
                })
                .collect();
            async move { Ok(out) }
        })
        .await
        .unwrap();
    assert_eq!(
        calls.load(Ordering::Relaxed),
        50,
        "only the 50 missing keys computed"
    );
    for (k, v) in wanted.iter().zip(&values) {
        let i: u64 = k.rsplit(':').next().unwrap().parse().unwrap();
        assert_eq!(*v, Some(value_of(i)), "{k}");
    }

    // Pattern invalidation reaches every primary and deletes only the cache's own entries.
    // A foreign key in the namespace: left alone.
    let foreign = cluster
        .primary_for_slot(RedisCluster::slot_of("app:query:c:foreign"))
        .await;
    let _: () = redis::cmd("SET")
        .arg("app:query:c:foreign")
        .arg("not the cache's")
        .query_async(&mut cluster.node(foreign).unwrap().conn().await)
        .await
        .unwrap();
    let removed = a.invalidate_pattern("query:c:*").await.unwrap();
    assert_eq!(removed, 350);
    let left = keys_per_primary(&cluster, "app:query:c:*").await;
    assert_eq!(left.iter().map(|(_, n)| n).sum::<usize>(), 1, "{left:?}");
    // B drops its L1 copies when the notice arrives (pub/sub: soon, not at once).
    let t0 = Instant::now();
    while b.mget::<u64, _>(&keys[..10]).await.unwrap() != vec![None; 10] {
        assert!(t0.elapsed() < Duration::from_secs(5), "B kept its L1 copies");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A primary that does not answer (clients paused) does not stop the others: their entries
/// are deleted and the error names the one not reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_pattern_invalidation_names_the_primary_not_reached() {
    let cluster = RedisCluster::start(3, 1);
    let a = Cache::new(
        builder(&cluster)
            .namespace("app")
            .command_timeout(Duration::from_millis(200))
            .build()
            .unwrap(),
    )
    .unwrap();
    let items: Vec<(String, u64)> = (0..60u64).map(|i| (format!("query:p:{i}"), i)).collect();
    a.mset(&items, None).await.unwrap();
    // Not the primary of the invalidation epoch, which a pattern invalidation must bump first
    // (without it no load in flight could be stopped from storing: that failure is all-or-nothing).
    let epoch_owner = cluster
        .primary_for_slot(RedisCluster::slot_of("app:tiered-cache:inv-epoch"))
        .await;
    let primaries = cluster.primaries().await;
    let paused = *primaries.iter().find(|p| **p != epoch_owner).unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(2000)
        .arg("ALL")
        .query_async(&mut cluster.node(paused).unwrap().conn().await)
        .await
        .unwrap();
    let err = a.invalidate_pattern("query:p:*").await.unwrap_err().to_string();
    assert!(err.contains(&format!(":{paused}")), "{err}");
    assert!(err.contains("reached 2 of 3 primaries"), "{err}");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let left = keys_per_primary(&cluster, "app:query:p:*").await;
    for (port, n) in left {
        if port == paused {
            assert!(n > 0, "the paused primary kept its entries");
        } else {
            assert_eq!(n, 0, "primary {port} was cleaned");
        }
    }
}

/// A load overtaken by an invalidation (of its key, of a pattern, or a clear) is not stored:
/// the stale-set guard on a cluster, where the epoch is checked after the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalidation_during_a_load_wins_on_a_cluster() {
    let cluster = RedisCluster::start(3, 1);
    for kind in ["key", "pattern", "clear"] {
        let c = Cache::new(builder(&cluster).l1_enabled(false).build().unwrap()).unwrap();
        let version = Arc::new(AtomicU64::new(1));
        let started = Arc::new(Notify::new());
        let (release, wait) = oneshot::channel::<()>();
        let task = {
            let (c, v, s) = (c.clone(), version.clone(), started.clone());
            tokio::spawn(async move {
                c.get_or_insert_with("query:row:1", None, || async move {
                    let read = v.load(Ordering::SeqCst);
                    s.notify_one();
                    wait.await.unwrap();
                    read
                })
                .await
            })
        };
        started.notified().await;
        version.store(2, Ordering::SeqCst);
        match kind {
            "key" => drop(c.delete("query:row:1").await.unwrap()),
            "pattern" => drop(c.invalidate_pattern("query:row:*").await.unwrap()),
            _ => drop(c.clear().await.unwrap()),
        }
        release.send(()).unwrap();
        assert_eq!(task.await.unwrap(), 1);
        assert_eq!(
            c.get::<u64>("query:row:1").await.unwrap(),
            None,
            "{kind}: the stale load was stored"
        );
        assert!(c.stats().await.stale_discarded >= 1, "{kind}");
    }
}

/// 64 tasks call a cached function (L1 off) while the primary owning some of their keys is
/// SIGKILLed: every call is answered with its own value, and L2 hits resume once its replica
/// is promoted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_failover_under_64_tasks_fails_no_call() {
    let mut cluster = RedisCluster::start(3, 1);
    let c = Cache::new(
        builder(&cluster)
            .l1_enabled(false)
            .command_timeout(Duration::from_millis(250))
            .build()
            .unwrap(),
    )
    .unwrap();
    let victim = cluster
        .primary_for_slot(RedisCluster::slot_of("query:load:1"))
        .await;
    let nodes = &mut cluster;
    failover_under_load("cluster failover", &c, || async move {
        nodes.kill_node(victim);
        nodes.wait_for_failover(victim, Duration::from_secs(30)).await;
        format!("primary {victim} killed")
    })
    .await;
    let after = c.get::<u64>("query:load:1").await.unwrap();
    assert!(after.is_none() || after == Some(value_of(1)));
}

/// 64 tasks keep reading while slots holding live keys move to another primary (first left
/// half-migrated, so reads get `ASK`, then finished, so they get `MOVED`): no wrong value, and
/// the moved keys are read from their new primary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_migrating_under_64_tasks_give_no_wrong_value() {
    let cluster = RedisCluster::start(3, 1);
    let c = Cache::new(builder(&cluster).l1_enabled(false).build().unwrap()).unwrap();
    let load = Load::start(&c, 64, 500);
    l2_hits_again(&c, Instant::now(), Duration::from_secs(10)).await;
    let primaries = cluster.primaries().await;
    let mut moved = Vec::new();
    for i in [1u64, 2, 3, 4] {
        let slot = RedisCluster::slot_of(&format!("query:load:{i}"));
        let from = cluster.primary_for_slot(slot).await;
        let to = *primaries.iter().find(|p| **p != from).unwrap();
        cluster.begin_migration(slot, to).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        cluster.finish_migration(slot, to).await;
        moved.push((slot, from, to));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let report = load.stop().await;
    eprintln!(
        "slot migration: {moved:?}; {} calls, {} failed, {} wrong",
        report.calls, report.failed, report.wrong
    );
    assert_eq!(report.failed, 0);
    assert_eq!(report.wrong, 0);
    for i in [1u64, 2, 3, 4] {
        let key = format!("query:load:{i}");
        let (slot, _, to) = moved[i as usize - 1];
        assert_eq!(cluster.primary_for_slot(slot).await, to);
        assert_eq!(
            c.get::<u64>(&key).await.unwrap(),
            Some(value_of(i)),
            "{key} read after its move"
        );
    }
}

/// A batch read (P3) over keys of every primary: one `MGET` per slot touched, which the client
/// writes back to back to each primary's connection (counted with `INFO commandstats` and
/// printed); right values before and after one of the slots moves (`MOVED` followed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_read_spans_the_primaries_and_follows_a_moved_slot() {
    let cluster = RedisCluster::start(3, 1);
    let writer = cache(&cluster);
    let items: Vec<(String, u64)> = (0..100u64)
        .map(|i| (format!("query:b:{i}"), value_of(i)))
        .collect();
    writer.mset(&items, None).await.unwrap();
    let keys: Vec<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
    let want: Vec<Option<u64>> = items.iter().map(|(_, v)| Some(*v)).collect();
    let primaries = cluster.primaries().await;
    let mgets = || async {
        let mut per = Vec::new();
        for p in &primaries {
            per.push(cluster.command_calls(*p, "mget").await);
        }
        per
    };
    let reader = Cache::new(
        builder(&cluster)
            .namespace("app")
            .l1_enabled(false)
            .build()
            .unwrap(),
    )
    .unwrap();
    let before = mgets().await;
    assert_eq!(reader.mget::<u64, _>(&keys).await.unwrap(), want);
    let per: Vec<u64> = mgets().await.iter().zip(&before).map(|(a, b)| a - b).collect();
    eprintln!("one batch of 100 keys: MGETs per primary {per:?} (one per slot touched)");
    assert!(
        per.iter().all(|n| *n > 0),
        "the batch reached every primary: {per:?}"
    );

    let slot = RedisCluster::slot_of("app:query:b:7");
    let from = cluster.primary_for_slot(slot).await;
    let to = *primaries.iter().find(|p| **p != from).unwrap();
    cluster.migrate_slot(slot, to).await;
    assert_eq!(
        reader.mget::<u64, _>(&keys).await.unwrap(),
        want,
        "after the move"
    );
    assert_eq!(reader.mget::<u64, _>(&keys).await.unwrap(), want, "and again");
}

/// `redis_read_from_replicas`: single reads reach replicas (counted on the replica nodes;
/// how many depends on which replicas the client has connected to), and without it none do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_from_replicas_when_asked() {
    let cluster = RedisCluster::start(3, 1);
    let writer = cache(&cluster);
    let items: Vec<(String, u64)> = (0..50u64)
        .map(|i| (format!("query:r:{i}"), value_of(i)))
        .collect();
    writer.mset(&items, None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await; // replication is asynchronous
    let primaries = cluster.primaries().await;
    let replicas: Vec<u16> = cluster
        .nodes()
        .iter()
        .map(|n| n.port())
        .filter(|p| !primaries.contains(p))
        .collect();
    let replica_gets = || async {
        let mut n = 0;
        for r in &replicas {
            n += cluster.command_calls(*r, "get").await;
        }
        n
    };
    for from_replicas in [false, true] {
        let reader = Cache::new(
            builder(&cluster)
                .namespace("app")
                .l1_enabled(false)
                .redis_read_from_replicas(from_replicas)
                .build()
                .unwrap(),
        )
        .unwrap();
        let before = replica_gets().await;
        for (k, v) in &items {
            assert_eq!(reader.get::<u64>(k).await.unwrap(), Some(*v), "{k}");
        }
        let served = replica_gets().await - before;
        eprintln!("read_from_replicas {from_replicas}: replicas served {served} of 50 reads");
        if from_replicas {
            assert!(served > 0, "no read reached a replica");
        } else {
            assert_eq!(served, 0, "a read reached a replica without the option");
        }
    }
}
