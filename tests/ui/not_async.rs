use cache_core::cache_query;

/// A synchronous function cannot have what needs Redis on its call path.
#[cache_query(tags = ["user:{user_id}"])]
fn orders(user_id: u64) -> Vec<u64> {
    vec![user_id]
}

fn main() {}
