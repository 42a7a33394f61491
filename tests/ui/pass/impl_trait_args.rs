//! `impl Trait` arguments: written into the key (default key or a template) when they show
//! (`impl Display`), left out with `skip` when they do not (`impl AsRef<str>`, closures).
use std::fmt::Display;
use std::sync::atomic::{AtomicUsize, Ordering};

use cache_core::{cache, invalidate_cache, Cache, CacheConfig};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(cache = c)]
async fn shown(c: &Cache, v: impl Display) -> String {
    RUNS.fetch_add(1, Ordering::SeqCst);
    format!("<{v}>")
}

#[cache(cache = c, key = "name:{id}")]
async fn named(c: &Cache, id: impl Display + Send, name: impl AsRef<str>) -> String {
    format!("{id}={}", name.as_ref())
}

#[cache(cache = c, skip(name, log))]
async fn skipped(c: &Cache, id: u64, name: impl AsRef<str>, log: impl Fn(&str)) -> String {
    log(name.as_ref());
    format!("{id}:{}", name.as_ref())
}

#[cache(cache = c, key = "iter:{tag}")]
async fn summed(c: &Cache, tag: impl Display, xs: impl IntoIterator<Item = u32>) -> u32 {
    let _ = tag.to_string();
    xs.into_iter().sum()
}

#[invalidate_cache("name:{id}", cache = c)]
async fn rename(c: &Cache, id: impl Display, name: impl AsRef<str>) -> bool {
    !name.as_ref().is_empty()
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = Cache::new(CacheConfig::default()).unwrap();
        assert_eq!(shown(&c, 1).await, "<1>");
        assert_eq!(shown(&c, 1u64).await, "<1>");
        assert_eq!(RUNS.load(Ordering::SeqCst), 1, "same text, same key");
        assert_eq!(named(&c, 7, "ann").await, "7=ann");
        assert_eq!(named(&c, 7, String::from("bob")).await, "7=ann", "name is not in the key");
        assert!(rename(&c, 7, "bob").await);
        assert_eq!(named(&c, 7, "bob").await, "7=bob");
        assert_eq!(skipped(&c, 1, "x", |_| {}).await, "1:x");
        assert_eq!(summed(&c, "t", vec![1, 2, 3]).await, 6);
    });
}
