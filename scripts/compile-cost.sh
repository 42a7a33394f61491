#!/usr/bin/env bash
# Compile time and binary size of a crate with N cached async fns (default 200), under this
# workspace's `#[cache]`, with no attribute, and under the `cached` crate, as the tier-seam
# issue (17) measures them. Dependencies are built first (not timed); then each variant's own
# crate is rebuilt in release mode and timed.
#
#   scripts/compile-cost.sh [N] [CACHE_CORE_DIR]
#
# CACHE_CORE_DIR defaults to this checkout's cache-core (point it at another checkout to
# measure a different revision). Output: one line per variant.
set -euo pipefail
N=${1:-200}
here=$(cd "$(dirname "$0")/.." && pwd)
core=${2:-$here/cache-core}
work=${COMPILE_COST_DIR:-/tmp/compile-cost-$(echo "$core" | md5sum | cut -c1-8)}
mkdir -p "$work"

gen() { # variant
  local v=$1 dir=$work/$1
  mkdir -p "$dir/src"
  {
    echo '[package]'
    echo "name = \"gen_$v\""
    echo 'version = "0.0.0"'
    echo 'edition = "2021"'
    echo '[workspace]'
    echo '[dependencies]'
    echo 'tokio = { version = "1", features = ["rt", "macros"] }'
    echo 'serde = { version = "1", features = ["derive"] }'
    case $v in
      tiered) echo "cache-core = { path = \"$core\" }" ;;
      cached) echo 'cached = { version = "4", features = ["async", "proc_macro"] }' ;;
    esac
    echo '[profile.release]'
    echo 'debug = false'
  } >"$dir/Cargo.toml"
  {
    echo '#![allow(dead_code)]'
    echo '#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]'
    echo 'pub struct Row { id: u64, name: String }'
    for i in $(seq 0 $((N - 1))); do
      case $v in
        tiered) attr='#[cache_core::cache(ttl = "60s")]' ;;
        cached) attr='#[cached::proc_macro::cached(ttl_secs = 60)]' ;;
        plain) attr='' ;;
      esac
      case $((i % 4)) in
        0) echo "$attr async fn f$i(a: u64, b: String) -> Vec<u64> { vec![a, b.len() as u64, $i] }" ;;
        1) echo "$attr async fn f$i(a: u64) -> Option<String> { (a > $i).then(|| format!(\"{a}\")) }" ;;
        2) if [ "$v" = cached ]; then r='std::result::Result<Row, String>'; else r='Result<Row, String>'; fi
           echo "$attr async fn f$i(id: u64) -> $r { if id == 0 { Err(\"zero\".into()) } else { Ok(Row { id, name: \"r$i\".into() }) } }" ;;
        3) echo "$attr async fn f$i(a: u32, b: u32) -> u64 { a as u64 * b as u64 + $i }" ;;
      esac
    done
    echo '#[tokio::main(flavor = "current_thread")]'
    echo 'async fn main() {'
    echo '  let mut n = 0u64;'
    for i in $(seq 0 $((N - 1))); do
      case $((i % 4)) in
        0) echo "  n += f$i(n, String::new()).await.len() as u64;" ;;
        1) echo "  n += f$i(n).await.map_or(0, |s| s.len() as u64);" ;;
        2) echo "  n += f$i(n).await.map_or(0, |r| r.id);" ;;
        3) echo "  n += f$i(n as u32, 3).await;" ;;
      esac
    done
    echo '  std::process::exit((n % 2) as i32);'
    echo '}'
  } >"$dir/src/main.rs"
}

for v in ${VARIANTS:-plain cached tiered}; do
  gen $v
  (cd "$work/$v" && cargo build --release -q 2>&1 | tail -20)
  touch "$work/$v/src/main.rs"
  start=$(date +%s.%N)
  (cd "$work/$v" && cargo build --release -q)
  end=$(date +%s.%N)
  size=$(stat -c %s "$work/$v/target/release/gen_$v")
  printf '%-7s %3d fns: build %6.1f s, binary %6.2f MB\n' "$v" "$N" "$(echo "$end - $start" | bc)" "$(echo "scale=2; $size / 1048576" | bc)"
done
