//! Scheduled refresh: one tokio task per named job, with jitter, a one-instance-per-period lock
//! and a clean shutdown.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::{boxed, EntryFn, WarmOutcome, Warmer, WarmerError};

/// One scheduled job, shaped like the product's stats JSON:
/// `{"tags": ["warmup_tools_list"], "next_run": "2025-01-27T10:30:00Z", "interval": "30m"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobInfo {
    /// The job's name.
    pub tags: Vec<String>,
    /// When it runs next (RFC 3339, UTC).
    pub next_run: String,
    /// Its interval, e.g. `30m`.
    pub interval: String,
    /// Runs made by this instance.
    pub runs: u64,
    /// Runs that failed.
    pub failures: u64,
    /// Periods left to another instance that held the lock.
    pub skipped_locked: u64,
    /// Periods skipped because the previous run was still going.
    pub skipped_overrun: u64,
    /// Whether a run is in progress.
    pub in_progress: bool,
}

pub(crate) struct JobState {
    name: String,
    interval: Duration,
    next_run: Mutex<SystemTime>,
    runs: AtomicU64,
    failures: AtomicU64,
    skipped_locked: AtomicU64,
    skipped_overrun: AtomicU64,
    in_progress: AtomicBool,
}

impl JobState {
    fn info(&self) -> JobInfo {
        JobInfo {
            tags: vec![self.name.clone()],
            next_run: humantime::format_rfc3339_seconds(*self.next_run.lock()).to_string(),
            interval: humantime::format_duration(self.interval).to_string(),
            runs: self.runs.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            skipped_locked: self.skipped_locked.load(Ordering::Relaxed),
            skipped_overrun: self.skipped_overrun.load(Ordering::Relaxed),
            in_progress: self.in_progress.load(Ordering::Relaxed),
        }
    }
}

fn jittered(interval: Duration, jitter: f64) -> Duration {
    if jitter <= 0.0 {
        return interval;
    }
    let factor = 1.0 + jitter.min(0.9) * (fastrand::f64() * 2.0 - 1.0);
    interval.mul_f64(factor)
}

impl Warmer {
    /// Runs `f` every `interval` (± jitter) until [`shutdown`](Warmer::shutdown). One job per
    /// name. A period whose run is still going is skipped, not stacked. With Redis, instances
    /// sharing it take a lock per period (`SET NX PX`, 80 % of the interval) so one of them runs it.
    /// Refused after [`shutdown`](Warmer::shutdown) ([`WarmerError::ShutDown`]): the job could
    /// never be stopped.
    pub fn schedule_warmup<F, Fut, R>(
        &self,
        name: impl Into<String>,
        interval: Duration,
        f: F,
    ) -> Result<(), WarmerError>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: WarmOutcome,
    {
        let name = name.into();
        if interval.is_zero() {
            return Err(WarmerError::ZeroInterval);
        }
        let stop = self.stop_signal()?;
        let state = {
            let mut jobs = self.inner.jobs.lock();
            if jobs.contains_key(&name) {
                return Err(WarmerError::DuplicateJob(name));
            }
            let state = Arc::new(JobState {
                name: name.clone(),
                interval,
                next_run: Mutex::new(SystemTime::now() + interval),
                runs: AtomicU64::new(0),
                failures: AtomicU64::new(0),
                skipped_locked: AtomicU64::new(0),
                skipped_overrun: AtomicU64::new(0),
                in_progress: AtomicBool::new(false),
            });
            jobs.insert(name, state.clone());
            state
        };
        let task = tokio::spawn(job_loop(self.clone(), state, boxed(f), stop));
        self.inner.tasks.lock().push(task);
        Ok(())
    }

    /// The scheduled jobs, by name.
    pub fn jobs(&self) -> Vec<JobInfo> {
        let mut jobs: Vec<JobInfo> = self.inner.jobs.lock().values().map(|j| j.info()).collect();
        jobs.sort_by(|a, b| a.tags.cmp(&b.tags));
        jobs
    }
}

async fn job_loop(warmer: Warmer, state: Arc<JobState>, f: EntryFn, mut shutdown: watch::Receiver<bool>) {
    let jitter = warmer.inner.config.jitter;
    let lock_ttl = state.interval.mul_f64(0.8);
    let lock_name = format!("warmup:{}", state.name);
    let mut next = Instant::now() + jittered(state.interval, jitter);
    loop {
        *state.next_run.lock() = SystemTime::now() + next.saturating_duration_since(Instant::now());
        tokio::select! {
            _ = tokio::time::sleep_until(next) => {}
            _ = shutdown.changed() => break,
        }
        // One instance per period; when the lock cannot be asked for (Redis down), warming
        // locally beats not warming.
        // Off, a run would load the database for values nothing stores.
        let run = if !warmer.inner.cache.is_enabled() {
            false
        } else {
            match warmer.inner.cache.try_lock(&lock_name, lock_ttl).await {
                Ok(Some(_)) => true,
                Ok(None) => {
                    state.skipped_locked.fetch_add(1, Ordering::Relaxed);
                    false
                }
                Err(e) => {
                    tracing::debug!(job = %state.name, error = %e, "warmup lock unavailable; running locally");
                    true
                }
            }
        };
        if run {
            state.in_progress.store(true, Ordering::Relaxed);
            let span = crate::runner::warmup_span(&state.name);
            let t0 = std::time::Instant::now();
            let task = tokio::spawn(tracing::Instrument::instrument(
                cache_core::warming(f()),
                span.clone(),
            ));
            let outcome = tokio::select! {
                r = tokio::time::timeout(warmer.inner.config.entry_timeout, task) => r,
                _ = shutdown.changed() => break,
            };
            crate::runner::warmup_ended(&span, matches!(outcome, Ok(Ok(Ok(())))), t0);
            state.in_progress.store(false, Ordering::Relaxed);
            state.runs.fetch_add(1, Ordering::Relaxed);
            if !matches!(outcome, Ok(Ok(Ok(())))) {
                state.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(job = %state.name, "scheduled warmup failed");
            }
        }
        next += jittered(state.interval, jitter);
        let now = Instant::now();
        while next <= now {
            state.skipped_overrun.fetch_add(1, Ordering::Relaxed);
            next += state.interval;
        }
    }
    state.in_progress.store(false, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_bounds() {
        let base = Duration::from_secs(100);
        for _ in 0..1000 {
            let d = jittered(base, 0.1);
            assert!(
                d >= Duration::from_secs(90) && d <= Duration::from_secs(110),
                "{d:?}"
            );
        }
        assert_eq!(jittered(base, 0.0), base);
    }
}
