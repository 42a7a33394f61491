//! Single flight: concurrent misses on one key run the loader once; the others wait for its value.
//!
//! The first caller of a cold key leads: [`Flights::join`] registers the key and hands it a
//! [`FlightLead`]; it reads the remote tier and runs its loader. Later callers find the key and
//! wait on its [`Flight`]. When the leader ends it first unregisters the key (so no one joins any
//! more), then hands its entry to whoever is still waiting. If the leader fails (an `Err` is never
//! shared or cached), is cancelled or panics, its [`FlightLead`] is dropped without sharing and
//! the waiters are woken without a value: each tries to lead with its own loader, so a failed
//! leader never strands its waiters.
//!
//! Flights are keyed by the key's fingerprint *and* the value's `TypeId` (as moka keys its
//! waiters): two call sites that share a key with different value types never hand each other a
//! value of the wrong type; they simply load apart.
//!
//! Every remote read of a cached function goes through here, so a load nobody joins costs a map
//! insert and remove and nothing else: the [`Flight`] the waiters wait on (a mutex and a
//! `Notify`, not a `watch` channel, whose eight-way notifier cost more to make and wake than the
//! rest of the bookkeeping) is made by the first waiter. Nothing is woken when nobody waited.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::Arc;

use crate::sync::Mutex;
use tokio::sync::Notify;

use crate::key::Fingerprint;
use crate::l1::{Entry, FingerprintHash};

/// Independent locks, so misses on different keys from many tasks do not queue on one mutex.
const SHARDS: usize = 16;

/// What a flight is keyed by: the key's fingerprint and the value type.
type FlightKey = (u128, TypeId);

/// A key being loaded, and its flight once someone waits for it.
type Shard = Mutex<HashMap<FlightKey, Option<Arc<Flight>>, FingerprintHash>>;

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

/// What [`Flights::join`] gave a caller.
pub(crate) enum Joined<'a> {
    /// No one was loading the key: this caller leads.
    Lead(FlightLead<'a>),
    /// Another caller loaded it: its entry.
    Shared(Entry),
}

/// The leadership of one key's load. Sharing an entry ends it with a value; dropping it any
/// other way (error, cancel, panic) ends it without one, and the waiters try to lead. While it
/// lives, the map's entry for its key is its own: only a leader removes an entry, and a caller
/// that finds one waits instead of leading.
pub(crate) struct FlightLead<'a> {
    flights: &'a Flights,
    key: FlightKey,
    /// `None` until unregistered; then the flight, if anyone joined.
    flight: Option<Option<Arc<Flight>>>,
}

impl FlightLead<'_> {
    /// Takes the key out of the map (so no one joins any more) and returns the flight its
    /// waiters wait on, if any.
    fn unregister(&mut self) -> Option<&Arc<Flight>> {
        let (flights, key) = (self.flights, self.key);
        let flight = self
            .flight
            .get_or_insert_with(|| flights.shard(key.0).lock().remove(&key).flatten());
        flight.as_ref()
    }

    /// Whether anyone waits for this load (a waiter that gave up may still be counted: an entry
    /// built for nobody is a harmless waste).
    pub(crate) fn has_waiters(&mut self) -> bool {
        self.unregister().is_some_and(|f| Arc::strong_count(f) > 1)
    }

    /// Ends the load with `entry`, handed to whoever waits.
    pub(crate) fn share(mut self, entry: &Entry) {
        if let Some(flight) = self.unregister().filter(|f| Arc::strong_count(f) > 1) {
            *flight.state.lock() = State::Shared(Arc::clone(entry));
        }
        // Drop wakes the waiters.
    }
}

