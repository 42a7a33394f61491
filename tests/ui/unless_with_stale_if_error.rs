use cache_core::cache;

#[cache(unless = |v: &u64| *v == 0, stale_if_error = "10m")]
async fn count(id: u64) -> Result<u64, String> {
    Ok(id)
}

fn main() {}
