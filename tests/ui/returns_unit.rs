use cache_core::cache;

#[cache]
async fn nothing(id: u64) {
    let _ = id;
}

fn main() {}
