#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh Debian/Ubuntu machine: redis-server (with
# TLS, Sentinel and Cluster support) and redis-cli (`redis-cli --cluster create`).
set -euo pipefail
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  echo "installing redis-server..." >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends redis-server redis-tools >/dev/null
fi
redis-server --version >&2
