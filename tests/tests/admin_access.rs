//! Access control on the admin API, through the real router served over HTTP against a real
//! Redis: several tokens, each with its actions, key patterns and tags; redaction of key names
//! a token may not read; JSON errors for bodies, query strings, routes and methods.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use cache_admin::{Action, AdminConfig, AdminToken};
use cache_core::{Cache, CacheConfig};
use cache_test_harness::RedisServer;
use reqwest::{header, Method, StatusCode};
use serde_json::{json, Value};

/// `read` + `clear` on `tenant-a:*`, tags `tenant-a:*`.
const TENANT_A: &str = "tenant-a-secret";
/// `read` only, on every key.
const READER: &str = "reader-secret";
/// `clear` + `warmup` on every key, no `read`, no tags.
const OPS: &str = "ops-secret";

const TOKENS: &str = r#"
[[tokens]]
name = "tenant-a"
token = "tenant-a-secret"
actions = ["read", "clear"]
patterns = ["tenant-a:*"]
tags = ["tenant-a:*"]

[[tokens]]
name = "reader"
token = "reader-secret"
actions = ["read"]

[[tokens]]
name = "ops"
token = "ops-secret"
actions = ["clear", "warmup"]
"#;

const KEYS: [&str; 5] = ["tenant-a:1", "tenant-a:2", "tenant-b:1", "tenant-b:2", "other:x"];

const READ_ROUTES: [&str; 6] = [
    "/api/v1/cache/stats",
    "/api/v1/cache/performance",
    "/api/v1/cache/memory",
    "/api/v1/cache/access-patterns",
    "/api/v1/cache/anomalies",
    "/metrics",
];

struct Admin {
    redis: RedisServer,
    cache: Cache,
    http: reqwest::Client,
    base: String,
}

struct Reply {
    status: StatusCode,
    headers: header::HeaderMap,
    text: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }

    /// The `{"error": ".."}` message, checking the body is that JSON.
    fn error(&self) -> String {
        let v = self.json();
        assert_eq!(
            self.headers[header::CONTENT_TYPE],
            "application/json",
            "{}",
            self.text
        );
        v["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error message: {v}"))
            .to_owned()
    }
}

impl Admin {
    /// The admin API over a fresh Redis with `config`, served with connection info (so the
    /// loopback rule sees the peer) when `connect_info`.
    async fn start_with(config: AdminConfig, connect_info: bool) -> Self {
        let redis = RedisServer::start();
        let cache = Cache::new(
            CacheConfig::builder()
                .redis_url(redis.url())
                .access_sample_rate(1)
                .build()
                .unwrap(),
        )
        .unwrap();
        let app = cache_admin::router(cache.clone(), None, config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        if connect_info {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        } else {
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        }
        Admin {
            redis,
            cache,
            http: reqwest::Client::new(),
            base,
        }
    }

    async fn start() -> Self {
        Self::start_with(AdminConfig::from_tokens_toml(TOKENS).unwrap(), true).await
    }

    async fn seed(&self) {
        for k in KEYS {
            self.cache.set(k, &k.to_owned(), None).await.unwrap();
        }
    }

    /// The keys of [`KEYS`] that Redis still holds.
    async fn remaining(&self) -> Vec<&'static str> {
        let mut conn = self.redis.conn().await;
        let mut left = Vec::new();
        for k in KEYS {
            let exists: bool = redis::cmd("EXISTS").arg(k).query_async(&mut conn).await.unwrap();
            if exists {
                left.push(k);
            }
        }
        left
    }

    async fn send(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Reply {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("the server answers");
        Reply {
            status: r.status(),
            headers: r.headers().clone(),
            text: r.text().await.unwrap(),
        }
    }

    async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.send(Method::GET, path, token, None).await
    }

    async fn clear(&self, token: Option<&str>, body: Value) -> Reply {
        self.send(Method::POST, "/api/v1/cache/clear", token, Some(body))
            .await
    }
}

