//! The change model behind learned TTLs: how often a family's values really change, from
//! interval-censored observations, and what a TTL costs in stale reads and gains in hits.
//!
//! # What is observed
//! A reload of a key whose previous load we remember tells one thing: whether the value changed
//! at least once in the `d` seconds between the two loads (the digests differ), not when or how
//! often. Counting changes per second of observed time (`changed / Σd`) under-estimates the rate
//! as soon as `d` is long enough for two changes, which is exactly when a TTL is too long; so
//! the rate is the maximum-likelihood estimate of a Poisson process under interval censoring:
//! an interval of length `d` shows a change with probability `1 − e^(−λd)`, and
//!
//! ```text
//! log L(λ) = Σ_changed ln(1 − e^(−λ d_i)) − λ Σ_unchanged d_j
//! ```
//!
//! is concave in λ, so its maximum is found by bisection on the sign of its derivative.
//! Observations are kept in log₂-spaced interval buckets (each with its count and the sum of its
//! intervals), so memory is fixed whatever the traffic, and they decay with a half-life so the
//! estimate follows a family whose behaviour changes.
//!
//! # What a TTL costs
//! With changes at rate λ, a value served `a` seconds after its load is stale with probability
//! `1 − e^(−λa)`. A key read at rate `r` spends each cycle as one miss followed by `rT` hits
//! spread evenly over `[0, T)`, so
//!
//! ```text
//! hit(T)   = rT / (1 + rT)
//! stale(T) = r (T − (1 − e^(−λT)) / λ) / (1 + rT)      (of all reads, misses included)
//! ```
//!
//! so `stale(T) = g(λT) · hit(T)` with `g(x) = 1 − (1 − e^(−x)) / x`, exactly. Over a family
//! whose keys are read at different rates, the fraction of its reads that are stale is therefore
//! `g(λT) · H(T)`, `H` being its read-weighted hit rate: hot keys carry most reads and almost all
//! stale reads, cold keys (mostly misses) few. [`ReadRates`] estimates `H` from each tracked key's
//! read rate, and the recommended TTL is the longest with `g(λT) · H(T)` at the target. Where no
//! read rate is known yet, `H = 1`: the bound that holds for every key, however hot.
//!
//! # The evidence rule
//! Nothing moves before [`AnalyticsConfig::min_observations`](crate::config::AnalyticsConfig::min_observations)
//! reloads. Then the change rate's 95 % likelihood interval `[λ_low, λ_up]` (where `log L` falls
//! 1.92 below its maximum) gives a range of TTLs the evidence cannot tell apart,
//! `[T(λ_up), T(λ_low)]`. A TTL inside it stays; one outside it moves to `T(λ_up)`, the end
//! that keeps the target even if the rate is as high as the evidence allows. So a TTL lengthens
//! only once enough unchanged time is seen (with no change in `E` seconds, `T(λ_up) ≈ E / 95`
//! at 1 %), shortens only once changes show it too long, and settles just inside the target as
//! evidence piles up.

/// Interval buckets: log₂ of the interval in milliseconds, 1 ms to ~12 days.
const BUCKETS: usize = 40;

/// `log L` drop that bounds the 95 % likelihood interval (χ²₁ quantile / 2).
const INTERVAL_DROP: f64 = 1.92;

/// Rates searched, per second: one change in ~30 years to a thousand a second.
const RATE_MIN: f64 = 1e-9;
const RATE_MAX: f64 = 1e3;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    changed: f64,
    changed_secs: f64,
    unchanged: f64,
    unchanged_secs: f64,
}

/// Interval-censored change observations of one family (decayed counts).
#[derive(Debug, Clone)]
pub(crate) struct ChangeModel {
    buckets: [Bucket; BUCKETS],
}

impl Default for ChangeModel {
    fn default() -> Self {
        ChangeModel {
            buckets: [Bucket::default(); BUCKETS],
        }
    }
}

/// What the model says about a family's change rate, per second.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RateEstimate {
    /// Maximum-likelihood rate.
    pub(crate) rate: f64,
    /// Lower end of its 95 % likelihood interval.
    pub(crate) lower: f64,
    /// Upper end of its 95 % likelihood interval.
    pub(crate) upper: f64,
    /// Observations behind them (decayed).
    pub(crate) observations: f64,
    /// Of which changed (decayed).
    pub(crate) changed: f64,
}

impl ChangeModel {
    /// One reload `secs` after the previous load, which found the value `changed` or not.
    pub(crate) fn observe(&mut self, secs: f64, changed: bool) {
        if !secs.is_finite() || secs <= 0.0 {
            return;
        }
        let ms = (secs * 1e3).max(1.0);
        let i = (ms.log2().floor() as usize).min(BUCKETS - 1);
        let b = &mut self.buckets[i];
        if changed {
            b.changed += 1.0;
            b.changed_secs += secs;
        } else {
            b.unchanged += 1.0;
            b.unchanged_secs += secs;
        }
    }

