use cache_core::warmup_cache;

#[warmup_cache(user_id = 1)]
async fn orders(user_id: u64) -> Vec<u64> {
    vec![user_id]
}

fn main() {}
