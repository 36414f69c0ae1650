#!/usr/bin/env bash
# Run every test: unit tests, then the integration tests in network namespaces (needs root).
# Under CI=true an integration test that lacks a capability fails instead of being skipped.
# Two runs: integration tests block on real traffic and processes, which must not starve the
# unit tests' async work of threads.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
scripts/build.sh debug
export VSWIFT_BPF_DIR="$PWD/.build/bpf"
swift test --skip-build --skip IntegrationTests "$@"
swift test --skip-build --filter IntegrationTests "$@"
