#!/usr/bin/env bash
# Prepare a fresh Debian machine (as root) to build, run and test vswift: install the packages it
# needs, make sure bpffs is mounted, and build everything (debug, with tests).
# Swift itself is expected at /opt/swift (or on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/lib/apt.sh
# openvswitch-common: ovs-ofctl, the oracle of the flow parser differential test (not the switch).
# prometheus: promtool, which checks the metrics endpoint's output; systemd: systemd-analyze, which
# verifies packaging/vswiftd.service (neither service is started or needed). python3: the LISP
# mapping-system test fixture (Tests/IntegrationTests/Fixtures, standard library only).
install_missing setup libxdp-dev libbpf-dev clang llvm pkg-config iproute2 ethtool iputils-ping tcpdump tshark procps python3 \
    openvswitch-common prometheus systemd

if ! mountpoint -q /sys/fs/bpf 2>/dev/null; then
    mkdir -p /sys/fs/bpf
    mount -t bpf bpf /sys/fs/bpf || echo "setup: could not mount bpffs (vswift does not need it)"
fi

export PATH="/opt/swift/usr/bin:$PATH"
command -v swift >/dev/null || { echo "setup: swift not found (expected in /opt/swift/usr/bin)" >&2; exit 1; }
scripts/build.sh "${1:-debug}"
