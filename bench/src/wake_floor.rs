//! P2's shape without Redis: each call queues a oneshot and awaits it, and one task answers the
//! whole queue with a ready value each time it wakes. No socket, no encode or decode: one
//! implementation of a call that costs one task wake (with its oneshot, the shared queue's lock
//! and the answering task's own wakes), the part of an L2 hit that P2's shape cannot skip.
// A bench's floor: a poisoned lock ends the run, as in the benches.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use tokio::sync::{oneshot, Notify};

use crate::Payload;

/// Calls answered in process by [`WakeFloor::answer`].
///
/// ```no_run
/// # async fn f() {
/// let floor = std::sync::Arc::new(cache_bench::WakeFloor::new());
/// tokio::spawn(floor.clone().answer());
/// assert_eq!(floor.get().await.id, 7);
/// # }
/// ```
pub struct WakeFloor {
    waiting: Mutex<Vec<oneshot::Sender<Arc<Payload>>>>,
    notify: Notify,
    value: Arc<Payload>,
}

impl Default for WakeFloor {
    fn default() -> Self {
        Self::new()
    }
}

impl WakeFloor {
    /// A floor whose calls are answered with `payload(7)`.
    pub fn new() -> Self {
        WakeFloor {
            waiting: Mutex::default(),
            notify: Notify::new(),
            value: Arc::new(crate::payload(7)),
        }
    }

    /// One call: queued, then woken with the value once the answering task runs.
    pub async fn get(&self) -> Arc<Payload> {
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().unwrap().push(tx);
        self.notify.notify_one();
        rx.await.unwrap()
    }

    /// Answers every queued call each time it is woken; runs until its runtime shuts down or
    /// it is aborted (a call made after that never returns).
    pub async fn answer(self: Arc<Self>) {
        loop {
            self.notify.notified().await;
            let waiting = std::mem::take(&mut *self.waiting.lock().unwrap());
            for tx in waiting {
                let _ = tx.send(self.value.clone());
            }
        }
    }
}
