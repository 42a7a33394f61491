//! The writer task: a key's writes and removals reach foyer in the order they were made, and
//! foyer is never handed more than it can buffer.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use super::super::record;
use super::super::DiskCounters;
use super::{Foyer, Open};

/// Bytes of writes queued at most; past it a write is dropped (and the key's older record
/// removed, so that it cannot be served in its place).
pub(super) const QUEUE_MAX_BYTES: usize = 64 << 20;

/// Work for the writer task, in the order it was asked for: a key's removal never overtakes
/// its earlier write (after a restart the later one is what foyer finds).
pub(super) enum Op {
    Put {
        key: String,
        envelope: Vec<u8>,
        id: u64,
        at_ms: u64,
    },
    Remove(String),
    /// Answered once everything queued before it was handed to foyer.
    Barrier(tokio::sync::oneshot::Sender<()>),
}

/// Waits until everything queued so far was handed to foyer.
pub(super) async fn barrier(open: &Open) {
    let (tx, rx) = tokio::sync::oneshot::channel();
    if open.ops.send(Op::Barrier(tx)).is_ok() {
        let _ = rx.await;
    }
}

/// The writer task's share of the tier.
pub(super) struct Writer {
    pub(super) cache: Foyer,
    pub(super) counters: Arc<DiskCounters>,
    pub(super) queued: Arc<AtomicUsize>,
    pub(super) max_body: usize,
    /// Bytes handed to foyer between two waits for its flush (half its write buffer).
    pub(super) pace: usize,
}

impl Writer {
    pub(super) async fn run(self, mut rx: tokio::sync::mpsc::UnboundedReceiver<Op>) {
        let mut unflushed = 0;
        while let Some(op) = rx.recv().await {
            match op {
                Op::Put {
                    key,
                    envelope,
                    id,
                    at_ms,
                } => {
                    let t = Instant::now();
                    self.queued.fetch_sub(envelope.len(), Ordering::Relaxed);
                    let rec = record::encode(&envelope, id, at_ms, self.max_body);
                    let len = rec.len() as u64;
                    // A write foyer drops then leaves no older record to be found after a restart.
                    self.cache.remove(&key);
                    self.cache.insert(key, rec);
                    self.counters.write_latency.lock().record(t.elapsed());
                    self.counters.writes.incr();
                    self.counters.write_bytes.add(len);
                    // foyer drops a record that does not fit what is left of its write buffer
                    // while the previous one is being written (a burst lost entries in the
                    // tests): never hand it more than half a buffer unflushed.
                    unflushed += len as usize;
                    if unflushed >= self.pace {
                        self.cache.storage().wait().await;
                        unflushed = 0;
                    }
                }
                Op::Remove(key) => self.cache.remove(&key),
                Op::Barrier(done) => {
                    let _ = done.send(());
                }
            }
        }
    }
}
