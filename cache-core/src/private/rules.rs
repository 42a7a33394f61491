//! How a cached function's return type is cached, decided by the type itself: the rule the
//! expansion picks by autoref over [`Returns`], and the load paths behind each rule.

use std::convert::Infallible;
use std::future::Future;
use std::marker::PhantomData;

use super::{Cache, Fingerprint, FnStats, KeyBuf, KeyText, LoadOptions};
use crate::cache::infallible;
use crate::loader::Rule;
use crate::values::CacheValue;

/// The return type of a cached function, named in its expansion so that how it is cached is
/// decided by the type itself, aliases and re-exports included: `Result<T, E>` caches only `Ok`
/// ([`ResultRule`]); anything else is cached as it is ([`ValueRule`]), an `Option`'s `None`
/// included unless `skip_none`. The macro calls `(&&&Returns::<R>::new()).__cache_rule()` and
/// autoref picks the first trait that applies.
pub struct Returns<R: ?Sized>(PhantomData<fn() -> R>);

impl<R: ?Sized> Returns<R> {
    /// The marker for `R`.
    #[inline]
    pub const fn new() -> Self {
        Returns(PhantomData)
    }
}

impl<R: ?Sized> Default for Returns<R> {
    fn default() -> Self {
        Self::new()
    }
}

/// First choice: `Result<T, E>`, with no bound on `E` (it is never stored).
pub trait ViaResult {
    /// The rule.
    type Rule;
    /// Picks the rule.
    fn __cache_rule(&self) -> Self::Rule;
}
impl<T, E> ViaResult for &&Returns<Result<T, E>> {
    type Rule = ResultRule<T, E>;
    #[inline]
    fn __cache_rule(&self) -> Self::Rule {
        ResultRule(PhantomData)
    }
}

/// Second choice: `Option<T>`, whose `None` `skip_none` leaves out.
pub trait ViaOption {
    /// The rule.
    type Rule;
    /// Picks the rule.
    fn __cache_rule(&self) -> Self::Rule;
}
impl<T> ViaOption for &Returns<Option<T>> {
    type Rule = ValueRule<Option<T>>;
    #[inline]
    fn __cache_rule(&self) -> Self::Rule {
        ValueRule {
            is_none: Option::is_none,
        }
    }
}

/// Last choice: any other value, cached as it is.
pub trait ViaPlain {
    /// The rule.
    type Rule;
    /// Picks the rule.
    fn __cache_rule(&self) -> Self::Rule;
}
impl<T> ViaPlain for Returns<T> {
    type Rule = ValueRule<T>;
    #[inline]
    fn __cache_rule(&self) -> Self::Rule {
        ValueRule { is_none: |_| false }
    }
}

/// `Option`, whatever its spelling; `skip_none` asks for it at compile time.
#[diagnostic::on_unimplemented(
    message = "`skip_none` applies only to functions returning Option, not `{Self}`",
    label = "this function's return type"
)]
pub trait IsOption {}
impl<T> IsOption for Option<T> {}

/// Compiles only when `R` is an `Option`: the expansion's check of `skip_none`.
#[inline]
pub fn skip_none_needs_option<R: IsOption + ?Sized>() {}

/// The synchronous L1 hit every cached function tries first. `key` is a [`KeyBuf`], or an
/// [`IntTailKey`](crate::key::IntTailKey) or [`TextTailKey`](crate::key::TextTailKey) whose
/// text is written only if this read needs it.
#[inline]
pub fn hit<T: CacheValue, K: KeyText + ?Sized>(
    cache: &Cache,
    key: &K,
    fp: Fingerprint,
    opts: &LoadOptions,
    stats: &'static FnStats,
) -> Option<T> {
    if !opts.use_l1 {
        return None;
    }
    if let Some(idle) = opts.ttl_idle {
        let v = cache.hit_sliding(key, fp, idle)?;
        stats.hit(None);
        return Some(v);
    }
    // The L1 read is timed about one time in 64, at random gaps (reading the clock costs more
    // than the hit); the function's statistics reuse that measurement.
    let (v, took) = cache.hit(key, fp)?;
    stats.hit(took);
    Some(v)
}

/// Runs a synchronous function's body, counted as a miss and a load; with the invalidation
/// log's position before it ran (an invalidation while it ran keeps its value out).
fn sync_load<R>(cache: &Cache, stats: &'static FnStats, body: impl FnOnce() -> R) -> (R, u64) {
    stats.past_l1();
    let engine = &cache.engine;
    if engine.enabled() {
        engine.counters.misses.incr();
        engine.counters.loader_calls.incr();
    }
    let since = engine.log.start();
    let t = std::time::Instant::now();
    let r = body();
    stats.load(t.elapsed());
    (r, since)
}

