"""The measuring half of benches/cluster-scale.sh: fills the API server, starts
`probegate serve` in cluster mode, and prints the table of issue #18.

Usage: cluster_scale.py KUBECONFIG PROBEGATE WORKDIR NAMESPACES ANNOTATED SERVICES
Talks to the API server with the kubeconfig's bearer token and CA (loopback only); to
probegate over TLS without verification (its self-signed certificate). Measurement only:
it never fails on a figure.
"""

import base64
import concurrent.futures
import http.client
import json
import os
import random
import ssl
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

import e2e_bench
from e2e_bench import api_tls, free_port, percentile, read_kubeconfig, status_kib

KUBECONFIG, PROBEGATE, WORKDIR = sys.argv[1:4]
NAMESPACES, ANNOTATED, SERVICES = (int(a) for a in sys.argv[4:7])
PER_FILE = 200  # namespaces per List file
PARALLEL = 6  # kubectl create processes at once
REVIEWS = 3000
CHANGES_SEEN = 200  # namespace changes timed
CHURN = 3000  # other namespace changes made meanwhile


SERVER, CA_PEM, TOKEN = read_kubeconfig(KUBECONFIG)
_URL = urllib.parse.urlparse(SERVER)
HOST, PORT = _URL.hostname, _URL.port
API_TLS = api_tls(CA_PEM)


class Api(e2e_bench.Api):
    """A connection to the e2e API server, which also sets namespace annotations."""

    def __init__(self):
        super().__init__(HOST, PORT, API_TLS, TOKEN)

    def annotate(self, namespace, key, value):
        patch = json.dumps({"metadata": {"annotations": {key: value}}})
        self.call("PATCH", f"/api/v1/namespaces/{namespace}", patch,
                  content_type="application/merge-patch+json")


def ns_name(i):
    return f"scale-{i:05d}"


def fill():
    """List files of PER_FILE namespaces and their Services, created in parallel."""
    per_ns = SERVICES // NAMESPACES
    extra = SERVICES - per_ns * NAMESPACES
    files = []
    sizes = []
    for start in range(0, NAMESPACES, PER_FILE):
        items = []
        for i in range(start, min(start + PER_FILE, NAMESPACES)):
            annotations = {"example.com/owner": f"team-{i % 40}"}
            if i < ANNOTATED:
                annotations["probegate.io/probes"] = "readiness"
                annotations["probegate.io/readiness-gates"] = "example.com/lb"
            items.append({"apiVersion": "v1", "kind": "Namespace",
                          "metadata": {"name": ns_name(i), "labels": {"team": f"team-{i % 40}"},
                                       "annotations": annotations}})
        for i in range(start, min(start + PER_FILE, NAMESPACES)):
            for s in range(per_ns + (1 if i < extra else 0)):
                app = f"app-{s}"
                service = {"apiVersion": "v1", "kind": "Service",
                           "metadata": {"name": app, "namespace": ns_name(i),
                                        "labels": {"app": app, "team": f"team-{i % 40}",
                                                   "app.kubernetes.io/part-of": "scale"},
                                        "annotations": {"example.com/owner": f"team-{i % 40}"}},
                           # Headless: the e2e API server's Service IP range is a /24.
                           "spec": {"clusterIP": "None", "selector": {"app": app},
                                    "ports": [{"name": "http", "port": 80, "targetPort": "http"},
                                              {"name": "metrics", "port": 9090,
                                               "targetPort": "metrics"}]}}
                sizes.append(len(json.dumps(service)))
                items.append(service)
        path = os.path.join(WORKDIR, f"fill-{start:05d}.json")
        with open(path, "w") as f:
            json.dump({"apiVersion": "v1", "kind": "List", "items": items}, f)
        files.append(path)
    started = time.monotonic()

    def create(path):
        subprocess.run(["kubectl", "--kubeconfig", KUBECONFIG, "create", "-f", path],
                       check=True, stdout=subprocess.DEVNULL)

    with concurrent.futures.ThreadPoolExecutor(PARALLEL) as pool:
        list(pool.map(create, files))
    took = time.monotonic() - started
    size = statistics.mean(sizes) if sizes else 0
    print(f"filled {NAMESPACES} namespaces ({ANNOTATED} annotated) and {SERVICES} Services "
          f"(about {size:.0f} bytes of JSON each as sent) in {took:.1f} s", file=sys.stderr)


def list_time(path, accept):
    """Seconds for the API server to list `path` in pages of 500, as the watchers do."""
    api = Api()
    started = time.monotonic()
    token, count = "", 0
    while True:
        query = "limit=500" + (f"&continue={urllib.parse.quote(token)}" if token else "")
        page = json.loads(api.call("GET", f"{path}?{query}", accept=accept))
        count += len(page["items"])
        token = page["metadata"].get("continue", "")
        if not token:
            return time.monotonic() - started, count


