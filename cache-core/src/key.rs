//! Cache keys: the readable key (what Redis sees) and its 128-bit fingerprint (what L1 uses).
//!
//! A macro-cached call writes its key into a [`KeyBuf`] on the stack and hashes those bytes; only a
//! miss turns the buffer into a `String`. `cache.get("query:...")` hashes the same bytes, so both
//! paths reach the same L1 entry.

use std::fmt::{self, Write as _};

use serde::Serialize;

/// Stable 128-bit hash of a readable key (xxh3-128, seedless: same value in every process).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub u128);

impl Fingerprint {
    /// Fingerprint of a readable key.
    ///
    /// ```
    /// use cache_core::key::{Fingerprint, KeyBuf};
    /// let mut buf = KeyBuf::new();
    /// buf.push_str("query:");
    /// buf.push_part(&42u64);
    /// assert_eq!(buf.fingerprint(), Fingerprint::of("query:42"));
    /// ```
    #[inline]
    pub fn of(key: &str) -> Self {
        Self::of_bytes(key.as_bytes())
    }

    /// The one hashing rule, for a key already known to be UTF-8 (a [`KeyBuf`]'s bytes).
    #[inline]
    fn of_bytes(key: &[u8]) -> Self {
        Fingerprint(xxhash_rust::xxh3::xxh3_128(key))
    }
}

/// Bytes a key keeps inline before it moves to the heap.
const INLINE: usize = 128;

/// A key being built: inline up to 128 bytes, so building and hashing it allocates nothing.
///
/// ```
/// use cache_core::key::KeyBuf;
/// let mut k = KeyBuf::new();
/// k.push_str("resource:users:");
/// k.push_part(&7u32);
/// assert_eq!(k.as_str(), "resource:users:7");
/// ```
#[derive(Clone)]
pub struct KeyBuf {
    // A plain array and a length rather than a small-string type: appending is then one bounds
    // check and one copy, which a hit (that builds its key every time) pays for a few times.
    len: usize,
    inline: [u8; INLINE],
    /// The whole key once it outgrew `inline`; empty until then.
    spilled: String,
}

impl KeyBuf {
    /// An empty key.
    #[inline]
    pub fn new() -> Self {
        KeyBuf {
            len: 0,
            inline: [0; INLINE],
            spilled: String::new(),
        }
    }

    /// Appends literal text.
    #[inline]
    pub fn push_str(&mut self, s: &str) {
        let end = self.len + s.len();
        match self.inline.get_mut(self.len..end) {
            Some(dst) if self.spilled.is_empty() => {
                dst.copy_from_slice(s.as_bytes());
                self.len = end;
            }
            _ => self.push_spilled(s),
        }
    }

    #[cold]
    fn push_spilled(&mut self, s: &str) {
        if self.spilled.is_empty() {
            let inline = self.inline_str().to_owned();
            self.spilled = inline;
        }
        self.spilled.push_str(s);
    }

    /// The inline text. It is always whole `&str`s laid end to end, so it is valid UTF-8.
    #[inline]
    fn inline_str(&self) -> &str {
        std::str::from_utf8(&self.inline[..self.len]).unwrap_or_default()
    }

    /// Appends one argument with its [`KeyPart`] rule.
    #[inline]
    pub fn push_part<P: KeyPart + ?Sized>(&mut self, part: &P) {
        part.write_key_part(self);
    }

    /// Appends anything `Display`.
    #[inline]
    pub fn push_display<D: fmt::Display + ?Sized>(&mut self, d: &D) {
        // Writing into a KeyBuf cannot fail.
        let _ = write!(self, "{d}");
    }

    /// The readable key.
    #[inline]
    pub fn as_str(&self) -> &str {
        if self.spilled.is_empty() {
            self.inline_str()
        } else {
            &self.spilled
        }
    }

    /// The key's bytes (what the fingerprint hashes; no UTF-8 check).
    #[inline]
    fn as_bytes(&self) -> &[u8] {
        if self.spilled.is_empty() {
            &self.inline[..self.len]
        } else {
            self.spilled.as_bytes()
        }
    }

    /// The key's fingerprint, as [`Fingerprint::of`] would give for [`as_str`](Self::as_str).
    #[inline]
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_bytes(self.as_bytes())
    }
}

impl Default for KeyBuf {
    fn default() -> Self {
        KeyBuf::new()
    }
}

impl fmt::Write for KeyBuf {
    #[inline]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s);
        Ok(())
    }
}

/// A readable key, or something that can give one when asked: the sampled paths that need the
/// text take this, so a hit does not turn its bytes into a `&str` it then never reads.
pub(crate) trait KeyText {
    fn key_text(&self) -> &str;
}

impl KeyText for str {
    #[inline]
    fn key_text(&self) -> &str {
        self
    }
}

