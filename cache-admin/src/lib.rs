//! The cache's admin HTTP API: an `axum` [`Router`] a service mounts, plus Prometheus metrics.
//!
//! | route | action | what |
//! |---|---|---|
//! | `GET /api/v1/cache/stats` | `read` | `{"cache": Stats, "warmup": WarmupStatus}` (adaptive TTL keys redacted) |
//! | `GET /api/v1/cache/health` | open; details need `read` | 200, or 503 when Redis is unreachable; `{"status": "healthy"}` / `"unhealthy"` only, unless the caller may read: then also the reason, the Redis URL (password masked) and the rest of [`Health`](cache_core::Health) |
//! | `POST /api/v1/cache/clear` | `clear` | `{"pattern": "query:*"}` → `{"removed": n}`; a pattern that can match every key needs `"confirm": true` (below); `{"tags": ["user:42"]}` invalidates tags (alone or beside a pattern) |
//! | `POST /api/v1/cache/warmup` | `warmup` | runs a warmup, returns its report (every entry skipped while the cache is off) |
//! | `POST /api/v1/cache/enabled` | `switch`, patterns `*` | `{"enabled": false}` turns the cache off (every cached call runs its function, nothing is read or stored, invalidations still run; this process only; [`Cache::set_enabled`](cache_core::Cache::set_enabled)), `true` back on → `{"enabled": .., "was": ..}`; logged |
//! | `GET /api/v1/cache/access-patterns?limit=20` | `read` | hottest keys, counts, hit ratios (keys redacted); with `access_sample_rate` > 1 the counts are estimates and the answer says so (`sampled`, `sample_rate`) |
//! | `GET /api/v1/cache/performance` | `read` | latency per operation (L1/L2), compression, memory, per-function timings |
//! | `GET /api/v1/cache/memory?samples=20` | `read` | memory per key prefix (L1, sampled Redis `MEMORY USAGE`), largest entries (both redacted) |
//! | `GET /api/v1/cache/ttl-advice` | `read` | per family (a function's keys, a key prefix): observed change rate, read rate, current and recommended TTL, expected hit rate and stale fraction under each (families outside the token's patterns redacted) |
//! | `GET /api/v1/cache/anomalies?limit=100&active=true` | `read` | recent anomalies, newest first (kind, scope, severity, start, end, observed, baseline, threshold, score, peak; key prefixes outside the token's patterns redacted), and per kind and severity how many were raised and are open ([`Cache::anomalies`](cache_core::Cache::anomalies)) |
//! | `GET /metrics` | `read` | Prometheus text (with `cache_anomalies_total{kind,severity}` and `cache_anomalies_active{kind}`) |
//! | `GET /dashboard` (+ `/dashboard/app.js`, `/dashboard/app.css`) | open (static); its calls need `read` (and `clear`, `warmup`, `switch` for its buttons) | a live page over the routes above, polling every 2 s, with the bearer token the user types; strict CSP, `no-store` |
//!
//! **Tokens.** Requests carry `Authorization: Bearer <secret>`. Each token has a name (what
//! logs show; never the secret), the actions it may take (`read`, `clear`, `warmup`, `switch`), the key
//! patterns it may touch (default `*`) and the tag names it may invalidate (default none: a
//! tag spans keys of any pattern). They come from the environment ([`AdminConfig::from_env`]):
//!
//! - `CACHE_ADMIN_TOKENS_FILE`: a TOML file of tokens:
//!   ```toml
//!   [[tokens]]
//!   name = "tenant-a"           # logged; never the token itself
//!   token = "s3cret..."         # the bearer secret
//!   actions = ["read", "clear", "warmup"]   # and "switch": the cache-off switch
//!   patterns = ["tenant-a:*"]   # default ["*"]
//!   tags = ["tenant-a:*"]       # tag names it may invalidate; default none
//!   ```
//! - `CACHE_ADMIN_TOKEN`: one token named `default` with every action, patterns `["*"]` and
//!   tags `["*"]`.
//!
//! Both may be set (their tokens are added together). A malformed file, an unknown action, a
//! bad pattern, an empty secret or name, no actions, or a name or secret used twice is an
//! [`AdminConfigError`]. In code, build the same with [`AdminConfig`] and [`AdminToken`].
//! Secrets are kept only as SHA-256 digests, and a request's is compared with every token's
//! in constant time ([`subtle`](https://docs.rs/subtle)); `Debug` never shows them.
//!
//! **Answers.** A missing or wrong token is a 401 (with `WWW-Authenticate: Bearer`); a token
//! without the route's action is a 403. A clear whose pattern is not inside the token's
//! patterns ([`Scope::allows_pattern`], conservative: `tenant-a:users:*` is inside
//! `tenant-a:*`, `tenant-*` and `*` are not), or that names a tag outside its tags, is a 403
//! before anything is deleted or Redis is asked. Every clear and warmup is logged
//! (`tracing::info!`) with the token's name, the pattern or tags, and what it removed or ran.
//!
//! **Redaction.** The read routes show a key name only when the token's patterns match it
//! ([`Scope::allows_key`]), and a key prefix (the memory profile's rows, a key family
//! `prefix` / `prefix:*`) only when the token may read the key `prefix` or every key
//! `prefix:*`. Other names become `"<redacted>"`, with their figures kept: the access
//! patterns' keys, the memory profile's largest entries and prefixes, the stats' adaptive TTL
//! choices. Tag prefixes (`tag_invalidations_by_prefix`, the `/metrics` labels) and cached
//! function names are not key names and are shown to any `read` token.
//!
//! **Without tokens** every route answers only clients on loopback (health answers anyone, in
//! its status-only form), which needs the server to pass connection info
//! (`into_make_service_with_connect_info::<SocketAddr>()`, as [`serve`] does; without it the
//! peer is unknown and refused), and [`serve_checked`] refuses to bind a non-loopback address.
//!
//! **Errors** are JSON, `{"error": "..."}`: a body over [`MAX_BODY_BYTES`] (64 KiB) is a 413, a
//! JSON route without `Content-Type: application/json` a 415, malformed JSON or a bad query
//! string (`?limit=abc`) a 400, an unknown path under `/api/v1/cache/` a 404, a wrong method
//! a 405 (with `Allow`).
//!
//! [`Scope::allows_pattern`]: cache_core::Scope::allows_pattern
//! [`Scope::allows_key`]: cache_core::Scope::allows_key
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
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let cache = cache_core::Cache::from_env()?;
//! let config = cache_admin::AdminConfig::from_env()?;
//! let app = cache_admin::router(cache, None, config.clone());
//! cache_admin::serve_checked("127.0.0.1:8000".parse()?, app, &config).await?;
//! # Ok(()) }
//! ```

