use cache_core::cache;

#[cache(max_entries = 100, l1 = false)]
async fn search(q: u64) -> u64 {
    q
}

fn main() {}
