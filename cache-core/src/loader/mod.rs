//! The read-through loader: the one path under every cached call (macros,
//! `get_or_insert_with`, warmers): L1 → single flight → remote tier → cross-instance lock → the
//! caller's loader → guarded store.
//!
//! Split so that the miss path is compiled once: [`Engine::begin`] and [`conclude`] are
//! ordinary functions over erased values (boxed futures, `&'static ValueOps`); the only code
//! generic over a cached function's types is [`load_after_miss`], a few lines that await the
//! two around the caller's own future. The L1 hit stays generic and synchronous
//! ([`Engine::l1_get_timed`]).
//!
//! - [`fail_safe`]: serving a stale value when the loader fails or is slow;
//! - [`batch`]: many keys, one remote read, one loader call, one guarded write;
//! - [`remote_lock`]: single flight across instances.
//!
//! It may call the engine; the engine never calls it.

pub(crate) mod batch;
pub(crate) mod fail_safe;
mod miss;
mod remote_lock;

pub(crate) use miss::load_after_miss;

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::engine::Engine;
use crate::flight::{FlightLead, Joined};
use crate::guard::LoadStart;
use crate::key::Fingerprint;
use crate::l1::Entry;
use crate::perf::FnStats;
use crate::trace;
use crate::values::{AnyValue, ValueOps};

use tracing::Instrument;

/// Per-call options of the loading path (what the macros set). Not `#[non_exhaustive]`, unlike
/// the other option structs: every expansion builds it as a struct literal, and the macros are
/// pinned to this crate's exact version.
///
/// ```
/// let opts = cache_core::LoadOptions { use_l1: false, ..Default::default() };
/// assert!(opts.ttl.is_none());
/// ```
#[derive(Debug, Clone, Copy)]
pub struct LoadOptions {
    /// Explicit TTL; `None` takes it from the pattern table.
    pub ttl: Option<Duration>,
    /// Whether this call may use L1 (`l1 = false` in the macro keeps a function Redis-only).
    pub use_l1: bool,
    /// `Some(true)`: adaptive TTL for this call (`strategy = adaptive`); `Some(false)`: the
    /// pattern table (`strategy = ttl`); `None`: the cache's strategy decides.
    pub adaptive: Option<bool>,
    /// Fail-safe: keep the value this long past its TTL and serve it when the loader fails or
    /// exceeds `soft_timeout` (`stale_if_error = "10m"` in the macro).
    pub stale_for: Option<Duration>,
    /// Fail-safe: with a stale value at hand, wait this long for the loader, then serve the stale
    /// value while the loader finishes in the background (`soft_timeout = "200ms"`).
    pub soft_timeout: Option<Duration>,
    /// Learned TTL (`ttl = "auto"` in the macro): the TTL follows how often the values change,
    /// within the settings' stale target and bounds ([`crate::analytics`]). An explicit `ttl`
    /// wins over it.
    pub auto_ttl: Option<crate::config::AutoTtl>,
    /// The function's bound on its L1 entries (`max_entries = 1000` in the macro).
    pub max_entries: Option<&'static crate::perf::EntryLimit>,
    /// Sliding expiration in L1 (`ttl_idle = "5m"` in the macro): an entry not read for this
    /// long leaves L1, and each read moves that deadline, up to the entry's own TTL (Redis keeps
    /// the TTL).
    pub ttl_idle: Option<Duration>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            ttl: None,
            use_l1: true,
            adaptive: None,
            stale_for: None,
            soft_timeout: None,
            auto_ttl: None,
            max_entries: None,
            ttl_idle: None,
        }
    }
}

/// A boxed future of the erased path.
pub(crate) type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What [`Engine::begin`] found.
pub(crate) enum Begin<'a> {
    /// A value: another caller's load, or the remote tier's copy (already in L1).
    Found(Entry),
    /// The remote tier's copy, for this caller alone (L1 off, nobody waiting): no entry is
    /// built, and the value is moved out rather than cloned.
    Value(AnyValue),
    /// Nothing: this caller loads, and ends the load with [`conclude`].
    Lead(Box<Lead<'a>>),
}

