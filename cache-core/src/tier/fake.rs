//! An in-memory [`RemoteTier`] for the engine's unit tests: the same contract as Redis (markers,
//! epoch, guarded store, envelope-checked pattern delete) without a server, plus switches a
//! server does not offer (fail every call, hold reads at a gate) and a log of the calls made.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

// Under `tokio-clock` entries expire on tokio's clock, as L1's do: a paused clock moves both.
#[cfg(not(feature = "tokio-clock"))]
use std::time::Instant;
#[cfg(feature = "tokio-clock")]
use tokio::time::Instant;

use parking_lot::Mutex;

use super::breaker::Breaker;
use super::{BreakerState, Bus, GuardedItem, Item, Notice, PoolStatus, RemoteTier, TierFuture};
use crate::error::{BackendError, BackendErrorKind, CacheError, Result};
use crate::guard::Seen;
use crate::pattern::Pattern;
use crate::stats::RedisInfo;

#[derive(Default)]
struct State {
    values: HashMap<String, (Vec<u8>, Instant)>,
    markers: HashMap<String, Vec<u8>>,
    epoch: u64,
    locks: HashMap<String, String>,
}

/// The fake tier. Clones share the same store (two engines over one "server").
#[derive(Clone, Default)]
pub(crate) struct FakeTier {
    state: Arc<Mutex<State>>,
    failing: Arc<AtomicBool>,
    calls: Arc<Mutex<Vec<&'static str>>>,
    gets: Arc<AtomicU64>,
    /// While set, reads wait for a permit (a slow server).
    gate: Arc<Mutex<Option<Arc<tokio::sync::Semaphore>>>>,
    /// Calls that fail at random, per mille (a sick server); drawn from `draws`, so a run is
    /// the same every time.
    fail_permille: Arc<AtomicU32>,
    draws: Arc<AtomicU64>,
    /// Added to every read (tokio's clock: a paused clock advances by it), plus up to
    /// `read_jitter_us` more, drawn like the failures.
    read_delay_us: Arc<AtomicU64>,
    read_jitter_us: Arc<AtomicU64>,
    /// Calls are not logged, and read delays advance tokio's paused clock rather than sleep
    /// on it (long simulations: the same time passes, at a fraction of the cost).
    quiet: Arc<AtomicBool>,
    /// A circuit breaker in front of the calls, as Redis has ([`FakeTier::with_breaker`]).
    breaker: Option<Arc<Breaker>>,
}

impl FakeTier {
    /// Every call fails from now on (or works again).
    pub(crate) fn set_failing(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// The calls made so far, by name.
    pub(crate) fn calls(&self) -> Vec<&'static str> {
        self.calls.lock().clone()
    }

    /// Reads (`get`, `mget`) made so far.
    pub(crate) fn gets(&self) -> u64 {
        self.gets.load(Ordering::SeqCst)
    }

    /// Raw bytes under `key`.
    pub(crate) fn raw(&self, key: &str) -> Option<Vec<u8>> {
        self.state.lock().values.get(key).map(|(v, _)| v.clone())
    }

    /// Writes raw bytes, as another program would.
    pub(crate) fn put_raw(&self, key: &str, bytes: &[u8]) {
        let far = Instant::now() + Duration::from_secs(3600);
        self.state
            .lock()
            .values
            .insert(key.to_owned(), (bytes.to_vec(), far));
    }

    /// Holds every read until [`release_reads`](Self::release_reads).
    pub(crate) fn hold_reads(&self) {
        *self.gate.lock() = Some(Arc::new(tokio::sync::Semaphore::new(0)));
    }

    /// Lets the held reads, and all later ones, through.
    pub(crate) fn release_reads(&self) {
        if let Some(g) = self.gate.lock().take() {
            g.add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
        }
    }