/// The tenant-a token clears inside `tenant-a:*` only; wider or sideways patterns are a 403
/// and delete nothing, even with `"confirm": true`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_token_clears_only_inside_its_patterns() {
    let admin = Admin::start().await;
    admin.seed().await;
    let scans = admin.redis.command_calls("scan").await;
    for body in [
        json!({ "pattern": "tenant-b:*" }),
        json!({ "pattern": "*", "confirm": true }),
        json!({ "pattern": "tenant-*" }),
        json!({ "pattern": "?enant-a:*" }),
        json!({ "pattern": "tenant-b:1" }),
    ] {
        let r = admin.clear(Some(TENANT_A), body.clone()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{body}: {}", r.text);
        let msg = r.error();
        assert!(
            msg.contains("not inside the patterns") && msg.contains("tenant-a"),
            "{msg}"
        );
        assert_eq!(admin.remaining().await, KEYS, "{body} deleted keys");
    }
    assert_eq!(
        admin.redis.command_calls("scan").await,
        scans,
        "refused before any Redis call"
    );

    let r = admin
        .clear(Some(TENANT_A), json!({ "pattern": "tenant-a:1" }))
        .await;
    assert_eq!(
        (r.status, r.json()["removed"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{}",
        r.text
    );
    let r = admin
        .clear(Some(TENANT_A), json!({ "pattern": "tenant-a:*" }))
        .await;
    assert_eq!(
        (r.status, r.json()["removed"].as_u64()),
        (StatusCode::OK, Some(1)),
        "{}",
        r.text
    );
    assert_eq!(admin.remaining().await, ["tenant-b:1", "tenant-b:2", "other:x"]);

    // A token whose patterns are `*` still needs confirm for a broad pattern.
    let r = admin.clear(Some(OPS), json!({ "pattern": "*" })).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.text);
    assert!(r.error().contains("confirm"));
    let r = admin
        .clear(Some(OPS), json!({ "pattern": "*", "confirm": true }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(admin.remaining().await.is_empty());
}

/// Without the `clear` action a token is refused (403); a missing or wrong token is a 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clearing_needs_the_action_and_a_right_token() {
    let admin = Admin::start().await;
    admin.seed().await;
    let r = admin
        .clear(Some(READER), json!({ "pattern": "tenant-a:*" }))
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert!(r.error().contains("\"reader\" may not clear"), "{}", r.text);
    for token in [
        None,
        Some("wrong"),
        Some("tenant-a-secre"),
        Some("tenant-a-secretx"),
    ] {
        let r = admin.clear(token, json!({ "pattern": "tenant-a:*" })).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{token:?}: {}", r.text);
        assert_eq!(r.headers[header::WWW_AUTHENTICATE], "Bearer");
        r.error();
    }
    assert_eq!(admin.remaining().await, KEYS);
}

/// Warmup needs the `warmup` action.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warmup_needs_the_action() {
    let admin = Admin::start().await;
    for token in [TENANT_A, READER] {
        let r = admin
            .send(Method::POST, "/api/v1/cache/warmup", Some(token), None)
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
        assert!(r.error().contains("may not warmup"), "{}", r.text);
    }
    let r = admin.send(Method::POST, "/api/v1/cache/warmup", None, None).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.text);
    let r = admin
        .send(Method::POST, "/api/v1/cache/warmup", Some(OPS), None)
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(r.json()["ok"].is_number(), "{}", r.text);
}

/// The read routes need a token with `read`: none or a wrong one is a 401, one without
/// `read` a 403.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_routes_need_a_read_token() {
    let admin = Admin::start().await;
    for route in READ_ROUTES {
        for token in [None, Some("wrong")] {
            let r = admin.get(route, token).await;
            assert_eq!(
                r.status,
                StatusCode::UNAUTHORIZED,
                "{route} {token:?}: {}",
                r.text
            );
            r.error();
        }
        let r = admin.get(route, Some(OPS)).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{route}: {}", r.text);
        assert!(r.error().contains("\"ops\" may not read"));
        for token in [TENANT_A, READER] {
            let r = admin.get(route, Some(token)).await;
            assert_eq!(r.status, StatusCode::OK, "{route}: {}", r.text);
        }
    }
}

