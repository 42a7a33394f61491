//! Single flight: concurrent misses on one key run the loader once; the others wait for its value.
//!
//! The first caller of a cold key leads: it registers a `watch` channel and runs its loader.
//! Later callers wait on that channel. If the leader fails (an `Err` is never shared or cached),
//! is cancelled or panics, its sender is dropped; each waiter then tries to lead with its own
//! loader, so a failed leader never strands its waiters.

use std::collections::HashMap;
use std::future::Future;

use parking_lot::Mutex;
use tokio::sync::watch;

use crate::key::Fingerprint;
use crate::l1::{Entry, FingerprintHash};

type Slot = Option<Entry>;

/// Independent locks, so misses on different keys from many tasks do not queue on one mutex.
const SHARDS: usize = 16;

type Shard = Mutex<HashMap<u128, watch::Receiver<Slot>, FingerprintHash>>;

#[derive(Default)]
pub(crate) struct Flights {
    shards: [Shard; SHARDS],
}

/// What a caller of [`Flights::run`] got.
pub(crate) enum Outcome<T, E, F> {
    /// This caller's loader ran and produced the value and the entry it shared (or its error).
    Led(Result<(T, Entry), E>),
    /// Another caller's loader produced the value; this caller's loader is handed back unused.
    Joined(Entry, F),
}

enum Role {
    Lead(watch::Sender<Slot>, watch::Receiver<Slot>),
    Wait(watch::Receiver<Slot>),
}

/// Unregisters the leader's flight however the leader ends (value, error, cancel, panic).
struct LeadGuard<'a> {
    flights: &'a Flights,
    fp: u128,
    rx: watch::Receiver<Slot>,
}

impl Drop for LeadGuard<'_> {
    fn drop(&mut self) {
        let mut map = self.flights.shard(self.fp).lock();
        if map.get(&self.fp).is_some_and(|rx| self.rx.same_channel(rx)) {
            map.remove(&self.fp);
        }
    }
}

impl Flights {
    fn shard(&self, fp: u128) -> &Shard {
        &self.shards[(fp as usize) % SHARDS]
    }

    /// Runs `load` unless another caller is already loading `fp`, in which case waits for it.
    pub(crate) async fn run<T, E, F, Fut>(&self, fp: Fingerprint, load: F) -> Outcome<T, E, F>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(T, Entry), E>>,
    {
        loop {
            let role = {
                let mut map = self.shard(fp.0).lock();
                match map.get(&fp.0) {
                    Some(rx) => Role::Wait(rx.clone()),
                    None => {
                        let (tx, rx) = watch::channel(None);
                        map.insert(fp.0, rx.clone());
                        Role::Lead(tx, rx)
                    }
                }
            };
            match role {
                Role::Lead(tx, rx) => {
                    let _guard = LeadGuard {
                        flights: self,
                        fp: fp.0,
                        rx,
                    };
                    let result = load().await;
                    if let Ok((_, entry)) = &result {
                        tx.send_replace(Some(entry.clone()));
                    }
                    return Outcome::Led(result);
                }
                Role::Wait(mut rx) => {
                    let shared = match rx.wait_for(Option::is_some).await {
                        Ok(slot) => slot.clone(),
                        // The leader ended without a value: try to lead.
                        Err(_) => None,
                    };
                    if let Some(entry) = shared {
                        return Outcome::Joined(entry, load);
                    }
                }
            }
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    fn value(v: u32) -> Entry {
        crate::l1::entry("k", v, clock::now(), 0)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_load() {
        let flights = Arc::new(Flights::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let (flights, calls) = (flights.clone(), calls.clone());
                tokio::spawn(async move {
                    let out = flights
                        .run(Fingerprint(1), || async {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok::<_, ()>((7u32, value(7)))
                        })
                        .await;
                    match out {
                        Outcome::Led(r) => r.unwrap().0,
                        Outcome::Joined(e, _) => *e.value.downcast_ref::<u32>().unwrap(),
                    }
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 7);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn failed_leader_hands_over_to_a_waiter() {
        let flights = Arc::new(Flights::default());
        let leader = {
            let flights = flights.clone();
            tokio::spawn(async move {
                matches!(
                    flights
                        .run(Fingerprint(2), || async {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Err::<(u32, Entry), &str>("boom")
                        })
                        .await,
                    Outcome::Led(Err("boom"))
                )
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let waiter = flights
            .run(Fingerprint(2), || async { Ok::<_, &str>((9u32, value(9))) })
            .await;
        assert!(leader.await.unwrap());
        assert!(
            matches!(waiter, Outcome::Led(Ok(_))),
            "the waiter ran its own loader"
        );
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test]
    async fn cancelled_leader_unregisters() {
        let flights = Flights::default();
        let fut = flights.run(Fingerprint(3), || async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, ()>((1u32, value(1)))
        });
        assert!(tokio::time::timeout(Duration::from_millis(10), fut)
            .await
            .is_err());
        assert_eq!(flights.len(), 0);
    }
}
