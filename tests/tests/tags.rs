//! Cache tags against a real Redis (issue 19): a tag invalidation reaches every entry carrying
//! the tag, on this instance and on another process sharing the Redis, and no other entry; a
//! load that an invalidation overtook never stores a value that reads as fresh; many tags,
//! many entries, awkward tags, a tag invalidated twice, Redis down during an invalidation,
//! fail-safe, namespaces.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::{cache, cache_query, cache_resource, invalidate_cache, Cache, CacheConfig};
use cache_test_harness::TestRedis;
use futures::StreamExt;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::{oneshot, Notify};

mod common;

use common::within_5s;

/// Loads of the tagged functions in this process.
static LOADS: AtomicU64 = AtomicU64::new(0);

/// A value that says which process loaded it and which load it was.
fn loaded(what: &str, id: u64) -> String {
    let n = LOADS.fetch_add(1, Ordering::SeqCst);
    format!("{what}{id}@{}:{n}", std::process::id())
}

#[cache_query(cache = c, tags = ["user:{user_id}", "orders"])]
async fn user_orders(c: &Cache, user_id: u64) -> String {
    loaded("orders", user_id)
}

#[cache_resource(cache = c, key = "users:{id}", tags = ["user:{id}"])]
async fn user(c: &Cache, id: u64) -> String {
    loaded("user", id)
}

#[invalidate_cache(tags = ["user:{id}"], cache = c)]
async fn update_user(c: &Cache, id: u64) -> Result<(), String> {
    let _ = id;
    Ok(())
}

fn config(redis: &TestRedis) -> CacheConfig {
    common::on(redis, CacheConfig::builder()).build().unwrap()
}

/// The other instance: this test binary again, running [`tag_peer`], driven line by line.
struct Peer {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Peer {
    fn start(redis: &TestRedis) -> Peer {
        let (name, value) = redis.urls().env();
        let mut child = tokio::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "tag_peer", "--nocapture"])
            .env("TAGS_PEER", "1")
            .env(name, value)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Peer {
            _child: child,
            stdin,
            lines,
        }
    }

    /// Sends one command; its answer (the text after `PEER `).
    async fn ask(&mut self, cmd: &str) -> String {
        self.stdin.write_all(format!("{cmd}\n").as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
        loop {
            let line = tokio::time::timeout(Duration::from_secs(20), self.lines.next_line())
                .await
                .expect("the peer answers")
                .unwrap()
                .expect("the peer is running");
            if let Some(answer) = line.strip_prefix("PEER ") {
                return answer.to_owned();
            }
        }
    }
}

/// The other process: runs the commands of [`Peer::ask`] on its own cache. Does nothing in an
/// ordinary test run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tag_peer() {
    if std::env::var("TAGS_PEER").is_err() {
        return;
    }
    let c = Cache::new(CacheConfig::from_env().unwrap()).unwrap();
    // Commands are read once this instance hears the others.
    common::until_subscribed(&c, &Cache::new(CacheConfig::from_env().unwrap()).unwrap()).await;
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        let (cmd, arg) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        let answer = match cmd {
            "orders" => user_orders(&c, arg.parse().unwrap()).await,
            "user" => user(&c, arg.parse().unwrap()).await,
            "invalidate" => match c.invalidate_tags(&[arg]).await {
                Ok(()) => "ok".to_owned(),
                Err(e) => format!("err {e}"),
            },
            "loads" => LOADS.load(Ordering::SeqCst).to_string(),
            _ => break,
        };
        println!("PEER {answer}");
    }
}

/// A's view and the peer's of the four tagged entries.
async fn values(c: &Cache) -> [String; 4] {
    [
        user_orders(c, 42).await,
        user(c, 42).await,
        user_orders(c, 43).await,
        user(c, 43).await,
    ]
}

async fn peer_values(p: &mut Peer) -> [String; 4] {
    [
        p.ask("orders 42").await,
        p.ask("user 42").await,
        p.ask("orders 43").await,
        p.ask("user 43").await,
    ]
}

