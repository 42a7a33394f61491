#!/usr/bin/env bash
# The product's headline, measured: the demo (release build) with its cache on and off
# (CACHE_ENABLED=false), same seed, same mix, driven by wrk for a fixed time at a fixed
# concurrency. Prints one table and writes it to target/loadtest.md. Exits non-zero when a
# target is missed.
#
#   LOADTEST_DURATION=20 LOADTEST_CONNECTIONS=8 LOADTEST_THREADS=1 LOADTEST_SEED=42 \
#   LOADTEST_ZIPF_S=1.0 LOADTEST_WRITE_PCT=2 LOADTEST_THINK_MS=0 LOADTEST_STALE_SAMPLES=100 \
#   DEMO_DB_LATENCY_MS=2 \
#     scripts/loadtest.sh
#
# Each run gets a fresh copy of the database and an empty private Redis; the demo starts as it
# would in production (startup warmup on), and only what happens after start-up is measured.
set -euo pipefail
cd "$(dirname "$0")/.."
here=scripts/loadtest

duration=${LOADTEST_DURATION:-20}
connections=${LOADTEST_CONNECTIONS:-8}
threads=${LOADTEST_THREADS:-1}
export LOADTEST_SEED=${LOADTEST_SEED:-42}
export LOADTEST_ZIPF_S=${LOADTEST_ZIPF_S:-1.0}
export LOADTEST_WRITE_PCT=${LOADTEST_WRITE_PCT:-2}
export LOADTEST_THINK_MS=${LOADTEST_THINK_MS:-0}
stale_samples=${LOADTEST_STALE_SAMPLES:-100}
export DEMO_DB_LATENCY_MS=${DEMO_DB_LATENCY_MS:-2}

step() { echo "[loadtest $(date +%T)] $*" >&2; }

# Only what this script uses: redis-server, wrk, curl (not the browser the test suite needs).
missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server redis-tools)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  step "installing ${missing[*]}..."
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

step "building the demo (release)..."
cargo build --release --locked -q -p cache-examples --bin demo
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
demo_bin="$target_dir/release/demo"

work=$(mktemp -d)
redis_pid=""
# The demo and the stale checker of the run in progress; reset once a run has reaped them, so
# the cleanup never signals a reused pid.
pids=()
cleanup() {
  for p in $redis_pid "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
  --dir "$work" >"$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 1 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done

# One run: $1 = on|off. Writes $work/$1.json.
run() {
  local mode=$1 enabled=true
  [ "$mode" = off ] && enabled=false
  redis-cli -p "$redis_port" flushall >/dev/null
  local port; port=$(free_port)
  local base="http://127.0.0.1:$port"
  CACHE_ENABLED=$enabled REDIS_URL="redis://127.0.0.1:$redis_port/" RUST_LOG=warn \
    "$demo_bin" --port "$port" --db "$work/$mode.sqlite" >"$work/demo-$mode.log" 2>&1 &
  local demo=$!
  pids=("$demo")
  for _ in $(seq 1 100); do
    curl -fsS "$base/api/v1/cache/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
  curl -fsS "$base/api/v1/cache/health" >/dev/null
  python3 "$here/report.py" snapshot "$base" >"$work/$mode-before.json"
  step "cache $mode: ${duration} s, $connections connections ($LOADTEST_THINK_MS ms think time), Zipf(s = $LOADTEST_ZIPF_S), $LOADTEST_WRITE_PCT % writes, seed $LOADTEST_SEED"
  python3 "$here/report.py" stale "$base" "$stale_samples" "$LOADTEST_SEED" "$work/$mode-stale.json" &
  local checker=$!
  pids+=("$checker")
  wrk -t"$threads" -c"$connections" -d"${duration}s" --timeout 10s -s "$here/mix.lua" "$base" >"$work/wrk-$mode.txt"
  wait "$checker"
  python3 "$here/report.py" snapshot "$base" >"$work/$mode-after.json"
  grep -E 'Requests/sec|Latency  ' "$work/wrk-$mode.txt" | sed 's/^/    /' >&2
  kill "$demo" 2>/dev/null || true
  wait "$demo" 2>/dev/null || true
  pids=()
  python3 - "$work" "$mode" "$duration" "$connections" "$threads" "$stale_samples" <<'PY'
import json, sys, platform, os
work, mode, duration, conns, threads, samples = sys.argv[1:]
wrk = next(l for l in open(f"{work}/wrk-{mode}.txt") if l.startswith("LOADTEST_JSON "))
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), platform.machine())
out = {
    "wrk": json.loads(wrk.split(" ", 1)[1]),
    "before": json.load(open(f"{work}/{mode}-before.json")),
    "after": json.load(open(f"{work}/{mode}-after.json")),
    "stale": json.load(open(f"{work}/{mode}-stale.json")),
    "config": {
        "duration": int(duration), "connections": int(conns), "threads": int(threads),
        "seed": int(os.environ["LOADTEST_SEED"]), "zipf_s": float(os.environ["LOADTEST_ZIPF_S"]),
        "write_pct": float(os.environ["LOADTEST_WRITE_PCT"]), "stale_samples": int(samples),
        "think_ms": float(os.environ["LOADTEST_THINK_MS"]),
        "users": int(os.environ.get("LOADTEST_USERS", "100")),
        "freight": int(os.environ.get("LOADTEST_FREIGHT", "500")),
        "redis": "redis-server on loopback",
        "machine": f"{os.cpu_count()} cores, {cpu}; wrk, the demo and Redis share them",
    },
}
json.dump(out, open(f"{work}/{mode}.json", "w"))
PY
}

run on
run off
mkdir -p "$target_dir"
python3 "$here/report.py" table "$work/on.json" "$work/off.json" "$target_dir/loadtest.md"
