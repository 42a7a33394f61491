//! Learned TTLs: per family (a cached function's keys, or a direct key's prefix), how often the
//! values really change, and the TTL that keeps stale reads at a target ([`model`] has the
//! mathematics and the evidence rule).
//!
//! Everything here runs on the miss path, never on an L1 hit: a load's store hands its value's
//! digest over ([`Analytics::observe_load`]), and a family remembers, for up to
//! [`tracked_keys`](crate::config::AnalyticsConfig::tracked_keys) of its keys, the last digest and
//! when it was loaded. The next load of such a key is one observation: the value changed in
//! those seconds or not. A reload after an invalidation of the key (a delete or a direct write,
//! here or told by another instance, marks the key) or after any pattern, tag or clear
//! invalidation (which may have reached it: an epoch every tracked key is checked against) is
//! not an observation: the application said the value changed, and such changes cost no stale
//! reads. The time from an entry's expiry to its reload
//! is, for a key read at random, an exponential wait whose mean is one over the key's read rate:
//! that gives each tracked key's read rate, and so the family's read-weighted hit rate, without
//! counting a single hit. Only without a remote tier, though: with one, the other instances'
//! fills serve this one from Redis between its own loads, so its reloads are further apart than
//! its reads suggest (a wait spans the others' cycles, and the TTL would come out about N times
//! too long with N instances); there the bound `H = 1`, which holds for any read rate, is used.

mod digest;
pub(crate) mod model;

pub(crate) use self::digest::digest;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

use self::model::{ChangeModel, RateEstimate, ReadRates};
use crate::clock::{self, Instant};
use crate::config::{AnalyticsConfig, AutoTtl, CacheConfig};
use crate::error::Result;
use crate::key::Fingerprint;
use crate::l1::FingerprintHash;
use crate::pattern::Pattern;

/// Where the keys of families past `max_families` are counted (no TTL is learned for them).
const OTHER: &str = "(other)";

/// The family of keys without a `:` (each would otherwise be a family of its own).
const FLAT: &str = "(flat)";

/// Observations between two recomputations of a family's TTL (and at least this often in time):
/// one costs some 300 evaluations of the likelihood and of `H(T)`, and a walk over the tracked
/// keys.
const RECOMPUTE_EVERY: u32 = 64;
const RECOMPUTE_AFTER: Duration = Duration::from_secs(10);

/// A learned TTL moves only when it differs from the one in use by more than this fraction.
const HYSTERESIS: f64 = 0.05;

/// The stale fraction aimed at, as a share of the target: the model's figures are estimates
/// (bucketed read rates, each bucket of intervals at its mean), and a TTL chosen exactly at the
/// target lands on either side of it. In the simulator (`tests/ttl_simulator.rs`) a family whose
/// rate was pinned down to a few percent landed 1.6 % over its target without this margin.
const AIM: f64 = 0.95;

/// Waits kept per key: past this the older half is dropped, so a key's rate follows it.
const GAPS_KEPT: u32 = 32;

/// The family of a key: for a generated key (`{prefix}:{module}::{fn}:{args}`) everything up to
/// the function's name, so each function is one family; otherwise the text before the first
/// `:` (`user:42` → `user`).
///
/// ```
/// use cache_core::analytics::family_of;
/// assert_eq!(family_of("query:app::users::get_user:42:alice"), "query:app::users::get_user");
/// assert_eq!(family_of("app::get_user:7"), "app::get_user");
/// assert_eq!(family_of("user:42"), "user");
/// assert_eq!(family_of("flat"), "(flat)");
/// ```
pub fn family_of(key: &str) -> &str {
    // Argument parts never hold a `:` (they are escaped), so the last `::` is the function's path.
    if let Some(i) = key.rfind("::") {
        let name_start = i + 2;
        return match key[name_start..].find(':') {
            Some(j) => &key[..name_start + j],
            None => key,
        };
    }
    key.split_once(':').map_or(FLAT, |(p, _)| p)
}