/// Invalidating `user:42` makes every function tagged with it miss on this instance and on
/// another process sharing Redis, while the `user:43` entries keep hitting (in the peer's L1:
/// it does not load them again); and the same from the peer back to this instance. On one
/// server the invalidation is one `SET` and one `PUBLISH`, and no `SCAN`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_invalidation_reaches_both_processes_and_only_its_entries() {
    let redis = TestRedis::start();
    let a = Cache::new(config(&redis)).unwrap();
    common::until_subscribed(&a, &Cache::new(config(&redis)).unwrap()).await;
    let mut peer = Peer::start(&redis);
    let before = values(&a).await;
    assert_eq!(values(&a).await, before, "hits on A");
    assert_eq!(
        peer_values(&mut peer).await,
        before,
        "the peer reads A's entries from Redis"
    );
    assert_eq!(peer.ask("loads").await, "0");

    let calls = |c: &'static str| {
        let r = &redis;
        async move { r.command_calls(c).await }
    };
    let (sets, scans) = (calls("set").await, calls("scan").await);
    update_user(&a, 42).await.unwrap();
    if !redis.is_cluster() {
        assert_eq!(calls("set").await - sets, 1, "one SET for one tag");
    }
    assert_eq!(calls("scan").await, scans, "no scan");

    let after = values(&a).await;
    assert_ne!(after[0], before[0], "orders 42 missed on A");
    assert_ne!(after[1], before[1], "user 42 missed on A");
    assert_eq!(after[2..], before[2..], "43 still hits on A");
    let t0 = Instant::now();
    loop {
        let now = [peer.ask("orders 42").await, peer.ask("user 42").await];
        if now[0] != before[0] && now[1] != before[1] {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "the peer's 42 entries miss within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Whatever the peer served for 42 since then came from A's new entries or its own loads;
    // its 43 entries were never loaded again.
    assert_eq!(
        peer_values(&mut peer).await[2..],
        before[2..],
        "43 still hits on the peer"
    );
    let peer_loads: u64 = peer.ask("loads").await.parse().unwrap();

    // And back: the peer invalidates user:43.
    assert_eq!(peer.ask("invalidate user:43").await, "ok");
    within_5s("A's 43 entries miss", || async {
        let now = values(&a).await;
        now[2] != before[2] && now[3] != before[3]
    })
    .await;
    let now = values(&a).await;
    assert_eq!(now[..2], values(&a).await[..2], "42 hits on A again");
    assert_eq!(
        peer.ask("loads").await.parse::<u64>().unwrap(),
        peer_loads,
        "the peer loads nothing it was not asked for"
    );
    assert!(a.stats().await.tag_invalidations_by_prefix["user"] >= 1);
    assert_eq!(a.stats().await.errors, 0);
}

/// A load that an invalidation overtook returns its value to its caller but never stores one
/// that reads as fresh, whether the invalidation came from this instance or from another
/// process: the next read, here or on a new instance, loads again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_load_overtaken_by_a_tag_invalidation_does_not_read_as_fresh() {
    let redis = TestRedis::start();
    let mut peer = Peer::start(&redis);
    let other = Cache::new(config(&redis)).unwrap();
    for (round, from_peer) in [false, true].into_iter().enumerate() {
        let a = Cache::new(config(&redis)).unwrap();
        // A must hear the peer's invalidation (made while A's load runs).
        common::until_subscribed(&a, &other).await;
        let key = format!("query:race:{round}");
        let started = Arc::new(Notify::new());
        let (release, wait) = oneshot::channel::<()>();
        let (a2, s, k) = (a.clone(), started.clone(), key.clone());
        let task = tokio::spawn(async move {
            a2.get_or_insert_tagged(&k, None, &["race"], || async move {
                s.notify_one();
                wait.await.unwrap();
                "old".to_string()
            })
            .await
        });
        started.notified().await;
        if from_peer {
            assert_eq!(peer.ask("invalidate race").await, "ok");
            // The peer's message reaches A while the load still runs, or after it stored: the
            // entry must read as stale either way (its envelope has the old token).
        } else {
            a.invalidate_tags(&["race"]).await.unwrap();
        }
        release.send(()).unwrap();
        assert_eq!(task.await.unwrap(), "old", "the caller gets its load's value");
        within_5s("A does not serve the overtaken value", || async {
            a.get::<String>(&key).await.unwrap().is_none()
        })
        .await;
        let fresh = Cache::new(config(&redis)).unwrap();
        assert_eq!(
            fresh.get::<String>(&key).await.unwrap(),
            None,
            "from peer: {from_peer}"
        );
        let v = a
            .get_or_insert_tagged(&key, None, &["race"], || async { "new".to_string() })
            .await;
        assert_eq!(v, "new");
        assert_eq!(fresh.get::<String>(&key).await.unwrap().as_deref(), Some("new"));
    }
}

