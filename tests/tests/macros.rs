//! The attribute macros against a real, private `redis-server`. Each test passes its own `Cache`
//! through `cache = cache` (an argument, left out of the key automatically).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use cache_core::{
    cache, cache_analysis, cache_query, cache_resource, cache_result, invalidate_cache, warmup_cache, Cache,
    CacheConfig,
};
use cache_test_harness::TestRedis;

mod common;
use redis::AsyncCommands;
use serde::{Deserialize, Serialize};

static CALLS: AtomicUsize = AtomicUsize::new(0);

fn two_level(redis: &TestRedis) -> Cache {
    Cache::new(common::on(redis, CacheConfig::builder()).build().unwrap()).unwrap()
}

async fn keys(redis: &TestRedis, pattern: &str) -> Vec<String> {
    let mut k: Vec<String> = redis.conn().await.keys(pattern).await.unwrap();
    k.sort();
    k
}

async fn pttl(redis: &TestRedis, key: &str) -> i64 {
    redis.conn().await.pttl(key).await.unwrap()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    user_id: u64,
}

mod orders {
    use super::*;

    pub static ORDER_CALLS: AtomicUsize = AtomicUsize::new(0);

    /// The guide's `@cache_query(ttl=600) async def get_user_orders(user_id)`.
    #[cache_query(ttl = 600, cache = cache)]
    pub async fn get_user_orders(cache: &Cache, user_id: u64) -> Vec<Order> {
        ORDER_CALLS.fetch_add(1, Ordering::SeqCst);
        vec![Order {
            id: user_id * 10,
            user_id,
        }]
    }
}