    fn call(&self, name: &'static str) -> Result<()> {
        if !self.quiet.load(Ordering::Relaxed) {
            self.calls.lock().push(name);
        }
        if self.breaker.as_ref().is_some_and(|b| !b.allow()) {
            return Err(CacheError::CircuitOpen);
        }
        let permille = self.fail_permille.load(Ordering::Relaxed);
        let fails = self.failing.load(Ordering::SeqCst) || (permille > 0 && self.draw() < permille);
        if let Some(b) = &self.breaker {
            if fails {
                b.failure();
            } else {
                b.success();
            }
        }
        if fails {
            return Err(CacheError::Backend(BackendError::new(
                BackendErrorKind::ConnectionRefused,
                "fake tier is down",
            )));
        }
        Ok(())
    }

    /// A number in 0..1000 from a fixed sequence.
    fn draw(&self) -> u32 {
        (self.next() % 1000) as u32
    }

    /// The next number of a fixed sequence (splitmix64 of a counter): runs repeat.
    fn next(&self) -> u64 {
        let mut z = self
            .draws
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_add(1)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The configured read delay, on tokio's clock.
    async fn delay(&self) {
        let jitter = self.read_jitter_us.load(Ordering::Relaxed);
        let us =
            self.read_delay_us.load(Ordering::Relaxed) + if jitter > 0 { self.next() % jitter } else { 0 };
        if us == 0 {
            return;
        }
        if self.quiet.load(Ordering::Relaxed) {
            tokio::time::advance(Duration::from_micros(us)).await;
        } else {
            tokio::time::sleep(Duration::from_micros(us)).await;
        }
    }

    fn mark(state: &mut State, key: &str) {
        state
            .markers
            .insert(key.to_owned(), fastrand::u64(..).to_le_bytes().to_vec());
    }

    fn read(state: &State, key: &str) -> Option<Vec<u8>> {
        state
            .values
            .get(key)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(v, _)| v.clone())
    }

    async fn gate(&self) {
        let gate = self.gate.lock().clone();
        if let Some(g) = gate {
            // A closed or released gate lets the read through.
            drop(g.acquire().await);
        }
    }
}

/// The anomaly simulator's switches (`crate::anomaly`, under `tokio-clock`).
#[cfg_attr(not(feature = "tokio-clock"), allow(dead_code))]
impl FakeTier {
    /// A breaker in front of every call, as the Redis tier has: calls it refuses fail with
    /// [`CacheError::CircuitOpen`].
    pub(crate) fn with_breaker(mut self, threshold: u32, cooldown: Duration) -> Self {
        self.breaker = Some(Arc::new(Breaker::new(threshold, cooldown)));
        self
    }

    /// From now on, this share of calls (per mille) fails at random.
    pub(crate) fn set_fail_permille(&self, permille: u32) {
        self.fail_permille.store(permille.min(1000), Ordering::SeqCst);
    }

    /// From now on, every read takes this long (on tokio's clock).
    pub(crate) fn set_read_delay(&self, d: Duration) {
        self.read_delay_us.store(d.as_micros() as u64, Ordering::SeqCst);
    }

    /// From now on, every read takes up to this long more, at random.
    pub(crate) fn set_read_jitter(&self, d: Duration) {
        self.read_jitter_us.store(d.as_micros() as u64, Ordering::SeqCst);
    }

    /// Stops logging calls ([`calls`](Self::calls) stays as it was), and makes read delays
    /// advance tokio's clock, which must then be paused.
    pub(crate) fn set_quiet(&self) {
        self.quiet.store(true, Ordering::SeqCst);
    }
}

