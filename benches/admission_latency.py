"""The measuring half of benches/admission-latency.sh: Pod creates through the real API
server without any webhook and with probegate registered, at each shape, and the tables of
issue #24.

Usage: admission_latency.py KUBECONFIG PROBEGATE LOAD WORKDIR MANIFEST SHAPES ROUNDS
  KUBECONFIG  the e2e admin kubeconfig (bearer token, CA embedded)
  PROBEGATE   the probegate binary; WORKDIR/webhook-certs holds its certificates
  LOAD        the admission-load client (benches/admission-load)
  MANIFEST    manifests/mutatingwebhookconfiguration.yaml, registered by URL
  SHAPES      CREATES/CLIENTS[,CREATES/CLIENTS...], e.g. 1000/100,5000/200,10000/500
  ROUNDS      how many times each shape runs without and with the webhook (alternating
              which goes first)

Each run gets a fresh namespace (labelled probegate.io/injection=enabled, so the webhook
serves it) and its Pods are deleted afterwards, so every run starts from the same number of
stored Pods. This is a shared machine: a run starts once other work has used under 0.2
cores for 5 s (waiting at most 180 s), and a run during which other work used over 0.25
cores on average is run again, at most twice, then kept and marked "disturbed". Measurement only: it fails on a broken setup (the webhook does not mutate, or
mutates when it is not registered), never on a figure.
"""

import base64
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

from e2e_bench import api_tls, free_port, percentile, read_kubeconfig, status_kib

KUBECONFIG, PROBEGATE, LOAD, WORKDIR, MANIFEST = sys.argv[1:6]
SHAPES = [tuple(int(n) for n in shape.split("/")) for shape in sys.argv[6].split(",")]
ROUNDS = int(sys.argv[7])
WEBHOOK = "mutate.probegate.io"
MARKER = "probegate.io/injected"
TICK = os.sysconf("SC_CLK_TCK")


def log(message):
    print(f"admission-latency: {message}", file=sys.stderr, flush=True)


def die(message):
    log(f"error: {message}")
    sys.exit(1)


SERVER, CA_PEM, TOKEN = read_kubeconfig(KUBECONFIG)
API_TLS = api_tls(CA_PEM)


