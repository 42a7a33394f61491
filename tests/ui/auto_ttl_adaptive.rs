use cache_core::cache;

#[cache(ttl = "auto", strategy = adaptive)]
async fn both(id: u64) -> u64 {
    id
}

fn main() {}
