use cache_core::cache;

#[cache(soft_timeout = "200ms")]
async fn f(x: u64) -> u64 {
    x
}

fn main() {}
