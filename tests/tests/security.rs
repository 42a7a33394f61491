//! Issue 21 against a real Redis: encryption at rest (nothing readable in Redis or on disk;
//! tampered, swapped, truncated, unencrypted and unknown-key values are counted misses that
//! the next store overwrites; keys rotate without a flush) and key obfuscation (no argument
//! text in key names, the slowlog or pub/sub; the same call hits across two processes sharing
//! the secret; patterns that cannot work are errors). Access control: `access_control.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cache_core::{cache_query, cache_resource, Cache, CacheConfig, CacheError};
use cache_test_harness::RedisServer;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

mod common;

const K1: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const K2: &str = "k2:ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";
const SECRET: &str = "test-secret-of-at-least-16-bytes";
/// Text that must never appear in Redis in clear.
const MARKER: &str = "MARKER-7f3a";
const EMAIL: &str = "alice@example.com";

static LOADS: AtomicU64 = AtomicU64::new(0);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Profile {
    email: String,
    note: String,
}

#[cache_resource(cache = c, key = "users:{email}", tags = ["user:{email}"])]
async fn profile(c: &Cache, email: &str) -> Profile {
    LOADS.fetch_add(1, Ordering::SeqCst);
    Profile {
        email: email.to_owned(),
        note: format!("{MARKER} {}", "x".repeat(2000)),
    }
}

#[cache_query(cache = c)]
async fn orders_of(c: &Cache, email: &str, page: u32) -> Vec<String> {
    LOADS.fetch_add(1, Ordering::SeqCst);
    vec![format!("{MARKER}:{email}:{page}")]
}

fn builder(redis: &RedisServer) -> cache_core::CacheConfigBuilder {
    CacheConfig::builder().redis_url(redis.url())
}

fn encrypted(redis: &RedisServer, keys: &str) -> Cache {
    Cache::new(builder(redis).encryption_keys(keys).build().unwrap()).unwrap()
}

