//! `/metrics` from the real admin router, over HTTP: the text passes `promtool check metrics`
//! (every metric has HELP and TYPE, names follow Prometheus's rules); `cache_redis_up` and
//! `cache_redis_breaker_state` follow Redis, and the gauges copied from Redis `INFO` do not keep
//! their last values while it is down; every metric `docs/grafana-dashboard.json` queries
//! exists. Also the admin API's access patterns say that their counts are sampled estimates.
//!
//! promtool comes from Debian's `prometheus` package (`scripts/install-deps.sh`). Without it the
//! promtool check fails when `CI` is set and is skipped with a notice otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use cache_core::config::DiskConfig;
use cache_core::{Cache, CacheConfig};
use cache_test_harness::RedisServer;
use serde_json::Value;

/// The Prometheus recorder is one per process: the tests that scrape take turns, so one's
/// Redis being down is not another's reading.
static SCRAPES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Serves the admin router over `cache` on a free loopback port (no tokens: loopback only).
async fn serve(cache: Cache) -> String {
    let app = cache_admin::router(cache, None, cache_admin::AdminConfig::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap();
    });
    format!("http://{addr}")
}

async fn get(url: &str) -> (reqwest::StatusCode, String) {
    let r = reqwest::get(url).await.unwrap();
    (r.status(), r.text().await.unwrap())
}

async fn scrape(base: &str) -> String {
    let (status, text) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200, "{text}");
    text
}

/// A two-level cache with a disk tier (so the `cache_l3_*` family is written too), with some
/// traffic: hits on each level, a miss, a compressed value, a tag invalidation.
async fn busy_cache(redis: &RedisServer, dir: &Path) -> Cache {
    let mut l3 = DiskConfig::default();
    l3.dir = Some(dir.to_owned());
    l3.capacity = cache_core::config::ByteSize(16 << 20);
    let cache = Cache::new(
        CacheConfig::builder()
            .redis_url(redis.url())
            .breaker_cooldown(Duration::from_millis(100))
            .l3_config(l3)
            .build()
            .unwrap(),
    )
    .unwrap();
    cache.set("m:k", &1u64, None).await.unwrap();
    cache.set("m:big", &"x".repeat(10_000), None).await.unwrap();
    cache.set_tagged("m:t", &2u64, None, &["user:1"]).await.unwrap();
    assert_eq!(cache.get::<u64>("m:k").await.unwrap(), Some(1));
    assert_eq!(cache.get::<u64>("m:absent").await.unwrap(), None);
    cache.invalidate_tags(&["user:1"]).await.unwrap();
    cache
}

/// The value of the series `name` (exactly, labels included as written), if present.
fn value(text: &str, series: &str) -> Option<String> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ').map(str::to_owned))
}

/// Metric names with a `# TYPE` line.
fn names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

