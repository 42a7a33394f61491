//! The disk tier (L3, issue 20) against a real Redis and real files: every read order round
//! trips; every kind of invalidation reaches the disk (delete, pattern, tags, clear, another
//! instance's write); a second run of this test binary on the same directory never serves an
//! entry that was changed or deleted in Redis meanwhile, and with Redis down serves one only
//! under `stale_if_error`; a corrupt, full, deleted, locked or unwritable directory disables
//! the tier while calls keep answering.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use cache_core::config::{DiskConfig, ReadOrder};
use cache_core::{cache, Cache, CacheConfig};
use cache_test_harness::TestRedis;

mod common;

use common::within_5s;

/// A value big enough for the disk (over the default 1 KiB minimum once compressed), the
/// same for the same tag.
fn big(tag: &str) -> String {
    noise(tag, 10_000)
}

/// `n` characters that do not compress, seeded by `tag`.
fn noise(tag: &str, n: usize) -> String {
    let mut x = tag.bytes().fold(0x9E37_79B9_7F4A_7C15u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01B3)
    });
    let mut out = format!("{tag}:");
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push(char::from(b'a' + (x % 26) as u8));
    }
    out
}

/// A fresh directory for one test.
fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("l3-{name}-{}-{}", std::process::id(), fastrand_u64()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(1);
    h.finish()
}

fn l3(dir: &Path, read_order: ReadOrder) -> DiskConfig {
    let mut c = DiskConfig::default();
    c.dir = Some(dir.to_owned());
    c.capacity = bytesize(64 << 20);
    c.read_order = read_order;
    c.health_interval = Duration::from_millis(100);
    c
}

fn bytesize(n: u64) -> cache_core::config::ByteSize {
    cache_core::config::ByteSize(n)
}

/// A cache on `redis` (or alone) with the disk tier in `dir`; L1 off unless asked, so that
/// reads reach the tiers.
fn cache_on(redis: Option<&TestRedis>, dir: &Path, order: ReadOrder, l1: bool) -> Cache {
    let b = CacheConfig::builder().l3_config(l3(dir, order)).l1_enabled(l1);
    let b = match redis {
        Some(r) => common::on(r, b),
        None => b,
    };
    Cache::new(b.build().unwrap()).unwrap()
}

