//! Fail-safe (FusionCache's name): an entry kept past its TTL is served when the loader fails,
//! or outruns its soft timeout (the loader then finishes in the background and stores).

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{load_after_miss, LoadOptions, Rule};
use crate::engine::Engine;
use crate::key::Fingerprint;
use crate::values::{erase, of_entry, ops, CacheValue};

/// [`load_after_miss`] with fail-safe: when the loader fails, or outruns `opts.soft_timeout`,
/// and a stale value is at hand, the stale value is served (and not stored again as fresh); a
/// soft-timed-out loader finishes in the background and stores its result, guarded from its own
/// start.
pub(crate) async fn load_fail_safe<T, E, F, Fut>(
    engine: &Arc<Engine>,
    key: &str,
    fp: Fingerprint,
    opts: LoadOptions,
    tags: &[&str],
    load: F,
) -> Result<T, E>
where
    T: CacheValue,
    E: std::fmt::Debug + Send + 'static,
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
{
    let served_stale = AtomicBool::new(false);
    let keep = |_: &T| !served_stale.load(Ordering::Relaxed);
    let loader = || async {
        let stale = engine
            .stale_copy(key, fp, ops::<T>(), opts.stale_for.unwrap_or_default())
            .await
            .and_then(|e| of_entry::<T>(&e));
        let Some(stale) = stale else {
            return load().await;
        };
        // A load that may finish in the background stores there, guarded from its own start.
        let start = match opts.soft_timeout {
            Some(_) => Some(engine.load_start_tagged(engine.log.start(), key, tags).await),
            None => None,
        };
        let mut fut = Box::pin(load());
        let outcome = match opts.soft_timeout {
            Some(soft) => tokio::time::timeout(soft, &mut fut).await.ok(),
            None => Some(fut.as_mut().await),
        };
        match outcome {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => {
                tracing::warn!(key, error = ?e, "loader failed; serving the stale value (fail-safe)");
                engine.counters.stale_served.incr();
                served_stale.store(true, Ordering::Relaxed);
                Ok(stale)
            }
            None => {
                tracing::info!(key, "loader exceeded its soft timeout; serving the stale value");
                engine.counters.stale_served.incr();
                served_stale.store(true, Ordering::Relaxed);
                let (engine, key) = (Arc::clone(engine), key.to_owned());
                tokio::spawn(async move {
                    match fut.await {
                        Ok(v) => {
                            // store() logs and counts its own failures.
                            if let Some(start) = start {
                                let _ = engine
                                    .store(&key, fp, erase(v), ops::<T>(), &opts, Some(&start), &start.tags)
                                    .await;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(key, error = ?e, "background load after soft timeout failed")
                        }
                    }
                });
                Ok(stale)
            }
        }
    };
    load_after_miss(engine, key, fp, opts, None, tags, Rule::RESULT, keep, loader).await
}
