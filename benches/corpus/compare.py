#!/usr/bin/env python3
"""Compare the probes probegate adds with the ones real projects' maintainers wrote.

For every workload document (Pod, Deployment, StatefulSet, DaemonSet, ReplicaSet, Job,
CronJob) in every *.yaml / *.yml file of the corpus directory (one file per project, see
benches/corpus/README.md), this records each container's liveness/readiness/startup
probes, strips every probe, runs `probegate mutate -f <tmpdir> -o yaml
--include-excluded-namespaces` on the stripped documents, matches the output back to the
input by (kind, namespace, name, container) and compares what probegate added with what the
maintainers wrote. It runs twice: plain, and with namespace paths
(`--namespace-annotation probegate.io/readiness-path=/ready
--namespace-annotation probegate.io/liveness-path=/live`), and prints a Markdown table.

Rows (a port is resolved through the container's named ports; exec compares the program,
the first word of the command that is not a shell, a shell flag or `exec`):
  readiness same handler/port/path  same handler type, port, and httpGet path / exec program
  readiness same port               the added readiness probe checks the maintainers' port
                                    (any handler), or runs the same exec program
  readiness added                   a readiness probe was added at all
  liveness same                     same handler type, port, and path / program
  httpGet where maintainers use none: probegate added an httpGet probe (any kind) to a
                                    container whose maintainers wrote a liveness or readiness
                                    probe, none of them httpGet; must be zero
  httpGet where maintainers wrote no probe: shown, not judged (a namespace's paths are meant
                                    for the namespace's own apps, which have none)
The first four count containers with that maintainers' probe; the last, containers whose
maintainers use no httpGet liveness/readiness.

Usage (Python 3, stdlib + PyYAML):
  python3 benches/corpus/compare.py [--corpus /work/corpus] [--probegate target/debug/probegate]
                                    [--details] [--kube-score PATH]
  --details      one line per container: project, workload, container, image, maintainers'
                 probes vs probegate's, and the pod template's probegate.io/injected record
  --kube-score   run that kube-score on the stripped input and on probegate's output (plain
                 run) and list every object whose grade got worse on some check
Exit status: 0, or 1 if probegate added an httpGet probe where the maintainers use none.
"""
import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile

import yaml

WORKLOADS = {"Pod", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "CronJob"}
PROBES = ("livenessProbe", "readinessProbe", "startupProbe")
HANDLERS = ("httpGet", "tcpSocket", "exec", "grpc")
SHELL_WORDS = {"sh", "bash", "ash", "dash", "zsh", "exec", "env", "timeout", "-c", "-e", "-ec", "-ce",
               "-eu", "-euc", "-euo", "-o", "pipefail", "-x", "-lc", "-l", "/usr/bin/env"}
INJECTED = "probegate.io/injected"
NS_PATHS = ["--namespace-annotation", "probegate.io/readiness-path=/ready",
            "--namespace-annotation", "probegate.io/liveness-path=/live"]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def template(doc):
    """The pod template (metadata + spec) of a workload document, or None."""
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "Pod":
        return doc
    if kind == "CronJob":
        return ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template")
    return spec.get("template")


def containers(doc, init=False):
    t = template(doc) or {}
    s = t.get("spec") or {}
    out = list(s.get("containers") or [])
    if init:
        out += list(s.get("initContainers") or [])
    return out


def key(doc):
    m = doc.get("metadata") or {}
    return (doc.get("kind"), m.get("namespace") or "default", m.get("name"))


def resolve_port(port, container):
    if port is None:
        return None
    if isinstance(port, int):
        return port
    s = str(port)
    if s.isdigit():
        return int(s)
    for p in container.get("ports") or []:
        if p.get("name") == s:
            return p.get("containerPort")
    return s  # unresolved name, compared as text


KEYWORDS = {"if", "then", "else", "elif", "fi", "do", "done", "while", "until", "for", "in", "case", "esac",
            "!", "{", "}", "(", ")", "exec", "export", "set", "source", ".", "true", "false", "timeout", "env",
            "exit", "return", "local", "readonly", "command", "nice"}


