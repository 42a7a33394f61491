//! `cache-core`: a two-level cache for async Rust — an in-process L1 in front of Redis — and
//! the engine behind the `#[cache]` family of attribute macros.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> cache_core::Result<()> {
//! use std::time::Duration;
//! use cache_core::{Cache, CacheConfig};
//!
//! // Without REDIS_URL this runs L1-only; with it, Redis is the shared second level.
//! let cache = Cache::new(CacheConfig::from_env()?)?;
//! let orders = cache
//!     .get_or_insert_with("query:orders:42", Some(Duration::from_secs(60)), || async {
//!         vec!["order-1".to_string()] // the expensive call
//!     })
//!     .await;
//! assert_eq!(orders.len(), 1);
//! # Ok(()) }
//! ```

// Without the `redis` feature no remote tier exists, and the seam's remote-only parts (the bus
// messages, the breaker, notices) have no caller; they stay compiled so the seam is one design.
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

pub mod access;
pub mod acl;
pub mod analytics;
mod anomaly;
mod bus;
mod cache;
mod clock;
pub mod codec;
pub mod config;
mod disk;
mod engine;
mod error;
mod flight;
mod global;
mod guard;
pub mod key;
mod l1;
mod latency;
mod limit;
mod loader;
pub mod pattern;
pub mod perf;
#[cfg(feature = "redis")]
mod redis;
mod report;
mod scope;
mod scoped;
mod security;
mod stats;
pub mod strategy;
mod sync;
pub mod tags;
mod tier;
pub mod trace;
mod values;
mod warming;
pub mod warmup;

#[doc(hidden)]
#[path = "private/mod.rs"]
pub mod __private;

pub use access::AccessPattern;
pub use analytics::TtlAdvice;
pub use anomaly::{Anomaly, AnomalyCount, AnomalyKind, Severity};
pub use cache::Cache;
pub use config::{CacheConfig, CacheConfigBuilder};
pub use disk::{DiskStats, LatencySummary};
pub use error::{BackendError, BackendErrorKind, CacheError, RefreshError, Result};
pub use global::{global, init};
pub use latency::OpLatency;
pub use loader::LoadOptions;
pub use pattern::Pattern;
pub use report::{CompressionStats, Health, MemoryStats, Mode, Performance, RedisHealth};
pub use scope::Scope;
pub use scoped::ScopedCache;
pub use security::SealError;
pub use stats::{RedisInfo, Stats};
pub use strategy::{AdaptiveTtl, Eviction, Strategy};
pub use tier::{BreakerState, PoolStatus};
pub use values::CacheValue;
pub use warming::warming;

#[cfg(feature = "macros")]
pub use cache_macros::{
    cache, cache_analysis, cache_batch, cache_query, cache_resource, cache_result, invalidate_cache,
    warmup_cache,
};
