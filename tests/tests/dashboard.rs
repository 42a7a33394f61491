//! The admin dashboard (`GET /dashboard`) in a real headless Chromium, driven over WebDriver
//! (`chromedriver`, Debian's `chromium-driver`; `scripts/install-deps.sh` installs it), against
//! the admin router over a real Redis with known traffic: the page's figures equal the API's
//! and the cache's own, a clear from the page deletes the keys, refusals show the API's message.
//! Screenshots go to `target/dashboard.png` and `target/dashboard-refused.png`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cache_admin::{AdminConfig, AdminToken};
use cache_core::{cache_query, Cache, CacheConfig};
use cache_test_harness::RedisServer;
use cache_warmer::Warmer;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const TOKEN: &str = "dashboard-test-token";
/// Every wait in this test is bounded by this: a broken page fails, it does not hang.
const WAIT: Duration = Duration::from_secs(30);

static REPORT_LOADS: AtomicUsize = AtomicUsize::new(0);

/// A cached function, so the page has a per-function row (load time, time saved).
#[cache_query(ttl = 600)]
async fn dash_report(id: u64) -> String {
    REPORT_LOADS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(20)).await;
    format!("report {id}")
}

/// `chromedriver` on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    fn start() -> Self {
        let Some(binary) = on_path("chromedriver") else {
            panic!(
                "chromedriver is not installed: the dashboard test needs headless Chromium. Run \
                 scripts/install-deps.sh (installs Debian's `chromium` and `chromium-driver`)"
            );
        };
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        Driver { child, port }
    }

    /// A WebDriver session on headless Chromium, retried until chromedriver listens.
    async fn session(&self) -> Client {
        let mut options = json!({
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"]
        });
        if Path::new("/usr/bin/chromium").exists() {
            options["binary"] = json!("/usr/bin/chromium");
        }
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), options);
        let url = format!("http://127.0.0.1:{}", self.port);
        let deadline = Instant::now() + WAIT;
        loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => return c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Err(e) => panic!("no WebDriver session from chromedriver on {url} within {WAIT:?}: {e}"),
            }
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// Runs `script` (a JS expression) until it is truthy, or fails naming `what` and the page's
/// status lines.
async fn wait_for(client: &Client, what: &str, script: &str) -> Value {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = client
            .execute(&format!("return {script};"), vec![])
            .await
            .unwrap();
        if !(v.is_null() || v == json!(false) || v == json!(0) || v == json!("")) {
            return v;
        }
        if Instant::now() > deadline {
            let status = client
                .execute(
                    "return [document.querySelector('#poll-status').textContent, \
                     document.querySelector('#action-status').textContent, document.body.dataset.updated];",
                    vec![],
                )
                .await
                .unwrap();
            panic!("waited {WAIT:?} for {what}; page status, action status, updates: {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every `data-metric` element of the page: name -> {text, value}.
async fn metrics(client: &Client) -> Value {
    client
        .execute(
            "const out = {}; document.querySelectorAll('[data-metric]').forEach((e) => { \
             if (!(e.dataset.metric in out)) out[e.dataset.metric] = {text: e.textContent, value: e.dataset.value}; }); \
             return out;",
            vec![],
        )
        .await
        .unwrap()
}

fn text<'a>(page: &'a Value, metric: &str) -> &'a str {
    page[metric]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("the page has no metric {metric:?}"))
}

fn value<'a>(page: &'a Value, metric: &str) -> &'a str {
    page[metric]["value"]
        .as_str()
        .unwrap_or_else(|| panic!("the page has no metric {metric:?}"))
}

fn number(page: &Value, metric: &str) -> f64 {
    value(page, metric)
        .parse()
        .unwrap_or_else(|e| panic!("{metric} = {:?}: {e}", value(page, metric)))
}

/// Replaces an input's text.
async fn type_into(client: &Client, id: &str, text: &str) {
    let input = client.find(Locator::Id(id)).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(text).await.unwrap();
}

