use cache_core::{cache, invalidate_cache};

#[cache]
async fn get_user(id: u64) -> u64 {
    id
}

#[invalidate_cache(get_user(id, id))]
async fn update(id: u64) {}

fn main() {}