def _drop_subst(s):
    """s with every $(...) and `...` replaced by X (balanced, roughly)."""
    out, i, depth = [], 0, 0
    while i < len(s):
        if s.startswith("$(", i):
            depth += 1; i += 2; continue
        if depth and s[i] == "(":
            depth += 1
        elif depth and s[i] == ")":
            depth -= 1
            if depth == 0:
                out.append("X")
        elif not depth:
            out.append(s[i])
        i += 1
    return "".join(out)


def program(cmd):
    """The program an exec probe runs: the first command word that is not a shell, a shell
    keyword or builtin, an assignment or a test; its basename. Roughly."""
    cmd = [str(w) for w in cmd or []]
    while cmd and (os.path.basename(cmd[0]) in SHELL_WORDS or cmd[0].startswith("-")):
        script = os.path.basename(cmd[0]) in ("sh", "bash", "ash", "dash", "zsh")
        cmd = cmd[1:]
        if script:
            while cmd and cmd[0].startswith("-"):
                cmd = cmd[1:]
            if cmd:
                cmd = [cmd[0]]  # the script; its arguments are $0, $1, ...
            break
    if not cmd:
        return None
    text = cmd[0] if len(cmd) == 1 else " ".join(shlex.quote(w) for w in cmd)
    try:
        lex = shlex.shlex(_drop_subst(text).replace("[[", " [ ").replace("]]", " ] "), posix=True,
                          punctuation_chars=";&|<>\n")
        lex.whitespace = " \t\r"
        lex.whitespace_split = True
        words = list(lex)
    except ValueError:
        words = text.split()
    start, test = True, False
    for w in words:
        if w and set(w) <= set(";&|\n"):
            start, test = True, False
            continue
        if test:
            test = w != "]"
            continue
        if not start:
            continue
        if w in ("[", "test"):
            test = True
            continue
        if w in KEYWORDS or os.path.basename(w) in SHELL_WORDS or w.startswith("-") or \
                (re_assign(w)) or w.startswith("$") or w.startswith(("<", ">")) or w.isdigit():
            continue
        return os.path.basename(w)
    return None


def re_assign(w):
    n = w.split("=", 1)[0]
    return "=" in w and n.replace("_", "a").isalnum() and not n[:1].isdigit()


def describe(probe, container):
    """(handler, port, path-or-program) of a probe, or None."""
    if not probe:
        return None
    for h in HANDLERS:
        if h in probe:
            v = probe[h] or {}
            if h == "exec":
                return (h, None, program(v.get("command")))
            port = resolve_port(v.get("port"), container)
            return (h, port, (v.get("path") or "/") if h == "httpGet" else None)
    return ("?", None, None)


def fmt(d):
    if d is None:
        return "-"
    h, port, x = d
    if h == "exec":
        return f"exec:{x or '?'}"
    if h == "httpGet":
        return f"http:{port}{x}"
    return f"{'tcp' if h == 'tcpSocket' else h}:{port}"


def same_port(a, b):
    if a is None or b is None:
        return False
    if a[0] == "exec" or b[0] == "exec":
        return a[0] == b[0] and a[2] == b[2]
    return a[1] is not None and a[1] == b[1]


def load_corpus(corpus):
    """[(project, file, [docs])], workload documents only."""
    out = []
    for f in sorted(os.listdir(corpus)):
        if not f.endswith((".yaml", ".yml")):
            continue
        with open(os.path.join(corpus, f)) as fh:
            docs = [d for d in yaml.safe_load_all(fh) if isinstance(d, dict) and d.get("kind") in WORKLOADS]
        out.append((os.path.splitext(f)[0], f, docs))
    return out


def strip(docs):
    out = []
    for d in docs:
        d = json.loads(json.dumps(d))
        for c in containers(d, init=True):
            for p in PROBES:
                c.pop(p, None)
        out.append(d)
    return out