    /// Multiplies every count by `factor` (the half-life decay).
    pub(crate) fn decay(&mut self, factor: f64) {
        for b in &mut self.buckets {
            b.changed *= factor;
            b.changed_secs *= factor;
            b.unchanged *= factor;
            b.unchanged_secs *= factor;
        }
    }

    /// Observations so far (decayed).
    pub(crate) fn observations(&self) -> f64 {
        self.buckets.iter().map(|b| b.changed + b.unchanged).sum()
    }

    /// The rate and its upper bound; `None` before any observation.
    pub(crate) fn estimate(&self) -> Option<RateEstimate> {
        let observations = self.observations();
        if observations <= 0.0 {
            return None;
        }
        let changed: f64 = self.buckets.iter().map(|b| b.changed).sum();
        let unchanged_secs: f64 = self.buckets.iter().map(|b| b.unchanged_secs).sum();
        let l = Likelihood {
            unchanged_secs,
            changed: self
                .buckets
                .iter()
                .filter(|b| b.changed > 0.0)
                .map(|b| (b.changed, b.changed_secs / b.changed))
                .collect(),
        };
        let rate = if changed <= 0.0 {
            0.0
        } else if unchanged_secs <= 0.0 {
            // Every interval changed: the likelihood grows without bound.
            RATE_MAX
        } else {
            bisect_log(RATE_MIN, RATE_MAX, |r| l.slope(r) > 0.0)
        };
        let peak = l.log_likelihood(rate.max(RATE_MIN));
        let upper = if rate >= RATE_MAX {
            RATE_MAX
        } else {
            bisect_log(rate.max(RATE_MIN), RATE_MAX, |r| {
                peak - l.log_likelihood(r) < INTERVAL_DROP
            })
        };
        let lower = if rate <= RATE_MIN {
            0.0
        } else {
            // The largest rate below the estimate where log L has fallen by the interval's drop.
            let within = |r: f64| peak - l.log_likelihood(r) < INTERVAL_DROP;
            if within(RATE_MIN) {
                0.0
            } else {
                bisect_log(RATE_MIN, rate, |r| !within(r))
            }
        };
        Some(RateEstimate {
            rate,
            lower,
            upper,
            observations,
            changed,
        })
    }
}

/// `log L` over the observations: the unchanged intervals' total, and each bucket of changed
/// ones as (count, mean interval); only the buckets that hold some, since it is evaluated
/// some 150 times per estimate.
struct Likelihood {
    unchanged_secs: f64,
    changed: Vec<(f64, f64)>,
}

impl Likelihood {
    fn log_likelihood(&self, rate: f64) -> f64 {
        let changed: f64 = self
            .changed
            .iter()
            .map(|&(n, d)| n * (-(-rate * d).exp_m1()).max(f64::MIN_POSITIVE).ln())
            .sum();
        changed - rate * self.unchanged_secs
    }

    /// `d log L / dλ`: decreasing in λ.
    fn slope(&self, rate: f64) -> f64 {
        // d·e^(−λd) / (1 − e^(−λd)) = d / (e^(λd) − 1)
        let changed: f64 = self
            .changed
            .iter()
            .map(|&(n, d)| n * d / (rate * d).exp_m1().max(f64::MIN_POSITIVE))
            .sum();
        changed - self.unchanged_secs
    }
}

