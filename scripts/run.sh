#!/usr/bin/env bash
# The main job on the embedded default: set up, generate the default synthetic world, build both
# models into model_repository/ (steps whose inputs did not change are skipped) and serve the
# feed on 127.0.0.1:8000; the evaluation of both models runs beside the answering server and
# prints its tables. Extra arguments go to `feedrank serve`; Ctrl-C stops the server.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh build
WORLD=${FEEDRANK_WORLD:-data/world}
REPOSITORY=${FEEDRANK_REPOSITORY:-model_repository}
feedrank=.venv/bin/feedrank

if [ ! -f "$WORLD/world.json" ]; then
  $feedrank world generate --out "$WORLD"
fi
$feedrank world describe "$WORLD"
$feedrank build --world "$WORLD" --repository "$REPOSITORY"
# its own session: Ctrl-C reaches it once, from the trap (a second SIGINT would skip draining)
setsid $feedrank serve --world "$WORLD" --repository "$REPOSITORY" "$@" &
server=$!
trap 'kill -INT "$server" 2>/dev/null || true; wait "$server"; exit 130' INT TERM
$feedrank evaluate --world "$WORLD" --repository "$REPOSITORY" ||
  echo "run.sh: the evaluation failed (above); the server keeps serving" >&2
wait "$server"
