//! What a cached function's companions (`{fn}_refresh`, `{fn}_peek`, `{fn}_invalidate`,
//! `{fn}_invalidate_all`) run, over the same [`Rule`] as the function's own load: so a refresh
//! stores exactly what a miss would, and a peek returns what a hit would.

use std::future::Future;

use super::{Cache, Fingerprint, FnStats, LoadOptions};
use crate::loader::Rule;
use crate::values::{erase, ops, CacheValue};

/// Runs the body now and stores its value under the function's settings, as a miss would,
/// without reading the cache first. A value the function's rules leave out (`skip_none`'s
/// `None`, `unless`) deletes the entry instead: the cached one no longer stands for the
/// function's answer. An `Err` leaves the entry as it is.
#[allow(clippy::too_many_arguments)]
pub(super) async fn refresh<T, R, K, Fut>(
    cache: &Cache,
    key: &str,
    fp: Fingerprint,
    opts: LoadOptions,
    stats: &'static FnStats,
    tags: &[&str],
    rule: Rule<T, R>,
    keep: K,
    body: Fut,
) -> R
where
    T: CacheValue,
    K: FnOnce(&T) -> bool,
    Fut: Future<Output = R>,
{
    let engine = &cache.engine;
    // Before the body runs: an invalidation while it runs must win over what it returns.
    let start = engine.load_start_tagged(engine.log.start(), key, tags).await;
    let r = super::rules::run_timed(stats, body).await;
    match (rule.value)(&r) {
        Some(_) if engine.log.overtaken(start.seq, fp, key) || crate::tags::moved(&start.tags) => {
            engine.discarded(key);
        }
        Some(v) if keep(v) => {
            // Stored as a direct write, not as a load's fill: a refresh after a write must also
            // win over the loads in flight that read before the write, here and elsewhere.
            let (_, stored) = engine
                .store(key, fp, erase(v.clone()), ops::<T>(), &opts, None, &start.tags)
                .await;
            if let Err(e) = stored {
                tracing::warn!(key, error = %e, "refresh: the value was not stored");
            }
        }
        Some(_) => {
            if let Err(e) = cache.delete(key).await {
                tracing::warn!(key, error = %e, "refresh: the entry of a value not to cache was not deleted");
            }
        }
        None => {}
    }
    r
}

/// The function's cached answer for `key`, read from L1 and then Redis (or Redis alone for
/// `l1 = false`); never runs the body. A failing Redis reads as `None`, logged.
pub(super) async fn peek<T: CacheValue, R>(
    cache: &Cache,
    key: &str,
    opts: &LoadOptions,
    rule: Rule<T, R>,
) -> Option<R> {
    if !cache.engine.enabled() {
        return None;
    }
    let found = if opts.use_l1 {
        cache.get::<T>(key).await
    } else {
        cache
            .engine
            .remote_read(key, ops::<T>(), false)
            .await
            .map(|live| live.and_then(|l| l.d.value.downcast::<T>().ok().map(|v| *v)))
    };
    match found {
        Ok(v) => v.map(rule.wrap),
        Err(e) => {
            tracing::warn!(key, error = %e, "peek: the cache could not be read");
            None
        }
    }
}

/// `{fn}_invalidate`: deletes one entry everywhere (L1, Redis, the disk tier, other instances).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = cache_core::Cache::new(Default::default()).unwrap();
/// cache.set("query:k", &1u32, None).await.unwrap();
/// assert!(cache_core::__private::invalidate_key(&cache, "query:k").await.unwrap());
/// # }
/// ```
pub async fn invalidate_key(cache: &Cache, key: &str) -> crate::Result<bool> {
    cache.delete(key).await
}

/// `{fn}_invalidate_all`: deletes every entry of one function: its key space as a glob.
pub async fn invalidate_space(cache: &Cache, pattern: &str) -> crate::Result<u64> {
    // A key template that starts with an argument (`key = "{id}"`) has no space of its own: its
    // glob would match every key of the cache. That is an error, not a flush.
    if pattern.starts_with('*') {
        return Err(crate::CacheError::InvalidPattern {
            pattern: pattern.to_owned(),
            reason: "the function's key starts with an argument: a pattern cannot tell its keys from others'"
                .to_owned(),
        });
    }
    cache.invalidate_pattern(pattern).await
}

/// The glob of a function's key space: the key template's text escaped, each argument `*`.
/// Built by the expansion with [`KeySpace::text`] and [`KeySpace::arg`].
#[derive(Default)]
pub struct KeySpace(String);

impl KeySpace {
    /// An empty glob.
    pub fn new() -> Self {
        KeySpace(String::new())
    }
    /// Literal text of the key.
    pub fn text(&mut self, s: &str) {
        self.0.push_str(&crate::pattern::escape(s));
    }
    /// An argument: any text.
    pub fn arg(&mut self) {
        if !self.0.ends_with('*') {
            self.0.push('*');
        }
    }
    /// The glob.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