#[tokio::test]
async fn cache_query_hits_and_uses_a_readable_key() {
    let redis = TestRedis::start();
    let c = two_level(&redis);
    let first = orders::get_user_orders(&c, 42).await;
    let second = orders::get_user_orders(&c, 42).await;
    assert_eq!(first, second);
    assert_eq!(orders::ORDER_CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(
        keys(&redis, "*").await,
        vec!["query:macros::orders::get_user_orders:42"]
    );
    let ms = pttl(&redis, "query:macros::orders::get_user_orders:42").await;
    assert!(ms > 595_000 && ms <= 600_000, "{ms}");
    let s = c.stats().await;
    assert_eq!((s.l1_hits, s.misses), (1, 1));
    // The key is the one `cache.get` uses: both paths reach the same entry.
    let via_api: Option<Vec<Order>> = c.get("query:macros::orders::get_user_orders:42").await.unwrap();
    assert_eq!(via_api, Some(first));
    // A second process (fresh L1) is served by Redis.
    let other = two_level(&redis);
    orders::get_user_orders(&other, 42).await;
    assert_eq!(orders::ORDER_CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(other.stats().await.l2_hits, 1);
}

/// The guide's `@cache_result(ttl=300) async def expensive_calculation(x, y)`.
#[cache_result(ttl = 300, cache = cache)]
async fn expensive_calculation(cache: &Cache, x: i64, y: i64) -> i64 {
    CALLS.fetch_add(1, Ordering::SeqCst);
    x * 1000 + y
}

#[cache_resource(cache = cache)]
async fn freight(cache: &Cache, id: u64) -> String {
    format!("freight {id}")
}

#[cache_analysis(key = "trends:{month}", cache = cache)]
async fn trends(cache: &Cache, month: &str) -> Vec<u32> {
    let _ = month;
    vec![1, 2, 3]
}

#[tokio::test]
async fn ttls_come_from_attributes_or_the_pattern_table() {
    let redis = TestRedis::start();
    let c = two_level(&redis);
    assert_eq!(expensive_calculation(&c, 3, 4).await, 3004);
    assert_eq!(freight(&c, 123).await, "freight 123");
    assert_eq!(trends(&c, "2025-01").await, vec![1, 2, 3]);
    let ms = pttl(&redis, "macros::expensive_calculation:3:4").await;
    assert!(ms > 295_000 && ms <= 300_000, "explicit ttl: {ms}");
    let ms = pttl(&redis, "resource:macros::freight:123").await;
    assert!(ms > 595_000 && ms <= 600_000, "resource:* pattern: {ms}");
    let ms = pttl(&redis, "analysis:trends:2025-01").await;
    assert!(ms > 1_795_000 && ms <= 1_800_000, "analysis:* pattern: {ms}");
}

static USER_CALLS: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct User {
    id: String,
    name: String,
}

#[cache_resource(key = "users:{user_id}", cache = cache)]
async fn get_user(cache: &Cache, user_id: &str) -> User {
    USER_CALLS.fetch_add(1, Ordering::SeqCst);
    User {
        id: user_id.to_owned(),
        name: format!("name-{user_id}"),
    }
}

/// The guide's `@invalidate_cache("resource:users:*") async def update_user(user_id, data)`,
/// with a template so only this user's entries go.
#[invalidate_cache("resource:users:{user_id}", cache = cache)]
async fn update_user(cache: &Cache, user_id: &str, fail: bool) -> Result<(), String> {
    if fail {
        Err("db refused".into())
    } else {
        Ok(())
    }
}

#[invalidate_cache("resource:users:*", cache = cache)]
async fn reset_users(cache: &Cache) -> usize {
    0
}

#[tokio::test]
async fn invalidation_by_template_and_by_pattern() {
    let redis = TestRedis::start();
    let c = two_level(&redis);
    for id in ["1", "2", "a*"] {
        get_user(&c, id).await;
    }
    assert_eq!(USER_CALLS.load(Ordering::SeqCst), 3);
    assert_eq!(keys(&redis, "resource:users:*").await.len(), 3);

    // An Err return invalidates nothing.
    assert!(update_user(&c, "1", true).await.is_err());
    assert_eq!(keys(&redis, "resource:users:*").await.len(), 3);

    update_user(&c, "1", false).await.unwrap();
    assert_eq!(
        keys(&redis, "resource:users:*").await,
        vec!["resource:users:2", "resource:users:a*"]
    );
    get_user(&c, "1").await; // L1 entry went too: this is a miss
    assert_eq!(USER_CALLS.load(Ordering::SeqCst), 4);

    // `a*` as data is escaped: it must not take resource:users:abc with it.
    get_user(&c, "abc").await;
    update_user(&c, "a*", false).await.unwrap();
    assert_eq!(
        keys(&redis, "resource:users:*").await,
        vec!["resource:users:1", "resource:users:2", "resource:users:abc"]
    );

    reset_users(&c).await;
    assert!(keys(&redis, "resource:users:*").await.is_empty());
}

static RESULT_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cache(prefix = "query", cache = cache)]
async fn fallible(cache: &Cache, id: u64, fail: bool) -> Result<u64, String> {
    RESULT_CALLS.fetch_add(1, Ordering::SeqCst);
    if fail {
        Err(format!("failed {id}"))
    } else {
        Ok(id)
    }
}

static OPTION_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cache(prefix = "query", cache = cache)]
async fn maybe(cache: &Cache, id: u64) -> Option<u64> {
    OPTION_CALLS.fetch_add(1, Ordering::SeqCst);
    id.is_multiple_of(2).then_some(id)
}

#[cache(prefix = "query", cache = cache, skip_none)]
async fn maybe_skip_none(cache: &Cache, id: u64) -> Option<u64> {
    OPTION_CALLS.fetch_add(1, Ordering::SeqCst);
    id.is_multiple_of(2).then_some(id)
}