/// Stores a synchronous function's value.
fn sync_store<T: CacheValue>(
    cache: &Cache,
    key: &KeyBuf,
    fp: Fingerprint,
    opts: &LoadOptions,
    since: u64,
    v: &T,
) {
    cache.engine.store_sync(
        key.as_str(),
        fp,
        crate::values::erase(v.clone()),
        || crate::values::erase(v.clone()),
        crate::values::ops::<T>(),
        opts,
        since,
    );
}

/// Runs the function, recording its run time under its name.
pub(super) async fn run_timed<Fut: Future>(stats: &'static FnStats, fut: Fut) -> Fut::Output {
    let t = std::time::Instant::now();
    let out = fut.await;
    stats.load(t.elapsed());
    out
}

/// How a function returning `Result<T, E>` is cached: only `Ok(T)` is stored; an `Err` goes to
/// its caller and is never stored or shared.
pub struct ResultRule<T, E>(PhantomData<fn() -> (T, E)>);

impl<T: CacheValue, E> ResultRule<T, E> {
    /// The L1 hit, as the function's return value.
    #[inline]
    pub fn hit<K: KeyText + ?Sized>(
        &self,
        cache: &Cache,
        key: &K,
        fp: Fingerprint,
        opts: &LoadOptions,
        stats: &'static FnStats,
    ) -> Option<Result<T, E>> {
        hit(cache, key, fp, opts, stats).map(Ok)
    }

    /// The miss: single flight, Redis, then the function (whose run time goes to `stats`). An
    /// `Ok` for which `unless` says `true` is returned but not stored.
    #[allow(clippy::too_many_arguments)]
    pub fn load<'a, F, Fut, U>(
        self,
        cache: &'a Cache,
        key: &'a KeyBuf,
        fp: Fingerprint,
        opts: LoadOptions,
        stats: &'static FnStats,
        _skip_none: bool,
        tags: &'a [&'a str],
        unless: U,
        f: F,
    ) -> impl Future<Output = Result<T, E>> + use<'a, T, E, F, Fut, U>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        U: FnOnce(&T) -> bool,
    {
        stats.past_l1();
        let rule = Rule::<T, Result<T, E>>::RESULT;
        crate::loader::load_after_miss(
            &cache.engine,
            key.as_str(),
            fp,
            opts,
            Some(stats),
            tags,
            rule,
            move |v: &T| !unless(v),
            f,
        )
    }

    /// `{fn}_refresh`: runs the body now and stores an `Ok` (see [`super::companions`]).
    #[allow(clippy::too_many_arguments)]
    pub async fn refresh<Fut, U>(
        self,
        cache: &Cache,
        key: &KeyBuf,
        fp: Fingerprint,
        opts: LoadOptions,
        stats: &'static FnStats,
        _skip_none: bool,
        tags: &[&str],
        unless: U,
        body: Fut,
    ) -> Result<T, E>
    where
        Fut: Future<Output = Result<T, E>>,
        U: FnOnce(&T) -> bool,
    {
        let keep = move |v: &T| !unless(v);
        super::companions::refresh(
            cache,
            key.as_str(),
            fp,
            opts,
            stats,
            tags,
            Rule::RESULT,
            keep,
            body,
        )
        .await
    }

    /// A synchronous function's miss (and its `f_refresh`): runs the body and stores an `Ok`
    /// (see `Engine::store_sync`: L1 now, the other tiers in the background).
    #[allow(clippy::too_many_arguments)]
    pub fn run_sync<U, F>(
        self,
        cache: &Cache,
        key: &KeyBuf,
        fp: Fingerprint,
        opts: &LoadOptions,
        stats: &'static FnStats,
        _skip_none: bool,
        unless: U,
        body: F,
    ) -> Result<T, E>
    where
        U: FnOnce(&T) -> bool,
        F: FnOnce() -> Result<T, E>,
    {
        let (r, since) = sync_load(cache, stats, body);
        if let Ok(v) = &r {
            if !unless(v) {
                sync_store(cache, key, fp, opts, since, v);
            }
        }
        r
    }

    /// `{fn}_peek`: the cached `Ok`, if any; never runs the body.
    pub async fn peek(self, cache: &Cache, key: &KeyBuf, opts: &LoadOptions) -> Option<Result<T, E>> {
        super::companions::peek(cache, key.as_str(), opts, Rule::RESULT).await
    }

    /// The miss with fail-safe: an `Err` or a soft timeout serves the stale value if any.
    #[allow(clippy::too_many_arguments)]
    pub async fn load_fail_safe<F, Fut>(
        self,
        cache: &Cache,
        key: &KeyBuf,
        fp: Fingerprint,
        opts: LoadOptions,
        stats: &'static FnStats,
        tags: &[&str],
        f: F,
    ) -> Result<T, E>
    where
        E: std::fmt::Debug + Send + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        stats.past_l1();
        crate::loader::fail_safe::load_fail_safe(&cache.engine, key.as_str(), fp, opts, tags, || {
            run_timed(stats, f())
        })
        .await
    }
}

