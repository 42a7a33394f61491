//! Configuration: defaults, environment, files, validation.

use super::*;
use std::collections::HashMap;

fn env(pairs: &[(&str, &str)]) -> Result<CacheConfig> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    CacheConfig::from_lookup(|k| map.get(k).cloned())
}

#[test]
fn product_ttl_table() {
    let rules = TtlRules::compile(&CacheConfig::default()).unwrap();
    for (key, secs) in [
        ("query:users:list", 300),
        ("resource:freight:123", 600),
        ("analysis:trends:2025-01", 1800),
        ("ml:prediction:model1", 3600),
        ("static:logo", 86_400),
        ("other", 300),
    ] {
        assert_eq!(rules.resolve(key), Duration::from_secs(secs), "{key}");
    }
}

#[test]
fn most_specific_pattern_wins() {
    let c = CacheConfig::builder()
        .ttl_pattern("query:users:*", Duration::from_secs(7))
        .ttl_pattern("query:users:vip:*", Duration::from_secs(9))
        .build()
        .unwrap();
    let rules = TtlRules::compile(&c).unwrap();
    assert_eq!(rules.resolve("query:users:1"), Duration::from_secs(7));
    assert_eq!(rules.resolve("query:users:vip:1"), Duration::from_secs(9));
    assert_eq!(rules.resolve("query:orders:1"), Duration::from_secs(300));
}

#[test]
#[cfg(feature = "redis")]
fn env_overrides_and_rejects_garbage() {
    let c = env(&[
        ("REDIS_URL", "redis://127.0.0.1:7000"),
        ("CACHE_TTL_DEFAULT", "2m"),
        ("CACHE_SMART_WARMUP_ENABLED", "yes"),
        ("CACHE_WARMUP_ON_STARTUP", "off"),
        ("CACHE_NAMESPACE", "billing"),
    ])
    .unwrap();
    assert_eq!(c.redis_url.as_deref(), Some("redis://127.0.0.1:7000"));
    assert_eq!(c.ttl_default, Duration::from_secs(120));
    assert!(c.smart_warmup_enabled && !c.warmup_on_startup);
    assert_eq!(c.namespace.as_deref(), Some("billing"));
    // The product description's defaults: warming on.
    let d = env(&[]).unwrap();
    assert!(d.warmup_on_startup && d.smart_warmup_enabled && d.namespace.is_none());
    for bad in ["a:b", "a*", "x?", "[x]", "a\\b", "{t}", "a\nb", ""] {
        let c = CacheConfig {
            namespace: Some(bad.into()),
            ..CacheConfig::default()
        };
        assert!(matches!(c.validate(), Err(CacheError::Config(_))), "{bad:?}");
    }
    assert!(matches!(
        env(&[("CACHE_TTL_DEFAULT", "soon")]),
        Err(CacheError::Config(_))
    ));
    assert!(matches!(
        env(&[("CACHE_WARMUP_ON_STARTUP", "maybe")]),
        Err(CacheError::Config(_))
    ));
    assert!(matches!(
        env(&[("REDIS_URL", "http://x")]),
        Err(CacheError::Config(_))
    ));
    assert_eq!(env(&[("REDIS_URL", "")]).unwrap().redis_url, None);
}

#[test]
fn invalid_settings_are_config_errors() {
    assert!(CacheConfig::builder().max_memory_cache_size(0).build().is_err());
    assert!(CacheConfig::builder()
        .ttl_pattern("bad[", Duration::from_secs(1))
        .build()
        .is_err());
    assert!(CacheConfig::builder()
        .ttl_pattern("ok:*", Duration::ZERO)
        .build()
        .is_err());
    assert!(CacheConfig::builder().redis_url("nope").build().is_err());
}

#[test]
fn toml_round_trip_and_unknown_keys() {
    let c = CacheConfig::builder()
        .ttl_pattern("x:*", Duration::from_secs(5))
        .build()
        .unwrap();
    let text = toml::to_string(&c).unwrap();
    assert_eq!(CacheConfig::from_toml_str(&text).unwrap(), c);
    assert!(CacheConfig::from_toml_str("no_such_setting = 1").is_err());
    let dir = std::env::temp_dir().join(format!("cache-core-config-{}.toml", std::process::id()));
    std::fs::write(&dir, "ttl_default = \"10s\"\n").unwrap();
    let from_file = env(&[
        ("CACHE_CONFIG_FILE", dir.to_str().unwrap()),
        ("CACHE_TTL_DEFAULT", "20"),
    ])
    .unwrap();
    assert_eq!(from_file.ttl_default, Duration::from_secs(20));
    std::fs::remove_file(&dir).unwrap();
}

#[test]
fn l1_max_entries_is_an_alias_of_max_memory_cache_size() {
    let c = CacheConfig::from_toml_str("l1_max_entries = 7").unwrap();
    assert_eq!(c.max_memory_cache_size, 7);
    let c = CacheConfig::from_toml_str("max_memory_cache_size = 8").unwrap();
    assert_eq!(c.max_memory_cache_size, 8);
}