def api(method, path, body=None, content_type="application/json"):
    """One request to the API server: (status, body)."""
    url = urllib.parse.urlparse(SERVER)
    conn = http.client.HTTPSConnection(url.hostname, url.port, context=API_TLS, timeout=120)
    headers = {"Authorization": f"Bearer {TOKEN}", "Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = content_type
    conn.request(method, path, body=body, headers=headers)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def kubectl(*args, stdin=None):
    return subprocess.run(["kubectl", "--kubeconfig", KUBECONFIG, *args], input=stdin,
                          check=True, capture_output=True, text=True).stdout


# --- the processes measured --------------------------------------------------------------

def cpu_seconds(pid):
    """utime + stime of a process, from /proc/PID/stat."""
    stat = open(f"/proc/{pid}/stat").read()
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    return (int(fields[11]) + int(fields[12])) / TICK


def machine_busy():
    """CPU seconds the whole machine has spent busy (all but idle and iowait), /proc/stat."""
    fields = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICK


def reset_peak(pid):
    """Resets VmHWM to the current RSS (Linux 4.0+), so the peak is this run's."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def start_probegate():
    certs = os.path.join(WORKDIR, "webhook-certs")
    webhook, health, metrics = free_port(), free_port(), free_port()
    process = subprocess.Popen(
        [PROBEGATE, "serve", "--addr", f"127.0.0.1:{webhook}",
         "--health-addr", f"127.0.0.1:{health}", "--metrics-addr", f"127.0.0.1:{metrics}",
         "--tls-cert-file", os.path.join(certs, "tls.crt"),
         "--tls-key-file", os.path.join(certs, "tls.key"),
         # As the manifests run it: reviews only from the API server's client certificate.
         "--client-ca-file", os.path.join(certs, "client-ca.crt"),
         "--log-level", "warn"],
        env=dict(os.environ, KUBECONFIG=KUBECONFIG), stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(WORKDIR, "probegate.log"), "w"))
    deadline = time.monotonic() + 60
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", health, timeout=1)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                break
        except OSError:
            pass
        if process.poll() is not None:
            die(f"probegate exited before it was ready (see {WORKDIR}/probegate.log)")
        if time.monotonic() > deadline:
            die("probegate was not ready within 60 s")
        time.sleep(0.05)
    return process, webhook, metrics


def established(port):
    """Server-side ESTABLISHED TCP connections of a loopback port, from /proc/net/tcp: how
    many connections the API server holds open to the webhook."""
    count = 0
    for line in open("/proc/net/tcp").readlines()[1:]:
        fields = line.split()
        if fields[3] == "01" and int(fields[1].split(":")[1], 16) == port:
            count += 1
    return count


def accepted():
    """TCP connections accepted on this machine so far (PassiveOpens in /proc/net/snmp)."""
    lines = [line.split() for line in open("/proc/net/snmp") if line.startswith("Tcp:")]
    return int(lines[1][lines[0].index("PassiveOpens")])


def histogram(text, name, label):
    """(count, sum) of a Prometheus histogram, summed over the series that carry `label`."""
    count = total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "_count") and label in line:
            count += float(line.rsplit(" ", 1)[1])
        elif line.startswith(name + "_sum") and label in line:
            total += float(line.rsplit(" ", 1)[1])
    return count, total


def counter(text, name, label):
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") and label in line)


def apiserver_metrics():
    status, data = api("GET", "/metrics")
    if status != 200:
        die(f"GET /metrics from the API server: {status}")
    text = data.decode()
    label = f'name="{WEBHOOK}"'
    return {"webhook": histogram(text, "apiserver_admission_webhook_admission_duration_seconds", label),
            "fail_open": counter(text, "apiserver_admission_webhook_fail_open_count", label)}


def probegate_metrics(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    return histogram(text, "probegate_admission_review_duration_seconds", "")


# --- the webhook's registration ----------------------------------------------------------

def create_namespace(name):
    body = json.dumps({"apiVersion": "v1", "kind": "Namespace",
                       "metadata": {"name": name, "labels": {"probegate.io/injection": "enabled"}}})
    status, data = api("POST", "/api/v1/namespaces", body)
    if status != 201:
        die(f"creating namespace {name}: {status} {data[:300]!r}")


def dry_run_mutated(namespace):
    """Whether a server-side dry-run create of the measured Pod comes back mutated."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check", "labels": {"app": "web"}},
           "spec": {"containers": [{"name": "web", "image": "example.com/web:1",
                                    "ports": [{"name": "http", "containerPort": 8080}]}]}}
    status, data = api("POST", f"/api/v1/namespaces/{namespace}/pods?dryRun=All", json.dumps(pod))
    if status != 201:
        die(f"dry-run create in {namespace}: {status} {data[:300]!r}")
    stored = json.loads(data)
    return MARKER in stored["metadata"].get("annotations", {}), stored


def wait_until(namespace, mutated, what):
    deadline = time.monotonic() + 60
    while True:
        got, stored = dry_run_mutated(namespace)
        if got == mutated:
            return stored
        if time.monotonic() > deadline:
            die(f"{what}: a dry-run Pod in {namespace} came back "
                f"{'un' if mutated else ''}mutated for 60 s: {json.dumps(stored)[:600]}")
        time.sleep(0.2)


def register(webhook_port):
    config = json.loads(kubectl("create", "--dry-run=client", "-o", "json", "-f", MANIFEST))
    ca = open(os.path.join(WORKDIR, "webhook-certs", "ca.crt"), "rb").read()
    config["webhooks"][0]["clientConfig"] = {"url": f"https://127.0.0.1:{webhook_port}/mutate",
                                             "caBundle": base64.b64encode(ca).decode()}
    kubectl("apply", "-f", "-", stdin=json.dumps(config))
    stored = wait_until("bench-check", True, "after registering probegate")
    annotation = stored["metadata"]["annotations"][MARKER]
    probes = [k for k in ("livenessProbe", "readinessProbe", "startupProbe")
              if k in stored["spec"]["containers"][0]]
    return annotation, probes


def unregister():
    kubectl("delete", "mutatingwebhookconfiguration", "probegate", "--ignore-not-found")
    wait_until("bench-check", False, "after deleting the MutatingWebhookConfiguration")


# --- runs --------------------------------------------------------------------------------