def start_probegate():
    ports = [free_port() for _ in range(3)]
    env = dict(os.environ, KUBECONFIG=KUBECONFIG)
    started = time.monotonic()
    process = subprocess.Popen(
        [PROBEGATE, "serve", "--addr", f"127.0.0.1:{ports[0]}",
         "--health-addr", f"127.0.0.1:{ports[1]}", "--metrics-addr", f"127.0.0.1:{ports[2]}",
         "--log-level", "warn"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(WORKDIR, "probegate.log"), "w"))
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", ports[1], timeout=1)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                break
        except OSError:
            pass
        if process.poll() is not None:
            raise RuntimeError("probegate exited before it was ready")
        time.sleep(0.005)
    return process, ports[0], time.monotonic() - started


class Webhook:
    """One kept-alive TLS connection to probegate's webhook."""

    def __init__(self, port):
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        self.conn = http.client.HTTPSConnection("127.0.0.1", port, context=context)
        self.uid = 0

    def review(self, namespace):
        """Seconds the review took, and the probes its patch adds."""
        self.uid += 1
        pod = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "web", "namespace": namespace, "labels": {"app": "app-0"}},
               "spec": {"containers": [{"name": "app", "image": "example.com/app:1",
                                        "ports": [{"name": "http", "containerPort": 8080}]}]}}
        body = json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                           "request": {"uid": f"u{self.uid}", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                                       "resource": {"group": "", "version": "v1", "resource": "pods"},
                                       "namespace": namespace, "operation": "CREATE",
                                       "userInfo": {"username": "bench"}, "object": pod}})
        started = time.perf_counter()
        self.conn.request("POST", "/mutate", body=body, headers={"Content-Type": "application/json"})
        data = self.conn.getresponse().read()
        took = time.perf_counter() - started
        patch = json.loads(data)["response"].get("patch", "")
        patch = base64.b64decode(patch).decode() if patch else ""
        return took, {kind for kind in ("liveness", "readiness", "startup") if f"/{kind}Probe" in patch}


def reviews(port):
    webhook = Webhook(port)
    for i in range(200):  # warm-up: connection, caches, allocator
        webhook.review(ns_name(i % max(ANNOTATED, 1)))
    times = [webhook.review(ns_name(random.randrange(NAMESPACES)))[0] for _ in range(REVIEWS)]
    return percentile(times, 0.5), percentile(times, 0.99)


def churn(stop, made):
    """Changes other namespaces' annotations until told to stop."""
    api = Api()
    while not stop.is_set() and made[0] < CHURN:
        i = random.randrange(NAMESPACES)
        api.annotate(ns_name(i), "example.com/churn", str(made[0]))
        made[0] += 1


def shows(added, want, other):
    """Whether a review's probes follow `probegate.io/probes: want` (a liveness probe comes
    with a startup probe, so the set is not compared whole)."""
    return want in added and other not in added


def changes_seen(port):
    """From a namespace change's PATCH response to the first review that reflects it."""
    api, webhook = Api(), Webhook(port)
    stop, made = threading.Event(), [0]
    churner = threading.Thread(target=churn, args=(stop, made))
    churner.start()
    delays = []
    for n in range(CHANGES_SEEN):
        namespace = ns_name(n % NAMESPACES)
        # Every namespace starts with readiness (annotated) or all three probes: the first
        # round makes them liveness, the next readiness, and so on, so each is a change.
        want, other = (("liveness", "readiness"), ("readiness", "liveness"))[(n // NAMESPACES) % 2]
        api.annotate(namespace, "probegate.io/probes", want)
        changed = time.monotonic()
        while not shows(webhook.review(namespace)[1], want, other):
            if time.monotonic() - changed > 5:
                break
        else:
            delays.append(time.monotonic() - changed)
    stop.set()
    churner.join()
    return delays, made[0]


def main():
    fill()
    list_ns, count_ns = list_time("/api/v1/namespaces",
                                  "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")
    list_svc, count_svc = list_time("/api/v1/services", "application/json")
    process, port, ready = start_probegate()
    rss_ready = status_kib(process.pid, "VmRSS")
    p50, p99 = reviews(port)
    delays, churned = changes_seen(port)
    rss_after = status_kib(process.pid, "VmRSS")
    peak = status_kib(process.pid, "VmHWM")
    process.terminate()
    process.wait()
    mib = lambda kib: f"{kib / 1024:.0f} MiB"
    rows = [
        ("API server lists them (pages of 500)",
         f"{list_ns:.2f} s namespaces ({count_ns}, metadata) + {list_svc:.2f} s Services ({count_svc})"),
        ("start to `/readyz` 200", f"{ready:.2f} s"),
        ("RSS at ready / peak / after churn", f"{mib(rss_ready)} / {mib(peak)} / {mib(rss_after)}"),
        ("reviews p50 / p99", f"{p50 * 1000:.2f} / {p99 * 1000:.2f} ms ({REVIEWS} reviews, one connection)"),
        ("a namespace change seen by the next review",
         f"p50 {percentile(delays, 0.5) * 1000:.1f} ms, max {max(delays) * 1000:.1f} ms "
         f"({len(delays)} of {CHANGES_SEEN} changes seen, {churned} other changes meanwhile)"
         if delays else "none seen"),
    ]
    print(f"| {NAMESPACES} namespaces ({ANNOTATED} annotated), {SERVICES} Services | |")
    print("|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


main()
