//! Redis-style glob patterns, matched the same way in L1 as Redis matches them in `SCAN MATCH`.

use std::borrow::Cow;
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use globset::{GlobBuilder, GlobMatcher};

use crate::error::{CacheError, Result};

/// Characters that carry meaning in a Redis glob; escaped when user data is put into a pattern.
const GLOB_META: &[char] = &['*', '?', '[', ']', '\\', '{', '}', '^', '-', '!'];

/// Longest pattern [`Pattern::new`] accepts, in bytes (1 KiB).
///
/// Why a limit: patterns come from outside (the admin API's `clear`, pub/sub messages of other
/// instances), and globset compiles them into a regex whose size grows with the pattern; past
/// its internal size limit globset panics instead of returning an error (a 500,000-character
/// pattern did). Every pattern up to this length compiles well inside that limit (a character
/// becomes at most a few NFA states), and real key patterns are a few dozen bytes.
pub const MAX_PATTERN_LEN: usize = 1024;

/// Characters of a rejected over-long pattern kept in its error, so the error (and the admin
/// API's reply) does not echo megabytes back.
const ERROR_PREVIEW_CHARS: usize = 64;

/// A compiled key pattern with Redis `MATCH` semantics: `*`, `?`, `[abc]`, `[^a-z]`, `\x`.
///
/// Braces are literal, as in Redis (they mark cluster hash tags), not alternations.
///
/// ```
/// use cache_core::Pattern;
/// let p = Pattern::new("resource:users:*").unwrap();
/// assert!(p.matches("resource:users:42"));
/// assert!(!p.matches("resource:orders:42"));
/// assert!(Pattern::new("broken:[").is_err());
/// ```
#[derive(Clone)]
pub struct Pattern {
    source: String,
    matcher: GlobMatcher,
    literal_chars: usize,
}

impl Pattern {
    /// Compiles `pattern`; a malformed one (unclosed class, dangling escape) or one longer than
    /// [`MAX_PATTERN_LEN`] bytes is an error. Never panics, whatever the input.
    pub fn new(pattern: &str) -> Result<Self> {
        if pattern.len() > MAX_PATTERN_LEN {
            // Checked before anything walks the text: the error names the limit, and carries
            // only the start of the pattern.
            return Err(CacheError::InvalidPattern {
                pattern: preview(pattern),
                reason: format!(
                    "pattern is {} bytes, longer than the limit of {MAX_PATTERN_LEN} bytes",
                    pattern.len()
                ),
            });
        }
        let invalid = |reason: String| CacheError::InvalidPattern {
            pattern: pattern.to_owned(),
            reason,
        };
        if pattern.is_empty() {
            return Err(invalid("pattern is empty".into()));
        }
        let translated = to_globset_syntax(pattern).map_err(|r| invalid(r.into()))?;
        let glob = GlobBuilder::new(&translated)
            .literal_separator(false)
            .backslash_escape(true)
            .build()
            .map_err(|e| invalid(e.kind().to_string()))?;
        // `compile_matcher` `expect`s its regex to build (globset 0.4: "regex compilation
        // shouldn't fail"); it fails only past the regex size limit, which the length bound
        // above keeps out of reach. Catching is the last line of defence should a globset
        // version panic on something shorter: a bad pattern from a request or a pub/sub message
        // must be an error, not a dead task (with `panic = "abort"` this cannot help).
        let matcher = catch_unwind(AssertUnwindSafe(|| glob.compile_matcher())).map_err(|_| {
            tracing::error!(pattern, "globset panicked compiling a pattern; rejected");
            invalid("the glob engine could not compile it".into())
        })?;
        Ok(Pattern {
            source: pattern.to_owned(),
            matcher,
            literal_chars: literal_chars(pattern),
        })
    }

    /// Whether `key` matches.
    pub fn matches(&self, key: &str) -> bool {
        self.matcher.is_match(key)
    }

    /// The pattern as written (what is sent to Redis).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// How specific the pattern is: the number of characters it matches literally.
    /// Used to pick the most specific TTL rule.
    pub fn specificity(&self) -> usize {
        self.literal_chars
    }

    /// True when the pattern matches only itself (no wildcard), so a plain `DEL` is enough.
    pub fn is_literal(&self) -> bool {
        self.literal_chars == self.source.chars().count() && !self.source.contains('\\')
    }

