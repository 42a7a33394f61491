//! Running warmup entries: bounded concurrency, per-entry timeout, a report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use cache_core::Cache;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::{EntryFn, Warmer, WarmerConfig};

/// How one entry ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryStatus {
    /// It ran and succeeded.
    Ok,
    /// It returned `Err`, panicked or timed out.
    Failed,
    /// It was not run: startup warmup is disabled (`warmup_on_startup`), or the cache is off.
    Skipped,
}

/// One entry of a [`WarmupReport`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EntryReport {
    /// Function path or registered name, with its arguments.
    pub name: String,
    /// How it ended.
    pub status: EntryStatus,
    /// Its run time.
    pub duration_ms: f64,
    /// Why it failed.
    pub error: Option<String>,
}

/// What a warmup run did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WarmupReport {
    /// Entries that succeeded.
    pub ok: usize,
    /// Entries that failed (error, panic or timeout).
    pub failed: usize,
    /// Entries not run.
    pub skipped: usize,
    /// Wall time of the whole run.
    pub duration_ms: f64,
    /// Per entry, in completion order.
    pub entries: Vec<EntryReport>,
}

fn attribute_entries() -> Vec<(String, EntryFn)> {
    cache_core::warmup::registered()
        .map(|e| {
            let run = e.run;
            let f: EntryFn = Arc::new(move || run());
            (format!("{}({})", e.function, e.args), f)
        })
        .collect()
}

/// The `cache.warmup` span of one entry or scheduled run ([`cache_core::trace`]).
pub(crate) fn warmup_span(entry: &str) -> tracing::Span {
    tracing::info_span!(
        "cache.warmup",
        cache.warmup.entry = entry,
        cache.outcome = tracing::field::Empty,
        cache.duration_us = tracing::field::Empty,
    )
}

/// Records how a warmup run ended on its span.
pub(crate) fn warmup_ended(span: &tracing::Span, ok: bool, t0: Instant) {
    span.record("cache.outcome", if ok { "ok" } else { "failed" });
    span.record("cache.duration_us", t0.elapsed().as_micros() as u64);
}

async fn run_one(name: String, f: EntryFn, timeout: Duration) -> EntryReport {
    let t0 = Instant::now();
    let span = warmup_span(&name);
    // A task of its own: a panicking entry is reported, not propagated. The entry's own spans
    // (its loads and stores) are children of the warmup's.
    let task = tokio::spawn(tracing::Instrument::instrument(
        cache_core::warming(f()),
        span.clone(),
    ));
    let outcome = tokio::time::timeout(timeout, task).await;
    let error = match outcome {
        Ok(Ok(Ok(()))) => None,
        Ok(Ok(Err(e))) => Some(e),
        Ok(Err(join)) if join.is_panic() => Some("panicked".to_owned()),
        Ok(Err(join)) => Some(join.to_string()),
        Err(_) => Some(format!("timed out after {}", humantime::format_duration(timeout))),
    };
    let duration_ms = t0.elapsed().as_secs_f64() * 1000.0;
    warmup_ended(&span, error.is_none(), t0);
    match &error {
        None => tracing::debug!(entry = %name, duration_ms, "warmup entry done"),
        Some(e) => tracing::warn!(entry = %name, error = %e, "warmup entry failed"),
    }
    EntryReport {
        name,
        status: if error.is_none() {
            EntryStatus::Ok
        } else {
            EntryStatus::Failed
        },
        duration_ms,
        error,
    }
}

async fn run_entries(entries: Vec<(String, EntryFn)>, config: &WarmerConfig) -> WarmupReport {
    let start = Instant::now();
    // Futures built up front: a closure inside the stream type trips the Send check of callers.
    let runs: Vec<_> = entries
        .into_iter()
        .map(|(name, f)| run_one(name, f, config.entry_timeout))
        .collect();
    let mut results = futures::stream::iter(runs).buffer_unordered(config.concurrency.max(1));
    let mut report = WarmupReport::default();
    while let Some(entry) = results.next().await {
        match entry.status {
            EntryStatus::Ok => report.ok += 1,
            EntryStatus::Failed => report.failed += 1,
            EntryStatus::Skipped => report.skipped += 1,
        }
        report.entries.push(entry);
    }
    report.duration_ms = start.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(
        ok = report.ok,
        failed = report.failed,
        duration_ms = report.duration_ms,
        "warmup finished"
    );
    report
}

fn skipped(entries: Vec<(String, EntryFn)>) -> WarmupReport {
    let entries: Vec<EntryReport> = entries
        .into_iter()
        .map(|(name, _)| EntryReport {
            name,
            status: EntryStatus::Skipped,
            duration_ms: 0.0,
            error: None,
        })
        .collect();
    WarmupReport {
        skipped: entries.len(),
        entries,
        ..WarmupReport::default()
    }
}

/// Runs every `#[warmup_cache]` registration now and reports how each went, whatever
/// `warmup_on_startup` says: calling it is the decision to warm. The registered functions fill
/// the cache their attribute names (the global one by default), with the [`WarmerConfig`]
/// defaults for concurrency and timeout.
///
/// For the warming a service does by itself when it starts, which configuration can turn off,
/// use [`warm_up_on_startup`].
pub async fn warm_up(cache: &Cache) -> WarmupReport {
    Warmer::new(cache.clone()).warm_up().await
}

/// The startup warmup of the `#[warmup_cache]` registrations: runs them when
/// `cache.config().warmup_on_startup` is set (env `CACHE_WARMUP_ON_STARTUP`, on by default);
/// otherwise runs nothing and reports every entry skipped. Call it where a service starts;
/// [`warm_up`] is the unconditional form.
pub async fn warm_up_on_startup(cache: &Cache) -> WarmupReport {
    Warmer::new(cache.clone()).warm_up_on_startup().await
}

impl Warmer {
    fn all_entries(&self) -> Vec<(String, EntryFn)> {
        let mut all = attribute_entries();
        all.extend(self.inner.entries.lock().iter().cloned());
        all
    }

    /// Runs every entry (`#[warmup_cache]` and [`register`](Warmer::register)ed) now, whatever
    /// the configuration: an explicit call, as the admin API's warmup trigger makes.
    /// With the cache off ([`Cache::set_enabled`]) it runs none and reports them skipped: the
    /// values would be stored nowhere.
    pub async fn warm_up(&self) -> WarmupReport {
        if !self.inner.cache.is_enabled() {
            tracing::info!("warmup skipped: the cache is off");
            return skipped(self.all_entries());
        }
        run_entries(self.all_entries(), &self.inner.config).await
    }

    /// The same as [`warm_up`](Warmer::warm_up), under its earlier name.
    pub async fn run(&self) -> WarmupReport {
        self.warm_up().await
    }

    /// The warming a service does by itself when it starts: runs every entry if
    /// `warmup_on_startup` is set; otherwise runs none and reports them skipped, so an operator
    /// can turn startup warming off without a code change.
    pub async fn warm_up_on_startup(&self) -> WarmupReport {
        if self.inner.cache.config().warmup_on_startup {
            self.warm_up().await
        } else {
            tracing::info!("startup warmup disabled (CACHE_WARMUP_ON_STARTUP)");
            skipped(self.all_entries())
        }
    }
}
