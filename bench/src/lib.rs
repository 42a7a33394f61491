//! Benchmarks live in `benches/peers.rs`: `cargo bench -p cache-bench`.
