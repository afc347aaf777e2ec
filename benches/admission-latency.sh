#!/usr/bin/env bash
# admission-latency.sh [SHAPES] [ROUNDS] — what users see (issue #24): Pod creation through
# the end-to-end kube-apiserver (tests/e2e/start-apiserver.sh) without any webhook, and with
# the release build's `probegate serve` registered as its MutatingWebhookConfiguration
# (manifests/, by URL, the API server presenting its client certificate as in tests/e2e.rs).
# SHAPES is CREATES/CLIENTS[,...] (default 1000/100,5000/200,10000/500: the shape Kyverno
# publishes for its admission controller); each shape runs ROUNDS times (default 1), without
# then with the webhook, each run in a fresh namespace whose Pods are deleted afterwards.
# The clients (benches/admission-load, Go, standard library only, built once into
# ${PROBEGATE_CACHE:-~/.cache/probegate}/bin) POST Pods with a named container port, so
# probegate adds probes, straight to the API server, one HTTP/2 connection each.
#
# Prints one Markdown table per shape on stdout: client-observed create latency p50 / p95 /
# p99, mean and max without and with probegate, the difference, creates/s, Pods stored and
# mutated, probegate's CPU seconds (/proc/PID/stat) and RSS before / peak (VmHWM, reset per
# run), probegate's own mean review time and the API server's mean webhook call
# (both from their metrics), and the API server's and the client's CPU seconds. Progress
# goes to stderr. Before measuring it checks that a dry-run Pod comes back with the
# probegate.io/injected annotation, and fails if not. PROBEGATE=path runs another build.
# Needs what the e2e suite needs (Go, kubectl, openssl) and python3. Results go in
# docs/benchmarks/ by hand: this is measurement, never a test. It is meant for a shared
# machine: each run waits for other work to quieten, the CPU everything else used during a
# run is printed, and a run other work disturbed is run again (admission_latency.py says
# how). On the 2-core build machine one round of the default shapes takes about 2 minutes
# (three rounds: 5.5), plus any waiting.
set -euo pipefail
shapes=${1:-1000/100,5000/200,10000/500}
rounds=${2:-1}
root=$(cd "$(dirname "$0")/.." && pwd)
[[ $shapes =~ ^[0-9]+/[0-9]+(,[0-9]+/[0-9]+)*$ ]] || { echo "usage: $0 [CREATES/CLIENTS,...] [ROUNDS]" >&2; exit 2; }
[[ $rounds =~ ^[1-9][0-9]*$ ]] || { echo "usage: $0 [CREATES/CLIENTS,...] [ROUNDS]" >&2; exit 2; }

if [[ -z ${PROBEGATE:-} ]]; then
    cargo build --release --manifest-path "$root/Cargo.toml" >&2
    PROBEGATE=$root/target/release/probegate
fi

# The load client, cached by the hash of its source like tests/yaml-oracle/build.sh.
cache_dir=${PROBEGATE_CACHE:-${HOME:-/tmp}/.cache/probegate}
src=$root/benches/admission-load
load=$cache_dir/bin/admission-load-$(cat "$src/go.mod" "$src/main.go" | sha256sum | cut -c1-16)
if [[ ! -x $load ]]; then
    mkdir -p "$cache_dir/bin"
    tmp=$(mktemp "$load.XXXXXX")
    (cd "$src" && GOCACHE=${GOCACHE:-$cache_dir/gobuild} GOFLAGS=-buildvcs=false CGO_ENABLED=0 \
        go build -trimpath -ldflags="-s -w" -o "$tmp" .) || { rm -f "$tmp"; exit 1; }
    mv -f "$tmp" "$load"
fi

workdir=$(mktemp -d /tmp/probegate-admission-latency.XXXXXX)
trap '"$root/tests/e2e/stop-apiserver.sh" "$workdir" >/dev/null 2>&1 || true; rm -rf "$workdir"' EXIT

# The API server's client certificate for the webhook, as tests/e2e.rs sets it up: from
# `probegate certs --client`, named in a kubeconfig for user "*" that a
# WebhookAdmissionConfiguration points at.
"$PROBEGATE" certs --client --out "$workdir/client-certs" 2>/dev/null
cat >"$workdir/webhook-kubeconfig" <<EOF
apiVersion: v1
kind: Config
users:
  - name: "*"
    user:
      client-certificate: $workdir/client-certs/client.crt
      client-key: $workdir/client-certs/client.key
EOF
cat >"$workdir/admission.yaml" <<EOF
apiVersion: apiserver.config.k8s.io/v1
kind: AdmissionConfiguration
plugins:
  - name: MutatingAdmissionWebhook
    configuration:
      apiVersion: apiserver.config.k8s.io/v1
      kind: WebhookAdmissionConfiguration
      kubeConfigFile: $workdir/webhook-kubeconfig
EOF
kubeconfig=$(PROBEGATE_APISERVER_ARGS="--admission-control-config-file=$workdir/admission.yaml" \
    "$root/tests/e2e/start-apiserver.sh" "$workdir")

# probegate's serving certificate for 127.0.0.1, trusting the API server's client CA.
"$PROBEGATE" certs --ip 127.0.0.1 --out "$workdir/webhook-certs" >/dev/null
cp "$workdir/client-certs/client-ca.crt" "$workdir/webhook-certs/client-ca.crt"

echo "uptime before: $(uptime)" >&2
python3 "$root/benches/admission_latency.py" "$kubeconfig" "$PROBEGATE" "$load" "$workdir" \
    "$root/manifests/mutatingwebhookconfiguration.yaml" "$shapes" "$rounds"
echo "uptime after: $(uptime)" >&2
