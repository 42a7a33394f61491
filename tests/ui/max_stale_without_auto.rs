use cache_core::cache;

#[cache(ttl = 60, max_stale = "1%")]
async fn fixed(id: u64) -> u64 {
    id
}

fn main() {}
