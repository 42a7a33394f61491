//! How a text key part is escaped: which bytes, how they are found, and the empty part's mark
//! (the rules of format 2 in the parent module's docs).

use std::fmt;

use super::KeyBuf;

/// How an empty text part is written: a bare `%`, which escaping never produces otherwise, so an
/// empty argument never leaves `::` in a key (where it could meet another function's key:
/// `m::f("", "g")` and `fn g()` in `mod m::f`).
pub(super) const EMPTY_PART: &str = "%";

/// Bytes a text part escapes: the escape itself, the part separator and control characters
/// (a newline in a key breaks logs, `redis-cli` and line-based tools).
#[inline]
pub(super) fn needs_escape(b: u8) -> bool {
    b == b'%' || b == b':' || b < 0x20 || b == 0x7f
}

/// Whether any byte of `s` [needs an escape](needs_escape), eight bytes at a time: a byte at a
/// time, the scan of a 15-byte string argument was 150 of its hit's ≈ 790 instructions
/// (callgrind, `hit_profile` with `MODE=str`).
#[inline]
pub(super) fn any_needs_escape(s: &[u8]) -> bool {
    let Some(last) = s.len().checked_sub(8) else {
        return s.iter().any(|&b| needs_escape(b));
    };
    let word = |w: &[u8]| w.first_chunk::<8>().is_some_and(|w| word_needs_escape(*w));
    // The tail is read as the last eight bytes, overlapping the last whole word: reading a
    // byte twice cannot change an "any".
    word(&s[last..]) || s.chunks_exact(8).any(word)
}

/// [`needs_escape`] of any of eight bytes, exactly (no false positive, no false negative): the
/// bit tricks "has a zero byte" and "has a byte below n" (n ≤ 128) are exact as a yes/no.
#[inline]
fn word_needs_escape(bytes: [u8; 8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_ne_bytes([0x80; 8]);
    let x = u64::from_ne_bytes(bytes);
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGHS;
    let zero = |x: u64| below(x, 1);
    let hits = below(x, 0x20)
        | zero(x ^ (ONES * u64::from(b'%')))
        | zero(x ^ (ONES * u64::from(b':')))
        | zero(x ^ (ONES * 0x7f));
    hits != 0
}

/// Escapes each piece a `Display` impl writes; escaping is per byte, so pieces can be split
/// anywhere without changing the result.
pub(super) struct EscapingWriter<'a>(pub(super) &'a mut KeyBuf);

impl fmt::Write for EscapingWriter<'_> {
    #[inline]
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.push_text_chunk(s);
        Ok(())
    }
}
