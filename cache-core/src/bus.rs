//! Multi-instance L1 invalidation: the messages instances send each other over the remote
//! tier's [`Bus`](crate::tier::Bus) (Redis pub/sub: `crate::redis`).
//!
//! Every write, delete, pattern invalidation and clear is published on one channel per keyspace
//! (`invalidation_channel`, default `tiered-cache:invalidate:<db>`); every instance sharing the
//! Redis evicts the matching L1 entries, so no instance serves its old copy after another one
//! wrote. Messages lost while the subscription was down cannot be replayed, so each
//! (re)subscription clears L1 first: after a disconnect an instance re-reads from Redis.
//!
//! Message: `<origin:016x> <kind> <payload>`; kinds: `k` one key (the payload is the key, whatever
//! it contains), `m` several keys, each framed as `<byte length>:<key>` (`5:query3:a:b`), `f` keys
//! a load filled (framed like `m`; they drop L1 copies but invalidate nothing), `p` a pattern,
//! `c` clear, `t` tags invalidated, each framed as `<byte length>:<tag>` followed by the 16 hex
//! digits of its new token. An instance ignores its own messages.
//!
//! Why `m` is length-prefixed: keys are arbitrary text, so no delimiter is safe; keys used to be
//! joined with `\n`, and a key containing a newline was split into two wrong keys and never
//! evicted. A malformed `m` payload (an older instance's `\n` list, a truncated message) names
//! keys this instance cannot trust, so it is read as `c`: dropping all of L1 costs re-reads,
//! keeping a stale copy costs correctness.

use crate::security::Obfuscator;

/// An invalidation, as sent and received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message {
    /// Written directly or deleted: other copies are stale, and loads in flight must not store.
    Keys(Vec<String>),
    /// Filled by a load: other instances drop their L1 copies, but nothing was invalidated, so
    /// their loads in flight may still store (see [`crate::guard`]).
    Filled(Vec<String>),
    Pattern(String),
    Clear,
    /// Tags invalidated, each with the token Redis now holds for it ([`crate::tags`]).
    Tags(Vec<(String, u64)>),
}

pub(crate) fn encode(origin: u64, msg: &Message) -> String {
    match msg {
        Message::Keys(keys) if keys.len() == 1 => format!("{origin:016x} k {}", keys[0]),
        Message::Keys(keys) => framed(origin, "m", keys),
        Message::Filled(keys) => framed(origin, "f", keys),
        Message::Pattern(p) => format!("{origin:016x} p {p}"),
        Message::Clear => format!("{origin:016x} c "),
        Message::Tags(tags) => {
            let mut text = format!("{origin:016x} t ");
            for (name, token) in tags {
                text.push_str(itoa::Buffer::new().format(name.len()));
                text.push(':');
                text.push_str(name);
                text.push_str(&format!("{token:016x}"));
            }
            text
        }
    }
}

/// `<origin> <kind> ` and each key as `<byte length>:<key>`.
fn framed(origin: u64, kind: &str, keys: &[String]) -> String {
    let mut text = format!("{origin:016x} {kind} ");
    text.reserve(keys.iter().map(|k| k.len() + 4).sum());
    let mut len = itoa::Buffer::new();
    for k in keys {
        text.push_str(len.format(k.len()));
        text.push(':');
        text.push_str(k);
    }
    text
}

/// `text` as published: sealed when a key secret is set (`crate::security`), so that keys,
/// patterns and tags never cross Redis in clear.
pub(crate) fn seal(text: String, obfuscator: Option<&Obfuscator>) -> String {
    match obfuscator {
        Some(o) => o.seal_message(&text),
        None => text,
    }
}

/// A received message: opened first when a key secret is set (then a message in clear, or one
/// sealed under another secret, is not ours).
pub(crate) fn open(text: &str, obfuscator: Option<&Obfuscator>) -> Option<(u64, Message)> {
    match obfuscator {
        Some(o) => decode(&o.open_message(text)?),
        None => decode(text),
    }
}

/// `(origin, message)`, or `None` for text that is not ours.
pub(crate) fn decode(text: &str) -> Option<(u64, Message)> {
    let mut parts = text.splitn(3, ' ');
    let origin = u64::from_str_radix(parts.next()?, 16).ok()?;
    let kind = parts.next()?;
    let payload = parts.next().unwrap_or("");
    let msg = match kind {
        "k" => Message::Keys(vec![payload.to_owned()]),
        "m" => decode_keys(payload).map_or(Message::Clear, Message::Keys),
        "f" => decode_keys(payload).map_or(Message::Clear, Message::Filled),
        "p" => Message::Pattern(payload.to_owned()),
        "c" => Message::Clear,
        "t" => decode_tags(payload).map_or(Message::Clear, Message::Tags),
        _ => return None,
    };
    Some((origin, msg))
}