def delete_pods(namespace):
    status, data = api("DELETE", f"/api/v1/namespaces/{namespace}/pods")
    if status != 200:
        die(f"deleting the Pods of {namespace}: {status} {data[:300]!r}")
    deadline = time.monotonic() + 300
    while True:
        _, data = api("GET", f"/api/v1/namespaces/{namespace}/pods?limit=1")
        if not json.loads(data)["items"]:
            return
        if time.monotonic() > deadline:
            die(f"the Pods of {namespace} were still there 300 s after the delete")
        time.sleep(0.5)


QUIET = 0.2  # cores others may use before a run starts
DISTURBED = 0.25  # cores others used during a run that make it count as disturbed
RETRIES = 2  # reruns of a disturbed run


def wait_for_quiet(ours):
    """Waits (at most 180 s) until the machine's other users have used under QUIET cores
    for 5 s in a row: this is a shared build machine."""
    started = time.monotonic()
    calm = 0
    while calm < 5 and time.monotonic() - started < 180:
        busy, mine = machine_busy(), sum(cpu_seconds(pid) for pid in ours)
        time.sleep(1)
        others = machine_busy() - busy - (sum(cpu_seconds(pid) for pid in ours) - mine)
        calm = calm + 1 if others < QUIET else 0
    waited = time.monotonic() - started
    if waited > 6:
        log(f"waited {waited:.0f} s for other work on the machine to quieten"
            + ("" if calm >= 5 else " (it did not; running anyway)"))


def run(creates, clients, namespace, probegate=None):
    """One run, rerun up to RETRIES times while other work on the machine disturbs it."""
    for attempt in range(RETRIES + 1):
        name = namespace if attempt == 0 else f"{namespace}-again{attempt}"
        figures = run_once(creates, clients, name, probegate)
        others = figures["others_cpu"] / figures["wall"]
        figures["disturbed"] = others > DISTURBED
        if not figures["disturbed"]:
            return figures
        log(f"{name}: other work on the machine used {others:.2f} cores meanwhile"
            + ("; running it again" if attempt < RETRIES else "; keeping it, marked disturbed"))
    return figures


def run_once(creates, clients, namespace, probegate=None):
    """One run of the load client: its figures and the processes' costs over it."""
    apiserver = int(open(os.path.join(WORKDIR, "apiserver.pid")).read())
    wait_for_quiet([apiserver] + ([probegate[0].pid] if probegate else []))
    create_namespace(namespace)
    token_file = os.path.join(WORKDIR, "bench-token")
    ca_file = os.path.join(WORKDIR, "apiserver-ca.crt")
    out = os.path.join(WORKDIR, f"{namespace}.txt")
    before = {"api": apiserver_metrics()}
    before["apiserver_cpu"], before["busy"] = cpu_seconds(apiserver), machine_busy()
    if probegate:
        process, metrics_port, webhook_port = probegate
        reset_peak(process.pid)
        before["cpu"] = cpu_seconds(process.pid)
        before["rss"] = status_kib(process.pid, "VmRSS")
        before["reviews"] = probegate_metrics(metrics_port)
    if probegate:
        # The API server's connections to the webhook, sampled four times a second.
        stop, most = threading.Event(), [0]

        def sample():
            while not stop.wait(0.25):
                most[0] = max(most[0], established(webhook_port))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
    loadavg = open("/proc/loadavg").read().split()[0]
    log(f"{namespace}: {creates} creates from {clients} clients"
        f" ({'probegate registered' if probegate else 'no webhook'}; load average {loadavg})")
    opened = accepted()
    load = subprocess.run(
        [LOAD, "-server", SERVER, "-ca", ca_file, "-token", token_file, "-namespace", namespace,
         "-count", str(creates), "-clients", str(clients), "-prefix", "p", "-out", out],
        check=True, stdout=subprocess.PIPE, text=True)
    # Connections accepted during the run other than the clients' own: with the webhook,
    # the API server's new connections to it (on an otherwise quiet machine).
    opened = accepted() - opened - clients
    summary = json.loads(load.stdout)
    if probegate:
        stop.set()
        sampler.join()
    after = {"apiserver_cpu": cpu_seconds(apiserver), "busy": machine_busy()}
    after["api"] = apiserver_metrics()
    lines = [line.split() for line in open(out)]
    latencies = sorted(int(line[1]) / 1000 for line in lines)
    figures = {
        "creates": creates, "clients": clients,
        "ok": sum(1 for line in lines if line[2] == "201"),
        "mutated": sum(1 for line in lines if line[3] == "1"),
        "p50": percentile(latencies, 0.50), "p95": percentile(latencies, 0.95),
        "p99": percentile(latencies, 0.99), "max": latencies[-1],
        "mean": statistics.fmean(latencies),
        "wall": summary["wall_seconds"], "client_cpu": summary["cpu_seconds"],
        "apiserver_cpu": after["apiserver_cpu"] - before["apiserver_cpu"],
        "opened": opened,
    }
    if probegate:
        figures["cpu"] = cpu_seconds(process.pid) - before["cpu"]
    # Everything else the machine ran meanwhile: other users' work (and this driver).
    figures["others_cpu"] = (after["busy"] - before["busy"] - figures["apiserver_cpu"]
                             - figures["client_cpu"] - figures.get("cpu", 0))
    if probegate:
        figures["rss_before"] = before["rss"]
        figures["peak"] = status_kib(process.pid, "VmHWM")
        count, total = (a - b for a, b in zip(probegate_metrics(metrics_port), before["reviews"]))
        figures["reviews"] = count
        figures["review_mean"] = total / count * 1000 if count else 0
        count, total = (a - b for a, b in zip(after["api"]["webhook"], before["api"]["webhook"]))
        figures["calls"] = count
        figures["call_mean"] = total / count * 1000 if count else 0
        figures["fail_open"] = after["api"]["fail_open"] - before["api"]["fail_open"]
        figures["established"] = established(webhook_port)
        figures["most"] = max(most[0], figures["established"])
    log(f"{namespace}: p50 {figures['p50']:.1f} ms, p99 {figures['p99']:.1f} ms, "
        f"{creates / figures['wall']:.0f} creates/s; {figures['ok']} stored, "
        f"{figures['mutated']} mutated; deleting them")
    if probegate and figures["mutated"] != figures["ok"]:
        log(f"warning: only {figures['mutated']} of {figures['ok']} stored Pods were mutated "
            "(failurePolicy Ignore admits a Pod unmutated when the webhook fails or times out)")
    if not probegate and figures["mutated"]:
        die(f"{figures['mutated']} Pods were mutated with no webhook registered")
    delete_pods(namespace)
    return figures


