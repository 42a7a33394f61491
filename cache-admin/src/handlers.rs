//! Route handlers: each reads or calls the `Cache`/`Warmer`; no cache logic here.

use std::net::SocketAddr;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{ConnectInfo, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use cache_core::Pattern;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{identify, Action, Caller, Refusal, Rights};
use crate::{metrics_export, redact, AppState};

pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

pub(crate) type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

/// Who sent the request: its bearer token, or (without tokens configured) its peer address.
fn caller<'a>(state: &'a AppState, headers: &HeaderMap, peer: Peer) -> Caller<'a> {
    let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    identify(&state.config, authorization, peer.map(|c| c.0 .0))
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Unauthenticated => {
                let mut r = error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
                r.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    header::HeaderValue::from_static("Bearer"),
                );
                r
            }
            Refusal::NotAllowed { name, action } => {
                error(StatusCode::FORBIDDEN, format!("token {name:?} may not {action}"))
            }
            Refusal::Remote => error(
                StatusCode::FORBIDDEN,
                "without an admin token (CACHE_ADMIN_TOKEN or CACHE_ADMIN_TOKENS_FILE) the admin \
                 routes answer loopback clients only",
            ),
        }
    }
}

/// The caller's rights for `action`, or the refusal to answer with.
pub(crate) fn require<'a>(
    state: &'a AppState,
    headers: &HeaderMap,
    peer: Peer,
    action: Action,
) -> Result<Rights<'a>, Refusal> {
    caller(state, headers, peer).rights(action)
}

/// A query string that does not parse: a JSON 400.
fn bad_query(e: &QueryRejection) -> Response {
    error(StatusCode::BAD_REQUEST, e.body_text())
}

/// A read route's rights and its query: 401/403 first, then 400 for a query that does not parse.
// The error is the handler's answer, returned at once: boxing it would only be undone.
#[allow(clippy::result_large_err)]
pub(crate) fn read_query<'a, Q>(
    state: &'a AppState,
    headers: &HeaderMap,
    peer: Peer,
    q: Result<Query<Q>, QueryRejection>,
) -> Result<(Rights<'a>, Q), Response> {
    let rights = require(state, headers, peer, Action::Read).map_err(IntoResponse::into_response)?;
    let Query(q) = q.map_err(|e| bad_query(&e))?;
    Ok((rights, q))
}

/// A JSON body that was refused: 415 without a JSON content type, 413 over
/// [`MAX_BODY_BYTES`](crate::MAX_BODY_BYTES), 400 for anything else; `like` is what the route
/// expects.
pub(crate) fn bad_body(e: &JsonRejection, like: &str) -> Response {
    let status = match e {
        JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {} bytes", crate::MAX_BODY_BYTES),
            )
        }
        JsonRejection::BytesRejection(b) => b.status(),
        _ => StatusCode::BAD_REQUEST,
    };
    error(
        status,
        format!("expected a JSON body like {like}: {}", e.body_text()),
    )
}

/// Unknown paths under the admin prefix.
pub(crate) async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such admin route")
}

/// A known admin route asked with a method it does not support (axum adds `Allow`).
pub(crate) async fn method_not_allowed() -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this admin route",
    )
}

pub(crate) async fn stats(State(state): State<AppState>, headers: HeaderMap, peer: Peer) -> Response {
    let rights = match require(&state, &headers, peer, Action::Read) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let cache = state.cache.stats().await;
    let warmup = state.warmer.as_ref().map(|w| w.status());
    let mut body = json!({ "cache": cache, "warmup": warmup });
    redact::stats(&mut body, &rights, &state.cache);
    Json(body).into_response()
}

