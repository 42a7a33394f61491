use cache_core::cache;

#[cache(prefix = "query", key = "users:{id}")]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
