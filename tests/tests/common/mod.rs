//! Checks shared by the topology suites (TLS, ACL, Sentinel, Cluster): the same calls, on
//! whatever Redis the cache was configured with.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use cache_core::Cache;

/// Every call a cache makes, checked on `cache` (set, get, mget, batch, delete, pattern
/// invalidation, clear, locks) with values that only the right key gives.
pub async fn exercise(cache: &Cache) {
    cache.clear().await.unwrap();
    cache.set("query:t:1", &11u64, None).await.unwrap();
    assert_eq!(cache.get::<u64>("query:t:1").await.unwrap(), Some(11));
    cache
        .mset(&[("query:t:2", 22u64), ("query:t:3", 33u64)], None)
        .await
        .unwrap();
    assert_eq!(
        cache
            .mget::<u64, _>(&["query:t:1", "query:t:2", "query:t:3", "query:t:4"])
            .await
            .unwrap(),
        vec![Some(11), Some(22), Some(33), None]
    );
    let loads = AtomicU32::new(0);
    let v: u64 = cache
        .get_or_insert_with("query:t:5", None, || async {
            loads.fetch_add(1, Ordering::Relaxed);
            55
        })
        .await;
    assert_eq!(v, 55);
    assert!(cache.exists("query:t:5").await.unwrap());
    assert!(cache.ttl_remaining("query:t:5").await.unwrap().is_some());
    assert!(cache.delete("query:t:1").await.unwrap());
    assert_eq!(cache.invalidate_pattern("query:t:*").await.unwrap(), 3);
    let token = cache
        .try_lock("job", Duration::from_secs(5))
        .await
        .unwrap()
        .expect("free lock");
    assert!(cache
        .try_lock("job", Duration::from_secs(5))
        .await
        .unwrap()
        .is_none());
    assert!(cache.release_lock("job", &token).await.unwrap());
    cache.set("static:x", &1u8, None).await.unwrap();
    assert_eq!(cache.clear().await.unwrap(), 1);
    assert_eq!(cache.stats().await.errors, 0, "no Redis error on the way");
    let health = cache.health().await;
    assert!(health.redis.as_ref().unwrap().reachable, "{health:?}");
}

/// Two caches built by `config`: every call checked on the first ([`exercise`]), then
/// cross-instance invalidation between them ([`cross_instance`]).
pub async fn two_instances(config: impl Fn() -> cache_core::CacheConfig) -> (Cache, Cache) {
    let a = Cache::new(config()).unwrap();
    exercise(&a).await;
    let b = Cache::new(config()).unwrap();
    cross_instance(&a, &b).await;
    (a, b)
}

