"""What the measuring scripts beside the end-to-end API server share (cluster_scale.py,
admission_latency.py, audit_scale.py): its kubeconfig, a connection to it, free ports, and a
process's figures."""

import base64
import http.client
import socket
import ssl


def read_kubeconfig(path):
    """(server URL, CA certificate PEM, bearer token) of the e2e kubeconfig: flat YAML
    written by tests/e2e/start-apiserver.sh, one cluster, one user."""
    fields = {}
    for line in open(path):
        key, _, value = line.strip().partition(": ")
        fields.setdefault(key, value)
    ca_pem = base64.b64decode(fields["certificate-authority-data"]).decode()
    return fields["server"], ca_pem, fields["token"]


def api_tls(ca_pem):
    """TLS to the API server, trusting its CA; its certificate names no loopback host."""
    context = ssl.create_default_context(cadata=ca_pem)
    context.check_hostname = False
    return context


class Api:
    """One kept-alive connection to the API server, with the kubeconfig's bearer token."""

    def __init__(self, host, port, tls, token, timeout=None):
        self.token = token
        self.conn = http.client.HTTPSConnection(host, port, context=tls, timeout=timeout)

    def call(self, method, path, body=None, content_type="application/json",
             accept="application/json"):
        headers = {"Authorization": f"Bearer {self.token}", "Accept": accept}
        if body is not None:
            headers["Content-Type"] = content_type
        self.conn.request(method, path, body=body, headers=headers)
        response = self.conn.getresponse()
        data = response.read()
        if response.status >= 300:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:300]!r}")
        return data


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kib(pid, field):
    """A kB figure of /proc/PID/status (VmRSS, VmHWM); 0 if absent."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]