def ms(value):
    return f"{value:.1f}"


def table(shape_runs):
    """The Markdown table of one shape: a column per mode (and round)."""
    creates, clients = shape_runs[0][0]["creates"], shape_runs[0][0]["clients"]
    columns = []
    for n, (without, with_) in enumerate(shape_runs, 1):
        suffix = f", round {n}" if len(shape_runs) > 1 else ""
        mark = lambda f: " (disturbed)" if f["disturbed"] else ""
        columns.append((f"no webhook{suffix}{mark(without)}", without, None))
        columns.append((f"probegate{suffix}{mark(with_)}", with_, without))
    rows = [
        ("create latency p50 / p95 / p99 (ms)",
         lambda f, b: f"{ms(f['p50'])} / {ms(f['p95'])} / {ms(f['p99'])}"),
        ("mean / max (ms)", lambda f, b: f"{ms(f['mean'])} / {ms(f['max'])}"),
        ("added by the webhook: p50 / p95 / p99 / mean (ms)",
         lambda f, b: "" if b is None else
         " / ".join(f"{f[k] - b[k]:+.1f}" for k in ("p50", "p95", "p99", "mean"))),
        ("creates/s (wall time)", lambda f, b: f"{f['creates'] / f['wall']:.0f} ({f['wall']:.1f} s)"),
        ("stored (201) / mutated", lambda f, b: f"{f['ok']} / {f['mutated']}"),
        ("probegate CPU seconds (per 1,000 reviews)",
         lambda f, b: "" if b is None else f"{f['cpu']:.2f} ({f['cpu'] / f['reviews'] * 1000:.3f})"
         if f["reviews"] else f"{f['cpu']:.2f}"),
        ("probegate RSS before / peak (MiB)",
         lambda f, b: "" if b is None else f"{f['rss_before'] / 1024:.1f} / {f['peak'] / 1024:.1f}"),
        ("probegate's own review time, mean (ms)",
         lambda f, b: "" if b is None else f"{f['review_mean']:.3f} ({f['reviews']:.0f} reviews)"),
        ("API server's webhook call, mean (ms)",
         lambda f, b: "" if b is None else
         f"{f['call_mean']:.1f} ({f['calls']:.0f} calls, {f['fail_open']:.0f} failed open)"),
        ("API server to probegate: connections open, most / at the end",
         lambda f, b: "" if b is None else f"{f['most']} / {f['established']}"),
        ("TCP connections accepted during the run, less the clients'",
         lambda f, b: f"{f['opened']}"),
        ("API server CPU seconds", lambda f, b: f"{f['apiserver_cpu']:.1f}"),
        ("load client CPU seconds", lambda f, b: f"{f['client_cpu']:.1f}"),
        ("CPU seconds of everything else on the machine (cores)",
         lambda f, b: f"{f['others_cpu']:.1f} ({f['others_cpu'] / f['wall']:.2f})"),
    ]
    lines = [f"| {creates:,} creates, {clients} clients | " + " | ".join(c[0] for c in columns) + " |",
             "|---|" + "---|" * len(columns)]
    for name, cell in rows:
        lines.append(f"| {name} | " + " | ".join(cell(f, b) for _, f, b in columns) + " |")
    return "\n".join(lines)


