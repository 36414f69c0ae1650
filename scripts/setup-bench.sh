#!/usr/bin/env bash
# Optional extras for the forwarding bench (as root): Open vSwitch (the ovs-afxdp / ovs-vxlan
# baselines) and gnuplot (vswift-bench sweep --plot). Neither is needed to build, test or run CI.
# The bench starts its own ovsdb-server/ovs-vswitchd in a private directory; the package's system
# service is neither needed nor touched.
set -euo pipefail
packages=(openvswitch-switch gnuplot-nox)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup-bench: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
echo "setup-bench: ok ($(ovs-vswitchd --version | head -1); $(gnuplot --version))"
