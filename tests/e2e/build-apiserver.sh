#!/usr/bin/env bash
# build-apiserver.sh — build (or reuse) the e2e control-plane binary.
#
# Builds tests/e2e/apiserver (kube-apiserver + embedded etcd, one process)
# and prints the absolute path of the binary on stdout, and nothing else.
# Progress and errors go to stderr.
#
# Cache: the binary is kept outside the repository at
#   ${PROBEGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/probegate}/kube-apiserver-<k8s version>-<hash>
# where <hash> covers go.mod, go.sum, every *.go file of the module and the
# build recipe below. A cache hit returns at once; any change to those files
# produces a new name, so a stale binary is never reused. The binary is
# written to a temporary file in the cache directory and renamed into place,
# so a reader never sees a half-written file; concurrent runs are serialized
# with flock(1) when it is available.
#
# Environment:
#   PROBEGATE_CACHE   cache directory (see above)
#   GO                go command to use (default: `go` on PATH, then
#                     /usr/local/go/bin/go)
#
# A missing Go toolchain or an unreachable module proxy is an error (exit 1),
# never a silent skip. A cold build takes a long time (see README.md); wrap
# it in `nice -n 19` on a shared machine.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
src=$here/apiserver

log() { printf 'build-apiserver: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# --- Kubernetes version: single source of truth is go.mod -----------------
k8s_version=$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v[0-9]/ { print $2; exit }' "$src/go.mod")
[[ $k8s_version =~ ^v([0-9]+)\.([0-9]+)\.[0-9]+$ ]] ||
    die "cannot read the k8s.io/kubernetes version from $src/go.mod (got '${k8s_version}')"
k8s_major=${BASH_REMATCH[1]}
k8s_minor=${BASH_REMATCH[2]}

# --- build recipe (part of the cache key) ----------------------------------
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$k8s_version"
    ldflags+=" -X $pkg.gitMajor=$k8s_major"
    ldflags+=" -X $pkg.gitMinor=$k8s_minor"
    ldflags+=" -X $pkg.gitTreeState=clean"
done
recipe="CGO_ENABLED=0 go build -mod=readonly -trimpath -ldflags=$ldflags"

# --- cache key -------------------------------------------------------------
if command -v sha256sum >/dev/null 2>&1; then
    sha256() { sha256sum | cut -c1-16; }
elif command -v shasum >/dev/null 2>&1; then
    sha256() { shasum -a 256 | cut -c1-16; }
else
    die "need sha256sum or shasum to compute the cache key"
fi
hash=$(
    cd "$src"
    export LC_ALL=C # fixed glob order
    {
        printf 'recipe %s\n' "$recipe"
        for f in go.mod go.sum *.go; do
            printf 'file %s\n' "$f"
            cat -- "$f"
        done
    } | sha256
)

cache_dir=${PROBEGATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/probegate}
bin=$cache_dir/kube-apiserver-$k8s_version-$hash

if [[ -x $bin ]]; then
    log "cache hit: $bin"
    printf '%s\n' "$bin"
    exit 0
fi

mkdir -p "$cache_dir" || die "cannot create cache directory $cache_dir"

# Serialize concurrent builds of the same cache directory; the loser of the
# race finds the binary already there.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$cache_dir/.kube-apiserver.build.lock"
    flock 9
    if [[ -x $bin ]]; then
        log "cache hit (built by a concurrent run): $bin"
        printf '%s\n' "$bin"
        exit 0
    fi
fi

# --- toolchain -------------------------------------------------------------
go_cmd=${GO:-}
if [[ -z $go_cmd ]]; then
    if command -v go >/dev/null 2>&1; then
        go_cmd=go
    elif [[ -x /usr/local/go/bin/go ]]; then
        go_cmd=/usr/local/go/bin/go
    fi
fi
if [[ -z $go_cmd ]] || ! command -v "$go_cmd" >/dev/null 2>&1; then
    die "Go toolchain not found (set GO=/path/to/go or put go on PATH); it is needed to build the e2e kube-apiserver $k8s_version"
fi
log "using $("$go_cmd" version)"

cd "$src"

# Fetch modules first so that a network problem gets its own clear message.
log "downloading Go modules for kube-apiserver $k8s_version (GOPROXY=$("$go_cmd" env GOPROXY))"
if ! "$go_cmd" mod download >"$cache_dir/.kube-apiserver.download.log" 2>&1; then
    tail -n 20 "$cache_dir/.kube-apiserver.download.log" >&2 || true
    die "could not download the Go modules; is the Go module proxy reachable? (GOPROXY=$("$go_cmd" env GOPROXY)); full log: $cache_dir/.kube-apiserver.download.log"
fi

tmp=$(mktemp "$cache_dir/.kube-apiserver-$k8s_version-$hash.XXXXXX")
trap 'rm -f "$tmp"' EXIT

log "building kube-apiserver $k8s_version into $bin (a cold build takes a long time)"
start=$(date +%s)
CGO_ENABLED=0 "$go_cmd" build -mod=readonly -trimpath -ldflags="$ldflags" -o "$tmp" . ||
    die "go build failed"
chmod 0755 "$tmp"
mv -f "$tmp" "$bin"
trap - EXIT
log "built in $(( $(date +%s) - start ))s, $(du -h "$bin" | cut -f1): $bin"

# Keep the cache bounded: the three newest binaries stay (other checkouts or
# branches may still want theirs), older ones go.
# shellcheck disable=SC2012 # our own file names, no odd characters
ls -1t -- "$cache_dir"/kube-apiserver-v*-* 2>/dev/null | tail -n +4 |
    while IFS= read -r old; do
        log "pruning old binary $old"
        rm -f -- "$old"
    done

printf '%s\n' "$bin"
