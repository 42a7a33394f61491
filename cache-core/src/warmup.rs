//! Warmup registrations made by `#[warmup_cache(...)]`, collected with `inventory` and run by the
//! `cache-warmer` crate.

use std::future::Future;
use std::pin::Pin;

/// The future a warmup entry runs: one call of a cached function; `Err` when it returned `Err`.
pub type WarmupFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'static>>;

/// One registered warmup call: a cached function with fixed arguments.
///
/// ```
/// use cache_core::warmup::WarmupEntry;
/// for entry in inventory::iter::<WarmupEntry> {
///     println!("{} {}", entry.function, entry.args);
/// }
/// ```
#[derive(Debug)]
pub struct WarmupEntry {
    /// `module::path::function`.
    pub function: &'static str,
    /// The arguments as written in the attribute, e.g. `user_id = 1`.
    pub args: &'static str,
    /// Makes the call (its result is stored in the cache as by any other call).
    pub run: fn() -> WarmupFuture,
}

inventory::collect!(WarmupEntry);

/// Every entry registered in this binary, in no particular order.
pub fn registered() -> impl Iterator<Item = &'static WarmupEntry> {
    inventory::iter::<WarmupEntry>.into_iter()
}
