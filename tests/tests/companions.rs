//! The companions of a cached function (`f_key`, `f_invalidate`, `f_invalidate_all`,
//! `f_refresh`, `f_uncached`, `f_peek`), `#[invalidate_cache(f(args))]`, and the options
//! `condition`, `unless` and `max_entries`, against a real Redis with two instances.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

use cache_core::{cache, cache_query, invalidate_cache, Cache, CacheConfig};
use cache_test_harness::TestRedis;

mod common;

use common::{until_subscribed, within_5s};

fn cache(redis: &TestRedis, ns: &str) -> Cache {
    Cache::new(
        common::on(redis, CacheConfig::builder())
            .namespace(ns)
            .build()
            .unwrap(),
    )
    .unwrap()
}

/// The "database": a version per user, and how often the body ran.
static NAMES: LazyLock<Mutex<HashMap<u64, String>>> = LazyLock::new(Default::default);
static RUNS: AtomicU64 = AtomicU64::new(0);

fn set_name(id: u64, name: &str) {
    NAMES.lock().unwrap().insert(id, name.to_owned());
}

#[cache_query(cache = cache, ttl = 600)]
async fn user_name(cache: &Cache, id: u64) -> String {
    RUNS.fetch_add(1, Ordering::SeqCst);
    NAMES.lock().unwrap().get(&id).cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_companion_gives_the_key_the_function_uses() {
    let redis = TestRedis::start();
    let a = cache(&redis, "companions-key");
    set_name(900, "kim");
    assert_eq!(user_name(&a, 900).await, "kim");
    let key = user_name_key(900);
    assert_eq!(key, format!("query:{}::user_name:900", module_path!()));
    assert_eq!(a.get::<String>(&key).await.unwrap().as_deref(), Some("kim"));
}

/// Invalidating through the companion on A reaches A's L1, Redis, and B's L1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_reaches_l1_and_redis_on_two_instances() {
    let redis = TestRedis::start();
    let (a, b) = (cache(&redis, "companions-inv"), cache(&redis, "companions-inv"));
    until_subscribed(&b, &a).await;
    set_name(1, "ann");
    assert_eq!(user_name(&a, 1).await, "ann");
    assert_eq!(user_name(&b, 1).await, "ann"); // B's L1 now holds it too
    set_name(1, "bea");
    assert!(user_name_invalidate(&a, 1).await.unwrap(), "the entry was there");
    assert_eq!(user_name_peek(&a, 1).await, None, "gone from A and from Redis");
    within_5s("B dropped its L1 copy", || async {
        user_name(&b, 1).await == "bea"
    })
    .await;
    assert_eq!(user_name(&a, 1).await, "bea");
}

