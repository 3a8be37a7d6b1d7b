#!/usr/bin/env bash
# The main job on the embedded default: set up, generate the default synthetic world, build both
# models into model_repository/ (steps whose inputs did not change are skipped), evaluate them,
# and serve the feed on 127.0.0.1:8000. Extra arguments go to `feedrank serve`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
WORLD=${FEEDRANK_WORLD:-data/world}
REPOSITORY=${FEEDRANK_REPOSITORY:-model_repository}
feedrank=.venv/bin/feedrank

if [ ! -f "$WORLD/world.json" ]; then
  $feedrank world generate --out "$WORLD"
fi
$feedrank world describe "$WORLD"
$feedrank build --world "$WORLD" --repository "$REPOSITORY"
$feedrank evaluate --world "$WORLD" --repository "$REPOSITORY"
exec $feedrank serve --world "$WORLD" --repository "$REPOSITORY" "$@"
