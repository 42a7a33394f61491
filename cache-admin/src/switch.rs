//! `POST /api/v1/cache/enabled`: the cache-off switch operators flip in an incident
//! ([`Cache::set_enabled`](cache_core::Cache::set_enabled)).

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use cache_core::Pattern;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Action;
use crate::handlers::{bad_body, error, require, Peer};
use crate::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SwitchRequest {
    enabled: bool,
}

/// Turns the cache on or off. Needs the `switch` action and a token whose patterns cover every
/// key: the switch reaches every tenant's entries. Answers `{"enabled": new, "was": old}` and
/// logs who flipped it.
pub(crate) async fn set_enabled(
    State(state): State<AppState>,
    peer: Peer,
    headers: HeaderMap,
    body: Result<Json<SwitchRequest>, JsonRejection>,
) -> Response {
    let rights = match require(&state, &headers, peer, Action::Switch) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => return bad_body(&e, r#"{"enabled": false}"#),
    };
    let everything = Pattern::new("*").is_ok_and(|all| rights.clears(&all));
    if !everything {
        return error(
            StatusCode::FORBIDDEN,
            format!(
                "token {:?} may not switch the cache: its patterns do not cover every key",
                rights.name
            ),
        );
    }
    let was = state.cache.set_enabled(req.enabled);
    tracing::warn!(
        token = rights.name,
        enabled = req.enabled,
        was,
        "cache switched by admin API"
    );
    Json(json!({ "enabled": req.enabled, "was": was })).into_response()
}
