#!/usr/bin/env bash
# Static checks: formatting, lint, types, and imports following the data flow. Run by the test
# command before the tests, and by pre-commit.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff format --check .
.venv/bin/ruff check .
# mypy and import-linter walk folders: give them the package as it installs
.venv/bin/python scripts/package_tree.py .cache/package
cd .cache/package
../../.venv/bin/mypy -p feedrank --config-file ../../pyproject.toml
../../.venv/bin/lint-imports --config ../../pyproject.toml --no-cache
