//! Expansion snapshots: what `cargo expand` shows for each attribute, kept readable and stable.

use proc_macro2::TokenStream;
use quote::quote;

use crate::expand::cache::Preset;

fn pretty(ts: TokenStream) -> String {
    match syn::parse2::<syn::File>(ts.clone()) {
        Ok(file) => prettyplease::unparse(&file),
        Err(e) => panic!("expansion is not valid Rust: {e}\n{ts}"),
    }
}

#[test]
fn cache_query_default_key() {
    let out = crate::cache_tokens(
        Preset::Query,
        quote!(ttl = 600),
        quote!(
            async fn get_user_orders(user_id: u64) -> Vec<Order> {
                db::orders(user_id).await
            }
        ),
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn cache_result_with_template_skip_and_cache() {
    let out = crate::cache_tokens(
        Preset::Cache,
        quote!(key = "user:{user_id}", cache = CACHE, l1 = false, ttl = "5m"),
        quote!(
            pub async fn profile(pool: &Pool, user_id: u64) -> Result<User, Error> {
                pool.load(user_id).await
            }
        ),
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn cache_option_method_generic() {
    let out = crate::cache_tokens(
        Preset::Resource,
        quote!(skip_none, key = "items:{id}"),
        quote!(
            async fn find<T: Serialize>(&self, id: T) -> Option<Item> {
                self.lookup(id).await
            }
        ),
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn cache_analysis_with_warmup_below() {
    let out = crate::cache_tokens(
        Preset::Analysis,
        quote!(),
        quote!(
            #[warmup_cache(month = "2025-01")]
            async fn trends(month: &str) -> Vec<f64> {
                compute(month).await
            }
        ),
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn invalidate_cache_patterns() {
    let out = crate::invalidate_tokens(
        quote!("resource:users:{user_id}", "query:users:*"),
        quote!(
            async fn update_user(user_id: u64, data: UserUpdate) -> Result<(), Error> {
                db::update(user_id, data).await
            }
        ),
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn warmup_cache_above() {
    let out = crate::warmup_tokens(
        quote!(user_id = 1),
        quote!(
            #[cache_query]
            async fn get_user_profile(user_id: u64) -> Profile {
                load(user_id).await
            }
        ),
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn cache_batch_slice_of_ids() {
    let out = crate::batch_tokens(
        quote!(prefix = "resource:users", ttl = 60),
        quote!(
            async fn users(ids: &[u64], db: &Db) -> HashMap<u64, User> {
                db.users(ids).await
            }
        ),
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn errors_keep_the_function() {
    let out = crate::cache_tokens(
        Preset::Cache,
        quote!(bogus = 1),
        quote!(
            async fn f(x: u64) -> u64 {
                x
            }
        ),
    );
    let text = out.to_string();
    assert!(text.contains("async fn f"), "{text}");
    assert!(text.contains("compile_error"), "{text}");
    assert!(text.contains("unknown option `bogus`"), "{text}");
}

#[test]
fn cache_query_with_tags() {
    let out = crate::cache_tokens(
        Preset::Query,
        quote!(tags = ["user:{user_id}", "orders"]),
        quote!(
            async fn get_user_orders(user_id: u64, region: &str) -> Vec<Order> {
                db::orders(user_id, region).await
            }
        ),
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn invalidate_cache_tags_beside_a_pattern() {
    let out = crate::invalidate_tokens(
        quote!("query:*::get_user_orders:{id}:*", tags = ["user:{id}"]),
        quote!(
            async fn update_user(id: u64, data: UserUpdate) -> Result<User, DbError> {
                db::update(id, data).await
            }
        ),
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn cache_query_auto_ttl() {
    let out = crate::cache_tokens(
        Preset::Query,
        quote!(ttl = "auto", max_stale = "0.5%", ttl_bounds = ("30s", "1h")),
        quote!(
            async fn trending(day: u32) -> Vec<Item> {
                db::trending(day).await
            }
        ),
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn cache_sync_fn_with_options() {
    let out = crate::cache_tokens(
        Preset::Cache,
        quote!(
            prefix = "static",
            max_entries = 1000,
            ttl_idle = "5m",
            condition = version > 0,
            unless = |v: &Vec<String>| v.is_empty()
        ),
        quote!(
            fn parse_rules(version: u32) -> Vec<String> {
                load_rules(version)
            }
        ),
    );
    insta::assert_snapshot!(pretty(out));
}

#[test]
fn invalidate_cache_typed_calls() {
    let out = crate::invalidate_tokens(
        quote!(get_user(id), get_user_orders(id), "query:reports:*"),
        quote!(
            async fn update_user(id: u64, name: String) -> Result<(), Error> {
                db::update(id, name).await
            }
        ),
    );
    insta::assert_snapshot!(pretty(out));
}
