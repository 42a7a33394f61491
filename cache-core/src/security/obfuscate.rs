//! Key obfuscation: with a key secret, the argument part of every key (and tag) is replaced in
//! Redis by a keyed hash, so Redis, `MONITOR`, the slowlog and key listings never see argument
//! text, while the constant head stays readable for TTL patterns and prefix invalidation.
//!
//! Which part of a key is its readable head:
//! - a key of the macros' default shape, `{prefix}:{module path}::{fn}:{args}` with identifiers
//!   only up to the function's name and at most one `:` before the first `::`, keeps everything
//!   up to the `:` after the function name: `query:app::get_user:` + hash;
//! - any other key (direct API, key templates, tag records, a function without arguments, a
//!   custom prefix containing `:`) keeps its first `readable_segments` `:`-separated segments
//!   (default 1: `resource:` + hash); a key with fewer keeps everything up to its last `:`, and
//!   a key without `:` is hashed whole.
//!
//! A direct key written in the default shape (`users:alice::x:…`) is read as one: its text up
//! to the function-like part stays readable. Keys holding `::` otherwise (`session:fe80::1`)
//! are not of that shape and are hidden.
//!
//! The hash is HMAC-SHA256, under a key derived from the secret for names only, of the head, a
//! zero byte and the hidden part, truncated to 128 bits, as 32 hex digits: instances sharing the
//! secret map a key to the same name; without the secret a name cannot be traced back to its
//! text, not even by hashing guesses, and the same argument under two heads
//! (`query:app::get_user:` and `resource:`) gives two unrelated hashes.
//!
//! Pub/sub invalidation messages carry keys, patterns and tags, so with a secret their text is
//! sealed (AES-256-GCM under a key derived from the secret) before `PUBLISH`.

use std::borrow::Cow;

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::nonce::{Nonces, NONCE_LEN};
use crate::error::{CacheError, Result};
use crate::pattern::{self, Pattern};

/// Bytes of the truncated HMAC (128 bits).
const HASH_BYTES: usize = 16;
/// The shortest secret accepted.
pub(crate) const MIN_SECRET: usize = 16;
/// What starts a sealed bus message (never the start of a plain one, which is 16 hex digits).
const SEALED_MESSAGE: &str = "x ";

/// Maps keys and patterns to their Redis names.
pub(crate) struct Obfuscator {
    /// Keyed for names only.
    mac: Hmac<Sha256>,
    readable: usize,
    bus: Aes256Gcm,
    nonces: Nonces,
}

impl std::fmt::Debug for Obfuscator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Obfuscator")
            .field("readable", &self.readable)
            .finish_non_exhaustive()
    }
}

