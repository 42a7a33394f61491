use cache_core::cache_query;

#[cache_query]
const fn orders(user_id: u64) -> u64 {
    user_id
}

fn main() {}
