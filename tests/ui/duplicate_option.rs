use cache_core::cache;

#[cache(ttl = 60, ttl = 5)]
async fn f(x: u64) -> u64 {
    x
}

fn main() {}
