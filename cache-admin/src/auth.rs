//! Tokens, what each may do and touch, and how a request's bearer token is matched to one.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use cache_core::{Pattern, Scope};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::{ConditionallySelectable, ConstantTimeEq};

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// The read routes in full: stats, performance, memory, access patterns, metrics, and
    /// health's details.
    Read,
    /// `POST /api/v1/cache/clear`, inside the token's patterns (and tags).
    Clear,
    /// `POST /api/v1/cache/warmup`.
    Warmup,
    /// `POST /api/v1/cache/enabled`: turning the whole cache off or on (needs patterns `*`).
    Switch,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 4] = [Action::Read, Action::Clear, Action::Warmup, Action::Switch];

    /// The name used in the tokens file: `read`, `clear`, `warmup`, `switch`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "read",
            Action::Clear => "clear",
            Action::Warmup => "warmup",
            Action::Switch => "switch",
        }
    }

    fn bit(self) -> u8 {
        match self {
            Action::Read => 1,
            Action::Clear => 2,
            Action::Warmup => 4,
            Action::Switch => 8,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Action {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == s)
            .ok_or_else(|| format!("unknown action {s:?} (expected read, clear, warmup or switch)"))
    }
}

/// Why an admin configuration was refused. The messages name tokens by their `name`, never by
/// their secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AdminConfigError {
    /// The tokens file could not be read.
    #[error("cannot read the admin tokens file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The tokens file is not valid TOML of the expected shape.
    #[error("malformed admin tokens file{}: {message}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Malformed {
        /// The file, when the text came from one.
        path: Option<PathBuf>,
        /// The parser's message (the TOML error, without the file's text).
        message: String,
    },
    /// A token has no name.
    #[error("an admin token has an empty name")]
    EmptyName,
    /// A token's secret is empty.
    #[error("admin token {name:?} has an empty secret")]
    EmptySecret {
        /// The token's name.
        name: String,
    },
    /// A token lists no action, or one that does not exist.
    #[error("admin token {name:?}: {reason}")]
    Actions {
        /// The token's name.
        name: String,
        /// What is wrong.
        reason: String,
    },
    /// A key or tag pattern does not compile (or the list is empty).
    #[error("admin token {name:?}: bad {field} pattern: {reason}")]
    Pattern {
        /// The token's name.
        name: String,
        /// `patterns` or `tags`.
        field: &'static str,
        /// Why (cache-core's message).
        reason: String,
    },
    /// Two tokens share a name.
    #[error("two admin tokens are named {0:?}")]
    DuplicateName(String),
    /// Two tokens share a secret (which would make the first one's rights unreachable).
    #[error("admin tokens {first:?} and {second:?} have the same secret")]
    DuplicateSecret {
        /// The token configured first.
        first: String,
        /// The other.
        second: String,
    },
}

/// One bearer token: its name (logged), a digest of its secret, the actions it may take, the
/// key patterns it may touch and the tags it may invalidate.
///
/// The secret itself is not kept (only its SHA-256, compared in constant time) and never
/// printed: `Debug` shows the name, actions and scopes.
///
/// ```
/// use cache_admin::{Action, AdminToken};
/// let ops = AdminToken::new("ops", "s3cret")
///     .actions([Action::Read, Action::Clear])
///     .patterns(["tenant-a:*"])?
///     .tags(["tenant-a:*"])?;
/// assert!(ops.allows(Action::Clear) && !ops.allows(Action::Warmup));
/// assert!(!format!("{ops:?}").contains("s3cret"));
/// # Ok::<(), cache_admin::AdminConfigError>(())
/// ```
#[derive(Clone)]
pub struct AdminToken {
    name: String,
    digest: [u8; 32],
    empty_secret: bool,
    actions: u8,
    patterns: Scope,
    tags: Option<Scope>,
}

