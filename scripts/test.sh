#!/usr/bin/env bash
# Run every test: unit tests and the integration tests in network namespaces (needs root).
# Under CI=true an integration test that lacks a capability fails instead of being skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
scripts/build.sh debug
export VSWIFT_BPF_DIR="$PWD/.build/bpf"
swift test --skip-build "$@"
