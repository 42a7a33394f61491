//! Benchmarks live in `benches/peers.rs`: `cargo bench -p cache-bench`. This library holds the
//! workload they share, so a profile (`benches/l2_profile.rs`) measures what the table reports.

use std::sync::atomic::{AtomicU64, Ordering};

mod cpu;
pub use cpu::{server_cpu, Jiffies, RoundMeter};
mod l2_floor;
pub use l2_floor::{decode, encode, read_raw, read_raw_many, write_raw, L2Floor};
mod socket_floor;
pub use socket_floor::SocketFloor;
mod wake_floor;
pub use wake_floor::WakeFloor;

use crossbeam_utils::CachePadded;
use serde::{Deserialize, Serialize};
use thread_local::ThreadLocal;

/// The workload's value: about 150 bytes serialized.
///
/// ```
/// let p = cache_bench::payload(7);
/// assert_eq!(p.id, 7);
/// assert_eq!(p.tags.len(), 4);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// The key it was made for.
    pub id: u64,
    /// A name.
    pub name: String,
    /// An address.
    pub email: String,
    /// Four short tags.
    pub tags: Vec<String>,
    /// A number.
    pub score: f64,
    /// A flag.
    pub active: bool,
}

/// The value for key `id`.
pub fn payload(id: u64) -> Payload {
    Payload {
        id,
        name: format!("customer number {id:06}"),
        email: format!("customer.{id:06}@example.com"),
        tags: vec![
            "priority".into(),
            "freight".into(),
            "eu-west".into(),
            format!("tier-{}", id % 4),
        ],
        score: id as f64 * 1.5,
        active: id.is_multiple_of(2),
    }
}

/// A number from the environment (the profiles' knobs: `OPS`, `IN_FLIGHT`, ...); `None` when
/// unset or not a number.
///
/// ```
/// assert_eq!(cache_bench::env_number::<u64>("CACHE_BENCH_SURELY_UNSET"), None);
/// ```
pub fn env_number<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// An entry of [`floor_hit`]'s store: the value and its expiry.
#[derive(Clone)]
pub struct FloorEntry<V> {
    /// When it expires, on the coarse clock L1 reads.
    pub expires_at: quanta::Instant,
    /// The value.
    pub value: V,
}

impl<V> FloorEntry<V> {
    /// `value`, expiring in an hour.
    pub fn new(value: V) -> Self {
        FloorEntry {
            expires_at: quanta::Instant::recent() + std::time::Duration::from_secs(3600),
            value,
        }
    }
}

/// A raw quick_cache of [`FloorEntry`]s, as [`floor_hit`] reads it.
pub type FloorCache<V> = quick_cache::sync::Cache<u64, FloorEntry<V>>;

/// A hand-written hit that does only the least of what P1's target keeps, over the raw
/// quick_cache the target is a ratio of: the expiry checked against the coarse clock L1 reads,
/// one hit counted in a per-thread slot of the kind another thread could sum (what "stats on"
/// takes; no reader is written),
/// inside an `async fn`. No key prefix, type check, tags, shared byte bound, or access and
/// latency sampling: a floor for any cache that keeps stats and expiry, not a design.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let c: cache_bench::FloorCache<u32> = quick_cache::sync::Cache::new(10);
/// c.insert(1, cache_bench::FloorEntry::new(7));
/// assert_eq!(cache_bench::floor_hit(&c, 1).await, Some(7));
/// assert_eq!(cache_bench::floor_hit(&c, 2).await, None);
/// # });
/// ```
pub async fn floor_hit<V: Clone>(c: &FloorCache<V>, id: u64) -> Option<V> {
    live_counted(c.get(&id)?)
}

