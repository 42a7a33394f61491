use cache_core::cache;

#[cache(skip(pool))]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
