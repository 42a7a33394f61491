//! What the attribute macros expand into. Not a public API: names and signatures may change in
//! any release. Generated code names only items under `::cache_core::__private`.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::Serialize;

pub use crate::engine::{Cache, LoadOptions};
pub use crate::global::global;
pub use crate::key::{Fingerprint, IntKeyPart, IntTailKey, KeyBuf, KeyHead, KeyPart, KeyText};
pub use crate::perf::FnStats;
pub use crate::warmup::WarmupEntry;
pub use inventory;
pub use std::time::Duration;

use crate::engine::{infallible, CacheValue};

/// Wraps an argument so the key writer can be picked by autoref: [`KeyPart`], else `Display`,
/// else the stable hash of its `Serialize` form. The macro calls `(&&&KeyArg(&arg)).__cache_write_key(..)`.
pub struct KeyArg<'a, T: ?Sized>(pub &'a T);

/// First choice: the argument's own [`KeyPart`].
pub trait ViaKeyPart {
    /// Appends the argument's key text.
    fn __cache_write_key(&self, key: &mut KeyBuf);
}
impl<T: KeyPart + ?Sized> ViaKeyPart for &&KeyArg<'_, T> {
    #[inline]
    fn __cache_write_key(&self, key: &mut KeyBuf) {
        self.0.write_key_part(key);
    }
}

/// Second choice: `Display` (same text as `KeyPart` for the types that have both).
pub trait ViaDisplay {
    /// Appends the argument's key text.
    fn __cache_write_key(&self, key: &mut KeyBuf);
}
impl<T: fmt::Display + ?Sized> ViaDisplay for &KeyArg<'_, T> {
    #[inline]
    fn __cache_write_key(&self, key: &mut KeyBuf) {
        key.push_display(self.0);
    }
}

/// Last choice: xxh3-64 of the bincode form, 16 hex digits.
pub trait ViaSerialize {
    /// Appends the argument's key text.
    fn __cache_write_key(&self, key: &mut KeyBuf);
}
impl<T: Serialize + ?Sized> ViaSerialize for KeyArg<'_, T> {
    #[inline]
    fn __cache_write_key(&self, key: &mut KeyBuf) {
        crate::key::write_serialized_hash(self.0, key);
    }
}

/// The return type of a cached function, named in its expansion so that how it is cached is
/// decided by the type itself, aliases and re-exports included: `Result<T, E>` caches only `Ok`
/// ([`ResultRule`]), `Option<T>` caches `None` unless `skip_none` ([`OptionRule`]), anything else
/// is cached as it is ([`PlainRule`]). The macro calls `(&&&Returns::<R>::new()).__cache_rule()`
/// and autoref picks the first trait that applies.
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

/// Second choice: `Option<T>`.
pub trait ViaOption {
    /// The rule.
    type Rule;
    /// Picks the rule.
    fn __cache_rule(&self) -> Self::Rule;
}
impl<T> ViaOption for &Returns<Option<T>> {
    type Rule = OptionRule<T>;
    #[inline]
    fn __cache_rule(&self) -> Self::Rule {
        OptionRule(PhantomData)
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
    type Rule = PlainRule<T>;
    #[inline]
    fn __cache_rule(&self) -> Self::Rule {
        PlainRule(PhantomData)
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

/// How a function returning `Result<T, E>` is cached: only `Ok(T)` is stored.
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

    /// The miss: single flight, Redis, then the function; an `Err` is returned, never stored.
    pub async fn load<F, Fut>(
        self,
        cache: &Cache,
        key: &KeyBuf,
        fp: Fingerprint,
        opts: LoadOptions,
        stats: &'static FnStats,
        _skip_none: bool,
        f: F,
    ) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        cached_result(cache, key, fp, opts, stats, f).await
    }

    /// The miss with fail-safe: an `Err` or a soft timeout serves the stale value if any.
    pub async fn load_fail_safe<F, Fut>(
        self,
        cache: &Cache,
        key: &KeyBuf,
        fp: Fingerprint,
        opts: LoadOptions,
        stats: &'static FnStats,
        f: F,
    ) -> Result<T, E>
    where
        E: std::fmt::Debug + Send + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
    {
        cached_result_fail_safe(cache, key, fp, opts, stats, f).await
    }
}

/// How a function returning `Option<T>` is cached: the whole `Option`, `None` included unless
/// `skip_none`.
pub struct OptionRule<T>(PhantomData<fn() -> T>);

impl<T: CacheValue> OptionRule<T> {
    /// The L1 hit, as the function's return value.
    #[inline]
    pub fn hit<K: KeyText + ?Sized>(
        &self,
        cache: &Cache,
        key: &K,
        fp: Fingerprint,
        opts: &LoadOptions,
        stats: &'static FnStats,
    ) -> Option<Option<T>> {
        hit(cache, key, fp, opts, stats)
    }

