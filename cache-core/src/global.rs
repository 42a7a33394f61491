//! The process-wide cache used by the attribute macros when no `cache = ...` is given.

use std::sync::OnceLock;

use crate::cache::Cache;
use crate::config::CacheConfig;

static GLOBAL: OnceLock<Cache> = OnceLock::new();

/// Installs `cache` as the process-wide default. Call it once at startup, before the first cached
/// call; returns the cache back if a default was already installed (or built lazily).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = cache_core::Cache::new(cache_core::CacheConfig::default()).unwrap();
/// assert!(cache_core::init(cache).is_ok());
/// assert!(cache_core::init(cache_core::Cache::new(Default::default()).unwrap()).is_err());
/// # }
/// ```
pub fn init(cache: Cache) -> Result<(), Cache> {
    let mut cache = Some(cache);
    GLOBAL.get_or_init(|| cache.take().unwrap_or_else(fallback));
    match cache {
        None => Ok(()),
        Some(c) => Err(c),
    }
}

/// The process-wide cache: the one given to [`init`], else one built from the environment
/// ([`CacheConfig::from_env`]). A bad environment is logged and an L1-only cache is used: a
/// cache must never stop the program.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = cache_core::global();
/// cache.set("k", &1u8, None).await.ok();
/// # }
/// ```
pub fn global() -> &'static Cache {
    GLOBAL.get_or_init(|| match Cache::from_env() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cache configuration from environment is invalid; using L1-only defaults");
            fallback()
        }
    })
}

fn fallback() -> Cache {
    let config = CacheConfig::default();
    match Cache::new(config) {
        Ok(c) => c,
        // The defaults are validated by tests; failing here means the defaults themselves broke.
        Err(e) => unreachable!("default L1-only configuration must build: {e}"),
    }
}
