#!/usr/bin/env bash
# Sets up the environment (if needed) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/feedrank ] || ./scripts/setup.sh
exec .venv/bin/python -m pytest "$@"
