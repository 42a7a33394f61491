//! The engine API in twenty lines. Runs L1-only, or two-level with `REDIS_URL` set.
//!
//! `cargo run -p cache-examples --bin quickstart`

use std::time::Duration;

use cache_core::{Cache, CacheConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Order {
    id: u64,
    total_cents: u64,
}

async fn load_orders(user_id: u64) -> Vec<Order> {
    tokio::time::sleep(Duration::from_millis(200)).await; // the "database"
    vec![Order {
        id: user_id * 10,
        total_cents: 1999,
    }]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let cache = Cache::new(CacheConfig::from_env()?)?;
    for attempt in 1..=3 {
        let start = std::time::Instant::now();
        let orders = cache
            .get_or_insert_with("query:orders:42", None, || load_orders(42))
            .await;
        tracing::info!(attempt, ?orders, elapsed = ?start.elapsed(), "get_user_orders(42)");
    }
    cache.invalidate_pattern("query:orders:*").await?;
    tracing::info!(stats = %serde_json::to_string(&cache.stats().await)?, "stats");
    Ok(())
}
