//! Attribute macros for `cache-core`: `#[cache]`, `#[cache_result]`, `#[cache_query]`,
//! `#[cache_resource]`, `#[cache_analysis]`, `#[invalidate_cache]`, `#[warmup_cache]`.
//!
//! Use them through `cache_core` (`use cache_core::cache_query;`). They only parse and expand into
//! calls of `::cache_core::__private`; everything that runs lives in `cache-core`. See what a
//! function becomes with `cargo expand`.

mod args;
mod expand;
mod item;
mod template;
mod valid;

use proc_macro::TokenStream;
use proc_macro2::TokenStream as TokenStream2;

use expand::cache::Preset;
use expand::with_error;
use item::MaybeItemFn;

// Each attribute: parse (the function, `item`; the attribute's options, `args`), check the two
// together (`valid`), expand (`expand`). On an error the function is kept as written, with the
// error next to it.

fn parse_fn(item: TokenStream2) -> Result<MaybeItemFn, TokenStream2> {
    syn::parse2::<MaybeItemFn>(item.clone()).map_err(|e| with_error(item, e))
}

pub(crate) fn cache_tokens(preset: Preset, attr: TokenStream2, item: TokenStream2) -> TokenStream2 {
    let mut f = match parse_fn(item) {
        Ok(f) => f,
        Err(ts) => return ts,
    };
    let result = syn::parse2::<args::CacheArgs>(attr).and_then(|a| {
        valid::cache(preset, &a, &f)?;
        expand::cache::expand(preset, a, &f)
    });
    result.unwrap_or_else(|e| {
        // The `#[warmup_cache]`s below belonged to this expansion; left on the item they would
        // report a second, misleading error.
        f.attrs.retain(|a| !crate::expand::is_warmup_attr(a));
        with_error(quote::quote!(#f), e)
    })
}

pub(crate) fn batch_tokens(attr: TokenStream2, item: TokenStream2) -> TokenStream2 {
    let f = match parse_fn(item.clone()) {
        Ok(f) => f,
        Err(ts) => return ts,
    };
    let result = syn::parse2::<args::CacheArgs>(attr).and_then(|a| {
        valid::batch(&a, &f)?;
        expand::batch::expand(a, &f)
    });
    result.unwrap_or_else(|e| with_error(item, e))
}

pub(crate) fn invalidate_tokens(attr: TokenStream2, item: TokenStream2) -> TokenStream2 {
    let f = match parse_fn(item.clone()) {
        Ok(f) => f,
        Err(ts) => return ts,
    };
    let result = syn::parse2::<args::InvalidateArgs>(attr).and_then(|a| {
        valid::invalidate(&a, &f)?;
        Ok(expand::invalidate::expand(a, &f))
    });
    result.unwrap_or_else(|e| with_error(item, e))
}

pub(crate) fn warmup_tokens(attr: TokenStream2, item: TokenStream2) -> TokenStream2 {
    let f = match parse_fn(item.clone()) {
        Ok(f) => f,
        Err(ts) => return ts,
    };
    let result = syn::parse2::<args::WarmupArgs>(attr.clone()).and_then(|a| {
        valid::warmup_above(&a, &f, &attr)?;
        Ok(expand::warmup::expand(&a, &f, &attr))
    });
    result.unwrap_or_else(|e| with_error(item, e))
}

/// Caches the result of an `async fn` in the two-level cache.
///
/// The key is `{prefix}:{module path}::{fn name}:{arg}:{arg}…`, e.g.
/// `query:app::orders::get_user_orders:42`. Arguments are written with their `KeyPart` impl
/// (integers, strings, `bool`, `char`), else `Display`, else the stable hash of their `Serialize`
/// form. `self` is left out unless `include_self` is given. Generic functions add their type
/// arguments after the name.
///
/// | option | meaning |
/// |---|---|
/// | `ttl = 300` / `ttl = "5m"` | TTL (seconds or a duration string); default: the pattern table |
/// | `ttl = "auto"` | TTL learned from how often the values change, starting from the pattern table's |
/// | `max_stale = "1%"` | with `ttl = "auto"`: the stale-read fraction the learned TTL keeps to (default 1 %) |
/// | `ttl_bounds = ("30s", "1h")` | with `ttl = "auto"`: the shortest and longest TTL it may learn (default 1 s to 1 day) |
/// | `prefix = "query"` | key prefix (no trailing `:`) |
/// | `key = "user:{user_id}"` | the whole key as a template over argument names |
/// | `skip(pool, ..)` | arguments left out of the default key |
/// | `l1 = false` | Redis only for this function |
/// | `cache = expr` | a specific `Cache` (`Cache`, `&Cache`, `Arc<Cache>`, `LazyLock<Cache>`) instead of the global one |
/// | `crate = path` | path to `cache_core` when it is renamed |
/// | `skip_none` | on `Option` returns, do not cache `None` |
/// | `include_self` | write `self` into the key (methods) |
/// | `strategy = adaptive` / `ttl` | TTL from read frequency, or from the pattern table, for this function |
/// | `stale_if_error = "10m"` | fail-safe: keep values this long past their TTL and serve them when the function fails |
/// | `soft_timeout = "200ms"` | with `stale_if_error`: serve the stale value after this wait; the call finishes in the background (needs owned arguments) |
/// | `condition = expr` | a `bool` over the arguments; `false` runs the body without the cache |
/// | `unless = \|v\| ..` | a `bool` over the value (a `Result`'s `Ok` value); `true` returns it without storing it |
/// | `max_entries = 1000` | the function keeps at most this many entries in L1 (its oldest evicted first; Redis untouched) |
/// | `ttl_idle = "5m"` | sliding expiration: an entry not read for this long leaves L1; reads extend it up to its TTL (Redis keeps the TTL) |
/// | `companions = false` | no companion functions (for trait impls, which hold only the trait's items) |
///
/// On a synchronous `fn` it reads L1 only and never waits: a miss runs the body, stores the value
/// in L1 at once, and writes it to Redis and the disk tier in a background task when a tokio
/// runtime is there (without one, L1 only). `stale_if_error`, `tags`, `l1 = false` and
/// `ttl = "auto"` need Redis on the call path and are compile errors there; `f_refresh` and
/// `f_uncached` are synchronous too.
///
/// ```
/// #[cache_core::cache(prefix = "static", ttl = 3600)]
/// fn parse_rules(version: u32) -> Vec<String> {
///     vec![format!("rules v{version}")]
/// }
/// assert_eq!(parse_rules(3), parse_rules(3)); // the second call is an L1 hit
/// ```
///
/// Beside the function `f` it writes its companions: `f_key(..) -> String`, `f_invalidate(..)`,
/// `f_invalidate_all()`, `f_refresh(..)` (run the body now and store), `f_uncached(..)` (the body
/// alone) and `f_peek(..)` (the cached answer, never the body). The key companions take the
/// key's arguments; `f_refresh` and `f_uncached` take the function's.
///
/// ```
/// use cache_core::cache;
///
/// #[cache(prefix = "query", max_entries = 1000, condition = id > 0, unless = |v: &String| v.is_empty())]
/// async fn user(id: u64) -> String {
///     format!("user {id}")
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// assert_eq!(user_peek(7).await, None); // never runs the body
/// user(7).await;
/// assert_eq!(user_peek(7).await.as_deref(), Some("user 7"));
/// assert!(user_key(7).ends_with("::user:7"));
/// assert!(user_invalidate(7).await.unwrap());
/// assert_eq!(user_refresh(7).await, "user 7"); // stored again
/// assert_eq!(user_invalidate_all().await.unwrap(), 1);
/// assert_eq!(user_uncached(0).await, "user 0");
/// # }
/// ```
///
/// `Result<T, E>` returns cache only `Ok`; `Option<T>` caches both unless `skip_none`.
/// Concurrent callers of a cold key run the function once. Any cache failure (Redis down,
/// undecodable entry) runs the function: callers only ever see its own result.
///
/// ```
/// use cache_core::cache;
///
/// #[cache(prefix = "query", ttl = 60, skip(verbose))]
/// async fn expensive_calculation(x: u64, y: u64, verbose: bool) -> u64 {
///     if verbose { /* log */ }
///     x * y
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// assert_eq!(expensive_calculation(6, 7, true).await, 42);
/// assert_eq!(expensive_calculation(6, 7, false).await, 42); // hit: `verbose` is not in the key
/// # }
/// ```
///
/// Misuse is a compile error at the offending token:
///
/// ```compile_fail
/// #[cache_core::cache(key = "user:{user}")] // no argument named `user`
/// async fn profile(user_id: u64) -> String { String::new() }
/// ```
#[proc_macro_attribute]
pub fn cache(attr: TokenStream, item: TokenStream) -> TokenStream {
    cache_tokens(Preset::Cache, attr.into(), item.into()).into()
}

/// Plain result caching: `#[cache]` under the name of the product guide's
/// `@cache_result(ttl=300)`. Takes the same options.
///
/// ```
/// #[cache_core::cache_result(ttl = 300)]
/// async fn expensive_calculation(x: i64, y: i64) -> i64 {
///     x.pow(2) + y
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// assert_eq!(expensive_calculation(3, 1).await, 10);
/// # }
/// ```
///
/// ```compile_fail
/// #[cache_core::cache_result(ttl = 0)] // a TTL must be positive
/// async fn f(x: i64) -> i64 { x }
/// ```
#[proc_macro_attribute]
pub fn cache_result(attr: TokenStream, item: TokenStream) -> TokenStream {
    cache_tokens(Preset::CacheResult, attr.into(), item.into()).into()
}

/// `#[cache]` with the prefix `query`; without `ttl` the `query:*` pattern applies (300 s by default).
/// Options as for `#[cache]`, except `prefix`.
///
/// ```
/// #[cache_core::cache_query(ttl = 600)]
/// async fn get_user_orders(user_id: u64) -> Vec<u64> {
///     vec![user_id * 10, user_id * 10 + 1]
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// assert_eq!(get_user_orders(4).await, vec![40, 41]);
/// # }
/// ```
///
/// ```compile_fail
/// #[cache_core::cache_query(prefix = "other")] // the prefix is fixed
/// async fn f(x: u64) -> u64 { x }
/// ```
#[proc_macro_attribute]
pub fn cache_query(attr: TokenStream, item: TokenStream) -> TokenStream {
    cache_tokens(Preset::Query, attr.into(), item.into()).into()
}

/// `#[cache]` with the prefix `resource` (`resource:*`, 600 s by default). Options as for
/// `#[cache]`, except `prefix`.
///
/// ```
/// #[cache_core::cache_resource(key = "freight:{id}")] // key: resource:freight:<id>
/// async fn freight(id: u64) -> Result<String, std::io::Error> {
///     Ok(format!("freight {id}"))
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// assert_eq!(freight(123).await.unwrap(), "freight 123");
/// # }
/// ```
///
/// A synchronous function reads L1 only; what needs Redis is a compile error on it:
///
/// ```compile_fail
/// #[cache_core::cache_resource(key = "rate:{id}", stale_if_error = "1m")] // waits on Redis
/// fn rate(id: u64) -> Result<u64, String> { Ok(id) }
/// ```
#[proc_macro_attribute]
pub fn cache_resource(attr: TokenStream, item: TokenStream) -> TokenStream {
    cache_tokens(Preset::Resource, attr.into(), item.into()).into()
}

/// `#[cache]` with the prefix `analysis` (`analysis:*`, 1800 s by default). Options as for
/// `#[cache]`, except `prefix`.
///
/// ```
/// #[cache_core::cache_analysis(key = "trends:{month}")]
/// async fn trends(month: &str) -> Vec<f64> {
///     vec![1.0, 2.5]
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// assert_eq!(trends("2025-01").await.len(), 2);
/// # }
/// ```
///
/// ```compile_fail
/// #[cache_core::cache_analysis(ttl = 10, ttl = 20)] // duplicate option
/// async fn f(x: u64) -> u64 { x }
/// ```
#[proc_macro_attribute]
pub fn cache_analysis(attr: TokenStream, item: TokenStream) -> TokenStream {
    cache_tokens(Preset::Analysis, attr.into(), item.into()).into()
}

/// Batch caching for functions that take a collection of ids and return a map: each id is
/// cached under `{prefix}:{id}`; a call reads all ids in one L1 pass and one `MGET`, calls the
/// function once with only the missing ids, and writes their values in one pipeline. Options:
/// `prefix` (required), `ttl`, `cache`, `crate`. Other arguments are passed through but are not
/// part of the key.
///
/// ```
/// use std::collections::HashMap;
/// #[cache_core::cache_batch(prefix = "resource:users")]
/// async fn user_names(ids: &[u64]) -> HashMap<u64, String> {
///     ids.iter().map(|id| (*id, format!("user {id}"))).collect()
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let names = user_names(&[1, 2, 3]).await;
/// assert_eq!(names[&2], "user 2");
/// # }
/// ```
///
/// ```compile_fail
/// #[cache_core::cache_batch(prefix = "resource:users")]
/// async fn user_names(ids: &[u64]) -> Vec<String> { vec![] } // must return a map
/// ```
#[proc_macro_attribute]
pub fn cache_batch(attr: TokenStream, item: TokenStream) -> TokenStream {
    batch_tokens(attr.into(), item.into()).into()
}

/// After the function returns successfully (`Ok` for a `Result`, any value otherwise), deletes
/// every entry named: by a call of a cached function, `get_user(id)` (its `get_user_key`
/// companion gives the key, so a wrong name, arity or type is a compile error), or by a pattern.
/// Patterns are Redis globs and may use argument templates: `"resource:users:{user_id}"`; a
/// template value is glob-escaped so user input can never widen the pattern. Options:
/// `tags = [..]`, `cache = expr`, `crate = path`. Invalidation failures are logged, never returned.
///
/// ```
/// use cache_core::{cache_resource, invalidate_cache};
///
/// #[cache_resource(key = "users:{user_id}")]
/// async fn user(user_id: u64) -> String { format!("user {user_id}") }
///
/// #[invalidate_cache(user(user_id), "query:users:*")]
/// async fn update_user(user_id: u64, name: String) -> Result<(), String> {
///     let _ = name; // write to the database here
///     Ok(())
/// }
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// user(1).await;
/// update_user(1, "ann".into()).await.unwrap();
/// # }
/// ```
///
/// ```compile_fail
/// #[cache_core::invalidate_cache("users:{id}")] // no argument `id`
/// async fn update(user_id: u64) {}
/// ```
#[proc_macro_attribute]
pub fn invalidate_cache(attr: TokenStream, item: TokenStream) -> TokenStream {
    invalidate_tokens(attr.into(), item.into()).into()
}

/// Registers a call of a cached function with fixed arguments for startup warming
/// (`cache_warmer::warm_up`). Repeat it for several argument sets. Every argument needs a value;
/// the function must carry a caching attribute and be a free, non-generic function.
///
/// ```
/// use cache_core::{cache_query, warmup_cache};
///
/// #[warmup_cache(user_id = 1)]
/// #[warmup_cache(user_id = 2)]
/// #[cache_query]
/// async fn get_user_profile(user_id: u64) -> String { format!("profile {user_id}") }
///
/// let registered = cache_core::warmup::registered()
///     .filter(|e| e.function.ends_with("::get_user_profile"))
///     .count();
/// assert_eq!(registered, 2);
/// ```
///
/// ```compile_fail
/// #[cache_core::warmup_cache(user_id = 1)] // not cached: nothing to warm
/// async fn plain(user_id: u64) -> u64 { user_id }
/// ```
#[proc_macro_attribute]
pub fn warmup_cache(attr: TokenStream, item: TokenStream) -> TokenStream {
    warmup_tokens(attr.into(), item.into()).into()
}

#[cfg(test)]
mod snapshots;
