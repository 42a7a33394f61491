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
//! their own key instead, so no caller is stranded. The lead itself travels as a [`ReadLead`],
//! so a lead handed to a caller that is cancelled before it takes it is passed on, never lost
//! (a lost lead would leave its in-flight slot taken for good).
//!
//! For Redis Cluster, a batch would be split by hash slot here, the one place that knows the
//! keys of a batch.

use std::sync::Arc;

use crate::sync::Mutex;
use tokio::sync::oneshot;

use crate::error::Result;

/// At most this many keys in one `MGET`; the rest wait for the next turn.
const MAX_BATCH: usize = 256;

/// The reply a queued read gets.
pub(crate) enum Turn {
    /// Its value (or the batch's error).
    Done(Result<Option<Vec<u8>>>),
    /// It leads the next batch: these queued reads plus its own key.
    Lead(Vec<Waiter>, ReadLead),
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
    /// Coalescing is off: read alone.
    Alone,
    /// Go now, alone, holding the lead until done.
    Lead(ReadLead),
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

    pub(crate) fn join(self: &Arc<Self>, key: &str) -> Join {
        if self.max_in_flight == 0 {
            return Join::Alone;
        }
        let mut s = self.state.lock();
        if s.in_flight < self.max_in_flight {
            s.in_flight += 1;
            return Join::Lead(ReadLead(Some(self.clone())));
        }
        let (tx, rx) = oneshot::channel();
        s.queue.push(Waiter {
            key: key.to_owned(),
            tx,
        });
        Join::Wait(rx)
    }

    /// Called once per lead, when its read is over or the lead is dropped unused: hands the
    /// queue to the first queued caller still waiting, or frees the slot.
    fn finish(self: &Arc<Self>) {
        let mut s = self.state.lock();
        loop {
            if s.queue.is_empty() {
                s.in_flight -= 1;
                return;
            }
            let take = s.queue.len().min(MAX_BATCH);
            let mut batch: Vec<Waiter> = s.queue.drain(..take).collect();
            let next = batch.remove(0);
            match next.tx.send(Turn::Lead(batch, ReadLead(Some(self.clone())))) {
                Ok(()) => return,
                // That caller is gone: put the others back and try the next one. The returned
                // lead is disarmed: it must not finish again while this holds the lock.
                Err(Turn::Lead(rest, mut lead)) => {
                    lead.0 = None;
                    s.queue.splice(0..0, rest);
                }
                Err(Turn::Done(_)) => {}
            }
        }
    }
}

/// The right to run one read; dropping it (read done, leader cancelled, or a handed-over lead
/// never received) passes the queue on or frees the slot.
pub(crate) struct ReadLead(Option<Arc<Coalescer>>);

impl Drop for ReadLead {
    fn drop(&mut self) {
        if let Some(c) = self.0.take() {
            c.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lead(c: &Arc<Coalescer>, key: &str) -> ReadLead {
        match c.join(key) {
            Join::Lead(g) => g,
            _ => panic!("{key} should lead"),
        }
    }

    fn wait(c: &Arc<Coalescer>, key: &str) -> oneshot::Receiver<Turn> {
        match c.join(key) {
            Join::Wait(rx) => rx,
            _ => panic!("{key} should wait"),
        }
    }

    #[test]
    fn light_traffic_leads_alone_and_frees_its_slot() {
        let c = Arc::new(Coalescer::new(1));
        drop(lead(&c, "a"));
        drop(lead(&c, "b"));
    }

    #[test]
    fn coalescing_off_never_queues() {
        let c = Arc::new(Coalescer::new(0));
        assert!(matches!(c.join("a"), Join::Alone));
        assert!(matches!(c.join("b"), Join::Alone));
    }

    #[test]
    fn queued_reads_are_handed_to_the_first_live_waiter() {
        let c = Arc::new(Coalescer::new(1));
        let a = lead(&c, "a");
        let gone = wait(&c, "b");
        let mut c_rx = wait(&c, "c");
        let mut d_rx = wait(&c, "d");
        drop(gone);
        drop(a);
        let c_lead = match c_rx.try_recv() {
            Ok(Turn::Lead(rest, g)) => {
                assert_eq!(rest.iter().map(|w| w.key.as_str()).collect::<Vec<_>>(), ["d"]);
                for w in rest {
                    w.answer(Ok(Some(b"v".to_vec())));
                }
                g
            }
            _ => panic!("c should lead"),
        };
        assert!(matches!(d_rx.try_recv(), Ok(Turn::Done(Ok(Some(v)))) if v == b"v"));
        // c's batch is still in flight: e queues, and leads once c is done.
        let mut e_rx = wait(&c, "e");
        drop(c_lead);
        assert!(matches!(e_rx.try_recv(), Ok(Turn::Lead(rest, _)) if rest.is_empty()));
        drop(lead(&c, "f"));
    }

    #[test]
    fn a_queue_with_only_departed_callers_frees_the_slot() {
        let c = Arc::new(Coalescer::new(1));
        let a = lead(&c, "a");
        drop(wait(&c, "b"));
        drop(wait(&c, "c"));
        drop(a);
        drop(lead(&c, "d"));
    }

    /// Regression: a lead handed to a caller that was cancelled before taking it kept its slot
    /// taken for good, and every later read queued forever.
    #[test]
    fn a_lead_dropped_before_it_is_taken_is_passed_on() {
        let c = Arc::new(Coalescer::new(1));
        let a = lead(&c, "a");
        let b_rx = wait(&c, "b");
        let mut c_rx = wait(&c, "c");
        drop(a); // b is handed the lead, with c in its batch...
        drop(b_rx); // ...and is cancelled before it looks.
        assert!(c_rx.try_recv().is_err(), "c is released to read alone");
        drop(lead(&c, "d"));
    }
}

/// Interleavings explored by shuttle (`--features shuttle`): reads that lead, queue, are handed
/// a batch, or are cancelled at any point. Every read that was not cancelled ends (shuttle fails
/// the test on a deadlock), and the coalescer ends with no slot taken and nothing queued.
#[cfg(all(test, feature = "shuttle"))]
mod shuttle_tests {
    use super::*;
    use shuttle::future::{block_on, spawn, yield_now};

    /// One read through the coalescer, as `RedisL2::get_coalesced` does it, answering a batch
    /// it leads; `cancel` drops it at its first await.
    async fn read(c: Arc<Coalescer>, key: String, cancel: bool) {
        let (others, lead) = match c.join(&key) {
            Join::Alone => return,
            Join::Lead(lead) => (Vec::new(), lead),
            Join::Wait(rx) => {
                if cancel {
                    return; // dropped while queued
                }
                match rx.await {
                    Ok(Turn::Done(_)) => return,
                    Ok(Turn::Lead(others, lead)) => (others, lead),
                    Err(_) => return, // released to read alone
                }
            }
        };
        yield_now().await; // the round trip
        if cancel {
            return; // cancelled mid-read: its batch reads alone
        }
        for w in others {
            w.answer(Ok(None));
        }
        drop(lead);
    }

    #[test]
    fn shuttle_every_read_ends_and_frees_its_slot() {
        shuttle::check_random(
            || {
                let c = Arc::new(Coalescer::new(1));
                let tasks: Vec<_> = (0..4)
                    .map(|i| spawn(read(c.clone(), format!("k{i}"), i == 1)))
                    .collect();
                block_on(async {
                    for t in tasks {
                        t.await.expect("read task");
                    }
                });
                let s = c.state.lock();
                assert_eq!((s.in_flight, s.queue.len()), (0, 0));
            },
            2000,
        );
    }
}
