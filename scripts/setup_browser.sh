#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (never a browser download). Install it when missing.
set -euo pipefail
CHROMIUM="${ATTNFLEX_CHROMIUM:-/usr/bin/chromium}"
if [ -x "$CHROMIUM" ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> Installing Debian's chromium for the browser tests"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
    echo "The browser tests need Chromium at $CHROMIUM." >&2
    echo "Fix: 'sudo apt-get install chromium' (Debian/Ubuntu), or set ATTNFLEX_CHROMIUM to a" >&2
    echo "Chromium/Chrome binary, or run 'make test-fast' to skip the browser tests." >&2
    exit 1
fi
