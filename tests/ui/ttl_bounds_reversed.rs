use cache_core::cache;

#[cache(ttl = "auto", ttl_bounds = ("1h", "30s"))]
async fn reversed(id: u64) -> u64 {
    id
}

fn main() {}
