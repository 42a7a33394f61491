//! Circuit breaker in front of Redis: after repeated transport failures, skip Redis for a
//! cool-down instead of making every call wait for a timeout, then let one probe through.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

// Under `tokio-clock` the cool-down runs on tokio's clock, so a paused clock (the anomaly
// simulator) moves it; outside a runtime tokio's clock is the system's.
#[cfg(not(feature = "tokio-clock"))]
use std::time::Instant;
#[cfg(feature = "tokio-clock")]
use tokio::time::Instant;

use serde::{Deserialize, Serialize};

/// Where the breaker stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Redis is called normally.
    Closed,
    /// Redis is skipped until the cool-down ends.
    Open,
    /// The cool-down ended; the next call probes Redis.
    HalfOpen,
}

pub(crate) struct Breaker {
    threshold: u32,
    cooldown_ms: u64,
    epoch: Instant,
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which Redis is skipped; 0 = closed.
    open_until: AtomicU64,
    /// When the running probe began (ms since `epoch`); 0 = none. A probe that never reports
    /// (its caller was cancelled, or its call hung past every timeout) expires after
    /// [`Breaker::probe_lease_ms`], so the breaker cannot stay half-open forever.
    probing: AtomicU64,
    /// Opens and closes so far (anomaly detection: a flapping breaker).
    transitions: AtomicU64,
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold: threshold.max(1),
            cooldown_ms: cooldown.as_millis().max(1) as u64,
            epoch: Instant::now(),
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicU64::new(0),
            transitions: AtomicU64::new(0),
        }
    }

    /// How long a probe may run before another caller may probe instead.
    fn probe_lease_ms(&self) -> u64 {
        self.cooldown_ms.max(1000)
    }

    fn now_ms(&self) -> u64 {
        // +1 keeps 0 free to mean "closed".
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    /// Whether a call may go to Redis now. While half-open, exactly one caller gets through.
    #[inline]
    pub(crate) fn allow(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        let now = self.now_ms();
        if now < until {
            return false;
        }
        let probe = self.probing.load(Ordering::Acquire);
        if probe != 0 && now < probe + self.probe_lease_ms() {
            return false;
        }
        self.probing
            .compare_exchange(probe, now, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    pub(crate) fn success(&self) {
        if self.failures.load(Ordering::Relaxed) != 0 {
            self.failures.store(0, Ordering::Relaxed);
        }
        if self.open_until.load(Ordering::Relaxed) != 0 {
            self.open_until.store(0, Ordering::Release);
            self.probing.store(0, Ordering::Release);
            self.transitions.fetch_add(1, Ordering::Relaxed);
            tracing::info!("redis reachable again; circuit breaker closed");
        }
    }

    pub(crate) fn failure(&self) {
        let n = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        let was_probe = self.probing.load(Ordering::Acquire) != 0;
        if n >= self.threshold || was_probe {
            let until = self.now_ms() + self.cooldown_ms;
            if self.open_until.swap(until, Ordering::AcqRel) == 0 {
                self.transitions.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    failures = n,
                    cooldown_ms = self.cooldown_ms,
                    "redis failing; circuit breaker open"
                );
            }
            self.probing.store(0, Ordering::Release);
        }
    }

    /// Opens and closes so far.
    pub(crate) fn transitions(&self) -> u64 {
        self.transitions.load(Ordering::Relaxed)
    }

    pub(crate) fn state(&self) -> BreakerState {
        match self.open_until.load(Ordering::Acquire) {
            0 => BreakerState::Closed,
            until if self.now_ms() < until => BreakerState::Open,
            _ => BreakerState::HalfOpen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_threshold_and_probes_once() {
        // A cooldown no preemption between two lines outlasts.
        let b = Breaker::new(3, Duration::from_millis(300));
        b.failure();
        b.failure();
        assert!(b.allow());
        b.failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.allow());
        std::thread::sleep(Duration::from_millis(320));
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.allow(), "first caller probes");
        assert!(!b.allow(), "second caller waits for the probe");
        b.failure();
        assert_eq!(b.state(), BreakerState::Open, "failed probe reopens");
        std::thread::sleep(Duration::from_millis(320));
        assert!(b.allow());
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);
        assert!(b.allow() && b.allow());
        // Opened once (a failed probe re-opens an open breaker: no transition), closed once.
        assert_eq!(b.transitions(), 2);
    }

    /// A probe whose caller never reports (cancelled, or hung) used to leave the breaker
    /// half-open for good, skipping Redis until a restart (seen in a cluster failover test:
    /// L2 never came back). Its lease now runs out and another caller probes.
    #[test]
    fn a_probe_that_never_reports_expires() {
        let b = Breaker::new(1, Duration::from_millis(10));
        b.failure();
        std::thread::sleep(Duration::from_millis(20));
        assert!(b.allow(), "the probe");
        assert!(!b.allow(), "one probe at a time");
        std::thread::sleep(Duration::from_millis(b.probe_lease_ms() + 20));
        assert!(b.allow(), "the silent probe's lease ran out");
        b.success();
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
