//! The demo: [`db`] (SQLite, created and seeded on first start), [`service`] (the cached
//! functions) and [`app`] (routes, warmer, admin API).

pub mod db;
pub mod service;

use std::path::Path;
use std::time::Duration;

use axum::extract::Path as UrlPath;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use cache_core::Cache;
use cache_warmer::Warmer;
use serde_json::json;

pub use service::DemoError;

impl IntoResponse for DemoError {
    fn into_response(self) -> Response {
        tracing::error!(error = %self, "request failed");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(json!({ "error": self.to_string() })),
        )
            .into_response()
    }
}

fn found<T: serde::Serialize>(v: Option<T>, what: &str) -> Response {
    match v {
        Some(v) => Json(v).into_response(),
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": format!("{what} not found") })),
        )
            .into_response(),
    }
}

async fn user(UrlPath(id): UrlPath<i64>) -> Result<Response, DemoError> {
    Ok(found(service::get_user(id).await?, "user"))
}

async fn user_orders(UrlPath(id): UrlPath<i64>) -> Result<Response, DemoError> {
    Ok(Json(service::get_user_orders(id).await?).into_response())
}

async fn update_user(
    UrlPath(id): UrlPath<i64>,
    body: Result<Json<service::UserUpdate>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, DemoError> {
    let Json(update) = match body {
        Ok(b) => b,
        Err(e) => {
            return Ok((StatusCode::BAD_REQUEST, Json(json!({ "error": e.body_text() }))).into_response());
        }
    };
    Ok(found(service::update_user(id, update).await?, "user"))
}

async fn freight(UrlPath(id): UrlPath<i64>) -> Result<Response, DemoError> {
    Ok(found(service::get_freight(id).await?, "freight"))
}

async fn trends(UrlPath(month): UrlPath<String>) -> Result<Response, DemoError> {
    Ok(Json(service::trends(month).await?).into_response())
}

/// `GET /demo/db-queries`: the database queries run so far, for the load test.
async fn db_queries() -> Json<serde_json::Value> {
    Json(json!({
        "queries": db::queries(),
        "latency_ms": db::latency().as_secs_f64() * 1000.0,
    }))
}

async fn index() -> Json<serde_json::Value> {
    Json(json!({
        "endpoints": [
            "GET /users/{id}", "GET /users/{id}/orders", "PUT /users/{id}",
            "GET /resources/freight/{id}", "GET /analysis/trends/{month}", "GET /demo/db-queries",
            "GET /api/v1/cache/stats", "GET /api/v1/cache/health", "GET /api/v1/cache/performance",
            "GET /api/v1/cache/access-patterns", "POST /api/v1/cache/clear", "POST /api/v1/cache/warmup",
            "GET /metrics", "POST /api/v1/cache/enabled", "GET /dashboard"
        ]
    }))
}

/// Opens (creating and seeding if needed) the database at `db_path`, sets up the warmer
/// (startup warmup when configured, a scheduled refresh of the trend analyses, smart warming
/// when enabled) and returns the routes with the admin API mounted. The cached functions use
/// the global cache: call `cache_core::init` first to choose it.
pub async fn app(db_path: &Path, admin: cache_admin::AdminConfig) -> Result<(Router, Warmer), DemoError> {
    db::open(db_path)?;
    let cache: Cache = cache_core::global().clone();
    let warmer = Warmer::new(cache.clone());
    warmer
        .register_loader("analysis:trends:*", |key: String| async move {
            let month = key.rsplit(':').next().unwrap_or_default().to_owned();
            service::compute_trends(month).await
        })
        .map_err(|e| DemoError::Setup(e.to_string()))?;
    warmer
        .register_loader("resource:freight:*", |key: String| async move {
            let id: i64 = key.rsplit(':').next().unwrap_or_default().parse().unwrap_or(0);
            db::freight(id).await
        })
        .map_err(|e| DemoError::Setup(e.to_string()))?;
    // Recompute the latest months' trends every 30 minutes, before their 30-minute TTL ends.
    let c = cache.clone();
    warmer
        .schedule_warmup("warmup_trends", Duration::from_secs(25 * 60), move || {
            let c = c.clone();
            async move {
                for month in db::latest_months(3).await? {
                    // `refresh`, not compute-then-`set`: an update of the month during the
                    // computation keeps this (older) result out of the cache.
                    c.refresh(&format!("analysis:trends:{month}"), None, || {
                        service::compute_trends(month.clone())
                    })
                    .await
                    .map_err(|e| DemoError::Setup(e.to_string()))?;
                }
                Ok::<(), DemoError>(())
            }
        })
        .map_err(|e| DemoError::Setup(e.to_string()))?;
    let report = warmer.warm_up_on_startup().await;
    tracing::info!(
        ok = report.ok,
        failed = report.failed,
        skipped = report.skipped,
        "startup warmup"
    );
    // Off by configuration is a choice, not a failure: say so and serve without it.
    if let Err(e) = warmer.start_smart_warming() {
        tracing::info!(reason = %e, "smart warming not started");
    }

    let routes = Router::new()
        .route("/", get(index))
        .route("/users/{id}", get(user).put(update_user))
        .route("/users/{id}/orders", get(user_orders))
        .route("/resources/freight/{id}", get(freight))
        .route("/analysis/trends/{month}", get(trends))
        .route("/demo/db-queries", get(db_queries))
        .merge(cache_admin::router(cache, Some(warmer.clone()), admin));
    Ok((routes, warmer))
}
