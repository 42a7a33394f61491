//! `#[cache_batch]`: what its functions may return, and the one path they all take.

use std::future::Future;

use super::{rules::run_timed, Cache, Duration, FnStats, KeyBuf};
use crate::cache::infallible;
use crate::values::CacheValue;

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
    let r = crate::loader::batch::batch(&cache.engine, &keys, ttl, |missing: Vec<usize>| async move {
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
