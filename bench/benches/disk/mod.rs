//! The disk tier (issue 20): section `p9` of the peers bench. L3 hit latency (p50/p99) for
//! 10 KB and 1 MB values against a Redis L2 hit and decode and against recomputing a 50 ms
//! function; throughput at 16 tasks; the hit rate of the first minute after a restart with and
//! without the disk, on a Zipf(1.0) workload over 10 k keys larger than L1.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cache_core::config::{ByteSize, DiskConfig, ReadOrder};
use cache_core::{Cache, CacheConfig};
use cache_test_harness::RedisServer;

use super::{quick, section, Row};

/// `n` bytes that do not compress.
fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// `n` letters: text that compresses to about 60 %.
fn letters(seed: u64, n: usize) -> String {
    noise(seed, n)
        .into_iter()
        .map(|b| char::from(b'a' + b % 26))
        .collect()
}

/// How long a read took; its value must be there.
async fn time<T>(read: impl std::future::Future<Output = cache_core::Result<Option<T>>>) -> Duration {
    let t = Instant::now();
    let v = read.await.unwrap();
    let took = t.elapsed();
    assert!(v.is_some());
    took
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bench-l3-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn l3(dir: &Path, capacity: u64) -> DiskConfig {
    let mut c = DiskConfig::default();
    c.dir = Some(dir.to_owned());
    c.capacity = ByteSize(capacity);
    c.patterns = vec!["p9:*".into()];
    c.read_order = ReadOrder::DiskFirst;
    c
}

/// Two caches without L1 on `redis`: one with the disk tier in `dir`, one without.
fn pair(redis: &RedisServer, dir: &Path) -> (Cache, Cache) {
    let on = |b: cache_core::CacheConfigBuilder| {
        Cache::new(b.redis_url(redis.url()).l1_enabled(false).build().unwrap()).unwrap()
    };
    (
        on(CacheConfig::builder().l3_config(l3(dir, 1 << 30))),
        on(CacheConfig::builder()),
    )
}

fn pct(mut v: Vec<Duration>, q: f64) -> f64 {
    v.sort();
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1e6
}

pub fn rows(rt: &tokio::runtime::Runtime, redis: &RedisServer) -> Vec<Row> {
    let mut rows = Vec::new();
    if !section("p9") {
        return rows;
    }
    rt.block_on(async {
        let (on_disk, redis_only) = pair(redis, &dir("hits"));
        // Text compresses (Redis holds it zlib'd, the disk inflated); random bytes do not, and
        // bincode decodes a `Vec<u8>` element by element (~1.9 ms a MB here), which both paths pay.
        for (kind, text) in [("text", true), ("bytes", false)] {
            for (label, size, n) in [
                ("2 KB", 2_000usize, if quick() { 300 } else { 3000 }),
                ("10 KB", 10_000usize, if quick() { 300 } else { 3000 }),
                ("1 MB", 1 << 20, if quick() { 40 } else { 300 }),
            ] {
                let keys = 32u64;
                for k in 0..keys {
                    let key = format!("p9:{kind}:{size}:{k}");
                    if text {
                        on_disk.set(&key, &letters(k, size), None).await.unwrap();
                    } else {
                        on_disk.set(&key, &noise(k, size), None).await.unwrap();
                    }
                }
                on_disk.flush_disk().await;
                let (mut disk, mut l2) = (Vec::new(), Vec::new());
                for i in 0..n {
                    let key = format!("p9:{kind}:{size}:{}", i as u64 % keys);
                    let (d, r) = if text {
                        (
                            time(on_disk.get::<String>(&key)).await,
                            time(redis_only.get::<String>(&key)).await,
                        )
                    } else {
                        (
                            time(on_disk.get::<Vec<u8>>(&key)).await,
                            time(redis_only.get::<Vec<u8>>(&key)).await,
                        )
                    };
                    disk.push(d);
                    l2.push(r);
                }
                for (q, name) in [(0.5, "p50"), (0.99, "p99")] {
                    let (d, r) = (pct(disk.clone(), q), pct(l2.clone(), q));
                    let target = if label == "1 MB" && name == "p50" && text {
                        "≥ 2× (L3 ≤ 0.5× Redis)"
                    } else {
                        "-"
                    };
                    rows.push(Row {
                        section: "P9",
                        what: format!("L3 hit {label} {kind} {name}"),
                        ours: d,
                        peer_name: "Redis L2 hit + decode".into(),
                        peer: r,
                        unit: "µs",
                        higher_is_better: false,
                        target: target.into(),
                    });
                    rows.push(Row {
                        section: "P9",
                        what: format!("L3 hit {label} {kind} {name}"),
                        ours: d,
                        peer_name: "recompute (50 ms fn)".into(),
                        peer: 50_000.0,
                        unit: "µs",
                        higher_is_better: false,
                        target: "-".into(),
                    });
                }
            }
        }
        let s = on_disk.stats().await;
        assert!(s.l3_hits > 0 && s.l2_hits == 0, "read from disk: {s:?}");
    });
    // Throughput at 16 tasks, 10 KB values.
    let (disk_rate, l2_rate) = rt.block_on(async {
        let (on_disk, redis_only) = pair(redis, &dir("tput"));
        for k in 0..256u64 {
            on_disk
                .set(&format!("p9:t:{k}"), &noise(k, 10_000), None)
                .await
                .unwrap();
        }
        on_disk.flush_disk().await;
        let ops = if quick() { 200 } else { 1000 };
        let run = |c: Cache| async move {
            let t = Instant::now();
            let tasks: Vec<_> = (0..16u64)
                .map(|task| {
                    let c = c.clone();
                    tokio::spawn(async move {
                        for i in 0..ops {
                            let v = c
                                .get::<Vec<u8>>(&format!("p9:t:{}", (task * 31 + i) % 256))
                                .await
                                .unwrap();
                            assert!(v.is_some());
                        }
                    })
                })
                .collect();
            for t in tasks {
                t.await.unwrap();
            }
            (16 * ops) as f64 / t.elapsed().as_secs_f64()
        };
        let mut best = (0f64, 0f64);
        for _ in 0..3 {
            best.0 = best.0.max(run(on_disk.clone()).await);
            best.1 = best.1.max(run(redis_only.clone()).await);
        }
        best
    });
    rows.push(Row {
        section: "P9",
        what: "L3 hits 10 KB at 16 tasks".into(),
        ours: disk_rate,
        peer_name: "Redis L2 hits + decode".into(),
        peer: l2_rate,
        unit: "ops/s",
        higher_is_better: true,
        target: "-".into(),
    });
    // The first minute after a restart: L1 (1 000 entries) + disk against L1 alone.
    let secs = if quick() { 10 } else { 60 };
    let with = restart_hit_rate(rt, true, secs);
    let without = restart_hit_rate(rt, false, secs);
    rows.push(Row {
        section: "P9",
        what: format!("hit rate, first {secs} s after a restart (Zipf 1.0, 10 k keys, L1 1 k)"),
        ours: with * 100.0,
        peer_name: "L1 alone (no disk tier)".into(),
        peer: without * 100.0,
        unit: "%",
        higher_is_better: true,
        target: "-".into(),
    });
    rows
}

/// Zipf(1.0) over `n` keys: the cumulative weights, sampled by binary search.
struct Zipf {
    cdf: Vec<f64>,
    x: u64,
}

impl Zipf {
    fn new(n: usize) -> Self {
        let mut acc = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                acc += 1.0 / k as f64;
                acc
            })
            .collect();
        for c in &mut cdf {
            *c /= acc;
        }
        Zipf {
            cdf,
            x: 0x2545_F491_4F6C_DD1D,
        }
    }

    fn sample(&mut self) -> usize {
        self.x ^= self.x << 13;
        self.x ^= self.x >> 7;
        self.x ^= self.x << 17;
        let u = (self.x >> 11) as f64 / (1u64 << 53) as f64;
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
    }
}

