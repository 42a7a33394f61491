//! The cache's `tracing` spans (issue 22, `cache_core::trace`): names, OpenTelemetry-style
//! fields, and nesting, seen by a real subscriber over a real Redis.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use cache_core::{cache, Cache, CacheConfig};
use cache_test_harness::RedisServer;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// A closed span: its name, its fields as text, and its parent's name.
#[derive(Debug, Clone)]
struct Closed {
    name: &'static str,
    fields: BTreeMap<String, String>,
    parent: Option<&'static str>,
}

#[derive(Default)]
struct Fields(BTreeMap<String, String>);

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().to_owned(), value.to_string());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<Closed>>>);

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Capture {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut f = Fields::default();
        attrs.record(&mut f);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(f);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            if let Some(f) = span.extensions_mut().get_mut::<Fields>() {
                values.record(f);
            }
        }
    }

    fn on_close(&self, id: Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(&id) else { return };
        let fields = span
            .extensions_mut()
            .remove::<Fields>()
            .map(|f| f.0)
            .unwrap_or_default();
        let parent = span.parent().map(|p| p.name());
        self.0.lock().unwrap().push(Closed {
            name: span.name(),
            fields,
            parent,
        });
    }
}

impl Capture {
    fn take(&self) -> Vec<Closed> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

#[cache(cache = cache, ttl = 600)]
async fn profile(cache: &Cache, id: u64) -> String {
    let _q = tracing::info_span!("db.query", id).entered();
    format!("user {id}")
}

fn find<'a>(spans: &'a [Closed], name: &str, field: &str, value: &str) -> &'a Closed {
    spans
        .iter()
        .find(|s| s.name == name && s.fields.get(field).map(String::as_str) == Some(value))
        .unwrap_or_else(|| panic!("no {name} span with {field} = {value}: {spans:#?}"))
}

#[tokio::test(flavor = "current_thread")]
async fn every_operation_is_a_span_with_its_fields() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(
        capture
            .clone()
            .with_filter(tracing_subscriber::filter::LevelFilter::TRACE),
    );
    let _guard = tracing::subscriber::set_default(subscriber);
    let redis = RedisServer::start();
    let cache = Cache::new(CacheConfig::builder().redis_url(redis.url()).build().unwrap()).unwrap();

    // A miss: the read, the function's run (its own span nested), the store.
    assert_eq!(profile(&cache, 7).await, "user 7");
    let spans = capture.take();
    let get = find(&spans, "cache.get", "cache.outcome", "miss");
    assert_eq!(get.fields["cache.tier"], "none");
    assert_eq!(get.fields["db.system"], "redis");
    assert_eq!(get.fields["db.operation"], "GET");
    assert_eq!(get.fields["cache.key_prefix"], "spans::profile");
    assert!(get.fields.contains_key("cache.duration_us"), "{get:?}");
    let load = find(&spans, "cache.load", "cache.outcome", "stored");
    assert_eq!(load.parent, Some("cache.get"));
    assert!(load.fields.contains_key("cache.duration_us"));
    let query = spans.iter().find(|s| s.name == "db.query").unwrap();
    assert_eq!(
        query.parent,
        Some("cache.load"),
        "the function's spans nest in its load"
    );
    let store = find(&spans, "cache.store", "cache.outcome", "stored");
    assert_eq!(store.parent, Some("cache.load"));
    assert_eq!(store.fields["db.operation"], "SET");

    // An L1 hit: a TRACE span.
    assert_eq!(profile(&cache, 7).await, "user 7");
    let spans = capture.take();
    let hit = find(&spans, "cache.get", "cache.tier", "l1");
    assert_eq!(hit.fields["cache.outcome"], "hit");
    assert!(spans.iter().all(|s| s.name != "cache.load"), "a hit runs nothing");

    // A Redis hit on a second instance, then invalidations.
    let other = Cache::new(CacheConfig::builder().redis_url(redis.url()).build().unwrap()).unwrap();
    assert_eq!(profile(&other, 7).await, "user 7");
    let spans = capture.take();
    let l2 = find(&spans, "cache.get", "cache.tier", "l2");
    assert_eq!(l2.fields["cache.outcome"], "hit");
    other.invalidate_pattern("spans::profile:*").await.unwrap();
    other.delete("resource:x").await.unwrap();
    let spans = capture.take();
    let pattern = find(&spans, "cache.invalidate", "cache.operation", "pattern");
    assert_eq!(pattern.fields["cache.outcome"], "ok");
    assert_eq!(pattern.fields["cache.key_prefix"], "spans::profile");
    find(&spans, "cache.invalidate", "cache.operation", "delete");

    // A direct read that misses.
    assert_eq!(other.get::<u8>("resource:none").await.unwrap(), None);
    let spans = capture.take();
    let miss = find(&spans, "cache.get", "cache.outcome", "miss");
    assert_eq!(miss.fields["cache.key_prefix"], "resource");
}

#[tokio::test(flavor = "current_thread")]
async fn warmups_are_spans_around_their_loads() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::registry().with(
        capture
            .clone()
            .with_filter(tracing_subscriber::filter::LevelFilter::DEBUG),
    );
    let _guard = tracing::subscriber::set_default(subscriber);
    let cache = Cache::new(CacheConfig::default()).unwrap();
    let warmer = cache_warmer::Warmer::new(cache.clone());
    let c = cache.clone();
    warmer.register("answers", move || {
        let c = c.clone();
        async move {
            c.get_or_insert_with("static:answer", None, || async { 42u32 })
                .await;
            Ok::<(), std::io::Error>(())
        }
    });
    let report = warmer.warm_up().await;
    assert_eq!(report.ok, 1, "{report:?}");
    let spans = capture.take();
    let warm = find(&spans, "cache.warmup", "cache.warmup.entry", "answers");
    assert_eq!(warm.fields["cache.outcome"], "ok");
    let get = find(&spans, "cache.get", "cache.key_prefix", "static");
    assert_eq!(get.parent, Some("cache.warmup"));
    assert!(
        !get.fields.contains_key("db.system"),
        "L1 only: no database system"
    );
}
