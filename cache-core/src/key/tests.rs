//! Unit and property tests of the key encoding and the fingerprint rule.

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

static HEAD: KeyHead = KeyHead::new("q:mod::f:");

/// The head and the integer of a key whose tail is a canonical integer.
fn split_int_tail(key: &[u8]) -> Option<(&[u8], i128)> {
    let last = memchr::memrchr(b':', key)?;
    let (head, tail) = key.split_at(last + 1);
    Some((head, canonical_int(tail)?))
}

#[test]
fn integer_tails_agree_on_every_path() {
    let values: [i128; 12] = [
        0,
        1,
        9,
        10,
        42,
        -1,
        -10,
        i64::MAX as i128,
        i64::MIN as i128,
        u64::MAX as i128,
        i32::MIN as i128,
        u32::MAX as i128,
    ];
    for n in values {
        let text = format!("q:mod::f:{n}");
        let via_head = if n < 0 {
            HEAD.key(n as i64)
        } else {
            HEAD.key(n as u64)
        };
        let mut buf = KeyBuf::new();
        buf.push_str("q:mod::f:");
        buf.push_part(&n);
        assert_eq!(via_head.as_str(), text);
        assert_eq!(via_head.fingerprint(), Fingerprint::of(&text), "{text}");
        assert_eq!(buf.fingerprint(), Fingerprint::of(&text), "{text}");
        assert_eq!(split_int_tail(text.as_bytes()), Some((&b"q:mod::f:"[..], n)));
    }
    // A tail in the middle does not count: only the last part is read.
    assert_eq!(split_int_tail(b"a:5:b"), None);
    assert_eq!(split_int_tail(b"a:5:6"), Some((&b"a:5:"[..], 6)));
}

#[test]
fn non_canonical_tails_are_hashed_as_text() {
    for text in [
        "q:042",
        "q:-0",
        "q:+5",
        "q:--5",
        "q:4 2",
        "q42",
        "42",
        "q:18446744073709551616",
        "q:-9223372036854775809",
        "q:123456789012345678901",
        "q:",
        "",
    ] {
        assert_eq!(split_int_tail(text.as_bytes()), None, "{text}");
        assert_eq!(Fingerprint::of(text), by_the_rule(text), "{text}");
    }
    assert_eq!(
        split_int_tail(b"q:-9223372036854775808"),
        Some((&b"q:"[..], i128::from(i64::MIN)))
    );
}

/// The documented rule for a key whose tail is not a canonical integer, spelled out.
fn by_the_rule(text: &str) -> Fingerprint {
    use xxhash_rust::xxh3::{xxh3_128, xxh3_128_with_seed};
    match text.rfind(':') {
        Some(i) => Fingerprint(
            xxh3_128_with_seed(&text.as_bytes()[..=i], HEAD_SEED)
                ^ xxh3_128_with_seed(&text.as_bytes()[i + 1..], TAIL_SEED),
        ),
        None => Fingerprint(xxh3_128(text.as_bytes())),
    }
}

/// A text argument through [`KeyHead::text_key`], through a [`KeyBuf`] and as text: one key,
/// one fingerprint.
fn assert_text_tail_agrees(arg: &str) {
    let via_head = HEAD.text_key(arg);
    let mut buf = KeyBuf::new();
    buf.push_str("q:mod::f:");
    buf.push_part(arg);
    assert_eq!(via_head.as_str(), buf.as_str());
    let text = buf.as_str();
    assert_eq!(via_head.fingerprint(), Fingerprint::of(text), "{arg:?}");
    assert_eq!(buf.fingerprint(), Fingerprint::of(text), "{arg:?}");
    // A fresh key (its text not yet written) takes the same fast or slow way.
    assert_eq!(HEAD.text_key(arg).fingerprint(), Fingerprint::of(text), "{arg:?}");
}

#[test]
fn text_tails_agree_on_every_path() {
    for arg in [
        "ann",
        "customer-000123",
        "Zoë",
        "a b",
        "",
        "a:b",
        "100%",
        "line\nbreak",
        "42",
        "-42",
        "042",
        "-0",
        "-x",
        "18446744073709551616",
        "x42",
        "%",
        "ünïcode:part",
        "+42",
        "-",
        "0",
        "\u{7f}",
        "2024-05",
        "9f1c2e4a-uuid",
        &"n".repeat(200),
        &":%".repeat(100),
    ] {
        assert_text_tail_agrees(arg);
    }
    // Text that reads as an integer is the integer's key: the same entry as `f(42)`.
    assert_eq!(HEAD.text_key("42").fingerprint(), HEAD.key(42u64).fingerprint());
    assert_ne!(
        HEAD.text_key("ann").fingerprint(),
        HEAD.text_key("ann ").fingerprint()
    );
}

#[test]
fn head_and_tail_hashes_keep_keys_apart() {
    // Moving the last `:` moves where the text is split: different keys, different prints.
    let keys = ["a:bc", "ab:c", "abc", "a:b:c", "a::bc", "a:bc:", ":abc", "abc:"];
    let prints: std::collections::HashSet<_> = keys.iter().map(|k| Fingerprint::of(k)).collect();
    assert_eq!(prints.len(), keys.len());
}

