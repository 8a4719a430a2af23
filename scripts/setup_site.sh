#!/usr/bin/env bash
# The site serves MathJax from its own _static/ (no CDN): it copies Debian's libjs-mathjax (MathJax 2).
# Install it when missing, as setup_browser.sh does for Chromium.
set -euo pipefail
MATHJAX="${ATTNFLEX_MATHJAX:-/usr/share/javascript/mathjax}"
if [ -f "$MATHJAX/MathJax.js" ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> Installing Debian's libjs-mathjax for the site's formulas"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libjs-mathjax >/dev/null
else
    echo "The site needs MathJax 2 at $MATHJAX." >&2
    echo "Fix: 'sudo apt-get install libjs-mathjax' (Debian/Ubuntu), or set ATTNFLEX_MATHJAX to a" >&2
    echo "MathJax 2 folder (the one holding MathJax.js)." >&2
    exit 1
fi