    /// The text every matching key starts with: the pattern up to its first `*`, `?` or `[`,
    /// with `\x` escapes resolved to `x`.
    ///
    /// ```
    /// use cache_core::Pattern;
    /// assert_eq!(Pattern::new("query:users:*").unwrap().literal_prefix(), "query:users:");
    /// assert_eq!(Pattern::new("a\\*b?").unwrap().literal_prefix(), "a*b");
    /// assert_eq!(Pattern::new("[a-z]*").unwrap().literal_prefix(), "");
    /// ```
    pub fn literal_prefix(&self) -> String {
        let mut prefix = String::new();
        let mut chars = self.source.chars();
        while let Some(c) = chars.next() {
            match c {
                '*' | '?' | '[' => break,
                // `new` rejects a dangling escape, so there is always a next character.
                '\\' => prefix.extend(chars.next()),
                _ => prefix.push(c),
            }
        }
        prefix
    }

    /// True when nothing literal anchors the start of the pattern ([`literal_prefix`] is
    /// empty), so it can match keys of every family: `*`, `?*`, `*:*`, `[a-z]*`. Deleting by
    /// such a pattern may empty the whole cache, so callers ask for confirmation first.
    ///
    /// The rule looks at the pattern only. A pattern with a prefix (`q*`) can still match every
    /// key when every key the application writes happens to start with it; the cache imposes
    /// no common prefix on the keys it is given (its `namespace` is added below the API and
    /// never appears in patterns), so there is no prefix it could know to be universal.
    ///
    /// [`literal_prefix`]: Pattern::literal_prefix
    ///
    /// ```
    /// use cache_core::Pattern;
    /// assert!(Pattern::new("*:*").unwrap().is_broad());
    /// assert!(!Pattern::new("query:*").unwrap().is_broad());
    /// assert!(!Pattern::new("\\*").unwrap().is_broad()); // a literal `*` key
    /// ```
    pub fn is_broad(&self) -> bool {
        self.literal_prefix().is_empty()
    }

    /// `Some(key)` when the pattern has no wildcard (escapes allowed): the one key it matches.
    ///
    /// ```
    /// use cache_core::Pattern;
    /// assert_eq!(Pattern::new("a\\*b").unwrap().literal_text().as_deref(), Some("a*b"));
    /// assert_eq!(Pattern::new("a*b").unwrap().literal_text(), None);
    /// ```
    pub fn literal_text(&self) -> Option<String> {
        let prefix = self.literal_prefix();
        let mut chars = self.source.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '*' | '?' | '[' => return None,
                _ => {}
            }
        }
        Some(prefix)
    }

    /// `Some(prefix)` when the pattern is literal text then one final `*` (`tenant-a:*`), so it
    /// matches exactly the keys that start with `prefix`; `None` for any other shape.
    ///
    /// ```
    /// use cache_core::Pattern;
    /// assert_eq!(Pattern::new("a\\?b:*").unwrap().open_prefix().as_deref(), Some("a?b:"));
    /// assert_eq!(Pattern::new("*").unwrap().open_prefix().as_deref(), Some(""));
    /// assert_eq!(Pattern::new("a:*:b").unwrap().open_prefix(), None);
    /// assert_eq!(Pattern::new("a\\*").unwrap().open_prefix(), None);
    /// ```
    pub fn open_prefix(&self) -> Option<String> {
        let mut chars = self.source.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    chars.next();
                }
                '*' => return (i + 1 == self.source.len()).then(|| self.literal_prefix()),
                '?' | '[' => return None,
                _ => {}
            }
        }
        None
    }
}

/// The first characters of `pattern`, for an error about a pattern too long to echo in full.
fn preview(pattern: &str) -> String {
    match pattern.char_indices().nth(ERROR_PREVIEW_CHARS) {
        Some((end, _)) => format!("{}...", &pattern[..end]),
        None => pattern.to_owned(),
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Pattern").field(&self.source).finish()
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

/// Escapes glob metacharacters so `value` matches only itself inside a pattern.
///
/// Used for `{arg}` values in `#[invalidate_cache("resource:users:{id}")]`, so user input
/// can never widen an invalidation.
///
/// ```
/// use cache_core::pattern::escape;
/// assert_eq!(escape("42"), "42");
/// assert_eq!(escape("a*b"), "a\\*b");
/// ```
pub fn escape(value: &str) -> Cow<'_, str> {
    if !value.contains(GLOB_META) {
        return Cow::Borrowed(value);
    }
    let mut out = String::with_capacity(value.len() + 4);
    escape_into(value, &mut out);
    Cow::Owned(out)
}

/// [`escape`] appending to an existing buffer.
pub fn escape_into(value: &str, out: &mut String) {
    for c in value.chars() {
        if GLOB_META.contains(&c) {
            out.push('\\');
        }
        out.push(c);
    }
}

/// Redis treats `{`, `}` and `,` literally; globset reads braces as alternation, so escape
/// them outside classes. Escapes are kept as they are.
fn to_globset_syntax(pattern: &str) -> std::result::Result<String, &'static str> {
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let next = chars.next().ok_or("pattern ends with a dangling '\\'")?;
                out.push('\\');
                out.push(next);
            }
            '[' if !in_class => {
                in_class = true;
                out.push(c);
            }
            ']' if in_class => {
                in_class = false;
                out.push(c);
            }
            '{' | '}' | ',' if !in_class => {
                out.push('\\');
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    if in_class {
        return Err("unclosed character class '['");
    }
    Ok(out)
}