async fn disk(c: &Cache) -> cache_core::DiskStats {
    c.stats().await.l3.expect("a disk tier is configured")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_order_round_trips_and_counts_where_it_read() {
    let redis = TestRedis::start();
    for order in [ReadOrder::DiskFirst, ReadOrder::RedisFirst, ReadOrder::Auto] {
        let d = dir("orders");
        let c = cache_on(Some(&redis), &d, order, false);
        c.set("analysis:1", &big("one"), None).await.unwrap();
        c.set("query:1", &big("q"), None).await.unwrap();
        c.flush_disk().await;
        assert_eq!(
            c.get::<String>("analysis:1").await.unwrap(),
            Some(big("one")),
            "{order:?}"
        );
        assert_eq!(
            c.get::<String>("query:1").await.unwrap(),
            Some(big("q")),
            "{order:?}"
        );
        let s = c.stats().await;
        let l3 = s.l3.unwrap();
        assert_eq!(l3.writes, 1, "only the disk pattern is written: {order:?}");
        match order {
            ReadOrder::RedisFirst => assert_eq!((s.l3_hits, s.l2_hits), (0, 2), "{order:?}"),
            // Auto: 10 KB is over the 2 KiB from which the disk is read first.
            _ => assert_eq!((s.l3_hits, s.l2_hits), (1, 1), "{order:?}"),
        }
        drop(c);
        std::fs::remove_dir_all(&d).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_reads_large_values_from_disk_first_and_redis_first_falls_back_to_disk() {
    let mut redis = TestRedis::start();
    let d = dir("auto");
    let c = cache_on(Some(&redis), &d, ReadOrder::Auto, false);
    let large = noise("large", 200_000);
    // 1.5 KB that do not compress: on disk (over 1 KiB), read from Redis first (under 2 KiB).
    let small: Vec<u8> = noise("small", 1_500)
        .into_bytes()
        .iter()
        .map(|b| b.wrapping_mul(77))
        .collect();
    c.set("ml:large", &large, None).await.unwrap();
    c.set("ml:small", &small, None).await.unwrap();
    c.flush_disk().await;
    assert_eq!(disk(&c).await.writes, 2);
    assert_eq!(c.get::<String>("ml:large").await.unwrap(), Some(large.clone()));
    assert_eq!(c.get::<Vec<u8>>("ml:small").await.unwrap(), Some(small.clone()));
    let s = c.stats().await;
    assert_eq!((s.l3_hits, s.l2_hits), (1, 1));
    // Redis down: the small one (read Redis first) falls back to its trusted disk copy.
    redis.server_mut().stop();
    assert_eq!(c.get::<Vec<u8>>("ml:small").await.unwrap(), Some(small));
    assert_eq!(c.get::<String>("ml:large").await.unwrap(), Some(large));
    assert_eq!(c.stats().await.l3_hits, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_l3_hit_fills_l1_and_a_redis_hit_fills_l3() {
    let redis = TestRedis::start();
    let writer = cache_on(Some(&redis), &dir("promote-writer"), ReadOrder::DiskFirst, false);
    // Written by an instance whose disk this one does not share: this one's disk lacks it.
    writer.set("static:page", &big("page"), None).await.unwrap();
    let mut cfg = l3(&dir("promote"), ReadOrder::DiskFirst);
    cfg.promote_max = bytesize(1 << 20);
    let builder = CacheConfig::builder()
        .l3_config(cfg)
        .l1_ttl(Duration::from_millis(200));
    let c = Cache::new(common::on(&redis, builder).build().unwrap()).unwrap();
    assert_eq!(c.get::<String>("static:page").await.unwrap(), Some(big("page")));
    // The writer task counts a write once it hands it to foyer: wait for it before counting
    // (counted first, this failed in CI with 0).
    c.flush_disk().await;
    assert_eq!(disk(&c).await.writes, 1, "the Redis hit filled the disk");
    // L1's copy outlives l1_ttl no longer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.get::<String>("static:page").await.unwrap(), Some(big("page")));
    let s = c.stats().await;
    assert_eq!((s.l2_hits, s.l3_hits, s.l1_hits), (1, 1, 0));
    assert_eq!(c.get::<String>("static:page").await.unwrap(), Some(big("page")));
    assert_eq!(c.stats().await.l1_hits, 1, "the disk hit filled L1");

    // Above promote_max, a disk hit leaves L1 alone.
    let mut cfg = l3(&dir("promote-small"), ReadOrder::DiskFirst);
    cfg.promote_max = bytesize(1024);
    let builder = CacheConfig::builder()
        .l3_config(cfg)
        .l1_ttl(Duration::from_millis(200));
    let c = Cache::new(common::on(&redis, builder).build().unwrap()).unwrap();
    c.get::<String>("static:page").await.unwrap();
    c.flush_disk().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.get::<String>("static:page").await.unwrap();
    c.get::<String>("static:page").await.unwrap();
    let s = c.stats().await;
    assert_eq!((s.l1_hits, s.l2_hits, s.l3_hits), (0, 1, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_invalidation_reaches_the_disk() {
    let redis = TestRedis::start();
    let d = dir("inval");
    let c = cache_on(Some(&redis), &d, ReadOrder::DiskFirst, false);
    let fresh = |k: &'static str| {
        let c = &c;
        async move {
            c.set(k, &big(k), None).await.unwrap();
            c.flush_disk().await;
            assert_eq!(c.get::<String>(k).await.unwrap(), Some(big(k)));
        }
    };
    fresh("analysis:del").await;
    c.delete("analysis:del").await.unwrap();
    assert_eq!(c.get::<String>("analysis:del").await.unwrap(), None);

    fresh("analysis:pat:1").await;
    c.invalidate_pattern("analysis:pat:*").await.unwrap();
    assert_eq!(c.get::<String>("analysis:pat:1").await.unwrap(), None);

    c.set_tagged("analysis:tagged", &big("t"), None, &["team:1"])
        .await
        .unwrap();
    c.flush_disk().await;
    assert_eq!(c.get::<String>("analysis:tagged").await.unwrap(), Some(big("t")));
    c.invalidate_tags(&["team:1"]).await.unwrap();
    assert_eq!(c.get::<String>("analysis:tagged").await.unwrap(), None);

    fresh("analysis:clear").await;
    c.clear().await.unwrap();
    assert_eq!(c.get::<String>("analysis:clear").await.unwrap(), None);
    let l3 = disk(&c).await;
    assert!(l3.hits >= 4, "{l3:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_instances_write_and_delete_reach_this_disk() {
    let redis = TestRedis::start();
    let a = cache_on(Some(&redis), &dir("peer-a"), ReadOrder::DiskFirst, true);
    let b = cache_on(Some(&redis), &dir("peer-b"), ReadOrder::DiskFirst, true);
    common::until_subscribed(&a, &b).await;
    a.set("analysis:shared", &big("v1"), None).await.unwrap();
    a.flush_disk().await;
    assert_eq!(a.get::<String>("analysis:shared").await.unwrap(), Some(big("v1")));
    b.set("analysis:shared", &big("v2"), None).await.unwrap();
    within_5s("a reads b's write, not its disk copy", || async {
        a.get::<String>("analysis:shared").await.unwrap() == Some(big("v2"))
    })
    .await;
    b.delete("analysis:shared").await.unwrap();
    within_5s("a reads b's delete", || async {
        a.get::<String>("analysis:shared").await.unwrap().is_none()
    })
    .await;
}

/// The first run of a restart test: this binary again, writing through a cache on `dir`, then
/// exiting (which closes the tier).
async fn run_writer(redis: Option<&TestRedis>, dir: &Path, script: &str) {
    let mut cmd = tokio::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "disk_writer", "--nocapture"])
        .env("DISK_WRITER", script)
        .env("DISK_WRITER_DIR", dir);
    if let Some(r) = redis {
        let (name, value) = r.urls().env();
        cmd.env(name, value);
    }
    let out = cmd.output().await.unwrap();
    assert!(
        out.status.success(),
        "writer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The writer's side of the restart tests; a no-op in a normal run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disk_writer() {
    let Ok(script) = std::env::var("DISK_WRITER") else {
        return;
    };
    let dir = PathBuf::from(std::env::var("DISK_WRITER_DIR").unwrap());
    let mut b = CacheConfig::builder().l3_config(l3(&dir, ReadOrder::DiskFirst));
    if let Ok(url) = std::env::var("REDIS_URL") {
        b = b.redis_url(url);
    }
    let c = Cache::new(b.build().unwrap()).unwrap();
    for key in ["analysis:a", "analysis:b", "analysis:c", "analysis:d"] {
        c.set(key, &big(key), None).await.unwrap();
    }
    c.set_tagged("analysis:tagged", &big("tagged"), None, &["team:9"])
        .await
        .unwrap();
    if script == "local" {
        // Alone: invalidations the next run must know of.
        c.invalidate_pattern("analysis:b*").await.unwrap();
        c.delete("analysis:c").await.unwrap();
        c.set("analysis:d", &big("d2"), None).await.unwrap();
        c.invalidate_tags(&["team:9"]).await.unwrap();
    }
    c.flush_disk().await;
    drop(c);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_an_entry_changed_in_redis_is_not_served_from_disk() {
    let redis = TestRedis::start();
    let d = dir("restart-up");
    run_writer(Some(&redis), &d, "redis").await;
    // Meanwhile: a rewritten by an instance without a disk, b deleted, the tag invalidated.
    let other = Cache::new(common::on(&redis, CacheConfig::builder()).build().unwrap()).unwrap();
    other.set("analysis:a", &big("a2"), None).await.unwrap();
    other.delete("analysis:b").await.unwrap();
    other.invalidate_tags(&["team:9"]).await.unwrap();
    let c = cache_on(Some(&redis), &d, ReadOrder::DiskFirst, false);
    assert_eq!(c.get::<String>("analysis:a").await.unwrap(), Some(big("a2")));
    assert_eq!(c.get::<String>("analysis:b").await.unwrap(), None);
    assert_eq!(c.get::<String>("analysis:tagged").await.unwrap(), None);
    assert_eq!(
        c.get::<String>("analysis:c").await.unwrap(),
        Some(big("analysis:c"))
    );
    let s = c.stats().await;
    let l3 = s.l3.unwrap();
    assert_eq!(
        (s.l3_hits, l3.verified),
        (1, 1),
        "c came from disk after one check: {l3:?}"
    );
    assert!(l3.stale >= 1, "a's old record was refused: {l3:?}");
    // Checked once: the second read trusts it.
    assert_eq!(
        c.get::<String>("analysis:c").await.unwrap(),
        Some(big("analysis:c"))
    );
    assert_eq!(disk(&c).await.verified, 1);
}

#[cache(cache = c, key = "analysis:{id}", ttl = "1h", stale_if_error = "1h")]
async fn analysis_fail_safe(c: &Cache, id: String) -> Result<String, String> {
    Err(format!("the source of {id} is down"))
}

#[cache(cache = c, key = "analysis:{id}", ttl = "1h")]
async fn analysis_plain(c: &Cache, id: String) -> Result<String, String> {
    Err(format!("the source of {id} is down"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_with_redis_down_disk_entries_are_served_only_as_fail_safe() {
    let mut redis = TestRedis::start();
    let d = dir("restart-down");
    run_writer(Some(&redis), &d, "redis").await;
    redis.server_mut().stop();
    let c = cache_on(Some(&redis), &d, ReadOrder::DiskFirst, false);
    // Unchecked: never as fresh.
    assert!(c.get::<String>("analysis:a").await.unwrap_or(None).is_none());
    assert_eq!(
        analysis_plain(&c, "a".into()).await,
        Err("the source of a is down".into())
    );
    // Under stale_if_error, the loader's failure is answered from disk.
    assert_eq!(analysis_fail_safe(&c, "a".into()).await, Ok(big("analysis:a")));
    // Never a tagged entry whose tags cannot be checked.
    assert!(analysis_fail_safe(&c, "tagged".into()).await.is_err());
    assert_eq!(c.stats().await.stale_served, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_invalidations_outlive_a_restart() {
    let d = dir("restart-local");
    run_writer(None, &d, "local").await;
    let c = cache_on(None, &d, ReadOrder::DiskFirst, false);
    assert_eq!(
        c.get::<String>("analysis:a").await.unwrap(),
        Some(big("analysis:a"))
    );
    assert_eq!(c.get::<String>("analysis:b").await.unwrap(), None, "pattern rule");
    assert_eq!(c.get::<String>("analysis:c").await.unwrap(), None, "deleted");
    assert_eq!(
        c.get::<String>("analysis:d").await.unwrap(),
        Some(big("d2")),
        "rewritten"
    );
    assert_eq!(
        c.get::<String>("analysis:tagged").await.unwrap(),
        None,
        "tag rule"
    );
    assert_eq!(c.stats().await.l3_hits, 2);
}

/// Overwrites a stretch in the middle of each of foyer's files with garbage.
fn corrupt(dir: &Path) -> usize {
    use std::io::{Seek, SeekFrom, Write};
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if !e.file_name().to_string_lossy().starts_with("foyer-") {
            continue;
        }
        let mut f = std::fs::OpenOptions::new().write(true).open(e.path()).unwrap();
        for at in [0u64, 100, 4096, 8192, 20_000] {
            f.seek(SeekFrom::Start(at)).unwrap();
            f.write_all(&[0xA5; 700]).unwrap();
        }
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_files_never_give_a_wrong_value() {
    let redis = TestRedis::start();
    for local in [false, true] {
        let d = dir("corrupt");
        run_writer(
            (!local).then_some(&redis),
            &d,
            if local { "plain-local" } else { "redis" },
        )
        .await;
        assert!(corrupt(&d) > 0);
        let c = cache_on((!local).then_some(&redis), &d, ReadOrder::DiskFirst, false);
        for key in ["analysis:a", "analysis:b", "analysis:c", "analysis:d"] {
            let got = c.get::<String>(key).await.unwrap();
            assert!(got.is_none() || got == Some(big(key)), "{key}: {got:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_directory_disables_the_tier_and_calls_go_on() {
    let redis = TestRedis::start();
    // Under a regular file: cannot be created.
    let file = dir("file");
    std::fs::write(&file, b"not a directory").unwrap();
    let c = cache_on(Some(&redis), &file.join("l3"), ReadOrder::DiskFirst, false);
    let l3 = disk(&c).await;
    assert!(
        !l3.enabled && l3.disabled_reason.as_deref().unwrap().contains("cannot create"),
        "{l3:?}"
    );
    c.set("analysis:1", &big("1"), None).await.unwrap();
    assert_eq!(c.get::<String>("analysis:1").await.unwrap(), Some(big("1")));

    // Locked by another cache.
    let d = dir("locked");
    let first = cache_on(Some(&redis), &d, ReadOrder::DiskFirst, false);
    let second = cache_on(Some(&redis), &d, ReadOrder::DiskFirst, false);
    assert!(disk(&first).await.enabled);
    let l3 = disk(&second).await;
    assert!(!l3.enabled && l3.disabled_reason.unwrap().contains("in use"));
    assert_eq!(second.get::<String>("analysis:1").await.unwrap(), Some(big("1")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_deleted_under_the_process_disables_the_tier() {
    let redis = TestRedis::start();
    let d = dir("deleted");
    let c = cache_on(Some(&redis), &d, ReadOrder::DiskFirst, false);
    c.set("analysis:1", &big("1"), None).await.unwrap();
    std::fs::remove_dir_all(&d).unwrap();
    within_5s("disabled", || async { !disk(&c).await.enabled }).await;
    assert!(disk(&c).await.disabled_reason.unwrap().contains("removed"));
    c.set("analysis:1", &big("2"), None).await.unwrap();
    assert_eq!(c.get::<String>("analysis:1").await.unwrap(), Some(big("2")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_disables_the_tier_and_calls_go_on() {
    let redis = TestRedis::start();
    let d = dir("full");
    std::fs::create_dir_all(&d).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=2m", "tmpfs"])
        .arg(&d)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        // No mount here: a tiny capacity instead, which evicts rather than fails.
        let mut cfg = l3(&d, ReadOrder::DiskFirst);
        cfg.capacity = bytesize(1 << 20);
        let c = Cache::new(
            common::on(&redis, CacheConfig::builder().l3_config(cfg).l1_enabled(false))
                .build()
                .unwrap(),
        )
        .unwrap();
        for i in 0..100 {
            c.set(&format!("analysis:{i}"), &big(&i.to_string()), None)
                .await
                .unwrap();
        }
        c.flush_disk().await;
        for i in 0..100 {
            assert_eq!(
                c.get::<String>(&format!("analysis:{i}")).await.unwrap(),
                Some(big(&i.to_string()))
            );
        }
        assert!(disk(&c).await.evictions > 0);
        return;
    }
    let c = cache_on(Some(&redis), &d, ReadOrder::DiskFirst, false);
    for i in 0..1000 {
        c.set(&format!("analysis:{i}"), &big(&i.to_string()), None)
            .await
            .unwrap();
    }
    within_5s("a full disk disables the tier", || async {
        !disk(&c).await.enabled
    })
    .await;
    for i in (0..1000).step_by(97) {
        assert_eq!(
            c.get::<String>(&format!("analysis:{i}")).await.unwrap(),
            Some(big(&i.to_string()))
        );
    }
    drop(c);
    let _ = std::process::Command::new("umount").arg(&d).status();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_reports_the_disk_tier() {
    let redis = TestRedis::start();
    let c = cache_on(Some(&redis), &dir("admin"), ReadOrder::DiskFirst, false);
    c.set("ml:model", &big("m"), None).await.unwrap();
    c.flush_disk().await;
    c.get::<String>("ml:model").await.unwrap();
    // No token: the read routes answer loopback clients, which needs the connection info.
    let app = cache_admin::router(c.clone(), None, cache_admin::AdminConfig::new())
        .into_make_service_with_connect_info::<std::net::SocketAddr>();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let http = reqwest::Client::new();
    let get = |path: &'static str| {
        let (http, base) = (&http, &base);
        async move {
            let reply = http.get(format!("{base}{path}")).send().await.unwrap();
            reply.text().await.unwrap()
        }
    };
    let json = |text: String| serde_json::from_str::<serde_json::Value>(&text).unwrap();
    let perf = json(get("/api/v1/cache/performance").await);
    assert_eq!(perf["l3"]["hits"], 1, "{perf}");
    assert_eq!(perf["l3"]["read_latency"]["count"], 1, "{perf}");
    assert_eq!(perf["memory"]["l3_entries"], 1, "{perf}");
    let stats = json(get("/api/v1/cache/stats").await);
    assert_eq!(stats["cache"]["l3_hits"], 1, "{stats}");
    let memory = json(get("/api/v1/cache/memory").await);
    assert_eq!(memory["l3"]["entries"], 1, "{memory}");
    let metrics = get("/metrics").await;
    assert!(metrics.contains("cache_l3_hits_total 1"), "{metrics}");
    assert!(metrics.contains(r#"cache_hits_total{level="l3"} 1"#), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_eviction_the_disk_gets_only_what_l1_lets_go() {
    use cache_core::config::WritePolicy;
    for strategy in [
        cache_core::Strategy::Ttl,
        cache_core::Strategy::Lru,
        cache_core::Strategy::Fifo,
    ] {
        let mut cfg = l3(&dir("evict"), ReadOrder::DiskFirst);
        cfg.write = WritePolicy::OnEviction;
        let c = Cache::new(
            CacheConfig::builder()
                .l3_config(cfg)
                .max_memory_cache_size(64)
                .strategy(strategy.clone())
                .build()
                .unwrap(),
        )
        .unwrap();
        c.set("analysis:first", &big("first"), None).await.unwrap();
        c.flush_disk().await;
        assert_eq!(
            disk(&c).await.writes,
            0,
            "a store alone writes nothing: {strategy:?}"
        );
        for i in 0..400 {
            c.set(&format!("analysis:{i}"), &big(&i.to_string()), None)
                .await
                .unwrap();
        }
        c.set_tagged("analysis:tagged", &big("tagged"), None, &["t"])
            .await
            .unwrap();
        c.run_pending_tasks();
        within_5s("evicted entries reach the disk", || async {
            disk(&c).await.writes >= 300
        })
        .await;
        c.flush_disk().await;
        // Alone, an evicted key is found only on disk. Newest first: a disk hit fills L1, whose
        // evictions reach the disk a moment later, off the request path.
        for i in (0..400).rev() {
            let key = format!("analysis:{i}");
            let got = c.get::<String>(&key).await.unwrap();
            assert_eq!(got, Some(big(&i.to_string())), "{key} {strategy:?}");
        }
        let s = c.stats().await;
        assert!(s.l3_hits >= 300, "{strategy:?}: {s:?}");
        // An evicted key deleted: not served from disk.
        c.delete("analysis:0").await.unwrap();
        assert_eq!(c.get::<String>("analysis:0").await.unwrap(), None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_eviction_a_replaced_value_is_not_written() {
    use cache_core::config::WritePolicy;
    let mut cfg = l3(&dir("replace"), ReadOrder::DiskFirst);
    cfg.write = WritePolicy::OnEviction;
    let c = Cache::new(CacheConfig::builder().l3_config(cfg).build().unwrap()).unwrap();
    for round in 0..20 {
        c.set("analysis:k", &big(&round.to_string()), None).await.unwrap();
    }
    // The spill task runs on its own: give it time to write what it (wrongly) got.
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.flush_disk().await;
    assert_eq!(
        disk(&c).await.writes,
        0,
        "a value an insert replaced is not an eviction"
    );
    assert_eq!(c.get::<String>("analysis:k").await.unwrap(), Some(big("19")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_restart_fail_safe_never_serves_a_value_deleted_in_redis() {
    let redis = TestRedis::start();
    let d = dir("restart-deleted");
    run_writer(Some(&redis), &d, "redis").await;
    let other = Cache::new(common::on(&redis, CacheConfig::builder()).build().unwrap()).unwrap();
    other.delete("analysis:a").await.unwrap();
    // Redis first: the miss in Redis sends the call to its loader, which fails.
    let c = cache_on(Some(&redis), &d, ReadOrder::RedisFirst, false);
    assert!(
        analysis_fail_safe(&c, "a".into()).await.is_err(),
        "deleted in Redis, not stale"
    );
    assert_eq!(analysis_fail_safe(&c, "b".into()).await, Ok(big("analysis:b")));
    assert_eq!(c.stats().await.stale_served, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_bus_a_disk_copy_is_trusted_no_longer_than_l1s() {
    let redis = TestRedis::start();
    let mut cfg = l3(&dir("no-bus"), ReadOrder::DiskFirst);
    cfg.promote_max = bytesize(0);
    let a = Cache::new(
        common::on(&redis, CacheConfig::builder().l3_config(cfg))
            .l1_invalidation(false)
            .l1_ttl(Duration::from_millis(300))
            .build()
            .unwrap(),
    )
    .unwrap();
    let b = Cache::new(common::on(&redis, CacheConfig::builder()).build().unwrap()).unwrap();
    a.set("analysis:x", &big("v1"), None).await.unwrap();
    a.flush_disk().await;
    b.set("analysis:x", &big("v2"), None).await.unwrap();
    // a hears nothing: like its L1 copy, its disk copy may be served for l1_ttl, not longer.
    within_5s("the disk copy is checked again", || async {
        a.get::<String>("analysis:x").await.unwrap() == Some(big("v2"))
    })
    .await;
}
