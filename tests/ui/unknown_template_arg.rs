use cache_core::cache;

#[cache(key = "user:{user}")]
async fn profile(user_id: u64) -> String {
    user_id.to_string()
}

fn main() {}
