#!/usr/bin/env bash
# cluster-scale.sh [NAMESPACES] [ANNOTATED] [SERVICES] — `probegate serve` in cluster mode
# against the end-to-end kube-apiserver (tests/e2e/start-apiserver.sh) holding NAMESPACES
# namespaces (default 10000), ANNOTATED of them with probegate.io/ annotations (default 1000),
# and SERVICES headless Services spread evenly over them (default 50000). Prints the table
# of issue #18: the API server's own time to list them, start to /readyz 200, RSS at ready,
# peak and after churn, reviews p50/p99, and how soon a changed namespace annotation is seen
# by the next review while other namespaces change. PROBEGATE=path runs another build (to
# measure a base commit the same way). Needs what the e2e suite needs (Go on a first run,
# kubectl) and python3. Results go in docs/benchmarks/ by hand: this is measurement, never a
# test. The full size takes a few minutes, most of it filling the API server.
set -euo pipefail
namespaces=${1:-10000}
annotated=${2:-1000}
services=${3:-50000}
root=$(cd "$(dirname "$0")/.." && pwd)
if [[ -z ${PROBEGATE:-} ]]; then
    cargo build --release --manifest-path "$root/Cargo.toml" >&2
    PROBEGATE=$root/target/release/probegate
fi
workdir=$(mktemp -d /tmp/probegate-cluster-scale.XXXXXX)
trap '"$root/tests/e2e/stop-apiserver.sh" "$workdir" >/dev/null 2>&1 || true; rm -rf "$workdir"' EXIT
kubeconfig=$("$root/tests/e2e/start-apiserver.sh" "$workdir")
python3 "$root/benches/cluster_scale.py" "$kubeconfig" "$PROBEGATE" "$workdir" \
    "$namespaces" "$annotated" "$services"