impl AdminToken {
    /// A token named `name` (the name is what logs show) with bearer secret `secret`: no
    /// actions yet, key patterns `*`, no tags.
    pub fn new(name: impl Into<String>, secret: impl AsRef<str>) -> Self {
        let secret = secret.as_ref();
        AdminToken {
            name: name.into(),
            digest: digest(secret),
            empty_secret: secret.is_empty(),
            actions: 0,
            patterns: Scope::all(),
            tags: None,
        }
    }

    /// A token that may do everything to every key and tag (what `CACHE_ADMIN_TOKEN` gives).
    pub fn full(name: impl Into<String>, secret: impl AsRef<str>) -> Self {
        let mut t = AdminToken::new(name, secret).actions(Action::ALL);
        t.tags = Some(Scope::all());
        t
    }

    /// Sets the actions it may take (replacing any set before).
    pub fn actions(mut self, actions: impl IntoIterator<Item = Action>) -> Self {
        self.actions = actions.into_iter().fold(0, |m, a| m | a.bit());
        self
    }

    /// Sets the key patterns it may clear and read the names of (default `*`). Malformed
    /// patterns, or none, are an error.
    pub fn patterns<I, S>(mut self, patterns: I) -> Result<Self, AdminConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.patterns = self.scope("patterns", patterns)?;
        Ok(self)
    }

    /// Sets the tag names it may invalidate, as patterns (default none: a tag spans keys of
    /// any pattern). Malformed patterns, or none, are an error.
    pub fn tags<I, S>(mut self, tags: I) -> Result<Self, AdminConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.tags = Some(self.scope("tags", tags)?);
        Ok(self)
    }

    fn scope<I, S>(&self, field: &'static str, patterns: I) -> Result<Scope, AdminConfigError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        Scope::new(patterns).map_err(|e| AdminConfigError::Pattern {
            name: self.name.clone(),
            field,
            reason: e.to_string(),
        })
    }

    /// The token's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it may take `action`.
    pub fn allows(&self, action: Action) -> bool {
        self.actions & action.bit() != 0
    }

    /// The keys it may touch.
    pub fn key_scope(&self) -> &Scope {
        &self.patterns
    }

    /// The tags it may invalidate; `None` for none.
    pub fn tag_scope(&self) -> Option<&Scope> {
        self.tags.as_ref()
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let actions: Vec<&str> = Action::ALL
            .into_iter()
            .filter(|a| self.allows(*a))
            .map(Action::as_str)
            .collect();
        f.debug_struct("AdminToken")
            .field("name", &self.name)
            .field("token", &"<redacted>")
            .field("actions", &actions)
            .field("patterns", &self.patterns)
            .field("tags", &self.tags)
            .finish()
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Admin API settings: the bearer tokens. Without any, every route but health's minimal form
/// answers loopback clients only, and [`serve_checked`](crate::serve_checked) refuses to bind
/// anything but loopback.
///
/// ```
/// use cache_admin::{Action, AdminConfig, AdminToken};
/// // One token with every right, as `CACHE_ADMIN_TOKEN` gives:
/// let simple = AdminConfig::with_token("s3cret")?;
/// // Or several, each limited:
/// let config = AdminConfig::new()
///     .token(AdminToken::new("tenant-a", "a-secret").actions([Action::Read, Action::Clear]).patterns(["tenant-a:*"])?)?
///     .token(AdminToken::new("dashboard", "d-secret").actions([Action::Read]))?;
/// assert_eq!(config.tokens().len(), 2);
/// // The same from a tokens file's text:
/// let from_file = AdminConfig::from_tokens_toml(r#"
///     [[tokens]]
///     name = "tenant-a"
///     token = "a-secret"
///     actions = ["read", "clear"]
///     patterns = ["tenant-a:*"]
/// "#)?;
/// assert_eq!(from_file.tokens()[0].name(), "tenant-a");
/// # Ok::<(), cache_admin::AdminConfigError>(())
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct AdminConfig {
    tokens: Vec<AdminToken>,
}

/// The tokens file's shape.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokensFile {
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    name: String,
    token: String,
    actions: Vec<String>,
    #[serde(default)]
    patterns: Option<Vec<String>>,
    #[serde(default)]
    tags: Option<Vec<String>>,
}

