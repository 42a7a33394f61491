use cache_core::cache;

#[cache(condition = id + 1)]
async fn get(id: u64) -> u64 {
    id
}

fn main() {}
