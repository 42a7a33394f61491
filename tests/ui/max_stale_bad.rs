use cache_core::cache;

#[cache(ttl = "auto", max_stale = "150%")]
async fn too_stale(id: u64) -> u64 {
    id
}

fn main() {}
