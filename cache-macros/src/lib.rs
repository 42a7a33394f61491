//! Attribute macros for `cache-core`. Use them through `cache_core`'s re-exports.
