#!/usr/bin/env bash
# Make sure a file that one of Debian's packages provides is there; install the package when it is
# missing and we are root with apt (CI and containers), otherwise say how to fix it and fail.
#   ensure_debian_package.sh PATH PACKAGE PURPOSE OVERRIDE_HINT
# Never a browser or library download of its own: only Debian's package, by name.
set -euo pipefail
path="$1" package="$2" purpose="$3" hint="$4"
if [ -e "$path" ]; then
    exit 0
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "==> Installing Debian's $package for $purpose"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
else
    echo "$purpose need $path." >&2
    echo "Fix: 'sudo apt-get install $package' (Debian/Ubuntu), or $hint" >&2
    exit 1
fi