impl AdminConfig {
    /// No tokens: loopback clients only.
    pub fn new() -> Self {
        AdminConfig::default()
    }

    /// One token named `default` with every action on every key and tag.
    pub fn with_token(secret: impl AsRef<str>) -> Result<Self, AdminConfigError> {
        AdminConfig::new().token(AdminToken::full("default", secret))
    }

    /// Adds `token`. An empty name or secret, no action, or a name or secret another token
    /// already has, is an error.
    pub fn token(mut self, token: AdminToken) -> Result<Self, AdminConfigError> {
        if token.name.is_empty() {
            return Err(AdminConfigError::EmptyName);
        }
        if token.empty_secret {
            return Err(AdminConfigError::EmptySecret { name: token.name });
        }
        if token.actions == 0 {
            return Err(AdminConfigError::Actions {
                name: token.name,
                reason: "no actions (give at least one of read, clear, warmup)".into(),
            });
        }
        for t in &self.tokens {
            if t.name == token.name {
                return Err(AdminConfigError::DuplicateName(token.name));
            }
            if bool::from(t.digest.ct_eq(&token.digest)) {
                return Err(AdminConfigError::DuplicateSecret {
                    first: t.name.clone(),
                    second: token.name,
                });
            }
        }
        self.tokens.push(token);
        Ok(self)
    }

    /// Reads `CACHE_ADMIN_TOKEN` (one token named `default` with every right; empty = none)
    /// and `CACHE_ADMIN_TOKENS_FILE` (a TOML file of tokens, see the crate's docs; empty =
    /// none). Both may be set: the tokens are added together.
    pub fn from_env() -> Result<Self, AdminConfigError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut config = match var("CACHE_ADMIN_TOKENS_FILE") {
            Some(path) => AdminConfig::from_tokens_file(path)?,
            None => AdminConfig::new(),
        };
        if let Some(secret) = var("CACHE_ADMIN_TOKEN") {
            config = config.token(AdminToken::full("default", secret))?;
        }
        Ok(config)
    }

    /// The tokens of the TOML file at `path`.
    pub fn from_tokens_file(path: impl AsRef<Path>) -> Result<Self, AdminConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| AdminConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|e| match e {
            AdminConfigError::Malformed { message, .. } => AdminConfigError::Malformed {
                path: Some(path.to_owned()),
                message,
            },
            e => e,
        })
    }

    /// The tokens of a tokens file's text (`[[tokens]]` tables; see the crate's docs).
    pub fn from_tokens_toml(text: &str) -> Result<Self, AdminConfigError> {
        Self::parse(text)
    }

    fn parse(text: &str) -> Result<Self, AdminConfigError> {
        let file: TokensFile = toml::from_str(text).map_err(|e| AdminConfigError::Malformed {
            path: None,
            // `message()` only: the full rendering quotes the offending line, which may be a
            // secret.
            message: e.message().to_owned(),
        })?;
        let mut config = AdminConfig::new();
        for entry in file.tokens {
            let actions = entry
                .actions
                .iter()
                .map(|a| a.parse::<Action>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|reason| AdminConfigError::Actions {
                    name: entry.name.clone(),
                    reason,
                })?;
            let mut token = AdminToken::new(entry.name, entry.token).actions(actions);
            if let Some(p) = entry.patterns {
                token = token.patterns(p)?;
            }
            if let Some(t) = entry.tags {
                token = token.tags(t)?;
            }
            config = config.token(token)?;
        }
        Ok(config)
    }

    /// The configured tokens.
    pub fn tokens(&self) -> &[AdminToken] {
        &self.tokens
    }

    /// Whether any token is configured (else the routes answer loopback clients only).
    pub fn has_tokens(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The token whose secret is `given`. Every token is compared (SHA-256 digests, in
    /// constant time), so the time taken does not tell which one matched or how much of it.
    pub(crate) fn find(&self, given: &str) -> Option<&AdminToken> {
        let given = digest(given);
        let mut found = subtle::Choice::from(0);
        let mut index = 0u64;
        for (i, t) in self.tokens.iter().enumerate() {
            let eq = t.digest.ct_eq(&given);
            index.conditional_assign(&(i as u64), eq);
            found |= eq;
        }
        bool::from(found).then(|| &self.tokens[index as usize])
    }
}

/// Who is asking.
pub(crate) enum Caller<'a> {
    /// A configured token.
    Token(&'a AdminToken),
    /// No tokens are configured and the peer is on loopback: every right.
    Loopback,
    /// Tokens are configured and the request has none, or a wrong one.
    Unauthenticated,
    /// No tokens are configured and the peer is not on loopback (or unknown).
    Remote,
}

/// Who is asking, from the `Authorization` header's value and the peer address.
pub(crate) fn identify<'a>(
    config: &'a AdminConfig,
    authorization: Option<&str>,
    peer: Option<SocketAddr>,
) -> Caller<'a> {
    if config.has_tokens() {
        let given = authorization.and_then(|v| {
            let (scheme, rest) = v.split_at_checked(7)?;
            scheme.eq_ignore_ascii_case("bearer ").then_some(rest)
        });
        return match given.and_then(|g| config.find(g)) {
            Some(t) => Caller::Token(t),
            None => Caller::Unauthenticated,
        };
    }
    match peer {
        Some(addr) if addr.ip().is_loopback() => Caller::Loopback,
        _ => Caller::Remote,
    }
}