def run_probegate(binary, stripped_dir, extra):
    cmd = [binary, "mutate", "-f", stripped_dir, "-o", "yaml", "--include-excluded-namespaces"] + extra
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode not in (0,):
        sys.stderr.write(f"compare: {' '.join(cmd)} exited {r.returncode}\n{r.stderr[-4000:]}\n")
        if r.returncode != 1 or not r.stdout:
            sys.exit(2)
    return [d for d in yaml.safe_load_all(r.stdout) if isinstance(d, dict)], r.stderr


def compare(corpus, stripped_by_file, stripped_dir, binary, extra):
    out_docs, stderr = run_probegate(binary, stripped_dir, extra)
    queue = {}
    for d in out_docs:
        queue.setdefault(key(d), []).append(d)
    rows = []
    for project, f, docs in corpus:
        for orig in docs:
            k = key(orig)
            got = queue.get(k) or []
            if not got:
                sys.stderr.write(f"compare: {f}: {k} missing from probegate's output\n")
                continue
            new = got.pop(0)
            t = template(new) or {}
            injected = ((t.get("metadata") or {}).get("annotations") or {}).get(INJECTED)
            new_cs = {c.get("name"): c for c in containers(new)}
            for c in containers(orig):
                n = new_cs.get(c.get("name"), {})
                rows.append({
                    "project": project, "workload": f"{k[0]} {k[1]}/{k[2]}", "container": c.get("name"),
                    "image": c.get("image"),
                    "theirs": {p: describe(c.get(p), c) for p in PROBES},
                    "ours": {p: describe(n.get(p), c) for p in PROBES},
                    "injected": injected,
                })
    return rows, stderr


def tally(rows):
    t = {}
    def add(name, ok, listed=None):
        n, m, lst = t.get(name, (0, 0, []))
        t[name] = (n + bool(ok), m + 1, lst + ([listed] if ok and listed is not None else []))
    for r in rows:
        th, ou = r["theirs"], r["ours"]
        if th["readinessProbe"]:
            a, b = th["readinessProbe"], ou["readinessProbe"]
            add("readiness same handler/port/path", b == a)
            add("readiness same port", same_port(a, b))
            add("readiness added", b is not None)
        if th["livenessProbe"]:
            add("liveness same", ou["livenessProbe"] == th["livenessProbe"])
            # probegate never adds a liveness probe that repeats readiness: this is the part
            # of the row it can reach.
            if th["livenessProbe"] != th["readinessProbe"]:
                add("liveness same, where theirs is not their readiness",
                    ou["livenessProbe"] == th["livenessProbe"])
        checked = [th[p] for p in ("livenessProbe", "readinessProbe") if th[p]]
        bad = any(ou[p] and ou[p][0] == "httpGet" for p in PROBES)
        if checked and not any(c[0] == "httpGet" for c in checked):
            add("httpGet where maintainers use none", bad, r)
        elif not checked:
            add("httpGet where maintainers wrote no probe (shown, not judged)", bad, r)
    return t


ROW_ORDER = ["readiness same handler/port/path", "readiness same port", "readiness added",
             "liveness same", "liveness same, where theirs is not their readiness",
             "httpGet where maintainers use none",
             "httpGet where maintainers wrote no probe (shown, not judged)"]


def cell(v):
    if not v:
        return "-"
    n, m, _ = v
    return f"{n} of {m} ({100.0 * n / m:.0f}%)" if m else "0 of 0"


def detail_line(r):
    th, ou = r["theirs"], r["ours"]
    def both(p):
        return f"{p[:-5]} {fmt(th[p])} vs {fmt(ou[p])}"
    return (f"{r['project']} | {r['workload']} | {r['container']} | {r['image']} | "
            + "; ".join(both(p) for p in PROBES) + f" | injected: {r['injected'] or '-'}")