/// How any other return value is cached: as it is. For an `Option`, `is_none` lets `skip_none`
/// leave `None` out.
pub struct ValueRule<T> {
    is_none: fn(&T) -> bool,
}

impl<T: CacheValue> ValueRule<T> {
    /// The L1 hit, as the function's return value.
    #[inline]
    pub fn hit<K: KeyText + ?Sized>(
        &self,
        cache: &Cache,
        key: &K,
        fp: Fingerprint,
        opts: &LoadOptions,
        stats: &'static FnStats,
    ) -> Option<T> {
        hit(cache, key, fp, opts, stats)
    }

    /// The miss; with `skip_none` a `None` is returned but not stored, and so is a value for
    /// which `unless` says `true`.
    #[allow(clippy::too_many_arguments)]
    pub fn load<'a, F, Fut, U>(
        self,
        cache: &'a Cache,
        key: &'a KeyBuf,
        fp: Fingerprint,
        opts: LoadOptions,
        stats: &'static FnStats,
        skip_none: bool,
        tags: &'a [&'a str],
        unless: U,
        f: F,
    ) -> impl Future<Output = T> + use<'a, T, F, Fut, U>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
        U: FnOnce(&T) -> bool,
    {
        stats.past_l1();
        let is_none = self.is_none;
        let keep = move |v: &T| !((skip_none && is_none(v)) || unless(v));
        crate::loader::load_after_miss(
            &cache.engine,
            key.as_str(),
            fp,
            opts,
            Some(stats),
            tags,
            Rule::VALUE,
            keep,
            f,
        )
    }

    /// `{fn}_refresh`: runs the body now and stores its value (see [`super::companions`]).
    #[allow(clippy::too_many_arguments)]
    pub async fn refresh<Fut, U>(
        self,
        cache: &Cache,
        key: &KeyBuf,
        fp: Fingerprint,
        opts: LoadOptions,
        stats: &'static FnStats,
        skip_none: bool,
        tags: &[&str],
        unless: U,
        body: Fut,
    ) -> T
    where
        Fut: Future<Output = T>,
        U: FnOnce(&T) -> bool,
    {
        let is_none = self.is_none;
        let keep = move |v: &T| !((skip_none && is_none(v)) || unless(v));
        super::companions::refresh(
            cache,
            key.as_str(),
            fp,
            opts,
            stats,
            tags,
            Rule::VALUE,
            keep,
            body,
        )
        .await
    }

    /// A synchronous function's miss (and its `f_refresh`): runs the body and stores the value
    /// (see `Engine::store_sync`: L1 now, the other tiers in the background).
    #[allow(clippy::too_many_arguments)]
    pub fn run_sync<U, F>(
        self,
        cache: &Cache,
        key: &KeyBuf,
        fp: Fingerprint,
        opts: &LoadOptions,
        stats: &'static FnStats,
        skip_none: bool,
        unless: U,
        body: F,
    ) -> T
    where
        U: FnOnce(&T) -> bool,
        F: FnOnce() -> T,
    {
        let (v, since) = sync_load(cache, stats, body);
        if !((skip_none && (self.is_none)(&v)) || unless(&v)) {
            sync_store(cache, key, fp, opts, since, &v);
        }
        v
    }

    /// `{fn}_peek`: the cached value, if any; never runs the body.
    pub async fn peek(self, cache: &Cache, key: &KeyBuf, opts: &LoadOptions) -> Option<T> {
        super::companions::peek(cache, key.as_str(), opts, Rule::VALUE).await
    }

    /// The miss with a soft timeout (a value that cannot fail).
    #[allow(clippy::too_many_arguments)]
    pub async fn load_fail_safe<F, Fut>(
        self,
        cache: &Cache,
        key: &KeyBuf,
        fp: Fingerprint,
        opts: LoadOptions,
        stats: &'static FnStats,
        tags: &[&str],
        f: F,
    ) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        stats.past_l1();
        let fut = f();
        let r = crate::loader::fail_safe::load_fail_safe(
            &cache.engine,
            key.as_str(),
            fp,
            opts,
            tags,
            move || async move { Ok::<T, Infallible>(run_timed(stats, fut).await) },
        )
        .await;
        infallible(r)
    }
}