/// Health stays open, but says only whether the cache is healthy unless the caller may read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_without_a_read_token_shows_only_the_status() {
    let mut admin = Admin::start().await;
    for token in [None, Some("wrong"), Some(OPS)] {
        let r = admin.get("/api/v1/cache/health", token).await;
        assert_eq!(r.status, StatusCode::OK, "{token:?}");
        assert_eq!(r.json(), json!({ "status": "healthy" }), "{token:?}");
    }
    let r = admin.get("/api/v1/cache/health", Some(READER)).await;
    assert_eq!(r.status, StatusCode::OK);
    let h = r.json();
    assert_eq!(h["status"], "healthy");
    assert!(
        h["health"]["redis"]["url"]
            .as_str()
            .unwrap()
            .contains("127.0.0.1"),
        "{h}"
    );

    // Unhealthy: the minimal form says so (503) without the reason.
    admin.redis.stop();
    let r = admin.get("/api/v1/cache/health", None).await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{}", r.text);
    assert_eq!(r.json(), json!({ "status": "unhealthy" }));
    let r = admin.get("/api/v1/cache/health", Some(READER)).await;
    assert!(
        r.json()["reason"].as_str().unwrap().contains("redis unreachable"),
        "{}",
        r.text
    );
}

/// Key names outside a token's patterns are `<redacted>` in access patterns and the memory
/// profile (figures kept); a `*` token sees every name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_names_outside_a_tokens_patterns_are_redacted() {
    let admin = Admin::start().await;
    admin.seed().await;
    for k in KEYS {
        let _ = admin.cache.get::<String>(k).await.unwrap();
    }
    let keys = |v: &Value, list: &str, field: &str| -> Vec<String> {
        v[list]
            .as_array()
            .unwrap_or_else(|| panic!("no {list}: {v}"))
            .iter()
            .map(|e| e[field].as_str().unwrap().to_owned())
            .collect()
    };
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };

    let ap = admin
        .get("/api/v1/cache/access-patterns?limit=50", Some(TENANT_A))
        .await;
    assert_eq!(ap.status, StatusCode::OK, "{}", ap.text);
    assert!(
        !ap.text.contains("tenant-b") && !ap.text.contains("other:x"),
        "{}",
        ap.text
    );
    assert_eq!(
        sorted(keys(&ap.json(), "keys", "key")),
        [
            "<redacted>",
            "<redacted>",
            "<redacted>",
            "tenant-a:1",
            "tenant-a:2"
        ],
        "{}",
        ap.text
    );
    for entry in ap.json()["keys"].as_array().unwrap() {
        assert!(entry["count"].as_u64().unwrap() >= 1, "figures are kept: {entry}");
    }
    let ap = admin
        .get("/api/v1/cache/access-patterns?limit=50", Some(READER))
        .await;
    assert_eq!(
        sorted(keys(&ap.json(), "keys", "key")),
        sorted(KEYS.map(String::from).to_vec())
    );

    let mem = admin.get("/api/v1/cache/memory", Some(TENANT_A)).await;
    assert_eq!(mem.status, StatusCode::OK, "{}", mem.text);
    assert!(
        !mem.text.contains("tenant-b") && !mem.text.contains("other"),
        "{}",
        mem.text
    );
    let m = mem.json();
    assert_eq!(
        sorted(keys(&m, "largest", "key")),
        [
            "<redacted>",
            "<redacted>",
            "<redacted>",
            "tenant-a:1",
            "tenant-a:2"
        ],
        "{m}"
    );
    // Rows of the keys in L1 (the TTL table's prefixes add empty rows, redacted as well).
    let in_l1 = |m: &Value| -> Vec<String> {
        let rows = m["prefixes"].as_array().unwrap().iter();
        let filled = rows.filter(|r| r["l1_entries"].as_u64().unwrap() > 0);
        sorted(filled.map(|r| r["prefix"].as_str().unwrap().to_owned()).collect())
    };
    assert_eq!(in_l1(&m), ["<redacted>", "<redacted>", "tenant-a"], "{m}");
    assert!(
        m["prefixes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["prefix"] == "tenant-a" || r["prefix"] == "<redacted>"),
        "{m}"
    );
    let m = admin.get("/api/v1/cache/memory", Some(READER)).await.json();
    assert_eq!(
        sorted(keys(&m, "largest", "key")),
        sorted(KEYS.map(String::from).to_vec())
    );
    assert_eq!(in_l1(&m), ["other", "tenant-a", "tenant-b"], "{m}");
}

