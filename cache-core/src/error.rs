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
    /// A cache tag is too long, or an entry has too many ([`crate::Cache::invalidate_tags`]).
    #[error("invalid cache tag {tag:?}: {reason}")]
    InvalidTag {
        /// The tag (its first 64 characters and `...` when longer).
        tag: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The remote tier (Redis) answered with an error or its connection failed.
    #[error(transparent)]
    Backend(#[from] BackendError),
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
    /// A [`ScopedCache`](crate::ScopedCache) was asked for a key, pattern or tag outside its
    /// patterns; nothing was read, written or run.
    #[error("{what} {name:?} is outside this handle's scope ({scope})")]
    OutOfScope {
        /// `key`, `pattern` or `tag`.
        what: &'static str,
        /// What was refused (its first 64 characters).
        name: String,
        /// The handle's patterns.
        scope: String,
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
            CacheError::Backend(e) => e.kind.is_transport(),
            CacheError::Pool(_) | CacheError::Timeout(_) | CacheError::CircuitOpen => true,
            _ => false,
        }
    }
}

/// A failure of the remote tier, classified so callers can tell a network problem from a
/// refusal by the server, without depending on the client library behind it.
///
/// ```
/// use cache_core::{BackendError, BackendErrorKind, CacheError};
/// let e = CacheError::from(BackendError::new(BackendErrorKind::Timeout, "no reply in 1s"));
/// assert!(e.is_transport());
/// assert_eq!(e.to_string(), "backend timeout: no reply in 1s");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("backend {kind}: {message}")]
#[non_exhaustive]
pub struct BackendError {
    /// What kind of failure.
    pub kind: BackendErrorKind,
    /// The client library's description.
    pub message: String,
}

impl BackendError {
    /// A classified failure.
    pub fn new(kind: BackendErrorKind, message: impl Into<String>) -> Self {
        BackendError {
            kind,
            message: message.into(),
        }
    }
}

/// The classification of a [`BackendError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackendErrorKind {
    /// The connection failed or broke (I/O).
    Io,
    /// No reply in time.
    Timeout,
    /// The server closed the connection.
    ConnectionDropped,
    /// Nobody listens at the address.
    ConnectionRefused,
    /// The server refused the credentials or the command (ACL, `NOAUTH`, `WRONGPASS`).
    Auth,
    /// The server answered with an error.
    Server,
    /// Anything else (unexpected reply, client-side error).
    Other,
}

impl BackendErrorKind {
    /// Whether this is a transport failure (retry later) rather than a refusal.
    pub fn is_transport(self) -> bool {
        matches!(
            self,
            BackendErrorKind::Io
                | BackendErrorKind::Timeout
                | BackendErrorKind::ConnectionDropped
                | BackendErrorKind::ConnectionRefused
        )
    }
}

impl std::fmt::Display for BackendErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendErrorKind::Io => "i/o error",
            BackendErrorKind::Timeout => "timeout",
            BackendErrorKind::ConnectionDropped => "connection dropped",
            BackendErrorKind::ConnectionRefused => "connection refused",
            BackendErrorKind::Auth => "authentication error",
            BackendErrorKind::Server => "server error",
            BackendErrorKind::Other => "error",
        })
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
