use cache_core::cache;

#[cache]
async fn describe<T: std::fmt::Display>(value: T) -> String {
    value.to_string()
}

fn main() {}
