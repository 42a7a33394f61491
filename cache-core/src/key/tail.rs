//! Keys of one function argument after a constant head ([`KeyHead`]): their fingerprint is the
//! head's hash, computed at compile time, mixed with the argument ([`IntTailKey`],
//! [`TextTailKey`]), so an L1 hit writes no key text (a text argument that is empty or needs
//! escaping is the exception).

use std::cell::OnceCell;
use std::fmt;

use super::escape::any_needs_escape;
use super::{canonical_int, Fingerprint, KeyBuf, KeyText, HEAD_SEED};

/// The constant start of a key that ends in one integer or text argument, hashed at compile
/// time: `#[cache]` on `async fn f(id: u64)` or `async fn f(name: &str)` puts one in a `static`.
///
/// ```
/// use cache_core::key::{Fingerprint, KeyHead};
/// static HEAD: KeyHead = KeyHead::new("query:orders:");
/// let key = HEAD.key(42u64);
/// assert_eq!(key.fingerprint(), Fingerprint::of("query:orders:42"));
/// assert_eq!(key.as_str(), "query:orders:42");
/// ```
#[derive(Debug)]
pub struct KeyHead {
    text: &'static str,
    hash: u128,
}

impl KeyHead {
    /// Hashes `text`, which must end with `:` (checked when the `static` is compiled): the text
    /// rule splits a key at its last `:`, so the argument after the head is the key's tail.
    ///
    /// ```compile_fail
    /// static NO_COLON: cache_core::key::KeyHead = cache_core::key::KeyHead::new("user");
    /// ```
    pub const fn new(text: &'static str) -> Self {
        let bytes = text.as_bytes();
        assert!(
            !bytes.is_empty() && bytes[bytes.len() - 1] == b':',
            "a KeyHead ends with ':'"
        );
        KeyHead {
            text,
            hash: xxhash_rust::const_xxh3::xxh3_128_with_seed(bytes, HEAD_SEED),
        }
    }

    /// The key `head` + `n`, whose text is written only if asked for.
    #[inline]
    pub fn key(&'static self, n: impl IntKeyPart) -> IntTailKey {
        IntTailKey {
            head: self,
            n: n.key_int(),
            text: OnceCell::new(),
        }
    }

    /// The key `head` + `arg` as a text part, whose text is written only if asked for.
    #[inline]
    pub fn text_key<'a>(&'static self, arg: &'a str) -> TextTailKey<'a> {
        TextTailKey {
            head: self,
            arg,
            text: OnceCell::new(),
        }
    }
}

/// A key made of a [`KeyHead`] and one text argument (escaped as [`KeyBuf::push_text`] escapes
/// it). Its fingerprint takes only the argument when the argument is written as it is (not
/// empty, nothing to escape): its hash, or its value when it is a canonical integer; else it
/// writes the key and hashes that. The text is written once, on
/// first use. It borrows the argument.
///
/// ```
/// use cache_core::key::{Fingerprint, KeyHead};
/// static HEAD: KeyHead = KeyHead::new("query:users:");
/// let key = HEAD.text_key("ann");
/// assert_eq!(key.fingerprint(), Fingerprint::of("query:users:ann"));
/// assert_eq!(HEAD.text_key("a:b").as_str(), "query:users:a%3Ab");
/// ```
pub struct TextTailKey<'a> {
    head: &'static KeyHead,
    arg: &'a str,
    text: OnceCell<KeyBuf>,
}

impl TextTailKey<'_> {
    /// The fingerprint [`Fingerprint::of`] gives for [`as_str`](Self::as_str).
    #[inline]
    pub fn fingerprint(&self) -> Fingerprint {
        let arg = self.arg.as_bytes();
        // Written as it is (not empty, nothing to escape), the key's last `:` is the head's and
        // the tail is `arg`: the rule's own tail step, on the argument alone.
        if arg.is_empty() || any_needs_escape(arg) {
            return self.buf().fingerprint();
        }
        match canonical_int(arg) {
            Some(n) => Fingerprint::of_head_and_int(self.head.hash, n),
            None => Fingerprint::of_head_and_text(self.head.hash, arg),
        }
    }

    /// The key as a [`KeyBuf`], written on first use.
    pub fn buf(&self) -> &KeyBuf {
        self.text.get_or_init(|| {
            let mut k = KeyBuf::new();
            k.push_str(self.head.text);
            k.push_text(self.arg);
            k
        })
    }

    /// The readable key.
    pub fn as_str(&self) -> &str {
        self.buf().as_str()
    }
}

impl fmt::Debug for TextTailKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A key made of a [`KeyHead`] and an integer: its fingerprint needs no text, and the text is
/// written once, on first use (a miss, or the first sampled read of a new key).
pub struct IntTailKey {
    head: &'static KeyHead,
    n: i128,
    text: OnceCell<KeyBuf>,
}

impl IntTailKey {
    /// The fingerprint [`Fingerprint::of`] gives for [`as_str`](Self::as_str).
    #[inline]
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint::of_head_and_int(self.head.hash, self.n)
    }

    /// The key as a [`KeyBuf`], written on first use.
    pub fn buf(&self) -> &KeyBuf {
        self.text.get_or_init(|| {
            let mut k = KeyBuf::new();
            k.push_str(self.head.text);
            // Same digits as the i128, but 64-bit formatting is the cheaper one (P2 profile).
            match i64::try_from(self.n) {
                Ok(n) => k.push_part(&n),
                Err(_) => k.push_part(&(self.n as u64)),
            }
            k
        })
    }

    /// The readable key.
    pub fn as_str(&self) -> &str {
        self.buf().as_str()
    }
}

impl fmt::Debug for IntTailKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// Integer types whose key text is their decimal value, so a key ending in one can use
/// [`KeyHead`]: the integers of 64 bits and fewer.
pub trait IntKeyPart: Copy {
    /// The value, widened without loss.
    fn key_int(self) -> i128;
}

macro_rules! int_key_int {
    ($($t:ty),*) => {$(
        impl IntKeyPart for $t {
            #[inline]
            fn key_int(self) -> i128 {
                self as i128
            }
        }
    )*};
}
int_key_int!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

impl<T: IntKeyPart> IntKeyPart for &T {
    #[inline]
    fn key_int(self) -> i128 {
        (*self).key_int()
    }
}

impl KeyText for IntTailKey {
    #[inline]
    fn key_text(&self) -> &str {
        self.as_str()
    }
}

impl KeyText for TextTailKey<'_> {
    #[inline]
    fn key_text(&self) -> &str {
        self.as_str()
    }
}
