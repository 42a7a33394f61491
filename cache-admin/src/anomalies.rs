//! `GET /api/v1/cache/anomalies`: the anomalies the cache's detectors raised
//! ([`Cache::anomalies`](cache_core::Cache::anomalies)), newest first, and how many of each kind
//! were raised and are open. Needs `read`, as the stats do; a key prefix the token may not read
//! is shown as `"<redacted>"`, with its figures kept.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::handlers::{read_query, Peer};
use crate::redact::REDACTED;
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AnomalyQuery {
    /// At most this many events (default 100).
    limit: Option<usize>,
    /// Only the open ones.
    active: Option<bool>,
}

/// `{"enabled", "window_secs", "anomalies": [Anomaly], "counts": [AnomalyCount]}`.
pub(crate) async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    peer: Peer,
    q: Result<Query<AnomalyQuery>, QueryRejection>,
) -> Response {
    let (rights, q) = match read_query(&state, &headers, peer, q) {
        Ok(r) => r,
        Err(r) => return r,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let active_only = q.active.unwrap_or(false);
    let events: Vec<_> = state
        .cache
        .anomalies()
        .into_iter()
        .filter(|a| !active_only || a.ended_at.is_none())
        .take(limit)
        .collect();
    let mut events = json!(events);
    if let Value::Array(items) = &mut events {
        for item in items {
            if let Some(scope) = item.get_mut("scope") {
                // `*` (the whole cache) and `~other` (prefixes past the cap) name no key family.
                let hidden = scope
                    .as_str()
                    .is_some_and(|s| s != "*" && s != "~other" && !rights.shows_prefix(s));
                if hidden {
                    *scope = Value::from(REDACTED);
                }
            }
        }
    }
    let config = &state.cache.config().anomaly;
    Json(json!({
        "enabled": config.enabled,
        "window_secs": config.window.as_secs_f64(),
        "anomalies": events,
        "counts": state.cache.anomaly_counts(),
    }))
    .into_response()
}