async fn click(client: &Client, id: &str) {
    client.find(Locator::Id(id)).await.unwrap().click().await.unwrap();
}

/// A number the page exposes (a JS expression), read once.
async fn count(client: &Client, expr: &str) -> u64 {
    let v = client
        .execute(&format!("return Number({expr});"), vec![])
        .await
        .unwrap();
    v.as_u64().unwrap_or_else(|| panic!("{expr} = {v}"))
}

const ACTIONS: &str = "document.querySelector('#action-status').dataset.seq";
const UPDATES: &str = "document.body.dataset.updated";

/// Clicks an action button and waits for its result; returns `(state, text)` of the status line.
async fn act(client: &Client, button: &str) -> (String, String) {
    let seq = count(client, ACTIONS).await;
    click(client, button).await;
    let done = format!("Number({ACTIONS}) > {seq}");
    wait_for(client, &format!("the result of {button}"), &done).await;
    let script =
        "const s = document.querySelector('#action-status'); return [s.dataset.state, s.textContent];";
    let v = client.execute(script, vec![]).await.unwrap();
    let field = |i: usize| v[i].as_str().unwrap().to_owned();
    (field(0), field(1))
}

/// Waits for `more` completed polls; with 2 or more, the last one began after this call.
async fn polls(client: &Client, more: u64) {
    let n = count(client, UPDATES).await;
    wait_for(
        client,
        "a fresh poll",
        &format!("Number({UPDATES}) >= {}", n + more),
    )
    .await;
}

