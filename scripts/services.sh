#!/usr/bin/env bash
# The real services the tests use, from Debian's packages: chromium (the page tests), postgresql
# (a throwaway server per test session), podman with runc and debootstrap (the container image).
# Found when installed; installed with apt when missing and this runs as root (CI on a fresh
# machine); otherwise named, and the tests that need them fail saying so.
set -euo pipefail
missing=()
{ [ -n "${FEEDRANK_CHROMIUM:-}" ] || command -v chromium >/dev/null; } || missing+=(chromium)
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || missing+=(runc)
command -v debootstrap >/dev/null || missing+=(debootstrap)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing for the tests (apt-get): ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "warning: the tests need Debian's ${missing[*]}: sudo apt-get install ${missing[*]}" >&2
fi
