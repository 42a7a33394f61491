//! [`ScopedCache`]: a handle on a [`Cache`] that refuses every key, pattern and tag outside its
//! patterns, before any I/O. For plugin or multi-tenant code that must not read or invalidate
//! what is not its own.

use std::future::Future;
use std::time::Duration;

use crate::error::{CacheError, Result};
use crate::pattern::Pattern;
use crate::scope::Scope;
use crate::values::CacheValue;
use crate::{Cache, RefreshError};

/// A [`Cache`] limited to some key patterns ([`Cache::scoped`]).
///
/// Keys must match one of the patterns; an invalidation pattern must lie inside them (see
/// [`Scope`]); tags, which reach entries of any key, must themselves match the patterns (a
/// tenant names its tags under its own prefix: `tenant-a:user:42`). Anything else is
/// [`CacheError::OutOfScope`], returned before L1, Redis or the loader is touched.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
/// use cache_core::{Cache, CacheError};
/// let cache = Cache::new(Default::default())?;
/// let tenant = cache.scoped(&["tenant-a:*"])?;
/// tenant.set("tenant-a:users:1", &"ann".to_string(), None).await?;
/// assert_eq!(tenant.get::<String>("tenant-a:users:1").await?.as_deref(), Some("ann"));
/// let refused = tenant.get::<String>("tenant-b:users:1").await.unwrap_err();
/// assert!(matches!(refused, CacheError::OutOfScope { .. }));
/// assert!(tenant.invalidate_pattern("tenant-*").await.is_err());
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ScopedCache {
    cache: Cache,
    scope: Scope,
}

impl Cache {
    /// A handle that may touch only keys matching `patterns` (Redis globs). A malformed or
    /// empty list is an error.
    pub fn scoped<S: AsRef<str>>(&self, patterns: &[S]) -> Result<ScopedCache> {
        Ok(ScopedCache {
            cache: self.clone(),
            scope: Scope::new(patterns)?,
        })
    }
}

impl ScopedCache {
    /// The patterns this handle may touch.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    fn key(&self, key: &str) -> Result<()> {
        if self.scope.allows_key(key) {
            Ok(())
        } else {
            Err(self.refused("key", key))
        }
    }

    fn tags(&self, tags: &[&str]) -> Result<()> {
        match tags.iter().find(|t| !self.scope.allows_key(t)) {
            Some(t) => Err(self.refused("tag", t)),
            None => Ok(()),
        }
    }

    fn refused(&self, what: &'static str, name: &str) -> CacheError {
        let scope = self.scope.patterns().collect::<Vec<_>>().join(", ");
        tracing::warn!(
            what,
            name,
            scope,
            "scoped cache handle refused an operation outside its scope"
        );
        CacheError::OutOfScope {
            what,
            name: name.chars().take(64).collect(),
            scope,
        }
    }

    /// [`Cache::get`] inside the scope.
    pub async fn get<T: CacheValue>(&self, key: &str) -> Result<Option<T>> {
        self.key(key)?;
        self.cache.get(key).await
    }

    /// [`Cache::set`] inside the scope.
    pub async fn set<T: CacheValue>(&self, key: &str, value: &T, ttl: Option<Duration>) -> Result<()> {
        self.key(key)?;
        self.cache.set(key, value, ttl).await
    }

    /// [`Cache::set_tagged`] inside the scope (tags included).
    pub async fn set_tagged<T: CacheValue>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
        tags: &[&str],
    ) -> Result<()> {
        self.key(key)?;
        self.tags(tags)?;
        self.cache.set_tagged(key, value, ttl, tags).await
    }

    /// [`Cache::delete`] inside the scope.
    pub async fn delete(&self, key: &str) -> Result<bool> {
        self.key(key)?;
        self.cache.delete(key).await
    }

    /// [`Cache::exists`] inside the scope.
    pub async fn exists(&self, key: &str) -> Result<bool> {
        self.key(key)?;
        self.cache.exists(key).await
    }

    /// [`Cache::ttl_remaining`] inside the scope.
    pub async fn ttl_remaining(&self, key: &str) -> Result<Option<Duration>> {
        self.key(key)?;
        self.cache.ttl_remaining(key).await
    }

    /// [`Cache::invalidate_pattern`] for a pattern inside the scope.
    pub async fn invalidate_pattern(&self, pattern: &str) -> Result<u64> {
        if !self.scope.allows_pattern(&Pattern::new(pattern)?) {
            return Err(self.refused("pattern", pattern));
        }
        self.cache.invalidate_pattern(pattern).await
    }

    /// [`Cache::invalidate_tags`] for tags inside the scope.
    pub async fn invalidate_tags(&self, tags: &[&str]) -> Result<()> {
        self.tags(tags)?;
        self.cache.invalidate_tags(tags).await
    }

    /// Deletes every entry of the scope: an [`invalidate_pattern`](Self::invalidate_pattern)
    /// of each of its patterns; the sum of the counts, or the first error.
    pub async fn clear(&self) -> Result<u64> {
        let mut removed = 0;
        for p in self.scope.patterns() {
            removed += self.cache.invalidate_pattern(p).await?;
        }
        Ok(removed)
    }

    /// [`Cache::get_or_insert_with`] inside the scope: outside it, an error and `load` never
    /// runs.
    pub async fn get_or_insert_with<T, F, Fut>(&self, key: &str, ttl: Option<Duration>, load: F) -> Result<T>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        self.key(key)?;
        Ok(self.cache.get_or_insert_with(key, ttl, load).await)
    }

    /// [`Cache::get_or_insert_tagged`] inside the scope (tags included).
    pub async fn get_or_insert_tagged<T, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        tags: &[&str],
        load: F,
    ) -> Result<T>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = T>,
    {
        self.key(key)?;
        self.tags(tags)?;
        Ok(self.cache.get_or_insert_tagged(key, ttl, tags, load).await)
    }

    /// [`Cache::try_get_or_insert_with`] inside the scope: the outer error is the refusal (and
    /// `load` never ran), the inner result the loader's.
    pub async fn try_get_or_insert_with<T, E, F, Fut>(
        &self,
        key: &str,
        ttl: Option<Duration>,
        load: F,
    ) -> Result<Result<T, E>>
    where
        T: CacheValue,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        self.key(key)?;
        Ok(self.cache.try_get_or_insert_with(key, ttl, load).await)
    }

    /// [`Cache::refresh`] inside the scope.
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
        self.key(key).map_err(RefreshError::Cache)?;
        self.cache.refresh(key, ttl, load).await
    }
}
