use cache_core::cache;

#[cache(max_entries = 0)]
async fn search(q: u64) -> u64 {
    q
}

fn main() {}
