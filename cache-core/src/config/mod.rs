//! Configuration: from code (builder), from a TOML file, or from the environment.
//!
//! Why this file is past ~600 lines: every setting appears once in each of the struct, the
//! defaults, the environment reader, the builder and validation, which are kept side by side so
//! a new setting is added in one place; the tests are a fifth of it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{CacheError, Result};
use crate::pattern::Pattern;
use crate::strategy::Strategy;

mod analytics;
mod anomaly;
mod disk;
mod redis;
mod security;

pub use self::analytics::{AnalyticsConfig, AutoTtl};
pub use self::anomaly::{AnomalyConfig, Sensitivity};
#[cfg(feature = "disk")]
pub(crate) use self::disk::DiskPolicies;
pub(crate) use self::disk::Policy;
pub use self::disk::{DiskConfig, DiskPolicy, ReadOrder, WritePolicy};
pub use self::redis::{RedisTopology, Secret};
pub use self::security::SecurityConfig;
/// Sizes in the disk tier's settings (`"10GiB"` in TOML and the environment).
pub use bytesize::ByteSize;

/// Every setting of a [`Cache`](crate::Cache). Fields are public; [`CacheConfig::builder`] is the
/// shorter way to set a few, and [`Cache::new`](crate::Cache::new) validates them.
///
/// ```
/// use std::time::Duration;
/// use cache_core::CacheConfig;
/// let config = CacheConfig::builder()
///     .ttl_default(Duration::from_secs(120))
///     .ttl_pattern("query:users:*", Duration::from_secs(30))
///     .build()
///     .unwrap();
/// assert!(config.redis_url.is_none()); // L1-only until a URL is given
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct CacheConfig {
    /// `redis://` or `rediss://` (TLS) URL of a single Redis, user and password optional
    /// (`redis://user:pw@host:port/db`); `None` with no Sentinel or Cluster set runs L1-only.
    /// Env `REDIS_URL`.
    pub redis_url: Option<String>,
    /// Sentinel addresses (`redis://host:26379` each, `rediss://` for TLS): the L2 is the primary
    /// they name for [`redis_sentinel_master`](Self::redis_sentinel_master), followed through
    /// failovers. The sentinels take the user and password of their URLs (often none); the
    /// data nodes [`redis_username`](Self::redis_username) and
    /// [`redis_password`](Self::redis_password). Env `REDIS_SENTINEL_URLS` (comma-separated).
    pub redis_sentinel_urls: Vec<String>,
    /// The service name the sentinels monitor. Env `REDIS_SENTINEL_MASTER`.
    pub redis_sentinel_master: Option<String>,
    /// Seed nodes of a Redis Cluster (`redis://host:port` each). Env `REDIS_CLUSTER_URLS`
    /// (comma-separated).
    pub redis_cluster_urls: Vec<String>,
    /// On a cluster, send single reads to replicas (which may lag their primary by a moment);
    /// batch reads stay on the primaries.
    pub redis_read_from_replicas: bool,
    /// ACL user for the data nodes unless a URL names one (sentinels: their URLs). Env
    /// `REDIS_USERNAME`.
    pub redis_username: Option<String>,
    /// Password for the data nodes unless a URL carries one (sentinels: their URLs). Env
    /// `REDIS_PASSWORD`.
    pub redis_password: Option<Secret>,
    /// CA certificate (PEM) that signs the servers' certificates; needs `rediss://` URLs. Env
    /// `REDIS_TLS_CA_FILE`.
    pub redis_tls_ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS, with [`redis_tls_key_file`](Self::redis_tls_key_file).
    /// Env `REDIS_TLS_CERT_FILE`.
    pub redis_tls_cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM). Env `REDIS_TLS_KEY_FILE`.
    pub redis_tls_key_file: Option<PathBuf>,
    /// TTL for keys that match no pattern. Env `CACHE_TTL_DEFAULT` (seconds or `5m`).
    #[serde(with = "humantime_serde")]
    pub ttl_default: Duration,
    /// Glob → TTL; the most specific matching pattern (most literal characters) wins.
    #[serde(with = "duration_map")]
    pub ttl_patterns: BTreeMap<String, Duration>,
    /// Glob → learned-TTL settings: keys matching one (the most specific wins) get the TTL
    /// learned from how often their values change ([`AutoTtl`]), starting from the pattern
    /// table's. A function's `ttl = "auto"` does the same for its own keys.
    pub ttl_auto: BTreeMap<String, AutoTtl>,
    /// Learned TTLs and the TTL advice ([`AnalyticsConfig`]).
    pub analytics: AnalyticsConfig,
    /// Encoded values larger than this many bytes are zlib-compressed. Env `CACHE_COMPRESSION_THRESHOLD`.
    pub compression_threshold: usize,
    /// zlib level, 0..=9.
    pub compression_level: u32,
    /// Largest value written to or read from Redis, before and after decompression.
    pub max_value_size: usize,
    /// L1 capacity as an entry count, not bytes (the product's name is kept as the config key;
    /// `l1_max_entries` is accepted as its clear alias in files and on the builder; bytes are
    /// [`l1_max_bytes`](Self::l1_max_bytes)). Env `CACHE_L1_MAX_ENTRIES`.
    #[serde(alias = "l1_max_entries")]
    pub max_memory_cache_size: usize,
    /// L1 capacity in bytes (encoded size of values plus keys).
    pub l1_max_bytes: u64,
    /// Longest time an entry stays in L1 when Redis is below it (bounds how long an instance can
    /// serve a copy another instance replaced); never longer than the entry's own TTL. In L1-only
    /// mode entries live their TTL. Env `CACHE_L1_TTL`.
    #[serde(with = "humantime_serde")]
    pub l1_ttl: Duration,
    /// Set to false to skip L1 everywhere (every read goes to Redis).
    pub l1_enabled: bool,
    /// Upper bound of Redis connections in the pool. Env `CACHE_POOL_MAX_SIZE`.
    pub pool_max_size: usize,
    /// Multiplexed connections shared by all tasks for ordinary commands.
    pub redis_connections: usize,
    /// Single-key Redis reads that may be in flight at once; reads beyond that queue and go out
    /// together as one `MGET` when a running one ends. 0 sends every read on its own.
    pub l2_reads_in_flight: usize,
    /// How often the pool's shared connections are pinged.
    #[serde(with = "humantime_serde")]
    pub health_check_interval: Duration,
    /// Per-command response timeout; a timed-out read or write is retried once. Env `CACHE_COMMAND_TIMEOUT`.
    #[serde(with = "humantime_serde")]
    pub command_timeout: Duration,
    /// TCP connect timeout.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Consecutive Redis failures that open the circuit breaker.
    pub breaker_threshold: u32,
    /// How long an open breaker skips Redis before probing again.
    #[serde(with = "humantime_serde")]
    pub breaker_cooldown: Duration,
    /// Run registered warmups when the warmer starts (the product's default: on). An explicit
    /// `cache_warmer::warm_up` runs them whatever this says. Env `CACHE_WARMUP_ON_STARTUP`.
    pub warmup_on_startup: bool,
    /// Refresh hot keys before they expire and load predicted ones (default on). Env
    /// `CACHE_SMART_WARMUP_ENABLED`.
    pub smart_warmup_enabled: bool,
    /// Where the cache lives in a shared Redis: when set, every Redis key, lock and channel it
    /// uses starts with `{namespace}:`, and `clear` and pattern invalidation never look outside
    /// it. The keys the API takes and reports (`query:...`) stay the same. Env `CACHE_NAMESPACE`.
    pub namespace: Option<String>,
    /// How long an invalidation stays visible to loads that were in flight when it happened: a
    /// load that started before an invalidation of its key never stores its (older) value, and a
    /// load that takes longer than this is not stored in Redis at all (see the README's
    /// consistency section).
    #[serde(with = "humantime_serde")]
    pub load_guard_window: Duration,
    /// Record one read in N for access patterns (0 = off). 1 records every read.
    pub access_sample_rate: u32,
    /// Keys tracked for access patterns per reading thread (the hottest are kept; the figures add
    /// the threads up).
    pub access_capacity: usize,
    /// L1 eviction and TTL strategy (see [`crate::strategy`]).
    pub strategy: Strategy,
    /// The cache at all. `false`: every cached function runs its body and every direct read
    /// misses; nothing is read from any tier or stored in one, and the stats say
    /// `enabled: false`. Invalidations still run (other instances must not serve what a write
    /// here replaced). The switch operators flip in an incident: it can change at
    /// run time ([`Cache::set_enabled`](crate::Cache::set_enabled), the admin API's
    /// `POST /api/v1/cache/enabled`). Env `CACHE_ENABLED` (default `true`).
    pub enabled: bool,
    /// Evict other instances' L1 copies on every write through Redis pub/sub.
    pub l1_invalidation: bool,
    /// Pub/sub channel for that; default `tiered-cache:invalidate:<db>`.
    pub invalidation_channel: Option<String>,
    /// Single flight across instances: on a cold key, one instance takes a Redis lock
    /// (`SET NX PX`, this long) and loads; the others poll Redis for its value up to this long,
    /// then load themselves. `None` (default): single flight per process only.
    #[serde(with = "humantime_serde")]
    pub distributed_lock: Option<Duration>,
    /// How long a tag's invalidation state lives in Redis after its last invalidation
    /// ([`crate::Cache::invalidate_tags`]). A tagged entry never lives longer than this in Redis
    /// (its TTL is capped), so an entry written before an invalidation is gone by the time its
    /// record expires. Env `CACHE_TAG_TTL`; default 7 days.
    #[serde(with = "humantime_serde")]
    pub tag_ttl: Duration,
    /// The disk tier (L3, `disk` feature): off unless [`DiskConfig::dir`] is set.
    pub l3: DiskConfig,
    /// Encryption at rest and key obfuscation: off unless keys or a secret are set.
    pub security: SecurityConfig,
    /// Anomaly detection over the cache's counters (`[anomaly]` in TOML).
    pub anomaly: AnomalyConfig,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            redis_url: None,
            redis_sentinel_urls: Vec::new(),
            redis_sentinel_master: None,
            redis_cluster_urls: Vec::new(),
            redis_read_from_replicas: false,
            redis_username: None,
            redis_password: None,
            redis_tls_ca_file: None,
            redis_tls_cert_file: None,
            redis_tls_key_file: None,
            ttl_default: Duration::from_secs(300),
            ttl_patterns: default_ttl_patterns(),
            ttl_auto: BTreeMap::new(),
            analytics: AnalyticsConfig::default(),
            compression_threshold: 1024,
            compression_level: 1,
            max_value_size: 16 * 1024 * 1024,
            max_memory_cache_size: 10_000,
            l1_max_bytes: 256 * 1024 * 1024,
            l1_ttl: Duration::from_secs(60),
            l1_enabled: true,
            pool_max_size: 50,
            redis_connections: 2,
            // Measured at 64 tasks on 2 cores: 1 → 0.73×, 2 → 0.97×, 3–4 → ≈1.0–1.05×, 8 → 0.94×,
            // 16 → 0.87× of a hand-written multiplexed GET loop (docs/design-notes.md).
            l2_reads_in_flight: 4,
            health_check_interval: Duration::from_secs(30),
            command_timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_secs(1),
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_millis(500),
            warmup_on_startup: true,
            smart_warmup_enabled: true,
            namespace: None,
            load_guard_window: crate::guard::MARKER_TTL,
            access_sample_rate: 16,
            access_capacity: 1024,
            strategy: Strategy::Ttl,
            enabled: true,
            l1_invalidation: true,
            invalidation_channel: None,
            distributed_lock: None,
            tag_ttl: Duration::from_secs(7 * 24 * 3600),
            l3: DiskConfig::default(),
            security: SecurityConfig::default(),
            anomaly: AnomalyConfig::default(),
        }
    }
}