/// A refresh on A runs the body once and stores; B then reads the new value without running it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_stores_a_value_other_instances_read() {
    let redis = TestRedis::start();
    let (a, b) = (cache(&redis, "companions-ref"), cache(&redis, "companions-ref"));
    until_subscribed(&b, &a).await;
    set_name(2, "cy");
    assert_eq!(user_name(&b, 2).await, "cy");
    set_name(2, "dee");
    let runs = RUNS.load(Ordering::SeqCst);
    assert_eq!(user_name_refresh(&a, 2).await, "dee");
    within_5s("B reads the refreshed value", || async {
        user_name(&b, 2).await == "dee"
    })
    .await;
    assert_eq!(user_name_peek(&a, 2).await.as_deref(), Some("dee"));
    // Other tests run the body too; this one's key ran it only in the refresh.
    let _ = runs;
    assert_eq!(
        a.get::<String>(&user_name_key(2)).await.unwrap().as_deref(),
        Some("dee")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peek_never_runs_the_body_and_uncached_never_stores() {
    let redis = TestRedis::start();
    let a = cache(&redis, "companions-peek");
    set_name(3, "eve");
    assert_eq!(peeked_peek(&a, 3).await, None);
    assert_eq!(PEEK_RUNS.load(Ordering::SeqCst), 0, "peek ran the body");
    assert_eq!(peeked_uncached(&a, 3).await, "eve");
    assert_eq!(PEEK_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(peeked_peek(&a, 3).await, None, "uncached stored its value");
    assert_eq!(peeked(&a, 3).await, "eve");
    assert_eq!(peeked_peek(&a, 3).await.as_deref(), Some("eve"));
    assert_eq!(PEEK_RUNS.load(Ordering::SeqCst), 2);
}

static PEEK_RUNS: AtomicU64 = AtomicU64::new(0);

#[cache_query(cache = cache)]
async fn peeked(cache: &Cache, id: u64) -> String {
    PEEK_RUNS.fetch_add(1, Ordering::SeqCst);
    NAMES.lock().unwrap().get(&id).cloned().unwrap_or_default()
}

#[cache_query(cache = cache)]
async fn orders(cache: &Cache, user: u64, page: u32) -> Vec<u64> {
    vec![user, u64::from(page)]
}

/// `invalidate_all` deletes every entry of the function, and only its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_all_deletes_the_function_s_key_space_only() {
    let redis = TestRedis::start();
    let a = cache(&redis, "companions-all");
    for u in 0..5 {
        orders(&a, u, 1).await;
    }
    set_name(4, "fay");
    user_name(&a, 4).await;
    assert_eq!(orders_invalidate_all(&a).await.unwrap(), 5);
    for u in 0..5 {
        assert_eq!(orders_peek(&a, u, 1).await, None);
    }
    assert_eq!(
        user_name_peek(&a, 4).await.as_deref(),
        Some("fay"),
        "another function's entry went too"
    );
}

static TYPED: LazyLock<Cache> = LazyLock::new(|| Cache::new(CacheConfig::default()).unwrap());
static PROFILE_RUNS: AtomicU64 = AtomicU64::new(0);

#[cache(cache = TYPED)]
async fn profile(id: u64, region: &str) -> String {
    PROFILE_RUNS.fetch_add(1, Ordering::SeqCst);
    format!(
        "{id}@{region}:{}",
        NAMES.lock().unwrap().get(&id).cloned().unwrap_or_default()
    )
}

/// The typed form: the key is the companion's, so it cannot drift from the function's.
#[invalidate_cache(profile(id, &region), cache = TYPED)]
async fn rename(id: u64, region: String, name: &str) -> Result<(), String> {
    set_name(id, name);
    let _ = region; // the body may consume its arguments
    Ok(())
}

#[tokio::test]
async fn invalidate_cache_takes_a_typed_call() {
    set_name(5, "gus");
    assert_eq!(profile(5, "eu").await, "5@eu:gus");
    assert_eq!(profile(5, "us").await, "5@us:gus");
    rename(5, "eu".to_owned(), "hal").await.unwrap();
    assert_eq!(profile(5, "eu").await, "5@eu:hal");
    assert_eq!(profile(5, "us").await, "5@us:gus", "only the named entry goes");
}

static COND_RUNS: AtomicU64 = AtomicU64::new(0);

#[cache(cache = TYPED, condition = id < 100, unless = |v: &Vec<u64>| v.is_empty())]
async fn conditional(id: u64) -> Vec<u64> {
    COND_RUNS.fetch_add(1, Ordering::SeqCst);
    if id.is_multiple_of(2) {
        vec![id]
    } else {
        Vec::new()
    }
}

#[tokio::test]
async fn condition_skips_the_cache_and_unless_keeps_a_value_out() {
    let runs = || COND_RUNS.load(Ordering::SeqCst);
    conditional(2).await;
    conditional(2).await;
    assert_eq!(runs(), 1, "cached under the condition");
    conditional(200).await;
    conditional(200).await;
    assert_eq!(runs(), 3, "condition false: no cache");
    assert_eq!(conditional_peek(200).await, None);
    conditional(3).await;
    conditional(3).await;
    assert_eq!(runs(), 5, "an empty value is left out");
    assert_eq!(conditional_peek(3).await, None);
}

static BOUNDED: LazyLock<Cache> = LazyLock::new(|| {
    Cache::new(
        CacheConfig::builder()
            .max_memory_cache_size(5_000)
            .build()
            .unwrap(),
    )
    .unwrap()
});
static HOT_RUNS: AtomicU64 = AtomicU64::new(0);

#[cache(cache = BOUNDED, max_entries = 100)]
async fn search(q: u64) -> u64 {
    q
}

#[cache(cache = BOUNDED)]
async fn hot(id: u64) -> u64 {
    HOT_RUNS.fetch_add(1, Ordering::SeqCst);
    id
}

/// 100 000 distinct arguments of one function keep to its 100 entries, and the other function
/// keeps its 1 000 entries (and its hits) in an L1 of 5 000.
#[tokio::test]
async fn max_entries_holds_while_other_functions_keep_their_hits() {
    for id in 0..1_000 {
        hot(id).await;
    }
    for q in 0..100_000 {
        search(q).await;
    }
    BOUNDED.run_pending_tasks();
    let stats = BOUNDED.stats().await;
    assert!(
        stats.local_cache_size <= 1_100,
        "L1 holds {} entries",
        stats.local_cache_size
    );
    assert_eq!(stats.max_entries_evictions, 100_000 - 100);
    for id in 0..1_000 {
        hot(id).await;
    }
    assert_eq!(
        HOT_RUNS.load(Ordering::SeqCst),
        1_000,
        "the other function lost entries"
    );
    let search_stats = cache_core::perf::functions()
        .into_iter()
        .find(|f| f.name.ends_with("::search"))
        .unwrap();
    assert_eq!(search_stats.evicted_by_max_entries, 100_000 - 100);
    // The last 100 are still hits.
    assert_eq!(search_peek(99_999).await, Some(99_999));
    assert_eq!(search_peek(0).await, None);
}

static SLIDE_RUNS: AtomicU64 = AtomicU64::new(0);

#[cache(cache = cache, ttl = "30s", ttl_idle = "10s")]
async fn sliding(cache: &Cache, id: u64) -> u64 {
    SLIDE_RUNS.fetch_add(1, Ordering::SeqCst);
    id
}

/// Reads 6 s apart keep a `ttl_idle = "10s"` entry alive, up to its 30 s TTL; 11 s without a
/// read lets it go.
#[tokio::test(start_paused = true)]
async fn ttl_idle_slides_with_reads_up_to_the_ttl() {
    let cache = Cache::new(CacheConfig::default()).unwrap();
    let runs = || SLIDE_RUNS.load(Ordering::SeqCst);
    let step = std::time::Duration::from_secs(6);
    sliding(&cache, 1).await;
    for _ in 0..4 {
        tokio::time::advance(step).await;
        sliding(&cache, 1).await; // at 6, 12, 18, 24 s: each within 10 s of the last
    }
    assert_eq!(runs(), 1, "a read inside the idle window kept the entry");
    tokio::time::advance(step).await;
    sliding(&cache, 1).await; // 30 s: the TTL, however recent the last read
    assert_eq!(runs(), 2, "reads extended the entry past its TTL");
    tokio::time::advance(std::time::Duration::from_secs(11)).await;
    sliding(&cache, 1).await;
    assert_eq!(runs(), 3, "an entry idle for 11 s was still served");
}

static GATE: LazyLock<tokio::sync::Notify> = LazyLock::new(tokio::sync::Notify::new);
static STALL_NEXT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[cache_query(cache = cache)]
async fn gated(cache: &Cache, id: u64) -> String {
    let name = NAMES.lock().unwrap().get(&id).cloned().unwrap_or_default();
    if STALL_NEXT.swap(false, Ordering::SeqCst) {
        GATE.notified().await;
    }
    name
}

/// A miss that read the old row before a write, and finishes after the write's refresh, must
/// not overwrite the refreshed value. (A refresh stored as a load's fill did not record itself,
/// so the slower miss stored the old row over it.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_wins_over_a_miss_that_read_before_it() {
    let redis = TestRedis::start();
    let a = std::sync::Arc::new(cache(&redis, "companions-race"));
    set_name(7, "old");
    STALL_NEXT.store(true, Ordering::SeqCst);
    let slow = {
        let a = a.clone();
        tokio::spawn(async move { gated(&a, 7).await })
    };
    // The miss has read "old" once STALL_NEXT is consumed.
    within_5s("the miss read the row", || async {
        !STALL_NEXT.load(Ordering::SeqCst)
    })
    .await;
    set_name(7, "new");
    assert_eq!(gated_refresh(&a, 7).await, "new");
    GATE.notify_one();
    assert_eq!(slow.await.unwrap(), "old", "the slow miss returns what it read");
    assert_eq!(
        gated_peek(&a, 7).await.as_deref(),
        Some("new"),
        "the slow miss overwrote the refresh"
    );
    assert_eq!(gated(&a, 7).await, "new");
}

