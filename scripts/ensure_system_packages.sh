#!/usr/bin/env bash
# Installs the Debian packages whose commands are missing; idempotent.
# Usage: ensure_system_packages.sh COMMAND:PACKAGE ...
#   make test  -> unshare:util-linux ip:iproute2   (network-namespace SSRF test)
#                 redis-server:redis-server redis-cli:redis-tools (the cache-store tests)
#   make bench -> node:nodejs npm:npm              (the reference gateway, npm @portkey-ai/gateway)
set -euo pipefail
need=()
for pair in "$@"; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