    /// The miss; with `skip_none` a `None` is returned but not stored.
    #[allow(clippy::too_many_arguments)]
    pub async fn load<F, Fut>(
        self,
        cache: &Cache,
        key: &KeyBuf,
        fp: Fingerprint,
        opts: LoadOptions,
        stats: &'static FnStats,
        skip_none: bool,
        f: F,
    ) -> Option<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        cached_option(cache, key, fp, opts, stats, skip_none, f).await
    }

    /// The miss with a soft timeout (an `Option` cannot fail).
    pub async fn load_fail_safe<F, Fut>(
        self,
        cache: &Cache,
        key: &KeyBuf,
        fp: Fingerprint,
        opts: LoadOptions,
        stats: &'static FnStats,
        f: F,
    ) -> Option<T>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Option<T>> + Send + 'static,
    {
        cached_fail_safe(cache, key, fp, opts, stats, f).await
    }
}

/// How any other return value is cached: as it is.
pub struct PlainRule<T>(PhantomData<fn() -> T>);

impl<T: CacheValue> PlainRule<T> {
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

    /// The miss.
    #[allow(clippy::too_many_arguments)]
    pub async fn load<F, Fut>(
        self,
        cache: &Cache,
        key: &KeyBuf,
        fp: Fingerprint,
        opts: LoadOptions,
        stats: &'static FnStats,
        _skip_none: bool,
        f: F,
    ) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        cached(cache, key, fp, opts, stats, f).await
    }

    /// The miss with a soft timeout (a plain value cannot fail).
    pub async fn load_fail_safe<F, Fut>(
        self,
        cache: &Cache,
        key: &KeyBuf,
        fp: Fingerprint,
        opts: LoadOptions,
        stats: &'static FnStats,
        f: F,
    ) -> T
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = T> + Send + 'static,
    {
        cached_fail_safe(cache, key, fp, opts, stats, f).await
    }
}

/// Anything the `cache = ...` option may name.
pub trait AsCache {
    /// The cache.
    fn as_cache(&self) -> &Cache;
}
impl AsCache for Cache {
    fn as_cache(&self) -> &Cache {
        self
    }
}
impl AsCache for Arc<Cache> {
    fn as_cache(&self) -> &Cache {
        self
    }
}
impl<F: FnOnce() -> Cache> AsCache for std::sync::LazyLock<Cache, F> {
    fn as_cache(&self) -> &Cache {
        self
    }
}
impl<T: AsCache + ?Sized> AsCache for &T {
    fn as_cache(&self) -> &Cache {
        (**self).as_cache()
    }
}

/// A pattern of `#[invalidate_cache]` with `{arg}` values glob-escaped.
pub fn push_escaped(pattern: &mut String, part: &KeyBuf) {
    crate::pattern::escape_into(part.as_str(), pattern);
}

/// The synchronous L1 hit every cached function tries first. `key` is a [`KeyBuf`], or an
/// [`IntTailKey`] whose text is written only if this read needs it.
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
    // The L1 read is timed one time in 64 (reading the clock costs more than the hit); the
    // function's statistics reuse that measurement.
    let (v, took) = cache.hit_timed(key, fp)?;
    stats.hit(took);
    Some(v)
}

/// Runs the function, recording its run time under its name.
async fn run_timed<Fut: Future>(stats: &'static FnStats, fut: Fut) -> Fut::Output {
    let t = std::time::Instant::now();
    let out = fut.await;
    stats.load(t.elapsed());
    out
}

/// `#[cache]` on a function returning a plain value, after [`hit`] missed.
async fn cached<T, F, Fut>(
    cache: &Cache,
    key: &KeyBuf,
    fp: Fingerprint,
    opts: LoadOptions,
    stats: &'static FnStats,
    f: F,
) -> T
where
    T: CacheValue,
    F: FnOnce() -> Fut,
    Fut: Future<Output = T>,
{
    cached_infallible(cache, key, fp, opts, stats, |_: &T| true, f).await
}

