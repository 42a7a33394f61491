use cache_core::{cache_query, invalidate_cache};

#[cache_query(tags = ["user:{user_id}", "org:{org}"])]
async fn orders(user_id: u64) -> Vec<u64> {
    vec![user_id]
}

#[invalidate_cache(tags = ["user:{id}"])]
async fn update_user(user_id: u64) -> Result<(), String> {
    let _ = user_id;
    Ok(())
}

#[cache_query(tags = [])]
async fn no_tags(user_id: u64) -> Vec<u64> {
    vec![user_id]
}

#[cache_query(tags = ["a:{x}{y}"])]
async fn joined(x: u64, y: u64) -> Vec<u64> {
    vec![x, y]
}

fn main() {}