fn literal_chars(pattern: &str) -> usize {
    let mut n = 0;
    let mut chars = pattern.chars();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
                n += 1;
            }
            '[' if !in_class => in_class = true,
            ']' if in_class => in_class = false,
            '*' | '?' if !in_class => {}
            _ if in_class => {}
            _ => n += 1,
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_semantics() {
        let cases = [
            ("query:*", "query:a:b", true),
            ("query:*", "resource:a", false),
            ("a?c", "abc", true),
            ("a?c", "ac", false),
            ("user:[0-9]", "user:7", true),
            ("user:[^0-9]", "user:7", false),
            ("tag:{x}:*", "tag:{x}:1", true),
            ("tag:{x}:*", "tag:x:1", false),
            ("a,b", "a,b", true),
            ("lit\\*", "lit*", true),
            ("lit\\*", "litx", false),
            ("*", "anything/with/slashes", true),
        ];
        for (p, k, want) in cases {
            assert_eq!(Pattern::new(p).unwrap().matches(k), want, "{p} vs {k}");
        }
    }

    #[test]
    fn malformed_patterns_are_errors() {
        for p in ["", "a[", "a\\", "[abc"] {
            assert!(
                matches!(Pattern::new(p), Err(CacheError::InvalidPattern { .. })),
                "{p:?} should be rejected"
            );
        }
    }

    #[test]
    fn escaped_values_match_only_themselves() {
        for v in ["*", "a?b", "[x]", "{t}", "back\\slash", "^-!"] {
            let p = Pattern::new(&format!("k:{}", escape(v))).unwrap();
            assert!(p.matches(&format!("k:{v}")), "{v}");
            assert!(!p.matches("k:other"), "{v}");
        }
    }

    #[test]
    fn literal_prefix_stops_at_the_first_wildcard_and_resolves_escapes() {
        let cases = [
            ("query:*", "query:"),
            ("query:users:42", "query:users:42"),
            ("*", ""),
            ("?*", ""),
            ("*:*", ""),
            ("[a-z]*", ""),
            ("[q]uery:*", ""),
            ("\\*", "*"),
            ("\\*\\?x*", "*?x"),
            ("a\\[b]", "a[b]"),
            ("tag:{x}:*", "tag:{x}:"),
            ("a]b^-!*", "a]b^-!"),
            ("é:ü?", "é:ü"),
            ("back\\\\slash*", "back\\slash"),
        ];
        for (p, want) in cases {
            assert_eq!(Pattern::new(p).unwrap().literal_prefix(), want, "{p:?}");
        }
    }

    #[test]
    fn broad_means_no_literal_prefix() {
        for p in [
            "*",
            "**",
            "?*",
            "*:*",
            "[a-z]*",
            "[^x]*",
            "?",
            "[q]uery:*",
            "*query",
        ] {
            assert!(Pattern::new(p).unwrap().is_broad(), "{p:?} should be broad");
        }
        for p in ["\\*", "query:*", "q*", "resource:users:42", "\\?*"] {
            assert!(!Pattern::new(p).unwrap().is_broad(), "{p:?} should not be broad");
        }
    }

    /// Patterns at the limit, each built to stress one part of the translation.
    fn at_the_limit() -> Vec<(&'static str, String)> {
        let fill = |unit: &str| {
            let mut s = unit.repeat(MAX_PATTERN_LEN / unit.len());
            s.push_str(&"a".repeat(MAX_PATTERN_LEN - s.len()));
            s
        };
        vec![
            ("literals", fill("a")),
            ("stars", fill("*")),
            ("questions", fill("?")),
            ("ranges", fill("[a-z]")),
            ("negated classes", fill("[^a]")),
            ("bracket classes", fill("[[]")),
            ("one long class", format!("[{}]", "[".repeat(MAX_PATTERN_LEN - 2))),
            ("escaped stars", fill("\\*")),
            ("escaped backslashes", fill("\\\\")),
            ("braces and commas", fill("{,}")),
            ("2-byte characters", fill("é")),
            ("4-byte characters", fill("𝄞")),
            ("4-byte ranges", fill("[𝄞-𝅘𝅥𝅮]")),
            ("posix-looking classes", fill("[[:alpha:]]")),
            ("mixed", fill("*?[^a-z\\*]\\[é{")),
        ]
    }

    #[test]
    fn patterns_of_exactly_the_limit_compile() {
        for (what, p) in at_the_limit() {
            assert_eq!(p.len(), MAX_PATTERN_LEN, "{what}");
            let compiled = Pattern::new(&p);
            assert!(compiled.is_ok(), "{what}: {compiled:?}");
        }
        assert!(Pattern::new(&"*".repeat(MAX_PATTERN_LEN))
            .unwrap()
            .matches("anything"));
    }

    #[test]
    fn one_byte_over_the_limit_is_an_error_naming_it() {
        for (what, mut p) in at_the_limit() {
            p.push('a');
            match Pattern::new(&p) {
                Err(e @ CacheError::InvalidPattern { .. }) => {
                    let text = e.to_string();
                    assert!(text.contains("1024"), "{what}: {text}");
                    assert!(text.contains("1025"), "{what}: {text}");
                }
                other => panic!("{what}: {other:?}"),
            }
        }
    }

    /// The input that made globset panic ("regex compilation shouldn't fail") and the admin
    /// handler drop the connection.
    #[test]
    fn huge_patterns_are_errors_that_do_not_echo_the_pattern() {
        for p in [
            "a".repeat(500_000),
            "*".repeat(500_000),
            "[a-z]".repeat(100_000),
            "é".repeat(250_000),
        ] {
            let e = Pattern::new(&p).unwrap_err();
            let text = e.to_string();
            assert!(text.contains("limit of 1024 bytes"), "{text}");
            assert!(
                text.len() < 400,
                "the error carries a preview only: {} bytes",
                text.len()
            );
        }
    }

    mod props {
        use proptest::prelude::*;

        use super::super::*;

        /// Glob-heavy text: metacharacters, escapes, multi-byte and arbitrary characters.
        fn globby() -> impl Strategy<Value = String> {
            let piece = prop_oneof![
                Just("*".to_owned()),
                Just("?".to_owned()),
                Just("[".to_owned()),
                Just("]".to_owned()),
                Just("\\".to_owned()),
                Just("^".to_owned()),
                Just("-".to_owned()),
                Just("!".to_owned()),
                Just("{".to_owned()),
                Just("}".to_owned()),
                Just(",".to_owned()),
                Just(":".to_owned()),
                Just("[:alpha:]".to_owned()),
                "[a-zé𝄞]{1,4}",
                any::<char>().prop_map(String::from),
            ];
            proptest::collection::vec(piece, 0..700).prop_map(|v| v.concat())
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

            /// Never panics; within the limit, a rejection is a syntax error, never a caught
            /// globset panic (the bound alone keeps globset in range).
            #[test]
            fn any_pattern_compiles_or_is_rejected_cleanly(p in globby()) {
                match Pattern::new(&p) {
                    Ok(compiled) => {
                        prop_assert!(p.len() <= MAX_PATTERN_LEN);
                        let _ = compiled.matches(&p);
                        prop_assert!(compiled.literal_prefix().len() <= p.len());
                    }
                    Err(CacheError::InvalidPattern { reason, .. }) => {
                        prop_assert!(!reason.contains("glob engine"), "{reason}");
                        if p.len() > MAX_PATTERN_LEN {
                            prop_assert!(reason.contains("1024"), "{reason}");
                        }
                    }
                    Err(other) => prop_assert!(false, "unexpected error {other:?}"),
                }
            }

            /// A pattern's literal prefix is a prefix of every key it matches.
            #[test]
            fn matching_keys_start_with_the_literal_prefix(p in globby(), key in "[a-z:*?\\[\\]]{0,12}") {
                if let Ok(compiled) = Pattern::new(&p) {
                    let prefix = compiled.literal_prefix();
                    let candidate = format!("{prefix}{key}");
                    if compiled.matches(&candidate) {
                        prop_assert!(candidate.starts_with(&prefix));
                    }
                    if compiled.matches(&key) {
                        prop_assert!(key.starts_with(&prefix), "{p:?} matched {key:?} without {prefix:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn specificity_counts_literals() {
        assert!(
            Pattern::new("query:users:*").unwrap().specificity()
                > Pattern::new("query:*").unwrap().specificity()
        );
        assert!(Pattern::new("exact").unwrap().is_literal());
        assert!(!Pattern::new("ex*").unwrap().is_literal());
    }
}
