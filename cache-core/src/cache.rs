//! [`Cache`]: the facade. A handle to the engine; each method is a few lines over
//! [`crate::engine`] (what is stored where) and [`crate::loader`] (how a miss is loaded).
//! Reports (stats, health, performance, memory) are in [`crate::report`].

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::config::CacheConfig;
use crate::engine::{Background, Engine};
use crate::error::{RefreshError, Result};
use crate::key::{Fingerprint, KeyText};
use crate::loader::{self, LoadOptions, Rule};
use crate::report::Mode;
use crate::values::{erase, of_entry, ops, CacheValue};
use crate::AccessPattern;

/// The two-level cache. Cheap to clone: clones share everything, and the background work
/// (health checks, the invalidation listener) stops when the last clone is dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
/// use cache_core::{Cache, CacheConfig};
/// let cache = Cache::new(CacheConfig::default())?; // no redis_url: L1 only
/// cache.set("query:users:list", &vec![1u64, 2, 3], None).await?;
/// assert_eq!(cache.get::<Vec<u64>>("query:users:list").await?, Some(vec![1, 2, 3]));
/// let n = cache.get_or_insert_with("query:answer", None, || async { 42u32 }).await;
/// assert_eq!(n, 42);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Cache {
    pub(crate) engine: Arc<Engine>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("mode", &self.mode())
            .field("l1_entries", &self.engine.l1_size().0)
            .finish_non_exhaustive()
    }
}

/// The value of a result that cannot be an error.
pub(crate) fn infallible<T>(r: std::result::Result<T, Infallible>) -> T {
    match r {
        Ok(v) => v,
        Err(never) => match never {},
    }
}

impl Cache {
    /// Builds a cache; its background work runs on the current tokio runtime (outside one, the
    /// cache works but says in its log and [`health`](Self::health) that it runs none: use
    /// [`with_runtime`](Self::with_runtime)). Connects lazily: a Redis that is down now is not an
    /// error here (calls fall back until it answers), but an invalid configuration is.
    pub fn new(config: CacheConfig) -> Result<Self> {
        Self::build(config, None)
    }

    /// [`Cache::new`] with its background work on `runtime`.
    ///
    /// ```
    /// let rt = tokio::runtime::Runtime::new().unwrap();
    /// let cache = cache_core::Cache::with_runtime(Default::default(), rt.handle()).unwrap();
    /// rt.block_on(async { cache.set("k", &1u8, None).await.unwrap() });
    /// ```
    pub fn with_runtime(config: CacheConfig, runtime: &tokio::runtime::Handle) -> Result<Self> {
        Self::build(config, Some(runtime))
    }

    fn build(config: CacheConfig, rt: Option<&tokio::runtime::Handle>) -> Result<Self> {
        let engine = Arc::new(Engine::new(config)?);
        Background::start(&engine, rt);
        match &engine.remote {
            Some(r) => tracing::info!(redis = %r.display_url(), "cache ready: L1 + Redis"),
            None => tracing::info!("cache ready: L1 only (no REDIS_URL)"),
        }
        Ok(Cache { engine })
    }

    /// Waits until the values written to the disk tier so far are on disk (its writes are
    /// batched in the background); returns at once without one. For a planned restart, tests
    /// and benchmarks: the tier also finishes its writes when the last clone of the cache drops.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let cache = cache_core::Cache::new(Default::default()).unwrap();
    /// cache.flush_disk().await;
    /// # }
    /// ```
    pub async fn flush_disk(&self) {
        if let Some(disk) = &self.engine.disk {
            self.engine.flush_spills().await;
            disk.flush().await;
        }
    }

    /// [`Cache::new`] over [`CacheConfig::from_env`].
    pub fn from_env() -> Result<Self> {
        Cache::new(CacheConfig::from_env()?)
    }

    /// The configuration this cache was built with.
    pub fn config(&self) -> &CacheConfig {
        &self.engine.config
    }

    /// Whether the cache is on ([`CacheConfig::enabled`]).
    pub fn is_enabled(&self) -> bool {
        self.engine.enabled()
    }

