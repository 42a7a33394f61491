//! The companions and the typed invalidation, on free functions, methods and a trait impl.
use cache_core::{cache, cache_query, invalidate_cache, Cache};

#[cache_query]
async fn get_user(id: u64, region: &str) -> Option<String> {
    Some(format!("{id}@{region}"))
}

#[cache_query(skip(verbose))]
async fn orders(id: u64, verbose: bool) -> Result<Vec<u64>, std::io::Error> {
    let _ = verbose;
    Ok(vec![id])
}

#[invalidate_cache(get_user(id, &region), orders(id), "query:other:*")]
async fn update(id: u64, region: String) -> Result<(), String> {
    drop(region);
    Ok(())
}

struct Repo {
    cache: Cache,
}

impl Repo {
    #[cache(cache = self.cache, key = "repo:{table}")]
    async fn count(&self, table: &str) -> u64 {
        table.len() as u64
    }

    /// No `self`, but `Self` in the signature: the body is called as `Self::assoc_uncached`.
    #[cache(key = "static:{id}")]
    async fn assoc(id: u64, of: std::marker::PhantomData<Self>) -> u64 {
        let _ = of;
        id
    }
}

trait Source {
    async fn load(&self, id: u64) -> u64;
}

impl Source for Repo {
    #[cache(companions = false, cache = self.cache, key = "src:{id}")]
    async fn load(&self, id: u64) -> u64 {
        id
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _: String = get_user_key(1, "eu");
    let _: Option<Option<String>> = get_user_peek(1, "eu").await;
    let _: Option<String> = get_user_refresh(1, "eu").await;
    let _: Option<String> = get_user_uncached(1, "eu").await;
    let _: cache_core::Result<bool> = get_user_invalidate(1, "eu").await;
    let _: cache_core::Result<u64> = get_user_invalidate_all().await;
    let _: Option<Result<Vec<u64>, std::io::Error>> = orders_peek(1).await;
    let _ = orders_refresh(1, true).await;
    update(1, "eu".into()).await.unwrap();
    let _: u64 = Repo::assoc(1, std::marker::PhantomData).await;
    let repo = Repo { cache: Cache::new(Default::default()).unwrap() };
    let _: String = Repo::count_key("t");
    let _: Option<u64> = repo.count_peek("t").await;
    let _: u64 = repo.count_refresh("t").await;
    let _ = repo.count_invalidate_all().await;
    let _ = repo.load(3).await;
}
