//! Many keys at once: one L1 pass, one remote read for the rest, the loader called once with
//! exactly the missing keys, one guarded write of what it returned.

use std::future::Future;
use std::time::Duration;

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
