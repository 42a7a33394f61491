//! Key names a token may not read, replaced by [`REDACTED`] in the read routes' JSON (the
//! figures beside them stay).

use cache_core::Cache;
use serde_json::Value;

use crate::auth::Rights;

/// What a hidden name is replaced with.
pub(crate) const REDACTED: &str = "<redacted>";

/// Replaces `field` of every object in the array at `list` when `shown` refuses it.
fn redact_list(list: Option<&mut Value>, field: &str, shown: impl Fn(&str) -> bool) {
    let Some(Value::Array(items)) = list else { return };
    for item in items {
        if let Some(v) = item.get_mut(field) {
            if v.as_str().is_some_and(|name| !shown(name)) {
                *v = Value::from(REDACTED);
            }
        }
    }
}

/// Replaces each shown key name in `field` by the name Redis knows it by
/// ([`Cache::display_key`]: its argument part hashed when a key secret is set), so listings
/// never carry argument text. Scopes were judged on the real name before.
fn display_list(list: Option<&mut Value>, field: &str, cache: &Cache) {
    let Some(Value::Array(items)) = list else { return };
    for item in items {
        if let Some(v) = item.get_mut(field) {
            if let Some(name) = v.as_str().filter(|n| *n != REDACTED) {
                let shown = cache.display_key(name).into_owned();
                *v = Value::from(shown);
            }
        }
    }
}

/// `{"keys": [AccessPattern]}`: the keys.
pub(crate) fn access_patterns(body: &mut Value, rights: &Rights<'_>, cache: &Cache) {
    redact_list(body.get_mut("keys"), "key", |k| rights.shows_key(k));
    display_list(body.get_mut("keys"), "key", cache);
}

/// A `MemoryProfile`: the largest entries' keys and the per-prefix rows' prefixes.
pub(crate) fn memory(body: &mut Value, rights: &Rights<'_>, cache: &Cache) {
    redact_list(body.get_mut("largest"), "key", |k| rights.shows_key(k));
    display_list(body.get_mut("largest"), "key", cache);
    redact_list(body.get_mut("prefixes"), "prefix", |p| rights.shows_prefix(p));
}

/// `{"cache": Stats, ..}`: the keys of the adaptive TTL choices.
pub(crate) fn stats(body: &mut Value, rights: &Rights<'_>, cache: &Cache) {
    fn choices(body: &mut Value) -> Option<&mut Value> {
        body.get_mut("cache").and_then(|c| c.get_mut("adaptive_ttls"))
    }
    redact_list(choices(body), "key", |k| rights.shows_key(k));
    display_list(choices(body), "key", cache);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use serde_json::json;

    use super::*;
    use crate::auth::{identify, Action};
    use crate::AdminConfig;

    #[test]
    fn names_outside_the_scope_are_replaced_and_figures_kept() {
        let config = AdminConfig::from_tokens_toml(
            r#"[[tokens]]
            name = "a"
            token = "a"
            actions = ["read"]
            patterns = ["tenant-a:*", "plain"]"#,
        )
        .unwrap();
        let caller = identify(&config, Some("Bearer a"), None);
        let rights = caller.rights(Action::Read).unwrap();

        let mut ap = json!({ "keys": [
            { "key": "tenant-a:1", "count": 3 },
            { "key": "tenant-b:1", "count": 2 },
        ]});
        let plain = Cache::new(cache_core::CacheConfig::default()).unwrap();
        access_patterns(&mut ap, &rights, &plain);
        assert_eq!(
            ap,
            json!({ "keys": [
                { "key": "tenant-a:1", "count": 3 },
                { "key": REDACTED, "count": 2 },
            ]})
        );
        // With a key secret, a shown key is listed as Redis names it: its argument hashed.
        let secret = cache_core::CacheConfig::builder()
            .key_secret("a key secret of 16+ bytes")
            .build()
            .unwrap();
        let hidden = Cache::new(secret).unwrap();
        let mut ap = json!({ "keys": [{ "key": "tenant-a:alice", "count": 1 }]});
        access_patterns(&mut ap, &rights, &hidden);
        let shown = ap["keys"][0]["key"].as_str().unwrap();
        assert!(
            shown.starts_with("tenant-a:") && !shown.contains("alice"),
            "{shown}"
        );

        let mut mem = json!({
            "largest": [{ "key": "tenant-b:big", "bytes": 9 }, { "key": "tenant-a:big", "bytes": 8 }],
            "prefixes": [
                { "prefix": "tenant-b", "l1_bytes": 9 },
                { "prefix": "tenant-a", "l1_bytes": 8 },
                { "prefix": "plain", "l1_bytes": 1 },
                { "prefix": "tenant", "l1_bytes": 1 },
            ],
            "redis_used_memory": 5,
        });
        memory(&mut mem, &rights, &plain);
        assert_eq!(mem["largest"][0], json!({ "key": REDACTED, "bytes": 9 }));
        assert_eq!(mem["largest"][1]["key"], "tenant-a:big");
        let prefixes: Vec<&str> = mem["prefixes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["prefix"].as_str().unwrap())
            .collect();
        assert_eq!(prefixes, [REDACTED, "tenant-a", "plain", REDACTED]);
        assert_eq!(mem["prefixes"][0]["l1_bytes"], 9);

        let mut st = json!({ "cache": { "adaptive_ttls": [
            { "key": "tenant-b:x", "reads": 1 }, { "key": "tenant-a:x", "reads": 2 }
        ]}});
        stats(&mut st, &rights, &plain);
        assert_eq!(st["cache"]["adaptive_ttls"][0]["key"], REDACTED);
        assert_eq!(st["cache"]["adaptive_ttls"][1]["key"], "tenant-a:x");
    }
}
