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

#[cfg(not(feature = "tokio-clock"))]
static UPKEEP_HANDLE: std::sync::OnceLock<Option<quanta::Handle>> = std::sync::OnceLock::new();

/// Starts the upkeep thread once per process. If it cannot start, `now()` still works: quanta
/// then reads the precise clock.
pub(crate) fn start() {
    #[cfg(not(feature = "tokio-clock"))]
    UPKEEP_HANDLE.get_or_init(|| match quanta::Upkeep::new(UPKEEP).start() {
        Ok(h) => Some(h),
        Err(e) => {
            tracing::warn!(error = %e, "coarse clock unavailable; L1 reads the precise clock");
            None
        }
    });
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
