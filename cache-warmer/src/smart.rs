//! Smart warming: refresh-ahead for hot keys and predictive loading of likely next keys.
//!
//! Refresh-ahead: every `refresh_check_interval`, the `refresh_hot_keys` most-read keys (from the
//! cache's access patterns) that have been read at least `refresh_min_reads` times and match a
//! registered loader are checked; one with less than `refresh_ahead` of its pattern TTL left is
//! recomputed and stored again, so a hot key never expires under its readers.
//!
//! Prediction: the cache sends, after each recorded read, the key that most often followed it
//! (see `cache_core::access`); if that key is not cached and has a loader, it is loaded now.

use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use crate::{Warmer, WarmerError};

impl Warmer {
    /// Starts refresh-ahead and predictive loading in the background, until
    /// [`shutdown`](Warmer::shutdown).
    ///
    /// Refused with an error saying why, rather than starting something that does nothing:
    /// [`WarmerError::SmartWarmingDisabled`] when the cache's `smart_warmup_enabled` is off (env
    /// `CACHE_SMART_WARMUP_ENABLED`: the operator's switch, which is why it gates this call),
    /// [`WarmerError::AccessTrackingOff`] when `access_sample_rate` is 0 (no reads to act on),
    /// [`WarmerError::SmartWarmingRunning`] on a second call (two prediction loops would
    /// replace each other's sink and end prediction), [`WarmerError::ShutDown`] after shutdown.
    pub fn start_smart_warming(&self) -> Result<(), WarmerError> {
        let config = self.inner.cache.config();
        if !config.smart_warmup_enabled {
            return Err(WarmerError::SmartWarmingDisabled);
        }
        if config.access_sample_rate == 0 {
            return Err(WarmerError::AccessTrackingOff);
        }
        let stop = self.stop_signal()?;
        if self.inner.smart_started.swap(true, Ordering::AcqRel) {
            return Err(WarmerError::SmartWarmingRunning);
        }
        let refresh = tokio::spawn(refresh_loop(self.clone(), stop.clone()));
        let (tx, rx) = mpsc::channel(self.inner.config.prediction_queue.max(1));
        self.inner.cache.set_prediction_sink(Some(tx));
        let predict = tokio::spawn(predict_loop(self.clone(), rx, stop));
        self.inner.tasks.lock().extend([refresh, predict]);
        tracing::info!("smart warming started (refresh-ahead and prediction)");
        Ok(())
    }

    /// One refresh-ahead pass; returns how many keys were refreshed.
    pub async fn refresh_hot_keys(&self) -> usize {
        let cfg = &self.inner.config;
        let mut refreshed = 0;
        if !self.inner.cache.is_enabled() {
            return 0;
        }
        for hot in self.inner.cache.access_patterns(cfg.refresh_hot_keys) {
            if hot.count < cfg.refresh_min_reads {
                continue;
            }
            let Some(load) = self.loader_for(&hot.key) else {
                continue;
            };
            let ttl = self.inner.cache.ttl_for(&hot.key);
            let remaining = match self.inner.cache.ttl_remaining(&hot.key).await {
                Ok(r) => r.unwrap_or(Duration::ZERO),
                Err(e) => {
                    tracing::debug!(key = %hot.key, error = %e, "refresh-ahead: TTL unknown");
                    continue;
                }
            };
            if remaining > ttl.mul_f64(cfg.refresh_ahead) {
                continue;
            }
            match cache_core::warming(load(hot.key.clone())).await {
                Ok(()) => refreshed += 1,
                Err(e) => tracing::warn!(key = %hot.key, error = %e, "refresh-ahead load failed"),
            }
        }
        refreshed
    }
}

async fn refresh_loop(warmer: Warmer, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(warmer.inner.config.refresh_check_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => break,
        }
        let n = warmer.refresh_hot_keys().await;
        if n > 0 {
            tracing::debug!(refreshed = n, "refresh-ahead");
        }
    }
}

async fn predict_loop(warmer: Warmer, mut rx: mpsc::Receiver<String>, mut shutdown: watch::Receiver<bool>) {
    loop {
        let key = tokio::select! {
            k = rx.recv() => match k { Some(k) => k, None => break },
            _ = shutdown.changed() => break,
        };
        let Some(load) = warmer.loader_for(&key) else {
            continue;
        };
        // Off, nothing would be stored: loading would only load the database.
        if !warmer.inner.cache.is_enabled() || warmer.inner.cache.exists(&key).await.unwrap_or(true) {
            continue;
        }
        if let Err(e) = cache_core::warming(load(key.clone())).await {
            tracing::debug!(key = %key, error = %e, "predictive load failed");
        }
    }
    warmer.inner.cache.set_prediction_sink(None);
}