/// The path of functions that cannot fail; `keep` decides what is stored.
async fn cached_infallible<T, F, Fut>(
    cache: &Cache,
    key: &KeyBuf,
    fp: Fingerprint,
    opts: LoadOptions,
    stats: &'static FnStats,
    keep: impl FnOnce(&T) -> bool,
    f: F,
) -> T
where
    T: CacheValue,
    F: FnOnce() -> Fut,
    Fut: Future<Output = T>,
{
    stats.past_l1();
    let r = cache
        .load_after_miss(key.as_str(), fp, opts, keep, || async {
            Ok::<T, std::convert::Infallible>(run_timed(stats, f()).await)
        })
        .await;
    infallible(r)
}

/// `#[cache]` on a function returning `Result`: only `Ok` is cached; `Err` reaches the caller.
async fn cached_result<T, E, F, Fut>(
    cache: &Cache,
    key: &KeyBuf,
    fp: Fingerprint,
    opts: LoadOptions,
    stats: &'static FnStats,
    f: F,
) -> Result<T, E>
where
    T: CacheValue,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    stats.past_l1();
    cache
        .load_after_miss(key.as_str(), fp, opts, |_: &T| true, || run_timed(stats, f()))
        .await
}

/// `#[cache]` on a function returning `Option`: `None` is cached too unless `skip_none`.
async fn cached_option<T, F, Fut>(
    cache: &Cache,
    key: &KeyBuf,
    fp: Fingerprint,
    opts: LoadOptions,
    stats: &'static FnStats,
    skip_none: bool,
    f: F,
) -> Option<T>
where
    T: CacheValue,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let keep = |v: &Option<T>| !(skip_none && v.is_none());
    cached_infallible(cache, key, fp, opts, stats, keep, f).await
}

/// `#[cache(stale_if_error = .., soft_timeout = ..)]` on a function returning `Result`.
async fn cached_result_fail_safe<T, E, F, Fut>(
    cache: &Cache,
    key: &KeyBuf,
    fp: Fingerprint,
    opts: LoadOptions,
    stats: &'static FnStats,
    f: F,
) -> Result<T, E>
where
    T: CacheValue,
    E: std::fmt::Debug + Send + 'static,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    stats.past_l1();
    cache
        .load_fail_safe(key.as_str(), fp, opts, || run_timed(stats, f()))
        .await
}

/// Fail-safe for a function returning a plain value (or an `Option`): only the soft timeout
/// applies, since such a function cannot fail.
async fn cached_fail_safe<T, F, Fut>(
    cache: &Cache,
    key: &KeyBuf,
    fp: Fingerprint,
    opts: LoadOptions,
    stats: &'static FnStats,
    f: F,
) -> T
where
    T: CacheValue,
    F: FnOnce() -> Fut,
    Fut: Future<Output = T> + Send + 'static,
{
    stats.past_l1();
    let fut = f();
    let r = cache
        .load_fail_safe(key.as_str(), fp, opts, move || async move {
            Ok::<T, std::convert::Infallible>(run_timed(stats, fut).await)
        })
        .await;
    infallible(r)
}

/// What a `#[cache_batch]` function may return: a map from id to value (`HashMap`, `BTreeMap`),
/// or a `Result` of one, whose `Err` reaches the caller and stores nothing. A trait rather than
/// the written type name, so aliases and re-exports work.
#[diagnostic::on_unimplemented(
    message = "#[cache_batch] functions return a map from id to value (`HashMap<Id, V>` or `BTreeMap<Id, V>`), or a `Result` of one; not `{Self}`",
    label = "this function's return type"
)]
pub trait BatchReturn<Id>: Sized {
    /// The cached value of one id.
    type Value: CacheValue;
    /// The function's error (`Infallible` for a bare map).
    type Error;
    /// The function's result as `(id, value)` pairs, or its error.
    fn into_entries(self) -> Result<Vec<(Id, Self::Value)>, Self::Error>;
    /// The caller's result from cached and computed pairs.
    fn from_entries(entries: Vec<(Id, Self::Value)>) -> Self;
    /// The caller's result when the function failed.
    fn from_error(e: Self::Error) -> Self;
}