static SYNC_RUNS: AtomicU64 = AtomicU64::new(0);

#[cache_query(cache = cache, ttl = 600)]
fn parse_rules(cache: &Cache, version: u32) -> Vec<String> {
    SYNC_RUNS.fetch_add(1, Ordering::SeqCst);
    vec![format!("rules v{version}")]
}

static SYNC_L1: LazyLock<Cache> = LazyLock::new(|| Cache::new(CacheConfig::default()).unwrap());
static SYNC_L1_RUNS: AtomicU64 = AtomicU64::new(0);

#[cache(cache = SYNC_L1, key = "static:sync:{n}")]
fn square(n: u64) -> u64 {
    SYNC_L1_RUNS.fetch_add(1, Ordering::SeqCst);
    n * n
}

/// A synchronous function outside any runtime: L1 only, the body runs once.
#[test]
fn a_sync_function_caches_in_l1_without_a_runtime() {
    assert_eq!(square(12), 144);
    assert_eq!(square(12), 144);
    assert_eq!(SYNC_L1_RUNS.load(Ordering::SeqCst), 1);
    assert_eq!(square_key(12), "static:sync:12");
    assert_eq!(square_uncached(12), 144);
    assert_eq!(SYNC_L1_RUNS.load(Ordering::SeqCst), 2);
}

/// Inside a runtime the value reaches Redis in the background, where another instance reads it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_function_writes_through_to_redis_in_the_background() {
    let redis = TestRedis::start();
    let (a, b) = (cache(&redis, "companions-sync"), cache(&redis, "companions-sync"));
    assert_eq!(parse_rules(&a, 7), vec!["rules v7".to_owned()]);
    assert_eq!(parse_rules(&a, 7), vec!["rules v7".to_owned()]);
    assert_eq!(
        SYNC_RUNS.load(Ordering::SeqCst),
        1,
        "the second call was not an L1 hit"
    );
    let key = parse_rules_key(7);
    within_5s("B reads the value from Redis", || async {
        b.get::<Vec<String>>(&key).await.unwrap() == Some(vec!["rules v7".to_owned()])
    })
    .await;
    // Invalidated through the async companion: the next sync call runs the body again.
    assert!(parse_rules_invalidate(&a, 7).await.unwrap());
    parse_rules(&a, 7);
    assert_eq!(SYNC_RUNS.load(Ordering::SeqCst), 2);
}