    /// Turns the cache on or off at run time, for every clone of this cache; returns whether it
    /// was on. Off, every cached call runs its function, every read misses, nothing is read
    /// from L1, Redis or the disk or stored there, and warmups run nothing. Invalidations still
    /// run: the switch is per process, and the instances still on must not serve what a write
    /// made here replaced. (Locks and the health check still talk to Redis.) The change is
    /// logged. Turning it back on empties this instance's L1 and refuses the stores of loads
    /// begun before, then reads resume.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let cache = cache_core::Cache::new(Default::default()).unwrap();
    /// cache.set("k", &1u8, None).await.unwrap();
    /// assert!(cache.set_enabled(false));
    /// assert_eq!(cache.get::<u8>("k").await.unwrap(), None);
    /// let calls = std::sync::atomic::AtomicU32::new(0);
    /// for _ in 0..2 {
    ///     cache.get_or_insert_with("n", None, || async { calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed) }).await;
    /// }
    /// assert_eq!(calls.into_inner(), 2); // the loader ran each time
    /// assert_eq!(cache.stats().await.status, "disabled");
    /// # }
    /// ```
    pub fn set_enabled(&self, on: bool) -> bool {
        self.engine.set_enabled(on)
    }

    /// L1-only or two-level.
    pub fn mode(&self) -> Mode {
        match self.engine.remote {
            Some(_) => Mode::TwoLevel,
            None => Mode::L1Only,
        }
    }

    /// The TTL a key gets when none is given: most specific pattern, else the default.
    /// (Adaptive strategies decide at write time; see [`crate::strategy`].)
    pub fn ttl_for(&self, key: &str) -> Duration {
        self.engine.ttl_for(key)
    }

    /// Applies the evictions that moka-backed strategies batch (they otherwise run as the
    /// cache is used). Tests and capacity checks call it; nothing else needs to.
    pub fn run_pending_tasks(&self) {
        if let Some(l1) = &self.engine.l1 {
            l1.run_pending_tasks();
        }
    }

    /// Reads a value: L1, then Redis (filling L1). A corrupt Redis entry reads as `None` and is
    /// counted in `errors`; a Redis transport failure is returned.
    pub async fn get<T: CacheValue>(&self, key: &str) -> Result<Option<T>> {
        let fp = Fingerprint::of(key);
        if let Some((v, _)) = self.hit::<T, str>(key, fp) {
            return Ok(Some(v));
        }
        let found = self.engine.get_after_miss(key, fp, ops::<T>()).await?;
        Ok(found.and_then(|e| of_entry::<T>(&e)))
    }

    /// Writes `value` under `key` in both levels. `ttl = None` takes the TTL from the pattern
    /// table. L1 is filled even when Redis fails; the Redis error is returned. A value over
    /// `max_value_size` is stored nowhere: [`CacheError::ValueTooLarge`](crate::CacheError::ValueTooLarge).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use cache_core::{Cache, CacheConfig, CacheError};
    /// let cache = Cache::new(CacheConfig::builder().max_value_size(1024).build().unwrap()).unwrap();
    /// let err = cache.set("k", &vec![0u8; 4096], None).await.unwrap_err();
    /// assert!(matches!(err, CacheError::ValueTooLarge { .. }));
    /// assert_eq!(cache.get::<Vec<u8>>("k").await.unwrap(), None);
    /// # }
    /// ```
    pub async fn set<T: CacheValue>(&self, key: &str, value: &T, ttl: Option<Duration>) -> Result<()> {
        let opts = LoadOptions {
            ttl,
            ..LoadOptions::default()
        };
        let fp = Fingerprint::of(key);
        let (_, r) = self
            .engine
            .store(key, fp, erase(value.clone()), ops::<T>(), &opts, None, &[])
            .await;
        r
    }

