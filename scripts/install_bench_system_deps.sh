#!/usr/bin/env bash
# System packages the benchmarks need: Node.js and npm run the reference gateway
# (npm @portkey-ai/gateway, installed under bench/.reference by bench/reference_gateway.py).
set -euo pipefail
need=()
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
