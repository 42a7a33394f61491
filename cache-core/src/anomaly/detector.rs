//! One streaming detector: one figure per window against its own robust baseline.
//!
//! Why this shape:
//! - **Baseline: an EWMA** whose half-life (`baseline_half_life`, 10 min) is short against a
//!   day, so a daily cycle is followed (a 5x day/night swing leaves the baseline a few percent
//!   behind), and long against an incident, so a storm is not learnt before it is raised.
//! - **Scale: the EWMA of the absolute deviation** (× 1.25, the normal distribution's ratio of
//!   standard deviation to mean absolute deviation) rather than of the squared deviation: one
//!   outlier moves it linearly, not quadratically.
//! - **Huber-clipped updates**: a value is clipped to the trip distance before it updates the
//!   baseline, so a lone spike moves it by a bounded step; while an event is open the baseline
//!   learns ten times slower, so a storm that lasts is raised and kept open, yet a lasting new
//!   normal (a bigger fleet) is accepted in the end (about ten half-lives) instead of alarming
//!   for ever.
//! - **Noise floor**: the scale is never below the counting noise expected at the window's
//!   volume (Poisson for counts, binomial for rates), which the caller supplies: at night, 3
//!   misses instead of 1 is not a storm, however quiet the baseline was.
//! - **Warm-up**: for the first `warmup_windows` the baseline is a running mean that forgets
//!   fast (weight 2 / (windows + 1)), so a cold start's all-miss windows do not linger as the
//!   baseline for a half-life, and nothing is raised.
//! - **Three guards before a trip**: `z` robust deviations, and `min_change` in absolute
//!   terms, and `min_ratio` × the baseline for figures that grow. Persistence (`persistence`
//!   windows in a row) before an event, hysteresis (`recovery` windows in a row under half the
//!   trip distance) before it ends: one window's noise neither raises nor ends anything, except that
//!   a window twice past the trip distance raises at once.

use crate::config::Sensitivity;

/// Which way is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// The figure rises (misses, latency, errors, evictions, new keys, breaker transitions).
    Up,
    /// The figure falls (hit rate).
    Down,
}

/// What tripped a detector: the figures of the window that started the event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Trip {
    pub value: f64,
    pub baseline: f64,
    /// The value the figure had to pass.
    pub threshold: f64,
    /// Robust deviations past the baseline.
    pub score: f64,
}

/// What one window did to a detector.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Verdict {
    /// Nothing open, nothing raised.
    Quiet,
    /// An event starts.
    Start(Trip),
    /// The open event goes on; the window's figures.
    Ongoing(Trip),
    /// The open event ends.
    End,
}

/// The EWMA weight of one window for a half-life of `half_life_windows` windows.
pub(crate) fn alpha(half_life_windows: f64) -> f64 {
    1.0 - 0.5f64.powf(1.0 / half_life_windows.max(1.0))
}

/// One detector's state.
#[derive(Debug, Clone)]
pub(crate) struct Detector {
    settings: Sensitivity,
    direction: Direction,
    alpha: f64,
    warmup: u32,
    mean: f64,
    /// EWMA of the absolute deviation from `mean`.
    dev: f64,
    /// Windows observed.
    seen: u32,
    /// Windows in a row past the threshold.
    over: u32,
    /// Windows in a row back to normal while open.
    calm: u32,
    open: bool,
    /// The closest the judged windows came to starting an event without one open (1 starts
    /// one): the smallest ratio of distance past the baseline to trip distance over the last
    /// `persistence` windows, or half the last window's (twice the distance starts at once).
    /// How much margin normal traffic leaves.
    nearest: f64,
    /// The last `persistence` windows' ratios.
    recent: std::collections::VecDeque<f64>,
}

impl Detector {
    pub(crate) fn new(settings: Sensitivity, direction: Direction, alpha: f64, warmup: u32) -> Self {
        Detector {
            settings,
            direction,
            alpha,
            warmup,
            mean: 0.0,
            dev: 0.0,
            seen: 0,
            over: 0,
            calm: 0,
            open: false,
            nearest: 0.0,
            recent: std::collections::VecDeque::new(),
        }
    }

    /// See the field: 0 before any judged window.
    pub(crate) fn nearest(&self) -> f64 {
        self.nearest
    }

    /// Whether an event is open.
    #[cfg(test)]
    pub(crate) fn is_open(&self) -> bool {
        self.open
    }

    /// The baseline now.
    #[cfg(test)]
    pub(crate) fn baseline(&self) -> f64 {
        self.mean
    }

