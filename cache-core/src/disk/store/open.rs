//! Opening the tier (directory, lock, geometry marker, rules, foyer on a runtime of its own)
//! and closing it.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use foyer::{
    BlockEngineConfig, DeviceBuilder, FsDeviceBuilder, HybridCacheBuilder, HybridCachePolicy, RecoverMode,
};
use parking_lot::Mutex;

use super::super::rules::Rules;
use super::{Disk, Foyer, Op, Open};

/// What the directory's marker says; a different one wipes foyer's files (geometry changed).
pub(super) const META_FILE: &str = "l3.meta";

/// Block size for a capacity: 16 blocks at least, 64 KiB to 16 MiB each, 4 KiB aligned.
pub(super) fn block_size(capacity: u64) -> usize {
    let b = (capacity / 16).clamp(64 << 10, 16 << 20);
    (b & !4095) as usize
}

impl Drop for Disk {
    fn drop(&mut self) {
        let Some(open) = self.open.take() else { return };
        let Some(rt) = open.rt.lock().take() else { return };
        let Open {
            cache, ops, writer, ..
        } = open;
        // The writer drains what is queued once its sender is gone; then foyer's flushers
        // finish. Both run on the tier's runtime: waited for (bounded) on a thread of our own,
        // as this drop may run inside another runtime.
        drop(ops);
        let writer = writer.lock().take();
        let closing = std::thread::Builder::new()
            .name("cache-l3-close".into())
            .spawn(move || {
                rt.block_on(async {
                    let _ = tokio::time::timeout(Duration::from_secs(10), async {
                        if let Some(w) = writer {
                            let _ = w.await;
                        }
                        let _ = cache.close().await;
                    })
                    .await;
                });
                rt.shutdown_timeout(Duration::from_secs(1));
            });
        if let Ok(t) = closing {
            let _ = t.join();
        }
    }
}

pub(super) fn dir_ino(dir: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(dir).ok().map(|m| m.ino())
}

/// Opens (or creates) the directory, locks it, checks its marker and builds foyer on a runtime
/// of the tier's own (its writers and reads then never wait behind the application's tasks).
pub(super) fn open_foyer(
    dir: &Path,
    capacity: u64,
    bs: usize,
    local: bool,
) -> std::result::Result<(Open, tokio::sync::mpsc::UnboundedReceiver<Op>), String> {
    use fs4::fs_std::FileExt;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("l3.lock"))
        .map_err(|e| format!("cannot create its lock file: {e}"))?;
    match lock.try_lock_exclusive() {
        Ok(true) => {}
        Ok(false) => return Err("its directory is in use by another process".into()),
        Err(e) => return Err(format!("cannot lock its directory: {e}")),
    }
    let meta =
        format!("tiered-cache-l3 record=1 block={bs} capacity={capacity} tombstones=1 local={local}\n");
    let meta_path = dir.join(META_FILE);
    if std::fs::read_to_string(&meta_path).ok().as_deref() != Some(meta.as_str()) {
        wipe(dir)?;
        std::fs::write(&meta_path, &meta).map_err(|e| format!("cannot write its marker: {e}"))?;
    }
    let rules = if local {
        match Rules::load(dir) {
            Ok(r) => Some(Arc::new(r)),
            Err(e) => {
                // Invalidations cannot be told from the file: nothing on disk can be trusted.
                tracing::error!(error = %e, "disk tier rules unreadable; emptying the tier");
                wipe(dir)?;
                Some(Arc::new(Rules::load(dir).map_err(|e| e.to_string())?))
            }
        }
    } else {
        None
    };
    let dir_ino = dir_ino(dir).ok_or("cannot stat its directory")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        // Two: a last clone of the tier dropped on one of them (its tasks hold it between
        // awaits) waits for the writer, which then runs on the other.
        .worker_threads(2)
        .max_blocking_threads(16)
        .thread_name("cache-l3")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start its runtime: {e}"))?;
    let handle = rt.handle().clone();
    let dir_owned = dir.to_path_buf();
    let built = std::thread::Builder::new()
        .name("cache-l3-open".into())
        .spawn(move || handle.block_on(build(dir_owned, capacity, bs)))
        .map_err(|e| format!("cannot start its opening thread: {e}"))
        .and_then(|t| t.join().map_err(|_| "foyer panicked while opening".to_owned()))
        .and_then(|built| built);
    let built = match built {
        Ok(b) => b,
        Err(e) => {
            // Dropped here it would block, which a runtime does not allow inside another one.
            rt.shutdown_background();
            return Err(e);
        }
    };
    let (ops, rx) = tokio::sync::mpsc::unbounded_channel();
    Ok((
        Open {
            cache: built,
            ops,
            writer: Mutex::new(None),
            rt: Mutex::new(Some(rt)),
            rules,
            dir_ino,
            _lock: lock,
        },
        rx,
    ))
}

async fn build(dir: PathBuf, capacity: u64, bs: usize) -> std::result::Result<Foyer, String> {
    let capacity = usize::try_from(capacity).map_err(|_| "capacity too large".to_owned())?;
    // A capacity always: without one foyer sizes itself from free space, and unwraps doing so.
    let device = FsDeviceBuilder::new(&dir)
        .with_capacity(capacity)
        .build()
        .map_err(|e| format!("cannot open its files: {e}"))?;
    HybridCacheBuilder::<String, Vec<u8>>::new()
        .with_name("l3")
        .with_policy(HybridCachePolicy::WriteOnInsertion)
        .with_flush_on_close(false)
        .memory(1)
        .with_filter(|_: &String, _: &Vec<u8>| false)
        .storage()
        .with_engine_config(
            BlockEngineConfig::new(device)
                .with_block_size(bs)
                .with_buffer_pool_size(bs)
                .with_submit_queue_size_threshold(bs * 4)
                .with_tombstone_log(true),
        )
        .with_recover_mode(RecoverMode::Quiet)
        .build()
        .await
        .map_err(|e| format!("foyer: {e}"))
}

/// Removes foyer's files and the rules (never anything else in the directory).
fn wipe(dir: &Path) -> std::result::Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("foyer-") || name == "l3.rules" {
            std::fs::remove_file(entry.path()).map_err(|e| format!("cannot remove {name}: {e}"))?;
        }
    }
    Ok(())
}
