#!/usr/bin/env bash
# Runs every check and test. Each Redis-backed test starts its own private redis-server on a free
# loopback port (tests/src/lib.rs), so nothing needs to be running beforehand.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
# The workspace run builds cache-core with `tokio-clock` (the tests pause time); run its own
# tests once more with the production clock.
cargo test -p cache-core --locked
scripts/smoke-demo.sh
