//! Cache warming for `cache-core`: no cold starts, and popular entries refreshed before they
//! expire.
//!
//! - **Warmup**: [`Warmer::warm_up`] (or [`warm_up`] for the attribute registrations alone)
//!   runs every `#[warmup_cache]` registration (collected with `inventory`) and every
//!   [`Warmer::register`]ed entry now, with bounded concurrency, a per-entry timeout and a
//!   [`WarmupReport`]. [`Warmer::warm_up_on_startup`] (and [`warm_up_on_startup`]) is the same
//!   run for a service's start, skipped when `warmup_on_startup` is off: the configuration gates
//!   warming that starts by itself, never an explicit call.
//! - **Scheduled**: [`Warmer::schedule_warmup`] refreshes on an interval with jitter; with Redis,
//!   one instance per period runs a job (a `SET NX PX` lock).
//! - **Smart**: [`Warmer::start_smart_warming`] (when `smart_warmup_enabled`; an error says why
//!   when it cannot start): hot keys that have a loader ([`Warmer::register_loader`]) are
//!   recomputed shortly before their TTL ends (refresh-ahead), and keys that usually follow the
//!   one just read are loaded in the background (prediction).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! use cache_core::{Cache, CacheConfig};
//! use cache_warmer::Warmer;
//!
//! let cache = Cache::new(CacheConfig::default()).unwrap();
//! let warmer = Warmer::new(cache.clone());
//! let c = cache.clone();
//! warmer.register("tools_list", move || {
//!     let c = c.clone();
//!     async move { c.set("static:tools", &vec!["saw".to_string()], None).await }
//! });
//! let report = warmer.warm_up().await;
//! assert_eq!((report.ok, report.failed), (1, 0));
//! assert!(cache.exists("static:tools").await.unwrap());
//! # }
//! ```

mod runner;
mod schedule;
mod smart;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use cache_core::{Cache, Pattern};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

pub use runner::{warm_up, warm_up_on_startup, EntryReport, EntryStatus, WarmupReport};
pub use schedule::JobInfo;

/// Boxed future of one warmup or refresh call.
pub type BoxFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'static>>;
type EntryFn = Arc<dyn Fn() -> BoxFuture + Send + Sync>;
type LoaderFn = Arc<dyn Fn(String) -> BoxFuture + Send + Sync>;

/// What a warmup function may return: `()`, or a `Result` whose `Err` marks the entry failed.
pub trait WarmOutcome {
    /// `Err(message)` when the call failed.
    fn into_outcome(self) -> Result<(), String>;
}
impl WarmOutcome for () {
    fn into_outcome(self) -> Result<(), String> {
        Ok(())
    }
}
impl<T, E: std::fmt::Display> WarmOutcome for Result<T, E> {
    fn into_outcome(self) -> Result<(), String> {
        self.map(|_| ()).map_err(|e| e.to_string())
    }
}

fn boxed<F, Fut, R>(f: F) -> EntryFn
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = R> + Send + 'static,
    R: WarmOutcome,
{
    Arc::new(move || {
        let fut = f();
        Box::pin(async move { fut.await.into_outcome() })
    })
}

/// Warmer settings.
#[derive(Debug, Clone)]
pub struct WarmerConfig {
    /// Entries run at once during a warmup.
    pub concurrency: usize,
    /// Longest time one entry may take before it counts as failed.
    pub entry_timeout: Duration,
    /// Scheduled runs are spread by ± this fraction of the interval.
    pub jitter: f64,
    /// How often refresh-ahead looks at the hot keys.
    pub refresh_check_interval: Duration,
    /// How many of the hottest keys refresh-ahead considers.
    pub refresh_hot_keys: usize,
    /// Reads a key needs before refresh-ahead keeps it warm.
    pub refresh_min_reads: u64,
    /// Refresh when less than this fraction of the key's TTL remains.
    pub refresh_ahead: f64,
    /// Pending predicted keys; more are dropped.
    pub prediction_queue: usize,
}

impl Default for WarmerConfig {
    fn default() -> Self {
        WarmerConfig {
            concurrency: 4,
            entry_timeout: Duration::from_secs(30),
            jitter: 0.1,
            refresh_check_interval: Duration::from_secs(1),
            refresh_hot_keys: 100,
            refresh_min_reads: 2,
            refresh_ahead: 0.2,
            prediction_queue: 256,
        }
    }
}

/// Errors of the warmer's own API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WarmerError {
    /// A scheduled job with this name exists already.
    #[error("a warmup job named {0:?} is already scheduled")]
    DuplicateJob(String),
    /// The interval is zero.
    #[error("warmup interval must be greater than zero")]
    ZeroInterval,
    /// A loader pattern did not compile.
    #[error(transparent)]
    Cache(#[from] cache_core::CacheError),
    /// Smart warming was asked to start while the cache's `smart_warmup_enabled` is off.
    #[error("smart warming is disabled (smart_warmup_enabled = false, env CACHE_SMART_WARMUP_ENABLED)")]
    SmartWarmingDisabled,
    /// Smart warming needs the reads the cache records, and the cache records none.
    #[error(
        "smart warming needs access tracking, which is off (access_sample_rate = 0): \
         refresh-ahead and prediction would never see a read"
    )]
    AccessTrackingOff,
    /// Smart warming is already running for this warmer.
    #[error("smart warming is already running for this warmer")]
    SmartWarmingRunning,
    /// [`Warmer::shutdown`] was called: nothing new starts, since nothing could stop it.
    #[error("the warmer is shut down; background warming cannot start again")]
    ShutDown,
}

