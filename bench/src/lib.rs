//! Benchmarks live in `benches/peers.rs`: `cargo bench -p cache-bench`. This library holds the
//! workload they share, so a profile (`benches/l2_profile.rs`) measures what the table reports.

use serde::{Deserialize, Serialize};

/// The workload's value: about 150 bytes serialized.
///
/// ```
/// let p = cache_bench::payload(7);
/// assert_eq!(p.id, 7);
/// assert_eq!(p.tags.len(), 4);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Payload {
    /// The key it was made for.
    pub id: u64,
    /// A name.
    pub name: String,
    /// An address.
    pub email: String,
    /// Four short tags.
    pub tags: Vec<String>,
    /// A number.
    pub score: f64,
    /// A flag.
    pub active: bool,
}

/// The value for key `id`.
pub fn payload(id: u64) -> Payload {
    Payload {
        id,
        name: format!("customer number {id:06}"),
        email: format!("customer.{id:06}@example.com"),
        tags: vec![
            "priority".into(),
            "freight".into(),
            "eu-west".into(),
            format!("tier-{}", id % 4),
        ],
        score: id as f64 * 1.5,
        active: id.is_multiple_of(2),
    }
}
