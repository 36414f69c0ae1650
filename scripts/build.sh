#!/usr/bin/env bash
# Build vswift: BPF objects, the Swift package, and the bench's C baseline; put the BPF objects
# next to the executables, where vswiftd looks for them.
# Usage: scripts/build.sh [debug|release]   (default debug)
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-debug}"
export PATH="/opt/swift/usr/bin:$PATH"
scripts/build-bpf.sh .build/bpf
tests=()
[ "$config" = debug ] && tests=(--build-tests)
swift build -c "$config" "${tests[@]}"
bin="$(swift build -c "$config" --show-bin-path)"
cp .build/bpf/*.bpf.o "$bin/"
if [ -d bench/baseline ] && ls bench/baseline/*.c >/dev/null 2>&1; then
    for src in bench/baseline/*.c; do
        cc -O2 -Wall -o "$bin/$(basename "${src%.c}")" "$src" -lxdp -lbpf
    done
fi
echo "built into $bin"
