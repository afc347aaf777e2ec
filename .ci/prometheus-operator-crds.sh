#!/usr/bin/env bash
# Print the folder of the Prometheus Operator's CRDs (ServiceMonitor, PodMonitor,
# PrometheusRule, ...), from its pinned Go module, on the last line of stdout.
#
# Usage: .ci/prometheus-operator-crds.sh
#   The module is downloaded once through the Go module proxy into
#   ${PROBEGATE_CACHE:-$HOME/.cache/probegate}/gomod (as .ci/install-tools.sh does) and
#   reused from there; `go mod download -json` names its folder (Dir), and the CRDs are
#   its example/prometheus-operator-crd/*.yaml. tests/install.rs checks the chart's and
#   manifests/monitoring's objects against their schemas; tests/e2e.rs installs them in
#   its kube-apiserver.
# Exit status is non-zero if go is missing or the module cannot be had.
set -euo pipefail

MODULE="github.com/prometheus-operator/prometheus-operator"
VERSION="v0.85.0"

CACHE_DIR="${PROBEGATE_CACHE:-${HOME:-/tmp}/.cache/probegate}"
PROXY_TIMEOUT="${PROBEGATE_PROXY_TIMEOUT:-60}"

die() { echo "prometheus-operator-crds: ERROR: $*" >&2; exit 1; }

GO="$(command -v go || true)"
if [[ -z "$GO" && -x /usr/local/go/bin/go ]]; then
  GO=/usr/local/go/bin/go
fi
[[ -n "$GO" ]] || die "go not found on PATH (nor /usr/local/go/bin/go)"

export GOMODCACHE="${GOMODCACHE:-${CACHE_DIR}/gomod}"
export GOCACHE="${GOCACHE:-${CACHE_DIR}/gobuild}"
export GOFLAGS="${GOFLAGS:--buildvcs=false}"
mkdir -p "$CACHE_DIR"
# Outside any module, so no go.mod of the repository's is read.
cd "$CACHE_DIR"

# A module already in the cache is read from it without asking the proxy.
json="$(timeout "$PROXY_TIMEOUT" "$GO" mod download -json "${MODULE}@${VERSION}")" ||
  die "cannot download ${MODULE}@${VERSION} through GOPROXY=$("$GO" env GOPROXY)"
dir="$(printf '%s\n' "$json" | awk -F'"' '$2 == "Dir" { print $4 }')"
crds="${dir}/example/prometheus-operator-crd"
[[ -n "$dir" && -f "${crds}/monitoring.coreos.com_servicemonitors.yaml" ]] ||
  die "${MODULE}@${VERSION} has no ${crds}/monitoring.coreos.com_servicemonitors.yaml"
echo "$crds"
