#!/usr/bin/env bash
# The browser tests drive Debian's Chromium (never a browser download). Install it when missing.
exec bash "$(dirname "$0")/ensure_debian_package.sh" "${ATTNFLEX_CHROMIUM:-/usr/bin/chromium}" chromium \
    "the browser tests" \
    "set ATTNFLEX_CHROMIUM to a Chromium/Chrome binary, or run 'make test-fast' to skip the browser tests."