async fn api(http: &reqwest::Client, base: &str, path: &str) -> Value {
    let r = http
        .get(format!("{base}/api/v1/cache/{path}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.json().await.unwrap()
}

async fn redis_keys(redis: &RedisServer, pattern: &str) -> Vec<String> {
    let mut conn = redis.conn().await;
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    keys
}

async fn screenshot(client: &Client, name: &str) -> PathBuf {
    // The whole page, not the first screen: the window grows to the document's height.
    let height = client
        .execute("return document.documentElement.scrollHeight;", vec![])
        .await
        .unwrap()
        .as_u64()
        .unwrap_or(1000);
    client.set_window_size(1400, height as u32 + 140).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let png = client.screenshot().await.unwrap();
    let path = target_dir().join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, png).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_apis_figures_and_acts_in_a_real_browser() {
    // Before anything else: without chromedriver this test fails, it does not skip.
    let driver = Driver::start();

    let redis = RedisServer::start();
    let config = || {
        CacheConfig::builder()
            .redis_url(redis.url())
            .access_sample_rate(1)
    };
    let cache = Cache::new(config().build().unwrap()).unwrap();
    assert!(
        cache_core::init(cache.clone()).is_ok(),
        "the only global cache here"
    );
    let warmer = Warmer::new(cache.clone());
    warmer.register("dash-entry", || async { Ok::<(), String>(()) });
    // An hour: it must not run (and move the figures) during the test; the page shows its next run.
    warmer
        .schedule_warmup("dash-refresh", Duration::from_secs(3600), || async {
            Ok::<(), String>(())
        })
        .unwrap();
    let admin = AdminConfig::new()
        .token(AdminToken::full("dashboard", TOKEN))
        .unwrap();
    let app = cache_admin::router(cache.clone(), Some(warmer.clone()), admin);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .await
            .unwrap()
    });

    // Known traffic: 4 loads (misses), 8 L1 hits, 1 miss on an absent key, 1 L2 hit (a value
    // another instance wrote), and 3 calls of a cached function (2 loads, 1 hit).
    for i in 0..4u64 {
        let v: u64 = cache
            .get_or_insert_with(&format!("query:dash:{i}"), None, || async move { i * 10 })
            .await;
        assert_eq!(v, i * 10);
    }
    for _ in 0..5 {
        assert_eq!(cache.get::<u64>("query:dash:0").await.unwrap(), Some(0));
    }
    for _ in 0..3 {
        assert_eq!(cache.get::<u64>("query:dash:1").await.unwrap(), Some(10));
    }
    assert_eq!(cache.get::<u64>("query:dash:absent").await.unwrap(), None);
    let other = Cache::new(config().build().unwrap()).unwrap();
    other.set("query:dash:9", &90u64, None).await.unwrap();
    // Let the other instance's write notice pass before reading, so it cannot evict our copy.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cache.get::<u64>("query:dash:9").await.unwrap(), Some(90));
    assert_eq!(dash_report(1).await, "report 1");
    assert_eq!(dash_report(1).await, "report 1");
    assert_eq!(dash_report(2).await, "report 2");
    assert_eq!(REPORT_LOADS.load(Ordering::SeqCst), 2);

    // The page is static and open; it and its assets carry the strict policy and no-store.
    for (path, kind) in [
        ("/dashboard", "text/html; charset=utf-8"),
        ("/dashboard/app.js", "text/javascript; charset=utf-8"),
        ("/dashboard/app.css", "text/css; charset=utf-8"),
    ] {
        let r = http().get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let h = r.headers();
        assert_eq!(h["content-type"], kind, "{path}");
        assert_eq!(h["cache-control"], "no-store", "{path}");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.starts_with("default-src 'self'; script-src 'self';"), "{csp}");
    }

    let client = driver.session().await;
    client.goto(&format!("{base}/dashboard")).await.unwrap();

    // Without a token every read is refused, and the page says so with the API's message.
    wait_for(
        &client,
        "a first poll",
        "Number(document.body.dataset.polls) >= 1",
    )
    .await;
    let status = client
        .find(Locator::Id("poll-status"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(status.contains("missing or wrong bearer token"), "{status}");
    assert_eq!(
        client
            .execute("return document.body.dataset.updated;", vec![])
            .await
            .unwrap(),
        json!("0"),
        "no figures without a token"
    );

    type_into(&client, "token", TOKEN).await;
    click(&client, "token-use").await;
    // Every poll since the token began after the traffic, so one is enough.
    wait_for(
        &client,
        "a poll with the token",
        "Number(document.body.dataset.updated) >= 1",
    )
    .await;
    let page = metrics(&client).await;
    let stats = api(&http(), &base, "stats").await;
    let perf = api(&http(), &base, "performance").await;
    let top = api(&http(), &base, "access-patterns?limit=10").await;
    let memory = api(&http(), &base, "memory?samples=20").await;
    let own = serde_json::to_value(cache.stats().await).unwrap();
    let s = &stats["cache"];

    // Counters: the page's text and raw value, the API's JSON and the cache's own stats agree.
    for (metric, field) in [
        ("l1_hits", "l1_hits"),
        ("l2_hits", "l2_hits"),
        ("l3_hits", "l3_hits"),
        ("misses", "misses"),
        ("hits", "hits"),
        ("entries", "local_cache_size"),
        ("errors", "errors"),
        ("sets", "sets"),
        ("loader_calls", "loader_calls"),
        ("l2_skipped", "l2_skipped"),
    ] {
        let api_n = s[field].as_u64().unwrap_or_else(|| panic!("stats.{field}: {s}"));
        assert_eq!(text(&page, metric), api_n.to_string(), "{metric} shown vs API");
        assert_eq!(value(&page, metric), api_n.to_string(), "{metric} value vs API");
        assert_eq!(own[field], s[field], "{field}: API vs cache.stats()");
    }
    let rate = s["hit_rate"].as_f64().unwrap();
    assert_eq!(number(&page, "hit_rate"), rate);
    assert_eq!(own["hit_rate"].as_f64().unwrap(), rate);
    assert_eq!(text(&page, "hit_rate"), format!("{:.1}%", rate * 100.0));
    assert_eq!(text(&page, "breaker"), "closed");
    assert_eq!(text(&page, "cache_enabled"), "cache: on");
    // The known traffic, as the cache counted it.
    let n = |f: &str| s[f].as_u64().unwrap();
    assert!(n("l1_hits") >= 9 && n("l2_hits") >= 1 && n("misses") >= 7, "{s}");
    assert!(n("hits") >= n("l1_hits") + n("l2_hits"), "{s}");

    // Top keys, row by row.
    let keys = top["keys"].as_array().unwrap();
    assert_eq!(keys[0]["key"], "query:dash:0", "{top}");
    for (i, k) in keys.iter().enumerate() {
        assert_eq!(value(&page, &format!("top.{i}.key")), k["key"].as_str().unwrap());
        assert_eq!(text(&page, &format!("top.{i}.count")), k["count"].to_string());
        assert_eq!(text(&page, &format!("top.{i}.hits")), k["hits"].to_string());
    }
    assert!(page.get(format!("top.{}.key", keys.len())).is_none());

    // The cached function: calls, hits, loads, and time saved (= hits × mean load time).
    let f = perf["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"].as_str().unwrap().ends_with("dash_report"))
        .unwrap_or_else(|| panic!("no dash_report in {perf}"));
    let name = f["name"].as_str().unwrap();
    assert_eq!(
        (f["calls"].as_u64(), f["hits"].as_u64(), f["loads"].as_u64()),
        (Some(3), Some(1), Some(2))
    );
    for field in ["calls", "hits", "loads"] {
        assert_eq!(text(&page, &format!("fn.{name}.{field}")), f[field].to_string());
    }
    let saved = number(&page, &format!("fn.{name}.time_saved_ms"));
    assert_eq!(saved, f["time_saved_ms"].as_f64().unwrap());
    assert!(saved >= 20.0, "one hit of a 20 ms function saved {saved} ms");

    // Latency per operation, memory per prefix, the warmup job's next run.
    for o in perf["operations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o["count"].as_u64() > Some(0))
    {
        let m = format!(
            "latency.{}.{}.",
            o["op"].as_str().unwrap(),
            o["level"].as_str().unwrap()
        );
        assert_eq!(value(&page, &format!("{m}count")), o["count"].to_string());
        assert_eq!(
            number(&page, &format!("{m}p99_us")),
            o["p99_us"].as_f64().unwrap()
        );
    }
    assert!(page.get("latency.get.l2.p99_us").is_some(), "{perf}");
    let prefixes = memory["prefixes"].as_array().unwrap();
    assert!(!prefixes.is_empty(), "{memory}");
    for (i, p) in prefixes.iter().enumerate() {
        assert_eq!(
            value(&page, &format!("mem.{i}.prefix")),
            p["prefix"].as_str().unwrap()
        );
        assert_eq!(
            value(&page, &format!("mem.{i}.l1_entries")),
            p["l1_entries"].to_string()
        );
        assert_eq!(
            value(&page, &format!("mem.{i}.l1_bytes")),
            p["l1_bytes"].to_string()
        );
    }
    let job = &stats["warmup"]["jobs"][0];
    assert_eq!(job["tags"][0], "dash-refresh");
    assert_eq!(
        value(&page, "job.dash-refresh.next_run"),
        job["next_run"].as_str().unwrap()
    );
    assert!(
        text(&page, "job.dash-refresh.next_run").contains("(in "),
        "{page}"
    );

    // A clear from the page takes effect: the keys are gone from Redis and from the cache.
    let dash_keys = redis_keys(&redis, "query:dash:*").await;
    assert_eq!(dash_keys.len(), 5, "{dash_keys:?}");
    let report_keys = redis_keys(&redis, "query:dashboard::*").await;
    assert_eq!(report_keys.len(), 2, "{report_keys:?}");
    type_into(&client, "clear-pattern", "query:dash:*").await;
    let (state, shown) = act(&client, "clear-btn").await;
    assert_eq!((state.as_str(), shown.as_str()), ("ok", "removed: 5"));
    assert_eq!(redis_keys(&redis, "query:dash:*").await, Vec::<String>::new());
    assert_eq!(cache.get::<u64>("query:dash:0").await.unwrap(), None);
    assert_eq!(
        redis_keys(&redis, "query:dashboard::*").await,
        report_keys,
        "outside the pattern"
    );
    polls(&client, 2).await;
    assert_eq!(
        text(&metrics(&client).await, "entries"),
        api(&http(), &base, "stats").await["cache"]["local_cache_size"].to_string()
    );

    // A pattern that can match every key, unconfirmed: the API's 400, shown as it said it.
    type_into(&client, "clear-pattern", "*").await;
    let (state, shown) = act(&client, "clear-btn").await;
    assert_eq!(state, "error");
    assert!(
        shown.contains("HTTP 400") && shown.contains("no literal prefix"),
        "{shown}"
    );
    assert_eq!(redis_keys(&redis, "query:dashboard::*").await, report_keys);

    // Warmup from the page: the registered entry runs.
    let (state, shown) = act(&client, "warmup-btn").await;
    assert_eq!(state, "ok");
    assert!(shown.starts_with("warmup: 1 ok, 0 failed, 0 skipped"), "{shown}");
    // The cache-off switch, off and on again; the page shows the state the stats report.
    for (label, on) in [("off", false), ("on", true)] {
        let (state, shown) = act(&client, "enabled-btn").await;
        assert_eq!((state.as_str(), shown), ("ok", format!("cache turned {label}")));
        polls(&client, 2).await;
        assert_eq!(
            text(&metrics(&client).await, "cache_enabled"),
            format!("cache: {label}")
        );
        assert_eq!(api(&http(), &base, "stats").await["cache"]["enabled"], json!(on));
    }

    // A few polls' worth of changing traffic, so the screenshot's hit-rate chart has a line.
    for round in 0..4u64 {
        let key = format!("query:chart:{round}");
        cache.set(&key, &round, None).await.unwrap();
        for _ in 0..(round * 3 + 1) {
            cache.get::<u64>(&key).await.unwrap();
        }
        cache.get::<u64>("query:chart:absent").await.unwrap();
        polls(&client, 1).await;
    }
    type_into(&client, "clear-pattern", "query:dash:*").await;
    polls(&client, 2).await;
    let shot = screenshot(&client, "dashboard.png").await;

    // A wrong token: the API's refusal is shown and nothing is removed.
    let refusal = http()
        .post(format!("{base}/api/v1/cache/clear"))
        .bearer_auth("wrong-token")
        .json(&json!({ "pattern": "query:dashboard::*" }))
        .send()
        .await
        .unwrap();
    assert_eq!(refusal.status(), 401);
    let message = refusal.json::<Value>().await.unwrap()["error"]
        .as_str()
        .unwrap()
        .to_owned();
    client.set_window_size(1400, 1000).await.unwrap();
    type_into(&client, "token", "wrong-token").await;
    click(&client, "token-use").await;
    type_into(&client, "clear-pattern", "query:dashboard::*").await;
    let (state, shown) = act(&client, "clear-btn").await;
    assert_eq!(state, "error");
    assert_eq!(shown, format!("clear refused (HTTP 401): {message}"));
    assert_eq!(
        redis_keys(&redis, "query:dashboard::*").await,
        report_keys,
        "a refused clear removed keys"
    );
    assert_eq!(dash_report(1).await, "report 1");
    assert_eq!(REPORT_LOADS.load(Ordering::SeqCst), 2, "still cached");
    let refused = screenshot(&client, "dashboard-refused.png").await;

    let violations = client
        .execute("return document.body.dataset.cspViolations || null;", vec![])
        .await
        .unwrap();
    assert_eq!(
        violations,
        Value::Null,
        "the page broke its own Content-Security-Policy"
    );
    client.close().await.unwrap();
    warmer.shutdown().await;
    eprintln!("screenshots: {} {}", shot.display(), refused.display());
}

fn http() -> reqwest::Client {
    reqwest::Client::new()
}
