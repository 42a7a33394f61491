//! Cache keys: the readable key (what Redis sees) and its 128-bit fingerprint (what L1 uses).
//!
//! # Key format 2: one key per argument list
//! A generated key is `{prefix}:{module}::{fn}:{part}:{part}…`, and the encoding is injective per
//! function: two different argument lists never share a key. Text parts (strings, `char`s,
//! `Display` fallbacks) are percent-escaped where they could be confused with the structure: `%`
//! becomes `%25`, `:` becomes `%3A`, and control characters (newlines included) become `%XX`; an
//! empty text part is a bare `%`.
//! Everything else, unicode included, is written as it is, so common keys stay readable
//! (`query:app::f:alice:42`). Integers, `bool`s and the serialized-hash fallback cannot contain
//! `:` and are written plainly. A part therefore never holds a `:`, so the parts of a key split
//! back unambiguously; a key template keeps that property because every text between two
//! placeholders must contain a `:` (checked when the macro expands).
//!
//! [`KEY_FORMAT`] names this encoding. It travels in the envelope of every stored value
//! (see [`crate::codec`]): an entry written under an older key format reads as a miss, so a key
//! whose text happens to equal an old-format key of other arguments is never misread.
//!
//! A macro-cached call writes its key into a [`KeyBuf`] on the stack and hashes those bytes; only a
//! miss turns the buffer into a `String`. `cache.get("query:...")` hashes the same bytes, so both
//! paths reach the same L1 entry.
//!
//! A key is fingerprinted from its head (up to and including its last `:`) and its last part,
//! apart: the part is mixed in as an integer's value when it is a canonical integer, else as the
//! hash of its text. The rule still reads only the text, so every path agrees, and it lets a
//! function keyed by one argument skip writing its key on an L1 hit: the head is hashed at
//! compile time ([`KeyHead`]) and the argument mixed in from a register ([`IntTailKey`]) or
//! hashed alone ([`TextTailKey`]).

use std::fmt::{self, Write as _};

use serde::Serialize;

mod escape;
mod tail;
use escape::{any_needs_escape, needs_escape, EscapingWriter, EMPTY_PART};
pub use tail::{IntKeyPart, IntTailKey, KeyHead, TextTailKey};

/// The version of the key encoding described in the [module docs](self); stored values carry it
/// in their envelope, so entries written under another encoding are never read.
pub const KEY_FORMAT: u8 = 2;

/// Stable 128-bit hash of a readable key: same value in every process and build.
///
/// A key with a `:` hashes as its head (seeded xxh3-128, up to and including the last `:`) xor
/// its tail (the rest): a bijective mix of the integer when the tail is a canonical one (as
/// `itoa` writes it, from `i64::MIN` to `u64::MAX`), else the xxh3-128 of the tail's bytes under
/// a third seed. A key without a `:` is the seedless xxh3-128 of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub u128);

/// Seed of a head's hash: keeps `head ^ tail` apart from the whole-text hashes of keys without
/// a `:`.
const HEAD_SEED: u64 = 0x6b65_795f_6865_6164;

/// Seed of a text tail's hash: keeps it apart from a head's and a whole key's.
const TAIL_SEED: u64 = 0x6b65_795f_7461_696c;

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
        // memchr's search, not `rposition`: LLVM folded that byte loop into the hash's setup and
        // spent ≈ 20 instructions a byte (callgrind, 2026-12-02).
        let Some(last) = memchr::memrchr(b':', key) else {
            return Fingerprint(xxhash_rust::xxh3::xxh3_128(key));
        };
        let (head, tail) = key.split_at(last + 1);
        let head = xxhash_rust::xxh3::xxh3_128_with_seed(head, HEAD_SEED);
        match canonical_int(tail) {
            Some(n) => Self::of_head_and_int(head, n),
            None => Self::of_head_and_text(head, tail),
        }
    }

    /// A head's hash and a tail that is not a canonical integer. A function keyed by one text
    /// argument hashes only the argument on a hit (its head is hashed at compile time).
    #[inline]
    fn of_head_and_text(head: u128, tail: &[u8]) -> Self {
        Fingerprint(head ^ xxhash_rust::xxh3::xxh3_128_with_seed(tail, TAIL_SEED))
    }

    #[inline]
    fn of_head_and_int(head: u128, n: i128) -> Self {
        // An odd multiplier and a xor-shift are both bijections, so no two integers of one head
        // share a fingerprint; the xor constant keeps 0 from mapping to 0 (the head's own hash).
        let x = ((n as u128) ^ 0x9e37_79b9_7f4a_7c15_0000_0000_0000_0000)
            .wrapping_mul(0xd6e8_feb8_6659_fd93_a076_1d64_78bd_642f);
        Fingerprint(head ^ x ^ (x >> 64))
    }
}

