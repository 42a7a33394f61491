use cache_core::cache_query;

#[cache_query]
fn orders(user_id: u64) -> Vec<u64> {
    vec![user_id]
}

fn main() {}
