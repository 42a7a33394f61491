//! Bodies as users write them: inner attributes, early `return`, `?` converting the error
//! type, a tail that is a `match` or a `loop`, and items declared inside the body.
use cache_core::{cache, invalidate_cache, Cache, CacheConfig};

#[derive(Debug, PartialEq)]
struct AppError(String);

impl From<std::num::ParseIntError> for AppError {
    fn from(e: std::num::ParseIntError) -> Self {
        AppError(e.to_string())
    }
}

#[cache(cache = c)]
async fn inner_attr(c: &Cache, id: u32) -> u32 {
    #![allow(unused_variables)]
    let unused = 1;
    id
}

#[cache(cache = c)]
async fn early(c: &Cache, id: u32) -> String {
    if id == 0 {
        return "zero".to_owned();
    }
    match id {
        1 => "one".into(),
        _ => id.to_string(),
    }
}

#[cache(cache = c)]
async fn question_mark(c: &Cache, text: String) -> Result<u32, AppError> {
    let n: u32 = text.parse()?;
    Ok(n + 1)
}

#[cache(cache = c)]
async fn looped(c: &Cache, mut n: u64) -> u64 {
    const LIMIT: u64 = 100;
    fn step(n: u64) -> u64 {
        n * 2
    }
    loop {
        if n > LIMIT {
            break n;
        }
        n = step(n);
    }
}

#[invalidate_cache("early:*", cache = c)]
async fn clear(c: &Cache, really: bool) -> Result<(), AppError> {
    #![allow(clippy::needless_return)]
    if !really {
        return Err(AppError("not really".into()));
    }
    Ok(())
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = Cache::new(CacheConfig::default()).unwrap();
        assert_eq!(inner_attr(&c, 3).await, 3);
        assert_eq!(early(&c, 0).await, "zero");
        assert_eq!(early(&c, 1).await, "one");
        assert_eq!(early(&c, 7).await, "7");
        assert_eq!(question_mark(&c, "41".into()).await, Ok(42));
        assert!(question_mark(&c, "x".into()).await.is_err());
        assert_eq!(looped(&c, 3).await, 192);
        assert_eq!(clear(&c, false).await, Err(AppError("not really".into())));
        assert_eq!(clear(&c, true).await, Ok(()));
    });
}