/// Two instances: B drops its L1 copy when A writes (pub/sub over the same transport).
pub async fn cross_instance(a: &Cache, b: &Cache) {
    let key = "resource:shared:1";
    b.set(key, &"v0".to_string(), None).await.unwrap();
    assert_eq!(b.get::<String>(key).await.unwrap().as_deref(), Some("v0"));
    let t0 = Instant::now();
    loop {
        a.set(key, &"v1".to_string(), None).await.unwrap();
        if b.get::<String>(key).await.unwrap().as_deref() == Some("v1") {
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(5), "B kept its stale L1 copy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The value a load test's function returns for key number `i`: a wrong value anywhere (a
/// mixed-up key, a stale or corrupt read) shows as a mismatch.
pub fn value_of(i: u64) -> u64 {
    i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xA5A5
}

/// `tasks` tasks calling a cached function over `keys` keys until stopped.
pub struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handles: Vec<tokio::task::JoinHandle<(u64, u64)>>,
}

/// What a load saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Calls answered.
    pub calls: u64,
    /// Calls answered with another key's or a corrupt value.
    pub wrong: u64,
    /// Calls that failed (a panicking task counts as one).
    pub failed: u64,
}

impl Load {
    pub fn start(cache: &Cache, tasks: usize, keys: u64) -> Load {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let handles = (0..tasks)
            .map(|t| {
                let (cache, stop) = (cache.clone(), stop.clone());
                tokio::spawn(async move {
                    let (mut calls, mut wrong) = (0u64, 0u64);
                    while !stop.load(Ordering::Relaxed) {
                        // 7919 is prime to any key count used here: every task walks every key.
                        let n = (t as u64 * 97 + calls * 7919) % keys;
                        let v: u64 =
                            cache
                                .get_or_insert_with(&format!("query:load:{n}"), None, || async move {
                                    value_of(n)
                                })
                                .await;
                        calls += 1;
                        if v != value_of(n) {
                            wrong += 1;
                        }
                        if calls % 16 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                    (calls, wrong)
                })
            })
            .collect();
        Load { stop, handles }
    }

    pub async fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut report = LoadReport::default();
        for h in self.handles {
            match h.await {
                Ok((calls, wrong)) => {
                    report.calls += calls;
                    report.wrong += wrong;
                }
                Err(_) => report.failed += 1,
            }
        }
        report
    }
}

/// Waits until the cache serves L2 hits again (at least 50 more within 200 ms), up to
/// `timeout`; returns when that began, measured from `since`.
pub async fn l2_hits_again(cache: &Cache, since: Instant, timeout: Duration) -> Duration {
    loop {
        let before = cache.stats().await.l2_hits;
        let at = since.elapsed();
        tokio::time::sleep(Duration::from_millis(200)).await;
        if cache.stats().await.l2_hits >= before + 50 {
            return at;
        }
        if since.elapsed() > timeout {
            let (stats, health) = (cache.stats().await, cache.health().await);
            panic!("no L2 hits within {timeout:?} after the failure: {stats:?} {health:?}");
        }
    }
}

/// Polls a read of `key` from Redis (the cache must run with L1 off) until it returns the
/// value again, up to `timeout`; returns when, measured from `since`.
pub async fn served_again(
    cache: &Cache,
    key: &str,
    want: u64,
    since: Instant,
    timeout: Duration,
) -> Duration {
    loop {
        if let Ok(Some(v)) = cache.get::<u64>(key).await {
            assert_eq!(v, want, "{key}");
            return since.elapsed();
        }
        assert!(
            since.elapsed() < timeout,
            "{key} not served from Redis within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `builder` pointed at `redis`, whatever its topology.
pub fn on(
    redis: &cache_test_harness::TestRedis,
    builder: cache_core::CacheConfigBuilder,
) -> cache_core::CacheConfigBuilder {
    match redis.urls() {
        cache_test_harness::RedisUrls::Single(url) => builder.redis_url(url),
        cache_test_harness::RedisUrls::Cluster(urls) => builder.redis_cluster_urls(urls),
    }
}

/// 64 tasks call a cached function on `cache` (which must run with L1 off, so every call reads
/// Redis) while `fail` breaks Redis and waits for its recovery (a primary killed and replaced).
/// Asserts that no call failed or got a wrong value, prints what it measured under `what`, and
/// returns (time until `fail` returned, time until Redis served `query:load:1` again), both
/// from the start of `fail`.
pub async fn failover_under_load<F, Fut>(what: &str, cache: &Cache, fail: F) -> (Duration, Duration)
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = String>,
{
    let load = Load::start(cache, 64, 500);
    l2_hits_again(cache, Instant::now(), Duration::from_secs(10)).await;
    let started = Instant::now();
    let detail = fail().await;
    let promoted = started.elapsed();
    let back = served_again(
        cache,
        "query:load:1",
        value_of(1),
        started,
        Duration::from_secs(30),
    )
    .await;
    let report = load.stop().await;
    eprintln!(
        "{what}: {detail}; promoted after {promoted:?}; Redis serves the key again after {back:?}; \
         {} calls, {} failed, {} wrong",
        report.calls, report.failed, report.wrong
    );
    assert_eq!(report.failed, 0, "{what}: failed calls");
    assert_eq!(report.wrong, 0, "{what}: wrong values");
    assert!(report.calls > 0);
    (promoted, back)
}

/// Polls `cond` every 5 ms until it holds; panics after 5 s. Returns how long it took.
pub async fn within_5s<F, Fut>(what: &str, cond: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    while !cond().await {
        assert!(t0.elapsed() < Duration::from_secs(5), "{what}: not within 5 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    t0.elapsed()
}

/// Waits until `cache` hears other instances: `other` keeps rewriting a probe key that `cache`
/// holds in L1 until `cache` reads the new value. (A cache's first subscription is made in the
/// background after it is built; a message published before it completes is not heard.)
pub async fn until_subscribed(cache: &Cache, other: &Cache) {
    let key = "query:subscription-probe";
    let round = AtomicU32::new(0);
    within_5s("subscribed", || async {
        let n = round.fetch_add(1, Ordering::Relaxed);
        cache.set(key, &n, None).await.unwrap();
        other.set(key, &(n + 1_000_000), None).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        cache.get::<u32>(key).await.unwrap() == Some(n + 1_000_000)
    })
    .await;
}

/// A `get_or_insert_with` of `key` whose loader has started (the load is in flight) and returns
/// `value` only when [`StalledLoad::finish`] lets it: for what happens while a load runs.
pub struct StalledLoad {
    release: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<String>,
}

impl StalledLoad {
    /// Starts the load and waits until its loader runs.
    pub async fn start(cache: &Cache, key: &'static str, value: &'static str) -> Self {
        let (release, wait) = tokio::sync::oneshot::channel::<()>();
        let (started, has_started) = tokio::sync::oneshot::channel::<()>();
        let c = cache.clone();
        let task = tokio::spawn(async move {
            c.get_or_insert_with(key, None, || async move {
                let _ = started.send(());
                let _ = wait.await;
                value.to_owned()
            })
            .await
        });
        has_started.await.unwrap();
        StalledLoad { release, task }
    }

    /// Lets the loader return; what the load's caller got.
    pub async fn finish(self) -> String {
        self.release.send(()).unwrap();
        self.task.await.unwrap()
    }
}
