use cache_core::invalidate_cache;

#[invalidate_cache("resource:users:{id}")]
async fn update_user(user_id: u64) -> Result<(), String> {
    let _ = user_id;
    Ok(())
}

fn main() {}
