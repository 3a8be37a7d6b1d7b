#!/usr/bin/env bash
# Creates .venv (once) and installs feedrank with its extras from this checkout's own files.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip setuptools wheel
# serving, then building (torch==2.13.0 is pinned in pyproject.toml: the CPU wheel, not a
# multi-GB CUDA build), Ray Serve, the tests and the benchmarks
.venv/bin/python -m pip install --quiet -e '.[build,ray,test,bench]'
