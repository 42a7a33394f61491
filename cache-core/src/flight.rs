//! Single flight: concurrent misses on one key run the loader once; the others wait for its value.
//!
//! The first caller of a cold key leads: it registers the key and runs its loader. Later callers
//! find the key and wait on its [`Flight`]. When the leader ends it first unregisters the key (so
//! no one joins any more), then hands its entry to whoever is still waiting. If the leader
//! fails (an `Err` is never shared or cached), is cancelled or panics, the waiters are woken
//! without a value and each tries to lead with its own loader, so a failed leader never strands
//! its waiters.
//!
//! Every L2 read of a cached function goes through here, so a load nobody joins costs a map
//! insert and remove and nothing else: the [`Flight`] the waiters wait on (a mutex and a
//! `Notify`, not a `watch` channel, whose eight-way notifier cost more to make and wake than the
//! rest of the bookkeeping) is made by the first waiter. Nothing is woken, and a shared entry is
//! not even built, when nobody waited.

use std::any::Any;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::clock::Instant;
use crate::key::Fingerprint;
use crate::l1::{self, Entry, FingerprintHash};

/// Independent locks, so misses on different keys from many tasks do not queue on one mutex.
const SHARDS: usize = 16;

/// A key being loaded, and its flight once someone waits for it.
type Shard = Mutex<HashMap<u128, Option<Arc<Flight>>, FingerprintHash>>;

#[derive(Default)]
pub(crate) struct Flights {
    shards: [Shard; SHARDS],
}

/// One load in progress, shared by its leader and its waiters.
#[derive(Default)]
struct Flight {
    state: Mutex<State>,
    done: Notify,
}

#[derive(Default)]
enum State {
    #[default]
    Running,
    Shared(Entry),
    /// The leader ended without a value (error, cancel, panic).
    Failed,
}

/// What a leader's load hands to its waiters, if it has any.
pub(crate) enum Share {
    /// An entry that exists anyway (it went into L1).
    Entry(Entry),
    /// An entry to build only if someone waits: an L2 hit with L1 off builds none otherwise.
    Later {
        /// When the entry expires.
        expires_at: Instant,
        /// Its encoded size.
        bytes: u64,
    },
}

/// What a caller of [`Flights::run`] got.
pub(crate) enum Outcome<T, E, F> {
    /// This caller's loader ran and produced the value (or its error).
    Led(Result<T, E>),
    /// Another caller's loader produced the value; this caller's loader is handed back unused.
    Joined(Entry, F),
}

/// Unregisters the leader's key however the leader ends (value, error, cancel, panic) and wakes
/// its waiters. While a leader runs, the map's entry for its key is its own: only a leader
/// removes an entry, and a caller that finds one waits instead of leading.
struct LeadGuard<'a> {
    flights: &'a Flights,
    fp: u128,
    /// `None` until unregistered; then the flight, if anyone joined.
    flight: Option<Option<Arc<Flight>>>,
}

impl LeadGuard<'_> {
    /// Takes the key out of the map (so no one joins any more) and returns the flight its
    /// waiters wait on, if any.
    fn unregister(&mut self) -> Option<&Arc<Flight>> {
        let flight = self
            .flight
            .get_or_insert_with(|| self.flights.shard(self.fp).lock().remove(&self.fp).flatten());
        flight.as_ref()
    }
}

impl Drop for LeadGuard<'_> {
    fn drop(&mut self) {
        if let Some(flight) = self.unregister() {
            {
                let mut state = flight.state.lock();
                if matches!(*state, State::Running) {
                    *state = State::Failed;
                }
            }
            flight.done.notify_waiters();
        }
    }
}

impl Flights {
    fn shard(&self, fp: u128) -> &Shard {
        &self.shards[(fp as usize) % SHARDS]
    }