/// `promtool check metrics` on `text`: `Some(output)` when it ran (and passed), `None` when
/// promtool is missing outside CI.
fn promtool_check(text: &str) -> Option<String> {
    let spawned = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match spawned {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            assert!(
                std::env::var_os("CI").is_none(),
                "promtool is missing and CI is set: install it (scripts/install-deps.sh, Debian package \
                 `prometheus`)"
            );
            eprintln!("NOTICE: promtool not found; `promtool check metrics` skipped (scripts/install-deps.sh installs it)");
            return None;
        }
        Err(e) => panic!("promtool: {e}"),
    };
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check metrics failed ({}):\n{said}\n--- the scrape:\n{text}",
        out.status
    );
    Some(said)
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("metrics-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_and_every_metric_has_help() {
    let _turn = SCRAPES.lock().await;
    let redis = RedisServer::start();
    let dir = temp_dir("promtool");
    let base = serve(busy_cache(&redis, &dir).await).await;
    let text = scrape(&base).await;
    // Our own check first (it says which metric): every TYPE has a HELP.
    let helped: BTreeSet<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# HELP "))
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    let missing: Vec<_> = names(&text).difference(&helped).cloned().collect();
    assert!(missing.is_empty(), "metrics without HELP: {missing:?}\n{text}");
    for family in [
        "cache_hits_total",
        "cache_l3_hits_total",
        "cache_tag_invalidations_total",
        "cache_redis_up",
    ] {
        assert!(names(&text).contains(family), "{family} not exported:\n{text}");
    }
    if let Some(said) = promtool_check(&text) {
        eprintln!("promtool check metrics: passed {said}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_up_and_breaker_follow_redis_and_info_gauges_go_stale() {
    let _turn = SCRAPES.lock().await;
    let mut redis = RedisServer::start();
    let cache = Cache::new(
        CacheConfig::builder()
            .redis_url(redis.url())
            .breaker_threshold(1)
            .breaker_cooldown(Duration::from_secs(30))
            .command_timeout(Duration::from_millis(200))
            .build()
            .unwrap(),
    )
    .unwrap();
    cache.set("r:k", &1u64, None).await.unwrap();
    let base = serve(cache.clone()).await;
    let up = scrape(&base).await;
    assert_eq!(value(&up, "cache_redis_up").as_deref(), Some("1"), "{up}");
    assert_eq!(
        value(&up, "cache_redis_breaker_state").as_deref(),
        Some("0"),
        "{up}"
    );
    let memory: f64 = value(&up, "cache_redis_used_memory_bytes")
        .unwrap()
        .parse()
        .unwrap();
    assert!(memory > 0.0, "{up}");

    redis.stop();
    // A few failing calls open the breaker (threshold 1, cool-down 30 s).
    for _ in 0..3 {
        let _ = cache.get::<u64>("r:other").await;
    }
    let down = scrape(&base).await;
    assert_eq!(value(&down, "cache_redis_up").as_deref(), Some("0"), "{down}");
    assert_eq!(
        value(&down, "cache_redis_breaker_state").as_deref(),
        Some("2"),
        "open: {down}"
    );
    for stale in ["cache_redis_used_memory_bytes", "cache_redis_connected_clients"] {
        assert_eq!(
            value(&down, stale).as_deref(),
            Some("NaN"),
            "{stale} kept a value: {down}"
        );
    }
    if let Some(said) = promtool_check(&down) {
        eprintln!("promtool check metrics (Redis down): passed {said}");
    }
}

/// Every `cache_*` name in `expr` (PromQL): identifiers starting with `cache_`.
fn metric_names_in(expr: &str, out: &mut BTreeSet<String>) {
    let bytes = expr.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let starts = expr[i..].starts_with("cache_")
            && (i == 0
                || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_' || bytes[i - 1] == b':'));
        if starts {
            let end = expr[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .map_or(expr.len(), |n| i + n);
            out.insert(expr[i..end].to_owned());
            i = end;
        } else {
            i += 1;
        }
    }
}

/// Every string under the key `key`, anywhere in `v`.
fn strings_under(v: &Value, key: &str, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match x {
                    Value::String(s) if k == key => out.push(s.clone()),
                    _ => strings_under(x, key, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| strings_under(x, key, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grafana_dashboard_queries_only_exported_metrics() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana-dashboard.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    // Importable with a datasource chosen at import time.
    let inputs = dash["__inputs"].as_array().expect("__inputs");
    assert!(
        inputs
            .iter()
            .any(|i| i["name"] == "DS_PROMETHEUS" && i["pluginId"] == "prometheus"),
        "{inputs:?}"
    );
    let mut uids = Vec::new();
    strings_under(&dash, "uid", &mut uids);
    uids.retain(|u| u != "tiered-cache"); // the dashboard's own
    assert!(
        !uids.is_empty() && uids.iter().all(|u| u == "${DS_PROMETHEUS}"),
        "{uids:?}"
    );
    let panels = dash["panels"].as_array().unwrap();
    let ids: BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    assert!(panels
        .iter()
        .all(|p| p["gridPos"]["w"].is_u64() && p["title"].is_string()));

    let mut exprs = Vec::new();
    strings_under(&dash, "expr", &mut exprs);
    strings_under(&dash, "definition", &mut exprs);
    let mut used = BTreeSet::new();
    for e in &exprs {
        metric_names_in(e, &mut used);
    }
    // What the dashboard is for.
    for want in [
        "cache_hits_total",
        "cache_misses_total",
        "cache_hit_rate",
        "cache_errors_total",
        "cache_l1_entries",
        "cache_l1_bytes",
        "cache_redis_up",
        "cache_redis_breaker_state",
        "cache_l3_hits_total",
        "cache_tag_invalidations_total",
        "cache_compression_saved_bytes_total",
    ] {
        assert!(used.contains(want), "the dashboard does not show {want}");
    }

    let _turn = SCRAPES.lock().await;
    let redis = RedisServer::start();
    let dir = temp_dir("grafana");
    let base = serve(busy_cache(&redis, &dir).await).await;
    let exported = names(&scrape(&base).await);
    let unknown: Vec<_> = used.difference(&exported).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics /metrics does not export: {unknown:?} (exported: {exported:?})"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_patterns_say_they_are_sampled_estimates() {
    // Default sample rate (16): the two reads of one key.
    let cache = Cache::new(CacheConfig::default()).unwrap();
    let base = serve(cache.clone()).await;
    cache.set("ap:k", &1u64, None).await.unwrap();
    // On one thread, so both reads pass the same sampler.
    let c = cache.clone();
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        rt.block_on(async {
            assert_eq!(c.get::<u64>("ap:absent").await.unwrap(), None);
            assert_eq!(c.get::<u64>("ap:k").await.unwrap(), Some(1));
            assert_eq!(c.get::<u64>("ap:k").await.unwrap(), Some(1));
        });
    })
    .await
    .unwrap();
    let (status, text) = get(&format!("{base}/api/v1/cache/access-patterns")).await;
    assert_eq!(status, 200, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["sampled"], true, "{body}");
    assert_eq!(body["sample_rate"], 16, "{body}");
    for row in body["keys"].as_array().unwrap() {
        let n = |f: &str| row[f].as_u64().unwrap_or_else(|| panic!("no {f}: {row}"));
        assert_eq!(n("hits") + n("misses"), n("count"), "{row}");
        assert_eq!(n("count"), n("samples") * 16, "{row}");
    }
    // The first read on a thread is recorded: the miss of ap:absent.
    assert!(
        body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["key"] == "ap:absent"),
        "{body}"
    );
}
