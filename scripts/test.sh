#!/usr/bin/env bash
# Runs every check and test. Each Redis-backed test starts its own private redis-server on a free
# loopback port (tests/src/lib.rs), so nothing needs to be running beforehand.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
# The peers bench as a smoke test: a debug build of it runs main (harness = false) with short
# rounds and small traces; it checks that the sections run, not what they measure.
BENCH_QUICK=1 BENCH_ONLY=p1,hitratio,memory cargo test -p cache-bench --locked --bench peers
# The suites written against `TestRedis` once more on a Redis Cluster (3 primaries + 3
# replicas per test; a test of what only one server shows starts one whatever the topology);
# the TLS, ACL, Sentinel and Cluster failure suites ran above.
CACHE_TEST_TOPOLOGY=cluster cargo test -p cache-test-harness --locked \
  --test engine --test macros --test stale_set --test pubsub --test warmer --test warmer_explicit \
  --test failsafe --test resilience --test tags
# The workspace run builds cache-core with `tokio-clock` (the tests pause time); run its own
# tests once more with the production clock.
cargo test -p cache-core --locked
# The L1-only build: no Redis client or pool compiled, the macros still work; its own unit
# tests run the engine's protocol on the in-memory fake tier.
cargo test -p cache-core --locked --no-default-features --features macros --lib
if cargo tree -p cache-core --no-default-features --features macros -e normal --prefix none | grep -Eq '^(redis|deadpool)'; then
  echo "the L1-only build pulls in redis or deadpool" >&2
  exit 1
fi
# Single flight and the read coalescer under shuttle's scheduler.
cargo test -p cache-core --locked --features shuttle --lib shuttle
scripts/smoke-demo.sh
# The OpenTelemetry example exports the cache's spans to stdout: a miss's load must be there.
cargo run -q --locked -p cache-examples --bin otel > target/otel-example.txt
grep -q 'Name         : cache.load' target/otel-example.txt