/// The rights of a caller that passed: its name for logs, its actions and scopes.
pub(crate) struct Rights<'a> {
    pub name: &'a str,
    pub keys: Option<&'a Scope>,
    pub tags: Option<Option<&'a Scope>>,
}

impl Rights<'_> {
    /// Whether `key` may be shown.
    pub fn shows_key(&self, key: &str) -> bool {
        self.keys.is_none_or(|s| s.allows_key(key))
    }

    /// Whether the key family `prefix` (keys `prefix` and `prefix:*`) may be named: the name is
    /// a key it may read, or every key of the family is inside its patterns.
    pub fn shows_prefix(&self, prefix: &str) -> bool {
        let Some(scope) = self.keys else { return true };
        scope.allows_key(prefix)
            || Pattern::new(&format!("{}:*", cache_core::pattern::escape(prefix)))
                .is_ok_and(|p| scope.allows_pattern(&p))
    }

    /// Whether `pattern` may be cleared.
    pub fn clears(&self, pattern: &Pattern) -> bool {
        self.keys.is_none_or(|s| s.allows_pattern(pattern))
    }

    /// Whether `tag` may be invalidated.
    pub fn invalidates_tag(&self, tag: &str) -> bool {
        match self.tags {
            None => true,
            Some(None) => false,
            Some(Some(s)) => s.allows_key(tag),
        }
    }
}

impl<'a> Caller<'a> {
    /// The rights when `action` is allowed, else why not.
    pub fn rights(&self, action: Action) -> Result<Rights<'a>, Refusal> {
        match self {
            Caller::Token(t) if t.allows(action) => Ok(Rights {
                name: &t.name,
                keys: (!t.patterns.is_all()).then_some(&t.patterns),
                tags: match &t.tags {
                    Some(s) if s.is_all() => None,
                    other => Some(other.as_ref()),
                },
            }),
            Caller::Token(t) => Err(Refusal::NotAllowed {
                name: t.name.clone(),
                action,
            }),
            Caller::Loopback => Ok(Rights {
                name: "loopback",
                keys: None,
                tags: None,
            }),
            Caller::Unauthenticated => Err(Refusal::Unauthenticated),
            Caller::Remote => Err(Refusal::Remote),
        }
    }
}

/// Why a request was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// 401.
    Unauthenticated,
    /// 403: the token lacks the action.
    NotAllowed { name: String, action: Action },
    /// 403: no tokens configured, peer not on loopback.
    Remote,
}

#[cfg(test)]
mod tests;
