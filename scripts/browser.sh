#!/usr/bin/env bash
# The headless browser the page tests drive: Debian's chromium, found on the PATH (or at
# $FEEDRANK_CHROMIUM), else installed with apt when this runs as root (CI on a fresh machine).
set -euo pipefail
if [ -n "${FEEDRANK_CHROMIUM:-}" ] || command -v chromium >/dev/null; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing Debian's chromium for the page tests (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
else
  echo "warning: the page tests need Debian's chromium: sudo apt-get install chromium" \
    "(or set FEEDRANK_CHROMIUM to a Chromium binary); they fail without it" >&2
fi