    /// Runs `load` unless another caller is already loading `fp`, in which case waits for it.
    /// `key` names the entry a [`Share::Later`] builds.
    pub(crate) async fn run<T, E, F, Fut>(&self, fp: Fingerprint, key: &str, load: F) -> Outcome<T, E, F>
    where
        T: Any + Clone + Send + Sync,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(T, Share), E>>,
    {
        loop {
            let joined = {
                let mut map = self.shard(fp.0).lock();
                match map.get_mut(&fp.0) {
                    Some(slot) => Some(Arc::clone(slot.get_or_insert_with(Arc::default))),
                    None => {
                        map.insert(fp.0, None);
                        None
                    }
                }
            };
            let Some(flight) = joined else {
                let mut guard = LeadGuard {
                    flights: self,
                    fp: fp.0,
                    flight: None,
                };
                let result = load().await;
                let waiting = guard.unregister();
                return Outcome::Led(result.map(|(value, share)| {
                    // A waiter that gave up since still holds the flight until it is gone; an
                    // entry built for nobody is a harmless waste.
                    if let Some(flight) = waiting.filter(|f| Arc::strong_count(f) > 1) {
                        let entry = match share {
                            Share::Entry(e) => e,
                            Share::Later { expires_at, bytes } => {
                                l1::entry(key, value.clone(), expires_at, bytes)
                            }
                        };
                        *flight.state.lock() = State::Shared(entry);
                    }
                    value
                }));
            };
            let notified = flight.done.notified();
            tokio::pin!(notified);
            // Registered before the state is read, so a leader that ends in between still
            // wakes this waiter.
            notified.as_mut().enable();
            let shared = loop {
                match &*flight.state.lock() {
                    State::Running => {}
                    State::Shared(e) => break Some(Arc::clone(e)),
                    State::Failed => break None,
                }
                notified.as_mut().await;
                notified.set(flight.done.notified());
                notified.as_mut().enable();
            };
            if let Some(entry) = shared {
                return Outcome::Joined(entry, load);
            }
            // The leader ended without a value: try to lead.
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

    fn value(v: u32) -> Share {
        Share::Entry(crate::l1::entry("k", v, clock::now(), 0))
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
                        .run(Fingerprint(1), "k", || async {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Ok::<_, ()>((7u32, value(7)))
                        })
                        .await;
                    match out {
                        Outcome::Led(r) => r.unwrap(),
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
                        .run(Fingerprint(2), "k", || async {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Err::<(u32, Share), &str>("boom")
                        })
                        .await,
                    Outcome::Led(Err("boom"))
                )
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        let waiter = flights
            .run(Fingerprint(2), "k", || async { Ok::<_, &str>((9u32, value(9))) })
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
        let fut = flights.run(Fingerprint(3), "k", || async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok::<_, ()>((1u32, value(1)))
        });
        assert!(tokio::time::timeout(Duration::from_millis(10), fut)
            .await
            .is_err());
        assert_eq!(flights.len(), 0);
    }

    /// Counts its clones: a shared entry holds one.
    struct Counted(Arc<AtomicUsize>);

    impl Clone for Counted {
        fn clone(&self) -> Self {
            self.0.fetch_add(1, Ordering::SeqCst);
            Counted(self.0.clone())
        }
    }

    fn later() -> Share {
        Share::Later {
            expires_at: clock::now(),
            bytes: 0,
        }
    }

    #[tokio::test]
    async fn a_lone_leader_builds_no_shared_entry() {
        let flights = Flights::default();
        let clones = Arc::new(AtomicUsize::new(0));
        let out = flights
            .run(Fingerprint(4), "k", || async {
                Ok::<_, ()>((Counted(clones.clone()), later()))
            })
            .await;
        assert!(matches!(out, Outcome::Led(Ok(_))));
        assert_eq!(clones.load(Ordering::SeqCst), 0);
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiters_get_an_entry_built_for_them() {
        let flights = Arc::new(Flights::default());
        let clones = Arc::new(AtomicUsize::new(0));
        let (release, gate) = tokio::sync::oneshot::channel::<()>();
        let leader = {
            let (flights, clones) = (flights.clone(), clones.clone());
            tokio::spawn(async move {
                let out = flights
                    .run(Fingerprint(5), "shared:key", || async {
                        let _ = gate.await;
                        Ok::<_, ()>((Counted(clones), later()))
                    })
                    .await;
                matches!(out, Outcome::Led(Ok(_)))
            })
        };
        while flights.len() == 0 {
            tokio::task::yield_now().await;
        }
        let waiter = {
            let flights = flights.clone();
            tokio::spawn(async move {
                match flights
                    .run(Fingerprint(5), "shared:key", || async {
                        Err::<(Counted, Share), ()>(())
                    })
                    .await
                {
                    Outcome::Joined(e, _) => Some(e.key.to_string()),
                    Outcome::Led(_) => None,
                }
            })
        };
        // The waiter has joined once it made the flight.
        loop {
            let joined = flights.shards[5 % SHARDS]
                .lock()
                .get(&5)
                .is_some_and(Option::is_some);
            if joined {
                break;
            }
            tokio::task::yield_now().await;
        }
        let _ = release.send(());
        assert!(leader.await.unwrap());
        assert_eq!(waiter.await.unwrap().as_deref(), Some("shared:key"));
        assert_eq!(
            clones.load(Ordering::SeqCst),
            1,
            "one clone, for the shared entry"
        );
    }
}
