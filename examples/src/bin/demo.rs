//! The demo service: `scripts/demo.sh` (L1-only) or `scripts/demo.sh --with-redis`.
//!
//! Options: `--port N` (or `PORT`, default 8000), `--db PATH` (or `DEMO_DB`, default
//! `target/demo.sqlite`), `--exit-after SECONDS` (for smoke tests).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use cache_core::{Cache, CacheConfig, Mode};

fn arg(name: &str) -> Option<String> {
    let mut args = std::env::args();
    while let Some(a) = args.next() {
        if a == name {
            return args.next();
        }
    }
    None
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let port: u16 = arg("--port")
        .or_else(|| std::env::var("PORT").ok())
        .map_or(Ok(8000), |p| p.parse())?;
    let db: PathBuf = arg("--db")
        .or_else(|| std::env::var("DEMO_DB").ok())
        .unwrap_or_else(|| "target/demo.sqlite".into())
        .into();

    // Warming is on by default (the product's defaults); the environment can turn it off.
    let cache = Cache::new(CacheConfig::from_env()?)?;
    match cache.mode() {
        Mode::L1Only => tracing::info!("running L1-only (set REDIS_URL for the Redis level)"),
        Mode::TwoLevel => tracing::info!("running with Redis as L2"),
    }
    let _ = cache_core::init(cache);
    // CACHE_ADMIN_TOKEN and/or CACHE_ADMIN_TOKENS_FILE; a bad tokens file stops the demo.
    let admin = cache_admin::AdminConfig::from_env()?;
    let (app, warmer) = cache_examples::demo::app(&db, admin.clone()).await?;

    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    tracing::info!("demo listening on http://{addr}");
    tracing::info!("try: curl http://{addr}/users/1/orders");
    tracing::info!("     curl http://{addr}/analysis/trends/2025-06   (slow the first time)");
    tracing::info!("     curl http://{addr}/api/v1/cache/stats");
    tracing::info!(
        "     curl -X POST http://{addr}/api/v1/cache/clear -H 'Content-Type: application/json' -d '{{\"pattern\": \"query:*\"}}'"
    );
    let server = cache_admin::serve_checked(addr, app, &admin);
    match arg("--exit-after").map(|s| s.parse::<u64>()) {
        Some(secs) => {
            let _ = tokio::time::timeout(Duration::from_secs(secs?), server).await;
        }
        None => {
            tokio::select! {
                r = server => r?,
                _ = tokio::signal::ctrl_c() => tracing::info!("shutting down"),
            }
        }
    }
    warmer.shutdown().await;
    Ok(())
}