/// This caller's leadership of a key's load: its single-flight slot, its cross-instance lock,
/// and where it started (for the guarded store).
pub(crate) struct Lead<'a> {
    engine: &'a Engine,
    key: &'a str,
    fp: Fingerprint,
    opts: LoadOptions,
    ops: &'static ValueOps,
    flight: FlightLead<'a>,
    lock: Option<(String, String)>,
    start: LoadStart,
    /// The cached function's statistics, which get the loader's run time.
    stats: Option<&'static FnStats>,
    /// The `cache.load` span ([`crate::trace`]): entered while the caller's loader runs, so
    /// its spans are children, and around the store.
    span: tracing::Span,
    /// When the caller's loader started.
    started: std::time::Instant,
}

impl Lead<'_> {
    /// Enters the load's span (while the caller's loader is polled).
    pub(crate) fn enter(&self) -> tracing::span::Entered<'_> {
        self.span.enter()
    }
}

impl Engine {
    /// The miss path up to the caller's loader: single flight, the remote read, the
    /// cross-instance lock. Compiled once for every cached type.
    pub(crate) fn begin<'a>(
        &'a self,
        key: &'a str,
        fp: Fingerprint,
        opts: LoadOptions,
        ops: &'static ValueOps,
        stats: Option<&'static FnStats>,
        tags: &'a [&'a str],
    ) -> Boxed<'a, Begin<'a>> {
        let span = trace::get_span(key, self.remote.is_some());
        let t0 = std::time::Instant::now();
        let read = span.clone();
        Box::pin(
            async move {
                let mut flight = match self.flights.join(fp, (ops.type_id)()).await {
                    Joined::Shared(entry) => {
                        self.counters.coalesced.incr();
                        self.access.record(fp, key, true);
                        trace::answered(&read, "flight", "hit", t0);
                        return Begin::Found(entry);
                    }
                    Joined::Lead(lead) => lead,
                };
                // Taken before the remote read: an invalidation from now on keeps this load from
                // storing.
                let seq = self.log.start();
                // Without L1 for this call, a copy nobody waits for goes to this caller alone. (The
                // L1 test first: asking for waiters ends the flight's registration.)
                let no_l1 = !opts.use_l1 || self.l1.is_none();
                let mut outcome = "miss";
                match self.tiered_read(key, ops, !no_l1).await {
                    Ok(Some(found)) if no_l1 && !flight.has_waiters() => {
                        if found.from_disk {
                            self.counters.l3_hits.incr();
                        } else {
                            self.counters.l2_hits.incr();
                        }
                        self.access.record(fp, key, true);
                        trace::answered(&read, trace::tier(found.from_disk), "hit", t0);
                        return Begin::Value(found.d.value);
                    }
                    Ok(Some(found)) => {
                        let tier = trace::tier(found.from_disk);
                        let entry = self.remote_hit(key, fp, found, ops, seq, &opts);
                        self.share_unless_overtaken(flight, seq, fp, key, &entry);
                        trace::answered(&read, tier, "hit", t0);
                        return Begin::Found(entry);
                    }
                    Ok(None) => {}
                    Err(e) => {
                        self.record_error("get", key, &e);
                        outcome = "error";
                    }
                }
                let mut lock = None;
                if let (Some(lock_ttl), Some(_)) = (self.config.distributed_lock, &self.remote) {
                    match self.lead_across_instances(key, lock_ttl, ops).await {
                        remote_lock::Waited::Value(found) => {
                            let entry = self.remote_hit(key, fp, found, ops, seq, &opts);
                            self.share_unless_overtaken(flight, seq, fp, key, &entry);
                            trace::answered(&read, "l2", "hit", t0);
                            return Begin::Found(entry);
                        }
                        remote_lock::Waited::Lead(name, token) => lock = Some((name, token)),
                        remote_lock::Waited::GaveUp => {}
                    }
                }
                self.count_miss(key, fp);
                self.counters.loader_calls.incr();
                self.access.record(fp, key, false);
                let start = self.load_start_tagged(seq, key, tags).await;
                trace::answered(&read, "none", outcome, t0);
                Begin::Lead(Box::new(Lead {
                    engine: self,
                    key,
                    fp,
                    opts,
                    ops,
                    flight,
                    lock,
                    start,
                    stats,
                    span: trace::load_span(&read, key),
                    started: std::time::Instant::now(),
                }))
            }
            .instrument(span),
        )
    }
}