/// Open to anyone, but only `{"status": ..}` unless the caller may read: the reason, the Redis
/// URL and the rest are details for operators.
pub(crate) async fn health(State(state): State<AppState>, headers: HeaderMap, peer: Peer) -> Response {
    let h = state.cache.health().await;
    let status = if h.healthy {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let word = if h.healthy { "healthy" } else { "unhealthy" };
    if caller(&state, &headers, peer).rights(Action::Read).is_err() {
        return (status, Json(json!({ "status": word }))).into_response();
    }
    let reason = match (&h.redis, h.healthy) {
        (None, _) => Some("L1-only mode (no REDIS_URL): healthy".to_owned()),
        (Some(r), false) => Some(format!(
            "redis unreachable: {}",
            r.error.as_deref().unwrap_or("no answer")
        )),
        _ => None,
    };
    (
        status,
        Json(json!({ "status": word, "reason": reason, "health": h })),
    )
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

/// `tag` quoted when short, else by its place in the list (a refusal does not echo 5 KB).
fn describe_tag(i: usize, tag: &str) -> String {
    if tag.len() <= 128 {
        format!("tag {tag:?}")
    } else {
        format!("tag #{i}")
    }
}

pub(crate) async fn clear(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    body: Result<Json<ClearRequest>, JsonRejection>,
) -> Response {
    let rights = match require(&state, &headers, peer, Action::Clear) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return bad_body(&e, r#"{"pattern": "query:*"} or {"tags": ["user:42"]}"#),
    };
    let tags = match &req.tags {
        Some(t) if t.is_empty() => return error(StatusCode::BAD_REQUEST, "tags must not be an empty list"),
        Some(t) => t.clone(),
        None => Vec::new(),
    };
    let pattern = match req.pattern.as_deref().map(str::trim) {
        None if tags.is_empty() => {
            return error(StatusCode::BAD_REQUEST, "give a \"pattern\", \"tags\", or both")
        }
        None => None,
        Some("") => return error(StatusCode::BAD_REQUEST, "pattern must not be empty"),
        // Compiled here as well as in `invalidate_pattern`, to judge its reach before
        // deleting. Rejections (malformed, longer than `MAX_PATTERN_LEN`) are the caller's
        // mistake: 400.
        Some(p) => match Pattern::new(p) {
            Ok(compiled) => Some(compiled),
            Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
        },
    };
    // The token's reach, before anything is deleted: the pattern must lie inside its patterns
    // (judged conservatively by `Scope::allows_pattern`), every tag inside its tags.
    if let Some(p) = &pattern {
        if !rights.clears(p) {
            return error(
                StatusCode::FORBIDDEN,
                format!(
                    "pattern {:?} is not inside the patterns of token {:?}",
                    p.as_str(),
                    rights.name
                ),
            );
        }
    }
    if let Some((i, tag)) = tags.iter().enumerate().find(|(_, t)| !rights.invalidates_tag(t)) {
        return error(
            StatusCode::FORBIDDEN,
            format!(
                "{} is not inside the tags of token {:?}",
                describe_tag(i, tag),
                rights.name
            ),
        );
    }
    let Some(compiled) = pattern else {
        return clear_tags(&state, &rights, &tags, json!({})).await;
    };
    let pattern = compiled.as_str();
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
                token = rights.name,
                pattern,
                removed,
                broad = compiled.is_broad(),
                "cache cleared by admin API"
            );
            let done = json!({ "pattern": pattern, "removed": removed });
            if tags.is_empty() {
                Json(done).into_response()
            } else {
                clear_tags(&state, &rights, &tags, done).await
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
async fn clear_tags(
    state: &AppState,
    rights: &Rights<'_>,
    tags: &[String],
    mut done: serde_json::Value,
) -> Response {
    let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    match state.cache.invalidate_tags(&refs).await {
        Ok(()) => {
            tracing::info!(
                token = rights.name,
                tags = ?refs,
                count = refs.len(),
                "tags invalidated by admin API"
            );
            done["tags"] = json!(refs);
            Json(done).into_response()
        }
        Err(e @ cache_core::CacheError::InvalidTag { .. }) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

pub(crate) async fn warmup(State(state): State<AppState>, peer: Peer, headers: HeaderMap) -> Response {
    let rights = match require(&state, &headers, peer, Action::Warmup) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let warmer = state
        .warmer
        .clone()
        .unwrap_or_else(|| cache_warmer::Warmer::new(state.cache.clone()));
    let report = warmer.warm_up().await;
    tracing::info!(
        token = rights.name,
        ok = report.ok,
        failed = report.failed,
        skipped = report.skipped,
        "warmup run by admin API"
    );
    Json(report).into_response()
}

#[derive(Deserialize)]
pub(crate) struct Limit {
    limit: Option<usize>,
}

pub(crate) async fn access_patterns(
    State(state): State<AppState>,
    headers: HeaderMap,
    peer: Peer,
    q: Result<Query<Limit>, QueryRejection>,
) -> Response {
    let (rights, q) = match read_query(&state, &headers, peer, q) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let limit = q.limit.unwrap_or(20).clamp(1, 1000);
    // Reads are recorded one in `sample_rate` (0: not at all); the rows' counts are scaled back
    // by it, so above 1 they are estimates in steps of the rate, and `samples` says how many
    // reads were recorded. The exact totals are in `/stats`.
    let rate = state.cache.config().access_sample_rate;
    let mut body = json!({
        "tracking": rate > 0,
        "sampled": rate > 1,
        "sample_rate": rate,
        "counts": match rate {
            0 => "off: access_sample_rate is 0",
            1 => "exact: every read is recorded",
            _ => "estimated: recorded reads (samples) x sample_rate; hits + misses = count",
        },
        "keys": state.cache.access_patterns(limit),
    });
    redact::access_patterns(&mut body, &rights, &state.cache);
    Json(body).into_response()
}

/// No key names in `Performance` (function names, operations, figures): nothing to redact.
pub(crate) async fn performance(State(state): State<AppState>, headers: HeaderMap, peer: Peer) -> Response {
    if let Err(r) = require(&state, &headers, peer, Action::Read) {
        return r.into_response();
    }
    Json(state.cache.performance().await).into_response()
}

#[derive(Deserialize)]
pub(crate) struct Samples {
    samples: Option<usize>,
}

pub(crate) async fn memory(
    State(state): State<AppState>,
    headers: HeaderMap,
    peer: Peer,
    q: Result<Query<Samples>, QueryRejection>,
) -> Response {
    let (rights, q) = match read_query(&state, &headers, peer, q) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let samples = q.samples.unwrap_or(20).clamp(1, 200);
    let mut body = json!(state.cache.memory_profile(samples).await);
    redact::memory(&mut body, &rights, &state.cache);
    Json(body).into_response()
}

pub(crate) async fn metrics(State(state): State<AppState>, headers: HeaderMap, peer: Peer) -> Response {
    if let Err(r) = require(&state, &headers, peer, Action::Read) {
        return r.into_response();
    }
    let Some(handle) = metrics_export::handle() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "another metrics recorder is installed",
        );
    };
    metrics_export::publish(&state.cache.stats().await);
    metrics_export::publish_anomalies(&state.cache.anomaly_counts());
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        handle.render(),
    )
        .into_response()
}
