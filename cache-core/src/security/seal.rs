//! Encryption at rest: every envelope the cache writes to Redis and to the disk tier, sealed
//! with AES-256-GCM (`aes-gcm` 0.10.3, pinned) under the first key of a keyring, the entry's
//! name bound as associated data.
//!
//! Why AES-256-GCM rather than XChaCha20-Poly1305: measured here, opening a 150-byte value took
//! 2.3–2.6 µs with `chacha20poly1305` 0.10 and 0.33–0.41 µs with `aes-gcm` (AES-NI and
//! CLMUL), and P10's encrypted L2 hit ran at 0.65–0.78× of the plain one with the former
//! (`docs/design-notes.md`). XChaCha's advantage, random 192-bit nonces, is had another way:
//! GCM's nonces come from a per-process sequence that never repeats (`super::nonce`). Without
//! AES-NI the `aes` crate falls back to a constant-time (bitsliced) implementation.
//!
//! ```text
//! bytes 0..3   magic (as every envelope: `clear` still recognises the entry as the cache's)
//! byte 3       header: version 3, the zlib and tags bits of the sealed envelope, format 2
//! bytes 4..12  absolute expiry, unix ms (readable: Redis's own TTL says as much)
//! 12..20       content id: HMAC-SHA256 (under a key derived from the encryption key) of the
//!              name, header, expiry and plain body, first 8 bytes. The same value of the same
//!              key gets the same id whoever seals it (the disk tier compares ids to trust its
//!              copy, and a value L1 hands the disk again is recognised), while nobody without
//!              the key can confirm a guess of the value from it
//! 20           key id length n (1..=32), then n bytes of key id
//! then         12-byte nonce (`super::nonce`)
//! rest         ciphertext of the plain envelope's body (tag section, zlib length, payload) and
//!              its 16-byte GCM tag
//! ```
//! Associated data: the namespace and key (length-prefixed), bytes 0..20 (content id included)
//! and the key id. A value moved to another key, a changed expiry, header bit or content id, a
//! truncated or flipped byte all fail to authenticate.

use std::fmt;

use aes_gcm::aead::{AeadInPlace, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::nonce::{Nonces, NONCE_LEN};

use crate::codec;
use crate::error::{CacheError, Result};

/// Envelope version of a sealed value.
pub(crate) const SEALED_VERSION: u8 = 3;
const TAG: usize = 16;
/// The longest key id.
pub(crate) const MAX_KEY_ID: usize = 32;

/// One encryption key and the id it is known by.
struct Key {
    id: String,
    cipher: Aes256Gcm,
    /// Keyed for content ids (derived from the key, never the key itself).
    ids: Hmac<Sha256>,
}

/// The keys values are sealed and opened with: the first seals, every one opens.
pub(crate) struct Keyring {
    keys: Vec<Key>,
    /// Nonces of the key that seals.
    nonces: Nonces,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.keys.iter().map(|k| &k.id)).finish()
    }
}

/// Why a sealed value did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    /// Shorter than its header says, or its header is not a sealed envelope's.
    #[error("sealed value is truncated or malformed")]
    Malformed,
    /// Sealed under a key id this instance does not hold (removed after a rotation).
    #[error("sealed value names key id {0:?}, which is not configured")]
    UnknownKey(String),
    /// Not a plain envelope, or the cipher refused it: nothing is stored in clear instead.
    #[error("value could not be encrypted")]
    Unsealable,
    /// Tampered with, moved from another key, or sealed under another key of the same id.
    #[error("sealed value does not authenticate (tampered, moved from another key, or wrong key)")]
    Forged,
    /// A plaintext value where the configuration says values are encrypted: a value planted
    /// by whoever can write to Redis is not trusted.
    #[error("value is not encrypted but its key is under an encrypted pattern")]
    Unsealed,
    /// A sealed value, and this instance has no keys.
    #[error("value is encrypted and no encryption keys are configured")]
    NoKeys,
}

