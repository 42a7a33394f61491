//! The lock of the concurrency-critical state (single flight, the read coalescer): parking_lot's
//! in every build, shuttle's under the test-only `shuttle` feature, so that shuttle can schedule
//! every lock acquisition and explore the interleavings of leaders, waiters and cancellations.
//!
//! Under `shuttle` only the shuttle tests run (`cargo test -p cache-core --features shuttle --lib
//! shuttle`): shuttle's lock works only inside a shuttle execution.

#[cfg(not(feature = "shuttle"))]
pub(crate) use parking_lot::Mutex;

#[cfg(feature = "shuttle")]
pub(crate) use scheduled::Mutex;

#[cfg(feature = "shuttle")]
mod scheduled {
    /// shuttle's mutex with parking_lot's surface (no poisoning: a panic fails the test anyway).
    #[derive(Default)]
    pub(crate) struct Mutex<T>(shuttle::sync::Mutex<T>);

    impl<T> Mutex<T> {
        pub(crate) fn new(v: T) -> Self {
            Mutex(shuttle::sync::Mutex::new(v))
        }

        pub(crate) fn lock(&self) -> shuttle::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
        }
    }
}
