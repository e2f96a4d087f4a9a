#!/usr/bin/env bash
# Makes sure Debian's Chromium is installed at /usr/bin/chromium, for the dashboard's
# browser test (integration-tests/tests/dashboard.rs drives it headless over CDP).
# Idempotent: where it is already installed this only checks. DejaVu comes along so that
# Arabic text renders in the screenshot even on a machine with no other fonts.
#
#   bash deploy/dev/chromium.sh
#
# Installs with apt-get, which needs root (or passwordless sudo). The test never
# downloads a browser of its own.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

say() { printf 'chromium: %s\n' "$*" >&2; }

if [ -x "$CHROMIUM" ]; then exit 0; fi
say "not installed; installing Debian's chromium"
as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core
if ! [ -x "$CHROMIUM" ]; then
  say "apt-get finished but $CHROMIUM is still missing"
  exit 1
fi
say "installed: $("$CHROMIUM" --version 2>/dev/null || echo "$CHROMIUM")"
