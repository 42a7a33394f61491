use cache_core::cache;

#[cache(strategy = lfu)]
async fn f(x: u64) -> u64 {
    x
}

fn main() {}