/// 100 tags on one entry, each of them alone invalidates it; one tag on 100 000 entries
/// invalidates all of them with one write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tags_per_entry_and_many_entries_per_tag() {
    let redis = TestRedis::start();
    let a = Cache::new(config(&redis)).unwrap();
    let tags: Vec<String> = (0..100).map(|i| format!("t{i}")).collect();
    let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    let b = Cache::new(config(&redis)).unwrap();
    common::until_subscribed(&b, &a).await;
    for (i, tag) in refs.iter().enumerate().step_by(33) {
        let key = format!("query:many-tags:{i}");
        a.set_tagged(&key, &(i as u64), None, &refs).await.unwrap();
        assert_eq!(b.get::<u64>(&key).await.unwrap(), Some(i as u64));
        a.invalidate_tags(&[tag]).await.unwrap();
        assert_eq!(a.get::<u64>(&key).await.unwrap(), None, "{tag}");
        // B hears of it on the bus.
        within_5s(&format!("{tag} on B"), || async {
            b.get::<u64>(&key).await.unwrap().is_none()
        })
        .await;
    }

    const N: u64 = 100_000;
    let t0 = Instant::now();
    futures::stream::iter(0..N)
        .map(|i| {
            let a = &a;
            async move {
                a.set_tagged(&format!("query:big:{i}"), &i, None, &["big", "other"])
                    .await
                    .unwrap()
            }
        })
        .buffer_unordered(256)
        .collect::<Vec<()>>()
        .await;
    eprintln!("{N} tagged writes: {:?}", t0.elapsed());
    let b = Cache::new(config(&redis)).unwrap();
    let sample: Vec<u64> = (0..N).step_by(997).collect();
    for &i in &sample {
        assert_eq!(b.get::<u64>(&format!("query:big:{i}")).await.unwrap(), Some(i));
    }
    let t0 = Instant::now();
    a.invalidate_tags(&["big"]).await.unwrap();
    eprintln!("invalidating one tag over {N} entries: {:?}", t0.elapsed());
    for &i in &sample {
        let key = format!("query:big:{i}");
        assert_eq!(a.get::<u64>(&key).await.unwrap(), None, "A {key}");
        within_5s("B misses too", || async {
            b.get::<u64>(&key).await.unwrap().is_none()
        })
        .await;
    }
    assert_eq!(a.stats().await.errors, 0);
}

/// Tags are any text: colons, spaces, newlines, glob and brace characters, non-ASCII, empty.
/// Each reaches only itself; a tag invalidated twice invalidates what was written between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn awkward_tags_and_a_tag_invalidated_twice() {
    let redis = TestRedis::start();
    let a = Cache::new(config(&redis)).unwrap();
    let b = Cache::new(config(&redis)).unwrap();
    common::until_subscribed(&b, &a).await;
    let tags = ["user:4", "user:42", "user:*", "a b\nc", "{x}[y]?", "é:ü:𝄞", ""];
    for (i, t) in tags.iter().enumerate() {
        a.set_tagged(&format!("query:awk:{i}"), &i, None, &[t])
            .await
            .unwrap();
    }
    for (i, t) in tags.iter().enumerate() {
        a.invalidate_tags(&[t]).await.unwrap();
        for (j, _) in tags.iter().enumerate() {
            let key = format!("query:awk:{j}");
            let want = (j > i).then_some(j);
            assert_eq!(a.get::<usize>(&key).await.unwrap(), want, "after {t:?}: {key}");
            // B hears of it on the bus: at once on one server, a moment later on a cluster.
            within_5s(&format!("B after {t:?}: {key}"), || async {
                b.get::<usize>(&key).await.unwrap() == want
            })
            .await;
        }
    }
    for round in 0..2 {
        a.set_tagged("query:twice", &round, None, &["twice"])
            .await
            .unwrap();
        assert_eq!(b.get::<i32>("query:twice").await.unwrap(), Some(round));
        a.invalidate_tags(&["twice"]).await.unwrap();
        assert_eq!(a.get::<i32>("query:twice").await.unwrap(), None, "round {round}");
        within_5s("B", || async {
            b.get::<i32>("query:twice").await.unwrap().is_none()
        })
        .await;
    }
    let long = "x".repeat(cache_core::tags::MAX_TAG_LEN + 1);
    assert!(matches!(
        a.invalidate_tags(&[&long]).await,
        Err(cache_core::CacheError::InvalidTag { .. })
    ));
    assert!(a.set_tagged("query:long", &1, None, &[&long]).await.is_err());
}