#[tokio::test]
async fn result_and_option_rules() {
    let redis = TestRedis::start();
    let c = two_level(&redis);
    // Result: Err is returned and never cached (flag is in the key, so use the same args twice).
    assert_eq!(fallible(&c, 1, true).await, Err("failed 1".into()));
    assert_eq!(fallible(&c, 1, true).await, Err("failed 1".into()));
    assert_eq!(RESULT_CALLS.load(Ordering::SeqCst), 2);
    assert!(keys(&redis, "query:*fallible*").await.is_empty());
    assert_eq!(fallible(&c, 2, false).await, Ok(2));
    assert_eq!(fallible(&c, 2, false).await, Ok(2));
    assert_eq!(RESULT_CALLS.load(Ordering::SeqCst), 3);

    // Option: None is cached by default...
    assert_eq!(maybe(&c, 1).await, None);
    assert_eq!(maybe(&c, 1).await, None);
    assert_eq!(OPTION_CALLS.load(Ordering::SeqCst), 1);
    // ...and not with skip_none.
    assert_eq!(maybe_skip_none(&c, 1).await, None);
    assert_eq!(maybe_skip_none(&c, 1).await, None);
    assert_eq!(OPTION_CALLS.load(Ordering::SeqCst), 3);
    assert_eq!(maybe_skip_none(&c, 2).await, Some(2));
    assert_eq!(maybe_skip_none(&c, 2).await, Some(2));
    assert_eq!(OPTION_CALLS.load(Ordering::SeqCst), 4);
}

static COLD_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cache_analysis(cache = cache)]
async fn slow_report(cache: Arc<Cache>, id: u64) -> Vec<u64> {
    COLD_CALLS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(200)).await;
    vec![id; 10]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_cold_callers_run_the_function_once() {
    let redis = TestRedis::start();
    let c = Arc::new(two_level(&redis));
    let tasks: Vec<_> = (0..1000)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { slow_report(c, 9).await })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), vec![9; 10]);
    }
    assert_eq!(COLD_CALLS.load(Ordering::SeqCst), 1);
    assert_eq!(redis.command_calls("set").await, 1);
}

static DOWN_CALLS: AtomicUsize = AtomicUsize::new(0);

#[cache(prefix = "query", cache = cache, l1 = false)]
async fn redis_only(cache: &Cache, id: u64) -> u64 {
    DOWN_CALLS.fetch_add(1, Ordering::SeqCst);
    id + 1
}

#[tokio::test]
async fn l1_false_reads_redis_and_redis_down_falls_back_to_the_function() {
    let mut redis = TestRedis::single();
    let c = two_level(&redis);
    assert_eq!(redis_only(&c, 1).await, 2);
    assert_eq!(redis_only(&c, 1).await, 2);
    assert_eq!(DOWN_CALLS.load(Ordering::SeqCst), 1);
    let s = c.stats().await;
    assert_eq!(
        (s.l1_hits, s.l2_hits),
        (0, 1),
        "l1 = false: the hit came from Redis"
    );

    redis.server_mut().stop();
    for _ in 0..20 {
        assert_eq!(redis_only(&c, 1).await, 2);
    }
    assert_eq!(
        DOWN_CALLS.load(Ordering::SeqCst),
        21,
        "every call ran the function"
    );
    let s = c.stats().await;
    assert!(s.errors + s.l2_skipped >= 20);
}

struct Repo {
    cache: Cache,
    calls: AtomicUsize,
    name: String,
}

impl Repo {
    #[cache_query(cache = self.cache)]
    async fn count(&self, table: &str) -> u64 {
        self.calls.fetch_add(1, Ordering::SeqCst);
        table.len() as u64
    }

    #[cache_query(cache = self.cache, include_self, key = "repo:{self}:{table}")]
    async fn scoped(&self, table: &str) -> String {
        format!("{}:{table}", self.name)
    }
}

impl std::fmt::Display for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

#[tokio::test]
async fn methods_with_self() {
    let redis = TestRedis::start();
    let repo = Repo {
        cache: two_level(&redis),
        calls: AtomicUsize::new(0),
        name: "main".into(),
    };
    assert_eq!(repo.count("users").await, 5);
    assert_eq!(repo.count("users").await, 5);
    assert_eq!(repo.calls.load(Ordering::SeqCst), 1);
    assert_eq!(repo.scoped("t").await, "main:t");
    let k = keys(&redis, "*").await;
    assert!(k.contains(&"query:macros::count:users".to_string()), "{k:?}");
    assert!(k.contains(&"query:repo:main:t".to_string()), "{k:?}");
}

