//! Every spelling of `Result` and `Option` compiles with an error type that is neither
//! `Serialize` nor `Clone`, and caches only `Ok`.
use std::sync::atomic::{AtomicUsize, Ordering};

use cache_core::{cache, cache_batch, invalidate_cache, Cache, CacheConfig};

#[derive(Debug)]
pub struct NotSerialize;

type AppResult<T> = Result<T, NotSerialize>;
type MaybeName = Option<String>;
type Names = std::collections::HashMap<u32, String>;

mod reexport {
    pub use std::result::Result as Res;
}

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(cache = c)]
async fn alias(c: &Cache, id: u32) -> AppResult<u32> {
    RUNS.fetch_add(1, Ordering::SeqCst);
    if id == 0 { Err(NotSerialize) } else { Ok(id) }
}

#[cache(cache = c)]
async fn full_path(c: &Cache, id: u32) -> ::std::result::Result<u32, NotSerialize> {
    Ok(id)
}

#[cache(cache = c)]
async fn core_path(c: &Cache, id: u32) -> core::result::Result<u32, NotSerialize> {
    Ok(id)
}

#[cache(cache = c)]
async fn io(c: &Cache, id: u32) -> std::io::Result<u32> {
    Ok(id)
}

#[cache(cache = c)]
async fn any(c: &Cache, id: u32) -> anyhow::Result<u32> {
    Ok(id)
}

#[cache(cache = c)]
async fn reexported(c: &Cache, id: u32) -> reexport::Res<u32, NotSerialize> {
    Ok(id)
}

#[cache(cache = c, skip_none)]
async fn maybe(c: &Cache, id: u32) -> MaybeName {
    (id > 0).then(|| id.to_string())
}

#[cache(cache = c, stale_if_error = "1m")]
async fn fail_safe(c: &Cache, id: u32) -> AppResult<u32> {
    Ok(id)
}

#[invalidate_cache("alias:{id}", cache = c)]
async fn update(c: &Cache, id: u32) -> AppResult<()> {
    Ok(())
}

static BATCH: std::sync::LazyLock<Cache> =
    std::sync::LazyLock::new(|| Cache::new(CacheConfig::default()).unwrap());

#[cache_batch(prefix = "names", cache = BATCH)]
async fn names(ids: &[u32]) -> Result<Names, NotSerialize> {
    Ok(ids.iter().map(|i| (*i, i.to_string())).collect())
}

/// Methods, generics with a key, `impl Trait` arguments and lifetimes.
struct Repo {
    cache: Cache,
}

impl Repo {
    #[cache(cache = self.cache, key = "repo:{name}")]
    async fn by_name<'a>(&self, name: &'a str) -> String {
        name.to_owned()
    }

    #[cache(cache = self.cache, key = "gen:{v}")]
    async fn generic<T: std::fmt::Display + Send + Sync>(&self, v: T) -> String {
        v.to_string()
    }

    #[cache(cache = self.cache)]
    async fn shown(&self, v: impl std::fmt::Display + Send + Sync) -> String {
        v.to_string()
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = Cache::new(CacheConfig::default()).unwrap();
        assert!(alias(&c, 0).await.is_err());
        assert!(alias(&c, 0).await.is_err());
        assert_eq!(RUNS.load(Ordering::SeqCst), 2, "an Err is not cached");
        assert_eq!(alias(&c, 1).await.unwrap(), 1);
        assert_eq!(alias(&c, 1).await.unwrap(), 1);
        assert_eq!(RUNS.load(Ordering::SeqCst), 3, "an Ok is");
        assert_eq!(full_path(&c, 1).await.unwrap(), 1);
        assert_eq!(core_path(&c, 1).await.unwrap(), 1);
        assert_eq!(io(&c, 1).await.unwrap(), 1);
        assert_eq!(any(&c, 1).await.unwrap(), 1);
        assert_eq!(reexported(&c, 1).await.unwrap(), 1);
        assert_eq!(maybe(&c, 0).await, None);
        assert_eq!(fail_safe(&c, 2).await.unwrap(), 2);
        assert!(update(&c, 1).await.is_ok());
        assert_eq!(names(&[1, 2]).await.unwrap().len(), 2);
        let repo = Repo { cache: c };
        assert_eq!(repo.by_name("x").await, "x");
        assert_eq!(repo.generic(5u8).await, "5");
        assert_eq!(repo.shown(7).await, "7");
    });
}
