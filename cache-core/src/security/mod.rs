//! Security at rest: encryption of values ([`seal`]) and obfuscation of key names
//! ([`obfuscate`]), both off until configured ([`SecurityConfig`](crate::config::SecurityConfig)).
//!
//! What each protects against, and what not (the README's threat model says the same):
//! - **Encryption** protects values from whoever can read Redis or the disk tier's files (a
//!   shared Redis, a dump, a backup, a stolen disk) and detects any change or move of a value:
//!   a tampered, swapped, truncated or unknown-key value is a logged, counted miss, reloaded
//!   and overwritten. It does not protect values in L1 (plaintext in the process's memory), from
//!   a process that holds the keys, or the metadata left readable: key names (see
//!   obfuscation), sizes, expiry times, and which keys are written when.
//! - **Obfuscation** keeps argument text out of Redis key names, `MONITOR`, the slowlog, pub/sub
//!   messages and the admin API's key listings. It does not hide the readable head
//!   (`query:app::get_user:`), how many distinct arguments there are, or access frequency; and
//!   without encryption the values themselves (tags inside them too) are plaintext.
//! - Whoever can *write* to Redis can still delete entries or fill memory; with encryption on,
//!   they cannot make the cache serve a value they chose.

mod nonce;
mod obfuscate;
mod seal;

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) use self::obfuscate::Obfuscator;
pub(crate) use self::seal::is_sealed;
use self::seal::Keyring;
pub use self::seal::SealError;
pub(crate) use self::seal::SEALED_VERSION;
use crate::config::SecurityConfig;
use crate::error::Result;
use crate::scope::Scope;

/// The compiled settings, shared by the engine (values) and the Redis tier (names).
#[derive(Debug, Default)]
pub(crate) struct Security {
    keyring: Option<Keyring>,
    /// Which keys are sealed; `None` with keys set: all.
    encrypt: Option<Scope>,
    obfuscator: Option<Obfuscator>,
    namespace: String,
    /// Values that did not open (or stood unsealed where sealing is required).
    refused: AtomicU64,
}

impl Security {
    /// From the settings; `namespace` is bound into every sealed value with its key.
    pub(crate) fn new(config: &SecurityConfig, namespace: Option<&str>) -> Result<Self> {
        let keyring = config.keys_text()?.map(|t| Keyring::parse(&t)).transpose()?;
        let encrypt = if config.encrypt.is_empty() {
            None
        } else if keyring.is_none() {
            // Fail closed: patterns that say "encrypt" with nothing to encrypt with would store
            // those values in clear.
            return Err(crate::error::CacheError::Config(
                "CACHE_ENCRYPT_PATTERNS is set but no encryption keys are (CACHE_ENCRYPTION_KEYS)".into(),
            ));
        } else {
            Some(Scope::new(&config.encrypt)?)
        };
        if config.readable_segments == 0 {
            return Err(crate::error::CacheError::Config(
                "CACHE_KEY_READABLE_SEGMENTS must be at least 1".into(),
            ));
        }
        let obfuscator = config
            .key_secret
            .as_ref()
            .map(|s| Obfuscator::new(s.expose(), config.readable_segments))
            .transpose()?;
        Ok(Security {
            keyring,
            encrypt,
            obfuscator,
            namespace: namespace.unwrap_or("").to_owned(),
            refused: AtomicU64::new(0),
        })
    }

    /// Whether values of `key` are sealed.
    fn seals(&self, key: &str) -> bool {
        self.keyring.is_some() && self.encrypt.as_ref().is_none_or(|s| s.allows_key(key))
    }

    /// `envelope` as stored for `key`: sealed when the key is under an encrypted pattern; an
    /// error (the value is then stored nowhere but L1) rather than plaintext.
    #[inline]
    pub(crate) fn seal(&self, key: &str, envelope: Vec<u8>) -> Result<Vec<u8>, SealError> {
        match &self.keyring {
            Some(ring) if self.seals(key) => ring.seal(&[&self.namespace, key], &envelope),
            _ => Ok(envelope),
        }
    }

    /// The plain envelope of what `key` holds: opened when sealed; a plain value where sealing
    /// is required, or a sealed one that does not open, is an error (counted).
    #[inline]
    pub(crate) fn open<'a>(&self, key: &str, bytes: &'a [u8]) -> Result<Cow<'a, [u8]>, SealError> {
        let out = if is_sealed(bytes) {
            match &self.keyring {
                Some(ring) => ring.open(&[&self.namespace, key], bytes).map(Cow::Owned),
                None => Err(SealError::NoKeys),
            }
        } else if self.seals(key) {
            Err(SealError::Unsealed)
        } else {
            Ok(Cow::Borrowed(bytes))
        };
        if out.is_err() {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        out
    }

    /// How many stored values were refused by [`open`](Self::open).
    pub(crate) fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// The obfuscator, when a key secret is set.
    pub(crate) fn obfuscator(&self) -> Option<&Obfuscator> {
        self.obfuscator.as_ref()
    }

    /// The name `key` has in Redis (before the namespace): itself, or obfuscated.
    pub(crate) fn name<'a>(&self, key: &'a str) -> Cow<'a, str> {
        match &self.obfuscator {
            Some(o) => o.key(key),
            None => Cow::Borrowed(key),
        }
    }

    /// Tag names as the cache keeps them below its API: obfuscated like keys when a key secret
    /// is set, so that neither Redis's tag records, the tag section of values nor pub/sub
    /// messages carry their text. Every instance sharing the secret maps a tag alike.
    pub(crate) fn tag_names<'a>(&self, tags: &[&'a str]) -> Vec<Cow<'a, str>> {
        tags.iter().map(|t| self.name(t)).collect()
    }

    /// The pattern Redis is asked to match for `pattern`; an error when obfuscation makes it
    /// impossible (see [`Obfuscator::pattern`]).
    pub(crate) fn pattern<'a>(&self, pattern: &'a str) -> Result<Cow<'a, str>> {
        match &self.obfuscator {
            Some(o) => o.pattern(pattern),
            None => Ok(Cow::Borrowed(pattern)),
        }
    }
}