/// What the cache has learned about one family, and what it advises: `GET
/// /api/v1/cache/ttl-advice`, [`Cache::ttl_advice`](crate::Cache::ttl_advice).
///
/// Rates are per hour for change, per second for reads; TTLs in seconds. Expected figures come
/// from the Poisson change model (module `analytics::model` of cache-core): the stale fraction is
/// of all reads of a key read at the estimated rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TtlAdvice {
    /// The function's key head (`query:app::get_user`) or the key prefix (`user`).
    pub family: String,
    /// Whether its TTL is learned (`ttl = "auto"` or a `ttl_auto` pattern).
    pub auto: bool,
    /// The stale-read target the recommendation is for (the family's own, else 1 %).
    pub max_stale: f64,
    /// Loads stored since the cache started.
    pub loads: u64,
    /// Reloads compared with what they replaced (decayed by the half-life).
    pub observations: f64,
    /// Of those, reloads whose value had changed (decayed).
    pub changed: f64,
    /// Reloads not compared because the key was invalidated in between.
    pub invalidated_reloads: u64,
    /// Direct writes (`set`) of the family's keys.
    pub writes: u64,
    /// Deletes of the family's keys (this instance's and other instances' notices).
    pub invalidations: u64,
    /// Estimated changes per hour of one value (maximum likelihood); `null` before any reload.
    pub change_rate_per_hour: Option<f64>,
    /// Upper end of its 95 % interval (what the recommendation uses).
    pub change_rate_upper_per_hour: Option<f64>,
    /// Mean reads per second of the family's keys that are read again (each from the waits
    /// between its entry's expiry and its reload); `null` before any.
    pub read_rate_per_key: Option<f64>,
    /// Keys behind that figure.
    pub keys_with_read_rate: u64,
    /// The TTL of the family's last stored load.
    pub current_ttl_secs: f64,
    /// The TTL that keeps stale reads at `max_stale` (within the bounds); `null` while the
    /// evidence is short of `min_observations`.
    pub recommended_ttl_secs: Option<f64>,
    /// Expected hit rate under the current TTL.
    pub expected_hit_rate_current: Option<f64>,
    /// Expected hit rate under the recommended TTL.
    pub expected_hit_rate_recommended: Option<f64>,
    /// Expected fraction of stale reads under the current TTL.
    pub expected_stale_current: Option<f64>,
    /// Expected fraction of stale reads under the recommended TTL.
    pub expected_stale_recommended: Option<f64>,
}

/// One remembered key: its last load.
#[derive(Clone, Copy)]
struct Tracked {
    digest: u64,
    at: Instant,
    ttl_secs: f64,
    /// [`Analytics::epoch`] when it was loaded.
    epoch: u64,
    /// Deleted or written directly since.
    invalidated: bool,
    /// Waits from expiry to reload: how many, and their sum in seconds.
    gaps: u32,
    gap_secs: f32,
}

impl Tracked {
    /// Reads per second, from the waits; `None` before one.
    fn read_rate(&self) -> Option<f64> {
        // A wait under the clock's resolution reads as 0: count it as 1 ms.
        (self.gaps > 0).then(|| f64::from(self.gaps) / f64::from(self.gap_secs).max(1e-3))
    }
}

struct FamilyState {
    model: ChangeModel,
    tracked: lru::LruCache<u128, Tracked, FingerprintHash>,
    loads: u64,
    invalidated_reloads: u64,
    writes: u64,
    invalidations: u64,
    last_ttl_secs: f64,
    auto: Option<AutoTtl>,
    last_recompute: Instant,
    since_recompute: u32,
}

struct Family {
    state: Mutex<FamilyState>,
    /// The TTL in use under `auto`, in ms; 0 until the evidence rule lets it move.
    learned_ms: AtomicU64,
}

