//! Route handlers: each reads or calls the `Cache`/`Warmer`; no cache logic here.

use std::net::SocketAddr;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cache_core::Pattern;
use serde::Deserialize;
use serde_json::json;

use crate::{metrics_export, AppState};

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

/// Mutating routes: the bearer token when configured, else loopback clients only. Returns the
/// refusal, if any.
fn refusal(state: &AppState, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<Response> {
    match &state.config.token {
        Some(token) => {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            (given != Some(token.as_str()))
                .then(|| error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token"))
        }
        None => match peer {
            Some(addr) if addr.ip().is_loopback() => None,
            _ => Some(error(
                StatusCode::FORBIDDEN,
                "mutating admin routes without CACHE_ADMIN_TOKEN are limited to loopback clients",
            )),
        },
    }
}

pub(crate) async fn stats(State(state): State<AppState>) -> Response {
    let cache = state.cache.stats().await;
    let warmup = state.warmer.as_ref().map(|w| w.status());
    Json(json!({ "cache": cache, "warmup": warmup })).into_response()
}

pub(crate) async fn health(State(state): State<AppState>) -> Response {
    let h = state.cache.health().await;
    let status = if h.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let reason = match (&h.redis, h.healthy) {
        (None, _) => Some("L1-only mode (no REDIS_URL): healthy".to_owned()),
        (Some(r), false) => Some(format!(
            "redis unreachable: {}",
            r.error.as_deref().unwrap_or("no answer")
        )),
        _ => None,
    };
    (status, Json(json!({ "status": if h.healthy { "healthy" } else { "unhealthy" }, "reason": reason, "health": h })))
        .into_response()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ClearRequest {
    #[serde(default)]
    pattern: Option<String>,
    /// Tags to invalidate (alone or beside a pattern).
    #[serde(default)]
    tags: Option<Vec<String>>,
    #[serde(default)]
    confirm: bool,
}

pub(crate) async fn clear(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Json<ClearRequest>, JsonRejection>,
) -> Response {
    if let Some(r) = refusal(&state, &headers, peer.map(|c| c.0 .0)) {
        return r;
    }
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                "expected a JSON body like {{\"pattern\": \"query:*\"}} or {{\"tags\": [\"user:42\"]}}: {}",
                e.body_text()
            ),
            )
        }
    };
    let tags = match &req.tags {
        Some(t) if t.is_empty() => return error(StatusCode::BAD_REQUEST, "tags must not be an empty list"),
        Some(t) => t.clone(),
        None => Vec::new(),
    };
    let Some(pattern) = req.pattern.as_deref() else {
        if tags.is_empty() {
            return error(StatusCode::BAD_REQUEST, "give a \"pattern\", \"tags\", or both");
        }
        return clear_tags(&state, &tags, json!({})).await;
    };
    let pattern = pattern.trim();
    if pattern.is_empty() {
        return error(StatusCode::BAD_REQUEST, "pattern must not be empty");
    }
    // Compiled here as well as in `invalidate_pattern`, to judge its reach before deleting.
    // Rejections (malformed, longer than `MAX_PATTERN_LEN`) are the caller's mistake: 400.
    let compiled = match Pattern::new(pattern) {
        Ok(p) => p,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    // Whether the pattern can reach every key is decided by what it can match, not by how it
    // is spelled: `*`, `?*`, `*:*` and `[a-z]*` all have no literal prefix.
    if compiled.is_broad() && !req.confirm {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "pattern {pattern:?} has no literal prefix, so it can match every key; \
                 send \"confirm\": true to delete them all"
            ),
        );
    }
    match state.cache.invalidate_pattern(pattern).await {
        Ok(removed) => {
            tracing::info!(
                pattern,
                removed,
                broad = compiled.is_broad(),
                "cache cleared by admin API"
            );
            let done = json!({ "pattern": pattern, "removed": removed });
            if tags.is_empty() {
                Json(done).into_response()
            } else {
                clear_tags(&state, &tags, done).await
            }
        }
        Err(e @ cache_core::CacheError::InvalidPattern { .. }) => {
            error(StatusCode::BAD_REQUEST, e.to_string())
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

/// Invalidates `tags` and answers with `done` plus the tags; a tag that is too long is the
/// caller's mistake (400), Redis failing is 503.
async fn clear_tags(state: &AppState, tags: &[String], mut done: serde_json::Value) -> Response {
    let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    match state.cache.invalidate_tags(&refs).await {
        Ok(()) => {
            tracing::info!(tags = ?refs, "tags invalidated by admin API");
            done["tags"] = json!(refs);
            Json(done).into_response()
        }
        Err(e @ cache_core::CacheError::InvalidTag { .. }) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

pub(crate) async fn warmup(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
) -> Response {
    if let Some(r) = refusal(&state, &headers, peer.map(|c| c.0 .0)) {
        return r;
    }
    let warmer = state
        .warmer
        .unwrap_or_else(|| cache_warmer::Warmer::new(state.cache.clone()));
    Json(warmer.warm_up().await).into_response()
}

#[derive(Deserialize)]
pub(crate) struct Limit {
    limit: Option<usize>,
}

pub(crate) async fn access_patterns(State(state): State<AppState>, Query(q): Query<Limit>) -> Response {
    let limit = q.limit.unwrap_or(20).clamp(1, 1000);
    Json(json!({ "keys": state.cache.access_patterns(limit) })).into_response()
}

pub(crate) async fn performance(State(state): State<AppState>) -> Response {
    Json(state.cache.performance().await).into_response()
}

#[derive(Deserialize)]
pub(crate) struct Samples {
    samples: Option<usize>,
}

pub(crate) async fn memory(State(state): State<AppState>, Query(q): Query<Samples>) -> Response {
    let samples = q.samples.unwrap_or(20).clamp(1, 200);
    Json(state.cache.memory_profile(samples).await).into_response()
}

pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    let Some(handle) = metrics_export::handle() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "another metrics recorder is installed",
        );
    };
    metrics_export::publish(&state.cache.stats().await);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}
