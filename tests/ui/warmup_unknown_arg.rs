use cache_core::{cache_query, warmup_cache};

#[warmup_cache(user_id = 1, id = 2)]
#[cache_query]
async fn orders(user_id: u64) -> Vec<u64> {
    vec![user_id]
}

fn main() {}
