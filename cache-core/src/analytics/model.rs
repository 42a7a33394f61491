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
//! `stale(T)` grows with `r` towards `1 − (1 − e^(−x)) / x` with `x = λT`: a bound that holds for
//! every key of the family, whatever its read rate. The recommended TTL keeps that bound at the
//! target, so hot keys (which carry most reads, and most stale reads) stay within it; colder keys
//! are staler less often.
//!
//! # The evidence rule
//! A TTL is recommended only after [`AnalyticsConfig::min_observations`](crate::config::AnalyticsConfig::min_observations)
//! reloads, and from the upper end of the change rate's 95 % likelihood interval (where
//! `log L` falls 1.92 below its maximum), not from the point estimate: with few observations,
//! or none that changed, the interval is wide and the TTL stays short; it lengthens only as
//! evidence that values do not change piles up, and shortens as soon as changes are seen.

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

    /// `log L(λ)`, each changed bucket at its mean interval.
    fn log_likelihood(&self, rate: f64) -> f64 {
        self.buckets
            .iter()
            .map(|b| {
                let mut ll = -rate * b.unchanged_secs;
                if b.changed > 0.0 {
                    let d = b.changed_secs / b.changed;
                    ll += b.changed * (-(-rate * d).exp_m1()).max(f64::MIN_POSITIVE).ln();
                }
                ll
            })
            .sum()
    }

    /// `d log L / dλ`: decreasing in λ.
    fn slope(&self, rate: f64) -> f64 {
        self.buckets
            .iter()
            .map(|b| {
                let mut s = -b.unchanged_secs;
                if b.changed > 0.0 {
                    let d = b.changed_secs / b.changed;
                    // d·e^(−λd) / (1 − e^(−λd)) = d / (e^(λd) − 1)
                    s += b.changed * d / (rate * d).exp_m1().max(f64::MIN_POSITIVE);
                }
                s
            })
            .sum()
    }

    /// The rate and its upper bound; `None` before any observation.
    pub(crate) fn estimate(&self) -> Option<RateEstimate> {
        let observations = self.observations();
        if observations <= 0.0 {
            return None;
        }
        let changed: f64 = self.buckets.iter().map(|b| b.changed).sum();
        let unchanged_secs: f64 = self.buckets.iter().map(|b| b.unchanged_secs).sum();
        let rate = if changed <= 0.0 {
            0.0
        } else if unchanged_secs <= 0.0 {
            // Every interval changed: the likelihood grows without bound.
            RATE_MAX
        } else {
            bisect_log(RATE_MIN, RATE_MAX, |r| self.slope(r) > 0.0)
        };
        let peak = self.log_likelihood(rate.max(RATE_MIN));
        let upper = if rate >= RATE_MAX {
            RATE_MAX
        } else {
            bisect_log(rate.max(RATE_MIN), RATE_MAX, |r| {
                peak - self.log_likelihood(r) < INTERVAL_DROP
            })
        };
        Some(RateEstimate {
            rate,
            upper,
            observations,
            changed,
        })
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
    for _ in 0..64 {
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

/// The TTL in seconds that keeps every key's stale fraction at `max_stale`, for change rate
/// `rate` per second (`f64::INFINITY` when nothing changes).
pub(crate) fn ttl_for_stale(rate: f64, max_stale: f64) -> f64 {
    if rate <= 0.0 {
        return f64::INFINITY;
    }
    let max_stale = max_stale.clamp(1e-9, 0.999);
    // stale_bound is increasing in x: the largest x within the target.
    let x = bisect_log(1e-9, 1e6, |x| stale_bound(x) <= max_stale);
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
        let t = ttl_for_stale(rate, 0.01);
        assert!((stale_fraction(f64::INFINITY, rate, t) - 0.01).abs() < 1e-6);
        // Small x: stale ≈ x/2, so T ≈ 2·0.01/λ = 12 s.
        assert!((t - 12.0).abs() < 0.2, "{t}");
        // Colder keys are staler less often under the same TTL.
        assert!(stale_fraction(0.01, rate, t) < 0.01);
        assert_eq!(ttl_for_stale(0.0, 0.01), f64::INFINITY);
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
