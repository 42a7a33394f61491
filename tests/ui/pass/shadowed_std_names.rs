//! The expansions name everything by its full path: they compile in a module that shadows the
//! prelude's names (`Result`, `Option`, `Some`, `Ok`, `Vec`, `String`, `Box`, `Send`, `Future`,
//! `Iterator`, `ToOwned`, `concat!`, ...), and in a `#[no_implicit_prelude]` module, where only
//! `::`-rooted paths resolve and no trait is in scope for method calls.
use std::sync::atomic::{AtomicUsize, Ordering};

static RUNS: AtomicUsize = AtomicUsize::new(0);

#[allow(dead_code, non_upper_case_globals, unused_macros)]
mod shadowed {
    use cache_core::{cache, cache_batch, cache_query, invalidate_cache, warmup_cache, Cache};
    use std::sync::atomic::Ordering as O;

    // Every name below hides the prelude's (or the macro prelude's) item of that name.
    pub struct Result;
    pub struct Option;
    pub struct Vec;
    pub struct String;
    pub struct Box;
    pub struct HashMap;
    pub struct Duration;
    pub const Some: () = ();
    pub const None: () = ();
    pub const Ok: () = ();
    pub const Err: () = ();
    pub trait Send {}
    pub trait Sync {}
    pub trait Sized {}
    pub trait Future {}
    pub trait Iterator {}
    pub trait IntoIterator {}
    pub trait ToOwned {}
    pub trait ToString {}
    pub trait Into {}
    pub trait From {}
    pub trait Clone {}
    pub trait Default {}
    pub trait Drop {}
    pub trait Fn {}
    pub trait FnOnce {}
    pub fn drop() {}
    macro_rules! concat {
        ($($t:tt)*) => {
            compile_error!("the expansion used the caller's concat!")
        };
    }
    macro_rules! module_path {
        ($($t:tt)*) => {
            compile_error!("the expansion used the caller's module_path!")
        };
    }

    type Map = std::collections::HashMap<u32, std::string::String>;

    #[cache(cache = c)]
    pub async fn plain(c: &Cache, id: u32) -> std::string::String {
        super::RUNS.fetch_add(1, O::SeqCst);
        std::format!("plain {id}")
    }

    #[cache(cache = c, key = "n:{id}", ttl = "1m")]
    pub async fn int_key(c: &Cache, id: u64) -> std::result::Result<u64, std::string::String> {
        if id == 0 {
            return std::result::Result::Err("zero".into());
        }
        std::result::Result::Ok(id * 2)
    }

    #[cache(cache = c, skip_none, key = "opt:{name}:{id}")]
    pub async fn maybe(c: &Cache, name: &str, id: u32) -> std::option::Option<std::string::String> {
        (id > 0).then(|| std::format!("{name}{id}"))
    }

    #[cache(cache = c, stale_if_error = "1m", soft_timeout = "1s")]
    pub async fn fail_safe(c: &Cache, id: u32) -> std::result::Result<u32, std::string::String> {
        std::result::Result::Ok(id)
    }

    #[cache(cache = c, strategy = adaptive)]
    pub async fn boxed(c: &Cache, v: std::vec::Vec<u8>) -> std::boxed::Box<[u8]> {
        v.into_boxed_slice()
    }

    #[cache(cache = c, key = "tg:{id}", tags = ["t:{id}", "all"])]
    pub async fn tagged(c: &Cache, id: u64) -> std::vec::Vec<u64> {
        std::vec![id]
    }

    #[invalidate_cache("n:{id}", "plain:*:{id}", tags = ["t:{id}"], cache = c)]
    pub async fn update(c: &Cache, id: u64) -> std::result::Result<(), std::string::String> {
        std::result::Result::Ok(())
    }

    #[cache_batch(prefix = "names", cache = c)]
    pub async fn names(ids: std::vec::Vec<u32>, c: &Cache) -> Map {
        ids.iter().map(|i| (*i, i.to_string())).collect()
    }