impl KeyText for KeyBuf {
    #[inline]
    fn key_text(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for KeyBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// How an argument is written into a readable key.
///
/// Implemented for integers, `bool`, `char`, strings and references to them; implement it for
/// your own types to control their key text. Arguments that do not implement it are written with
/// `Display` when they have it, else hashed from their `Serialize` form (bincode bytes, xxh3-64,
/// 16 hex digits), which is stable across processes and builds.
///
/// ```
/// use cache_core::key::{KeyBuf, KeyPart};
/// struct UserId(u64);
/// impl KeyPart for UserId {
///     fn write_key_part(&self, key: &mut KeyBuf) {
///         key.push_str("u");
///         key.push_part(&self.0);
///     }
/// }
/// let mut k = KeyBuf::new();
/// k.push_part(&UserId(5));
/// assert_eq!(k.as_str(), "u5");
/// ```
pub trait KeyPart {
    /// Appends this value's key text.
    fn write_key_part(&self, key: &mut KeyBuf);
}

macro_rules! int_key_part {
    ($($t:ty),*) => {$(
        impl KeyPart for $t {
            #[inline]
            fn write_key_part(&self, key: &mut KeyBuf) {
                key.push_str(itoa::Buffer::new().format(*self));
            }
        }
    )*};
}
int_key_part!(u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize);

impl KeyPart for bool {
    #[inline]
    fn write_key_part(&self, key: &mut KeyBuf) {
        key.push_str(if *self { "true" } else { "false" });
    }
}

impl KeyPart for char {
    #[inline]
    fn write_key_part(&self, key: &mut KeyBuf) {
        key.push_str(self.encode_utf8(&mut [0; 4]));
    }
}

impl KeyPart for str {
    #[inline]
    fn write_key_part(&self, key: &mut KeyBuf) {
        key.push_str(self);
    }
}

impl KeyPart for String {
    #[inline]
    fn write_key_part(&self, key: &mut KeyBuf) {
        key.push_str(self);
    }
}

impl<T: KeyPart + ?Sized> KeyPart for &T {
    #[inline]
    fn write_key_part(&self, key: &mut KeyBuf) {
        (**self).write_key_part(key);
    }
}

impl<T: KeyPart + ?Sized> KeyPart for std::sync::Arc<T> {
    #[inline]
    fn write_key_part(&self, key: &mut KeyBuf) {
        (**self).write_key_part(key);
    }
}

impl<T: KeyPart + ?Sized> KeyPart for Box<T> {
    #[inline]
    fn write_key_part(&self, key: &mut KeyBuf) {
        (**self).write_key_part(key);
    }
}

/// Writes the stable hash of a value's `Serialize` form: the documented rule for arguments that
/// have neither [`KeyPart`] nor `Display`.
///
/// ```
/// use cache_core::key::{write_serialized_hash, KeyBuf};
/// let mut a = KeyBuf::new();
/// write_serialized_hash(&vec![1u32, 2, 3], &mut a);
/// let mut b = KeyBuf::new();
/// write_serialized_hash(&vec![1u32, 2, 3], &mut b);
/// assert_eq!(a.as_str(), b.as_str());
/// assert_eq!(a.as_str().len(), 16);
/// ```
pub fn write_serialized_hash<T: Serialize + ?Sized>(value: &T, key: &mut KeyBuf) {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    let writer = HashWriter(&mut hasher);
    if let Err(e) = bincode::serde::encode_into_std_write(value, &mut { writer }, bincode::config::standard())
    {
        // Serialize impls that fail give no stable text; keep the key deterministic anyway.
        tracing::warn!(error = %e, "key argument failed to serialize; hashing its error text");
        hasher.update(e.to_string().as_bytes());
    }
    let _ = write!(key, "{:016x}", hasher.digest());
}

struct HashWriter<'a>(&'a mut xxhash_rust::xxh3::Xxh3);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_render_readably() {
        let mut k = KeyBuf::new();
        k.push_str("q:");
        k.push_part(&-5i64);
        k.push_str(":");
        k.push_part("abc");
        k.push_str(":");
        k.push_part(&true);
        k.push_str(":");
        k.push_part(&'x');
        assert_eq!(k.as_str(), "q:-5:abc:true:x");
        assert_eq!(k.fingerprint(), Fingerprint::of("q:-5:abc:true:x"));
    }

    #[test]
    fn long_keys_spill_to_heap_and_stay_equal() {
        let long = "x".repeat(500);
        let mut k = KeyBuf::new();
        k.push_str(&long);
        assert_eq!(k.as_str(), long);
        assert_eq!(k.fingerprint(), Fingerprint::of(&long));
    }

    #[test]
    fn keys_that_cross_the_inline_size_keep_every_part() {
        let mut k = KeyBuf::new();
        let mut expected = String::new();
        for i in 0..60u32 {
            k.push_str("é:");
            k.push_part(&i);
            expected.push_str("é:");
            expected.push_str(&i.to_string());
        }
        assert!(expected.len() > INLINE);
        assert_eq!(k.as_str(), expected);
        assert_eq!(k.fingerprint(), Fingerprint::of(&expected));
    }

    #[test]
    fn serialized_hash_differs_by_value() {
        let mut a = KeyBuf::new();
        write_serialized_hash(&(1u8, "a"), &mut a);
        let mut b = KeyBuf::new();
        write_serialized_hash(&(1u8, "b"), &mut b);
        assert_ne!(a.as_str(), b.as_str());
    }
}