/// The product's TTL table: `query:*` 5 min, `resource:*` 10 min, `analysis:*` 30 min,
/// `ml:*` 1 h, `static:*` 24 h.
pub fn default_ttl_patterns() -> BTreeMap<String, Duration> {
    [
        ("query:*", 300),
        ("resource:*", 600),
        ("analysis:*", 1800),
        ("ml:*", 3600),
        ("static:*", 86_400),
    ]
    .into_iter()
    .map(|(p, s)| (p.to_owned(), Duration::from_secs(s)))
    .collect()
}

impl CacheConfig {
    /// A builder starting from the defaults.
    pub fn builder() -> CacheConfigBuilder {
        CacheConfigBuilder {
            config: CacheConfig::default(),
        }
    }

    /// Defaults overridden by the environment (see the field docs for the variable names;
    /// `CACHE_CONFIG_FILE` names a TOML file read first). A present but unparsable variable is
    /// an error, not silently ignored.
    ///
    /// ```
    /// let config = cache_core::CacheConfig::from_env().unwrap();
    /// # let _ = config;
    /// ```
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`from_env`](Self::from_env) over any variable source (tests pass a map).
    ///
    /// ```
    /// use std::collections::HashMap;
    /// let env = HashMap::from([("CACHE_TTL_DEFAULT", "90"), ("CACHE_WARMUP_ON_STARTUP", "true")]);
    /// let c = cache_core::CacheConfig::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
    /// assert_eq!(c.ttl_default.as_secs(), 90);
    /// assert!(c.warmup_on_startup);
    /// ```
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut c = match get("CACHE_CONFIG_FILE") {
            Some(path) if !path.is_empty() => CacheConfig::from_file(path)?,
            _ => CacheConfig::default(),
        };
        if let Some(url) = get("REDIS_URL").filter(|u| !u.trim().is_empty()) {
            c.redis_url = Some(url);
        }
        c.redis_from_lookup(&get);
        if let Some(ns) = get("CACHE_NAMESPACE").filter(|n| !n.is_empty()) {
            c.namespace = Some(ns);
        }
        let dur = |name: &str, target: &mut Duration| -> Result<()> {
            if let Some(v) = get(name) {
                *target = parse_duration(&v).map_err(|e| CacheError::Config(format!("{name}={v:?}: {e}")))?;
            }
            Ok(())
        };
        dur("CACHE_TTL_DEFAULT", &mut c.ttl_default)?;
        dur("CACHE_L1_TTL", &mut c.l1_ttl)?;
        dur("CACHE_TAG_TTL", &mut c.tag_ttl)?;
        dur("CACHE_COMMAND_TIMEOUT", &mut c.command_timeout)?;
        let num = |name: &str, target: &mut usize| -> Result<()> {
            if let Some(v) = get(name) {
                *target = v
                    .trim()
                    .parse()
                    .map_err(|e| CacheError::Config(format!("{name}={v:?}: {e}")))?;
            }
            Ok(())
        };
        num("CACHE_COMPRESSION_THRESHOLD", &mut c.compression_threshold)?;
        num("CACHE_L1_MAX_ENTRIES", &mut c.max_memory_cache_size)?;
        num("CACHE_POOL_MAX_SIZE", &mut c.pool_max_size)?;
        let flag = |name: &str, target: &mut bool| -> Result<()> {
            if let Some(v) = get(name) {
                *target = parse_bool(&v).ok_or_else(|| {
                    CacheError::Config(format!("{name}={v:?}: expected true/false, 1/0, yes/no, on/off"))
                })?;
            }
            Ok(())
        };
        flag("CACHE_ENABLED", &mut c.enabled)?;
        flag("CACHE_ANALYTICS_ENABLED", &mut c.analytics.enabled)?;
        flag("CACHE_WARMUP_ON_STARTUP", &mut c.warmup_on_startup)?;
        flag("CACHE_SMART_WARMUP_ENABLED", &mut c.smart_warmup_enabled)?;
        c.l3.read_lookup(&get)?;
        c.security.read_lookup(&get)?;
        c.anomaly.read_lookup(&get)?;
        c.validate()?;
        Ok(c)
    }

    /// Reads a TOML file whose keys are this struct's field names; durations are written like
    /// `"5m"` or `"300s"`. Missing keys keep their defaults; unknown keys are an error.
    ///
    /// ```
    /// let c = cache_core::CacheConfig::from_toml_str(r#"
    ///     ttl_default = "2m"
    ///     [ttl_patterns]
    ///     "query:*" = "30s"
    /// "#).unwrap();
    /// assert_eq!(c.ttl_default.as_secs(), 120);
    /// assert_eq!(c.ttl_patterns["query:*"].as_secs(), 30);
    /// ```
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| CacheError::Config(format!("cannot read {}: {e}", path.display())))?;
        Self::from_toml_str(&text).map_err(|e| CacheError::Config(format!("{}: {e}", path.display())))
    }

    /// Parses TOML text (see [`from_file`](Self::from_file)).
    pub fn from_toml_str(text: &str) -> Result<Self> {
        let c: CacheConfig = toml::from_str(text).map_err(|e| CacheError::Config(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    /// Checks every setting; [`Cache::new`](crate::Cache::new) calls this.
    pub fn validate(&self) -> Result<()> {
        self.validate_redis()?;
        self.security.validate()?;
        let positive = [
            ("max_memory_cache_size", self.max_memory_cache_size as u64),
            ("l1_max_bytes", self.l1_max_bytes),
            ("pool_max_size", self.pool_max_size as u64),
            ("redis_connections", self.redis_connections as u64),
            ("max_value_size", self.max_value_size as u64),
            ("breaker_threshold", u64::from(self.breaker_threshold)),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(CacheError::Config(format!("{name} must be greater than zero")));
            }
        }
        if self.redis_connections > self.pool_max_size {
            return Err(CacheError::Config(format!(
                "redis_connections ({}) cannot exceed pool_max_size ({})",
                self.redis_connections, self.pool_max_size
            )));
        }
        if self.compression_level > 9 {
            return Err(CacheError::Config("compression_level must be 0..=9".into()));
        }
        for (name, d) in [
            ("ttl_default", self.ttl_default),
            ("l1_ttl", self.l1_ttl),
            ("command_timeout", self.command_timeout),
            ("connect_timeout", self.connect_timeout),
            ("load_guard_window", self.load_guard_window),
            ("tag_ttl", self.tag_ttl),
        ] {
            if d.is_zero() {
                return Err(CacheError::Config(format!("{name} must be greater than zero")));
            }
        }
        if let Some(ns) = &self.namespace {
            // The namespace is matched literally inside SCAN patterns; glob characters, the
            // separator or control characters in it would widen or split what it fences off.
            if ns.is_empty()
                || ns.len() > 128
                || ns.chars().any(|c| c.is_control() || ":*?[]\\{}".contains(c))
            {
                return Err(CacheError::Config(format!(
                    "namespace {ns:?}: 1 to 128 characters, none of `: * ? [ ] \\ {{ }}` or control characters"
                )));
            }
        }
        TtlRules::compile(self)?;
        for (p, auto) in &self.ttl_auto {
            Pattern::new(p)?;
            auto.validate()
                .map_err(|e| CacheError::Config(format!("ttl_auto {p:?}: {e}")))?;
        }
        self.analytics.validate()?;
        self.strategy.validate()?;
        self.l3.validate()?;
        self.anomaly.validate()?;
        Ok(())
    }
}

/// Fluent construction of a [`CacheConfig`].
///
/// ```
/// let c = cache_core::CacheConfig::builder()
///     .redis_url("redis://127.0.0.1:6379")
///     .max_memory_cache_size(1000)
///     .build()
///     .unwrap();
/// assert_eq!(c.max_memory_cache_size, 1000);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct CacheConfigBuilder {
    config: CacheConfig,
}

macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {$(
        $(#[$doc])*
        pub fn $name(mut self, v: $ty) -> Self {
            self.config.$name = v;
            self
        }
    )*};
}

impl CacheConfigBuilder {
    /// L1 capacity as an entry count: the clear name of
    /// [`max_memory_cache_size`](CacheConfig::max_memory_cache_size).
    ///
    /// ```
    /// let c = cache_core::CacheConfig::builder().l1_max_entries(500).build().unwrap();
    /// assert_eq!(c.max_memory_cache_size, 500);
    /// ```
    pub fn l1_max_entries(mut self, entries: usize) -> Self {
        self.config.max_memory_cache_size = entries;
        self
    }

    /// Redis URL (`redis://host:port/db`); enables L2.
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.config.redis_url = Some(url.into());
        self
    }

    /// Sentinel addresses; see [`CacheConfig::redis_sentinel_urls`].
    pub fn redis_sentinel(
        mut self,
        urls: impl IntoIterator<Item = impl Into<String>>,
        master: impl Into<String>,
    ) -> Self {
        self.config.redis_sentinel_urls = urls.into_iter().map(Into::into).collect();
        self.config.redis_sentinel_master = Some(master.into());
        self
    }

    /// Cluster seed nodes; see [`CacheConfig::redis_cluster_urls`].
    pub fn redis_cluster_urls(mut self, urls: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.config.redis_cluster_urls = urls.into_iter().map(Into::into).collect();
        self
    }

    /// ACL user and password for every Redis connection; see [`CacheConfig::redis_username`].
    pub fn redis_credentials(mut self, username: impl Into<String>, password: impl Into<String>) -> Self {
        self.config.redis_username = Some(username.into());
        self.config.redis_password = Some(Secret::new(password));
        self
    }

    /// The CA that signs the servers' certificates; see [`CacheConfig::redis_tls_ca_file`].
    pub fn redis_tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.redis_tls_ca_file = Some(path.into());
        self
    }

    /// Client certificate and key for mutual TLS; see [`CacheConfig::redis_tls_cert_file`].
    pub fn redis_tls_client_cert(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.config.redis_tls_cert_file = Some(cert.into());
        self.config.redis_tls_key_file = Some(key.into());
        self
    }

    /// See [`CacheConfig::namespace`].
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.config.namespace = Some(namespace.into());
        self
    }

    /// A disk tier (L3) in `dir` holding at most `capacity` bytes, for the default patterns;
    /// see [`DiskConfig`] for the rest.
    pub fn l3(mut self, dir: impl Into<PathBuf>, capacity: u64) -> Self {
        self.config.l3.dir = Some(dir.into());
        self.config.l3.capacity = bytesize::ByteSize(capacity);
        self
    }

    /// Replaces the whole disk tier configuration.
    pub fn l3_config(mut self, l3: DiskConfig) -> Self {
        self.config.l3 = l3;
        self
    }

    /// Encryption at rest with these keys (`k2:<base64>,k1:<base64>`, the first encrypts); see
    /// [`SecurityConfig::encryption_keys`].
    pub fn encryption_keys(mut self, keys: impl Into<String>) -> Self {
        self.config.security.encryption_keys = Some(Secret::new(keys));
        self
    }

    /// Encrypts only keys matching these patterns; see [`SecurityConfig::encrypt`].
    pub fn encrypt_patterns(mut self, patterns: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.config.security.encrypt = patterns.into_iter().map(Into::into).collect();
        self
    }

    /// Key obfuscation with this secret; see [`SecurityConfig::key_secret`].
    pub fn key_secret(mut self, secret: impl Into<String>) -> Self {
        self.config.security.key_secret = Some(Secret::new(secret));
        self
    }

    /// Adds or replaces one TTL pattern.
    pub fn ttl_pattern(mut self, pattern: impl Into<String>, ttl: Duration) -> Self {
        self.config.ttl_patterns.insert(pattern.into(), ttl);
        self
    }

    /// Learns the TTL of keys matching `pattern` ([`CacheConfig::ttl_auto`]).
    pub fn ttl_auto(mut self, pattern: impl Into<String>, auto: AutoTtl) -> Self {
        self.config.ttl_auto.insert(pattern.into(), auto);
        self
    }

    /// See [`CacheConfig::analytics`].
    pub fn analytics(mut self, analytics: AnalyticsConfig) -> Self {
        self.config.analytics = analytics;
        self
    }

    /// Removes every TTL pattern, default ones included.
    pub fn clear_ttl_patterns(mut self) -> Self {
        self.config.ttl_patterns.clear();
        self
    }

    setters! {
        /// See [`CacheConfig::redis_read_from_replicas`].
        redis_read_from_replicas: bool,
        /// See [`CacheConfig::ttl_default`].
        ttl_default: Duration,
        /// See [`CacheConfig::compression_threshold`].
        compression_threshold: usize,
        /// See [`CacheConfig::compression_level`].
        compression_level: u32,
        /// See [`CacheConfig::max_value_size`].
        max_value_size: usize,
        /// See [`CacheConfig::max_memory_cache_size`].
        max_memory_cache_size: usize,
        /// See [`CacheConfig::l1_max_bytes`].
        l1_max_bytes: u64,
        /// See [`CacheConfig::l1_ttl`].
        l1_ttl: Duration,
        /// See [`CacheConfig::tag_ttl`].
        tag_ttl: Duration,
        /// See [`CacheConfig::l1_enabled`].
        l1_enabled: bool,
        /// See [`CacheConfig::pool_max_size`].
        pool_max_size: usize,
        /// See [`CacheConfig::redis_connections`].
        redis_connections: usize,
        /// See [`CacheConfig::l2_reads_in_flight`].
        l2_reads_in_flight: usize,
        /// See [`CacheConfig::health_check_interval`].
        health_check_interval: Duration,
        /// See [`CacheConfig::command_timeout`].
        command_timeout: Duration,
        /// See [`CacheConfig::connect_timeout`].
        connect_timeout: Duration,
        /// See [`CacheConfig::breaker_threshold`].
        breaker_threshold: u32,
        /// See [`CacheConfig::breaker_cooldown`].
        breaker_cooldown: Duration,
        /// See [`CacheConfig::warmup_on_startup`].
        warmup_on_startup: bool,
        /// See [`CacheConfig::smart_warmup_enabled`].
        smart_warmup_enabled: bool,
        /// See [`CacheConfig::access_sample_rate`].
        access_sample_rate: u32,
        /// See [`CacheConfig::access_capacity`].
        access_capacity: usize,
        /// See [`CacheConfig::strategy`].
        strategy: Strategy,
        /// See [`CacheConfig::enabled`].
        enabled: bool,
        /// See [`CacheConfig::l1_invalidation`].
        l1_invalidation: bool,
        /// See [`CacheConfig::distributed_lock`].
        distributed_lock: Option<Duration>,
        /// See [`CacheConfig::load_guard_window`].
        load_guard_window: Duration,
    }

    /// Validates and returns the config.
    pub fn build(self) -> Result<CacheConfig> {
        self.config.validate()?;
        Ok(self.config)
    }
}

