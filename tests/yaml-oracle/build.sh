#!/usr/bin/env bash
# build.sh: build (or reuse) yaml-oracle, kubectl's YAML reading as a command, for
# tests/yaml_conformance.rs. Prints the binary's absolute path on stdout, nothing else;
# progress and errors go to stderr.
#
# The binary goes to ${PROBEGATE_CACHE:-$HOME/.cache/probegate}/bin/yaml-oracle-<hash>,
# <hash> covering go.mod, go.sum and main.go, so a changed oracle is rebuilt and a cache hit
# costs nothing. Go's module and build caches stay under the same folder, as in
# .ci/install-tools.sh. The only network use is the Go module proxy, on a cold cache.
# A missing Go toolchain or module is an error (exit 1), never a silent skip.
set -euo pipefail

src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf 'yaml-oracle build: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

cache_dir=${PROBEGATE_CACHE:-${HOME:-/tmp}/.cache/probegate}
hash=$(cd "$src" && cat go.mod go.sum main.go | sha256sum | cut -c1-16)
bin=$cache_dir/bin/yaml-oracle-$hash
if [[ -x $bin ]]; then
    printf '%s\n' "$bin"
    exit 0
fi

go_cmd=$(command -v go || true)
if [[ -z $go_cmd && -x /usr/local/go/bin/go ]]; then
    go_cmd=/usr/local/go/bin/go
fi
[[ -n $go_cmd ]] || die "go not found on PATH (nor /usr/local/go/bin/go)"

mkdir -p "$cache_dir/bin"
export GOMODCACHE="${GOMODCACHE:-$cache_dir/gomod}"
export GOCACHE="${GOCACHE:-$cache_dir/gobuild}"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
export CGO_ENABLED=0

# Concurrent test binaries may all miss the cache: one builds, the others wait and reuse.
exec 9>"$cache_dir/.yaml-oracle.lock"
flock 9
if [[ ! -x $bin ]]; then
    log "building $bin"
    tmp=$(mktemp "$bin.XXXXXX")
    trap 'rm -f "$tmp"' EXIT
    (cd "$src" && nice -n 19 "$go_cmd" build -mod=readonly -trimpath -ldflags="-s -w" -o "$tmp" .) ||
        die "go build failed (is the Go module proxy reachable? GOPROXY=$("$go_cmd" env GOPROXY))"
    chmod 0755 "$tmp"
    mv -f "$tmp" "$bin"
fi
printf '%s\n' "$bin"