/// The floors' common part: the expiry check and the per-thread hit count.
#[inline]
fn live_counted<V>(e: FloorEntry<V>) -> Option<V> {
    static HITS: ThreadLocal<CachePadded<AtomicU64>> = ThreadLocal::new();
    if e.expires_at <= quanta::Instant::recent() {
        return None;
    }
    let slot = HITS.get_or_default();
    slot.store(slot.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
    Some(e.value)
}

/// A raw quick_cache of [`FloorEntry`]s under a key's 128-bit hash, as [`floor_hit_str`] reads it.
pub type FloorStrCache<V> = quick_cache::sync::Cache<u128, FloorEntry<V>>;

/// [`floor_hit`] for a text argument: the least a cache that serves several functions from one
/// store does for a text key. The function's `head` is hashed once, ahead ([`floor_head`]); the
/// argument's hash is mixed in ([`floor_key`]). No escape check (ours needs one so that the text
/// API reaches the same entry), no type check, tags, byte bound or sampling.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let c: cache_bench::FloorStrCache<u32> = quick_cache::sync::Cache::new(10);
/// let head = cache_bench::floor_head("f:");
/// c.insert(cache_bench::floor_key(head, "ann"), cache_bench::FloorEntry::new(7));
/// assert_eq!(cache_bench::floor_hit_str(&c, head, "ann").await, Some(7));
/// assert_eq!(cache_bench::floor_hit_str(&c, head, "bob").await, None);
/// # });
/// ```
pub async fn floor_hit_str<V: Clone>(c: &FloorStrCache<V>, head: u128, arg: &str) -> Option<V> {
    live_counted(c.get(&floor_key(head, arg))?)
}

/// A function's key head, hashed for [`floor_key`].
pub fn floor_head(head: &str) -> u128 {
    xxhash_rust::xxh3::xxh3_128_with_seed(head.as_bytes(), 1)
}

/// [`floor_hit_str`]'s key: the head's hash xor the argument's.
#[inline]
pub fn floor_key(head: u128, arg: &str) -> u128 {
    head ^ xxhash_rust::xxh3::xxh3_128_with_seed(arg.as_bytes(), 2)
}

/// A raw quick_cache of type-erased [`FloorEntry`]s, as [`floor_hit_rule`] reads it: one store
/// for every function's values, as a shared L1 with one byte bound must be.
pub type FloorAnyCache =
    quick_cache::sync::Cache<u128, FloorEntry<std::sync::Arc<dyn std::any::Any + Send + Sync>>>;

/// [`floor_hit_str`] plus the two things a hit must do to keep the contracts of a shared L1
/// with a text API: the fingerprint by the key rule (`cache_core::key::KeyHead::text_key`: the
/// escape check, then the head's hash and the argument's), so that `Cache::get` of the key's
/// text reaches the entry; and the type check of a value stored type-erased. Still no second
/// count, tags, byte bound or sampling.
///
/// ```
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// use cache_core::key::KeyHead;
/// static HEAD: KeyHead = KeyHead::new("f:");
/// let c: cache_bench::FloorAnyCache = quick_cache::sync::Cache::new(10);
/// let value: std::sync::Arc<dyn std::any::Any + Send + Sync> = std::sync::Arc::new(7u32);
/// c.insert(HEAD.text_key("ann").fingerprint().0, cache_bench::FloorEntry::new(value));
/// assert_eq!(cache_bench::floor_hit_rule::<u32>(&c, &HEAD, "ann").await, Some(7));
/// assert_eq!(cache_bench::floor_hit_rule::<u64>(&c, &HEAD, "ann").await, None);
/// assert_eq!(cache_bench::floor_hit_rule::<u32>(&c, &HEAD, "bob").await, None);
/// # });
/// ```
pub async fn floor_hit_rule<V: Clone + 'static>(
    c: &FloorAnyCache,
    head: &'static cache_core::key::KeyHead,
    arg: &str,
) -> Option<V> {
    let fp = head.text_key(arg).fingerprint();
    live_counted(c.get(&fp.0)?)?.downcast_ref::<V>().cloned()
}