static GENERIC_CALLS: AtomicUsize = AtomicUsize::new(0);

// Generic functions name their key: the default one would have to name the type.
#[cache(key = "query:describe:{value}", cache = cache)]
async fn describe<T>(cache: &Cache, value: T) -> String
where
    T: std::fmt::Display + Send + Sync,
{
    GENERIC_CALLS.fetch_add(1, Ordering::SeqCst);
    format!("<{value}>")
}

#[derive(Serialize)]
struct Filter {
    status: &'static str,
    limit: u32,
}

#[cache(prefix = "query", cache = cache)]
async fn search(cache: &Cache, filter: Filter, tags: Vec<String>) -> usize {
    tags.len() + filter.limit as usize
}

#[tokio::test]
async fn generic_functions_and_serialize_arguments() {
    let redis = TestRedis::start();
    let c = two_level(&redis);
    assert_eq!(describe(&c, 5u32).await, "<5>");
    assert_eq!(describe(&c, "6").await, "<6>");
    assert_eq!(describe(&c, 5u32).await, "<5>");
    assert_eq!(GENERIC_CALLS.load(Ordering::SeqCst), 2);
    // The key names no type: it is the same in every build and compiler version.
    let k = keys(&redis, "query:describe:*").await;
    assert_eq!(k, vec!["query:describe:5", "query:describe:6"]);

    let f = || Filter {
        status: "open",
        limit: 3,
    };
    assert_eq!(search(&c, f(), vec!["a".into()]).await, 4);
    let k = keys(&redis, "query:macros::search:*").await;
    assert_eq!(k.len(), 1);
    // Serialize-only arguments are hashed: 32 hex digits each (xxh3-128), stable across runs.
    let parts: Vec<&str> = k[0]
        .trim_start_matches("query:macros::search:")
        .split(':')
        .collect();
    assert!(parts.len() == 2 && parts.iter().all(|p| p.len() == 32), "{k:?}");
    // Equal values give the same key: a second call is a hit, no new key.
    assert_eq!(search(&c, f(), vec!["a".into()]).await, 4);
    assert_eq!(keys(&redis, "query:macros::search:*").await, k);
}

/// The guide's `@warmup_cache(user_id=1) def get_user_profile(user_id)`.
#[warmup_cache(user_id = 1)]
#[warmup_cache(user_id = 2)]
#[cache_query]
async fn get_user_profile(user_id: u64) -> String {
    format!("profile-{user_id}")
}

#[tokio::test]
async fn warmup_registrations_are_collected() {
    let entries: Vec<_> = cache_core::warmup::registered()
        .filter(|e| e.function == "macros::get_user_profile")
        .collect();
    assert_eq!(entries.len(), 2);
    let mut args: Vec<&str> = entries.iter().map(|e| e.args).collect();
    args.sort();
    assert_eq!(args, vec!["user_id = 1", "user_id = 2"]);
    // Running one fills the global cache (L1-only here): the next call is a hit.
    (entries[0].run)().await.unwrap();
    let before = cache_core::global().stats().await.l1_hits;
    get_user_profile(if entries[0].args.ends_with('1') { 1 } else { 2 }).await;
    assert_eq!(cache_core::global().stats().await.l1_hits, before + 1);
}

static IMPL_CALLS: AtomicUsize = AtomicUsize::new(0);

/// `impl Trait` arguments, explicit lifetimes and a where clause keep working.
#[cache(prefix = "query", cache = cache)]
async fn shout<'a>(cache: &'a Cache, label: impl std::fmt::Display + Send, word: &'a str) -> String
where
    'a: 'a,
{
    IMPL_CALLS.fetch_add(1, Ordering::SeqCst);
    format!("{label}:{}", word.to_uppercase())
}

