#!/usr/bin/env bash
# stop-apiserver.sh WORKDIR — stop the control plane started by
# start-apiserver.sh WORKDIR and remove its throwaway data.
#
# Sends SIGTERM to the server's process group (the server runs in its own
# session, so this reaches it and anything it may have spawned), waits up to
# 30 s for a clean shutdown, then SIGKILLs what is left. Before signalling,
# it checks that the pid still belongs to this WORKDIR's server, so a stale
# pid file never kills an unrelated process. Removes WORKDIR/etcd,
# WORKDIR/certs, the generated auth material and the pid file; keeps
# WORKDIR/apiserver.log for post-mortems, and the (now stale) kubeconfig.
# Safe to run when nothing is running; exits non-zero only if the server
# could not be stopped.
set -euo pipefail

log() { printf 'stop-apiserver: %s\n' "$*" >&2; }

[[ $# -eq 1 && -n $1 ]] || { echo "usage: $0 WORKDIR" >&2; exit 2; }
[[ -d $1 ]] || { log "no such directory $1; nothing to stop"; exit 0; }
workdir=$(cd "$1" && pwd)
pidfile=$workdir/apiserver.pid

# ours PID: is PID alive and started with this WORKDIR's etcd data dir?
ours() {
    [[ -r /proc/$1/cmdline ]] &&
        tr '\0' '\n' <"/proc/$1/cmdline" | grep -qxF -- "--etcd-data-dir=$workdir/etcd"
}

# signal SIG PID: signal the process group led by PID, or PID alone.
signal() {
    kill "-$1" -- "-$2" 2>/dev/null || kill "-$1" "$2" 2>/dev/null || true
}

if [[ -f $pidfile ]]; then
    pid=$(cat "$pidfile")
    if [[ $pid =~ ^[0-9]+$ ]] && ours "$pid"; then
        log "stopping pid $pid"
        signal TERM "$pid"
        for _ in $(seq 1 60); do
            ours "$pid" || break
            sleep 0.5
        done
        if ours "$pid"; then
            log "pid $pid still running after 30s; killing"
            signal KILL "$pid"
            for _ in $(seq 1 20); do
                ours "$pid" || break
                sleep 0.5
            done
        fi
        if ours "$pid"; then
            log "error: could not stop pid $pid"
            exit 1
        fi
        log "stopped"
    else
        log "pid file $pidfile is stale; nothing to stop"
    fi
else
    log "no pid file in $workdir; nothing to stop"
fi

rm -rf -- "$workdir/etcd" "$workdir/certs"
rm -f -- "$pidfile" "$workdir/tokens.csv" "$workdir/sa.key" "$workdir/sa.pub"