impl Drop for FlightLead<'_> {
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

    /// Leads the load of (`fp`, `ty`), or waits for the caller who does and returns its entry.
    /// A leader that ends without a value makes its waiters try again: one of them leads.
    pub(crate) async fn join(&self, fp: Fingerprint, ty: TypeId) -> Joined<'_> {
        let key = (fp.0, ty);
        loop {
            let joined = {
                let mut map = self.shard(fp.0).lock();
                match map.get_mut(&key) {
                    Some(slot) => Some(Arc::clone(slot.get_or_insert_with(Arc::default))),
                    None => {
                        map.insert(key, None);
                        None
                    }
                }
            };
            let Some(flight) = joined else {
                return Joined::Lead(FlightLead {
                    flights: self,
                    key,
                    flight: None,
                });
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
                return Joined::Shared(entry);
            }
            // The leader ended without a value: try to lead.
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }

    /// Callers waiting on a leader, over every key.
    #[cfg(test)]
    pub(crate) fn waiters(&self) -> usize {
        self.shards
            .iter()
            .map(|s| {
                s.lock()
                    .values()
                    .map(|f| f.as_ref().map_or(0, |f| Arc::strong_count(f) - 1))
                    .sum::<usize>()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock;
    use crate::l1;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    const U32: fn() -> TypeId = TypeId::of::<u32>;

    /// Runs `load` under single flight the way the loader does: lead and share, or take the
    /// shared entry.
    async fn run<F, Fut>(flights: &Flights, fp: u128, load: F) -> Result<u32, &'static str>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<u32, &'static str>>,
    {
        match flights.join(Fingerprint(fp), U32()).await {
            Joined::Shared(e) => Ok(*e.value.downcast_ref::<u32>().expect("a u32")),
            Joined::Lead(lead) => {
                let v = load().await?;
                lead.share(&l1::entry("k", v, clock::now(), 0));
                Ok(v)
            }
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_one_load() {
        let flights = Arc::new(Flights::default());
        let calls = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..200)
            .map(|_| {
                let (flights, calls) = (flights.clone(), calls.clone());
                tokio::spawn(async move {
                    let joined = flights.clone();
                    run(&flights, 1, || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        // Held until the 199 others wait on it: a fixed sleep let a late
                        // caller find the flight gone and load again on a loaded machine.
                        while joined.waiters() < 199 {
                            tokio::task::yield_now().await;
                        }
                        Ok(7)
                    })
                    .await
                })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), Ok(7));
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
                run(&flights, 2, || async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Err("boom")
                })
                .await
            })
        };
        while flights.len() == 0 {
            tokio::task::yield_now().await;
        }
        let waiter = run(&flights, 2, || async { Ok(9) }).await;
        assert_eq!(leader.await.unwrap(), Err("boom"));
        assert_eq!(waiter, Ok(9), "the waiter ran its own loader");
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test]
    async fn cancelled_leader_unregisters() {
        let flights = Flights::default();
        let fut = run(&flights, 3, || async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(1)
        });
        assert!(tokio::time::timeout(Duration::from_millis(10), fut)
            .await
            .is_err());
        assert_eq!(flights.len(), 0);
    }

    /// Two value types under one key are two flights: the second caller does not wait for (or
    /// receive) the first one's value.
    #[tokio::test]
    async fn value_types_fly_apart() {
        let flights = Flights::default();
        let Joined::Lead(first) = flights.join(Fingerprint(4), U32()).await else {
            panic!("the first caller leads");
        };
        let Joined::Lead(second) = flights.join(Fingerprint(4), TypeId::of::<String>()).await else {
            panic!("another type leads its own flight");
        };
        assert_eq!(flights.len(), 2);
        drop((first, second));
        assert_eq!(flights.len(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiters_get_the_shared_entry() {
        let flights = Arc::new(Flights::default());
        let Joined::Lead(mut lead) = flights.join(Fingerprint(5), U32()).await else {
            panic!("leads");
        };
        let waiter = {
            let flights = flights.clone();
            tokio::spawn(async move {
                match flights.join(Fingerprint(5), U32()).await {
                    Joined::Shared(e) => Some(e.key.to_string()),
                    Joined::Lead(_) => None,
                }
            })
        };
        // The waiter has joined once it made the flight.
        loop {
            let joined = flights.shards[5 % SHARDS]
                .lock()
                .get(&(5, U32()))
                .is_some_and(Option::is_some);
            if joined {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(lead.has_waiters());
        lead.share(&l1::entry("shared:key", 1u32, clock::now(), 0));
        assert_eq!(waiter.await.unwrap().as_deref(), Some("shared:key"));
    }
}

/// Interleavings explored by shuttle (`--features shuttle`): every lock acquisition is a
/// scheduling point, so leaders ending, failing or being cancelled race waiters joining in every
/// order shuttle can find. Each test also fails on a deadlock (a waiter stranded).
#[cfg(all(test, feature = "shuttle"))]
mod shuttle_tests {
    use super::*;
    use crate::clock;
    use crate::l1;
    use shuttle::future::{block_on, spawn, yield_now};
    use std::sync::atomic::{AtomicUsize, Ordering};

    const RUNS: usize = 2000;

    fn u32_flight() -> TypeId {
        TypeId::of::<u32>()
    }

    /// A waiter joins while the leader is cancelled (its lead dropped unshared): the waiter is
    /// never stranded, leads itself, and the map ends empty.
    #[test]
    fn shuttle_waiter_joins_as_the_leader_is_cancelled() {
        shuttle::check_random(
            || {
                let flights = Arc::new(Flights::default());
                let leader = {
                    let flights = flights.clone();
                    spawn(async move {
                        if let Joined::Lead(lead) = flights.join(Fingerprint(1), u32_flight()).await {
                            yield_now().await;
                            drop(lead); // cancelled mid-load
                        }
                    })
                };
                let waiter = {
                    let flights = flights.clone();
                    spawn(async move {
                        match flights.join(Fingerprint(1), u32_flight()).await {
                            Joined::Lead(lead) => {
                                lead.share(&l1::entry("k", 2u32, clock::now(), 0));
                                2
                            }
                            Joined::Shared(e) => *e.value.downcast_ref::<u32>().expect("a u32"),
                        }
                    })
                };
                block_on(async {
                    leader.await.expect("leader task");
                    assert_eq!(waiter.await.expect("waiter task"), 2);
                });
                assert_eq!(flights.len(), 0);
            },
            RUNS,
        );
    }

    /// Leaders that fail hand over one at a time: never two leaders of one key at once, every
    /// caller ends, and the one that succeeds shares its value with whoever still waits.
    #[test]
    fn shuttle_failed_leaders_hand_over_one_at_a_time() {
        shuttle::check_random(
            || {
                let flights = Arc::new(Flights::default());
                let leading = Arc::new(AtomicUsize::new(0));
                let tasks: Vec<_> = (0..3u32)
                    .map(|i| {
                        let (flights, leading) = (flights.clone(), leading.clone());
                        spawn(async move {
                            match flights.join(Fingerprint(2), u32_flight()).await {
                                Joined::Lead(lead) => {
                                    assert_eq!(leading.fetch_add(1, Ordering::SeqCst), 0, "two leaders");
                                    yield_now().await;
                                    leading.fetch_sub(1, Ordering::SeqCst);
                                    if i == 0 {
                                        drop(lead); // fails
                                        None
                                    } else {
                                        lead.share(&l1::entry("k", i, clock::now(), 0));
                                        Some(i)
                                    }
                                }
                                Joined::Shared(e) => Some(*e.value.downcast_ref::<u32>().expect("a u32")),
                            }
                        })
                    })
                    .collect();
                block_on(async {
                    for (i, t) in tasks.into_iter().enumerate() {
                        let got = t.await.expect("task");
                        if i > 0 {
                            assert!(matches!(got, Some(1 | 2)), "caller {i} got {got:?}");
                        }
                    }
                });
                assert_eq!(flights.len(), 0);
            },
            RUNS,
        );
    }

    /// Two value types under one key: each caller gets its own type's value, whatever the
    /// interleaving.
    #[test]
    fn shuttle_value_types_never_cross() {
        shuttle::check_random(
            || {
                let flights = Arc::new(Flights::default());
                let tasks: Vec<_> = (0..4u32)
                    .map(|i| {
                        let flights = flights.clone();
                        spawn(async move {
                            if i % 2 == 0 {
                                match flights.join(Fingerprint(3), TypeId::of::<u32>()).await {
                                    Joined::Lead(lead) => lead.share(&l1::entry("k", 7u32, clock::now(), 0)),
                                    Joined::Shared(e) => assert_eq!(e.value.downcast_ref::<u32>(), Some(&7)),
                                }
                            } else {
                                match flights.join(Fingerprint(3), TypeId::of::<String>()).await {
                                    Joined::Lead(lead) => {
                                        yield_now().await;
                                        lead.share(&l1::entry("k", "seven".to_string(), clock::now(), 0))
                                    }
                                    Joined::Shared(e) => {
                                        assert_eq!(
                                            e.value.downcast_ref::<String>().map(String::as_str),
                                            Some("seven")
                                        )
                                    }
                                }
                            }
                        })
                    })
                    .collect();
                block_on(async {
                    for t in tasks {
                        t.await.expect("task");
                    }
                });
                assert_eq!(flights.len(), 0);
            },
            RUNS,
        );
    }
}
