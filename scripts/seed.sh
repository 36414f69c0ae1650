#!/usr/bin/env bash
# The main job: the OVS LISP tunnel scenario users run today (../shared/seed), on vswift, command for
# command, with every machine played by a network namespace:
#
#     VM1 (eth3, 10.1.1.20)                                   VM2 (eth5, 10.1.1.30)
#         |                                                       |
#       vnet0                                                   vnet0
#     [br2 10.1.1.1] lisp0 ~~~ LISP over UDP 4341 ~~~ lisp0 [br2 10.1.1.2]
#     [br1 192.168.1.249] em1 ------------------------ eth0 [br1 192.168.1.252]
#             Host1 (its own vswiftd)                     Host2 (its own vswiftd)
#
# VM1 pings VM2 and back, then each host prints show, dump-ports br2 and dump-flows br2 (and
# vswift's dump-workers and dump-xdp-cache). VSWIFT_TEST_XDP_CACHE=on|off runs both vswiftd with
# --xdp-cache on|off (unset: vswiftd's default), as the integration tests take it.
# Everything it creates is removed on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
bin="$(swift build --show-bin-path 2>/dev/null || echo .build/debug)"
[ -x "$bin/vswiftd" ] || scripts/build.sh debug >/dev/null

tag="vsseed$$"
host1="$tag-host1" host2="$tag-host2" vm1="$tag-vm1" vm2="$tag-vm2"
daemons=()
cleanup() {
    for pid in "${daemons[@]}"; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
    for ns in "$host1" "$host2" "$vm1" "$vm2"; do ip netns del "$ns" 2>/dev/null || true; done
    rm -f "/tmp/$tag".*
}
trap cleanup EXIT INT TERM

say() { printf '\n\033[1m# %s\033[0m\n' "$*"; }
# scrape NS: the metrics of the vswiftd in namespace NS (what curl http://127.0.0.1:9477/metrics
# gives; bash's /dev/tcp, so no HTTP client is needed).
scrape() {
    on "$1" bash -c 'exec 3<>/dev/tcp/127.0.0.1/9477; printf "GET /metrics HTTP/1.1\r\nHost: seed\r\n\r\n" >&3; cat <&3' |
        sed '1,/^\r$/d'
}
# ctl HOST ARGS...: vswiftctl against that host's vswiftd.
ctl() { local host=$1; shift; "$bin/vswiftctl" --socket "/tmp/$tag.$host.sock" "$@"; }
on() { local ns=$1; shift; ip netns exec "$ns" "$@"; }

for ns in "$host1" "$host2" "$vm1" "$vm2"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
# The wire between the hosts, and each VM's virtio NIC as a veth whose host end is vnet0.
ip link add em1 netns "$host1" type veth peer eth0 netns "$host2"
ip link add eth3 netns "$vm1" address 52:54:00:b8:27:75 type veth peer vnet0 netns "$host1"
ip link add eth5 netns "$vm2" address 52:54:00:1b:ea:d5 type veth peer vnet0 netns "$host2"
for pair in "$host1 em1" "$host2 eth0" "$host1 vnet0" "$host2 vnet0"; do set -- $pair; ip -n "$1" link set "$2" up; done
# A local stack over veth can leave checksums to an offload that never happens (OVS's AF_XDP guide too).
on "$vm1" ethtool -K eth3 tx off >/dev/null
on "$vm2" ethtool -K eth5 tx off >/dev/null

for host in host1 host2; do
    ns_var="$host"; ns="${!ns_var}"
    # Directly, not through a function: $! must be vswiftd itself (ip netns exec execs it).
    ip netns exec "$ns" "$bin/vswiftd" --socket "/tmp/$tag.$host.sock" --db "/tmp/$tag.$host.db" \
        --bpf-dir "$bin" --log-level warning --metrics 127.0.0.1:9477 ${VSWIFT_TEST_XDP_CACHE:+--xdp-cache "$VSWIFT_TEST_XDP_CACHE"} &
    daemons+=($!)
done
for host in host1 host2; do
    for _ in $(seq 100); do ctl "$host" show >/dev/null 2>&1 && break; sleep 0.1; done
done

