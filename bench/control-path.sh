#!/usr/bin/env bash
# The control path with a big flow table, end to end through a release vswiftd and vswiftctl:
# add-flows of N generated flows, one add-flow and one strict del-flows on top of them,
# dump-flows, replace-flows (same file but one line changed), a daemon restart that restores the
# table, and vswiftd's resident memory with and without the table (bytes per rule).
#
# Usage (root): scripts/build.sh release && bench/control-path.sh [RULES] [RUNS]   (default 1000000 1)
# VSWIFT_BIN=DIR takes vswiftd and vswiftctl from DIR instead (e.g. a copy of an older build).
# vswiftd runs in its own network namespace with a temporary --db, socket and flow file, all
# removed on exit, so it touches nothing else on the machine.
set -euo pipefail
cd "$(dirname "$0")/.."
rules="${1:-1000000}"
runs="${2:-1}"
bin="${VSWIFT_BIN:-$(PATH=/opt/swift/usr/bin:$PATH swift build -c release --show-bin-path)}"
[ -x "$bin/vswiftd" ] && [ -x "$bin/vswiftctl" ] || { echo "build first: scripts/build.sh release" >&2; exit 1; }

work="$(mktemp -d /tmp/vswift-control-bench.XXXXXX)"
ns="vscb$$"
pid=""
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    ip netns del "$ns" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up

# priority=10,udp,nw_dst=10.A.B.C,tp_dst=N,actions=output:2 — distinct (address, port) per line.
awk -v n="$rules" 'BEGIN {
    for (i = 0; i < n; i++)
        printf "priority=10,udp,nw_dst=10.%d.%d.%d,tp_dst=%d,actions=output:2\n", int(i / 65536) % 256, int(i / 256) % 256, i % 256, 1000 + int(i / 16777216)
}' > "$work/flows.txt"
# replace-flows input: the same flows with the first one's action changed.
sed '1s/output:2/output:1/' "$work/flows.txt" > "$work/replace.txt"

sock="$work/vswiftd.sock"
ctl() { ip netns exec "$ns" "$bin/vswiftctl" --socket "$sock" "$@"; }
start_daemon() {
    ip netns exec "$ns" "$bin/vswiftd" --socket "$sock" --db "$work/db.json" --log-level error &
    pid=$!
    for _ in $(seq 1 3600); do [ -S "$sock" ] && ctl show >/dev/null 2>&1 && return 0; sleep 0.05; done
    echo "vswiftd did not answer within 180 s" >&2; exit 1
}
stop_daemon() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; rm -f "$sock"; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status"; }
# vswiftd's CPU seconds so far (user + system): on a busy machine wall times are disturbed.
cpu_s() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$pid/stat"; }
# Seconds taken by a command (its output discarded).
timed() { local t0 t1; t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N); echo "$t1 - $t0" | bc -l | xargs printf "%.2f"; }

echo "rules=$rules runs=$runs vswiftd=$bin/vswiftd"
printf "%-4s %9s %9s %9s %9s %9s %9s %9s %9s %9s %9s\n" run add-flows add-cpu add-flow del-strict dump-flows dump-lines replace restart rss-MB bytes/rule
for run in $(seq 1 "$runs"); do
    rm -f "$work/db.json"
    start_daemon
    ctl add-br br0
    base=$(rss_kb)
    c0=$(cpu_s)
    t_add=$(timed ctl add-flows br0 "$work/flows.txt")
    c_add=$(echo "$(cpu_s) - $c0" | bc -l | xargs printf "%.2f")
    t_one=$(timed ctl add-flow br0 "priority=20,udp,nw_dst=192.0.2.1,tp_dst=7,actions=output:1")
    t_del=$(timed ctl --strict del-flows br0 "priority=20,udp,nw_dst=192.0.2.1,tp_dst=7")
    t0=$(date +%s.%N); lines=$(ctl dump-flows br0 | wc -l); t1=$(date +%s.%N)
    t_dump=$(echo "$t1 - $t0" | bc -l | xargs printf "%.2f")
    t_replace=$(timed ctl replace-flows br0 "$work/replace.txt")
    rss=$(rss_kb)
    replaced=$(ctl dump-flows br0 | wc -l)
    stop_daemon
    t0=$(date +%s.%N); start_daemon; t1=$(date +%s.%N)
    t_restart=$(echo "$t1 - $t0" | bc -l | xargs printf "%.2f")
    restored=$(ctl dump-flows br0 | wc -l)
    stop_daemon
    [ "$restored" = "$replaced" ] || echo "warning: restart restored $restored lines of dump-flows, expected $replaced" >&2
    per_rule=$(( (rss - base) * 1024 / rules ))
    printf "%-4s %9s %9s %9s %9s %9s %9s %9s %9s %9s %9s\n" "$run" "$t_add" "$c_add" "$t_one" "$t_del" "$t_dump" "$lines" "$t_replace" "$t_restart" $((rss / 1024)) "$per_rule"
done
echo "times in seconds, wall clock, each a vswiftctl command end to end (dump-flows: including printing);"
echo "add-cpu: vswiftd's CPU seconds (user + system, all threads) during add-flows;"
echo "restart: vswiftd start until it answers, with the table restored; rss after replace-flows;"
echo "bytes/rule = (rss with the table - rss of the bare bridge) / rules."