/// Tags are invalidated only inside the token's `tags`; a token without `tags` may invalidate
/// none. A refused tag beside an allowed pattern deletes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_are_invalidated_only_inside_the_tokens_tags() {
    let admin = Admin::start().await;
    let c = &admin.cache;
    c.set_tagged("tenant-a:1", &1u8, None, &["tenant-a:42"])
        .await
        .unwrap();
    c.set_tagged("tenant-b:1", &2u8, None, &["tenant-b:42"])
        .await
        .unwrap();
    c.set("tenant-a:2", &3u8, None).await.unwrap();

    for (token, body) in [
        (TENANT_A, json!({ "tags": ["tenant-b:42"] })),
        (
            TENANT_A,
            json!({ "pattern": "tenant-a:*", "tags": ["tenant-b:42"] }),
        ),
        (TENANT_A, json!({ "tags": ["tenant-a:42", "tenant-b:42"] })),
        (OPS, json!({ "tags": ["tenant-a:42"] })),
    ] {
        let r = admin.clear(Some(token), body.clone()).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{body}: {}", r.text);
        assert!(r.error().contains("not inside the tags"), "{}", r.text);
    }
    assert_eq!(c.get::<u8>("tenant-a:1").await.unwrap(), Some(1));
    assert_eq!(c.get::<u8>("tenant-b:1").await.unwrap(), Some(2));
    assert_eq!(c.get::<u8>("tenant-a:2").await.unwrap(), Some(3));

    let r = admin
        .clear(Some(TENANT_A), json!({ "tags": ["tenant-a:42"] }))
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(c.get::<u8>("tenant-a:1").await.unwrap(), None);
    assert_eq!(c.get::<u8>("tenant-b:1").await.unwrap(), Some(2));
    assert_eq!(c.get::<u8>("tenant-a:2").await.unwrap(), Some(3));
}

/// Bodies: over 64 KiB is a 413, no JSON content type a 415, bad JSON a 400; all JSON.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_are_bounded_and_typed() {
    let admin = Admin::start().await;
    admin.seed().await;
    let url = format!("{}/api/v1/cache/clear", admin.base);
    let big = format!(
        "{{\"pattern\": \"tenant-a:*\", \"tags\": [\"{}\"]}}",
        "x".repeat(10 * 1024 * 1024)
    );
    let raw = |body: String, content_type: Option<&str>| {
        let mut req = admin.http.post(&url).bearer_auth(TENANT_A).body(body);
        if let Some(ct) = content_type {
            req = req.header(header::CONTENT_TYPE, ct);
        }
        async move {
            let r = req.send().await.expect("the server answers");
            Reply {
                status: r.status(),
                headers: r.headers().clone(),
                text: r.text().await.unwrap(),
            }
        }
    };
    // Over a raw connection that announces the whole 10 MB but sends only its start: the server
    // answers from the headers and closes, and a client still writing the rest could see a
    // broken pipe before the answer (a CI run did, through reqwest).
    let (status, text) = announced_but_cut(&admin.base, &big).await;
    assert_eq!(status, 413, "{text}");
    assert!(
        text.contains("65536 bytes") && text.contains("\"error\""),
        "{text}"
    );

    let r = raw(r#"{"pattern": "tenant-a:*"}"#.into(), None).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text);
    r.error();
    let r = raw(r#"{"pattern": "tenant-a:*"}"#.into(), Some("text/plain")).await;
    assert_eq!(r.status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{}", r.text);
    for bad in [r#"{"pattern": "#, r#"{"pattern": 1}"#, r#"{"patern": "x"}"#] {
        let r = raw(bad.into(), Some("application/json")).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{bad}: {}", r.text);
        r.error();
    }
    assert_eq!(admin.remaining().await, KEYS);
}

/// Bad query strings, unknown routes and wrong methods answer with a JSON error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_error_is_json() {
    let admin = Admin::start().await;
    for path in [
        "/api/v1/cache/access-patterns?limit=abc",
        "/api/v1/cache/access-patterns?limit=-1",
        "/api/v1/cache/memory?samples=lots",
    ] {
        let r = admin.get(path, Some(READER)).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}: {}", r.text);
        r.error();
    }
    for path in ["/api/v1/cache/nope", "/api/v1/cache", "/api/v1/cache/stats/extra"] {
        let r = admin.get(path, Some(READER)).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}: {}", r.text);
        r.error();
    }
    let r = admin.get("/api/v1/cache/clear", Some(TENANT_A)).await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{}", r.text);
    assert_eq!(r.headers[header::ALLOW], "POST");
    r.error();
    let r = admin
        .send(Method::POST, "/api/v1/cache/stats", Some(READER), Some(json!({})))
        .await;
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{}", r.text);
    r.error();
}