def summary(results):
    """One row per shape: each figure the median over its rounds (the value, with one)."""
    def med(runs, key):
        return statistics.median(key(run) for run in runs)

    lines = [f"| shape (median of {ROUNDS} round{'s' if ROUNDS > 1 else ''}) | no webhook: p50 / p95 / p99 / mean (ms) "
             "| probegate: p50 / p95 / p99 / mean (ms) | added: p50 / p95 / p99 / mean (ms) "
             "| creates/s, none / probegate | probegate CPU s (per 1,000 reviews) | probegate peak RSS (MiB) |",
             "|---|---|---|---|---|---|---|"]
    for shape_runs in results:
        without = [w for w, _ in shape_runs]
        with_ = [p for _, p in shape_runs]
        keys = ("p50", "p95", "p99", "mean")
        creates, clients = without[0]["creates"], without[0]["clients"]
        cells = [
            f"{creates:,} creates, {clients} clients",
            " / ".join(ms(med(without, lambda f, k=k: f[k])) for k in keys),
            " / ".join(ms(med(with_, lambda f, k=k: f[k])) for k in keys),
            " / ".join(f"{med(shape_runs, lambda r, k=k: r[1][k] - r[0][k]):+.1f}" for k in keys),
            f"{med(without, lambda f: f['creates'] / f['wall']):.0f} / {med(with_, lambda f: f['creates'] / f['wall']):.0f}",
            f"{med(with_, lambda f: f['cpu']):.2f} ({med(with_, lambda f: f['cpu'] / f['reviews'] * 1000):.3f})",
            f"{max(f['peak'] for f in with_) / 1024:.1f} (highest)",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main():
    with open(os.path.join(WORKDIR, "bench-token"), "w") as f:
        f.write(TOKEN)
    with open(os.path.join(WORKDIR, "apiserver-ca.crt"), "w") as f:
        f.write(CA_PEM)
    create_namespace("bench-check")
    process, webhook_port, metrics_port = start_probegate()
    try:
        probegate = (process, metrics_port, webhook_port)
        annotation, probes = register(webhook_port)
        log(f"probegate mutates: {MARKER}={annotation!r}, adds {', '.join(probes)}")
        # Warm-up, not reported: both paths once, at the first shape's clients.
        creates, clients = SHAPES[0]
        warm = min(creates, 500)
        run(warm, clients, "bench-warmup-probegate", probegate)
        unregister()
        run(warm, clients, "bench-warmup-none")
        results = []
        for creates, clients in SHAPES:
            shape_runs = []
            for n in range(1, ROUNDS + 1):
                # Odd rounds run without the webhook first, even rounds with it first, so a
                # drift of the machine over a shape does not always favour the same side.
                name = f"bench-{creates}x{clients}-r{n}"
                if n % 2:
                    without = run(creates, clients, f"{name}-none")
                    register(webhook_port)
                    with_ = run(creates, clients, f"{name}-probegate", probegate)
                    unregister()
                else:
                    register(webhook_port)
                    with_ = run(creates, clients, f"{name}-probegate", probegate)
                    unregister()
                    without = run(creates, clients, f"{name}-none")
                shape_runs.append((without, with_))
            results.append(shape_runs)
            print(table(shape_runs) + "\n", flush=True)
        print(summary(results), flush=True)
        log(f"probegate RSS at the end: {status_kib(process.pid, 'VmRSS') / 1024:.1f} MiB")
    finally:
        process.terminate()
        process.wait()


main()