/// Every string key in Redis with its value.
async fn entries(redis: &RedisServer) -> Vec<(String, Vec<u8>)> {
    let mut conn = redis.conn().await;
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(&mut conn).await.unwrap();
    let mut out = Vec::new();
    for k in keys {
        if let Ok(Some(v)) = redis::cmd("GET")
            .arg(&k)
            .query_async::<Option<Vec<u8>>>(&mut conn)
            .await
        {
            out.push((k, v));
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle.as_bytes())
}

async fn raw_get(redis: &RedisServer, key: &str) -> Vec<u8> {
    redis::cmd("GET")
        .arg(key)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap()
}

async fn raw_set(redis: &RedisServer, key: &str, value: &[u8]) {
    let _: () = redis::cmd("SET")
        .arg(key)
        .arg(value)
        .arg("KEEPTTL")
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_value_in_redis_or_on_disk_shows_its_text_and_every_one_reads_back() {
    let redis = RedisServer::start();
    let dir = tempfile_dir("enc-l3");
    let config = || {
        builder(&redis)
            .encryption_keys(K1)
            .l3(&dir, 64 << 20)
            .build()
            .unwrap()
    };
    let a = Cache::new(config()).unwrap();
    let big = format!("{MARKER} {}", "y".repeat(5000));
    a.set("query:small", &MARKER.to_string(), None).await.unwrap();
    a.set("analysis:big", &big, None).await.unwrap();
    a.set_tagged("query:tagged", &MARKER.to_string(), None, &[MARKER])
        .await
        .unwrap();
    profile(&a, EMAIL).await;
    orders_of(&a, EMAIL, 1).await;
    a.flush_disk().await;

    let stored = entries(&redis).await;
    assert!(stored.len() >= 5, "{stored:?}");
    for (k, v) in &stored {
        assert!(!contains(v, MARKER), "{k} holds the marker in clear");
    }
    for file in files_under(&dir) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !contains(&bytes, "y".repeat(64).as_str()),
            "{} holds the value in clear",
            file.display()
        );
        assert!(
            !contains(&bytes, MARKER),
            "{} holds the marker in clear",
            file.display()
        );
    }
    drop(a);

    // A new instance (empty L1) reads every value back through decryption.
    let b = encrypted(&redis, K1);
    assert_eq!(
        b.get::<String>("query:small").await.unwrap().as_deref(),
        Some(MARKER)
    );
    assert_eq!(b.get::<String>("analysis:big").await.unwrap(), Some(big));
    assert_eq!(
        b.get::<String>("query:tagged").await.unwrap().as_deref(),
        Some(MARKER)
    );
    let loads = LOADS.load(Ordering::SeqCst);
    assert_eq!(profile(&b, EMAIL).await.email, EMAIL);
    assert_eq!(
        LOADS.load(Ordering::SeqCst),
        loads,
        "the profile was read from Redis, not reloaded"
    );
    let s = b.stats().await;
    assert_eq!((s.errors, s.values_refused), (0, 0), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_swapped_and_truncated_values_are_counted_misses_then_overwritten() {
    let redis = RedisServer::start();
    let a = encrypted(&redis, K1);
    for (k, v) in [
        ("query:a", "value-a"),
        ("query:b", "value-b"),
        ("query:c", "value-c"),
    ] {
        a.set(k, &v.to_string(), None).await.unwrap();
    }
    // One flipped byte in the ciphertext.
    let mut t = raw_get(&redis, "query:a").await;
    let last = t.len() - 1;
    t[last] ^= 0x01;
    raw_set(&redis, "query:a", &t).await;
    // Two values swapped between keys: each is authentic, but for the other key.
    let (b, c) = (raw_get(&redis, "query:b").await, raw_get(&redis, "query:c").await);
    raw_set(&redis, "query:b", &c).await;
    raw_set(&redis, "query:c", &b).await;

    let reader = encrypted(&redis, K1);
    for k in ["query:a", "query:b", "query:c"] {
        assert_eq!(reader.get::<String>(k).await.unwrap(), None, "{k}");
    }
    let s = reader.stats().await;
    assert_eq!(s.values_refused, 3, "{s:?}");
    assert!(s.errors >= 3, "{s:?}");

    // Truncated: the header survives, the ciphertext is cut.
    let whole = raw_get(&redis, "query:a").await;
    raw_set(&redis, "query:a", &whole[..whole.len() / 2]).await;
    assert_eq!(reader.get::<String>("query:a").await.unwrap(), None);
    assert_eq!(reader.stats().await.values_refused, 4);

    // The next store overwrites it: the loader runs and its value reads back everywhere.
    let v: String = reader
        .get_or_insert_with("query:a", None, || async { "reloaded".to_string() })
        .await;
    assert_eq!(v, "reloaded");
    let fresh = encrypted(&redis, K1);
    assert_eq!(
        fresh.get::<String>("query:a").await.unwrap().as_deref(),
        Some("reloaded")
    );
    assert_eq!(fresh.stats().await.values_refused, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_rotate_without_a_flush_and_a_removed_key_reads_as_a_miss() {
    let redis = RedisServer::start();
    let old = encrypted(&redis, K1);
    old.set("query:old", &"written with k1".to_string(), None)
        .await
        .unwrap();

    // k2 added in front: old entries still read, new ones are sealed with k2.
    let both = encrypted(&redis, &format!("{K2},{K1}"));
    assert_eq!(
        both.get::<String>("query:old").await.unwrap().as_deref(),
        Some("written with k1")
    );
    both.set("query:new", &"written with k2".to_string(), None)
        .await
        .unwrap();
    let raw = raw_get(&redis, "query:new").await;
    assert!(
        contains(&raw, "k2") && !contains(&raw, "written"),
        "the key id travels in clear, the value not"
    );

    // An instance still on k1 alone cannot read k2's entries: a counted miss.
    let lagging = encrypted(&redis, K1);
    assert_eq!(lagging.get::<String>("query:new").await.unwrap(), None);
    assert_eq!(lagging.stats().await.values_refused, 1);

    // k1 removed: its entries read as misses and are reloaded under k2.
    let new = encrypted(&redis, K2);
    assert_eq!(new.get::<String>("query:old").await.unwrap(), None);
    assert_eq!(new.stats().await.values_refused, 1);
    assert_eq!(
        new.get::<String>("query:new").await.unwrap().as_deref(),
        Some("written with k2")
    );
    let v: String = new
        .get_or_insert_with("query:old", None, || async { "reloaded".to_string() })
        .await;
    assert_eq!(v, "reloaded");
    assert_eq!(
        encrypted(&redis, K2)
            .get::<String>("query:old")
            .await
            .unwrap()
            .as_deref(),
        Some("reloaded")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_configured_patterns_are_encrypted_and_a_plain_value_there_is_refused() {
    let redis = RedisServer::start();
    let plain = Cache::new(builder(&redis).build().unwrap()).unwrap();
    plain
        .set("resource:users:1", &MARKER.to_string(), None)
        .await
        .unwrap();
    plain.set("query:open", &MARKER.to_string(), None).await.unwrap();

    let enc = Cache::new(
        builder(&redis)
            .encryption_keys(K1)
            .encrypt_patterns(["resource:users:*"])
            .build()
            .unwrap(),
    )
    .unwrap();
    // Planted in clear under an encrypted pattern: not trusted.
    assert_eq!(enc.get::<String>("resource:users:1").await.unwrap(), None);
    assert_eq!(enc.stats().await.values_refused, 1);
    // Outside the patterns plain values are read, and written, in clear.
    assert_eq!(
        enc.get::<String>("query:open").await.unwrap().as_deref(),
        Some(MARKER)
    );
    enc.set("query:open2", &MARKER.to_string(), None).await.unwrap();
    assert!(contains(&raw_get(&redis, "query:open2").await, MARKER));
    enc.set("resource:users:2", &MARKER.to_string(), None)
        .await
        .unwrap();
    assert!(!contains(&raw_get(&redis, "resource:users:2").await, MARKER));
    // A sealed value and no keys: a counted miss too.
    assert_eq!(plain.get::<String>("resource:users:2").await.unwrap(), None);
    assert_eq!(plain.stats().await.values_refused, 1);
}

/// Values L1 evicts are sealed again for the disk (write on eviction): the same value of the
/// same key gets the same content id, so after a restart the record matches Redis's head and is
/// served from disk. (With an id of the ciphertext, every spilled record read as stale.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_values_l1_spilled_to_disk_are_served_from_it_after_a_restart() {
    use cache_core::config::{DiskConfig, ReadOrder, WritePolicy};
    let redis = RedisServer::start();
    let dir = tempfile_dir("spill");
    let config = || {
        let mut l3 = DiskConfig::default();
        l3.dir = Some(dir.clone());
        l3.read_order = ReadOrder::DiskFirst;
        l3.write = WritePolicy::OnEviction;
        builder(&redis)
            .encryption_keys(K1)
            .l3_config(l3)
            .max_memory_cache_size(32)
            .build()
            .unwrap()
    };
    // Incompressible enough to stay over the tier's 1 KiB minimum once compressed.
    let value = |i: u32| {
        let mut x = u64::from(i) + 1;
        let noise: String = (0..4000)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                format!("{:x}", x >> 60)
            })
            .collect();
        format!("{MARKER} {i} {noise}")
    };
    let a = Cache::new(config()).unwrap();
    for i in 0..200 {
        a.set(&format!("analysis:{i}"), &value(i), None).await.unwrap();
    }
    a.run_pending_tasks();
    common::within_5s("evicted values reach the disk", || async {
        a.stats().await.l3.unwrap().writes >= 100
    })
    .await;
    a.flush_disk().await;
    drop(a);
    let b = Cache::new(config()).unwrap();
    for i in 0..50 {
        assert_eq!(
            b.get::<String>(&format!("analysis:{i}")).await.unwrap(),
            Some(value(i))
        );
    }
    let s = b.stats().await;
    let l3 = s.l3.unwrap();
    // Every record found on disk matched Redis's head and was served; none read as stale.
    assert!(
        s.l3_hits >= 1 && s.l3_hits == l3.verified,
        "{} hits, {l3:?}",
        s.l3_hits
    );
    assert_eq!((l3.stale, s.values_refused, l3.corrupt), (0, 0, 0), "{l3:?}");
}

/// Commands that reach Redis, as its slowlog records them (threshold 0: every command).
async fn slowlog(redis: &RedisServer) -> Vec<String> {
    let entries: Vec<redis::Value> = redis::cmd("SLOWLOG")
        .arg("GET")
        .arg(-1)
        .query_async(&mut redis.conn().await)
        .await
        .unwrap();
    fn text(v: &redis::Value, out: &mut String) {
        match v {
            redis::Value::BulkString(b) => {
                out.push_str(&String::from_utf8_lossy(b));
                out.push(' ');
            }
            redis::Value::SimpleString(s) => out.push_str(s),
            redis::Value::Array(items) => items.iter().for_each(|i| text(i, out)),
            _ => {}
        }
    }
    entries
        .iter()
        .map(|e| {
            let mut s = String::new();
            text(e, &mut s);
            s
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_key_secret_no_argument_text_reaches_redis() {
    let redis = RedisServer::start();
    let mut conn = redis.conn().await;
    for (k, v) in [("slowlog-log-slower-than", "0"), ("slowlog-max-len", "100000")] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg(k)
            .arg(v)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    // Every pub/sub message, on any channel.
    let mut sub = redis.client().get_async_pubsub().await.unwrap();
    sub.psubscribe("*").await.unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        let mut stream = sub.on_message();
        while let Some(m) = stream.next().await {
            let _ = tx.send(m.get_payload::<String>().unwrap_or_default());
        }
    });

    // Values are encrypted too: without keys they (and the email inside `Profile`) are
    // plaintext, which the secret does not change.
    let config = || {
        builder(&redis)
            .key_secret(SECRET)
            .encryption_keys(K1)
            .build()
            .unwrap()
    };
    let a = Cache::new(config()).unwrap();
    let b = Cache::new(config()).unwrap();
    common::until_subscribed(&b, &a).await;
    profile(&a, EMAIL).await;
    orders_of(&a, EMAIL, 7).await;
    a.set(&format!("resource:users:{EMAIL}"), &1u8, None)
        .await
        .unwrap();
    a.set_tagged("query:t", &1u8, None, &[&format!("user:{EMAIL}")])
        .await
        .unwrap();
    a.invalidate_tags(&[&format!("user:{EMAIL}")]).await.unwrap();
    a.delete(&format!("resource:users:{EMAIL}")).await.unwrap();
    a.invalidate_pattern(&format!("resource:users:{EMAIL}"))
        .await
        .unwrap();
    // Batch and coalesced reads, keys holding `::` in data, a key without `:`.
    let batch = [
        format!("query:batch:{EMAIL}"),
        format!("session:fe80::{EMAIL}"),
        EMAIL.to_owned(),
    ];
    for k in &batch {
        a.set(k, &1u8, None).await.unwrap();
    }
    let refs: Vec<&str> = batch.iter().map(String::as_str).collect();
    assert_eq!(b.mget::<u8, _>(&refs).await.unwrap(), vec![Some(1); 3]);
    let reads = refs.iter().map(|k| b.get::<u8>(k));
    assert!(futures::future::join_all(reads)
        .await
        .iter()
        .all(|r| matches!(r, Ok(Some(1)))));
    // B, sharing the secret, hears A's (sealed) invalidations: its copy goes.
    b.set("query:shared", &1u8, None).await.unwrap();
    assert_eq!(b.get::<u8>("query:shared").await.unwrap(), Some(1));
    a.set("query:shared", &2u8, None).await.unwrap();
    common::within_5s("B hears A", || async {
        b.get::<u8>("query:shared").await.unwrap() == Some(2)
    })
    .await;

    let names: Vec<String> = entries(&redis).await.into_iter().map(|(k, _)| k).collect();
    // The profile's entry is gone (deleted by name above); its marker keeps the readable head.
    assert!(
        names.iter().any(|k| k.starts_with("tiered-cache:inv:resource:")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|k| k.starts_with("query:security::orders_of:")),
        "the function's name stays readable: {names:?}"
    );
    for k in &names {
        assert!(
            !k.contains("alice") && !k.contains("example"),
            "key {k:?} holds argument text"
        );
    }
    let log = slowlog(&redis).await;
    assert!(log.len() > 10, "the slowlog records every command");
    assert!(
        log.iter().any(|c| c.contains("query:security::orders_of:")),
        "the slowlog shows key names: {log:?}"
    );
    for cmd in &log {
        assert!(!cmd.contains("alice"), "Redis saw argument text: {cmd}");
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut messages = 0;
    while let Ok(m) = rx.try_recv() {
        messages += 1;
        assert!(
            !m.contains("alice") && !m.contains("query:"),
            "pub/sub carried text: {m}"
        );
    }
    assert!(messages > 0, "messages were sent");
    // The admin API's listings show names as Redis has them.
    assert!(!a
        .display_key(&format!("resource:users:{EMAIL}"))
        .contains("alice"));
    let prefixes = format!("{:?}", a.memory_profile(5).await.prefixes);
    assert!(!prefixes.contains("alice"), "{prefixes}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_inside_the_hash_are_errors_that_point_at_tags_and_prefixes_still_work() {
    let redis = RedisServer::start();
    let c = Cache::new(builder(&redis).key_secret(SECRET).build().unwrap()).unwrap();
    c.set("resource:users:1", &1u8, None).await.unwrap();
    c.set("resource:users:2", &1u8, None).await.unwrap();
    orders_of(&c, EMAIL, 1).await;
    orders_of(&c, EMAIL, 2).await;
    let before = redis.command_calls("scan").await;
    for bad in ["resource:users:*", "query:security::orders_of:alice*", "res*"] {
        let e = c.invalidate_pattern(bad).await.unwrap_err();
        assert!(matches!(e, CacheError::InvalidPattern { .. }), "{bad}: {e}");
        assert!(e.to_string().contains("tags"), "{e}");
    }
    assert_eq!(
        redis.command_calls("scan").await,
        before,
        "refused before any scan"
    );
    // Values are plaintext here (no keys): the names alone hide the arguments.
    for (k, _) in entries(&redis).await {
        assert!(!k.contains("alice") && !k.contains("users:"), "{k}");
    }
    assert_eq!(
        c.get::<u8>("resource:users:1").await.unwrap(),
        Some(1),
        "and before L1 was touched"
    );
    assert_eq!(
        c.invalidate_pattern("query:security::orders_of:*").await.unwrap(),
        2
    );
    assert_eq!(c.invalidate_pattern("resource:users:1").await.unwrap(), 1);
    assert_eq!(c.invalidate_pattern("resource:*").await.unwrap(), 1);
    assert!(entries(&redis)
        .await
        .iter()
        .all(|(k, _)| k.starts_with("tiered-cache:")));
    // With two readable segments, `resource:users:*` is a prefix again.
    let two = CacheConfig::from_lookup(|k| match k {
        "REDIS_URL" => Some(redis.url()),
        "CACHE_KEY_SECRET" => Some(SECRET.into()),
        "CACHE_KEY_READABLE_SEGMENTS" => Some("2".into()),
        _ => None,
    })
    .unwrap();
    let c2 = Cache::new(two).unwrap();
    c2.set("resource:users:3", &1u8, None).await.unwrap();
    assert_eq!(c2.invalidate_pattern("resource:users:*").await.unwrap(), 1);
}

/// The other process of [`the_same_call_hits_across_processes_sharing_the_secret`]: calls
/// `profile` once on a cache built from its environment and prints how many loads ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_peer() {
    if std::env::var("SECURITY_PEER").is_err() {
        return;
    }
    let c = Cache::new(CacheConfig::from_env().unwrap()).unwrap();
    let p = profile(&c, EMAIL).await;
    assert_eq!(p.email, EMAIL);
    println!(
        "PEER loads={} refused={}",
        LOADS.load(Ordering::SeqCst),
        c.stats().await.values_refused
    );
}

async fn peer(redis: &RedisServer, secret: &str, keys: &str) -> String {
    let out = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "security_peer", "--nocapture"])
        .env("SECURITY_PEER", "1")
        .env("REDIS_URL", redis.url())
        .env("CACHE_KEY_SECRET", secret)
        .env("CACHE_ENCRYPTION_KEYS", keys)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("PEER "))
        .unwrap_or_else(|| panic!("peer failed: {stdout} {}", String::from_utf8_lossy(&out.stderr)))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_call_hits_across_processes_sharing_the_secret() {
    let redis = RedisServer::start();
    let a = Cache::new(
        builder(&redis)
            .key_secret(SECRET)
            .encryption_keys(K1)
            .build()
            .unwrap(),
    )
    .unwrap();
    profile(&a, EMAIL).await;
    // Same secret and key: the other process finds the entry in Redis and loads nothing.
    assert_eq!(peer(&redis, SECRET, K1).await, "loads=0 refused=0");
    // Another secret names another key: a miss, and a load.
    assert_eq!(
        peer(&redis, "another-secret-16-bytes-long", K1).await,
        "loads=1 refused=0"
    );
}

fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let d = std::env::temp_dir().join(format!("tc-sec-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}
