//! The cache's `tracing` spans, named after OpenTelemetry's conventions where they exist.
//!
//! | span | level | when | fields |
//! |---|---|---|---|
//! | `cache.get` | TRACE | an L1 hit | `cache.key_prefix`, `cache.tier = "l1"`, `cache.outcome = "hit"` |
//! | `cache.get` | DEBUG | a read past L1 (cached functions, `get`, the `get_or_insert` family) | `cache.key_prefix`, `db.system` (`"redis"` with a Redis tier, absent without), `db.operation = "GET"`, `cache.tier` (`"l2"`, `"l3"`, `"flight"`: another caller's load, `"none"`), `cache.outcome` (`"hit"`, `"miss"`, `"error"`), `cache.duration_us` |
//! | `cache.load` | DEBUG | the cached function's own run after a miss (its spans are children), and the store after it | `cache.key_prefix`, `cache.outcome` (`"stored"`, `"not_stored"`, `"error"`), `cache.duration_us` |
//! | `cache.store` | DEBUG | a write to the tiers | `cache.key_prefix`, `db.system`, `db.operation = "SET"`, `cache.outcome` (`"stored"`, `"discarded"`: an invalidation overtook the load, `"off"`: the cache is switched off, `"error"`), `cache.duration_us` |
//! | `cache.invalidate` | DEBUG | `delete`, `invalidate_pattern`, `clear`, `invalidate_tags` | `cache.operation`, `cache.key_prefix` (of the key or pattern), `db.system`, `cache.outcome`, `cache.duration_us` |
//! | `cache.warmup` | INFO | a warmup entry or scheduled job (`cache-warmer`) | `cache.warmup.entry`, `cache.outcome`, `cache.duration_us` |
//!
//! The key prefix is the text before the first lone `:` (`query`, `resource`, or the function
//! path of a `#[cache]` key without a prefix, `app::get_user`), never the whole key: keys carry
//! arguments, which can be personal data. A key without such a `:`, or whose first part is not
//! a family name (`[A-Za-z0-9_.:-]`, up to 64 bytes: `bob@example.com:profile`), shows as `-`.
//!
//! With no subscriber, or one that filters these levels out, a span costs a check of a cached
//! flag: the L1 hit's span is TRACE and not even built unless TRACE is on for this crate.
//! `examples/src/bin/otel.rs` exports them with `tracing-opentelemetry`.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // Any `tracing` subscriber sees them; here the spans' close events go to the test output.
//! let _guard = tracing::subscriber::set_default(
//!     tracing_subscriber::fmt()
//!         .with_max_level(tracing::Level::DEBUG)
//!         .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
//!         .with_test_writer()
//!         .finish(),
//! );
//! let cache = cache_core::Cache::new(Default::default()).unwrap();
//! let v = cache.get_or_insert_with("query:answer", None, || async { 42u32 }).await;
//! assert_eq!(v, 42);
//! # }
//! ```

use tracing::field::Empty;
use tracing::Span;

/// The text of a key or pattern that spans show: up to its first lone `:` (a `::` of a
/// function path does not end it), when that is a family name (`[A-Za-z0-9_.:-]`, at most 64
/// bytes); anything else (an email, free text, a long id) shows as `-`.
pub(crate) fn prefix(key: &str) -> &str {
    let b = key.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b':' {
            if b.get(i + 1) == Some(&b':') {
                i += 2;
                continue;
            }
            break;
        }
        if !(b[i].is_ascii_alphanumeric() || matches!(b[i], b'_' | b'.' | b'-')) {
            return "-";
        }
        i += 1;
    }
    if i == b.len() || i > 64 {
        return "-";
    }
    &key[..i]
}

/// `db.system` for spans: `"redis"` with a Redis tier; absent without one.
pub(crate) fn db_system(remote: bool) -> Option<&'static str> {
    remote.then_some("redis")
}

/// The span of a read past L1.
pub(crate) fn get_span(key: &str, remote: bool) -> Span {
    tracing::debug_span!(
        "cache.get",
        cache.key_prefix = prefix(key),
        db.system = db_system(remote),
        db.operation = "GET",
        cache.tier = Empty,
        cache.outcome = Empty,
        cache.duration_us = Empty,
    )
}

/// The span of the caller's load after a miss, inside the read's.
pub(crate) fn load_span(parent: &Span, key: &str) -> Span {
    tracing::debug_span!(
        parent: parent,
        "cache.load",
        cache.key_prefix = prefix(key),
        cache.outcome = Empty,
        cache.duration_us = Empty,
    )
}

/// `cache.tier` of a value read past L1: the disk tier's or Redis's.
pub(crate) fn tier(from_disk: bool) -> &'static str {
    if from_disk {
        "l3"
    } else {
        "l2"
    }
}

/// Records where a read was answered and how.
pub(crate) fn answered(span: &Span, tier: &'static str, outcome: &'static str, started: std::time::Instant) {
    if !span.is_disabled() {
        span.record("cache.tier", tier);
    }
    ended(span, outcome, started);
}

/// Records how an operation ended on its span.
pub(crate) fn ended(span: &Span, outcome: &'static str, started: std::time::Instant) {
    if span.is_disabled() {
        return;
    }
    span.record("cache.outcome", outcome);
    span.record("cache.duration_us", started.elapsed().as_micros() as u64);
}

/// Runs an invalidation (`op`: `delete`, `pattern`, `clear`, `tags`) of `what` (a key, a
/// pattern, a tag) in its `cache.invalidate` span.
pub(crate) async fn invalidation<T>(
    op: &'static str,
    what: &str,
    remote: bool,
    fut: impl std::future::Future<Output = crate::error::Result<T>>,
) -> crate::error::Result<T> {
    use tracing::Instrument;
    let span = tracing::debug_span!(
        "cache.invalidate",
        cache.operation = op,
        cache.key_prefix = prefix(what),
        db.system = db_system(remote),
        cache.outcome = Empty,
        cache.duration_us = Empty,
    );
    let t0 = std::time::Instant::now();
    let r = fut.instrument(span.clone()).await;
    ended(&span, if r.is_ok() { "ok" } else { "error" }, t0);
    r
}

/// The L1 hit's span: entered and closed at once, built only when TRACE is on for this crate.
#[cold]
#[inline(never)]
pub(crate) fn l1_hit(key: &str) {
    let _span = tracing::trace_span!(
        "cache.get",
        cache.key_prefix = prefix(key),
        cache.tier = "l1",
        cache.outcome = "hit",
    )
    .entered();
}

#[cfg(test)]
mod tests {
    use super::prefix;

    #[test]
    fn prefixes_show_the_family_only() {
        assert_eq!(prefix("query:app::get_user:42"), "query");
        assert_eq!(prefix("app::get_user:42"), "app::get_user");
        assert_eq!(prefix("user@example.com"), "-");
        assert_eq!(prefix("app::no_args"), "-");
        assert_eq!(prefix(":x"), "");
        assert_eq!(prefix("bob@example.com:profile"), "-", "data, not a family name");
        assert_eq!(prefix("é:x"), "-");
        assert_eq!(prefix(&format!("{}:x", "a".repeat(65))), "-");
    }
}
