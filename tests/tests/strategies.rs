//! Strategies: each tested for the behaviour that defines it, through the same `Cache` API.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use cache_core::strategy::{AdaptiveTtl, Eviction, Strategy};
use cache_core::{cache, Cache, CacheConfig};
use cache_test_harness::RedisServer;
use redis::AsyncCommands;

fn l1_only(strategy: Strategy, entries: usize) -> Cache {
    Cache::new(
        CacheConfig::builder()
            .strategy(strategy)
            .max_memory_cache_size(entries)
            .access_sample_rate(1)
            .build()
            .unwrap(),
    )
    .unwrap()
}

async fn present(c: &Cache, keys: &[&str]) -> Vec<bool> {
    let mut out = Vec::new();
    for k in keys {
        out.push(c.get::<u32>(k).await.unwrap().is_some());
    }
    out
}

#[tokio::test]
async fn lru_evicts_the_least_recently_used() {
    let c = l1_only(Strategy::Lru, 3);
    for (i, k) in ["a", "b", "c"].iter().enumerate() {
        c.set(k, &(i as u32), None).await.unwrap();
        c.run_pending_tasks();
    }
    assert_eq!(c.get::<u32>("a").await.unwrap(), Some(0)); // a is now the most recent
    c.run_pending_tasks();
    c.set("d", &3u32, None).await.unwrap();
    c.run_pending_tasks();
    assert_eq!(
        present(&c, &["a", "b", "c", "d"]).await,
        vec![true, false, true, true]
    );
}

#[tokio::test]
async fn fifo_evicts_in_insertion_order_regardless_of_reads() {
    let c = l1_only(Strategy::Fifo, 3);
    for (i, k) in ["a", "b", "c"].iter().enumerate() {
        c.set(k, &(i as u32), None).await.unwrap();
    }
    for _ in 0..10 {
        assert_eq!(c.get::<u32>("a").await.unwrap(), Some(0));
    }
    c.set("d", &3u32, None).await.unwrap();
    assert_eq!(
        present(&c, &["a", "b", "c", "d"]).await,
        vec![false, true, true, true]
    );
    c.set("e", &4u32, None).await.unwrap();
    assert_eq!(
        present(&c, &["b", "c", "d", "e"]).await,
        vec![false, true, true, true]
    );
    assert_eq!(c.stats().await.local_cache_size, 3);
}

#[tokio::test]
async fn fifo_and_quick_cache_respect_the_byte_bound() {
    for strategy in [Strategy::Fifo, Strategy::Ttl] {
        let c = Cache::new(
            CacheConfig::builder()
                .strategy(strategy.clone())
                .max_memory_cache_size(1000)
                .l1_max_bytes(64 * 1024)
                .build()
                .unwrap(),
        )
        .unwrap();
        for i in 0..100 {
            c.set(&format!("k{i}"), &vec![7u8; 4096], None).await.unwrap();
        }
        let s = c.stats().await;
        assert!(
            s.local_cache_bytes <= 64 * 1024,
            "{strategy:?}: {} bytes",
            s.local_cache_bytes
        );
        assert!(
            s.local_cache_size >= 5,
            "{strategy:?}: {} entries",
            s.local_cache_size
        );
    }
}

#[tokio::test]
async fn tiny_lfu_may_refuse_cold_entries_but_admits_warmed_ones() {
    let c = l1_only(Strategy::TinyLfu, 50);
    for i in 0..50 {
        let k = format!("hot{i}");
        c.set(&k, &i, None).await.unwrap();
        for _ in 0..5 {
            c.get::<u32>(&k).await.unwrap();
        }
    }
    c.run_pending_tasks();
    // Each check right after its insert: was the entry admitted at all?
    let mut cold_admitted = 0;
    for i in 0..20 {
        let k = format!("cold{i}");
        c.set(&k, &i, None).await.unwrap();
        c.run_pending_tasks();
        cold_admitted += u32::from(c.get::<u32>(&k).await.unwrap().is_some());
    }
    assert!(
        cold_admitted < 20,
        "TinyLFU refused never-read entries (admitted {cold_admitted}/20)"
    );
    for i in 0..20 {
        let k = format!("warm{i}");
        cache_core::warming(async { c.set(&k, &i, None).await.unwrap() }).await;
        c.run_pending_tasks();
        assert_eq!(c.get::<u32>(&k).await.unwrap(), Some(i), "{k} admitted");
    }
}