/// The learned-TTL state of one cache.
pub(crate) struct Analytics {
    config: AnalyticsConfig,
    /// Bumped by every pattern, tag and clear invalidation.
    epoch: AtomicU64,
    /// Whether per-key read rates are used (no remote tier; see the module docs).
    read_rates: bool,
    auto_rules: Vec<(Pattern, AutoTtl)>,
    families: RwLock<HashMap<Box<str>, Arc<Family>>>,
}

impl Analytics {
    pub(crate) fn new(config: &CacheConfig) -> Result<Self> {
        let mut auto_rules = config
            .ttl_auto
            .iter()
            .map(|(p, a)| Ok((Pattern::new(p)?, *a)))
            .collect::<Result<Vec<_>>>()?;
        auto_rules.sort_by_key(|(p, _)| std::cmp::Reverse(p.specificity()));
        Ok(Analytics {
            config: config.analytics.clone(),
            epoch: AtomicU64::new(0),
            read_rates: !config.has_redis(),
            auto_rules,
            families: RwLock::new(HashMap::new()),
        })
    }

    /// The learned-TTL settings of `key`: the call's own (`ttl = "auto"`), else the most specific
    /// `ttl_auto` pattern's.
    pub(crate) fn auto_for(&self, key: &str, call: Option<AutoTtl>) -> Option<AutoTtl> {
        call.or_else(|| {
            self.auto_rules
                .iter()
                .find(|(p, _)| p.matches(key))
                .map(|(_, a)| *a)
        })
        // A write that names none (a warmer's refresh of a `ttl = "auto"` function) keeps the
        // family's own.
        .or_else(|| self.family(key, false).and_then(|f| f.state.lock().auto))
    }

    /// The TTL of a write under `auto`: the learned one once there is one, else `start` (the
    /// pattern table's), within the bounds.
    pub(crate) fn ttl(&self, key: &str, start: Duration, auto: &AutoTtl) -> Duration {
        let learned = self
            .family(key, false)
            .map_or(0, |f| f.learned_ms.load(Ordering::Relaxed));
        let ttl = if learned == 0 {
            start
        } else {
            Duration::from_millis(learned)
        };
        // `min <= max` is checked where settings are read; this keeps clamp from panicking.
        ttl.clamp(auto.min.min(auto.max), auto.max)
    }

    /// A pattern, tag or clear invalidation: no tracked key's next reload is compared.
    pub(crate) fn broad_invalidation(&self) {
        self.epoch.fetch_add(1, Ordering::Relaxed);
    }

    /// The family of `key`, created when `create` (past the cap, the shared `(other)` one).
    fn family(&self, key: &str, create: bool) -> Option<Arc<Family>> {
        let name = family_of(key);
        {
            let families = self.families.read();
            if let Some(f) = families.get(name) {
                return Some(f.clone());
            }
            if !create {
                // Not `(other)`'s: what it learned mixes unrelated families.
                return None;
            }
        }
        let mut families = self.families.write();
        let name = if families.len() >= self.config.max_families && !families.contains_key(name) {
            OTHER
        } else {
            name
        };
        let now = clock::now();
        Some(
            families
                .entry(name.into())
                .or_insert_with(|| {
                    Arc::new(Family {
                        state: Mutex::new(FamilyState {
                            model: ChangeModel::default(),
                            // Unbounded, capped by hand: a bounded one allocates its whole
                            // table up front (~140 KB per family at 4096 keys).
                            tracked: lru::LruCache::unbounded_with_hasher(FingerprintHash),
                            loads: 0,
                            invalidated_reloads: 0,
                            writes: 0,
                            invalidations: 0,
                            last_ttl_secs: 0.0,
                            auto: None,
                            last_recompute: now,
                            since_recompute: 0,
                        }),
                        learned_ms: AtomicU64::new(0),
                    })
                })
                .clone(),
        )
    }