    /// Feeds one window's `value`; `noise(baseline)` is the standard deviation counting alone
    /// gives the figure at the baseline and this window's volume (0 when none applies).
    pub(crate) fn observe(&mut self, value: f64, noise: impl Fn(f64) -> f64) -> Verdict {
        let noise = noise(self.mean);
        if !value.is_finite() {
            return if self.open {
                Verdict::Ongoing(self.trip(self.mean, noise))
            } else {
                Verdict::Quiet
            };
        }
        if self.seen == 0 {
            self.mean = value;
            self.seen = 1;
            return Verdict::Quiet;
        }
        self.seen = self.seen.saturating_add(1);
        let trip = self.trip(value, noise);
        let distance = self.distance(noise);
        let delta = self.delta(value);
        let judged = self.seen > self.warmup && self.settings.enabled;
        let past = delta >= distance && judged;
        if judged && !self.open {
            let ratio = delta / distance;
            if self.recent.len() >= self.settings.persistence as usize {
                self.recent.pop_front();
            }
            self.recent.push_back(ratio);
            let run = if self.recent.len() >= self.settings.persistence as usize {
                self.recent.iter().copied().fold(f64::INFINITY, f64::min)
            } else {
                0.0
            };
            self.nearest = self.nearest.max(run).max(ratio / 2.0);
        }
        let verdict = if self.open {
            if delta < distance / 2.0 {
                self.calm += 1;
            } else {
                self.calm = 0;
            }
            if self.calm >= self.settings.recovery {
                self.open = false;
                self.over = 0;
                self.calm = 0;
                Verdict::End
            } else {
                Verdict::Ongoing(trip)
            }
        } else if past {
            self.over += 1;
            // A window twice past the trip distance starts the event at once: a flush's storm
            // may be over before a second window confirms it.
            if self.over >= self.settings.persistence || delta >= 2.0 * distance {
                self.open = true;
                self.calm = 0;
                Verdict::Start(trip)
            } else {
                Verdict::Quiet
            }
        } else {
            self.over = 0;
            Verdict::Quiet
        };
        // Learn: clipped to the trip distance, ten times slower while an event is open or
        // while a run of tripped windows may become one.
        let clipped = value.clamp(self.mean - distance, self.mean + distance);
        // During warm-up, a plain running mean (then never slower than the EWMA): the first
        // windows of a cold cache (all misses) are not remembered for a half-life.
        let warming = (2.0 / (f64::from(self.seen) + 1.0)).max(self.alpha);
        let a = if self.open || self.over > 0 {
            self.alpha / 10.0
        } else if self.seen <= self.warmup {
            warming
        } else {
            self.alpha
        };
        let before = self.mean;
        self.mean += a * (clipped - before);
        self.dev += a * ((clipped - before).abs() - self.dev);
        verdict
    }

    /// How far past the baseline the value is, the bad way.
    fn delta(&self, value: f64) -> f64 {
        match self.direction {
            Direction::Up => value - self.mean,
            Direction::Down => self.mean - value,
        }
    }

    /// The robust scale: the deviation's EWMA as a standard deviation, floored by the noise.
    fn scale(&self, noise: f64) -> f64 {
        // `min_change` counts as `z` deviations at least: a figure with no noise of its own
        // (latency) still gets a meaningful score.
        let floor = self.settings.min_change / self.settings.z.max(1e-9);
        (1.25 * self.dev).max(noise).max(floor).max(1e-9)
    }

    /// The distance past the baseline that trips: the largest of the three guards.
    fn distance(&self, noise: f64) -> f64 {
        let s = &self.settings;
        let ratio = match self.direction {
            Direction::Up => (s.min_ratio - 1.0) * self.mean.max(0.0),
            Direction::Down => 0.0,
        };
        (s.z * self.scale(noise)).max(s.min_change).max(ratio)
    }

    fn trip(&self, value: f64, noise: f64) -> Trip {
        let distance = self.distance(noise);
        let threshold = match self.direction {
            Direction::Up => self.mean + distance,
            Direction::Down => self.mean - distance,
        };
        Trip {
            value,
            baseline: self.mean,
            threshold,
            score: self.delta(value) / self.scale(noise),
        }
    }
}

/// The noise of a per-second rate over a window of `secs` seconds whose expected count is
/// `per_sec × secs` (Poisson; at least one event's worth, so a quiet baseline is not a
/// zero-width one).
pub(crate) fn poisson_noise(per_sec: f64, secs: f64) -> f64 {
    (per_sec * secs).max(1.0).sqrt() / secs
}

