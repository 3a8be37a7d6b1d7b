#!/usr/bin/env bash
# Sets up the environment (a no-op when it is current) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/services.sh
./scripts/check.sh
exec .venv/bin/python -m pytest "$@"