#[tokio::test]
async fn impl_trait_and_lifetime_arguments() {
    let redis = TestRedis::start();
    let c = two_level(&redis);
    assert_eq!(shout(&c, 7u8, "hi").await, "7:HI");
    assert_eq!(shout(&c, "7", "hi").await, "7:HI");
    assert_eq!(IMPL_CALLS.load(Ordering::SeqCst), 1, "same key text, same entry");
    assert_eq!(
        keys(&redis, "query:macros::shout*").await,
        vec!["query:macros::shout:7:hi"]
    );
}

static TAIL_CALLS: AtomicUsize = AtomicUsize::new(0);

/// One integer argument: the key's head is hashed at compile time and a hit writes no key text.
#[cache(cache = cache)]
async fn doubled(cache: &Cache, n: i64) -> i64 {
    TAIL_CALLS.fetch_add(1, Ordering::SeqCst);
    n.wrapping_mul(2)
}

#[cache_resource(key = "tails:{n}", cache = cache)]
async fn tail_template(cache: &Cache, n: u32) -> u32 {
    TAIL_CALLS.fetch_add(1, Ordering::SeqCst);
    n
}

/// A reference to an integer takes the same path; `&mut` and a template without `:` before the
/// integer take the text path. All of them reach the entry the text API names.
#[cache(cache = cache)]
async fn by_ref(cache: &Cache, n: &u16) -> u16 {
    TAIL_CALLS.fetch_add(1, Ordering::SeqCst);
    *n
}

#[cache(cache = cache)]
async fn by_mut(cache: &Cache, n: &mut u16) -> u16 {
    TAIL_CALLS.fetch_add(1, Ordering::SeqCst);
    *n += 1;
    *n
}

#[cache(key = "glued{n}", cache = cache)]
async fn glued(cache: &Cache, n: u8) -> u8 {
    TAIL_CALLS.fetch_add(1, Ordering::SeqCst);
    n
}

#[tokio::test]
async fn integer_keyed_functions_and_the_text_api_reach_one_l1_entry() {
    // No Redis: a value the text API sees can only have come from the function's L1 entry.
    let c = Cache::new(CacheConfig::default()).unwrap();
    let mut runs = 0;
    for n in [0, 7, -7, 10, i64::MIN, i64::MAX] {
        assert_eq!(doubled(&c, n).await, n.wrapping_mul(2));
        runs += 1;
        let key = format!("macros::doubled:{n}");
        assert_eq!(
            c.get::<i64>(&key).await.unwrap(),
            Some(n.wrapping_mul(2)),
            "{key}"
        );
        assert_eq!(doubled(&c, n).await, n.wrapping_mul(2));
        assert_eq!(TAIL_CALLS.load(Ordering::SeqCst), runs, "{key} was a hit");
        assert!(c.delete(&key).await.unwrap(), "{key}");
        doubled(&c, n).await;
        runs += 1;
        assert_eq!(TAIL_CALLS.load(Ordering::SeqCst), runs, "{key} was deleted");
    }
    // A value set through the text API is what the templated function returns.
    c.set("resource:tails:5", &99u32, None).await.unwrap();
    assert_eq!(tail_template(&c, 5).await, 99);
    assert_eq!(TAIL_CALLS.load(Ordering::SeqCst), runs);
    // Pattern invalidation reaches entries whose text was never written on their hit path.
    assert_eq!(tail_template(&c, 6).await, 6);
    c.invalidate_pattern("resource:tails:*").await.unwrap();
    assert_eq!(tail_template(&c, 5).await, 5);
    runs += 2;
    assert_eq!(TAIL_CALLS.load(Ordering::SeqCst), runs);
    assert_eq!(by_ref(&c, &3).await, 3);
    assert_eq!(c.get::<u16>("macros::by_ref:3").await.unwrap(), Some(3));
    let mut m = 4;
    assert_eq!(by_mut(&c, &mut m).await, 5);
    assert_eq!(c.get::<u16>("macros::by_mut:4").await.unwrap(), Some(5));
    assert_eq!(glued(&c, 9).await, 9);
    assert_eq!(c.get::<u8>("glued9").await.unwrap(), Some(9));
    assert_eq!(TAIL_CALLS.load(Ordering::SeqCst), runs + 3);
}