#[test]
fn integer_tails_keep_keys_apart() {
    // The head alone, `0` and the other integers of two heads: all different.
    let mut seen = std::collections::HashSet::new();
    for head in ["a:", "b:"] {
        assert!(seen.insert(Fingerprint::of(head)));
        for n in (-20_000i64..20_000).chain([i64::MIN, i64::MAX]) {
            assert!(seen.insert(Fingerprint::of(&format!("{head}{n}"))), "{head}{n}");
        }
        assert!(seen.insert(Fingerprint::of(&format!("{head}{}", u64::MAX))));
    }
}

fn text(s: &str) -> String {
    let mut k = KeyBuf::new();
    k.push_text(s);
    k.as_str().to_owned()
}

/// The inverse of [`KeyBuf::push_text`], to show that nothing is lost.
fn unescape(s: &str) -> Option<String> {
    if s == "%" {
        return Some(String::new());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[test]
fn text_parts_escape_only_what_could_be_confused() {
    assert_eq!(text("alice"), "alice");
    assert_eq!(text("a@b.example/x-y_z é 日"), "a@b.example/x-y_z é 日");
    assert_eq!(text("a:b"), "a%3Ab");
    assert_eq!(text("50%"), "50%25");
    assert_eq!(text("l1\nl2\r\t\u{7f}"), "l1%0Al2%0D%09%7F");
    assert_eq!(text(""), "%");
    let mut k = KeyBuf::new();
    k.push_display(&"");
    assert_eq!(k.as_str(), "%", "an empty Display part too");
    // Display fallbacks go through the same escape, however the impl splits its writes.
    let mut k = KeyBuf::new();
    k.push_display(&format_args!("{}:{}", "a", "%"));
    assert_eq!(k.as_str(), "a%3A%25");
    // Long text crosses the inline buffer and stays escaped.
    let long = ":".repeat(100);
    assert_eq!(text(&long), "%3A".repeat(100));
}

/// The word-at-a-time scan against the byte rule: every byte value at every position of every
/// length up to three words, over backgrounds next to the escaped bytes (the places a borrow
/// between bytes could give a false answer).
#[test]
fn the_word_scan_agrees_with_the_byte_rule() {
    let bytewise = |s: &[u8]| s.iter().any(|&b| needs_escape(b));
    for background in [b'a', b'0', 0x21, 0x24, 0x26, 0x39, 0x3b, 0x7e, 0x80, 0xff] {
        for len in 1..=24 {
            for at in 0..len {
                for b in 0..=255u8 {
                    let mut s = vec![background; len];
                    s[at] = b;
                    assert_eq!(any_needs_escape(&s), bytewise(&s), "{s:?}");
                }
            }
        }
    }
    assert!(!any_needs_escape(b""));
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_word_scan_agrees_with_the_byte_rule_on_any_bytes(s in proptest::collection::vec(any::<u8>(), 0..64)) {
            prop_assert_eq!(any_needs_escape(&s), s.iter().any(|&b| needs_escape(b)));
        }

        /// Mostly bytes that need no escape (uniform bytes nearly always hold one), with now
        /// and then one that does.
        #[test]
        fn the_word_scan_agrees_with_the_byte_rule_on_mostly_clean_bytes(
            s in proptest::collection::vec(
                prop_oneof![
                    20 => (0x20u8..0x7f).prop_filter("clean", |b| *b != b'%' && *b != b':'),
                    10 => 0x80u8..=0xff,
                    1 => any::<u8>(),
                ],
                0..64,
            )
        ) {
            prop_assert_eq!(any_needs_escape(&s), s.iter().any(|&b| needs_escape(b)));
        }

        #[test]
        fn text_tails_agree_on_any_text(arg in "(-?[0-9]{0,4}|.{0,40}|[0-9:%a-]{0,24})") {
            assert_text_tail_agrees(&arg);
        }

        #[test]
        fn text_parts_are_injective_and_never_hold_the_separator(a in ".*", b in ".*") {
            let (ta, tb) = (text(&a), text(&b));
            prop_assert!(!ta.contains(':') && !ta.bytes().any(|c| c < 0x20));
            prop_assert_eq!(unescape(&ta), Some(a.clone()));
            if a != b {
                prop_assert_ne!(ta, tb);
            }
        }

        /// Two-part keys built the way the macros build them: distinct pairs, distinct keys.
        #[test]
        fn joined_parts_keep_pairs_apart(x in (".{0,8}", ".{0,8}"), y in (".{0,8}", ".{0,8}")) {
            let key = |(a, b): &(String, String)| {
                let mut k = KeyBuf::new();
                k.push_str("q:m::f:");
                k.push_part(a.as_str());
                k.push_str(":");
                k.push_part(b);
                (k.as_str().to_owned(), k.fingerprint())
            };
            if x != y {
                let (kx, ky) = (key(&x), key(&y));
                prop_assert_ne!(&kx.0, &ky.0);
                prop_assert_ne!(kx.1, ky.1);
            }
        }
    }
}

#[test]
fn serialized_hash_differs_by_value() {
    let mut a = KeyBuf::new();
    write_serialized_hash(&(1u8, "a"), &mut a);
    let mut b = KeyBuf::new();
    write_serialized_hash(&(1u8, "b"), &mut b);
    assert_ne!(a.as_str(), b.as_str());
}