/// The largest `x` in `[lo, hi]` (log scale) for which `below(x)` holds, `below` being true up
/// to a point and false after it.
fn bisect_log(lo: f64, hi: f64, below: impl Fn(f64) -> bool) -> f64 {
    if !below(lo) {
        return lo;
    }
    if below(hi) {
        return hi;
    }
    let (mut lo, mut hi) = (lo.ln(), hi.ln());
    // 48 halvings of a range of at most e^40: a relative precision of 1e-13.
    for _ in 0..48 {
        let mid = 0.5 * (lo + hi);
        if below(mid.exp()) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    lo.exp()
}

/// `1 − (1 − e^(−x)) / x`: the stale fraction of a key read without pause, `x = λT`.
fn stale_bound(x: f64) -> f64 {
    if x < 1e-6 {
        return x / 2.0;
    }
    1.0 + (-x).exp_m1() / x
}

/// Read-rate buckets of [`ReadRates`]: log₂ of reads per second, 2⁻³² to 2³¹.
const RATE_BUCKETS: usize = 64;
const RATE_BUCKET_BASE: i32 = -32;

/// The read rates of a family's keys, as a log₂ histogram weighted by rate (a key read twice as
/// often carries twice the reads): enough to compute the read-weighted hit rate `H(T)`.
#[derive(Debug, Clone)]
pub(crate) struct ReadRates {
    /// Per bucket: the sum of the rates in it (its reads per second) and how many keys.
    sum: [f64; RATE_BUCKETS],
    keys: [f64; RATE_BUCKETS],
}

impl Default for ReadRates {
    fn default() -> Self {
        ReadRates {
            sum: [0.0; RATE_BUCKETS],
            keys: [0.0; RATE_BUCKETS],
        }
    }
}

impl ReadRates {
    /// One key read at `rate` per second.
    pub(crate) fn add(&mut self, rate: f64) {
        if !rate.is_finite() || rate <= 0.0 {
            return;
        }
        let i = (rate.log2().floor() as i32 - RATE_BUCKET_BASE).clamp(0, RATE_BUCKETS as i32 - 1) as usize;
        self.sum[i] += rate;
        self.keys[i] += 1.0;
    }

    /// Keys counted.
    pub(crate) fn keys(&self) -> f64 {
        self.keys.iter().sum()
    }

    /// Mean read rate of the keys counted, per second.
    pub(crate) fn mean(&self) -> Option<f64> {
        let n = self.keys();
        (n > 0.0).then(|| self.sum.iter().sum::<f64>() / n)
    }

    /// The read-weighted hit rate under TTL `ttl` seconds; 1 (the bound) when nothing is known.
    pub(crate) fn hit_rate(&self, ttl: f64) -> f64 {
        self.weighted().hit_rate(ttl)
    }

    /// The buckets that hold keys, as (reads per second, mean rate).
    fn weighted(&self) -> Weighted {
        Weighted(
            (0..RATE_BUCKETS)
                .filter(|&i| self.keys[i] > 0.0)
                .map(|i| (self.sum[i], self.sum[i] / self.keys[i]))
                .collect(),
        )
    }
}

/// [`ReadRates`]' non-empty buckets, for evaluating `H(T)` many times.
struct Weighted(Vec<(f64, f64)>);

impl Weighted {
    fn hit_rate(&self, ttl: f64) -> f64 {
        let total: f64 = self.0.iter().map(|(w, _)| w).sum();
        if total <= 0.0 {
            return 1.0;
        }
        self.0.iter().map(|&(w, r)| w * hit_rate(r, ttl)).sum::<f64>() / total
    }
}

/// The TTL in seconds that keeps the family's stale fraction at `max_stale`, for change rate
/// `rate` per second and the family's read rates (`f64::INFINITY` when nothing changes).
pub(crate) fn ttl_for_stale(rate: f64, max_stale: f64, reads: &ReadRates) -> f64 {
    if rate <= 0.0 {
        return f64::INFINITY;
    }
    let max_stale = max_stale.clamp(1e-9, 0.999);
    let reads = reads.weighted();
    // g(λT) · H(T) grows with T: the longest T within the target.
    let x = bisect_log(1e-9, 1e6, |x| {
        stale_bound(x) * reads.hit_rate(x / rate) <= max_stale
    });
    x / rate
}

/// Hit rate of a key read at `read_rate` per second under TTL `ttl` seconds.
pub(crate) fn hit_rate(read_rate: f64, ttl: f64) -> f64 {
    let n = read_rate * ttl;
    if !n.is_finite() {
        return 1.0;
    }
    n / (1.0 + n)
}

/// Stale fraction of all reads of a key read at `read_rate` (per second; infinite for the
/// bound), with changes at `rate`, under TTL `ttl` seconds.
pub(crate) fn stale_fraction(read_rate: f64, rate: f64, ttl: f64) -> f64 {
    if rate <= 0.0 || ttl <= 0.0 {
        return 0.0;
    }
    if !read_rate.is_finite() {
        return stale_bound(rate * ttl);
    }
    let n = read_rate * ttl;
    // r (T − (1 − e^(−λT)) / λ) = n · stale_bound(λT)
    n * stale_bound(rate * ttl) / (1.0 + n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Draws intervals and Poisson changes with a known rate.
    fn simulate(rate: f64, interval: f64, n: usize, seed: u64) -> ChangeModel {
        let mut rng = fastrand::Rng::with_seed(seed);
        let mut m = ChangeModel::default();
        for _ in 0..n {
            let d = interval * (0.5 + rng.f64());
            let changed = rng.f64() < 1.0 - (-rate * d).exp();
            m.observe(d, changed);
        }
        m
    }

    #[test]
    fn the_estimate_recovers_a_known_rate_even_when_intervals_hold_several_changes() {
        // One change a minute, observed over ~2 minute intervals: the naive count
        // (changed / seconds observed) would say about 0.43 per minute.
        let m = simulate(1.0 / 60.0, 120.0, 20_000, 7);
        let e = m.estimate().unwrap();
        assert!(
            (e.rate * 60.0 - 1.0).abs() < 0.05,
            "rate {} per minute",
            e.rate * 60.0
        );
        assert!(e.upper > e.rate && e.upper < e.rate * 1.1, "{e:?}");
        assert!(e.lower < e.rate && e.lower > e.rate * 0.9, "{e:?}");
    }

    #[test]
    fn the_upper_bound_narrows_with_evidence() {
        let few = simulate(1.0 / 600.0, 10.0, 30, 1).estimate().unwrap();
        let many = simulate(1.0 / 600.0, 10.0, 30_000, 1).estimate().unwrap();
        assert!(few.upper / (1.0 / 600.0) > 3.0, "{few:?}");
        assert!(many.upper / (1.0 / 600.0) < 1.3, "{many:?}");
    }

    #[test]
    fn no_change_seen_gives_a_finite_bound_from_the_time_observed() {
        let mut m = ChangeModel::default();
        for _ in 0..100 {
            m.observe(10.0, false);
        }
        let e = m.estimate().unwrap();
        assert_eq!(e.rate, 0.0);
        assert_eq!(e.lower, 0.0);
        assert!((e.upper - INTERVAL_DROP / 1000.0).abs() < 1e-6, "{e:?}");
    }

    #[test]
    fn every_interval_changed_is_the_highest_rate() {
        let mut m = ChangeModel::default();
        m.observe(5.0, true);
        assert_eq!(m.estimate().unwrap().rate, RATE_MAX);
        assert!(ChangeModel::default().estimate().is_none());
    }

    #[test]
    fn the_ttl_for_a_stale_target_meets_it_and_no_more() {
        let rate = 1.0 / 600.0;
        let unknown = ReadRates::default();
        let t = ttl_for_stale(rate, 0.01, &unknown);
        assert!((stale_fraction(f64::INFINITY, rate, t) - 0.01).abs() < 1e-6);
        // Small x: stale ≈ x/2, so T ≈ 2·0.01/λ = 12 s.
        assert!((t - 12.0).abs() < 0.2, "{t}");
        // Colder keys are staler less often under the same TTL.
        assert!(stale_fraction(0.01, rate, t) < 0.01);
        assert_eq!(ttl_for_stale(0.0, 0.01, &unknown), f64::INFINITY);
    }

    #[test]
    fn cold_keys_allow_a_longer_ttl_for_the_same_stale_fraction() {
        let rate = 1.0 / 600.0;
        // Zipf(1) over 500 keys, 25 reads per second in all.
        let h: f64 = (1..=500).map(|k| 1.0 / k as f64).sum();
        let mut reads = ReadRates::default();
        let rates: Vec<f64> = (1..=500).map(|k| 25.0 / (h * k as f64)).collect();
        rates.iter().for_each(|&r| reads.add(r));
        let t = ttl_for_stale(rate, 0.01, &reads);
        assert!(t > 12.5, "{t}");
        // The read-weighted stale fraction at that TTL, key by key, is the target.
        let total: f64 = rates.iter().sum();
        let stale: f64 = rates.iter().map(|&r| r * stale_fraction(r, rate, t)).sum::<f64>() / total;
        assert!((stale - 0.01).abs() < 0.001, "{stale} at {t} s");
        assert!((reads.mean().unwrap() - total / 500.0).abs() < 1e-9);
    }

    #[test]
    fn decay_keeps_the_rate_and_loses_evidence() {
        let mut m = simulate(1.0 / 60.0, 30.0, 5_000, 3);
        let before = m.estimate().unwrap();
        m.decay(0.1);
        let after = m.estimate().unwrap();
        assert!((after.rate - before.rate).abs() < 1e-9);
        assert!(after.upper > before.upper);
        assert!((after.observations - before.observations * 0.1).abs() < 1e-6);
    }

    #[test]
    fn hostile_intervals_are_ignored() {
        let mut m = ChangeModel::default();
        m.observe(f64::NAN, true);
        m.observe(-1.0, true);
        m.observe(f64::INFINITY, false);
        assert!(m.estimate().is_none());
        m.observe(1e12, false);
        assert!(m.estimate().is_some());
    }

    #[test]
    fn hit_rate_follows_reads_per_ttl() {
        assert!((hit_rate(1.0, 9.0) - 0.9).abs() < 1e-12);
        assert_eq!(hit_rate(0.0, 10.0), 0.0);
    }
}
