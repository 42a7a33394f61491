//! The one error type of the engine.

use std::time::Duration;

/// Result alias used across `cache-core`.
pub type Result<T, E = CacheError> = std::result::Result<T, E>;

/// Everything that can go wrong inside the cache.
///
/// Cached functions never see these: the macros log them, count them in
/// [`Stats::errors`](crate::Stats::errors) and run the function instead. The direct API
/// ([`Cache::get`](crate::Cache::get) and friends) returns them so callers can decide.
///
/// ```
/// use cache_core::{CacheConfig, CacheError};
/// let err = CacheConfig::builder().redis_url("not a url").build().unwrap_err();
/// assert!(matches!(err, CacheError::Config(_)));
/// ```
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The configuration is invalid (bad URL, zero capacity, unreadable file...).
    #[error("invalid cache configuration: {0}")]
    Config(String),
    /// A glob pattern could not be compiled.
    #[error("invalid key pattern {pattern:?}: {reason}")]
    InvalidPattern {
        /// The pattern as given (its first 64 characters and `...` when it is longer than
        /// [`MAX_PATTERN_LEN`](crate::pattern::MAX_PATTERN_LEN)).
        pattern: String,
        /// Why it was rejected.
        reason: String,
    },
    /// Redis answered with an error or the connection failed.
    #[error("redis error: {0}")]
    Redis(#[from] redis::RedisError),
    /// No connection could be taken from the pool.
    #[error("redis pool error: {0}")]
    Pool(String),
    /// A Redis call did not answer in time.
    #[error("redis call timed out after {0:?}")]
    Timeout(Duration),
    /// The circuit breaker is open: Redis failed repeatedly and is not being called for now.
    #[error("redis circuit breaker is open; L2 skipped")]
    CircuitOpen,
    /// A value is larger than `max_value_size`: it was stored nowhere.
    #[error("value for {key:?} is {size} bytes, over max_value_size ({max} bytes); not cached")]
    ValueTooLarge {
        /// The key it was meant for.
        key: String,
        /// Its encoded size.
        size: usize,
        /// The configured cap.
        max: usize,
    },
    /// A value could not be encoded or decoded.
    #[error(transparent)]
    Codec(#[from] crate::codec::CodecError),
}

impl CacheError {
    /// Whether the error comes from the Redis transport (connection, timeout, breaker)
    /// rather than from the data or the configuration.
    pub fn is_transport(&self) -> bool {
        match self {
            CacheError::Redis(e) => {
                e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal()
            }
            CacheError::Pool(_) | CacheError::Timeout(_) | CacheError::CircuitOpen => true,
            _ => false,
        }
    }
}

/// Why [`Cache::refresh`](crate::Cache::refresh) failed: its loader, or the cache's write.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RefreshError<E> {
    /// The loader returned this error; nothing was stored.
    #[error("loader failed: {0}")]
    Load(E),
    /// The value was computed but the cache could not store it.
    #[error(transparent)]
    Cache(CacheError),
}