/// The integer a key's tail (the text after its last `:`) is, when it is a canonical one in
/// `i64::MIN..=u64::MAX`. Canonical means what `itoa` writes (no sign on positives, no leading
/// zeros, no `-0`), so each integer has exactly one text and any other tail is hashed as text.
#[inline]
fn canonical_int(tail: &[u8]) -> Option<i128> {
    let (negative, digits) = match tail.split_first()? {
        (b'-', rest) => (true, rest),
        _ => (false, tail),
    };
    // Most text tails are turned away by their first byte here.
    if digits.is_empty() || digits.len() > 20 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if digits[0] == b'0' && (digits.len() > 1 || negative) {
        return None;
    }
    let magnitude = digits
        .iter()
        .fold(0u128, |acc, d| acc * 10 + u128::from(d - b'0'));
    if negative {
        (magnitude <= 1u128 << 63).then(|| -(magnitude as i128))
    } else {
        (magnitude <= u128::from(u64::MAX)).then_some(magnitude as i128)
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

    /// Appends text as one key part, percent-escaping `%`, `:` and control characters, so the
    /// part can hold anything and still never run into its neighbours.
    ///
    /// ```
    /// use cache_core::key::KeyBuf;
    /// let mut k = KeyBuf::new();
    /// k.push_text("a:b%c\n");
    /// assert_eq!(k.as_str(), "a%3Ab%25c%0A");
    /// ```
    #[inline]
    pub fn push_text(&mut self, s: &str) {
        if s.is_empty() {
            self.push_str(EMPTY_PART);
            return;
        }
        self.push_text_chunk(s);
    }

    /// Escapes `s` with no special case for empty text (a piece of a longer part).
    #[inline]
    fn push_text_chunk(&mut self, s: &str) {
        // Most parts need no escape: one scan, then one copy.
        if !any_needs_escape(s.as_bytes()) {
            self.push_str(s);
            return;
        }
        self.push_escaped(s);
    }

    #[cold]
    fn push_escaped(&mut self, s: &str) {
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        let mut start = 0;
        for (i, b) in s.bytes().enumerate() {
            if needs_escape(b) {
                self.push_str(&s[start..i]);
                let esc = [b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]];
                // Three ASCII bytes: always valid UTF-8.
                self.push_str(std::str::from_utf8(&esc).unwrap_or_default());
                start = i + 1;
            }
        }
        self.push_str(&s[start..]);
    }

    /// Appends one argument with its [`KeyPart`] rule.
    #[inline]
    pub fn push_part<P: KeyPart + ?Sized>(&mut self, part: &P) {
        part.write_key_part(self);
    }

    /// Appends anything `Display` as one escaped text part (see [`push_text`](Self::push_text)).
    #[inline]
    pub fn push_display<D: fmt::Display + ?Sized>(&mut self, d: &D) {
        let before = self.as_bytes().len();
        // Writing into a KeyBuf cannot fail.
        let _ = write!(EscapingWriter(self), "{d}");
        if self.as_bytes().len() == before {
            self.push_str(EMPTY_PART);
        }
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
/// text take this, so a hit does not write or validate text it then never reads.
///
/// ```
/// use cache_core::key::{KeyBuf, KeyHead, KeyText};
/// static HEAD: KeyHead = KeyHead::new("user:");
/// assert_eq!(HEAD.key(7u32).key_text(), "user:7");
/// assert_eq!("user:7".key_text(), "user:7");
/// ```
pub trait KeyText {
    /// The readable key.
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
/// `Display` when they have it (escaped as text), else hashed from their `Serialize` form
/// (bincode bytes, xxh3-128, 32 hex digits), which is stable across processes and builds.
///
/// An implementation must keep keys apart: two different values must write different text, and
/// the text must not contain `:` (the part separator). Text from outside (names, user input)
/// goes through [`KeyBuf::push_text`], which guarantees both; [`KeyBuf::push_str`] is for
/// constant text.
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
        key.push_text(self.encode_utf8(&mut [0; 4]));
    }
}

impl KeyPart for str {
    #[inline]
    fn write_key_part(&self, key: &mut KeyBuf) {
        key.push_text(self);
    }
}

impl KeyPart for String {
    #[inline]
    fn write_key_part(&self, key: &mut KeyBuf) {
        key.push_text(self);
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
/// 128 bits, so that distinct values colliding is as unlikely as two fingerprints colliding.
///
/// ```
/// use cache_core::key::{write_serialized_hash, KeyBuf};
/// let mut a = KeyBuf::new();
/// write_serialized_hash(&vec![1u32, 2, 3], &mut a);
/// let mut b = KeyBuf::new();
/// write_serialized_hash(&vec![1u32, 2, 3], &mut b);
/// assert_eq!(a.as_str(), b.as_str());
/// assert_eq!(a.as_str().len(), 32);
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
    let _ = write!(key, "{:032x}", hasher.digest128());
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
mod tests;