/// The compiled TTL table: patterns ordered most specific first.
///
/// ```
/// use std::time::Duration;
/// use cache_core::{CacheConfig, config::TtlRules};
/// let rules = TtlRules::compile(&CacheConfig::default()).unwrap();
/// assert_eq!(rules.resolve("resource:freight:123"), Duration::from_secs(600));
/// assert_eq!(rules.resolve("something:else"), Duration::from_secs(300));
/// ```
#[derive(Debug, Clone)]
pub struct TtlRules {
    rules: Vec<(Pattern, Duration)>,
    default: Duration,
}

impl TtlRules {
    /// Compiles the config's patterns; a malformed one or a zero TTL is an error.
    pub fn compile(config: &CacheConfig) -> Result<Self> {
        let mut rules = Vec::with_capacity(config.ttl_patterns.len());
        for (p, ttl) in &config.ttl_patterns {
            if ttl.is_zero() {
                return Err(CacheError::Config(format!(
                    "TTL for pattern {p:?} must be greater than zero"
                )));
            }
            rules.push((Pattern::new(p)?, *ttl));
        }
        // Stable sort keeps BTreeMap order among equals, so ties resolve the same way every run.
        rules.sort_by_key(|(p, _)| std::cmp::Reverse(p.specificity()));
        Ok(TtlRules {
            rules,
            default: config.ttl_default,
        })
    }

    /// TTL for `key`: the most specific matching pattern's, else the default.
    pub fn resolve(&self, key: &str) -> Duration {
        self.rules
            .iter()
            .find(|(p, _)| p.matches(key))
            .map_or(self.default, |(_, ttl)| *ttl)
    }
}

fn parse_duration(v: &str) -> std::result::Result<Duration, String> {
    let v = v.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    humantime::parse_duration(v).map_err(|e| e.to_string())
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

mod duration_map {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<S: Serializer>(map: &BTreeMap<String, Duration>, s: S) -> Result<S::Ok, S::Error> {
        let text: BTreeMap<&str, String> = map
            .iter()
            .map(|(k, v)| (k.as_str(), humantime::format_duration(*v).to_string()))
            .collect();
        text.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Duration>, D::Error> {
        let text = BTreeMap::<String, String>::deserialize(d)?;
        text.into_iter()
            .map(|(k, v)| {
                super::parse_duration(&v)
                    .map(|d| (k.clone(), d))
                    .map_err(|e| serde::de::Error::custom(format!("TTL for {k:?}: {e}")))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
