//! Read coalescing: concurrent single-key reads share one `MGET`.
//!
//! A read that finds fewer than `max_in_flight` reads running goes out at once, alone, as a plain
//! `GET`: light traffic pays nothing. Otherwise it queues. When a running read ends, whatever
//! queued meanwhile goes out as one `MGET`, led by the first queued caller (no background task,
//! so a cache shared by several runtimes works on each). Under load Redis then parses and
//! dispatches one command for many keys instead of one per key, which is what bounds a single
//! server's throughput (see `docs/design-notes.md` for the measurement).
//!
//! A leader that is cancelled or whose runtime stops drops its batch: the callers in it read
//! their own key instead, so no caller is stranded. For Redis Cluster, a batch would be split by
//! hash slot here, the one place that knows the keys of a batch.

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::error::Result;

/// At most this many keys in one `MGET`; the rest wait for the next turn.
const MAX_BATCH: usize = 256;

/// The reply a queued read gets.
pub(crate) enum Turn {
    /// Its value (or the batch's error).
    Done(Result<Option<Vec<u8>>>),
    /// It leads the next batch: these queued reads plus its own key.
    Lead(Vec<Waiter>),
}

/// A queued read.
pub(crate) struct Waiter {
    pub key: String,
    tx: oneshot::Sender<Turn>,
}

impl Waiter {
    /// Answers the read; a caller that went away is simply skipped.
    pub(crate) fn answer(self, value: Result<Option<Vec<u8>>>) {
        let _ = self.tx.send(Turn::Done(value));
    }
}

struct State {
    queue: Vec<Waiter>,
    in_flight: usize,
}

pub(crate) struct Coalescer {
    state: Mutex<State>,
    /// 0: coalescing is off.
    max_in_flight: usize,
}

/// What a read does after [`Coalescer::join`].
pub(crate) enum Join {
    /// Coalescing is off: read alone, nothing to finish.
    Alone,
    /// Go now, alone, then [`Coalescer::finish`].
    Lead,
    /// Wait for a value or for the lead.
    Wait(oneshot::Receiver<Turn>),
}

impl Coalescer {
    pub(crate) fn new(max_in_flight: usize) -> Self {
        Coalescer {
            state: Mutex::new(State {
                queue: Vec::new(),
                in_flight: 0,
            }),
            max_in_flight,
        }
    }

    pub(crate) fn join(&self, key: &str) -> Join {
        if self.max_in_flight == 0 {
            return Join::Alone;
        }
        let mut s = self.state.lock();
        if s.in_flight < self.max_in_flight {
            s.in_flight += 1;
            return Join::Lead;
        }
        let (tx, rx) = oneshot::channel();
        s.queue.push(Waiter {
            key: key.to_owned(),
            tx,
        });
        Join::Wait(rx)
    }

    /// Called once by every leader when its read is over (also when it was cancelled): hands the
    /// queue to the first queued caller still waiting, or frees the slot.
    pub(crate) fn finish(&self) {
        let mut s = self.state.lock();
        loop {
            if s.queue.is_empty() {
                s.in_flight -= 1;
                return;
            }
            let take = s.queue.len().min(MAX_BATCH);
            let mut batch: Vec<Waiter> = s.queue.drain(..take).collect();
            let next = batch.remove(0);
            match next.tx.send(Turn::Lead(batch)) {
                Ok(()) => return,
                // That caller is gone: put the others back and try the next one.
                Err(Turn::Lead(rest)) => {
                    s.queue.splice(0..0, rest);
                }
                Err(Turn::Done(_)) => {}
            }
        }
    }
}

/// Calls [`Coalescer::finish`] however the leader ends.
pub(crate) struct LeadGuard<'a>(pub &'a Coalescer);

impl Drop for LeadGuard<'_> {
    fn drop(&mut self) {
        self.0.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn light_traffic_leads_alone_and_frees_its_slot() {
        let c = Coalescer::new(1);
        assert!(matches!(c.join("a"), Join::Lead));
        c.finish();
        assert!(matches!(c.join("b"), Join::Lead));
    }

    #[test]
    fn queued_reads_are_handed_to_the_first_live_waiter() {
        let c = Coalescer::new(1);
        assert!(matches!(c.join("a"), Join::Lead));
        let Join::Wait(gone) = c.join("b") else {
            panic!("b should wait")
        };
        let Join::Wait(mut c_rx) = c.join("c") else {
            panic!("c should wait")
        };
        let Join::Wait(mut d_rx) = c.join("d") else {
            panic!("d should wait")
        };
        drop(gone);
        c.finish();
        match c_rx.try_recv() {
            Ok(Turn::Lead(rest)) => {
                assert_eq!(rest.iter().map(|w| w.key.as_str()).collect::<Vec<_>>(), ["d"]);
                for w in rest {
                    w.answer(Ok(Some(b"v".to_vec())));
                }
            }
            _ => panic!("c should lead"),
        }
        assert!(matches!(d_rx.try_recv(), Ok(Turn::Done(Ok(Some(v)))) if v == b"v"));
        // c's batch is still in flight; once it ends the slot is free again.
        c.finish();
        assert!(matches!(c.join("e"), Join::Lead));
    }

    #[test]
    fn a_queue_with_only_departed_callers_frees_the_slot() {
        let c = Coalescer::new(1);
        assert!(matches!(c.join("a"), Join::Lead));
        for k in ["b", "c"] {
            let Join::Wait(rx) = c.join(k) else {
                panic!("should wait")
            };
            drop(rx);
        }
        c.finish();
        assert!(matches!(c.join("d"), Join::Lead));
    }
}
