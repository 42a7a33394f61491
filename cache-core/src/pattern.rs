//! Redis-style glob patterns, matched the same way in L1 as Redis matches them in `SCAN MATCH`.

use std::borrow::Cow;
use std::fmt;

use globset::{GlobBuilder, GlobMatcher};

use crate::error::{CacheError, Result};

/// Characters that carry meaning in a Redis glob; escaped when user data is put into a pattern.
const GLOB_META: &[char] = &['*', '?', '[', ']', '\\', '{', '}', '^', '-', '!'];

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
    /// Compiles `pattern`; a malformed one (unclosed class, dangling escape) is an error.
    pub fn new(pattern: &str) -> Result<Self> {
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
        Ok(Pattern {
            source: pattern.to_owned(),
            matcher: glob.compile_matcher(),
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
    fn specificity_counts_literals() {
        assert!(
            Pattern::new("query:users:*").unwrap().specificity()
                > Pattern::new("query:*").unwrap().specificity()
        );
        assert!(Pattern::new("exact").unwrap().is_literal());
        assert!(!Pattern::new("ex*").unwrap().is_literal());
    }
}
