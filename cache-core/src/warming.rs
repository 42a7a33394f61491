//! The warming scope: writes made inside [`warming`] are warmup writes, which L1 must admit
//! even under TinyLFU (see [`crate::strategy`]). The warmer runs every entry inside it.

use std::future::Future;

tokio::task_local! {
    static WARMING: ();
}

/// Runs `fut` as warmup: its cache writes are admitted to L1 whatever the policy.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let cache = cache_core::Cache::new(Default::default()).unwrap();
/// cache_core::warming(async { cache.set("static:logo", &vec![1u8], None).await.unwrap() }).await;
/// # }
/// ```
pub async fn warming<F: Future>(fut: F) -> F::Output {
    WARMING.scope((), fut).await
}

/// Whether the current task is inside [`warming`].
pub(crate) fn active() -> bool {
    WARMING.try_with(|_| ()).is_ok()
}
