use cache_core::{cache, invalidate_cache};

#[cache]
async fn get_user(id: u64) -> u64 {
    id
}

#[invalidate_cache(get_usr(id))]
async fn update(id: u64) {}

fn main() {}
