use cache_core::cache;

#[cache(key = "count:{id}")]
async fn count(id: u64) -> String {
    let doubled = id * 2;
    doubled
}

fn main() {}
