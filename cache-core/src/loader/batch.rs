//! Many keys at once: one L1 pass, one remote read for the rest, the loader called once with
//! exactly the missing keys, one guarded write of what it returned.

use std::future::Future;
use std::time::Duration;

use crate::cache::Cache;
use crate::engine::Engine;
use crate::error::Result;
use crate::key::Fingerprint;
use crate::values::{erase, of_entry, ops, CacheValue};

/// Reads many keys: L1 first, then ONE remote read for the rest. Results are in input order.
pub(crate) async fn mget<T: CacheValue, K: AsRef<str>>(
    engine: &Engine,
    keys: &[K],
) -> Result<Vec<Option<T>>> {
    let mut out: Vec<Option<T>> = Vec::with_capacity(keys.len());
    let mut missing: Vec<usize> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        let v = engine
            .l1_get_timed::<T>(Fingerprint::of(k.as_ref()))
            .map(|(v, _)| v);
        if v.is_none() {
            missing.push(i);
        }
        out.push(v);
    }
    if missing.is_empty() {
        return Ok(out);
    }
    let miss_keys: Vec<&str> = missing.iter().map(|&i| keys[i].as_ref()).collect();
    let found = engine.remote_read_many(&miss_keys, ops::<T>()).await?;
    for (&i, entry) in missing.iter().zip(found) {
        out[i] = entry.and_then(|e| of_entry::<T>(&e));
    }
    Ok(out)
}

/// The batch path behind `get_many_or_compute` and `#[cache_batch]`: `load` gets the indices of
/// the missing keys and returns their values in that order. Remote failures fall back to
/// computing (logged, counted); `load`'s error is returned and nothing is stored.
pub(crate) async fn batch<T, E, K, F, Fut>(
    engine: &Engine,
    keys: &[K],
    ttl: Option<Duration>,
    load: F,
) -> std::result::Result<Vec<Option<T>>, E>
where
    T: CacheValue,
    K: AsRef<str>,
    F: FnOnce(Vec<usize>) -> Fut,
    Fut: Future<Output = std::result::Result<Vec<Option<T>>, E>>,
{
    if !engine.enabled() {
        // Off: the loader gets every key, nothing is read or stored.
        engine.counters.bypassed.incr();
        return load((0..keys.len()).collect()).await;
    }
    let seq = engine.log.start();
    let mut out = match mget::<T, K>(engine, keys).await {
        Ok(v) => v,
        // mget logged and counted the failure: compute everything.
        Err(_) => (0..keys.len()).map(|_| None).collect(),
    };
    let missing: Vec<usize> = (0..keys.len()).filter(|&i| out[i].is_none()).collect();
    if missing.is_empty() {
        return Ok(out);
    }
    engine.counters.loader_calls.incr();
    let missing_keys: Vec<&str> = missing.iter().map(|&i| keys[i].as_ref()).collect();
    let starts = engine.load_start(seq, &missing_keys).await;
    let loaded = load(missing.clone()).await?;
    let mut to_store = Vec::with_capacity(missing.len());
    for ((i, v), start) in missing.into_iter().zip(loaded).zip(&starts) {
        if let Some(v) = v {
            to_store.push((keys[i].as_ref(), erase(v.clone()), start));
            out[i] = Some(v);
        }
    }
    // Logs and counts its own failures: the computed values are returned regardless.
    engine.store_loaded_many(to_store, ops::<T>(), ttl).await;
    Ok(out)
}

/// The facade's batch operations.
impl Cache {
    /// Reads many keys: L1 first, then ONE `MGET` for the rest. Results are in input order.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
    /// let cache = cache_core::Cache::new(Default::default())?;
    /// cache.mset(&[("a", 1u8), ("b", 2u8)], None).await?;
    /// assert_eq!(cache.mget::<u8, _>(&["a", "x", "b"]).await?, vec![Some(1), None, Some(2)]);
    /// # Ok(()) }
    /// ```
    pub async fn mget<T: CacheValue, K: AsRef<str>>(&self, keys: &[K]) -> Result<Vec<Option<T>>> {
        mget(&self.engine, keys).await
    }

    /// Writes many values in ONE pipelined round trip (`SET .. PX` each; `MSET` has no TTL).
    /// `ttl = None` takes each key's TTL from the pattern table.
    pub async fn mset<T: CacheValue, K: AsRef<str>>(
        &self,
        items: &[(K, T)],
        ttl: Option<Duration>,
    ) -> Result<()> {
        let items = items
            .iter()
            .map(|(k, v)| (k.as_ref(), erase(v.clone())))
            .collect();
        self.engine.store_many(items, ops::<T>(), ttl).await
    }

    /// Reads many keys and computes only the missing ones: one L1 pass, ONE `MGET` for the rest,
    /// `load` called once with exactly the missing keys, ONE guarded write of what it returned
    /// (a value an invalidation overtook is returned but not stored: see the README's
    /// consistency section). Results follow the input order; a key `load` did not return is
    /// `None`. Works in L1-only mode. Redis failures fall back to computing (logged, counted);
    /// `load`'s error is returned.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use std::collections::HashMap;
    /// let cache = cache_core::Cache::new(Default::default()).unwrap();
    /// cache.set("resource:users:1", &"ann".to_string(), None).await.unwrap();
    /// let keys = ["resource:users:1", "resource:users:2"];
    /// let got = cache
    ///     .get_many_or_compute(&keys, None, |missing: Vec<String>| async move {
    ///         assert_eq!(missing, vec!["resource:users:2"]);
    ///         Ok::<_, std::convert::Infallible>(HashMap::from([(missing[0].clone(), "bob".to_string())]))
    ///     })
    ///     .await
    ///     .unwrap();
    /// assert_eq!(got, vec![Some("ann".to_string()), Some("bob".to_string())]);
    /// # }
    /// ```
    pub async fn get_many_or_compute<T, E, K, F, Fut>(
        &self,
        keys: &[K],
        ttl: Option<Duration>,
        load: F,
    ) -> Result<Vec<Option<T>>, E>
    where
        T: CacheValue,
        K: AsRef<str>,
        F: FnOnce(Vec<String>) -> Fut,
        Fut: Future<Output = Result<std::collections::HashMap<String, T>, E>>,
    {
        batch(&self.engine, keys, ttl, |missing: Vec<usize>| async move {
            let wanted: Vec<String> = missing.iter().map(|&i| keys[i].as_ref().to_owned()).collect();
            let mut found = load(wanted.clone()).await?;
            Ok(wanted.iter().map(|k| found.remove(k)).collect())
        })
        .await
    }
}