/// The keys of an `m` payload: `<len>:<key>` repeated; `None` when it is not exactly that.
fn decode_keys(mut rest: &str) -> Option<Vec<String>> {
    let mut keys = Vec::new();
    while !rest.is_empty() {
        let (key, tail) = framed_item(rest)?;
        keys.push(key.to_owned());
        rest = tail;
    }
    Some(keys)
}

/// The tags of a `t` payload: `<len>:<tag><16 hex digits>` repeated; `None` when it is not
/// exactly that (then the receiver cannot tell which tags moved, and forgets them all).
fn decode_tags(mut rest: &str) -> Option<Vec<(String, u64)>> {
    let mut tags = Vec::new();
    while !rest.is_empty() {
        let (name, tail) = framed_item(rest)?;
        let token = tail.get(..16)?;
        if !token.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        tags.push((name.to_owned(), u64::from_str_radix(token, 16).ok()?));
        rest = tail.get(16..)?;
    }
    Some(tags)
}

/// One `<len>:<text>` off the front of `rest`: the text and what follows it.
fn framed_item(rest: &str) -> Option<(&str, &str)> {
    let (len, tail) = rest.split_once(':')?;
    // Digits only: `usize::from_str` would also take a leading `+`.
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let len: usize = len.parse().ok()?;
    // `get` is `None` past the end or inside a UTF-8 character.
    Some((tail.get(..len)?, tail.get(len..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for m in [
            Message::Keys(vec!["query:a b:1".into()]),
            Message::Keys(vec!["a".into(), "b c".into()]),
            Message::Filled(vec!["a\nb".into(), "".into(), "c".into()]),
            Message::Filled(vec!["one".into()]),
            Message::Pattern("resource:*".into()),
            Message::Clear,
            Message::Tags(vec![
                ("user:42".into(), 1),
                ("a\nb:5:{x}".into(), u64::MAX),
                ("".into(), 0),
            ]),
            Message::Tags(vec![]),
        ] {
            assert_eq!(decode(&encode(42, &m)), Some((42, m)));
        }
        assert_eq!(decode("hello"), None);
        assert_eq!(decode("zz k x"), None);
    }

    /// Keys are arbitrary text: none of these may be split, merged or lost on the way.
    #[test]
    fn keys_with_any_characters_round_trip() {
        let awkward = [
            "query:a\nb",
            "\n",
            "\n\n",
            "trailing\n",
            "with space",
            " ",
            "a:b:c",
            ":",
            "5:abcde",
            "3:",
            "0:",
            "*",
            "resource:[x]",
            "[",
            "\\",
            "é:ü:𝄞",
            "",
            "tab\tand\rreturn",
            "k m p c",
        ];
        let mut cases: Vec<Vec<String>> = awkward.iter().map(|k| vec![(*k).to_owned()]).collect();
        cases.push(awkward.iter().map(|k| (*k).to_owned()).collect());
        cases.push(vec![String::new(), String::new()]);
        cases.push(vec!["query:a".into(), "b".into()]); // once the same bytes as one key "query:a\nb"
        cases.push(vec![]);
        cases.push(
            (0..2000)
                .map(|i| format!("query:{i}\n{}", "é".repeat(i % 7)))
                .collect(),
        );
        for keys in cases {
            let m = Message::Keys(keys);
            assert_eq!(decode(&encode(7, &m)), Some((7, m.clone())), "{m:?}");
        }
        assert_ne!(
            encode(1, &Message::Keys(vec!["query:a\nb".into(), "c".into()])),
            encode(1, &Message::Keys(vec!["query:a".into(), "b".into(), "c".into()])),
        );
        for p in ["a\nb*", " ", "[*]\n"] {
            let m = Message::Pattern(p.into());
            assert_eq!(decode(&encode(9, &m)), Some((9, m.clone())));
        }
    }

    /// A key list that is not exactly `<len>:<key>...` cannot be trusted: drop all of L1.
    #[test]
    fn malformed_key_lists_clear() {
        let origin = "000000000000002a";
        for payload in [
            "a\nb",  // an older instance's newline-joined list
            "3:ab",  // truncated
            "x:abc", // no length
            "+1:a",  // a sign is not a digit
            "1:é",   // length inside a character
            "2:ab3", // length without a key
            "99999999999999999999999:a",
        ] {
            assert_eq!(
                decode(&format!("{origin} t {payload}")),
                Some((42, Message::Clear)),
                "{payload:?}"
            );
            assert_eq!(
                decode(&format!("{origin} m {payload}")),
                Some((42, Message::Clear)),
                "{payload:?}"
            );
        }
    }
}
