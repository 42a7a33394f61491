use cache_core::invalidate_cache;

#[invalidate_cache(1 + 2)]
async fn update(id: u64) {}

fn main() {}
