//! The seam below L1: [`RemoteTier`], what the engine asks of a shared second level, and
//! [`Bus`], how instances tell each other about writes.
//!
//! The engine holds a `Box<dyn RemoteTier>` and knows nothing of the protocol behind it: Redis
//! (`crate::redis`, the `redis` feature) is one implementation, the in-memory fake of the unit
//! tests another; a cluster or an SSD tier plugs in here without touching the facade. Calls
//! return boxed futures: a remote round trip costs tens of microseconds, one allocation does not
//! show (measured on the miss path: see `docs/design-notes.md`).
//!
//! What an implementation must keep:
//! - a failure is an `Err` (classified: [`CacheError::is_transport`](crate::CacheError)), never
//!   a panic; the engine logs, counts and falls back;
//! - `delete_matching` deletes only entries the cache wrote (the envelope check), never foreign
//!   keys;
//! - the stale-set guard ([`crate::guard`]): a key's marker is written before a direct write or
//!   delete of it, the epoch is bumped before a pattern delete, and `guarded_set` stores an item
//!   only if the epoch and its marker are still what the load saw.

pub(crate) mod breaker;
#[cfg(test)]
pub(crate) mod fake;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use breaker::BreakerState;

use crate::bus::Message;
use crate::error::Result;
use crate::guard::Seen;
use crate::stats::RedisInfo;

/// A remote call in flight.
pub(crate) type TierFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// An invalidation message for other instances: the channel and the encoded text. Writes carry
/// it so that a tier can send it in the same round trip.
pub(crate) struct Notice {
    pub channel: String,
    pub text: String,
}

/// One value of a guarded write: key, encoded bytes, TTL, and the markers its load saw.
pub(crate) type GuardedItem<'a> = (&'a str, &'a [u8], Duration, &'a Seen);

/// One value of a direct write: key, encoded bytes, TTL.
pub(crate) type Item<'a> = (&'a str, &'a [u8], Duration);

/// Connection pool figures for [`Health`](crate::Health).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct PoolStatus {
    /// Configured upper bound.
    pub max_size: usize,
    /// Connections open now.
    pub size: usize,
    /// Open connections idle in the pool (the shared ones are checked out for good).
    pub available: usize,
    /// Shared multiplexed connections currently connected.
    pub shared_connected: usize,
}

/// The shared level below L1. Keys are the cache's keys: namespacing is the tier's business.
pub(crate) trait RemoteTier: Send + Sync {
    /// Where it is, credentials masked (logs, health).
    fn display_url(&self) -> String;
    /// The breaker in front of it.
    fn breaker_state(&self) -> BreakerState;
    /// How many times its breaker opened or closed so far (anomaly detection: flapping).
    fn breaker_transitions(&self) -> u64 {
        0
    }
    /// Its connection pool.
    fn pool_status(&self) -> PoolStatus;
    /// How long invalidation markers live (a load that took longer is not stored remotely).
    fn marker_ttl(&self) -> Duration;
    /// The name of the default invalidation channel, and how a configured name is spelt there.
    fn channel_name(&self, configured: Option<&str>) -> String;
    /// The pub/sub side, when the tier has one.
    fn bus(&self) -> Option<&dyn Bus>;

    fn get<'a>(&'a self, key: &'a str) -> TierFuture<'a, Option<Vec<u8>>>;
    fn mget<'a>(&'a self, keys: &'a [&'a str]) -> TierFuture<'a, Vec<Option<Vec<u8>>>>;
    /// Direct writes (markers first), with the notice, in one round trip.
    fn set_many<'a>(&'a self, items: &'a [Item<'a>], notice: Option<&'a Notice>) -> TierFuture<'a, ()>;
    /// Creates each absent key with its value (`SET NX`), and returns what each key holds now.
    fn init_plain<'a>(&'a self, items: &'a [Item<'a>]) -> TierFuture<'a, Vec<Option<Vec<u8>>>>;
    /// Writes of values that are not entries (tag states): no markers; the notice after them.
    fn set_plain<'a>(&'a self, items: &'a [Item<'a>], notice: Option<&'a Notice>) -> TierFuture<'a, ()>;
    /// A load's writes, each only if no invalidation overtook it; per item whether it was stored.
    fn guarded_set<'a>(
        &'a self,
        items: &'a [GuardedItem<'a>],
        notice: Option<&'a Notice>,
    ) -> TierFuture<'a, Vec<bool>>;
    /// The epoch and the keys' markers, as a load sees them after its miss.
    fn guard_seen<'a>(&'a self, keys: &'a [&'a str]) -> TierFuture<'a, Vec<Seen>>;
    /// Makes every load in flight anywhere skip its store (before a pattern delete).
    fn bump_epoch(&self) -> TierFuture<'_, ()>;
    /// Deletes keys by name (markers first), with the notice; how many existed.
    fn delete<'a>(&'a self, keys: &'a [&'a str], notice: Option<&'a Notice>) -> TierFuture<'a, u64>;
    /// Deletes the cache's own entries matching a glob; how many.
    fn delete_matching<'a>(&'a self, pattern: &'a str) -> TierFuture<'a, u64>;
    fn exists<'a>(&'a self, key: &'a str) -> TierFuture<'a, bool>;
    /// The first `n` bytes of a key's value (`GETRANGE`); `None` when absent. The disk tier
    /// checks its copy by them without reading the value.
    fn head<'a>(&'a self, key: &'a str, n: usize) -> TierFuture<'a, Option<Vec<u8>>>;
    /// Time left on a key; `None` when absent or without expiry.
    fn pttl<'a>(&'a self, key: &'a str) -> TierFuture<'a, Option<Duration>>;
    /// Takes `key` with `token` for `ttl` if free.
    fn lock<'a>(&'a self, key: &'a str, token: &'a str, ttl: Duration) -> TierFuture<'a, bool>;
    /// Frees `key` only if `token` still holds it.
    fn unlock<'a>(&'a self, key: &'a str, token: &'a str) -> TierFuture<'a, bool>;
    /// Round trip of a no-op.
    fn ping(&self) -> TierFuture<'_, Duration>;
    /// Server figures for the stats.
    fn info(&self) -> TierFuture<'_, RedisInfo>;
    /// Up to `n` keys matching `pattern` and their summed memory.
    fn sample_memory<'a>(&'a self, pattern: &'a str, n: usize) -> TierFuture<'a, (u64, u64)>;
}

/// What a [`Bus`] listener calls back into. Held weakly by the listener: it stops once the
/// cache is gone.
pub(crate) trait BusHandler: Send + Sync {
    /// A (re)subscription after the first: messages may have been lost meanwhile.
    fn resubscribed(&self);
    /// Subscribed now (`true`, after every subscription) or not (`false`, when one is lost).
    fn listening(&self, on: bool);
    /// A message from another instance.
    fn message(&self, msg: Message);
}

/// Cross-instance invalidation messages.
pub(crate) trait Bus: Send + Sync {
    /// Sends a notice on its own (writes carry theirs).
    fn publish<'a>(&'a self, notice: &'a Notice) -> TierFuture<'a, ()>;
    /// Starts listening on `channel` on `rt`, ignoring messages from `origin` (this instance),
    /// until `handler` is gone. The task is the caller's to abort.
    fn listen(
        &self,
        rt: &tokio::runtime::Handle,
        channel: String,
        origin: u64,
        handler: std::sync::Weak<dyn BusHandler>,
    ) -> Result<tokio::task::JoinHandle<()>>;
}
