#!/usr/bin/env bash
# The site serves MathJax from its own _static/ (no CDN): it copies Debian's libjs-mathjax (MathJax 2).
MATHJAX="${ATTNFLEX_MATHJAX:-/usr/share/javascript/mathjax}"
exec bash "$(dirname "$0")/ensure_debian_package.sh" "$MATHJAX/MathJax.js" libjs-mathjax \
    "the site's formulas" "set ATTNFLEX_MATHJAX to a MathJax 2 folder (the one holding MathJax.js)."
