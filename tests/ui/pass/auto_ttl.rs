//! `ttl = "auto"` with and without its settings, beside the options it combines with.
use cache_core::{cache, cache_query, Cache, CacheConfig};

#[cache_query(ttl = "auto")]
async fn learned(id: u64) -> u64 {
    id
}

#[cache(prefix = "resource", ttl = "auto", max_stale = "0.5%", ttl_bounds = ("30s", "1h"), strategy = ttl)]
async fn tuned(id: u64) -> Result<u64, String> {
    Ok(id)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _ = cache_core::init(Cache::new(CacheConfig::default()).unwrap());
    assert_eq!(learned(3).await, 3);
    assert_eq!(tuned(4).await, Ok(4));
}
