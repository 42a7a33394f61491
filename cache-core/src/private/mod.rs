//! What the attribute macros expand into. Not a public API: names and signatures may change in
//! any release. Generated code names only items under `::cache_core::__private`.

use std::fmt;
use std::sync::Arc;

use serde::Serialize;

pub use crate::cache::Cache;
pub use crate::config::AutoTtl;
pub use crate::global::global;
pub use crate::key::{Fingerprint, IntKeyPart, IntTailKey, KeyBuf, KeyHead, KeyPart, KeyText, TextTailKey};
pub use crate::loader::LoadOptions;
pub use crate::perf::FnStats;
pub use crate::warmup::WarmupEntry;
pub use inventory;
pub use std::time::Duration;

mod batch;
mod companions;
mod l1_replay;
mod rules;

pub use crate::perf::EntryLimit;
pub use batch::{batch_returns, cached_batch, BatchReturn};
pub use companions::{invalidate_key, invalidate_space, KeySpace};
pub use l1_replay::L1Replay;
pub use rules::{
    hit, skip_none_needs_option, IsOption, ResultRule, Returns, ValueRule, ViaOption, ViaPlain, ViaResult,
};

pin_project_lite::pin_project! {
    /// A cached function's miss, polled in a function of its own (`outlined(rule.load(..))` in
    /// the expansion).
    ///
    /// Why: a cached function's future is small, so the optimizer inlines it into its caller, and
    /// without this its whole miss path came along: a caller awaiting 200 cached functions
    /// became one huge function, and LLVM's time on it grew faster than linearly (200 `#[cache]`
    /// fns: 80 s of release build against 4 s uncached). Out of line, each miss path is
    /// optimized once, on its own, and a hit does not pay for it.
    #[must_use = "futures do nothing unless awaited"]
    pub struct Outlined<F> {
        #[pin]
        fut: F,
    }
}

impl<F: std::future::Future> std::future::Future for Outlined<F> {
    type Output = F::Output;

    #[inline(never)]
    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<F::Output> {
        self.project().fut.poll(cx)
    }
}

/// The closure that runs a cached function's body, typed as `FnOnce` where it is written: a
/// body that moves a `&mut self` out of the closure is then no reborrow that must outlive it.
#[inline]
pub fn once<F: FnOnce() -> R, R>(f: F) -> F {
    f
}

/// Wraps a miss future in [`Outlined`].
#[inline]
pub fn outlined<F: std::future::Future>(fut: F) -> Outlined<F> {
    Outlined { fut }
}

/// Wraps an argument so the key writer can be picked by autoref: [`KeyPart`], else `Display`,
/// else the stable hash of its `Serialize` form. The macro calls `(&&&KeyArg(&arg)).__cache_write_key(..)`.
pub struct KeyArg<'a, T: ?Sized>(pub &'a T);

/// First choice: the argument's own [`KeyPart`].
pub trait ViaKeyPart {
    /// Appends the argument's key text.
    fn __cache_write_key(&self, key: &mut KeyBuf);
}
impl<T: KeyPart + ?Sized> ViaKeyPart for &&KeyArg<'_, T> {
    #[inline]
    fn __cache_write_key(&self, key: &mut KeyBuf) {
        self.0.write_key_part(key);
    }
}

/// Second choice: `Display` (same text as `KeyPart` for the types that have both).
pub trait ViaDisplay {
    /// Appends the argument's key text.
    fn __cache_write_key(&self, key: &mut KeyBuf);
}
impl<T: fmt::Display + ?Sized> ViaDisplay for &KeyArg<'_, T> {
    #[inline]
    fn __cache_write_key(&self, key: &mut KeyBuf) {
        key.push_display(self.0);
    }
}

/// Last choice: xxh3-64 of the bincode form, 16 hex digits.
pub trait ViaSerialize {
    /// Appends the argument's key text.
    fn __cache_write_key(&self, key: &mut KeyBuf);
}
impl<T: Serialize + ?Sized> ViaSerialize for KeyArg<'_, T> {
    #[inline]
    fn __cache_write_key(&self, key: &mut KeyBuf) {
        crate::key::write_serialized_hash(self.0, key);
    }
}

/// Anything the `cache = ...` option may name.
pub trait AsCache {
    /// The cache.
    fn as_cache(&self) -> &Cache;
}
impl AsCache for Cache {
    fn as_cache(&self) -> &Cache {
        self
    }
}
impl AsCache for Arc<Cache> {
    fn as_cache(&self) -> &Cache {
        self
    }
}
impl<F: FnOnce() -> Cache> AsCache for std::sync::LazyLock<Cache, F> {
    fn as_cache(&self) -> &Cache {
        self
    }
}
impl<T: AsCache + ?Sized> AsCache for &T {
    fn as_cache(&self) -> &Cache {
        (**self).as_cache()
    }
}

/// An `{arg}` value of an `#[invalidate_cache]` pattern, glob-escaped so that it matches only
/// itself.
pub fn escape_glob(part: &KeyBuf) -> std::borrow::Cow<'_, str> {
    crate::pattern::escape(part.as_str())
}

/// One target of `#[invalidate_cache]`.
pub enum Invalidation {
    /// A template with no wildcard of its own names one key: deleted by name, so an argument of
    /// any length or content reaches it (a pattern is bounded in length).
    Key(KeyBuf),
    /// A glob, its `{arg}` values escaped.
    Pattern(String),
}

/// The tags of one call as text, borrowed from their buffers.
#[inline]
pub fn tag_refs<const N: usize>(bufs: &[KeyBuf; N]) -> [&str; N] {
    bufs.each_ref().map(KeyBuf::as_str)
}

/// `#[invalidate_cache]`: deletes every target and invalidates every tag; failures are logged
/// and counted, never returned (a tag invalidation that Redis refused still invalidated this
/// instance's L1).
pub async fn invalidate(cache: &Cache, targets: &[Invalidation], tags: &[&str]) {
    if !tags.is_empty() {
        if let Err(e) = cache.invalidate_tags(tags).await {
            tracing::warn!(tags = ?tags, error = %e, "tag invalidation after a successful call failed");
        }
    }
    for t in targets {
        let (what, r) = match t {
            Invalidation::Key(k) => (k.as_str(), cache.delete(k.as_str()).await.map(drop)),
            Invalidation::Pattern(p) => (p.as_str(), cache.invalidate_pattern(p).await.map(drop)),
        };
        if let Err(e) = r {
            tracing::warn!(target = %what, error = %e, "invalidation after a successful call failed");
        }
    }
}

/// Whether a function's return value counts as success for `#[invalidate_cache]`.
pub trait IsSuccess {
    /// `false` only for `Err`.
    fn is_success(&self) -> bool;
}
impl<T, E> IsSuccess for Result<T, E> {
    fn is_success(&self) -> bool {
        self.is_ok()
    }
}

/// Autoref fallback: any non-`Result` return is a success.
pub struct Ret<'a, T: ?Sized>(pub &'a T);
/// `Result` returns: success is `Ok`.
pub trait RetResult {
    /// Whether to invalidate.
    fn __cache_success(&self) -> bool;
}
impl<T: IsSuccess + ?Sized> RetResult for &Ret<'_, T> {
    fn __cache_success(&self) -> bool {
        self.0.is_success()
    }
}
/// Other returns: always success.
pub trait RetAny {
    /// Whether to invalidate.
    fn __cache_success(&self) -> bool;
}
impl<T: ?Sized> RetAny for Ret<'_, T> {
    fn __cache_success(&self) -> bool {
        true
    }
}
