//! `GET /api/v1/cache/ttl-advice`: what the cache learned about each family of keys and the TTL
//! it recommends ([`Cache::ttl_advice`](cache_core::Cache::ttl_advice)).

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::auth::Action;
use crate::handlers::{require, Peer};
use crate::redact::REDACTED;
use crate::AppState;

pub(crate) async fn ttl_advice(State(state): State<AppState>, headers: HeaderMap, peer: Peer) -> Response {
    let rights = match require(&state, &headers, peer, Action::Read) {
        Ok(r) => r,
        Err(r) => return r.into_response(),
    };
    let analytics = &state.cache.config().analytics;
    let mut families = json!(state.cache.ttl_advice());
    // A family is a key head (no arguments): shown when the token may name the whole family.
    if let Value::Array(items) = &mut families {
        for item in items {
            if let Some(name) = item.get("family").and_then(Value::as_str) {
                if !rights.shows_prefix(name) {
                    item["family"] = Value::from(REDACTED);
                }
            }
        }
    }
    Json(json!({
        "enabled": analytics.enabled,
        "min_observations": analytics.min_observations,
        "half_life_observations": analytics.half_life_observations,
        "model": "Poisson changes per key, rate by maximum likelihood over interval-censored reloads; \
                  recommended TTL from the upper end of its 95 % interval, where the read-weighted \
                  stale fraction g(rate*TTL)*H(TTL) meets max_stale",
        "families": families,
    }))
    .into_response()
}
