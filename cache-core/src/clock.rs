//! The clock L1 expiry is checked against.
//!
//! `Instant::now()` costs about 25 ns here (measured), more than the rest of an L1 hit, so by
//! default L1 reads quanta's coarse clock (`Instant::recent()`, an atomic load kept current by an
//! upkeep thread every millisecond). With the `tokio-clock` feature it reads `tokio::time`, so a
//! paused tokio clock moves it (tests).

#[cfg(not(feature = "tokio-clock"))]
pub(crate) type Instant = quanta::Instant;
#[cfg(feature = "tokio-clock")]
pub(crate) type Instant = tokio::time::Instant;

/// Resolution of the coarse clock.
#[cfg(not(feature = "tokio-clock"))]
const UPKEEP: std::time::Duration = std::time::Duration::from_millis(1);

/// The running upkeep thread, shared by every live cache of the process.
#[cfg(not(feature = "tokio-clock"))]
static UPKEEP_HANDLE: parking_lot::Mutex<std::sync::Weak<quanta::Handle>> =
    parking_lot::Mutex::new(std::sync::Weak::new());

/// Keeps the upkeep thread running while any cache holds one: it stops when the last cache of
/// the process is dropped (and starts again with the next one). While none runs, `now()` is
/// frozen at the last upkeep; only caches read it, and every cache holds one of these.
#[derive(Clone, Default)]
pub(crate) struct Upkeep {
    #[cfg(not(feature = "tokio-clock"))]
    _handle: Option<std::sync::Arc<quanta::Handle>>,
}

/// Starts the upkeep thread unless it runs. If it cannot start, `now()` still works: quanta then
/// reads the precise clock.
pub(crate) fn start() -> Upkeep {
    #[cfg(not(feature = "tokio-clock"))]
    {
        let mut running = UPKEEP_HANDLE.lock();
        if let Some(h) = running.upgrade() {
            return Upkeep { _handle: Some(h) };
        }
        match quanta::Upkeep::new(UPKEEP).start() {
            Ok(h) => {
                let h = std::sync::Arc::new(h);
                *running = std::sync::Arc::downgrade(&h);
                Upkeep { _handle: Some(h) }
            }
            Err(e) => {
                tracing::warn!(error = %e, "coarse clock unavailable; L1 reads the precise clock");
                Upkeep { _handle: None }
            }
        }
    }
    #[cfg(feature = "tokio-clock")]
    Upkeep::default()
}

/// Now, at the clock's resolution.
#[inline]
pub(crate) fn now() -> Instant {
    #[cfg(not(feature = "tokio-clock"))]
    {
        quanta::Instant::recent()
    }
    #[cfg(feature = "tokio-clock")]
    {
        tokio::time::Instant::now()
    }
}
