#!/usr/bin/env bash
# probegate beside a null server, driven by outside load generators: h2load (nghttp2-client)
# and wrk, both from Debian, so the figures do not rest on benches/load.rs's own generator.
#
# Usage: benches/outside-load.sh [SECONDS]     (SECONDS per run, default 10)
#
# It builds the release binary and the load bench, makes a certificate with `probegate
# certs`, starts `probegate serve --standalone` (TLS, metrics off, logs at warn) and the load
# bench's null server (`--null-server`: the same accept loop, rustls configuration, HTTP/1.1
# stack and request guards, answering a fixed AdmissionReview), both pinned to core 0, then
# drives each with `h2load --h1 -c 16` and `wrk -c 16` pinned to core 1 (HTTPS, HTTP/1.1,
# kept-alive connections, one generator thread) on the bench's six review bodies
# (`--write-bodies`). It prints requests per second, the server's CPU microseconds per
# request (/proc/PID/stat) and probegate's throughput as a share of the null server's.
# Not a test and not in CI: read the figures, never assert them.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}

missing=()
command -v h2load >/dev/null || missing+=(nghttp2-client)
command -v wrk >/dev/null || missing+=(wrk)
command -v taskset >/dev/null || missing+=(util-linux)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
    echo "error: missing load tools; on Debian or Ubuntu: sudo apt-get install ${missing[*]}" >&2
    exit 1
fi
if (($(nproc) < 2)); then
    echo "error: needs two cores (servers on core 0, the generator on core 1)" >&2
    exit 1
fi

echo "building (release)..." >&2
cargo build --release --locked --bin probegate >&2
built=$(cargo bench --locked --bench load --no-run 2>&1) || {
    echo "$built" >&2
    exit 1
}
bench=$(sed -n 's/.*Executable benches\/load.rs (\(.*\))$/\1/p' <<<"$built")
if [[ ! -x $bench ]]; then
    echo "error: could not find the load bench's executable" >&2
    exit 1
fi
probegate=target/release/probegate

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$probegate" certs --out "$work" --dns localhost --ip 127.0.0.1 >/dev/null
mkdir "$work/bodies"
"$bench" --write-bodies "$work/bodies"

# Waits until FILE has a line matching PATTERN (the server says where it listens), up to 30 s.
wait_for() {
    local file=$1 pattern=$2
    for _ in $(seq 300); do
        if grep -q "$pattern" "$file" 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    echo "error: no line matching '$pattern' in $file:" >&2
    cat "$file" >&2
    exit 1
}

taskset -c 0 "$probegate" serve --standalone --addr 127.0.0.1:0 --health-addr 127.0.0.1:0 \
    --no-metrics --log-format json --log-level warn,probegate::server=info \
    --tls-cert-file "$work/tls.crt" --tls-key-file "$work/tls.key" 2>"$work/probegate.log" &
