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
# The dashboard's browser test (tests/tests/dashboard.rs) drives headless Chromium through
# chromedriver: Debian's `chromium` and `chromium-driver`.
if ! command -v chromedriver >/dev/null 2>&1; then
  echo "installing chromium and chromium-driver..." >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
fi
chromedriver --version >&2
# `/metrics` is checked with `promtool check metrics` (tests/tests/metrics_export.rs; it fails in
# CI without promtool): Debian's `prometheus` package (19 MB download, 96 MB installed). Only the
# promtool binary is wanted: where systemd runs, the server the package enables is stopped again.
if ! command -v promtool >/dev/null 2>&1; then
  echo "installing prometheus (for promtool)..." >&2
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi
promtool --version 2>&1 | sed -n 1p >&2