/// Redis down during an invalidation: `invalidate_tags` returns the error, the macro logs and
/// counts it, and this instance's L1 copies are invalid either way. Fail-safe never serves an
/// entry whose tag was invalidated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_during_an_invalidation_and_fail_safe() {
    let mut redis = TestRedis::single();
    let a = Cache::new(
        common::on(&redis, CacheConfig::builder())
            .breaker_threshold(1000)
            .build()
            .unwrap(),
    )
    .unwrap();
    let v42 = user(&a, 42).await;
    let v43 = user(&a, 43).await;
    assert_eq!(user(&a, 42).await, v42);
    redis.server_mut().stop();
    assert!(a.invalidate_tags(&["user:43"]).await.is_err());
    assert!(
        a.set_tagged("query:down", &1u8, None, &["user:43"])
            .await
            .is_err(),
        "a direct tagged write that could not reach Redis says so"
    );
    let errors = a.stats().await.errors;
    update_user(&a, 42).await.unwrap();
    assert!(a.stats().await.errors > errors, "the macro's failure is counted");
    assert_ne!(user(&a, 42).await, v42, "L1 copy invalid although Redis is down");
    assert_ne!(user(&a, 43).await, v43);
    redis.server_mut().restart();

    // Fail-safe: the stale copy of an invalidated entry is never served.
    let b = Cache::new(config(&redis)).unwrap();
    let fails = Arc::new(AtomicU64::new(0));
    assert_eq!(flaky(&b, 1, fails.clone()).await, Ok(1));
    fails.store(1, Ordering::SeqCst);
    b.invalidate_tags(&["flaky"]).await.unwrap();
    assert!(
        flaky(&b, 1, fails.clone()).await.is_err(),
        "no stale value after the invalidation"
    );
}

#[cache(cache = c, ttl = 1, stale_if_error = "1h", tags = ["flaky"], skip(fails))]
async fn flaky(c: &Cache, id: u64, fails: Arc<AtomicU64>) -> Result<u64, String> {
    if fails.load(Ordering::SeqCst) > 0 {
        return Err("db down".into());
    }
    Ok(id)
}

/// Tag states live under the namespace: two caches with different namespaces on one Redis
/// keep their tags apart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_live_under_the_namespace() {
    let redis = TestRedis::start();
    let ns = |n: &str| {
        Cache::new(
            common::on(&redis, CacheConfig::builder())
                .namespace(n)
                .build()
                .unwrap(),
        )
        .unwrap()
    };
    let (a, b) = (ns("app-a"), ns("app-b"));
    a.set_tagged("query:x", &1u8, None, &["t"]).await.unwrap();
    b.set_tagged("query:x", &2u8, None, &["t"]).await.unwrap();
    a.invalidate_tags(&["t"]).await.unwrap();
    assert_eq!(a.get::<u8>("query:x").await.unwrap(), None);
    assert_eq!(b.get::<u8>("query:x").await.unwrap(), Some(2));
    let b2 = ns("app-b");
    assert_eq!(b2.get::<u8>("query:x").await.unwrap(), Some(2), "from Redis");
}

/// Without L1 an instance still hears tag invalidations (the bus runs for them), and without
/// pub/sub it reads the tag's token on every remote read: either way an entry whose tag another
/// instance invalidated reads as a miss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_l1_or_without_pubsub_a_tag_invalidation_still_misses() {
    let redis = TestRedis::start();
    let a = Cache::new(config(&redis)).unwrap();
    let with = |l1: bool, bus: bool| {
        let c = common::on(&redis, CacheConfig::builder())
            .l1_enabled(l1)
            .l1_invalidation(bus);
        Cache::new(c.build().unwrap()).unwrap()
    };
    let (no_l1, no_bus) = (with(false, true), with(true, false));
    for round in 0..3u32 {
        let key = format!("query:quiet:{round}");
        a.set_tagged(&key, &round, None, &["quiet"]).await.unwrap();
        // Both learn the tag's token on this read.
        assert_eq!(no_l1.get::<u32>(&key).await.unwrap(), Some(round));
        assert_eq!(no_bus.get::<u32>(&key).await.unwrap(), Some(round));
        a.invalidate_tags(&["quiet"]).await.unwrap();
        within_5s("no L1: the message arrives", || async {
            no_l1.get::<u32>(&key).await.unwrap().is_none()
        })
        .await;
        // Without a bus its L1 copy lives up to `l1_ttl`, as for keys; Redis's copy is stale.
        assert_eq!(with(true, false).get::<u32>(&key).await.unwrap(), None);
    }
}

/// A tag record that Redis evicts (or loses in a failover) must not make entries written before
/// the tag's invalidation fresh again: an entry never carries the "absent" token, because a tag
/// gets a record before anything is stamped with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_tag_record_does_not_revive_old_entries() {
    let redis = TestRedis::start();
    let a = Cache::new(config(&redis)).unwrap();
    a.set_tagged("query:evicted", &1u8, None, &["evict"])
        .await
        .unwrap();
    a.invalidate_tags(&["evict"]).await.unwrap();
    let record = "tiered-cache:tag:evict"; // the record, as the README names it
    let removed: u64 = redis::cmd("DEL")
        .arg(record)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    assert_eq!(removed, 1, "the record existed");
    let b = Cache::new(config(&redis)).unwrap();
    assert_eq!(b.get::<u8>("query:evicted").await.unwrap(), None);
}
