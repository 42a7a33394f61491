use cache_core::cache;

#[cache(skip_none)]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
