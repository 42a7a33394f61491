use cache_core::cache;

#[cache(unless = |v: &Vec<u64>| v.len())]
async fn list(id: u64) -> Vec<u64> {
    vec![id]
}

fn main() {}