impl Engine {
    /// Hands a load's value to the callers waiting for it, unless an invalidation of the key
    /// came since the load began (`seq`): a caller may have joined after a write whose result
    /// it must see (read-your-writes), and the value may be older than that write. The waiters
    /// are woken without it and load again; the leader's own caller keeps the value (its read
    /// began before the write ended). The load test's stale-read check found one such read in
    /// 100 while single flight shared old values.
    fn share_unless_overtaken(
        &self,
        flight: FlightLead<'_>,
        seq: u64,
        fp: Fingerprint,
        key: &str,
        entry: &Entry,
    ) {
        if self.log.overtaken(seq, fp, key) {
            drop(flight);
        } else {
            flight.share(entry);
        }
    }
}

/// Ends a load: with its value (`Some((value, store))`: stored, guarded, when `store`, and
/// handed to the waiters either way), or without one (`None`: an error; dropping the flight
/// lets the waiters try to lead). The loader's run time goes to the function's statistics and
/// the cross-instance lock is released either way. Boxed: compiled once.
pub(crate) fn conclude(lead: Box<Lead<'_>>, value: Option<(AnyValue, bool)>) -> Boxed<'_, ()> {
    let span = lead.span.clone();
    Box::pin(
        async move {
            let Lead {
                engine,
                key,
                fp,
                opts,
                ops,
                mut flight,
                lock,
                start,
                stats,
                span,
                started,
            } = *lead;
            if let Some(stats) = stats {
                stats.load(started.elapsed());
            }
            let outcome = match &value {
                Some((_, true)) => "stored",
                Some((_, false)) => "not_stored",
                None => "error",
            };
            match value {
                Some((value, true)) => {
                    let entry = engine
                        .store(key, fp, value, ops, &opts, Some(&start), &start.tags)
                        .await
                        .0;
                    engine.share_unless_overtaken(flight, start.seq, fp, key, &entry);
                }
                // Not stored (`skip_none`), but the waiters still get this call's answer.
                Some((value, false)) if flight.has_waiters() => {
                    let entry = (ops.entry)(key, value, engine.now(), 0);
                    engine.share_unless_overtaken(flight, start.seq, fp, key, &entry);
                }
                Some(_) | None => drop(flight),
            }
            if let Some((name, token)) = lock {
                engine.unlock_after_load(key, &name, &token).await;
            }
            trace::ended(&span, outcome, started);
        }
        .instrument(span),
    )
}

/// How a function's return value `R` holds the cached value `T`: `Result<T, E>` holds one in
/// `Ok` only; any other `R` is the value itself.
pub(crate) struct Rule<T, R> {
    /// The value to cache in a return, if the return is one to cache.
    pub(crate) value: fn(&R) -> Option<&T>,
    /// The return that a cached value stands for.
    pub(crate) wrap: fn(T) -> R,
}

fn ok_value<T, E>(r: &Result<T, E>) -> Option<&T> {
    r.as_ref().ok()
}

fn the_value<T>(v: &T) -> Option<&T> {
    Some(v)
}

fn same<T>(v: T) -> T {
    v
}

impl<T, E> Rule<T, Result<T, E>> {
    /// `Ok` is cached; an `Err` goes to its caller only.
    pub(crate) const RESULT: Self = Rule {
        value: ok_value,
        wrap: Ok,
    };
}

impl<T> Rule<T, T> {
    /// Every value is cached.
    pub(crate) const VALUE: Self = Rule {
        value: the_value,
        wrap: same,
    };
}
