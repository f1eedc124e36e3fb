#!/usr/bin/env bash
# Prints the interpreter to build the virtualenv with: python3.12 (Lambda's runtime) when
# available, directly or through pyenv, else the newest python3 >= 3.11 on PATH.
set -u
for cand in python3.12 $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12.*/bin/python3.12 2>/dev/null | sort -V | tail -n 1) python3.13 python3.11 python3; do
  if "$cand" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' >/dev/null 2>&1; then
    echo "$cand"; exit 0
  fi
done
echo "no python >= 3.11 found" >&2
exit 1