/// Without tokens, loopback clients are served in full; a client whose address is unknown
/// (no connection info) gets health's status only, and the other routes refuse it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_tokens_only_loopback_clients_are_served() {
    let admin = Admin::start_with(AdminConfig::new(), true).await;
    admin.seed().await;
    for route in READ_ROUTES {
        let r = admin.get(route, None).await;
        assert_eq!(r.status, StatusCode::OK, "{route}: {}", r.text);
    }
    let h = admin.get("/api/v1/cache/health", None).await.json();
    assert!(h["health"].is_object(), "{h}");
    let r = admin.clear(None, json!({ "pattern": "tenant-b:*" })).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert_eq!(admin.remaining().await, ["tenant-a:1", "tenant-a:2", "other:x"]);

    let blind = Admin::start_with(AdminConfig::new(), false).await;
    blind.seed().await;
    for route in READ_ROUTES {
        let r = blind.get(route, None).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{route}: {}", r.text);
        assert!(r.error().contains("loopback"));
    }
    let r = blind.clear(None, json!({ "pattern": "tenant-b:*" })).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{}", r.text);
    assert_eq!(blind.remaining().await, KEYS);
    let r = blind.get("/api/v1/cache/health", None).await;
    assert_eq!(r.json(), json!({ "status": "healthy" }));
}

/// `serve_checked` refuses a public address without tokens, and serves it with one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_checked_needs_a_token_for_a_public_address() {
    let cache = Cache::new(CacheConfig::default()).unwrap();
    let open = AdminConfig::new();
    let app = cache_admin::router(cache.clone(), None, open.clone());
    let err = cache_admin::serve_checked("0.0.0.0:0".parse().unwrap(), app, &open)
        .await
        .unwrap_err();
    assert!(matches!(err, cache_admin::ServeError::Exposed(_)), "{err}");

    let guarded = AdminConfig::new()
        .token(AdminToken::new("r", "r-secret").actions([Action::Read]))
        .unwrap();
    let app = cache_admin::router(cache, None, guarded.clone());
    let serving = tokio::time::timeout(
        Duration::from_millis(300),
        cache_admin::serve_checked("0.0.0.0:0".parse().unwrap(), app, &guarded),
    )
    .await;
    assert!(serving.is_err(), "still serving: {serving:?}");
}

/// `CACHE_ADMIN_TOKEN`'s single token keeps working through the new API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_full_token_may_do_everything() {
    let admin = Admin::start_with(AdminConfig::with_token("only").unwrap(), true).await;
    admin.seed().await;
    let _ = admin.cache.get::<String>("tenant-b:1").await.unwrap();
    let r = admin.get("/api/v1/cache/access-patterns", Some("only")).await;
    assert!(r.text.contains("tenant-b:1"), "{}", r.text);
    let r = admin
        .clear(
            Some("only"),
            json!({ "pattern": "*", "confirm": true, "tags": ["any:1"] }),
        )
        .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text);
    assert!(admin.remaining().await.is_empty());
}

/// POSTs `body` to the clear route with its full `Content-Length` but writes only its first
/// 128 KiB (past the limit), then reads the answer: the status and the whole reply text.
async fn announced_but_cut(base: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /api/v1/cache/clear HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {TENANT_A}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let _ = s.write_all(&body.as_bytes()[..128 * 1024]).await;
    let mut reply = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), s.read_to_end(&mut reply)).await;
    let text = String::from_utf8_lossy(&reply).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}