    /// A load of `key` was stored with `ttl`; `digest` is its value's. An invalidation of the
    /// key since its previous load makes this reload no observation.
    pub(crate) fn observe_load(
        &self,
        key: &str,
        fp: Fingerprint,
        digest: u64,
        ttl: Duration,
        auto: Option<AutoTtl>,
        now: Instant,
    ) {
        if !self.config.enabled {
            return;
        }
        let Some(family) = self.family(key, true) else {
            return;
        };
        let ttl_secs = ttl.as_secs_f64();
        let mut st = family.state.lock();
        st.loads += 1;
        st.last_ttl_secs = ttl_secs;
        if auto.is_some() {
            st.auto = auto;
        }
        let epoch = self.epoch.load(Ordering::Relaxed);
        let mut next = Tracked {
            digest,
            at: now,
            ttl_secs,
            epoch,
            invalidated: false,
            gaps: 0,
            gap_secs: 0.0,
        };
        // The previous load, when this reload can be compared with it.
        let prev = st.tracked.peek(&fp.0).copied();
        let comparable = prev
            .filter(|p| !p.invalidated && p.epoch == epoch)
            .map(|p| (p, now.saturating_duration_since(p.at).as_secs_f64()));
        if let Some((prev, secs)) = comparable {
            // Reloaded after its expiry (not evicted early): the wait was for its next read.
            let gap = secs - prev.ttl_secs;
            (next.gaps, next.gap_secs) = (prev.gaps, prev.gap_secs);
            if gap >= 0.0 {
                next.gaps += 1;
                next.gap_secs += gap as f32;
                if next.gaps > GAPS_KEPT {
                    next.gaps /= 2;
                    next.gap_secs /= 2.0;
                }
            }
        }
        st.tracked.put(fp.0, next);
        if st.tracked.len() > self.config.tracked_keys {
            st.tracked.pop_lru();
        }
        let Some((prev, secs)) = comparable else {
            st.invalidated_reloads += u64::from(prev.is_some());
            return;
        };
        st.model.observe(secs, digest != prev.digest);
        st.since_recompute += 1;
        if st.since_recompute >= RECOMPUTE_EVERY
            || now.saturating_duration_since(st.last_recompute) >= RECOMPUTE_AFTER
        {
            self.recompute(&family, &mut st, now);
        }
    }

    /// Decays the evidence by the observations since the last time and moves the learned TTL
    /// when the rule allows.
    fn recompute(&self, family: &Family, st: &mut FamilyState, now: Instant) {
        // By observations, not time: a family reloaded once an hour still gathers evidence.
        let half_life = f64::from(self.config.half_life_observations);
        st.model
            .decay(0.5f64.powf(f64::from(st.since_recompute) / half_life));
        st.since_recompute = 0;
        st.last_recompute = now;
        let auto = st.auto.unwrap_or_default();
        let reads = self.read_rates(st);
        let Some(secs) = self.recommend(&st.model.estimate(), &reads, &auto, st.last_ttl_secs) else {
            return;
        };
        let current = family.learned_ms.load(Ordering::Relaxed) as f64 / 1e3;
        if current == 0.0 || (secs - current).abs() > HYSTERESIS * current {
            let ms = (secs * 1e3).round().max(1.0) as u64;
            family.learned_ms.store(ms, Ordering::Relaxed);
            if st.auto.is_some() {
                tracing::debug!(ttl_secs = secs, previous_secs = current, "learned TTL moved");
            }
        }
    }

    /// The TTL the evidence supports for a family now at `current` seconds, within the bounds
    /// (the evidence rule of [`model`]); `None` until there is enough.
    fn recommend(
        &self,
        est: &Option<RateEstimate>,
        reads: &ReadRates,
        auto: &AutoTtl,
        current: f64,
    ) -> Option<f64> {
        let est = est.as_ref()?;
        if est.observations < f64::from(self.config.min_observations) {
            return None;
        }
        let max = auto.max.as_secs_f64();
        let min = auto.min.as_secs_f64().min(max);
        let aim = auto.max_stale * AIM;
        let safe = model::ttl_for_stale(est.upper, aim, reads).clamp(min, max);
        let longest = model::ttl_for_stale(est.lower, aim, reads).clamp(min, max);
        // Inside the range the evidence cannot tell apart, the TTL in use stays.
        Some(if (safe..=longest).contains(&current) {
            current
        } else {
            safe
        })
    }

