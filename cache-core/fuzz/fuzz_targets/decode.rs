//! Any bytes found in Redis must decode to a value or an error: never a panic, never an
//! unbounded allocation. `cargo +nightly fuzz run decode -- -max_total_time=60`
#![no_main]

use cache_core::codec::Codec;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let codec = Codec::new(64, 1, 1 << 20);
    let _ = codec.decode::<String>(data);
    let _ = codec.decode::<Vec<u64>>(data);
    let _ = codec.decode::<(String, Vec<u8>, Option<Vec<String>>, bool, f64)>(data);
});
