//! Nonces for AES-256-GCM that never repeat under one key.
//!
//! GCM's nonce is 96 bits: drawn at random for every write, a key would be good for about 2^32
//! writes (NIST SP 800-38D), which a busy cache reaches in days. Instead each process draws
//! 96 random bits once, per key, and counts up from them: within a process the counter never
//! repeats (2^64 writes), and two processes (instances, restarts) can only meet if they drew
//! the same 32-bit prefix *and* counter starts within the number of writes of each other — for
//! ten thousand process lifetimes of 2^32 writes each, a chance below 2^-37.

use std::sync::atomic::{AtomicU64, Ordering};

use aes_gcm::aead::rand_core::RngCore;
use aes_gcm::aead::OsRng;

/// Length of a nonce, bytes.
pub(crate) const NONCE_LEN: usize = 12;

/// A process's nonce sequence for one key.
pub(crate) struct Nonces {
    prefix: [u8; 4],
    next: AtomicU64,
}

impl Nonces {
    /// A sequence starting at 96 random bits.
    pub(crate) fn new() -> Self {
        let mut prefix = [0u8; 4];
        OsRng.fill_bytes(&mut prefix);
        Nonces {
            prefix,
            next: AtomicU64::new(OsRng.next_u64()),
        }
    }

    /// The next nonce: the prefix, then the counter (little endian).
    pub(crate) fn next(&self) -> [u8; NONCE_LEN] {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut out = [0u8; NONCE_LEN];
        out[..4].copy_from_slice(&self.prefix);
        out[4..].copy_from_slice(&n.to_le_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sequence_never_repeats_and_two_differ() {
        let a = Nonces::new();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            assert!(seen.insert(a.next()));
        }
        assert_ne!(
            Nonces::new().next()[..4],
            a.next()[..4],
            "prefixes are random (2^-32 to fail)"
        );
    }
}
