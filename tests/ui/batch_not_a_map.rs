use std::collections::HashMap;

#[cache_core::cache_batch(prefix = "resource:users")]
async fn users(ids: &[u64]) -> Vec<String> {
    ids.iter().map(|i| i.to_string()).collect()
}

fn main() {
    let _: HashMap<u8, u8> = HashMap::new();
}