cat >"/tmp/$tag.flows.host1" <<'EOF'
# The seed's flows on Host1 (52:54:00:B8:27:75 is VM1's MAC).
priority=0,action=NORMAL
priority=2,in_port=1,dl_type=0x0806,action=NORMAL
priority=3,dl_dst=02:00:00:00:00:00,action=mod_dl_dst:52:54:00:B8:27:75,output:1
priority=1,in_port=1,dl_type=0x0800,vlan_tci=0,nw_src=10.1.1.0/24,action=output:2
EOF
sed -e 's/52:54:00:B8:27:75/52:54:00:1B:EA:D5/' -e 's/Host1/Host2/; s/VM1/VM2/' \
    "/tmp/$tag.flows.host1" >"/tmp/$tag.flows.host2"

configure() {
    local host=$1 ns=$2 uplink=$3 underlay_ip=$4 br2_ip=$5 remote=$6
    say "$host# vswiftctl add-br br1; add-br br2; add-port br1 $uplink"
    ctl "$host" add-br br1
    ctl "$host" add-br br2
    ctl "$host" add-port br1 "$uplink"
    say "$host# ip addr add $underlay_ip/24 dev br1; ip addr add $br2_ip/24 dev br2   (ifconfig em1 0; dhclient br1; ifconfig br2 ...)"
    on "$ns" ip addr add "$underlay_ip/24" dev br1
    on "$ns" ip addr add "$br2_ip/24" dev br2
    say "$host# vswiftctl add-port br2 vnet0; add-port br2 lisp0 -- set Interface lisp0 type=lisp options:remote_ip=$remote"
    ctl "$host" add-port br2 vnet0
    ctl "$host" add-port br2 lisp0 -- set Interface lisp0 type=lisp options:remote_ip="$remote"
    say "$host# vswiftctl add-flows br2 flows.$host"
    grep -v '^#' "/tmp/$tag.flows.$host"
    ctl "$host" add-flows br2 "/tmp/$tag.flows.$host"
}
configure host1 "$host1" em1 192.168.1.249 10.1.1.1 192.168.1.252
configure host2 "$host2" eth0 192.168.1.252 10.1.1.2 192.168.1.249

say "VM1: ip addr add 10.1.1.20/24 dev eth3; arp -f /etc/ethers (10.1.1.30 52:54:00:1B:EA:D5)"
on "$vm1" ip link set eth3 up
on "$vm1" ip addr add 10.1.1.20/24 dev eth3
on "$vm1" ip neigh replace 10.1.1.30 lladdr 52:54:00:1b:ea:d5 dev eth3 nud permanent
say "VM2: ip addr add 10.1.1.30/24 dev eth5; arp -f /etc/ethers (10.1.1.20 52:54:00:B8:27:75)"
on "$vm2" ip link set eth5 up
on "$vm2" ip addr add 10.1.1.30/24 dev eth5
on "$vm2" ip neigh replace 10.1.1.20 lladdr 52:54:00:b8:27:75 dev eth5 nud permanent

# The underlay's neighbours start unknown: vswiftd asks the kernel to resolve them when the first
# packet needs them (that packet is dropped and counted as no_neighbour), so give it a moment.
say "VM1# ping 10.1.1.30"
on "$vm1" ping -c 1 -W 1 10.1.1.30 >/dev/null 2>&1 || true
sleep 0.5
on "$vm1" ping -c 7 -i 0.2 -W 2 10.1.1.30
say "VM2# ping 10.1.1.20"
on "$vm2" ping -c 7 -i 0.2 -W 2 10.1.1.20

for host in host1 host2; do
    say "$host# vswiftctl show"
    ctl "$host" show
    say "$host# vswiftctl dump-ports br2"
    ctl "$host" dump-ports br2
    say "$host# vswiftctl dump-flows br2"
    ctl "$host" dump-flows br2
    say "$host# vswiftctl dump-workers   (vswift's own: where the datapath's time went)"
    ctl "$host" dump-workers
    say "$host# vswiftctl dump-xdp-cache br2   (vswift's own: the flows forwarded in XDP)"
    ctl "$host" dump-xdp-cache br2
done
say "host1# curl -s http://127.0.0.1:9477/metrics | grep -E '_(packets|dropped)_total.*(vnet0|lisp0)|cache|flow_packets' | sort"
scrape "$host1" | grep -E '_(packets|dropped)_total.*(vnet0|lisp0)|cache|flow_packets' | sort