impl<Id: Eq + std::hash::Hash, V: CacheValue, S: std::hash::BuildHasher + Default> BatchReturn<Id>
    for std::collections::HashMap<Id, V, S>
{
    type Value = V;
    type Error = std::convert::Infallible;
    fn into_entries(self) -> Result<Vec<(Id, V)>, Self::Error> {
        Ok(self.into_iter().collect())
    }
    fn from_entries(entries: Vec<(Id, V)>) -> Self {
        entries.into_iter().collect()
    }
    fn from_error(e: Self::Error) -> Self {
        match e {}
    }
}

impl<Id: Ord, V: CacheValue> BatchReturn<Id> for std::collections::BTreeMap<Id, V> {
    type Value = V;
    type Error = std::convert::Infallible;
    fn into_entries(self) -> Result<Vec<(Id, V)>, Self::Error> {
        Ok(self.into_iter().collect())
    }
    fn from_entries(entries: Vec<(Id, V)>) -> Self {
        entries.into_iter().collect()
    }
    fn from_error(e: Self::Error) -> Self {
        match e {}
    }
}

impl<Id, M, E> BatchReturn<Id> for Result<M, E>
where
    M: BatchReturn<Id, Error = std::convert::Infallible>,
{
    type Value = M::Value;
    type Error = E;
    fn into_entries(self) -> Result<Vec<(Id, M::Value)>, E> {
        self.map(|m| infallible(m.into_entries()))
    }
    fn from_entries(entries: Vec<(Id, M::Value)>) -> Self {
        Ok(M::from_entries(entries))
    }
    fn from_error(e: E) -> Self {
        Err(e)
    }
}

/// Compiles only when `R` is a [`BatchReturn`]: the expansion calls it at the return type's span,
/// so a wrong return type is reported there.
#[inline]
pub fn batch_returns<R: BatchReturn<Id>, Id>() {}

/// `#[cache_batch]`: cached ids from one L1 pass and one `MGET`, the function called once with
/// the missing ids, its results written in one pipeline (nothing when it returns `Err`).
pub async fn cached_batch<Id, R, F, Fut>(
    cache: &Cache,
    ids: &[Id],
    keys: &[KeyBuf],
    ttl: Option<Duration>,
    stats: &'static FnStats,
    f: F,
) -> R
where
    Id: Clone + Eq + std::hash::Hash,
    R: BatchReturn<Id>,
    F: FnOnce(Vec<Id>) -> Fut,
    Fut: Future<Output = R>,
{
    stats.past_l1();
    let keys: Vec<&str> = keys.iter().map(KeyBuf::as_str).collect();
    let r = cache
        .batch(&keys, ttl, |missing: Vec<usize>| async move {
            let wanted: Vec<Id> = missing.iter().map(|&i| ids[i].clone()).collect();
            let found = run_timed(stats, f(wanted.clone())).await.into_entries()?;
            let mut got: std::collections::HashMap<Id, R::Value> = found.into_iter().collect();
            Ok(wanted.iter().map(|id| got.remove(id)).collect())
        })
        .await;
    match r {
        Ok(values) => R::from_entries(
            ids.iter()
                .cloned()
                .zip(values)
                .filter_map(|(id, v)| v.map(|v| (id, v)))
                .collect(),
        ),
        Err(e) => R::from_error(e),
    }
}

/// `#[invalidate_cache]`: deletes every pattern; failures are logged and counted, never returned.
pub async fn invalidate(cache: &Cache, patterns: &[String]) {
    for p in patterns {
        if let Err(e) = cache.invalidate_pattern(p).await {
            tracing::warn!(pattern = %p, error = %e, "invalidation after a successful call failed");
        }
    }
}

/// Whether a function's return value counts as success for `#[invalidate_cache]`.
pub trait Outcome {
    /// `false` only for `Err`.
    fn is_success(&self) -> bool;
}
impl<T, E> Outcome for Result<T, E> {
    fn is_success(&self) -> bool {
        self.is_ok()
    }
}

/// Autoref fallback: any non-`Result` return is a success.
pub struct Ret<'a, T: ?Sized>(pub &'a T);
/// `Result` returns: success is `Ok`.
pub trait RetResult {
    /// Whether to invalidate.
    fn __cache_success(&self) -> bool;
}
impl<T: Outcome + ?Sized> RetResult for &Ret<'_, T> {
    fn __cache_success(&self) -> bool {
        self.0.is_success()
    }
}
/// Other returns: always success.
pub trait RetAny {
    /// Whether to invalidate.
    fn __cache_success(&self) -> bool;
}
impl<T: ?Sized> RetAny for Ret<'_, T> {
    fn __cache_success(&self) -> bool {
        true
    }
}
