#!/bin/sh
# Handler of StreamFunction (template.yaml). With AWS_LAMBDA_EXEC_WRAPPER=/opt/bootstrap the
# Lambda Web Adapter layer starts this script, waits for GET /v1/health on PORT, then relays each
# Function URL invocation to the server as HTTP and streams the response back (RESPONSE_STREAM).
# The server is the gateway's own local shell: every route, chunk-by-chunk SSE.
#
# sys.path as Lambda's Python bootstrap builds it: the function code (uvicorn & co., in
# LAMBDA_TASK_ROOT) then the shared layer (/opt/python, where aigw lives). AIGW_LAYER_PYTHON
# overrides the layer path for running the built function outside Lambda (tests/deploy).
set -eu
here="${LAMBDA_TASK_ROOT:-$(cd "$(dirname "$0")" && pwd)}"
export PYTHONPATH="$here:${AIGW_LAYER_PYTHON:-/opt/python}${PYTHONPATH:+:$PYTHONPATH}"
# Loopback only: the adapter is the only client. PORT must be the adapter's port (PORT / AWS_LWA_PORT).
export HOST=127.0.0.1
export PORT="${AWS_LWA_PORT:-${PORT:-8080}}"
# Large answers dropped for clients that stopped reading go back to the OS at once, not to glibc's
# heap (measured: 20 such 20 MB answers left 690 MB resident without this, 130 MB with it).
export MALLOC_MMAP_THRESHOLD_=131072
exec python3 -m aigw.adapters.local --shell lambda-stream
