//! Methods: `&self`, `&mut self`, `self` by value and `self: Arc<Self>`, with `self` out of the
//! key (the default) or in it (`include_self`, or `{self}` in a key template).
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cache_core::{cache, invalidate_cache, Cache, CacheConfig};

static RUNS: AtomicUsize = AtomicUsize::new(0);

fn run() -> usize {
    RUNS.fetch_add(1, Ordering::SeqCst) + 1
}

fn runs() -> usize {
    RUNS.load(Ordering::SeqCst)
}

struct Repo {
    cache: Cache,
    tenant: u32,
    counter: u32,
}

impl fmt::Display for Repo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tenant-{}", self.tenant)
    }
}

impl Repo {
    /// `self` left out of the key: two repos share entries.
    #[cache(cache = self.cache, key = "shared:{id}")]
    async fn shared(&self, id: u32) -> String {
        run();
        format!("{}:{id}", self.tenant)
    }

    /// `self` in the key through `include_self` (written with its `Display`).
    #[cache(cache = self.cache, include_self)]
    async fn per_tenant(&self, id: u32) -> String {
        run();
        format!("{}:{id}", self.tenant)
    }

    /// `self` in a key template.
    #[cache(cache = self.cache, key = "t:{self}:{id}")]
    async fn templated(&self, id: u32) -> Result<u32, String> {
        run();
        Ok(self.tenant + id)
    }

    /// `&mut self`: the body may change the receiver. (The cache is an argument: `cache =
    /// self.cache` would borrow `self` while the body holds it mutably.)
    #[cache(cache = c, key = "bump:{id}")]
    async fn bump(&mut self, c: &Cache, id: u32) -> u32 {
        self.counter += 1;
        id + self.counter
    }

    #[invalidate_cache("shared:{id}", "t:{self}:*", cache = self.cache)]
    async fn forget(&self, id: u32) -> Option<u32> {
        Some(id)
    }
}

#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Owned {
    name: String,
}

impl Owned {
    /// `self` by value, in the key through its `Serialize` hash.
    #[cache(include_self)]
    async fn consume(self, n: u8) -> String {
        format!("{}{n}", self.name)
    }

    /// No receiver, `Self` returned.
    #[cache(cache = c)]
    async fn make(c: &Cache, name: String) -> Self {
        Owned { name }
    }

    /// `self: Arc<Self>`.
    #[cache(key = "arc:{n}")]
    async fn shared(self: Arc<Self>, n: u8) -> String {
        format!("{}{n}", self.name)
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let cache = Cache::new(CacheConfig::default()).unwrap();
        let a = Repo { cache, tenant: 1, counter: 0 };
        assert_eq!(a.shared(5).await, "1:5");
        assert_eq!(a.shared(5).await, "1:5");
        assert_eq!(runs(), 1);
        assert_eq!(a.per_tenant(5).await, "1:5");
        assert_eq!(a.per_tenant(5).await, "1:5");
        assert_eq!(runs(), 2);
        assert_eq!(a.templated(5).await, Ok(6));
        assert_eq!(a.templated(5).await, Ok(6));
        assert_eq!(runs(), 3);
        assert_eq!(a.forget(5).await, Some(5));
        assert_eq!(a.shared(5).await, "1:5");
        assert_eq!(runs(), 4, "forget deleted shared:5");

        let c = Cache::new(CacheConfig::default()).unwrap();
        let mut m = Repo { cache: Cache::new(CacheConfig::default()).unwrap(), tenant: 2, counter: 0 };
        assert_eq!(m.bump(&c, 10).await, 11);
        assert_eq!(m.bump(&c, 10).await, 11, "a hit: the body did not run");
        assert_eq!(m.counter, 1);

        let o = Owned::make(&c, "o".into()).await;
        assert_eq!(o.clone().consume(1).await, "o1");
        assert_eq!(Arc::new(o).shared(2).await, "o2");
    });
}
