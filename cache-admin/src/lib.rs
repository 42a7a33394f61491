//! The cache's admin HTTP API: an `axum` [`Router`] a service mounts, plus Prometheus metrics.
//!
//! | route | what |
//! |---|---|
//! | `GET /api/v1/cache/stats` | `{"cache": Stats, "warmup": WarmupStatus}` |
//! | `GET /api/v1/cache/health` | 200, or 503 with the reason when Redis is unreachable |
//! | `POST /api/v1/cache/clear` | `{"pattern": "query:*"}` → `{"removed": n}`; a pattern that can match every key needs `"confirm": true` (below); `{"tags": ["user:42"]}` invalidates tags (alone or beside a pattern) |
//! | `POST /api/v1/cache/warmup` | runs a warmup, returns its report |
//! | `GET /api/v1/cache/access-patterns?limit=20` | hottest keys, counts, hit ratios |
//! | `GET /api/v1/cache/performance` | latency per operation (L1/L2), compression, memory, per-function timings |
//! | `GET /api/v1/cache/memory?samples=20` | memory per key prefix (L1, sampled Redis `MEMORY USAGE`), largest entries |
//! | `GET /metrics` | Prometheus text |
//!
//! **Clear and confirmation.** A pattern with no literal prefix ([`Pattern::is_broad`]: `*`,
//! `?*`, `*:*`, `[a-z]*`, ...) can delete every key, so the request must also carry
//! `"confirm": true`; otherwise it is refused with 400 and nothing is deleted. `\*` (a key
//! named `*`, `"\\*"` in JSON) and `query:*` have a prefix and need no confirmation. The rule
//! looks at the pattern only: when every key an application writes starts with the same text
//! (say `app:`), `app:*` also deletes everything, and is not asked to be confirmed. A pattern
//! longer than [`MAX_PATTERN_LEN`] bytes, or malformed, is a 400 that says why.
//!
//! [`Pattern::is_broad`]: cache_core::Pattern::is_broad
//! [`MAX_PATTERN_LEN`]: cache_core::pattern::MAX_PATTERN_LEN
//!
//! Mutating routes (`POST`) need `Authorization: Bearer <token>` when a token is configured
//! (`CACHE_ADMIN_TOKEN`); without one they answer only clients on loopback, which needs the
//! server to pass connection info (`into_make_service_with_connect_info::<SocketAddr>()`, as
//! [`serve`] does).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let cache = cache_core::Cache::from_env()?;
//! let app = cache_admin::router(cache, None, cache_admin::AdminConfig::from_env());
//! cache_admin::serve("127.0.0.1:8000".parse()?, app).await?;
//! # Ok(()) }
//! ```

mod handlers;
mod metrics_export;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use cache_core::Cache;
use cache_warmer::Warmer;

/// Admin API settings.
#[derive(Debug, Clone, Default)]
pub struct AdminConfig {
    /// Bearer token required by mutating routes; `None` limits them to loopback clients.
    pub token: Option<String>,
}

impl AdminConfig {
    /// Reads `CACHE_ADMIN_TOKEN` (empty = none).
    pub fn from_env() -> Self {
        AdminConfig {
            token: std::env::var("CACHE_ADMIN_TOKEN").ok().filter(|t| !t.is_empty()),
        }
    }
}

#[derive(Clone)]
pub(crate) struct AppState {
    pub cache: Cache,
    pub warmer: Option<Warmer>,
    pub config: Arc<AdminConfig>,
}

/// The admin routes over `cache` (and `warmer`, for the warmup routes and the stats' warmup
/// block).
pub fn router(cache: Cache, warmer: Option<Warmer>, config: AdminConfig) -> Router {
    let state = AppState {
        cache,
        warmer,
        config: Arc::new(config),
    };
    Router::new()
        .route("/api/v1/cache/stats", get(handlers::stats))
        .route("/api/v1/cache/health", get(handlers::health))
        .route("/api/v1/cache/clear", post(handlers::clear))
        .route("/api/v1/cache/warmup", post(handlers::warmup))
        .route("/api/v1/cache/access-patterns", get(handlers::access_patterns))
        .route("/api/v1/cache/performance", get(handlers::performance))
        .route("/api/v1/cache/memory", get(handlers::memory))
        .route("/metrics", get(handlers::metrics))
        .with_state(state)
}

/// Why [`serve`] refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Binding a non-loopback address without a token would expose mutating routes.
    #[error(
        "refusing to serve the admin API on {0} without CACHE_ADMIN_TOKEN; bind 127.0.0.1 or set a token"
    )]
    Exposed(SocketAddr),
    /// Bind or accept failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Serves `app` on `addr` with connection info (needed for the loopback rule). Refuses a
/// non-loopback address when `token` is `None`.
pub async fn serve_checked(addr: SocketAddr, app: Router, token: Option<&str>) -> Result<(), ServeError> {
    if token.is_none() && !addr.ip().is_loopback() {
        return Err(ServeError::Exposed(addr));
    }
    serve(addr, app).await
}

/// Serves `app` on `addr`, passing connection info to handlers.
pub async fn serve(addr: SocketAddr, app: Router) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await?;
    Ok(())
}
