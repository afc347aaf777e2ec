#!/usr/bin/env bash
# Installs the Debian packages named on the command line, when run as root with apt-get
# (CI machines and fresh containers); elsewhere it names what to install and fails, so a
# missing package is one clear line, not a test that cannot run.
set -euo pipefail
(( $# )) || { echo "usage: $0 PACKAGE..." >&2; exit 2; }
if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "debian-packages: installing $*" >&2
    apt-get install -y --no-install-recommends "$@" >&2 ||
        { apt-get update >&2 && apt-get install -y --no-install-recommends "$@" >&2; } ||
        { echo "debian-packages: error: apt-get could not install $*" >&2; exit 1; }
else
    echo "debian-packages: error: missing $* (Debian: apt-get install $*)" >&2
    exit 1
fi
