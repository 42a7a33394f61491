//! The Redis side of access control: the `ACL SETUSER` rule that lets a cache user reach only
//! its namespace and key patterns, with only the commands the engine sends.
//!
//! Print it with `cargo run -p cache-examples --bin acl-rule -- --user cache --pattern 'query:*'`
//! (the namespace and key secret come from the environment, as the service's do), or build it
//! with [`CacheConfig::acl_rule`].

use std::fmt;

use sha2::{Digest, Sha256};

use crate::config::CacheConfig;
use crate::error::{CacheError, Result};
use crate::security::Security;

/// Every command the engine sends to a data node (single server or Sentinel primary): reads,
/// stores (plain and through its scripts), pattern deletes (`SCAN` then a script), tag tokens
/// (`INCR`), pub/sub, health (`PING`, `INFO`) and the memory profile (`MEMORY USAGE`).
/// `tests/tests/tls_acl.rs` and `tests/tests/security.rs` run the engine under exactly these.
pub const ENGINE_COMMANDS: &[&str] = &[
    "get",
    "getrange",
    "mget",
    "set",
    "unlink",
    "exists",
    "pttl",
    "incr",
    "eval",
    "evalsha",
    "script|load",
    "publish",
    "subscribe",
    "scan",
    "ping",
    "info",
    "memory|usage",
];

/// An `ACL SETUSER` rule: `Display` writes the command, [`rules`](Self::rules) its arguments
/// after the user name.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct AclRule {
    /// The user.
    pub user: String,
    /// The rule's arguments, in order.
    pub rules: Vec<String>,
}

impl fmt::Display for AclRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ACL SETUSER {}", self.user)?;
        for r in &self.rules {
            write!(f, " {r}")?;
        }
        Ok(())
    }
}

impl CacheConfig {
    /// The rule of a Redis user that may run this cache over `patterns` only (every key when
    /// empty), inside the configured namespace: its keys (as Redis names them, obfuscated when
    /// a key secret is set), the cache's own records (tag tokens, invalidation markers, locks),
    /// its invalidation channel, and
    /// [`ENGINE_COMMANDS`]. The password is given as its SHA-256 (`#…`), so the printed rule
    /// does not carry it.
    ///
    /// A pattern that obfuscation cannot express in Redis is an error, as for invalidation.
    /// `clear()` scans the whole namespace and needs every key in it: give a user narrower than
    /// its namespace pattern invalidation instead. The cache's own records are shared by every
    /// user of the namespace (one may invalidate another's tags): tenants that must not touch
    /// each other get a namespace each.
    ///
    /// ```
    /// let config = cache_core::CacheConfig::builder().namespace("app").build().unwrap();
    /// let rule = config.acl_rule("cache", "s3cret", &["query:*", "resource:*"]).unwrap();
    /// let text = rule.to_string();
    /// assert!(text.starts_with("ACL SETUSER cache on #"));
    /// assert!(text.contains(" ~app:query:* ~app:resource:* ~app:tiered-cache:* "));
    /// assert!(text.contains(" &app:tiered-cache:invalidate:* ") && !text.contains("s3cret"));
    /// ```
    pub fn acl_rule(&self, user: &str, password: &str, patterns: &[&str]) -> Result<AclRule> {
        if user.is_empty() || user.contains(char::is_whitespace) {
            return Err(CacheError::Config(format!("ACL user {user:?} must be one word")));
        }
        if password.is_empty() {
            return Err(CacheError::Config("the ACL user needs a password".into()));
        }
        let security = Security::new(&self.security, self.namespace.as_deref())?;
        let ns = self
            .namespace
            .as_ref()
            .map(|n| format!("{n}:"))
            .unwrap_or_default();
        let mut rules = vec![
            "on".to_owned(),
            format!("#{:x}", Sha256::digest(password.as_bytes())),
            "resetkeys".to_owned(),
            "resetchannels".to_owned(),
            "-@all".to_owned(),
        ];
        if patterns.is_empty() {
            rules.push(format!("~{ns}*"));
        }
        for p in patterns {
            rules.push(format!("~{ns}{}", security.pattern(p)?));
        }
        rules.push(format!("~{ns}tiered-cache:*"));
        // Single-flight locks and `Cache::try_lock` (`lock:{name}`).
        rules.push(format!("~{ns}lock:*"));
        rules.push(match &self.invalidation_channel {
            Some(c) => format!("&{ns}{}", crate::pattern::escape(c)),
            None => format!("&{ns}tiered-cache:invalidate:*"),
        });
        rules.extend(ENGINE_COMMANDS.iter().map(|c| format!("+{c}")));
        Ok(AclRule {
            user: user.to_owned(),
            rules,
        })
    }
}