/// Runs Zipf traffic for a while, restarts the process's cache on the same directory, and
/// returns the hit rate (no loader call) of the first `secs` seconds at 1 000 requests/s.
fn restart_hit_rate(rt: &tokio::runtime::Runtime, with_disk: bool, secs: u64) -> f64 {
    let d = dir(if with_disk { "restart" } else { "restart-none" });
    let build = || {
        let b = CacheConfig::builder().max_memory_cache_size(1_000);
        let b = if with_disk {
            b.l3_config(l3(&d, 1 << 30))
        } else {
            b
        };
        Cache::new(b.build().unwrap()).unwrap()
    };
    rt.block_on(async {
        let mut zipf = Zipf::new(10_000);
        let load = |k: usize| async move { noise(k as u64, 10_000) };
        let c = build();
        for _ in 0..50_000 {
            let k = zipf.sample();
            c.get_or_insert_with(&format!("p9:z:{k}"), None, || load(k)).await;
        }
        c.flush_disk().await;
        drop(c);
        let c = build();
        let before = c.stats().await.loader_calls;
        let total = secs * 1000;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        for _ in 0..total {
            tick.tick().await;
            let k = zipf.sample();
            c.get_or_insert_with(&format!("p9:z:{k}"), None, || load(k)).await;
        }
        let loads = c.stats().await.loader_calls - before;
        1.0 - loads as f64 / total as f64
    })
}
