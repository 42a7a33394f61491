//! `POST /api/v1/cache/clear` through the real admin router, served over HTTP, against a real
//! Redis: which patterns need `"confirm": true`, patterns too long to compile, and tags.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use cache_admin::AdminConfig;
use cache_core::{Cache, CacheConfig};
use cache_test_harness::RedisServer;
use reqwest::StatusCode;
use serde_json::{json, Value};

const TOKEN: &str = "t0ken";

/// Keys of several families, and one literally named `*`.
const KEYS: [&str; 6] = [
    "query:a",
    "query:b",
    "resource:users:1",
    "static:tools",
    "*",
    "plain",
];

struct Admin {
    redis: RedisServer,
    cache: Cache,
    http: reqwest::Client,
    base: String,
}

impl Admin {
    async fn start() -> Self {
        let redis = RedisServer::start();
        let cache = Cache::new(CacheConfig::builder().redis_url(redis.url()).build().unwrap()).unwrap();
        let app = cache_admin::router(cache.clone(), None, AdminConfig::with_token(TOKEN).unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Admin {
            redis,
            cache,
            http: reqwest::Client::new(),
            base,
        }
    }

    /// Stores every key of [`KEYS`] again.
    async fn seed(&self) {
        for k in KEYS {
            self.cache.set(k, &1u8, None).await.unwrap();
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

    async fn clear(&self, body: Value) -> (StatusCode, Value) {
        let r = self
            .http
            .post(format!("{}/api/v1/cache/clear", self.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .expect("the server answers (a panicking handler closes the connection instead)");
        let status = r.status();
        (status, r.json().await.unwrap_or(Value::Null))
    }
}

/// Patterns that can match any key, however they are spelled, need `"confirm": true`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spelling_of_everything_needs_confirm() {
    let admin = Admin::start().await;
    // Pattern, and the keys left after it ran with confirm.
    let cases: [(&str, &[&str]); 4] = [
        ("*", &[]),
        ("?*", &[]),
        ("*:*", &["*", "plain"]),
        ("[a-z]*", &["*"]),
    ];
    for (pattern, left_after) in cases {
        admin.seed().await;
        for body in [
            json!({ "pattern": pattern }),
            json!({ "pattern": pattern, "confirm": false }),
        ] {
            let (status, reply) = admin.clear(body).await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{pattern:?} without confirm: {reply}"
            );
            let msg = reply["error"].as_str().unwrap();
            assert!(msg.contains("confirm"), "{pattern:?}: {msg}");
            assert_eq!(
                admin.remaining().await,
                KEYS,
                "{pattern:?} without confirm deleted keys"
            );
        }
        let (status, reply) = admin.clear(json!({ "pattern": pattern, "confirm": true })).await;
        assert_eq!(status, StatusCode::OK, "{pattern:?} with confirm: {reply}");
        assert_eq!(admin.remaining().await, left_after, "{pattern:?} with confirm");
    }
}

/// Patterns with a literal prefix delete their family without confirmation, and only it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_with_a_literal_prefix_need_no_confirm() {
    let admin = Admin::start().await;
    admin.seed().await;
    // `\*` is the key named `*`, not a wildcard.
    let (status, reply) = admin.clear(json!({ "pattern": "\\*" })).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["removed"], 1, "{reply}");
    assert_eq!(
        admin.remaining().await,
        ["query:a", "query:b", "resource:users:1", "static:tools", "plain"]
    );

    let (status, reply) = admin.clear(json!({ "pattern": "query:*" })).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["removed"], 2, "{reply}");
    assert_eq!(
        admin.remaining().await,
        ["resource:users:1", "static:tools", "plain"]
    );
}

/// A 500,000-character pattern made `Pattern::new` panic inside globset: the connection was
/// dropped with no reply. Such a body is now over the admin API's 64 KiB limit (a 413); a
/// pattern that fits in the body but is over the pattern limit is a 400 that names the limit,
/// and the server keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_long_patterns_are_a_400_naming_the_limit() {
    let admin = Admin::start().await;
    admin.seed().await;
    for pattern in ["a".repeat(500_000), format!("query:{}", "*".repeat(500_000))] {
        let (status, reply) = admin.clear(json!({ "pattern": pattern, "confirm": true })).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{} bytes", pattern.len());
        assert!(reply["error"].as_str().unwrap().len() < 400, "{reply}");
    }
    for pattern in [
        "a".repeat(60_000),
        format!("query:{}", "*".repeat(60_000)),
        "q".repeat(1025),
    ] {
        let (status, reply) = admin.clear(json!({ "pattern": pattern, "confirm": true })).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{} bytes", pattern.len());
        let msg = reply["error"].as_str().unwrap();
        assert!(msg.contains("limit of 1024 bytes"), "{msg}");
        assert!(
            msg.len() < 400,
            "the reply does not echo the pattern: {} bytes",
            msg.len()
        );
    }
    assert_eq!(admin.remaining().await, KEYS);

    // Exactly at the limit is fine.
    let at_limit = format!("query:{}", "a".repeat(1024 - "query:".len()));
    let (status, reply) = admin.clear(json!({ "pattern": at_limit })).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let (status, reply) = admin.clear(json!({ "pattern": "query:*" })).await;
    assert_eq!((status, reply["removed"].as_u64()), (StatusCode::OK, Some(2)));
}

/// `{"tags": [..]}` invalidates tags, alone or beside a pattern; the stats count them per
/// prefix. An empty body, an empty tag list or a tag over the limit is a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_are_cleared_alone_or_beside_a_pattern() {
    let admin = Admin::start().await;
    let c = &admin.cache;
    c.set_tagged("query:t1", &1u8, None, &["user:42"]).await.unwrap();
    c.set_tagged("query:t2", &2u8, None, &["user:43"]).await.unwrap();
    c.set_tagged("resource:t3", &3u8, None, &["org:1"]).await.unwrap();
    c.set("static:untagged", &4u8, None).await.unwrap();

    let (status, reply) = admin.clear(json!({ "tags": ["user:42"] })).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["tags"], json!(["user:42"]), "{reply}");
    assert_eq!(c.get::<u8>("query:t1").await.unwrap(), None);
    assert_eq!(c.get::<u8>("query:t2").await.unwrap(), Some(2));

    let (status, reply) = admin
        .clear(json!({ "pattern": "static:*", "tags": ["org:1"] }))
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["removed"], 1, "{reply}");
    assert_eq!(c.get::<u8>("resource:t3").await.unwrap(), None);
    assert_eq!(c.get::<u8>("static:untagged").await.unwrap(), None);
    assert_eq!(c.get::<u8>("query:t2").await.unwrap(), Some(2));

    let by_prefix = c.stats().await.tag_invalidations_by_prefix;
    assert_eq!((by_prefix["user"], by_prefix["org"]), (1, 1));

    for body in [
        json!({}),
        json!({ "tags": [] }),
        json!({ "tags": ["x".repeat(5000)] }),
    ] {
        let (status, reply) = admin.clear(body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{reply}");
    }
    assert_eq!(c.get::<u8>("query:t2").await.unwrap(), Some(2));
}
