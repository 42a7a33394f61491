//! A set of key patterns that bounds what a caller may touch: the admin API's tokens and
//! [`Cache::scoped`](crate::Cache::scoped) handles both decide with it.
//!
//! Whether a key is inside is a plain match. Whether a *pattern* is inside (every key it can
//! match is) is undecidable for globs in general, so the rule is conservative: a pattern is
//! inside when it is one of the scope's patterns as written, when it is literal and a scope
//! pattern matches it, or when a scope pattern is a literal prefix then `*` (`tenant-a:*`) and
//! the pattern's own literal prefix starts with that prefix (`tenant-a:users:*`,
//! `tenant-a:[0-9]*`). Anything else is refused; nothing outside is ever allowed.

use std::fmt;

use crate::error::{CacheError, Result};
use crate::pattern::Pattern;

/// Key patterns a caller may touch.
///
/// ```
/// use cache_core::{Pattern, Scope};
/// let scope = Scope::new(["tenant-a:*", "shared:config"]).unwrap();
/// assert!(scope.allows_key("tenant-a:users:1"));
/// assert!(!scope.allows_key("tenant-b:users:1"));
/// assert!(scope.allows_pattern(&Pattern::new("tenant-a:users:*").unwrap()));
/// assert!(!scope.allows_pattern(&Pattern::new("tenant-*").unwrap()));
/// assert!(scope.allows_pattern(&Pattern::new("shared:config").unwrap()));
/// ```
#[derive(Clone)]
pub struct Scope {
    patterns: Vec<Compiled>,
}

#[derive(Clone)]
struct Compiled {
    pattern: Pattern,
    /// `Some(prefix)` when the pattern is `prefix*` with a literal prefix: every key starting
    /// with the prefix matches, which is what lets a narrower pattern be judged inside.
    open_prefix: Option<String>,
}

impl Scope {
    /// Compiles `patterns`; a malformed one is an error, and so is an empty list (a scope that
    /// allows nothing is a mistake, not a configuration).
    pub fn new<I, S>(patterns: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let patterns = patterns
            .into_iter()
            .map(|p| {
                let pattern = Pattern::new(p.as_ref())?;
                Ok(Compiled {
                    open_prefix: pattern.open_prefix(),
                    pattern,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        if patterns.is_empty() {
            return Err(CacheError::Config(
                "a scope needs at least one key pattern".into(),
            ));
        }
        Ok(Scope { patterns })
    }

    /// A scope that allows every key (`*`).
    pub fn all() -> Self {
        // `*` always compiles.
        Scope {
            patterns: vec![Compiled {
                pattern: Pattern::new("*").unwrap_or_else(|_| unreachable!("`*` compiles")),
                open_prefix: Some(String::new()),
            }],
        }
    }

    /// Whether `key` is inside the scope.
    pub fn allows_key(&self, key: &str) -> bool {
        self.patterns.iter().any(|c| c.pattern.matches(key))
    }

    /// Whether every key `pattern` can match is inside the scope (conservatively: see the
    /// module's docs).
    pub fn allows_pattern(&self, pattern: &Pattern) -> bool {
        let literal = pattern.literal_text();
        let prefix = pattern.literal_prefix();
        self.patterns.iter().any(|c| {
            c.pattern.as_str() == pattern.as_str()
                || literal.as_deref().is_some_and(|k| c.pattern.matches(k))
                || c.open_prefix.as_deref().is_some_and(|p| prefix.starts_with(p))
        })
    }

    /// Whether the scope allows every key.
    pub fn is_all(&self) -> bool {
        self.patterns.iter().any(|c| c.open_prefix.as_deref() == Some(""))
    }

    /// The patterns as written.
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(|c| c.pattern.as_str())
    }
}

impl fmt::Debug for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.patterns()).finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn allows(scope: &[&str], pattern: &str) -> bool {
        Scope::new(scope)
            .unwrap()
            .allows_pattern(&Pattern::new(pattern).unwrap())
    }

    #[test]
    fn narrower_patterns_are_inside_an_open_prefix() {
        assert!(allows(&["tenant-a:*"], "tenant-a:*"));
        assert!(allows(&["tenant-a:*"], "tenant-a:users:*"));
        assert!(allows(&["tenant-a:*"], "tenant-a:[0-9]*"));
        assert!(allows(&["tenant-a:*"], "tenant-a:x"));
        assert!(allows(&["*"], "anything:*"));
    }

    #[test]
    fn wider_or_sideways_patterns_are_refused() {
        assert!(!allows(&["tenant-a:*"], "tenant-*"));
        assert!(!allows(&["tenant-a:*"], "*"));
        assert!(!allows(&["tenant-a:*"], "tenant-b:*"));
        assert!(!allows(&["tenant-a:*"], "?enant-a:*"));
        // Not an open prefix: `*` inside, or a class, or an escaped star at the end.
        assert!(!allows(&["tenant-*:users"], "tenant-a:*"));
        assert!(!allows(&["t[a-z]:*"], "ta:x*"));
        assert!(!allows(&["tenant\\*"], "tenant*x"));
        assert!(allows(&["t[a-z]:*"], "tb:x"));
    }

    #[test]
    fn keys_match_plainly() {
        let scope = Scope::new(["a:*", "b:one"]).unwrap();
        assert!(scope.allows_key("a:"));
        assert!(scope.allows_key("b:one"));
        assert!(!scope.allows_key("b:two"));
        assert!(Scope::new(Vec::<String>::new()).is_err());
        assert!(Scope::new(["bad:["]).is_err());
        assert!(Scope::all().is_all() && !scope.is_all());
    }
}
