#!/usr/bin/env bash
# Demo smoke test: start the demo binary (with a private redis-server), hit each endpoint, stop it.
set -euo pipefail
cd "$(dirname "$0")/.."
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
cargo build -q -p cache-examples --bin demo
work=$(mktemp -d)
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" >/dev/null &
redis_pid=$!
port=$(free_port)
REDIS_URL="redis://127.0.0.1:$redis_port/" target/debug/demo --port "$port" --db "$work/demo.sqlite" --exit-after 120 >"$work/demo.log" 2>&1 &
demo_pid=$!
cleanup() { kill "$demo_pid" "$redis_pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 100); do curl -fs "$base/api/v1/cache/health" >/dev/null 2>&1 && break; sleep 0.2; done
passed=0
check() { # method path expected-status [body]
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' -X "$1" -H 'Content-Type: application/json' ${4:+-d "$4"} "$base$2")
  if [ "$code" != "$3" ]; then echo "smoke: $1 $2 -> $code, expected $3" >&2; cat "$work/demo.log" >&2; exit 1; fi
  echo "smoke: $1 $2 -> $code"
  passed=$((passed + 1))
}
check GET / 200
check GET /users/1 200
check GET /users/1/orders 200
check GET /users/1/orders 200
check PUT /users/1 200 '{"name":"Smoke"}'
check GET /resources/freight/3 200
check GET /resources/freight/999999 404
check GET /analysis/trends/2025-06 200
check GET /api/v1/cache/stats 200
check GET /api/v1/cache/health 200
check GET /api/v1/cache/performance 200
check GET /api/v1/cache/access-patterns 200
check GET /metrics 200
check POST /api/v1/cache/clear 200 '{"pattern":"query:*"}'
check POST /api/v1/cache/clear 400 '{"pattern":"*"}'
check POST /api/v1/cache/warmup 200
grep -q "running with Redis as L2" "$work/demo.log"
echo "smoke: $passed passed, 0 failed"