impl Obfuscator {
    /// From the secret (at least [`MIN_SECRET`] bytes) and the readable segments of keys that
    /// are not generated.
    pub(crate) fn new(secret: &str, readable: usize) -> Result<Self> {
        if secret.len() < MIN_SECRET {
            return Err(CacheError::Config(format!(
                "CACHE_KEY_SECRET is {} bytes; it must be at least {MIN_SECRET}",
                secret.len()
            )));
        }
        let root = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes())
            .map_err(|_| CacheError::Config("CACHE_KEY_SECRET is not a valid HMAC key".into()))?;
        // A key of its own for each use, the HMAC of a fixed label: no name hash is ever a key.
        let derive = |label: &[u8]| {
            let mut m = root.clone();
            m.update(label);
            m.finalize().into_bytes()
        };
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(&derive(b"tiered-cache names v1"))
            .map_err(|_| CacheError::Config("cannot derive the names key".into()))?;
        let bus = Aes256Gcm::new_from_slice(&derive(b"tiered-cache bus v1"))
            .map_err(|_| CacheError::Config("cannot derive the bus key".into()))?;
        Ok(Obfuscator {
            mac,
            readable: readable.max(1),
            bus,
            nonces: Nonces::new(),
        })
    }

    /// Where `key`'s readable head ends: `Some(n)` when the head is `key[..n]`, `None` when it
    /// does not end inside `key` (see the module's rule).
    fn cut(&self, key: &str) -> Option<usize> {
        generated_head(key).or_else(|| key.match_indices(':').nth(self.readable - 1).map(|(j, _)| j + 1))
    }

    /// The Redis name of `key` (before the namespace).
    ///
    /// Allocates only when something is hidden.
    pub(crate) fn key<'a>(&self, key: &'a str) -> Cow<'a, str> {
        let head = match self.cut(key) {
            Some(n) => n,
            None => key.rfind(':').map_or(0, |j| j + 1),
        };
        if head == key.len() {
            return Cow::Borrowed(key);
        }
        let mut mac = self.mac.clone();
        mac.update(&key.as_bytes()[..head]);
        mac.update(&[0]);
        mac.update(&key.as_bytes()[head..]);
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(head + 2 * HASH_BYTES);
        out.push_str(&key[..head]);
        for byte in &digest[..HASH_BYTES] {
            out.push(char::from(HEX[usize::from(byte >> 4)]));
            out.push(char::from(HEX[usize::from(byte & 15)]));
        }
        Cow::Owned(out)
    }

    /// The Redis pattern of a key pattern: an exact key maps to its name, `prefix*` to itself
    /// when the prefix ends inside the readable head of every key it can match; any other
    /// pattern puts a wildcard where Redis holds only hashes, and is an error that says so.
    pub(crate) fn pattern<'a>(&self, p: &'a str) -> Result<Cow<'a, str>> {
        let compiled = Pattern::new(p)?;
        if let Some(key) = compiled.literal_text() {
            return Ok(Cow::Owned(pattern::escape(&self.key(&key)).into_owned()));
        }
        if let Some(prefix) = compiled.open_prefix() {
            // Every key starting with `prefix` must have a readable head that covers it.
            let fits = match self.cut(&prefix) {
                Some(n) => n == prefix.len(),
                None => prefix.is_empty() || (prefix.ends_with(':') && !prefix.contains("::")),
            };
            if fits {
                return Ok(Cow::Borrowed(p));
            }
        }
        let suggestion = match self.cut(&compiled.literal_prefix()) {
            Some(n) => format!("{}*", pattern::escape(&compiled.literal_prefix()[..n])),
            None => "a prefix ending at `:`".to_owned(),
        };
        Err(CacheError::InvalidPattern {
            pattern: p.to_owned(),
            reason: format!(
                "with CACHE_KEY_SECRET set, the argument part of keys is a keyed hash in Redis, so a \
                 wildcard there cannot match; invalidate by tags (`invalidate_tags`), by exact key, or by \
                 a prefix of the readable part such as {suggestion}"
            ),
        })
    }

    /// `text` (an invalidation message) sealed for the bus.
    pub(crate) fn seal_message(&self, text: &str) -> String {
        let nonce = self.nonces.next();
        match self.bus.encrypt(Nonce::from_slice(&nonce), text.as_bytes()) {
            Ok(ct) => {
                let mut raw = nonce.to_vec();
                raw.extend_from_slice(&ct);
                format!(
                    "{SEALED_MESSAGE}{}",
                    base64::engine::general_purpose::STANDARD_NO_PAD.encode(raw)
                )
            }
            // Only past 64 GiB; a message that cannot be sealed is not sent in clear.
            Err(_) => SEALED_MESSAGE.to_owned(),
        }
    }

    /// The text of a sealed bus message; `None` when it is not one or does not open (a peer
    /// with another secret, or a forged message).
    pub(crate) fn open_message(&self, text: &str) -> Option<String> {
        let raw = base64::engine::general_purpose::STANDARD_NO_PAD
            .decode(text.strip_prefix(SEALED_MESSAGE)?)
            .ok()?;
        let nonce = raw.get(..NONCE_LEN)?;
        let plain = self
            .bus
            .decrypt(Nonce::from_slice(nonce), raw.get(NONCE_LEN..)?)
            .ok()?;
        String::from_utf8(plain).ok()
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The head of a key of the macros' default shape (see the module docs): its length through the
/// `:` after the function's name, or `None` for any other key.
fn generated_head(key: &str) -> Option<usize> {
    let i = key.find("::")?;
    let before = &key[..i];
    let module = match before.split_once(':') {
        Some((_, module)) if !module.contains(':') => module,
        Some(_) => return None,
        None => before,
    };
    if !is_ident(module) {
        return None;
    }
    let b = key.as_bytes();
    let (mut j, mut segment) = (i + 2, i + 2);
    while j < b.len() {
        match b[j] {
            b':' if b.get(j + 1) == Some(&b':') => {
                if !is_ident(&key[segment..j]) {
                    return None;
                }
                j += 2;
                segment = j;
            }
            b':' => return is_ident(&key[segment..j]).then_some(j + 1),
            c if c.is_ascii_alphanumeric() || c == b'_' => j += 1,
            _ => return None,
        }
    }
    None
}

/// A Rust identifier as `module_path!` writes one.
fn is_ident(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ob(readable: usize) -> Obfuscator {
        Obfuscator::new("0123456789abcdef-secret", readable).unwrap()
    }

    fn hidden(name: &str, head: &str) -> bool {
        name.strip_prefix(head)
            .is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
    }

    #[test]
    fn generated_keys_keep_the_function_and_hide_the_arguments() {
        let o = ob(1);
        let name = o.key("query:app::get_user:alice%3Ax:42");
        assert!(hidden(&name, "query:app::get_user:"), "{name}");
        assert!(hidden(&o.key("q:app::db::f:x"), "q:app::db::f:"));
        assert!(hidden(&o.key("app::f:3:4"), "app::f:"));
        assert_ne!(o.key("query:app::f:a:b"), o.key("query:app::f:a%3Ab"));
        // Not of the default shape: a function without arguments, `::` inside data, a custom
        // prefix with `:`, a non-identifier before the function's `:`.
        assert!(hidden(&o.key("query:app::config"), "query:"));
        assert!(hidden(&o.key("session:fe80::1"), "session:"));
        assert!(hidden(&o.key("resource:users:alice::x:secret"), "resource:"));
        assert!(hidden(&o.key("query:app::get-user:x"), "query:"));
        assert!(hidden(&o.key("a:b:c::f:x"), "a:"));
        // One argument under two heads: unrelated hashes.
        let (a, b) = (o.key("query:app::f:alice"), o.key("resource:alice"));
        assert_ne!(a[a.len() - 32..], b[b.len() - 32..]);
    }

    #[test]
    fn other_keys_keep_their_first_segments() {
        let o = ob(1);
        assert!(hidden(&o.key("resource:users:alice@example.com"), "resource:"));
        assert!(hidden(&o.key("tiered-cache:tag:user:42"), "tiered-cache:"));
        assert!(hidden(&o.key("alice@example.com"), ""));
        let o2 = ob(2);
        assert!(hidden(
            &o2.key("resource:users:alice@example.com"),
            "resource:users:"
        ));
        assert!(hidden(&o2.key("users:alice"), "users:"));
        // Same input, same name; another secret, another name.
        assert_eq!(o.key("a:b"), ob(1).key("a:b"));
        let other = Obfuscator::new("another secret of 16+", 1).unwrap();
        assert_ne!(o.key("a:b"), other.key("a:b"));
        assert!(Obfuscator::new("short", 1).is_err());
    }

    #[test]
    fn patterns_work_on_the_readable_head_and_are_refused_inside_the_hash() {
        let o = ob(1);
        for ok in ["*", "query:*", "query:app::get_user:*", "query:app::db::f:*"] {
            assert_eq!(o.pattern(ok).unwrap(), ok);
        }
        let exact = o.pattern("resource:users:1").unwrap();
        assert_eq!(exact, o.key("resource:users:1"));
        // An exact key written with escapes is still an exact key.
        let escaped = o.pattern("tag:a\\*b\\-c").unwrap();
        assert_eq!(escaped, o.key("tag:a*b-c"));
        for bad in [
            "resource:users:*",
            "query:app::get_user:al*",
            "qu*",
            "query:?:*",
            "*:users:*",
            "query:app::get_*",
            "query:app::*",
        ] {
            let e = o.pattern(bad).unwrap_err().to_string();
            assert!(e.contains("tags"), "{bad}: {e}");
        }
        assert!(ob(2).pattern("resource:users:*").is_ok());
    }

    #[test]
    fn bus_messages_round_trip_and_refuse_strangers() {
        let o = ob(1);
        let sealed = o.seal_message("0000000000000001 k resource:users:alice");
        assert!(!sealed.contains("alice"));
        assert_eq!(
            o.open_message(&sealed).unwrap(),
            "0000000000000001 k resource:users:alice"
        );
        let other = Obfuscator::new("another secret of 16+", 1).unwrap();
        assert_eq!(other.open_message(&sealed), None);
        assert_eq!(o.open_message("0000000000000001 c "), None);
    }
}
