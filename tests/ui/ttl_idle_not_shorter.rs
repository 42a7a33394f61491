use cache_core::cache;

#[cache(ttl = "1m", ttl_idle = "5m")]
async fn get(id: u64) -> u64 {
    id
}

fn main() {}