def kube_score(ks, in_dir, out_text):
    def score(path):
        r = subprocess.run([ks, "score", "-o", "json", path], capture_output=True, text=True)
        if not r.stdout.strip():
            sys.stderr.write(f"compare: kube-score on {path} said nothing (exit {r.returncode}): {r.stderr[-2000:]}\n")
            return {}
        res = {}
        for o in json.loads(r.stdout):
            k = (o["type_meta"]["kind"], (o.get("object_meta") or {}).get("namespace") or "default",
                 (o.get("object_meta") or {}).get("name"), o.get("file_name"))
            res.setdefault(k[:3], []).append({c["check"]["id"]: (c["grade"], len(c.get("comments") or []))
                                             for c in o["checks"] if not c.get("skipped")})
        return res
    files = sorted(os.path.join(in_dir, f) for f in os.listdir(in_dir))
    with tempfile.TemporaryDirectory() as d:
        cat_in = os.path.join(d, "in.yaml")
        with open(cat_in, "w") as fh:
            for f in files:
                fh.write(open(f).read() + "\n---\n")
        cat_out = os.path.join(d, "out.yaml")
        with open(cat_out, "w") as fh:
            fh.write(out_text)
        before, after = score(cat_in), score(cat_out)
    worse, better = [], 0
    for k, blist in before.items():
        alist = after.get(k, [])
        for i, b in enumerate(blist):
            a = alist[i] if i < len(alist) else {}
            for check, (g, n) in b.items():
                ga, na = a.get(check, (g, n))
                better += ga > g
                if ga < g or (ga == g and g <= 5 and na > n):
                    worse.append(f"{k[0]} {k[1]}/{k[2]}: {check} grade {g} ({n} comments) -> {ga} ({na} comments)")
            for check, (ga, na) in a.items():
                if check not in b and ga <= 5:
                    worse.append(f"{k[0]} {k[1]}/{k[2]}: {check} new, grade {ga} ({na} comments)")
    return len(before), worse, better


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default="/work/corpus")
    ap.add_argument("--probegate", default=os.path.join(REPO, "target/debug/probegate"))
    ap.add_argument("--details", action="store_true")
    ap.add_argument("--kube-score", dest="kube_score")
    args = ap.parse_args()

    corpus = load_corpus(args.corpus)
    ncont = sum(len(containers(d)) for _, _, docs in corpus for d in docs)
    with tempfile.TemporaryDirectory(prefix="probegate-corpus-") as tmp:
        stripped = {}
        for project, f, docs in corpus:
            stripped[f] = strip(docs)
            with open(os.path.join(tmp, f), "w") as fh:
                yaml.safe_dump_all(stripped[f], fh, sort_keys=False)
        runs = {}
        for label, extra in (("plain", []), ("with namespace paths", NS_PATHS)):
            rows, stderr = compare(corpus, stripped, tmp, args.probegate, extra)
            runs[label] = (rows, tally(rows), stderr)
        ks = None
        if args.kube_score:
            out_text = subprocess.run([args.probegate, "mutate", "-f", tmp, "-o", "yaml",
                                       "--include-excluded-namespaces"], capture_output=True, text=True).stdout
            ks = kube_score(args.kube_score, tmp, out_text)

    nproj = len(corpus)
    nworkloads = sum(len(docs) for _, _, docs in corpus)
    print(f"Corpus {args.corpus}: {nproj} projects, {nworkloads} workloads, {ncont} containers.\n")
    labels = list(runs)
    print("| | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for row in ROW_ORDER:
        print(f"| {row} | " + " | ".join(cell(runs[l][1].get(row)) for l in labels) + " |")
    for l in labels:
        bad = (runs[l][1].get("httpGet where maintainers use none") or (0, 0, []))[2]
        if bad:
            print(f"\nhttpGet added where the maintainers use none ({l}):")
            for r in bad:
                print("  " + detail_line(r))
    if args.details:
        for l in labels:
            print(f"\n## Details: {l}\n")
            print("project | workload | container | image | maintainers' vs probegate's (liveness; readiness; startup) | injected")
            for r in runs[l][0]:
                print(detail_line(r))
    if ks is not None:
        nobj, worse, better = ks
        print(f"\nkube-score ({nobj} objects, stripped input vs probegate's plain output): "
              f"{len(worse)} check(s) got worse, {better} got a better grade")
        for w in worse:
            print("  " + w)
    bad = any((runs[l][1].get("httpGet where maintainers use none") or (0,))[0] for l in labels)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
