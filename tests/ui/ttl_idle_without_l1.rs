use cache_core::cache;

#[cache(ttl_idle = "5m", l1 = false)]
async fn get(id: u64) -> u64 {
    id
}

fn main() {}