/// The warmer's state, shaped like the `warmup` block of the stats JSON.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WarmupStatus {
    /// Whether scheduled jobs or smart warming are active.
    pub running: bool,
    /// Scheduled jobs.
    pub jobs: Vec<JobInfo>,
    /// Registered warmup entries (attribute and code).
    pub warmup_tasks: usize,
}

struct Inner {
    cache: Cache,
    config: WarmerConfig,
    entries: Mutex<Vec<(String, EntryFn)>>,
    jobs: Mutex<HashMap<String, Arc<schedule::JobState>>>,
    loaders: Mutex<Vec<(Pattern, LoaderFn)>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// Whether smart warming's tasks were started (they run until shutdown).
    smart_started: AtomicBool,
    shutdown: tokio::sync::watch::Sender<bool>,
}

/// The warmer of one [`Cache`]. Cheap to clone.
#[derive(Clone)]
pub struct Warmer {
    inner: Arc<Inner>,
}

impl Warmer {
    /// A warmer with the default [`WarmerConfig`].
    pub fn new(cache: Cache) -> Self {
        Self::with_config(cache, WarmerConfig::default())
    }

    /// A warmer with explicit settings.
    pub fn with_config(cache: Cache, config: WarmerConfig) -> Self {
        Warmer {
            inner: Arc::new(Inner {
                cache,
                config,
                entries: Mutex::new(Vec::new()),
                jobs: Mutex::new(HashMap::new()),
                loaders: Mutex::new(Vec::new()),
                tasks: Mutex::new(Vec::new()),
                smart_started: AtomicBool::new(false),
                shutdown: tokio::sync::watch::channel(false).0,
            }),
        }
    }

    /// The cache this warmer fills.
    pub fn cache(&self) -> &Cache {
        &self.inner.cache
    }

    /// Adds an entry run by every warmup, beside the `#[warmup_cache]` ones.
    pub fn register<F, Fut, R>(&self, name: impl Into<String>, f: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = R> + Send + 'static,
        R: WarmOutcome,
    {
        self.inner.entries.lock().push((name.into(), boxed(f)));
    }

    /// Registers how to recompute any key matching `pattern` (a Redis glob): smart warming uses
    /// it to refresh hot keys before they expire and to load predicted keys. The value is
    /// stored with the key's pattern TTL.
    ///
    /// ```
    /// # let cache = cache_core::Cache::new(Default::default()).unwrap();
    /// let warmer = cache_warmer::Warmer::new(cache);
    /// warmer.register_loader("resource:users:*", |key: String| async move {
    ///     let id: u64 = key.rsplit(':').next().unwrap_or("0").parse().map_err(|e| format!("{e}"))?;
    ///     Ok::<_, String>(format!("user {id}"))
    /// }).unwrap();
    /// ```
    pub fn register_loader<F, Fut, T, E>(&self, pattern: &str, load: F) -> Result<(), WarmerError>
    where
        F: Fn(String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, E>> + Send + 'static,
        T: cache_core::CacheValue,
        E: std::fmt::Display,
    {
        let pattern = Pattern::new(pattern)?;
        let cache = self.inner.cache.clone();
        let load = Arc::new(load);
        let f: LoaderFn = Arc::new(move |key: String| {
            let (cache, load) = (cache.clone(), load.clone());
            Box::pin(async move {
                // Guarded like any load: an invalidation during it keeps its value out.
                cache
                    .refresh(&key, None, || load(key.clone()))
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            })
        });
        self.inner.loaders.lock().push((pattern, f));
        Ok(())
    }

    fn loader_for(&self, key: &str) -> Option<LoaderFn> {
        self.inner
            .loaders
            .lock()
            .iter()
            .find(|(p, _)| p.matches(key))
            .map(|(_, f)| f.clone())
    }

    /// Scheduled jobs, attribute and code entries, and whether anything runs in the background.
    pub fn status(&self) -> WarmupStatus {
        let tasks = self.inner.tasks.lock();
        WarmupStatus {
            running: tasks.iter().any(|t| !t.is_finished()),
            jobs: self.jobs(),
            warmup_tasks: self.inner.entries.lock().len() + cache_core::warmup::registered().count(),
        }
    }

    /// The stop signal for a background task about to be spawned, or [`WarmerError::ShutDown`]
    /// when [`shutdown`](Warmer::shutdown) was called already: the signal is sent once, so a task
    /// started after it would never stop.
    ///
    /// Subscribed here, before the spawn, not inside the task: a receiver created after the
    /// signal sees it as already read, so a shutdown that came between the spawn and the task's
    /// first poll (at once on a current-thread runtime) left the task running and `shutdown`
    /// waiting for it forever.
    fn stop_signal(&self) -> Result<tokio::sync::watch::Receiver<bool>, WarmerError> {
        let rx = self.inner.shutdown.subscribe();
        if *rx.borrow() {
            return Err(WarmerError::ShutDown);
        }
        Ok(rx)
    }

    /// Stops every scheduled job and smart-warming task and waits for them. Afterwards
    /// [`schedule_warmup`](Warmer::schedule_warmup) and
    /// [`start_smart_warming`](Warmer::start_smart_warming) return [`WarmerError::ShutDown`].
    pub async fn shutdown(&self) {
        // `send_replace`, not `send`: the latter leaves the value unchanged when no task is
        // listening, and `stop_signal` reads it.
        self.inner.shutdown.send_replace(true);
        let tasks: Vec<_> = self.inner.tasks.lock().drain(..).collect();
        for t in tasks {
            let _ = t.await;
        }
    }
}
