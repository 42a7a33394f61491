//! Lifetimes: named (`fn f<'a>(x: &'a str)`), elided (`&str`, `&[T]`, `Cow<'_, str>`), several
//! at once with bounds between them, and a struct borrowing its data.
use std::borrow::Cow;

use cache_core::{cache, cache_batch, invalidate_cache, Cache, CacheConfig};

#[cache(cache = c)]
async fn named<'a>(c: &Cache, x: &'a str) -> String {
    x.to_uppercase()
}

#[cache(cache = c)]
async fn elided(c: &Cache, x: &str, ys: &[u32]) -> String {
    format!("{x}{}", ys.len())
}

#[cache(cache = c, key = "cow:{x}")]
async fn cow(c: &Cache, x: Cow<'_, str>) -> usize {
    x.len()
}

#[cache(cache = c, key = "two:{a}:{b}")]
async fn two<'a, 'b: 'a>(c: &'a Cache, a: &'a str, b: &'b str) -> Vec<String> {
    vec![a.to_owned(), b.to_owned()]
}

struct View<'d> {
    data: &'d [u8],
}

impl<'d> View<'d> {
    #[cache(cache = c, key = "view:{at}")]
    async fn byte(&self, c: &Cache, at: usize) -> Option<u8> {
        self.data.get(at).copied()
    }

    #[cache(cache = c, key = "view2:{at}")]
    async fn with_arg<'x>(&'x self, c: &'x Cache, at: &'x usize) -> Option<u8> {
        self.data.get(*at).copied()
    }
}

#[invalidate_cache("two:{a}:*", cache = c)]
async fn forget<'a>(c: &Cache, a: &'a str) -> Result<(), String> {
    Ok(())
}

#[cache_batch(prefix = "lens", cache = c)]
async fn lens<'a>(ids: &'a [&'a str], c: &Cache) -> std::collections::HashMap<&'a str, usize> {
    ids.iter().map(|s| (*s, s.len())).collect()
}

#[cache(key = "w:{s}")]
#[cache_core::warmup_cache(s = "w")]
async fn warmed(s: &str) -> usize {
    s.len()
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = Cache::new(CacheConfig::default()).unwrap();
        let owned = String::from("abc");
        assert_eq!(named(&c, &owned).await, "ABC");
        assert_eq!(elided(&c, &owned, &[1, 2]).await, "abc2");
        assert_eq!(cow(&c, Cow::Borrowed("xy")).await, 2);
        assert_eq!(cow(&c, Cow::Owned("xy".into())).await, 2);
        assert_eq!(two(&c, "a", &owned).await, vec!["a", "abc"]);
        let data = vec![1u8, 2, 3];
        let v = View { data: &data };
        assert_eq!(v.byte(&c, 1).await, Some(2));
        assert_eq!(v.with_arg(&c, &2).await, Some(3));
        assert_eq!(forget(&c, "a").await, Ok(()));
        assert_eq!(lens(&["ab", "c"], &c).await.len(), 2);
        assert_eq!(warmed("four").await, 4);
    });
}
