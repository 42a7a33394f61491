#!/usr/bin/env bash
# Runs the demo. Without REDIS_URL it is L1-only. With `--with-redis` it starts a private
# redis-server on a free loopback port and points the demo at it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--with-redis" ]; then
  shift
  scripts/install-deps.sh
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no >/dev/null &
  redis_pid=$!
  trap 'kill $redis_pid 2>/dev/null || true' EXIT
  export REDIS_URL="redis://127.0.0.1:$port/"
fi
cargo run --release -p cache-examples --bin demo -- "$@"
