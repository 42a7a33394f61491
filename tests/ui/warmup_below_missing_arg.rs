use cache_core::{cache_query, warmup_cache};

#[cache_query]
#[warmup_cache(page = 1)]
async fn orders(user_id: u64, page: u32) -> Vec<u64> {
    vec![user_id, page as u64]
}

fn main() {}