pids+=($!)
probegate_pid=$!
taskset -c 0 "$bench" --null-server "$work" >"$work/null.addr" 2>"$work/null.log" &
pids+=($!)
null_pid=$!
wait_for "$work/probegate.log" '"message":"listening"'
wait_for "$work/null.addr" '^127\.0\.0\.1:'
declare -A url pid
url[probegate]="https://$(sed -n 's/.*"webhook":"\([^"]*\)".*/\1/p' "$work/probegate.log" | head -n1)/mutate"
url[null]="https://$(head -n1 "$work/null.addr")/mutate"
pid[probegate]=$probegate_pid
pid[null]=$null_pid

# The bench's bodies: a Pod review, a 10.9 KB Deployment, a 97.6 KB pod template, and three
# reviews captured from a real kube-apiserver (tests/capture_reviews.rs).
fixtures=(pod deployment-10k template-100k real-apply real-ssa-53k real-pod)
ticks=$(getconf CLK_TCK)
# CPU time of a process so far (user + system, all threads), in clock ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# Runs TOOL against SERVER with BODY; prints "requests per second, CPU µs per request".
run() {
    local tool=$1 server=$2 body=$3 out before after requests rate
    before=$(cpu_ticks "${pid[$server]}")
    case $tool in
    h2load)
        out=$(taskset -c 1 h2load --h1 -c 16 -t 1 -D "$seconds" -d "$body" \
            -H 'content-type: application/json' "${url[$server]}" 2>&1)
        requests=$(sed -n 's/^requests: .* \([0-9]*\) succeeded.*/\1/p' <<<"$out")
        rate=$(sed -n 's/^finished in [^,]*, \([0-9.]*\) req\/s.*/\1/p' <<<"$out")
        if ! grep -q ' 0 failed, 0 errored, 0 timeout' <<<"$out" ||
            ! grep -q ' 0 3xx, 0 4xx, 0 5xx' <<<"$out"; then
            echo "error: h2load against $server saw failures:" >&2
            echo "$out" >&2
            exit 1
        fi
        ;;
    wrk)
        out=$(BODY=$body taskset -c 1 wrk -c 16 -t 1 -d "${seconds}s" -s benches/wrk-post.lua \
            "${url[$server]}" 2>&1)
        requests=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' <<<"$out")
        rate=$(sed -n 's/^Requests\/sec: *\([0-9.]*\)/\1/p' <<<"$out")
        if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then
            echo "error: wrk against $server saw failures:" >&2
            echo "$out" >&2
            exit 1
        fi
        ;;
    esac
    after=$(cpu_ticks "${pid[$server]}")
    if [[ -z $requests || -z $rate || $requests -eq 0 ]]; then
        echo "error: could not read $tool's output:" >&2
        echo "$out" >&2
        exit 1
    fi
    awk -v r="$rate" -v t="$((after - before))" -v n="$requests" -v hz="$ticks" \
        'BEGIN { printf "%.0f %.1f\n", r, t / hz * 1e6 / n }'
}

# probegate must do its work on each body (answer, and patch where its rules apply), or
# the comparison means nothing.
declare -A patched
for name in "${fixtures[@]}"; do
    answer=$(curl -sS --cacert "$work/ca.crt" -H 'content-type: application/json' \
        --data-binary "@$work/bodies/$name.json" "${url[probegate]}")
    if ! grep -q '"allowed":true' <<<"$answer"; then
        echo "error: probegate did not allow $name: ${answer:0:300}" >&2
        exit 1
    fi
    patched[$name]=no
    if grep -q '"patchType":"JSONPatch"' <<<"$answer"; then patched[$name]=yes; fi
done

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$seconds s per run, 16 connections, HTTP/1.1 over TLS; servers on core 0, generator on core 1"
# pg/null: probegate's requests per second as a share of the null server's. cpu: the null
# server's CPU per request as a share of probegate's, the throughput share one busy core
# would give; on a machine shared with other work it moves less than the rates do.
printf '%-15s %-5s %-7s %12s %8s %12s %8s %8s %5s\n' fixture patch tool 'null req/s' \
    'null µs' 'probegate' 'pg µs' 'pg/null' 'cpu'
for name in "${fixtures[@]}"; do
    body="$work/bodies/$name.json"
    for tool in h2load wrk; do
        null=$(run "$tool" null "$body")
        pg=$(run "$tool" probegate "$body")
        read -r null_rate null_cpu <<<"$null"
        read -r pg_rate pg_cpu <<<"$pg"
        printf '%-15s %-5s %-7s %12s %8s %12s %8s %7s%% %4s%%\n' "$name" "${patched[$name]}" \
            "$tool" "$null_rate" "$null_cpu" "$pg_rate" "$pg_cpu" \
            "$(awk -v a="$pg_rate" -v b="$null_rate" 'BEGIN { printf "%.0f", 100 * a / b }')" \
            "$(awk -v a="$null_cpu" -v b="$pg_cpu" 'BEGIN { printf "%.0f", 100 * a / b }')"
    done
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