/// Without the `redis` feature a Redis URL is refused with a reason, never silently ignored.
#[test]
#[cfg(not(feature = "redis"))]
fn a_redis_url_without_the_redis_feature_is_a_config_error() {
    let err = CacheConfig::builder()
        .redis_url("redis://127.0.0.1:6379")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("`redis` feature"), "{err}");
}

#[test]
#[cfg(feature = "redis")]
fn every_redis_form_reads_from_env_and_toml_and_two_forms_are_refused() {
    use std::collections::HashMap;
    let env = HashMap::from([
        (
            "REDIS_CLUSTER_URLS",
            "redis://127.0.0.1:7000, redis://127.0.0.1:7001,",
        ),
        ("REDIS_USERNAME", "cache"),
        ("REDIS_PASSWORD", "pw"),
        ("REDIS_TLS_CA_FILE", "/etc/ca.pem"),
    ]);
    let c = CacheConfig::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap();
    assert_eq!(
        c.redis_cluster_urls,
        ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001"]
    );
    assert!(matches!(c.redis_topology().unwrap(), RedisTopology::Cluster { urls } if urls.len() == 2));
    assert_eq!(c.redis_password.as_ref().map(Secret::expose), Some("pw"));
    assert!(
        !format!("{c:?}").contains("pw\""),
        "the password stays out of Debug"
    );

    let env = HashMap::from([
        ("REDIS_SENTINEL_URLS", "redis://127.0.0.1:26379"),
        ("REDIS_SENTINEL_MASTER", "cache"),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
    ]);
    let err = CacheConfig::from_lookup(|k| env.get(k).map(|v| v.to_string())).unwrap_err();
    assert!(
        err.to_string().contains("redis_url and redis_sentinel_urls"),
        "{err}"
    );

    let no_master = CacheConfig::from_toml_str(r#"redis_sentinel_urls = ["redis://127.0.0.1:26379"]"#);
    assert!(no_master
        .unwrap_err()
        .to_string()
        .contains("redis_sentinel_master"));
    let c = CacheConfig::from_toml_str(
        r#"
        redis_sentinel_urls = ["redis://127.0.0.1:26379", "redis://127.0.0.1:26380"]
        redis_sentinel_master = "cache"
        redis_password = "pw"
        redis_tls_cert_file = "/c.pem"
        redis_tls_key_file = "/k.pem"
        "#,
    )
    .unwrap();
    assert!(matches!(
        c.redis_topology().unwrap(),
        RedisTopology::Sentinel { master: "cache", .. }
    ));
    let half = CacheConfig::from_toml_str(r#"redis_tls_cert_file = "/c.pem""#);
    assert!(half.unwrap_err().to_string().contains("go together"));
    let bad = CacheConfig::from_toml_str(r#"redis_cluster_urls = ["not a url"]"#);
    assert!(bad.unwrap_err().to_string().contains("redis_cluster_urls"));
}

#[test]
fn anomaly_settings_read_from_env_and_toml_and_are_checked() {
    let d = env(&[]).unwrap();
    assert!(d.anomaly.enabled);
    assert_eq!(d.anomaly.window, Duration::from_secs(10));
    let c = env(&[("CACHE_ANOMALY_ENABLED", "off"), ("CACHE_ANOMALY_WINDOW", "30s")]).unwrap();
    assert!(!c.anomaly.enabled);
    assert_eq!(c.anomaly.window, Duration::from_secs(30));
    for bad in [
        ("CACHE_ANOMALY_ENABLED", "perhaps"),
        ("CACHE_ANOMALY_WINDOW", "soon"),
        ("CACHE_ANOMALY_WINDOW", "10ms"),
    ] {
        assert!(matches!(env(&[bad]), Err(CacheError::Config(_))), "{bad:?}");
    }
    let c = CacheConfig::from_toml_str(
        r#"
        [anomaly]
        warmup_windows = 6
        [anomaly.l2_latency]
        min_change = 20.0
        persistence = 3
        "#,
    )
    .unwrap();
    assert_eq!(c.anomaly.warmup_windows, 6);
    assert_eq!(
        (c.anomaly.l2_latency.min_change, c.anomaly.l2_latency.persistence),
        (20.0, 3)
    );
    assert_eq!(c.anomaly.l2_latency.z, 6.0, "unset fields keep their defaults");
    for bad in [
        "[anomaly.miss_storm]\nz = 0.0",
        "[anomaly.miss_storm]\nmin_ratio = 0.5",
        "[anomaly.miss_storm]\npersistence = 0",
        "[anomaly]\nmax_prefixes = 0",
        "[anomaly]\nbaseline_half_life = \"1s\"",
        "[anomaly]\nunknown = 1",
    ] {
        assert!(
            matches!(CacheConfig::from_toml_str(bad), Err(CacheError::Config(_))),
            "{bad}"
        );
    }
}