impl Keyring {
    /// Parses `k2:<base64>,k1:<base64>`: ids of 1 to 32 characters from `[A-Za-z0-9_.-]`,
    /// each key 32 bytes in standard base64, ids unique; the first seals.
    pub(crate) fn parse(text: &str) -> Result<Self> {
        let bad = |why: String| CacheError::Config(format!("encryption keys: {why}"));
        let mut keys: Vec<Key> = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (id, b64) = item
                .split_once(':')
                .ok_or_else(|| bad("each key is written `id:<base64 of 32 bytes>`".into()))?;
            let id = id.trim();
            if id.is_empty()
                || id.len() > MAX_KEY_ID
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
            {
                return Err(bad(format!(
                    "key id {id:?} must be 1 to {MAX_KEY_ID} characters of A-Z a-z 0-9 _ . -"
                )));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(bad(format!("key id {id:?} appears twice")));
            }
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .map(zeroize::Zeroizing::new)
                .map_err(|e| bad(format!("key {id:?} is not base64: {e}")))?;
            if raw.len() != 32 {
                return Err(bad(format!("key {id:?} is {} bytes; it must be 32", raw.len())));
            }
            let cipher =
                Aes256Gcm::new_from_slice(&raw).map_err(|_| bad(format!("key {id:?} is not a valid key")))?;
            let mut derive = <Hmac<Sha256> as Mac>::new_from_slice(&raw)
                .map_err(|_| bad(format!("key {id:?} is not a valid key")))?;
            derive.update(b"tiered-cache content id v1");
            let ids = <Hmac<Sha256> as Mac>::new_from_slice(&derive.finalize().into_bytes())
                .map_err(|_| bad(format!("key {id:?} is not a valid key")))?;
            keys.push(Key {
                id: id.to_owned(),
                cipher,
                ids,
            });
        }
        if keys.is_empty() {
            return Err(bad("no key given".into()));
        }
        Ok(Keyring {
            keys,
            nonces: Nonces::new(),
        })
    }

    /// The id that seals new values.
    #[cfg(test)]
    pub(crate) fn current_id(&self) -> &str {
        &self.keys[0].id
    }

    /// `envelope` (a plain envelope from the codec) sealed for `name` (namespace and key).
    /// Anything else is an error, never stored in clear.
    pub(crate) fn seal(&self, name: &[&str], envelope: &[u8]) -> Result<Vec<u8>, SealError> {
        let plain = codec::PlainParts::of(envelope).ok_or(SealError::Unsealable)?;
        let key = &self.keys[0];
        let mut out = Vec::with_capacity(envelope.len() + 8 + 1 + key.id.len() + NONCE_LEN + TAG);
        out.extend_from_slice(&codec::MAGIC);
        out.push(codec::sealed_header(plain.header));
        out.extend_from_slice(&plain.expires_at_ms.to_le_bytes());
        let mut ids = key.ids.clone();
        frame(&mut |b| ids.update(b), name);
        ids.update(&out[codec::MAGIC.len()..codec::PLAIN_HEADER]);
        ids.update(plain.body);
        out.extend_from_slice(&ids.finalize().into_bytes()[..8]);
        out.push(key.id.len() as u8);
        out.extend_from_slice(key.id.as_bytes());
        let nonce = self.nonces.next();
        out.extend_from_slice(&nonce);
        let aad = aad(name, &out[..codec::ID_HEADER], &key.id);
        let body_at = out.len();
        out.extend_from_slice(plain.body);
        // Encryption in memory fails only past GCM's length limit (64 GiB), far above
        // `max_value_size`.
        match key
            .cipher
            .encrypt_in_place_detached(Nonce::from_slice(&nonce), &aad, &mut out[body_at..])
        {
            Ok(tag) => out.extend_from_slice(&tag),
            Err(_) => return Err(SealError::Unsealable),
        }
        Ok(out)
    }

    /// The plain envelope of a sealed value stored under `name`.
    pub(crate) fn open(&self, name: &[&str], sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let header = *sealed.get(codec::MAGIC.len()).ok_or(SealError::Malformed)?;
        if !sealed.starts_with(&codec::MAGIC) || header >> 5 != SEALED_VERSION {
            return Err(SealError::Malformed);
        }
        let rest = sealed.get(codec::ID_HEADER..).ok_or(SealError::Malformed)?;
        let (&id_len, rest) = rest.split_first().ok_or(SealError::Malformed)?;
        let id_len = usize::from(id_len);
        let id = rest
            .get(..id_len)
            .and_then(|b| std::str::from_utf8(b).ok())
            .ok_or(SealError::Malformed)?;
        let nonce = rest.get(id_len..id_len + NONCE_LEN).ok_or(SealError::Malformed)?;
        let ct = rest.get(id_len + NONCE_LEN..).ok_or(SealError::Malformed)?;
        if ct.len() < TAG {
            return Err(SealError::Malformed);
        }
        let (ct, tag) = ct.split_at(ct.len() - TAG);
        let key = self.keys.iter().find(|k| k.id == id).ok_or_else(|| {
            // Only the characters an id may have: the text comes from whoever wrote Redis.
            let shown = id
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c));
            SealError::UnknownKey(shown.take(MAX_KEY_ID).collect())
        })?;
        let aad = aad(name, &sealed[..codec::ID_HEADER], id);
        // Decrypted in place, in the buffer that becomes the plain envelope.
        let mut out = Vec::with_capacity(codec::PLAIN_HEADER + ct.len());
        out.extend_from_slice(&codec::MAGIC);
        out.push(codec::unsealed_header(header));
        out.extend_from_slice(&sealed[codec::MAGIC.len() + 1..codec::PLAIN_HEADER]);
        out.extend_from_slice(ct);
        key.cipher
            .decrypt_in_place_detached(
                Nonce::from_slice(nonce),
                &aad,
                &mut out[codec::PLAIN_HEADER..],
                Tag::from_slice(tag),
            )
            .map_err(|_| SealError::Forged)?;
        Ok(out)
    }
}

