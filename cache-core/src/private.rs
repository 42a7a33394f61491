//! What the attribute macros expand into. Not a public API: names and signatures may change in
//! any release. Generated code names only items under `::cache_core::__private`.

use std::fmt;
use std::future::Future;
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
pub async fn cached<T, F, Fut>(
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
pub async fn cached_result<T, E, F, Fut>(
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
pub async fn cached_option<T, F, Fut>(
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
pub async fn cached_result_fail_safe<T, E, F, Fut>(
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
pub async fn cached_fail_safe<T, F, Fut>(
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

/// `#[cache_batch]`: cached ids from one L1 pass and one `MGET`, the function called once with
/// the missing ids, its results written in one pipeline.
pub async fn cached_batch<Id, V, M, F, Fut>(
    cache: &Cache,
    ids: &[Id],
    keys: &[KeyBuf],
    ttl: Option<Duration>,
    stats: &'static FnStats,
    f: F,
) -> M
where
    Id: Clone + Eq + std::hash::Hash,
    V: CacheValue,
    M: IntoIterator<Item = (Id, V)> + FromIterator<(Id, V)>,
    F: FnOnce(Vec<Id>) -> Fut,
    Fut: Future<Output = M>,
{
    stats.past_l1();
    let keys: Vec<&str> = keys.iter().map(KeyBuf::as_str).collect();
    let r = cache
        .batch(&keys, ttl, |missing: Vec<usize>| async move {
            let wanted: Vec<Id> = missing.iter().map(|&i| ids[i].clone()).collect();
            let mut got: std::collections::HashMap<Id, V> =
                run_timed(stats, f(wanted.clone())).await.into_iter().collect();
            Ok::<_, std::convert::Infallible>(wanted.iter().map(|id| got.remove(id)).collect())
        })
        .await;
    let values = infallible(r);
    ids.iter()
        .cloned()
        .zip(values)
        .filter_map(|(id, v)| v.map(|v| (id, v)))
        .collect()
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