fn boxed<'a, T: Send + 'a>(f: impl std::future::Future<Output = Result<T>> + Send + 'a) -> TierFuture<'a, T> {
    Box::pin(f)
}

impl RemoteTier for FakeTier {
    fn display_url(&self) -> String {
        "fake://".into()
    }
    fn breaker_state(&self) -> BreakerState {
        self.breaker.as_ref().map_or(BreakerState::Closed, |b| b.state())
    }
    fn breaker_transitions(&self) -> u64 {
        self.breaker.as_ref().map_or(0, |b| b.transitions())
    }
    fn pool_status(&self) -> PoolStatus {
        PoolStatus {
            max_size: 1,
            size: 1,
            available: 1,
            shared_connected: 1,
        }
    }
    fn marker_ttl(&self) -> Duration {
        Duration::from_secs(60)
    }
    fn channel_name(&self, configured: Option<&str>) -> String {
        configured.unwrap_or("fake:invalidate").to_owned()
    }
    fn bus(&self) -> Option<&dyn Bus> {
        None
    }
    fn get<'a>(&'a self, key: &'a str) -> TierFuture<'a, Option<Vec<u8>>> {
        boxed(async move {
            self.call("get")?;
            self.gets.fetch_add(1, Ordering::SeqCst);
            self.gate().await;
            self.delay().await;
            Ok(Self::read(&self.state.lock(), key))
        })
    }
    fn mget<'a>(&'a self, keys: &'a [&'a str]) -> TierFuture<'a, Vec<Option<Vec<u8>>>> {
        boxed(async move {
            self.call("mget")?;
            self.gets.fetch_add(1, Ordering::SeqCst);
            self.gate().await;
            self.delay().await;
            let s = self.state.lock();
            Ok(keys.iter().map(|k| Self::read(&s, k)).collect())
        })
    }
    fn set_many<'a>(&'a self, items: &'a [Item<'a>], _notice: Option<&'a Notice>) -> TierFuture<'a, ()> {
        boxed(async move {
            self.call("set_many")?;
            let mut s = self.state.lock();
            for (k, v, ttl) in items {
                Self::mark(&mut s, k);
                s.values
                    .insert((*k).to_owned(), (v.to_vec(), Instant::now() + *ttl));
            }
            Ok(())
        })
    }
    fn init_plain<'a>(&'a self, items: &'a [Item<'a>]) -> TierFuture<'a, Vec<Option<Vec<u8>>>> {
        boxed(async move {
            self.call("init_plain")?;
            let mut s = self.state.lock();
            Ok(items
                .iter()
                .map(|(k, v, ttl)| {
                    if Self::read(&s, k).is_none() {
                        s.values
                            .insert((*k).to_owned(), (v.to_vec(), Instant::now() + *ttl));
                    }
                    Self::read(&s, k)
                })
                .collect())
        })
    }
    fn set_plain<'a>(&'a self, items: &'a [Item<'a>], _notice: Option<&'a Notice>) -> TierFuture<'a, ()> {
        boxed(async move {
            self.call("set_plain")?;
            let mut s = self.state.lock();
            for (k, v, ttl) in items {
                s.values
                    .insert((*k).to_owned(), (v.to_vec(), Instant::now() + *ttl));
            }
            Ok(())
        })
    }
    fn guarded_set<'a>(
        &'a self,
        items: &'a [GuardedItem<'a>],
        _notice: Option<&'a Notice>,
    ) -> TierFuture<'a, Vec<bool>> {
        boxed(async move {
            self.call("guarded_set")?;
            let mut s = self.state.lock();
            let epoch = s.epoch.to_le_bytes().to_vec();
            let mut out = Vec::with_capacity(items.len());
            for (k, v, ttl, seen) in items {
                let marker = s.markers.get(*k).cloned().unwrap_or_default();
                let ok = seen.epoch == epoch && seen.marker == marker;
                if ok {
                    s.values
                        .insert((*k).to_owned(), (v.to_vec(), Instant::now() + *ttl));
                }
                out.push(ok);
            }
            Ok(out)
        })
    }
    fn guard_seen<'a>(&'a self, keys: &'a [&'a str]) -> TierFuture<'a, Vec<Seen>> {
        boxed(async move {
            self.call("guard_seen")?;
            let s = self.state.lock();
            Ok(keys
                .iter()
                .map(|k| Seen {
                    marker: s.markers.get(*k).cloned().unwrap_or_default(),
                    epoch: s.epoch.to_le_bytes().to_vec(),
                })
                .collect())
        })
    }
    fn bump_epoch(&self) -> TierFuture<'_, ()> {
        boxed(async move {
            self.call("bump_epoch")?;
            self.state.lock().epoch += 1;
            Ok(())
        })
    }
    fn delete<'a>(&'a self, keys: &'a [&'a str], _notice: Option<&'a Notice>) -> TierFuture<'a, u64> {
        boxed(async move {
            self.call("delete")?;
            let mut s = self.state.lock();
            let mut n = 0;
            for k in keys {
                Self::mark(&mut s, k);
                n += u64::from(s.values.remove(*k).is_some());
            }
            Ok(n)
        })
    }
    fn delete_matching<'a>(&'a self, pattern: &'a str) -> TierFuture<'a, u64> {
        boxed(async move {
            self.call("delete_matching")?;
            let p = Pattern::new(pattern)?;
            let mut s = self.state.lock();
            let before = s.values.len();
            s.values
                .retain(|k, (v, _)| !(p.matches(k) && v.starts_with(&crate::codec::MAGIC)));
            Ok((before - s.values.len()) as u64)
        })
    }
    fn exists<'a>(&'a self, key: &'a str) -> TierFuture<'a, bool> {
        boxed(async move {
            self.call("exists")?;
            Ok(Self::read(&self.state.lock(), key).is_some())
        })
    }
    fn head<'a>(&'a self, key: &'a str, n: usize) -> TierFuture<'a, Option<Vec<u8>>> {
        boxed(async move {
            self.call("head")?;
            Ok(Self::read(&self.state.lock(), key).map(|v| v.iter().take(n).copied().collect()))
        })
    }
    fn pttl<'a>(&'a self, key: &'a str) -> TierFuture<'a, Option<Duration>> {
        boxed(async move {
            self.call("pttl")?;
            let s = self.state.lock();
            Ok(s.values
                .get(key)
                .map(|(_, until)| until.saturating_duration_since(Instant::now())))
        })
    }
    fn lock<'a>(&'a self, key: &'a str, token: &'a str, _ttl: Duration) -> TierFuture<'a, bool> {
        boxed(async move {
            self.call("lock")?;
            let mut s = self.state.lock();
            if s.locks.contains_key(key) {
                return Ok(false);
            }
            s.locks.insert(key.to_owned(), token.to_owned());
            Ok(true)
        })
    }
    fn unlock<'a>(&'a self, key: &'a str, token: &'a str) -> TierFuture<'a, bool> {
        boxed(async move {
            self.call("unlock")?;
            let mut s = self.state.lock();
            if s.locks.get(key).is_some_and(|t| t == token) {
                s.locks.remove(key);
                return Ok(true);
            }
            Ok(false)
        })
    }
    fn ping(&self) -> TierFuture<'_, Duration> {
        boxed(async move {
            self.call("ping")?;
            Ok(Duration::from_micros(1))
        })
    }
    fn info(&self) -> TierFuture<'_, RedisInfo> {
        boxed(async move {
            self.call("info")?;
            Ok(RedisInfo::parse(""))
        })
    }
    fn sample_memory<'a>(&'a self, pattern: &'a str, n: usize) -> TierFuture<'a, (u64, u64)> {
        boxed(async move {
            self.call("sample_memory")?;
            let p = Pattern::new(pattern)?;
            let s = self.state.lock();
            let sizes: Vec<u64> = s
                .values
                .iter()
                .filter(|(k, _)| p.matches(k))
                .take(n)
                .map(|(_, (v, _))| v.len() as u64)
                .collect();
            Ok((sizes.len() as u64, sizes.iter().sum()))
        })
    }
}
