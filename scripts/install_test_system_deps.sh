#!/usr/bin/env bash
# System packages the test suite needs (unshare/ip for the network-namespace SSRF test).
# Idempotent; installs only what is missing. `scripts/install_bench_system_deps.sh` adds node for
# the reference gateway.
set -euo pipefail
need=()
command -v unshare >/dev/null 2>&1 || need+=(util-linux)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
