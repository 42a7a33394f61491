use cache_core::cache_resource;

#[cache_resource(prefix = "query")]
async fn user(id: u64) -> u64 {
    id
}

fn main() {}
