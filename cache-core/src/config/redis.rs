//! The Redis connection settings: which form (one server, Sentinel, Cluster), credentials and
//! TLS files, read from the environment and checked.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::CacheConfig;
use crate::error::{CacheError, Result};

/// A password that never shows in `Debug` output or logs.
///
/// ```
/// let s = cache_core::config::Secret::new("hunter2");
/// assert_eq!(format!("{s:?}"), "Secret(***)");
/// assert_eq!(s.expose(), "hunter2");
/// ```
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Which Redis the configuration names (see [`CacheConfig::redis_topology`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RedisTopology<'a> {
    /// No Redis: L1 only.
    None,
    /// One server (`redis://` or `rediss://`).
    Single(&'a str),
    /// The primary that the sentinels name for `master`.
    Sentinel {
        /// Sentinel addresses.
        urls: &'a [String],
        /// The monitored service's name.
        master: &'a str,
    },
    /// A Redis Cluster reached through these seed nodes.
    Cluster {
        /// Seed node addresses.
        urls: &'a [String],
    },
}

impl CacheConfig {
    /// The Redis form this configuration names. Exactly one of `redis_url`,
    /// `redis_sentinel_urls` and `redis_cluster_urls` may be set; two are an error that names
    /// both.
    ///
    /// ```
    /// use cache_core::{config::RedisTopology, CacheConfig};
    /// let c = CacheConfig::builder()
    ///     .redis_cluster_urls(["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"])
    ///     .build()
    ///     .unwrap();
    /// assert!(matches!(c.redis_topology().unwrap(), RedisTopology::Cluster { .. }));
    /// let both = CacheConfig::builder()
    ///     .redis_url("redis://127.0.0.1:6379")
    ///     .redis_cluster_urls(["redis://127.0.0.1:7000"])
    ///     .build();
    /// assert!(both.unwrap_err().to_string().contains("redis_url and redis_cluster_urls"));
    /// ```
    pub fn redis_topology(&self) -> Result<RedisTopology<'_>> {
        let set: Vec<&str> = [
            ("redis_url", self.redis_url.is_some()),
            ("redis_sentinel_urls", !self.redis_sentinel_urls.is_empty()),
            ("redis_cluster_urls", !self.redis_cluster_urls.is_empty()),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
        if set.len() > 1 {
            return Err(CacheError::Config(format!(
                "{} are both set: name one Redis (a single server, a Sentinel service or a cluster)",
                set.join(" and ")
            )));
        }
        if let Some(url) = &self.redis_url {
            return Ok(RedisTopology::Single(url));
        }
        if !self.redis_sentinel_urls.is_empty() {
            let master = self.redis_sentinel_master.as_deref().ok_or_else(|| {
                CacheError::Config(
                    "redis_sentinel_urls needs redis_sentinel_master (the service name)".into(),
                )
            })?;
            return Ok(RedisTopology::Sentinel {
                urls: &self.redis_sentinel_urls,
                master,
            });
        }
        if !self.redis_cluster_urls.is_empty() {
            return Ok(RedisTopology::Cluster {
                urls: &self.redis_cluster_urls,
            });
        }
        Ok(RedisTopology::None)
    }

    /// Whether any Redis is configured.
    pub fn has_redis(&self) -> bool {
        !matches!(self.redis_topology(), Ok(RedisTopology::None))
    }

    pub(super) fn redis_from_lookup(&mut self, get: &impl Fn(&str) -> Option<String>) {
        let text = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        let list = |name: &str| {
            text(name).map(|v| {
                v.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect::<Vec<_>>()
            })
        };
        if let Some(v) = list("REDIS_SENTINEL_URLS") {
            self.redis_sentinel_urls = v;
        }
        if let Some(v) = text("REDIS_SENTINEL_MASTER") {
            self.redis_sentinel_master = Some(v);
        }
        if let Some(v) = list("REDIS_CLUSTER_URLS") {
            self.redis_cluster_urls = v;
        }
        if let Some(v) = text("REDIS_USERNAME") {
            self.redis_username = Some(v);
        }
        if let Some(v) = get("REDIS_PASSWORD").filter(|v| !v.is_empty()) {
            self.redis_password = Some(Secret(v));
        }
        for (name, target) in [
            ("REDIS_TLS_CA_FILE", &mut self.redis_tls_ca_file),
            ("REDIS_TLS_CERT_FILE", &mut self.redis_tls_cert_file),
            ("REDIS_TLS_KEY_FILE", &mut self.redis_tls_key_file),
        ] {
            if let Some(v) = text(name) {
                *target = Some(PathBuf::from(v));
            }
        }
    }

    pub(super) fn validate_redis(&self) -> Result<()> {
        let topology = self.redis_topology()?;
        #[cfg(feature = "redis")]
        {
            let urls: Vec<(&str, &str)> = match topology {
                RedisTopology::None => Vec::new(),
                RedisTopology::Single(u) => vec![("redis_url", u)],
                RedisTopology::Sentinel { urls, .. } => {
                    urls.iter().map(|u| ("redis_sentinel_urls", u.as_str())).collect()
                }
                RedisTopology::Cluster { urls } => {
                    urls.iter().map(|u| ("redis_cluster_urls", u.as_str())).collect()
                }
            };
            for (name, url) in urls {
                ::redis::IntoConnectionInfo::into_connection_info(url)
                    .map_err(|e| CacheError::Config(format!("{name} {:?}: {e}", crate::redis::mask(url))))?;
            }
        }
        #[cfg(not(feature = "redis"))]
        if !matches!(topology, RedisTopology::None) {
            return Err(CacheError::Config(
                "a Redis is configured but cache-core was built without its `redis` feature".into(),
            ));
        }
        if self.redis_tls_cert_file.is_some() != self.redis_tls_key_file.is_some() {
            return Err(CacheError::Config(
                "redis_tls_cert_file and redis_tls_key_file go together (mutual TLS needs both)".into(),
            ));
        }
        Ok(())
    }
}