mod advice;
mod anomalies;
mod auth;
mod dashboard;
mod handlers;
mod metrics_export;
mod redact;
mod switch;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{any, get, post};
use axum::Router;
use cache_core::Cache;
use cache_warmer::Warmer;

pub use auth::{Action, AdminConfig, AdminConfigError, AdminToken};

/// The largest request body the admin routes read (64 KiB): a clear request is a pattern and
/// a few tags. A larger body is a 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Clone)]
pub(crate) struct AppState {
    pub cache: Cache,
    pub warmer: Option<Warmer>,
    pub config: Arc<AdminConfig>,
}

/// The admin routes over `cache` (and `warmer`, for the warmup routes and the stats' warmup
/// block).
///
/// Unknown paths under `/api/v1/cache/` and unsupported methods on its routes answer with a
/// JSON error. The router sets no [`Router::fallback`], so it can be merged into an
/// application that has its own.
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
        .route("/api/v1/cache/enabled", post(switch::set_enabled))
        .route("/api/v1/cache/access-patterns", get(handlers::access_patterns))
        .route("/api/v1/cache/performance", get(handlers::performance))
        .route("/api/v1/cache/memory", get(handlers::memory))
        .route("/api/v1/cache/ttl-advice", get(advice::ttl_advice))
        .route("/api/v1/cache/anomalies", get(anomalies::list))
        .route("/metrics", get(handlers::metrics))
        .route("/dashboard", get(dashboard::page))
        .route("/dashboard/app.js", get(dashboard::script))
        .route("/dashboard/app.css", get(dashboard::style))
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .route("/api/v1/cache", any(handlers::not_found))
        .route("/api/v1/cache/{*rest}", any(handlers::not_found))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Why [`serve`] refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// Binding a non-loopback address without a token would expose the admin routes.
    #[error(
        "refusing to serve the admin API on {0} without an admin token; bind 127.0.0.1 or set \
         CACHE_ADMIN_TOKEN or CACHE_ADMIN_TOKENS_FILE"
    )]
    Exposed(SocketAddr),
    /// Bind or accept failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Serves `app` on `addr` with connection info (needed for the loopback rule). Refuses a
/// non-loopback address when `config` has no token.
///
/// ```no_run
/// # async fn run(cache: cache_core::Cache) -> Result<(), Box<dyn std::error::Error>> {
/// let config = cache_admin::AdminConfig::from_env()?;
/// let app = cache_admin::router(cache, None, config.clone());
/// cache_admin::serve_checked("0.0.0.0:8000".parse()?, app, &config).await?;
/// # Ok(()) }
/// ```
pub async fn serve_checked(addr: SocketAddr, app: Router, config: &AdminConfig) -> Result<(), ServeError> {
    if !config.has_tokens() && !addr.ip().is_loopback() {
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
