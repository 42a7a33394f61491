//! The demo's cached functions: the four usages of the product guide, in Rust.

use std::time::Duration;

use cache_core::{cache_analysis, cache_query, cache_resource, invalidate_cache, warmup_cache};
use serde::{Deserialize, Serialize};

use super::db::{self, Freight, Order, User};

/// What can go wrong in the demo.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// SQLite failed.
    #[error("database: {0}")]
    Db(#[from] rusqlite::Error),
    /// Start-up or plumbing failed.
    #[error("{0}")]
    Setup(String),
}

/// `PUT /users/{id}` body.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    /// New name.
    pub name: Option<String>,
    /// New email.
    pub email: Option<String>,
}

/// A month's trend analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// `YYYY-MM`.
    pub month: String,
    /// Orders that month.
    pub orders: i64,
    /// Revenue in cents.
    pub revenue_cents: i64,
    /// Mean order value in cents.
    pub mean_order_cents: f64,
    /// (user id, revenue) of the best customers.
    pub top_users: Vec<(i64, i64)>,
}

/// `@cache_query(ttl=600) get_user_orders(user_id)`:
/// key `query:cache_examples::demo::service::get_user_orders:{user_id}`.
#[cache_query(ttl = 600)]
pub async fn get_user_orders(user_id: i64) -> Result<Vec<Order>, DemoError> {
    db::orders(user_id).await
}

/// `@warmup_cache(user_id=1) get_user_profile(user_id)`: users 1 and 2 are warmed at startup.
#[warmup_cache(id = 1)]
#[warmup_cache(id = 2)]
#[cache_resource(key = "users:{id}")]
pub async fn get_user(id: i64) -> Result<Option<User>, DemoError> {
    db::user(id).await
}

/// `@invalidate_cache("resource:users:*") update_user(user_id, data)`, narrowed to this user:
/// the two entries are named by calls of the cached functions, checked by the compiler.
#[invalidate_cache(get_user(id), get_user_orders(id))]
pub async fn update_user(id: i64, update: UserUpdate) -> Result<Option<User>, DemoError> {
    db::update_user(id, update.name, update.email).await
}

/// `resource:freight:{id}` (600 s from the pattern table).
#[cache_resource(key = "freight:{id}")]
pub async fn get_freight(id: i64) -> Result<Option<Freight>, DemoError> {
    db::freight(id).await
}

/// `analysis:trends:{month}` (1800 s): deliberately expensive.
#[warmup_cache(month = "2025-12".to_owned())]
#[cache_analysis(key = "trends:{month}")]
pub async fn trends(month: String) -> Result<Trend, DemoError> {
    compute_trends(month).await
}

/// The uncached computation behind [`trends`] (the warmer's loader calls it directly).
pub async fn compute_trends(month: String) -> Result<Trend, DemoError> {
    // Stands in for a heavy aggregation.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (orders, revenue_cents, top_users) = db::month_totals(month.clone()).await?;
    Ok(Trend {
        month,
        orders,
        revenue_cents,
        mean_order_cents: if orders == 0 {
            0.0
        } else {
            revenue_cents as f64 / orders as f64
        },
        top_users,
    })
}
