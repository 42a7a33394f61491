//! The work a cache runs besides its calls, owned by it: the coarse clock's upkeep thread, the
//! remote tier's health check, the invalidation listener and the anomaly sampler
//! ([`crate::anomaly`]). Started once, when the cache is
//! built, on the runtime it is given (else the current one); stopped when the last clone of
//! the cache is dropped. A cache built outside any runtime says so (a warning in the log and
//! in [`Health::warnings`](crate::Health)) rather than running without them unnoticed.

use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::runtime::Handle;
use tokio::task::AbortHandle;

use super::Engine;
use crate::clock::{self, Upkeep};
use crate::tier::BusHandler;

/// The tasks and threads of one cache.
#[derive(Default)]
pub(crate) struct Background {
    tasks: Mutex<Vec<AbortHandle>>,
    /// What could not be started, for health output.
    pub(crate) warnings: Mutex<Vec<String>>,
    upkeep: Mutex<Option<Upkeep>>,
}

impl Drop for Background {
    fn drop(&mut self) {
        for t in self.tasks.get_mut().drain(..) {
            t.abort();
        }
    }
}

impl Background {
    /// Starts what `engine` needs on `rt` (else the current runtime).
    pub(crate) fn start(engine: &Arc<Engine>, rt: Option<&Handle>) {
        let bg = &engine.background;
        *bg.upkeep.lock() = Some(clock::start());
        if let (Some(disk), Some(rx)) = (&engine.disk, engine.spilled.lock().take()) {
            // On the disk tier's own runtime: it needs none of the application's.
            disk.spawn(Engine::spill_task(Arc::downgrade(engine), rx));
        }
        let rt = rt.cloned().or_else(|| Handle::try_current().ok());
        if let (true, Some(rt)) = (engine.config.anomaly.enabled, &rt) {
            let task = rt.spawn(crate::anomaly::run(Arc::downgrade(engine)));
            bg.tasks.lock().push(task.abort_handle());
        }
        let Some(remote) = &engine.remote else {
            return;
        };
        let Some(rt) = rt else {
            let msg = "built outside a tokio runtime: no health checks and no cross-instance L1 \
                       invalidation; build the cache inside a runtime or with Cache::with_runtime";
            tracing::warn!("{msg}");
            bg.warnings.lock().push(msg.to_owned());
            return;
        };
        let every = engine.config.health_check_interval;
        if !every.is_zero() {
            let weak = Arc::downgrade(engine);
            let task = rt.spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(engine) = weak.upgrade() else { break };
                    if let Some(remote) = &engine.remote {
                        if let Err(e) = remote.ping().await {
                            tracing::warn!(error = %e, "remote tier health check failed");
                        }
                    }
                }
            });
            bg.tasks.lock().push(task.abort_handle());
        }
        if let (Some(channel), Some(bus)) = (&engine.bus_channel, remote.bus()) {
            let handler: Weak<dyn BusHandler> = Arc::downgrade(engine) as Weak<Engine>;
            match bus.listen(&rt, channel.clone(), engine.origin, handler) {
                Ok(task) => bg.tasks.lock().push(task.abort_handle()),
                Err(e) => {
                    tracing::warn!(error = %e, "cross-instance L1 invalidation is off");
                    bg.warnings
                        .lock()
                        .push(format!("cross-instance L1 invalidation is off: {e}"));
                }
            }
        }
    }
}
