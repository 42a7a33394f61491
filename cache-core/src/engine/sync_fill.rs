//! The store of a synchronous cached function (`#[cache]` on a plain `fn`): into L1 at once, on
//! the caller's thread; to Redis and the disk tier in the background, when a tokio runtime is
//! there to run it. Nothing here waits on I/O: a sync function must never block a runtime
//! thread on Redis.

use std::sync::Arc;

use super::read::ToL1;
use super::{unix_ms, Engine};
use crate::key::Fingerprint;
use crate::loader::LoadOptions;
use crate::values::{AnyValue, ValueOps};

impl Engine {
    /// Stores a synchronous function's value, loaded after the invalidation log read `since`:
    /// L1 now (unless an invalidation of the key came meanwhile), the remote and disk tiers in
    /// a task on the current runtime (none: L1 only). The remote write is a direct write, so it
    /// announces itself to other instances as any write does; it is dropped if the key is
    /// invalidated here before the task runs.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn store_sync(
        self: &Arc<Self>,
        key: &str,
        fp: Fingerprint,
        value: AnyValue,
        copy: impl FnOnce() -> AnyValue,
        ops: &'static ValueOps,
        opts: &LoadOptions,
        since: u64,
    ) {
        if !self.enabled() {
            return;
        }
        let (ttl, _) = self.resolve_ttl(key, opts.ttl, opts.adaptive, None);
        let size = (ops.encoded_len)(&self.codec, &*value);
        self.write_l1(ToL1 {
            key,
            fp,
            value,
            ops,
            ttl,
            size,
            stale_for: std::time::Duration::ZERO,
            use_l1: true,
            since: Some(since),
            tags: None,
            expires_at_ms: unix_ms().saturating_add(ttl.as_millis() as u64),
            limit: opts.max_entries,
            idle: opts.ttl_idle,
        });
        if self.remote.is_none() && self.disk.is_none() {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            tracing::debug!(key, "sync cached function outside a runtime: stored in L1 only");
            return;
        };
        let engine = Arc::clone(self);
        let key = key.to_owned();
        let value = copy();
        let opts = LoadOptions {
            max_entries: None,
            ..*opts
        };
        rt.spawn(async move {
            if engine.log.overtaken(since, fp, &key) {
                engine.discarded(&key);
                return;
            }
            let (_, r) = engine.store(&key, fp, value, ops, &opts, None, &[]).await;
            if let Err(e) = r {
                tracing::warn!(key = %key, error = %e, "sync cached function: the background write failed");
            }
        });
    }
}