fn adaptive(min: u64, max: u64, patterns: &[&str]) -> AdaptiveTtl {
    AdaptiveTtl {
        min: Duration::from_secs(min),
        max: Duration::from_secs(max),
        hot_reads: 100,
        patterns: patterns.iter().map(|p| p.to_string()).collect(),
    }
}

#[tokio::test]
async fn adaptive_ttl_grows_for_hot_keys_and_stays_low_for_cold_ones() {
    let redis = RedisServer::start();
    let c = Cache::new(
        CacheConfig::builder()
            .redis_url(redis.url())
            .strategy(Strategy::Adaptive(adaptive(10, 1000, &[])))
            .access_sample_rate(1)
            .build()
            .unwrap(),
    )
    .unwrap();
    let mut conn = redis.conn().await;
    let mut ttls = Vec::new();
    c.set("hot", &1u32, None).await.unwrap();
    for round in 0..4 {
        for _ in 0..40 {
            c.get::<u32>("hot").await.unwrap();
        }
        c.set("hot", &round, None).await.unwrap();
        let ms: i64 = conn.pttl("hot").await.unwrap();
        ttls.push(ms);
    }
    // The TTLs chosen (not PTTL, which also counts the milliseconds since the write).
    let chosen: Vec<f64> = c
        .stats()
        .await
        .adaptive_ttls
        .iter()
        .filter(|a| a.key == "hot")
        .map(|a| a.ttl_secs)
        .collect();
    assert_eq!(chosen.len(), 5);
    assert!(
        chosen.windows(2).all(|w| w[1] >= w[0]),
        "hot TTL grows: {chosen:?}"
    );
    assert!(*ttls.last().unwrap() > 990_000, "reaches max: {ttls:?}");
    c.set("cold", &1u32, None).await.unwrap();
    let cold: i64 = conn.pttl("cold").await.unwrap();
    assert!(cold <= 10_000 && cold > 9_000, "cold stays at min: {cold}");
    // Explicit TTLs win over the strategy.
    c.set("explicit", &1u32, Some(Duration::from_secs(77)))
        .await
        .unwrap();
    let e: i64 = conn.pttl("explicit").await.unwrap();
    assert!(e <= 77_000 && e > 70_000);
    let s = c.stats().await;
    let last_hot = s.adaptive_ttls.iter().rev().find(|a| a.key == "hot").unwrap();
    assert!(last_hot.reads >= 160 && last_hot.ttl_secs > 990.0, "{last_hot:?}");
    assert!(s
        .adaptive_ttls
        .iter()
        .any(|a| a.key == "cold" && a.ttl_secs == 10.0));
}