    /// A direct write of `key`.
    pub(crate) fn wrote(&self, key: &str) {
        self.mark(key, |st| st.writes += 1);
    }

    /// A delete of `key` (here or told by another instance).
    pub(crate) fn invalidated(&self, key: &str) {
        self.mark(key, |st| st.invalidations += 1);
    }

    /// Counts an invalidation of `key` and marks the key: its next reload is not compared.
    fn mark(&self, key: &str, count: impl FnOnce(&mut FamilyState)) {
        let Some(f) = self.config.enabled.then(|| self.family(key, false)).flatten() else {
            return;
        };
        let mut st = f.state.lock();
        count(&mut st);
        if let Some(t) = st.tracked.peek_mut(&Fingerprint::of(key).0) {
            t.invalidated = true;
        }
    }

    /// The read rates of a family's tracked keys; none (so `H = 1`) with a remote tier.
    fn read_rates(&self, st: &FamilyState) -> ReadRates {
        let mut reads = ReadRates::default();
        if self.read_rates {
            st.tracked
                .iter()
                .filter_map(|(_, t)| t.read_rate())
                .for_each(|r| reads.add(r));
        }
        reads
    }

    /// The advice for every family, most loaded first.
    pub(crate) fn advice(&self) -> Vec<TtlAdvice> {
        let families: Vec<(String, Arc<Family>)> = self
            .families
            .read()
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let mut out: Vec<TtlAdvice> = families
            .into_iter()
            .map(|(name, f)| {
                let st = f.state.lock();
                let auto = st.auto.unwrap_or_default();
                let est = st.model.estimate();
                let reads = self.read_rates(&st);
                let recommended = self.recommend(&est, &reads, &auto, st.last_ttl_secs);
                let read_rate = reads.mean();
                let current = st.last_ttl_secs;
                // Stale = g(λT) · H(T) (module `model`), at the point estimate of λ.
                let expect = |ttl: f64| -> (Option<f64>, Option<f64>) {
                    let hit = reads.hit_rate(ttl);
                    let stale = est.map(|e| model::stale_fraction(f64::INFINITY, e.rate, ttl) * hit);
                    (read_rate.map(|_| hit), stale)
                };
                let (hit_cur, stale_cur) = expect(current);
                let (hit_rec, stale_rec) = recommended.map_or((None, None), expect);
                TtlAdvice {
                    family: name,
                    auto: st.auto.is_some(),
                    max_stale: auto.max_stale,
                    loads: st.loads,
                    observations: est.map_or(0.0, |e| e.observations),
                    changed: est.map_or(0.0, |e| e.changed),
                    invalidated_reloads: st.invalidated_reloads,
                    writes: st.writes,
                    invalidations: st.invalidations,
                    change_rate_per_hour: est.map(|e| e.rate * 3600.0),
                    change_rate_upper_per_hour: est.map(|e| e.upper * 3600.0),
                    read_rate_per_key: read_rate,
                    keys_with_read_rate: reads.keys() as u64,
                    current_ttl_secs: current,
                    recommended_ttl_secs: recommended,
                    expected_hit_rate_current: hit_cur,
                    expected_hit_rate_recommended: hit_rec,
                    expected_stale_current: stale_cur,
                    expected_stale_recommended: stale_rec,
                }
            })
            .collect();
        out.sort_by(|a, b| b.loads.cmp(&a.loads).then_with(|| a.family.cmp(&b.family)));
        out
    }
}

#[cfg(test)]
mod tests;
