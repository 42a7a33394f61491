//! The health check: foyer reports no failed write, so a probe is written and read back, and
//! the directory is watched.

use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::{Duration, Instant};

use super::{Disk, Foyer, Known};

/// Failed probes in a row that disable the tier.
const PROBES_TO_DISABLE: u32 = 2;
/// The health probe's key: no cache key starts with a NUL.
const PROBE_KEY: &str = "\0tiered-cache-l3-probe";

/// The health check: the directory is still the one opened, and a probe written comes back.
/// It holds the tier only between awaits (its last clone may drop while a probe waits).
pub(super) async fn health(disk: Weak<Disk>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let cache = {
            let Some(disk) = disk.upgrade() else { return };
            if disk.dir_replaced() {
                disk.disable("its directory was removed or replaced");
            }
            let now = Instant::now();
            let kept = Duration::from_millis(disk.deleted_kept_ms.load(Ordering::Relaxed));
            disk.known
                .lock()
                .retain(|_, k| !matches!(k, Known::Deleted(at) if now.duration_since(*at) > kept));
            match disk.foyer() {
                Some(cache) => cache,
                None => return,
            }
        };
        let ok = tokio::time::timeout(every.max(Duration::from_secs(5)), probe(&cache)).await;
        drop(cache);
        let Some(disk) = disk.upgrade() else { return };
        match ok {
            Ok(true) => disk.probe_failures.store(0, Ordering::Relaxed),
            Ok(false) => {
                disk.counters.errors.incr();
                let n = disk.probe_failures.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::warn!(failures = n, "disk tier probe did not read back what it wrote");
                if n >= PROBES_TO_DISABLE {
                    disk.disable("writes do not reach the disk (full, or failing)");
                    return;
                }
            }
            // A long write queue is not a failure.
            Err(_) => {}
        }
    }
}

/// Writes a probe and reads it back.
async fn probe(cache: &Foyer) -> bool {
    let value = fastrand::u64(..).to_le_bytes().repeat(64);
    cache.insert(PROBE_KEY.to_owned(), value.clone());
    cache.storage().wait().await;
    matches!(cache.get(PROBE_KEY).await, Ok(Some(e)) if *e.value() == value)
}
