#!/usr/bin/env bash
# Optional extras for the forwarding bench (as root): Open vSwitch (the ovs-afxdp / ovs-vxlan
# baselines) and gnuplot (vswift-bench sweep --plot). Neither is needed to build, test or run CI.
# The bench starts its own ovsdb-server/ovs-vswitchd in a private directory; the package's system
# service is neither needed nor touched.
set -euo pipefail
. "$(dirname "$0")/lib/apt.sh"
install_missing setup-bench openvswitch-switch gnuplot-nox
echo "setup-bench: ok ($(ovs-vswitchd --version | head -1); $(gnuplot --version))"