/// The noise of a fraction `p` measured over `n` trials (binomial).
pub(crate) fn binomial_noise(p: f64, n: u64) -> f64 {
    let p = p.clamp(0.0, 1.0);
    (p * (1.0 - p) / (n.max(1) as f64)).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detector(direction: Direction) -> Detector {
        let s = Sensitivity {
            min_change: 1.0,
            min_ratio: 2.0,
            ..Sensitivity::default()
        };
        Detector::new(s, direction, alpha(60.0), 10)
    }

    #[test]
    fn steady_noise_never_trips_and_a_storm_does_after_persistence() {
        let mut d = detector(Direction::Up);
        let mut rng = fastrand::Rng::with_seed(7);
        for _ in 0..5000 {
            let v = 20.0 + rng.f64() * 6.0 - 3.0;
            assert_eq!(d.observe(v, |m| poisson_noise(m, 10.0)), Verdict::Quiet);
        }
        assert!((d.baseline() - 20.0).abs() < 1.0, "{}", d.baseline());
        let mut twin = d.clone();
        assert_eq!(
            d.observe(50.0, |m| poisson_noise(m, 10.0)),
            Verdict::Quiet,
            "one window is not enough"
        );
        let Verdict::Start(trip) = d.observe(50.0, |m| poisson_noise(m, 10.0)) else {
            panic!("the second window in a row starts the event");
        };
        assert!(
            trip.value == 50.0 && trip.threshold > 20.0 && trip.threshold < 50.0,
            "{trip:?}"
        );
        assert!(trip.score > 6.0, "{trip:?}");
        // Twice the trip distance in one window: at once.
        assert!(matches!(
            twin.observe(100.0, |m| poisson_noise(m, 10.0)),
            Verdict::Start(_)
        ));
        // Hysteresis: back to normal for `recovery` windows ends it.
        assert!(matches!(d.observe(20.0, |_| 1.0), Verdict::Ongoing(_)));
        assert!(matches!(d.observe(20.0, |_| 1.0), Verdict::Ongoing(_)));
        assert_eq!(d.observe(20.0, |_| 1.0), Verdict::End);
        assert!(!d.is_open());
    }

    #[test]
    fn a_falling_figure_trips_a_down_detector_only() {
        let mut down = detector(Direction::Down);
        let mut up = detector(Direction::Up);
        for _ in 0..100 {
            down.observe(0.9, |_| 0.01);
            up.observe(0.9, |_| 0.01);
        }
        // min_change 1.0 is larger than any fall of a fraction: nothing trips.
        for _ in 0..5 {
            assert!(!matches!(down.observe(0.1, |_| 0.01), Verdict::Start(_)));
        }
        let mut down = Detector::new(
            Sensitivity {
                min_change: 0.15,
                min_ratio: 1.0,
                ..Sensitivity::default()
            },
            Direction::Down,
            alpha(60.0),
            10,
        );
        for _ in 0..100 {
            down.observe(0.9, |_| 0.01);
        }
        // 0.2 under: past the trip distance (0.15), not twice past it: two windows.
        assert_eq!(down.observe(0.7, |_| 0.01), Verdict::Quiet);
        assert!(matches!(down.observe(0.7, |_| 0.01), Verdict::Start(_)));
        for _ in 0..5 {
            assert!(!matches!(up.observe(0.1, |_| 0.01), Verdict::Start(_)));
        }
    }

    #[test]
    fn nothing_trips_during_warmup_or_when_disabled() {
        let mut d = detector(Direction::Up);
        d.observe(1.0, |_| 0.0);
        for _ in 0..8 {
            assert_eq!(d.observe(1000.0, |_| 0.0), Verdict::Quiet);
        }
        let mut off = Detector::new(
            Sensitivity {
                enabled: false,
                ..Sensitivity::default()
            },
            Direction::Up,
            alpha(60.0),
            0,
        );
        for _ in 0..100 {
            assert_eq!(
                off.observe(if fastrand::bool() { 0.0 } else { 1e6 }, |_| 0.0),
                Verdict::Quiet
            );
        }
    }

    #[test]
    fn a_lasting_new_normal_ends_in_the_end() {
        let mut d = detector(Direction::Up);
        for _ in 0..100 {
            d.observe(10.0, |_| 1.0);
        }
        let mut started = false;
        let mut ended_after = None;
        for i in 0..20_000 {
            match d.observe(50.0, |_| 1.0) {
                Verdict::Start(_) => started = true,
                Verdict::End => {
                    ended_after = Some(i);
                    break;
                }
                _ => {}
            }
        }
        assert!(started);
        let n = ended_after.expect("the baseline caught up");
        assert!(n > 60, "not before a half-life: {n}");
    }
}
