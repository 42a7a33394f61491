use cache_core::{cache, invalidate_cache};

#[cache]
async fn get_user(id: u64) -> u64 {
    id
}

#[invalidate_cache(get_user(name))]
async fn update(name: String) {}

fn main() {}
