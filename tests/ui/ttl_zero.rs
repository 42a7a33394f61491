use cache_core::cache_result;

#[cache_result(ttl = 0)]
async fn f(x: u64) -> u64 {
    x
}

fn main() {}