    /// [`set`](Self::set) with tags: the entry is invalidated by
    /// [`invalidate_tags`](Self::invalidate_tags) of any of them, on every instance. A tagged
    /// entry lives at most `tag_ttl` in Redis. Tags are any text up to
    /// [`MAX_TAG_LEN`](crate::tags::MAX_TAG_LEN) bytes, at most
    /// [`MAX_TAGS_PER_ENTRY`](crate::tags::MAX_TAGS_PER_ENTRY) per entry.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::new(Default::default())?;
    /// cache.set_tagged("query:orders:42", &vec![1u32, 2], None, &["user:42", "orders"]).await?;
    /// cache.set_tagged("resource:user:42", &"ann".to_string(), None, &["user:42"]).await?;
    /// cache.set_tagged("resource:user:43", &"bob".to_string(), None, &["user:43"]).await?;
    /// cache.invalidate_tags(&["user:42"]).await?;
    /// assert_eq!(cache.get::<Vec<u32>>("query:orders:42").await?, None);
    /// assert_eq!(cache.get::<String>("resource:user:42").await?, None);
    /// assert_eq!(cache.get::<String>("resource:user:43").await?.as_deref(), Some("bob"));
    /// # Ok(()) }
    /// ```
    pub async fn set_tagged<T: CacheValue>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
        tags: &[&str],
    ) -> Result<()> {
        crate::tags::validate_all(tags)?;
        if !self.engine.enabled() {
            return Ok(());
        }
        let opts = LoadOptions {
            ttl,
            ..LoadOptions::default()
        };
        let names = self.engine.security.tag_names(tags);
        let names: Vec<&str> = names.iter().map(AsRef::as_ref).collect();
        let (stamps, unreadable) = (self.engine.tags)
            .try_stamps(self.engine.remote.as_deref(), &names)
            .await;
        let fp = Fingerprint::of(key);
        if unreadable.is_some() {
            // The value cannot say in Redis what its tags were: Redis's old copy goes (best
            // effort, with its notice), this instance keeps the new one in L1, and the caller
            // gets the error.
            let _ = self.engine.delete(key).await;
        }
        let (_, r) = self
            .engine
            .store(key, fp, erase(value.clone()), ops::<T>(), &opts, None, &stamps)
            .await;
        unreadable.map_or(r, Err)
    }

    /// Invalidates every entry carrying any of `tags`, whatever its key, on every instance:
    /// one small Redis write per tag and one message, never a scan, whatever the number of
    /// entries (see [`set_tagged`](Self::set_tagged) and the `tags = [..]` option of the
    /// macros). This instance's L1 copies are invalid at once, even when Redis fails (the error
    /// is returned); Redis copies read as misses from then on and are overwritten or expire.
    pub async fn invalidate_tags(&self, tags: &[&str]) -> Result<()> {
        let first = tags.first().copied().unwrap_or("");
        let remote = self.engine.remote.is_some();
        crate::trace::invalidation("tags", first, remote, self.engine.invalidate_tags(tags)).await
    }

    /// [`get_or_insert_with`](Self::get_or_insert_with) for an entry carrying `tags`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let cache = cache_core::Cache::new(Default::default()).unwrap();
    /// let load = || async { 42u64 };
    /// assert_eq!(cache.get_or_insert_tagged("query:n", None, &["numbers"], load).await, 42);
    /// cache.invalidate_tags(&["numbers"]).await.unwrap();
    /// assert_eq!(cache.get::<u64>("query:n").await.unwrap(), None);
    /// # }
    /// ```
    pub async fn get_or_insert_tagged<T, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        tags: &[&str],
        load: F,
    ) -> T
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let load = || async { Ok::<T, Infallible>(load().await) };
        infallible(self.load(key, ttl, tags, load).await)
    }

    /// Removes `key` from both levels; returns whether Redis held it (L1-only: whether L1 did).
    pub async fn delete(&self, key: &str) -> Result<bool> {
        let remote = self.engine.remote.is_some();
        crate::trace::invalidation("delete", key, remote, self.engine.delete(key)).await
    }

    /// Whether `key` is cached (L1, else Redis).
    pub async fn exists(&self, key: &str) -> Result<bool> {
        self.engine.exists(key).await
    }

    /// Deletes the cache's entries matching a Redis glob (`resource:users:*`) from L1 and from
    /// Redis (`SCAN MATCH`, never `KEYS`, and a server-side check that unlinks only values with
    /// the cache's envelope: another program's keys under the same names are left alone).
    /// Returns the number of Redis keys deleted (L1-only: L1 entries). L1 is cleared even when
    /// Redis fails; the error is returned.
    pub async fn invalidate_pattern(&self, pattern: &str) -> Result<u64> {
        let remote = self.engine.remote.is_some();
        crate::trace::invalidation(
            "pattern",
            pattern,
            remote,
            self.engine.invalidate_pattern(pattern),
        )
        .await
    }

    /// Empties L1 and deletes the cache's entries in Redis (inside its namespace when it has one;
    /// by `SCAN`, so other clients are not blocked; only values with the cache's envelope, so
    /// another program's keys survive). Returns the count as
    /// [`invalidate_pattern`](Self::invalidate_pattern) does.
    pub async fn clear(&self) -> Result<u64> {
        let remote = self.engine.remote.is_some();
        crate::trace::invalidation("clear", "*", remote, self.engine.clear()).await
    }

    /// Returns the cached value or runs `load`, caches its result and returns it. Concurrent
    /// callers of a cold key run `load` once. Cache failures are logged and counted, never
    /// returned: the worst case is that `load` runs.
    pub async fn get_or_insert_with<T, F, Fut>(&self, key: &str, ttl: Option<Duration>, load: F) -> T
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        let load = || async { Ok::<T, Infallible>(load().await) };
        infallible(self.try_get_or_insert_with(key, ttl, load).await)
    }

    /// Like [`get_or_insert_with`](Self::get_or_insert_with) for a fallible loader: only `Ok`
    /// is cached; an `Err` goes to this caller and is never cached or shared.
    pub async fn try_get_or_insert_with<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        load: F,
    ) -> Result<T, E>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.load(key, ttl, &[], load).await
    }

    async fn load<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        tags: &[&str],
        load: F,
    ) -> Result<T, E>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let opts = LoadOptions {
            ttl,
            ..LoadOptions::default()
        };
        let fp = Fingerprint::of(key);
        if let Some(v) = self.hit::<T, str>(key, fp) {
            return Ok(v.0);
        }
        loader::load_after_miss(
            &self.engine,
            key,
            fp,
            opts,
            None,
            tags,
            Rule::RESULT,
            |_: &T| true,
            load,
        )
        .await
    }

    /// Runs `load` now and stores its value (warmers, refresh-ahead, after a write): the value
    /// is stored unless an invalidation of `key` came while it was loading, in which case it is
    /// returned but not stored (it would be older than what the invalidation announced).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let cache = cache_core::Cache::new(Default::default()).unwrap();
    /// let v = cache
    ///     .refresh("static:motd", None, || async { Ok::<_, std::io::Error>("hello".to_string()) })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(cache.get::<String>("static:motd").await.unwrap(), Some(v));
    /// # }
    /// ```
    pub async fn refresh<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        load: F,
    ) -> Result<T, RefreshError<E>>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let start = self
            .engine
            .load_start_tagged(self.engine.log.start(), key, &[])
            .await;
        let value = load().await.map_err(RefreshError::Load)?;
        let opts = LoadOptions {
            ttl,
            ..LoadOptions::default()
        };
        let fp = Fingerprint::of(key);
        let (_, stored) = (self.engine)
            .store(
                key,
                fp,
                erase(value.clone()),
                ops::<T>(),
                &opts,
                Some(&start),
                &[],
            )
            .await;
        stored.map_err(RefreshError::Cache)?;
        Ok(value)
    }

    /// What the cache has learned about each family of keys (a cached function's, or a direct
    /// key's prefix): how often values change, how often keys are read, the TTL in use, the TTL
    /// that keeps stale reads at the target, and the hit and stale rates expected under each.
    /// Listed whether or not the family's TTL is learned (`ttl = "auto"`); most loaded first.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let cache = cache_core::Cache::new(cache_core::CacheConfig::default()).unwrap();
    /// cache.get_or_insert_with("user:1", None, || async { 1u32 }).await;
    /// let advice = cache.ttl_advice();
    /// assert_eq!(advice[0].family, "user");
    /// assert_eq!(advice[0].loads, 1);
    /// assert_eq!(advice[0].recommended_ttl_secs, None); // not enough evidence yet
    /// # }
    /// ```
    pub fn ttl_advice(&self) -> Vec<crate::TtlAdvice> {
        self.engine.analytics.advice()
    }

    /// The `n` most-read keys with their read counts and hit ratios (see [`crate::access`]).
    pub fn access_patterns(&self, n: usize) -> Vec<AccessPattern> {
        self.engine.access.top(n)
    }

    /// The name `key` has outside this process: in Redis, and in listings such as the admin
    /// API's. `key` itself, or with its argument part a keyed hash when a key secret is set
    /// ([`SecurityConfig::key_secret`](crate::config::SecurityConfig::key_secret)).
    ///
    /// ```
    /// let cache = cache_core::Cache::new(cache_core::CacheConfig::default()).unwrap();
    /// assert_eq!(cache.display_key("query:users:alice"), "query:users:alice");
    /// ```
    pub fn display_key<'a>(&self, key: &'a str) -> std::borrow::Cow<'a, str> {
        self.engine.security.name(key)
    }

    /// Estimated reads of `key` so far (0 when not tracked).
    pub fn access_count(&self, key: &str) -> u64 {
        self.engine.access.count(Fingerprint::of(key))
    }

    /// Where predicted next keys are sent (bounded; suggestions are dropped when it is full).
    /// The warmer installs one for predictive loading; `None` stops predictions.
    pub fn set_prediction_sink(&self, sink: Option<tokio::sync::mpsc::Sender<String>>) {
        self.engine.access.set_prediction_sink(sink);
    }

    /// Time until `key` expires: Redis `PTTL` in two-level mode, the L1 entry's deadline in
    /// L1-only mode. `None` when absent or without expiry.
    pub async fn ttl_remaining(&self, key: &str) -> Result<Option<Duration>> {
        self.engine.ttl_remaining(key).await
    }

    /// Takes a named lock for `ttl` if nobody holds it (Redis `SET NX PX` with a random token, so
    /// instances sharing the Redis agree; L1-only mode: a lock in this process). Returns the
    /// token to pass to [`release_lock`](Self::release_lock), or `None` when it is held.
    pub async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<String>> {
        self.engine.try_lock(name, ttl).await
    }

    /// Releases a lock taken by [`try_lock`](Self::try_lock), only if `token` still holds it (a
    /// lock that expired and was taken by another instance is left alone).
    pub async fn release_lock(&self, name: &str, token: &str) -> Result<bool> {
        self.engine.release_lock(name, token).await
    }

    /// An L1 hit with its sampled duration, without any `async` machinery: the macros try this
    /// before building the loading future, which costs more to set up than the hit itself.
    #[inline]
    pub(crate) fn hit<T: CacheValue, K: KeyText + ?Sized>(
        &self,
        key: &K,
        fp: Fingerprint,
    ) -> Option<(T, Option<Duration>)> {
        let hit = self.engine.l1_get_timed::<T>(fp)?;
        self.engine.access.record(fp, key, true);
        if tracing::enabled!(tracing::Level::TRACE) {
            crate::trace::l1_hit(key.key_text());
        }
        Some(hit)
    }

    /// [`hit`](Self::hit) of a function with sliding expiration (`ttl_idle`).
    #[inline]
    pub(crate) fn hit_sliding<T: CacheValue, K: KeyText + ?Sized>(
        &self,
        key: &K,
        fp: Fingerprint,
        idle: Duration,
    ) -> Option<T> {
        let v = self.engine.l1_get_sliding::<T>(fp, idle)?;
        self.engine.access.record(fp, key, true);
        if tracing::enabled!(tracing::Level::TRACE) {
            crate::trace::l1_hit(key.key_text());
        }
        Some(v)
    }
}
