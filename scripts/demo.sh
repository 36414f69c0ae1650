#!/usr/bin/env bash
# The main job: two namespace hosts on one vswift bridge ping each other, then the switch shows
# its configuration and port counters, OVS style. Everything it creates is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$(/opt/swift/usr/bin/swift build --show-bin-path 2>/dev/null || echo .build/debug)"
[ -x "$bin/vswiftd" ] || scripts/build.sh debug >/dev/null

tag="vsdemo$$"
sw="$tag-sw" h1="$tag-h1" h2="$tag-h2"
export VSWIFT_SOCKET="/tmp/$tag.sock"
daemon=""
cleanup() {
    [ -n "$daemon" ] && kill "$daemon" 2>/dev/null && wait "$daemon" 2>/dev/null || true
    for ns in "$sw" "$h1" "$h2"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -f "/tmp/$tag.db" "$VSWIFT_SOCKET"
}
trap cleanup EXIT INT TERM

say() { printf '\n\033[1m# %s\033[0m\n' "$*"; }

for ns in "$sw" "$h1" "$h2"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add eth0 netns "$h1" type veth peer vnet1 netns "$sw"
ip link add eth0 netns "$h2" type veth peer vnet2 netns "$sw"
for h in "$h1" "$h2"; do ip -n "$h" link set eth0 up; ip netns exec "$h" ethtool -K eth0 tx off >/dev/null; done
ip -n "$sw" link set vnet1 up; ip -n "$sw" link set vnet2 up
ip -n "$h1" addr add 10.1.1.20/24 dev eth0
ip -n "$h2" addr add 10.1.1.30/24 dev eth0

ip netns exec "$sw" "$bin/vswiftd" --db "/tmp/$tag.db" --bpf-dir "$bin" --log-level warning &
daemon=$!
for _ in $(seq 100); do "$bin/vswiftctl" show >/dev/null 2>&1 && break; sleep 0.1; done

say "vswiftctl add-br br0; add-port br0 vnet1; add-port br0 vnet2"
"$bin/vswiftctl" add-br br0
"$bin/vswiftctl" add-port br0 vnet1
"$bin/vswiftctl" add-port br0 vnet2

say "host1# ping 10.1.1.30"
ip netns exec "$h1" ping -c 5 -i 0.2 10.1.1.30
say "host2# ping 10.1.1.20"
ip netns exec "$h2" ping -c 5 -i 0.2 10.1.1.20

say "vswiftctl show"
"$bin/vswiftctl" show
say "vswiftctl dump-ports br0"
"$bin/vswiftctl" dump-ports br0
