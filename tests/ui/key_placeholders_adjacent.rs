use cache_core::cache;

#[cache(key = "users:{a}-{b}")]
async fn pair(a: String, b: String) -> String {
    format!("{a}{b}")
}

fn main() {}
