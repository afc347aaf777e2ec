"""The seeding half of benches/audit-scale.sh: gives the Pods it created the status a kubelet
would have written, and every 10th Pod the Events of a liveness restart, so the audit's
start-up measurement (issue #25) has data to read.

Usage: audit_scale.py KUBECONFIG

Lists the Pods in the scale-N namespaces, then, over a few kept-alive connections at once:
  * merge-patches each Pod's status subresource (PATCH .../pods/NAME/status): phase Running,
    PodScheduled/Initialized/ContainersReady/Ready conditions True, and a containerStatuses
    entry for container "app" (ready, started, state.running.startedAt 5 to 59 minutes ago,
    restartCount 0). ContainersReady and Ready turn True 2 to 90 s after startedAt.
  * every 10th Pod (by its index across namespaces, from the scale-N and app-I names)
    restarted once: restartCount 1 and lastState.terminated (exitCode 137, reason Error,
    ran 1 to 5 minutes, finished 10 s before the running container started), and two
    Events in its namespace: Unhealthy ("Liveness probe failed: ...", Warning, count 3, the
    20 s up to the kill) and Killing ("Container app failed liveness probe, will be
    restarted", Normal, count 1, 30 s before finishedAt: the grace period, then SIGKILL),
    source kubelet, involvedObject the Pod (uid included) and fieldPath spec.containers{app}.
Every figure is deterministic from the Pod's index; the times are relative to now. Fails on
any request the API server refuses (this is set-up, not measurement) and prints one line of
what it did and how long it took on stderr.
"""

import concurrent.futures
import datetime
import hashlib
import json
import re
import sys
import threading
import time
import urllib.parse

import e2e_bench
from e2e_bench import api_tls, read_kubeconfig

KUBECONFIG = sys.argv[1]
CONNECTIONS = 4  # kept-alive connections at once: the API server needs the 2 cores too
RESTART_EVERY = 10

SERVER, CA_PEM, TOKEN = read_kubeconfig(KUBECONFIG)
_URL = urllib.parse.urlparse(SERVER)
HOST, PORT = _URL.hostname, _URL.port
API_TLS = api_tls(CA_PEM)
NAME = re.compile(r"scale-(\d+)/app-(\d+)-5d8f-x")


def Api():
    """A connection to the e2e API server; a minute's timeout, so a stuck request fails."""
    return e2e_bench.Api(HOST, PORT, API_TLS, TOKEN, timeout=60)


def pods():
    """(namespace, name, uid) of the Pods in scale-N namespaces, in pages of 500."""
    api, token, found = Api(), "", []
    while True:
        query = "limit=500" + (f"&continue={urllib.parse.quote(token)}" if token else "")
        page = json.loads(api.call("GET", f"/api/v1/pods?{query}"))
        for pod in page["items"]:
            meta = pod["metadata"]
            if meta["namespace"].startswith("scale-"):
                found.append((meta["namespace"], meta["name"], meta["uid"]))
        token = page["metadata"].get("continue", "")
        if not token:
            return found


def index(namespace, name, per):
    """The Pod's place in creation order: audit-scale.sh fills scale-1 with app-0..app-(per-1),
    then scale-2, and so on."""
    match = NAME.fullmatch(f"{namespace}/{name}")
    if not match:
        raise RuntimeError(f"unexpected Pod {namespace}/{name}")
    return (int(match[1]) - 1) * per + int(match[2])


def stamp(t):
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def digest(*parts):
    return hashlib.sha256("/".join(str(p) for p in parts).encode()).hexdigest()


def seed(now, namespace, name, uid, i):
    """Status for one Pod, and its Events if it restarted: the requests to make."""
    s = datetime.timedelta(seconds=1)
    started = now - (5 + (i * 7) % 55) * 60 * s
    ready = started + (2 + (i * 37) % 89) * s
    restarted = i % RESTART_EVERY == 0
    first_start = started
    status = {"name": "app", "image": "example.com/app:1",
              "imageID": f"example.com/app@sha256:{digest('image')}",
              "containerID": f"containerd://{digest(namespace, name, 'running')}",
              "ready": True, "started": True, "restartCount": 0,
              "state": {"running": {"startedAt": stamp(started)}}, "lastState": {}}
    events = []
    if restarted:
        finished = started - 10 * s  # the kubelet's first back-off
        first_start = finished - (60 + (i * 13) % 241) * s
        killed = finished - 30 * s  # terminationGracePeriodSeconds, then SIGKILL: 137
        status["restartCount"] = 1
        status["lastState"] = {"terminated": {
            "exitCode": 137, "reason": "Error", "startedAt": stamp(first_start),
            "finishedAt": stamp(finished),
            "containerID": f"containerd://{digest(namespace, name, 'terminated')}"}}
        for reason, kind, message, count, first in (
                ("Unhealthy", "Warning", "Liveness probe failed: HTTP probe failed with statuscode: 503",
                 3, killed - 20 * s),
                ("Killing", "Normal", "Container app failed liveness probe, will be restarted",
                 1, killed)):
            events.append({
                "apiVersion": "v1", "kind": "Event",
                "metadata": {"name": f"{name}.{digest(namespace, name, reason)[:16]}",
                             "namespace": namespace},
                "involvedObject": {"apiVersion": "v1", "kind": "Pod", "namespace": namespace,
                                   "name": name, "uid": uid, "fieldPath": "spec.containers{app}"},
                "reason": reason, "message": message, "type": kind,
                "source": {"component": "kubelet"}, "reportingComponent": "kubelet",
                "count": count, "firstTimestamp": stamp(first), "lastTimestamp": stamp(killed)})
    scheduled = first_start - 2 * s
    conditions = [
        {"type": "PodScheduled", "status": "True", "lastTransitionTime": stamp(scheduled)},
        {"type": "Initialized", "status": "True", "lastTransitionTime": stamp(scheduled)},
        {"type": "ContainersReady", "status": "True", "lastTransitionTime": stamp(ready)},
        {"type": "Ready", "status": "True", "lastTransitionTime": stamp(ready)},
    ]
    patch = {"status": {"phase": "Running", "startTime": stamp(scheduled),
                        "conditions": conditions, "containerStatuses": [status]}}
    return patch, events


def main():
    started = time.monotonic()
    found = pods()
    if not found:
        print("audit_scale.py: no Pods in scale-N namespaces; nothing to seed", file=sys.stderr)
        return
    # The first namespace holds the most (audit-scale.sh rounds up): its count is `per`.
    per = sum(1 for namespace, _, _ in found if namespace == "scale-1")
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    local = threading.local()

    def one(pod):
        namespace, name, uid = pod
        if not hasattr(local, "api"):
            local.api = Api()
        patch, events = seed(now, namespace, name, uid, index(namespace, name, per))
        local.api.call("PATCH", f"/api/v1/namespaces/{namespace}/pods/{name}/status",
                       json.dumps(patch), "application/merge-patch+json")
        for event in events:
            local.api.call("POST", f"/api/v1/namespaces/{namespace}/events", json.dumps(event))
        return len(events), bool(events)

    with concurrent.futures.ThreadPoolExecutor(CONNECTIONS) as pool:
        done = list(pool.map(one, found))
    events = sum(n for n, _ in done)
    restarted = sum(1 for _, r in done if r)
    print(f"seeded the status of {len(done)} Pods ({restarted} restarted once) and {events} Events "
          f"in {time.monotonic() - started:.1f} s ({CONNECTIONS} connections)", file=sys.stderr)


main()
