//! The cache's `tracing` spans exported with OpenTelemetry (`tracing-opentelemetry`, a stdout
//! exporter): a cached function's miss (`cache.get` → `cache.load` → the function's own
//! `db.query` span → `cache.store`), its hit, an invalidation and a warmup, each printed as an
//! OpenTelemetry span with its attributes (`db.system`, `db.operation`, `cache.tier`,
//! `cache.outcome`, `cache.key_prefix`, `cache.duration_us`). See `cache_core::trace`.
//!
//! ```text
//! cargo run -p cache-examples --bin otel                  # L1 only
//! REDIS_URL=redis://127.0.0.1:6379/ cargo run -p cache-examples --bin otel
//! ```
//!
//! Swap the stdout exporter for `opentelemetry-otlp`'s to send the same spans to a collector.

use cache_core::{cache, Cache, CacheConfig};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::layer::SubscriberExt;

#[cache(cache = cache, prefix = "query", ttl = 60)]
async fn user_name(cache: &Cache, id: u64) -> String {
    // The function's own work: a child of `cache.load` in the trace.
    // `in_scope` (or `.instrument()` around a future), never an `entered()` guard across an
    // `.await`.
    tracing::info_span!(
        "db.query",
        db.system = "sqlite",
        db.statement = "SELECT name FROM users WHERE id = ?"
    )
    .in_scope(|| format!("user {id}"))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let provider = SdkTracerProvider::builder()
        .with_resource(
            Resource::builder()
                .with_service_name("cache-otel-example")
                .build(),
        )
        .with_simple_exporter(opentelemetry_stdout::SpanExporter::default())
        .build();
    let tracer = provider.tracer("cache-examples");
    // DEBUG shows every operation past L1; TRACE adds a span per L1 hit.
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::filter::LevelFilter::TRACE)
        .with(tracing_opentelemetry::layer().with_tracer(tracer));
    tracing::subscriber::set_global_default(subscriber)?;

    let cache = Cache::new(CacheConfig::from_env()?)?;
    let first = user_name(&cache, 42).await; // miss: get, load, db.query, store
    let again = user_name(&cache, 42).await; // L1 hit (TRACE)
    assert_eq!(first, again);
    cache.invalidate_pattern("query:*").await?; // cache.invalidate
    let warmer = cache_warmer::Warmer::new(cache.clone());
    let c = cache.clone();
    warmer.register("user 7", move || {
        let c = c.clone();
        async move { Ok::<_, std::convert::Infallible>(user_name(&c, 7).await) }
    });
    warmer.warm_up().await; // cache.warmup, with the load inside it
    provider.shutdown()?;
    Ok(())
}