/// Whether `bytes` is a sealed envelope (what [`Keyring::open`] takes).
pub(crate) fn is_sealed(bytes: &[u8]) -> bool {
    bytes.starts_with(&codec::MAGIC)
        && bytes
            .get(codec::MAGIC.len())
            .is_some_and(|h| h >> 5 == SEALED_VERSION)
}

/// Each part of the name as `u32 length ‖ text`: nothing of one part can pass for another.
fn frame(out: &mut dyn FnMut(&[u8]), name: &[&str]) {
    for part in name {
        out(&(part.len() as u32).to_le_bytes());
        out(part.as_bytes());
    }
}

/// The name (framed), then the header and the key id.
fn aad(name: &[&str], head: &[u8], key_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(head.len() + key_id.len() + 64);
    frame(&mut |b| aad.extend_from_slice(b), name);
    aad.extend_from_slice(head);
    aad.extend_from_slice(key_id.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::codec::Codec;

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const K2: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    fn ring(text: &str) -> Keyring {
        Keyring::parse(text).unwrap()
    }

    fn sealed(ring: &Keyring, key: &str, value: &str) -> Vec<u8> {
        let codec = Codec::new(64, 1, 1 << 20);
        ring.seal(&["", key], &codec.encode(value, 77).unwrap().bytes)
            .unwrap()
    }

    #[test]
    fn round_trips_and_hides_the_value() {
        let r = ring(&format!("k1:{K1}"));
        let codec = Codec::new(64, 1, 1 << 20);
        for value in ["short marker-text", &"long marker-text ".repeat(100)] {
            let s = sealed(&r, "q:a", value);
            assert!(is_sealed(&s));
            assert!(!s.windows(6).any(|w| w == b"marker"));
            let back = codec
                .decode::<String>(&r.open(&["", "q:a"], &s).unwrap())
                .unwrap();
            assert_eq!((back.value.as_str(), back.expires_at_ms), (value, 77));
        }
        // Two seals of one value differ (nonces) but carry one content id; another value or
        // another key, another id.
        let (a, b) = (sealed(&r, "q:a", "v"), sealed(&r, "q:a", "v"));
        assert_ne!(a, b);
        assert_eq!(a[..codec::ID_HEADER], b[..codec::ID_HEADER]);
        assert_ne!(codec::content_id(&a), codec::content_id(&sealed(&r, "q:a", "w")));
        assert_ne!(codec::content_id(&a), codec::content_id(&sealed(&r, "q:b", "v")));
        assert_eq!(
            r.seal(&["", "q:a"], b"not an envelope"),
            Err(SealError::Unsealable)
        );
    }

    #[test]
    fn refuses_moved_tampered_truncated_and_unknown() {
        let r = ring(&format!("k1:{K1}"));
        let s = sealed(&r, "q:a", "value");
        assert_eq!(r.open(&["", "q:b"], &s), Err(SealError::Forged));
        assert_eq!(r.open(&["ns", "q:a"], &s), Err(SealError::Forged));
        for i in [3, 4, 11, 12, 19, 20, 21, s.len() - 1, s.len() - 20] {
            let mut t = s.clone();
            t[i] ^= 1;
            assert!(r.open(&["", "q:a"], &t).is_err(), "byte {i}");
        }
        for n in 0..s.len() {
            assert!(r.open(&["", "q:a"], &s[..n]).is_err(), "cut at {n}");
        }
        let other = ring(&format!("k2:{K2}"));
        assert_eq!(
            other.open(&["", "q:a"], &s),
            Err(SealError::UnknownKey("k1".into()))
        );
        let same_id_other_key = ring(&format!("k1:{K2}"));
        assert_eq!(same_id_other_key.open(&["", "q:a"], &s), Err(SealError::Forged));
    }

    #[test]
    fn rotation_opens_with_every_key_and_seals_with_the_first() {
        let old = ring(&format!("k1:{K1}"));
        let both = ring(&format!("k2:{K2}, k1:{K1}"));
        let s = sealed(&old, "q:a", "v");
        assert!(both.open(&["", "q:a"], &s).is_ok());
        assert_eq!(both.current_id(), "k2");
        let new = sealed(&both, "q:a", "v");
        assert_eq!(
            old.open(&["", "q:a"], &new),
            Err(SealError::UnknownKey("k2".into()))
        );
    }

    #[test]
    fn bad_keyrings_are_config_errors() {
        for text in [
            "",
            "k1",
            &format!("k1:{K1},k1:{K2}"),
            "k1:AAAA",
            "k1:not base64!",
            &format!("bad id:{K1}"),
            &format!("{}:{K1}", "x".repeat(33)),
        ] {
            assert!(Keyring::parse(text).is_err(), "{text:?}");
        }
    }
}