#[tokio::test]
async fn hybrid_combines_lru_pattern_ttl_and_adaptive_for_chosen_patterns() {
    let redis = RedisServer::start();
    let c = Cache::new(
        CacheConfig::builder()
            .redis_url(redis.url())
            .max_memory_cache_size(2)
            .access_sample_rate(1)
            .strategy(Strategy::Hybrid {
                eviction: Eviction::Lru,
                adaptive: Some(adaptive(20, 2000, &["query:*"])),
            })
            .build()
            .unwrap(),
    )
    .unwrap();
    let mut conn = redis.conn().await;
    c.set("resource:r", &1u32, None).await.unwrap();
    c.set("query:q", &1u32, None).await.unwrap();
    let r: i64 = conn.pttl("resource:r").await.unwrap();
    let q: i64 = conn.pttl("query:q").await.unwrap();
    assert!(r > 595_000, "resource:* keeps its pattern TTL: {r}");
    assert!(q <= 20_000, "query:* is adaptive, cold: {q}");
    // LRU in L1 with room for two: touching query:q keeps it, resource:r goes.
    c.run_pending_tasks();
    c.get::<u32>("query:q").await.unwrap();
    c.run_pending_tasks();
    c.set("static:s", &1u32, None).await.unwrap();
    c.run_pending_tasks();
    assert_eq!(c.stats().await.local_cache_size, 2);
    let l1_hits = c.stats().await.l1_hits;
    c.get::<u32>("query:q").await.unwrap();
    assert_eq!(c.stats().await.l1_hits, l1_hits + 1, "query:q stayed in L1");
    let l2_hits = c.stats().await.l2_hits;
    c.get::<u32>("resource:r").await.unwrap();
    assert_eq!(
        c.stats().await.l2_hits,
        l2_hits + 1,
        "resource:r was evicted from L1, served by Redis"
    );
}

static ADAPTIVE_CACHE: std::sync::LazyLock<Cache> = std::sync::LazyLock::new(|| l1_only(Strategy::Ttl, 100));

#[cache(prefix = "query", cache = ADAPTIVE_CACHE, strategy = adaptive)]
async fn adaptive_fn(id: u64) -> u64 {
    id
}

#[cache(prefix = "query", cache = ADAPTIVE_CACHE)]
async fn plain_fn(id: u64) -> u64 {
    id
}

#[tokio::test]
async fn strategy_per_function() {
    adaptive_fn(1).await;
    plain_fn(1).await;
    let a = ADAPTIVE_CACHE
        .ttl_remaining("query:strategies::adaptive_fn:1")
        .await
        .unwrap()
        .unwrap();
    let p = ADAPTIVE_CACHE
        .ttl_remaining("query:strategies::plain_fn:1")
        .await
        .unwrap()
        .unwrap();
    // L1-only, so entries live their own TTL (no l1_ttl cap): the adaptive one what the adaptive
    // rule chose (60 s for a cold key, more once it was read), the plain one query:*'s 300 s.
    let s = ADAPTIVE_CACHE.stats().await;
    let chosen = s
        .adaptive_ttls
        .iter()
        .find(|c| c.key == "query:strategies::adaptive_fn:1")
        .map(|c| Duration::from_secs_f64(c.ttl_secs))
        .unwrap();
    assert!(
        a <= chosen && a + Duration::from_secs(5) > chosen,
        "{a:?} vs {chosen:?}"
    );
    assert!(chosen >= Duration::from_secs(60) && chosen != Duration::from_secs(300));
    assert!(
        p <= Duration::from_secs(300) && p > Duration::from_secs(295),
        "{p:?}"
    );
    assert!(!s
        .adaptive_ttls
        .iter()
        .any(|c| c.key == "query:strategies::plain_fn:1"));
}

#[test]
fn invalid_adaptive_bounds_are_config_errors() {
    let bad = CacheConfig::builder()
        .strategy(Strategy::Adaptive(AdaptiveTtl {
            min: Duration::from_secs(100),
            max: Duration::from_secs(10),
            ..AdaptiveTtl::default()
        }))
        .build();
    assert!(bad.is_err());
    let bad = CacheConfig::builder()
        .strategy(Strategy::Adaptive(AdaptiveTtl {
            patterns: vec!["a[".into()],
            ..AdaptiveTtl::default()
        }))
        .build();
    assert!(bad.is_err());
    let text = "[strategy]\nkind = \"hybrid\"\neviction = \"fifo\"\n[strategy.adaptive]\nmin = \"1m\"\nmax = \"1h\"\nhot_reads = 50\npatterns = [\"query:*\"]\n";
    let c = CacheConfig::from_toml_str(text).unwrap();
    assert_eq!(c.strategy.eviction(), Eviction::Fifo);
    assert_eq!(c.strategy.adaptive().unwrap().hot_reads, 50);
}