    #[warmup_cache(id = 1)]
    #[cache_query]
    #[warmup_cache(id = 2)]
    pub async fn warmed(id: u32) -> u32 {
        id
    }
}

#[no_implicit_prelude]
#[allow(dead_code)]
mod no_prelude {
    use ::cache_core::{cache, cache_batch, invalidate_cache, warmup_cache, Cache};
    use ::std::string::String;

    #[cache(cache = c)]
    pub async fn plain(c: &Cache, id: u32) -> String {
        ::std::format!("plain {id}")
    }

    #[cache(cache = c, key = "k:{name}:{id}", skip_none)]
    pub async fn maybe(c: &Cache, name: &str, id: u64) -> ::std::option::Option<String> {
        ::std::option::Option::Some(::std::format!("{name}{id}"))
    }

    #[cache(cache = c, stale_if_error = "1m", tags = ["fs:{id}"])]
    pub async fn fail_safe(c: &Cache, id: u32) -> ::std::result::Result<u32, String> {
        ::std::result::Result::Ok(id)
    }

    #[cache(cache = c, tags = ["t:{id}", "all"])]
    pub async fn tagged(c: &Cache, id: u32) -> u32 {
        id
    }

    #[invalidate_cache(tags = ["t:{id}"], cache = c)]
    pub async fn untag(c: &Cache, id: u32) {
        let _ = id;
    }

    #[invalidate_cache("plain:*", "k:{name}:*", cache = c)]
    pub async fn update(c: &Cache, name: &str) -> ::std::result::Result<(), String> {
        ::std::result::Result::Ok(())
    }

    #[cache_batch(prefix = "np", cache = c)]
    pub async fn names(ids: &[u32], c: &Cache) -> ::std::collections::BTreeMap<u32, u32> {
        let mut m = ::std::collections::BTreeMap::new();
        for i in ids {
            m.insert(*i, *i + 1);
        }
        m
    }

    #[warmup_cache(id = 7)]
    #[::cache_core::cache_query]
    pub async fn warmed(id: u32) -> u32 {
        id
    }
}

fn main() {
    use cache_core::{Cache, CacheConfig};
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = Cache::new(CacheConfig::default()).unwrap();
        assert_eq!(shadowed::plain(&c, 1).await, "plain 1");
        assert_eq!(shadowed::plain(&c, 1).await, "plain 1");
        assert_eq!(RUNS.load(Ordering::SeqCst), 1, "the second call is a hit");
        assert_eq!(shadowed::int_key(&c, 4).await, Ok(8));
        assert!(shadowed::int_key(&c, 0).await.is_err());
        assert_eq!(shadowed::maybe(&c, "a", 0).await, None);
        assert_eq!(shadowed::maybe(&c, "a", 2).await.as_deref(), Some("a2"));
        assert_eq!(shadowed::fail_safe(&c, 3).await, Ok(3));
        assert_eq!(&*shadowed::boxed(&c, vec![1, 2]).await, &[1, 2]);
        assert_eq!(shadowed::update(&c, 4).await, Ok(()));
        assert_eq!(shadowed::names(vec![1, 2], &c).await.len(), 2);

        assert_eq!(no_prelude::plain(&c, 1).await, "plain 1");
        assert_eq!(no_prelude::maybe(&c, "b", 1).await.as_deref(), Some("b1"));
        assert_eq!(no_prelude::fail_safe(&c, 3).await, Ok(3));
        assert_eq!(no_prelude::tagged(&c, 5).await, 5);
        no_prelude::untag(&c, 5).await;
        assert_eq!(shadowed::tagged(&c, 6).await, vec![6]);
        assert_eq!(no_prelude::update(&c, "b").await, Ok(()));
        assert_eq!(no_prelude::names(&[1, 2], &c).await[&2], 3);

        let warm = cache_core::warmup::registered()
            .filter(|e| e.function.ends_with("::warmed"))
            .count();
        assert_eq!(warm, 3, "two warmups in `shadowed`, one in `no_prelude`");
    });
}
