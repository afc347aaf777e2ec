#!/usr/bin/env bash
# audit-scale.sh [DEPLOYMENTS] [NAMESPACES] [PODS] — measure `probegate audit -A` against the
# end-to-end kube-apiserver (tests/e2e/start-apiserver.sh) holding DEPLOYMENTS Deployments
# (default 2000) spread over NAMESPACES namespaces (default 50), each with a headless Service (the e2e
# API server's Service IP range is a /24), the ReplicaSet `NAME-5d8f` the Deployment
# controller would have made (controller ownerReference to the Deployment, made-up uid; the
# e2e API server runs no controllers) and, if PODS is 1 (the default), one Pod each owned by
# that ReplicaSet. No kubelet runs either, so benches/audit_scale.py then writes each Pod's
# status as one would (status subresource, merge patch, 4 connections at once): Running,
# container "app" running for 5 to 59 minutes and ready, ContainersReady 2 to 90 s after it
# started; every 10th Pod restarted once after a failed liveness probe (restartCount 1,
# lastState.terminated exit 137, and an Unhealthy and a Killing Event from the kubelet), the
# data of the start-up measurement (issue #25). It prints what the API server holds and how
# long creating and seeding took, then the wall time and peak RSS (GNU time's "Maximum
# resident set size") of three runs of `probegate audit -A -o json` and each run's summary.
# Needs what the e2e suite needs (Go on a first run, kubectl), python3 and /usr/bin/time.
# Results go in docs/benchmarks/ by hand: this is measurement, never a test.
set -euo pipefail
deployments=${1:-2000}
namespaces=${2:-50}
pods=${3:-1}
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --manifest-path "$root/Cargo.toml" >&2
binary=$root/target/release/probegate
workdir=$(mktemp -d /tmp/probegate-audit-scale.XXXXXX)
trap '"$root/tests/e2e/stop-apiserver.sh" "$workdir" >/dev/null 2>&1 || true; rm -rf "$workdir"' EXIT
kubeconfig=$("$root/tests/e2e/start-apiserver.sh" "$workdir")
kubectl() { command kubectl --kubeconfig "$kubeconfig" "$@"; }

# One List file per namespace, created in one call each: fast, and the API server sees
# ordinary creates.
per=$(( (deployments + namespaces - 1) / namespaces ))
made=0
creating=$EPOCHREALTIME
for n in $(seq 1 "$namespaces"); do
    ns=scale-$n
    python3 - "$ns" "$per" "$(( deployments - made ))" "$pods" "$made" >"$workdir/$ns.json" <<'PY'
import json, sys
ns, per, left, pods, made = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1", int(sys.argv[5])
items = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}]
for i in range(min(per, left)):
    name = f"app-{i}"
    labels = {"app": name}
    items.append({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns},
                  "spec": {"clusterIP": "None", "selector": labels, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}})
    items.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
                  "spec": {"selector": {"matchLabels": labels}, "template": {"metadata": {"labels": labels},
                  "spec": {"containers": [{"name": "app", "image": "example.com/app:1",
                           "args": ["--metrics-addr=:9090", "--enable-metrics=false"],
                           "ports": [{"name": "http", "containerPort": 8080}, {"name": "metrics", "containerPort": 9090}],
                           # 35 s of liveness before the first kill: of the seeded starts (2 to
                           # 90 s) those over 45 s read as readiness changing later, the rest are
                           # measured, and some come close enough to the budget to be findings.
                           "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}},
                           "livenessProbe": {"httpGet": {"path": "/healthz", "port": "http"}, "initialDelaySeconds": 5},
                           "env": [{"name": f"VAR_{k}", "value": "x" * 40} for k in range(20)]}]}}}})
    deployment = items[-1]
    # The ReplicaSet the Deployment controller would make (none runs here): the same
    # template with the pod-template-hash label, controlled by the Deployment (made-up uid).
    hashed = dict(labels, **{"pod-template-hash": "5d8f"})
    template = {"metadata": {"labels": hashed}, "spec": deployment["spec"]["template"]["spec"]}
    items.append({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                  "metadata": {"name": f"{name}-5d8f", "namespace": ns, "labels": hashed,
                               "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": name,
                               "uid": f"00000000-0000-0000-0002-{made + i:012d}", "controller": True}]},
                  "spec": {"replicas": 1, "selector": {"matchLabels": hashed}, "template": template}})
    if pods:
        items.append({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"{name}-5d8f-x", "namespace": ns,
                      "labels": hashed, "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                      "name": f"{name}-5d8f", "uid": "00000000-0000-0000-0000-000000000001", "controller": True}]},
                      "spec": template["spec"]})
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
PY
    made=$(( made + (per < deployments - made ? per : deployments - made) ))
    kubectl create -f "$workdir/$ns.json" >/dev/null
done
seeding=$EPOCHREALTIME
# Pod statuses and restart Events, as a kubelet would have written them (none runs here).
if [[ $pods == 1 ]]; then
    python3 "$root/benches/audit_scale.py" "$kubeconfig"
fi
seeded=$EPOCHREALTIME
count() { kubectl get "$@" -A --no-headers | wc -l; }
took() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f s", b - a }'; }
echo "created $(count deployments) Deployments, $(count replicasets) ReplicaSets," \
    "$(count pods --field-selector status.phase=Running) Pods with status (of $(count pods))" \
    "and $(count events --field-selector source=kubelet) Events in $namespaces namespaces" \
    "(creating them $(took "$creating" "$seeding"), seeding statuses and Events $(took "$seeding" "$seeded"))" >&2

for run in 1 2 3; do
    /usr/bin/time -f "run $run: wall %e s, peak RSS %M KiB, exit %x" \
        "$binary" audit --kubeconfig "$kubeconfig" -A -o json >"$workdir/report.json" || true
    python3 -c 'import collections,json,sys; r=json.load(open(sys.argv[1])); print("  ", r["summary"]); print("   by type:", dict(collections.Counter(f["type"] for f in r["findings"])), "startups:", len(r.get("startups", [])))' "$workdir/report.json"
done
