use cache_core::{cache_query, warmup_cache};

#[warmup_cache(user_id = 1)]
#[cache_query]
async fn orders(user_id: u64, page: u32) -> Vec<u64> {
    vec![user_id, page as u64]
}

fn main() {}
