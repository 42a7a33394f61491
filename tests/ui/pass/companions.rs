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

struct Counter {
    n: u64,
}

impl Counter {
    /// `&mut self` with the global cache: the body's call moves the receiver.
    #[cache(key = "counter:{id}")]
    async fn bump(&mut self, id: u64) -> u64 {
        self.n += 1;
        self.n + id
    }
}

struct AppState {
    cache: Cache,
}

/// The cache named through an argument that is not in the key: the companions that reach the
/// cache take it, `user_key` does not.
#[cache(cache = state.cache, key = "user:{id}")]
async fn user(state: &AppState, id: u64) -> u64 {
    let _ = state;
    id
}

/// A type parameter only the skipped argument names: the key companions do without it.
#[cache(key = "gen:{id}")]
async fn generic<T: std::fmt::Debug + Send>(id: u64, extra: T) -> u64 {
    let _ = extra;
    id
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
    let mut c = Counter { n: 0 };
    let _ = c.bump(1).await;
    let _ = c.bump_refresh(1).await;
    let state = AppState { cache: Cache::new(Default::default()).unwrap() };
    let _: u64 = user(&state, 1).await;
    let _: String = user_key(1);
    let _: Option<u64> = user_peek(&state, 1).await;
    let _ = user_invalidate(&state, 1).await;
    let _ = user_invalidate_all(&state).await;
    let _: u64 = generic(1, "x").await;
    let _: String = generic_key(1);
    let _: Option<u64> = generic_peek(1).await;
}
