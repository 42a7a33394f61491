//! Generic functions, with the explicit `key` they require: type parameters with bounds inline
//! and in `where` clauses, const generics, a generic return type, and generic methods of a
//! generic impl.
use std::fmt::Display;
use std::marker::PhantomData;

use cache_core::{cache, Cache, CacheConfig};
use serde::{de::DeserializeOwned, Serialize};

#[cache(cache = c, key = "show:{v}")]
async fn show<T: Display + Send>(c: &Cache, v: T) -> String {
    v.to_string()
}

#[cache(cache = c, key = "pair:{a}:{b}")]
async fn pair<A, B>(c: &Cache, a: A, b: B) -> String
where
    A: Display,
    B: Serialize + std::fmt::Debug,
{
    format!("{a}/{b:?}")
}

#[cache(cache = c, key = "arr:{tag}")]
async fn sized<const N: usize>(c: &Cache, tag: &str) -> Vec<u8> {
    let _ = tag;
    vec![0; N]
}

/// A generic return type: the cached value is a `T`.
#[cache(cache = c, key = "parsed:{text}")]
async fn parsed<T>(c: &Cache, text: &str) -> Result<T, String>
where
    T: std::str::FromStr + Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    text.parse().map_err(|_| format!("not a number: {text}"))
}

struct Store<K> {
    cache: Cache,
    _k: PhantomData<K>,
}

impl<K: Display + Sync> Store<K> {
    #[cache(cache = self.cache, key = "store:{k}:{extra}")]
    async fn get<E: Display>(&self, k: &K, extra: E) -> String {
        format!("{k}{extra}")
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = Cache::new(CacheConfig::default()).unwrap();
        assert_eq!(show(&c, 5u8).await, "5");
        assert_eq!(show(&c, "x").await, "x");
        assert_eq!(pair(&c, 1, "b").await, "1/\"b\"");
        assert_eq!(sized::<3>(&c, "three").await, vec![0, 0, 0]);
        assert_eq!(parsed::<u32>(&c, "42").await, Ok(42));
        assert!(parsed::<u32>(&c, "x").await.is_err());
        let s = Store::<u8> { cache: Cache::new(CacheConfig::default()).unwrap(), _k: PhantomData };
        assert_eq!(s.get(&1, 'x').await, "1x");
    });
}
