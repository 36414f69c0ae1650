#!/usr/bin/env bash
# Builds the libFuzzer targets (release, -sanitize=fuzzer) and runs each on its seed corpus.
#   fuzz/run.sh [TARGET...] [--seconds N | --runs N] [--asan] [--no-build]
# TARGET: FuzzFrame FuzzLISP FuzzLISPControl FuzzFlowSyntax FuzzJSONRPC FuzzConfig (default: all, one after another).
# --asan: a debug build with AddressSanitizer (fuzz/.build-asan): catches reads past a frame that
# a release build would not notice, and gives more coverage feedback (no branches folded away);
# some 10 times fewer inputs per second. Default: release (fuzz/.build).
# New inputs go to fuzz/.scratch/corpus/TARGET (gitignored; reused by the next run), a crashing
# input to fuzz/.scratch/artifacts/. Exits non-zero when any target crashes, traps, leaks past the
# RSS limit or hangs past the per-input timeout; the last lines of the target's log say which input.
set -euo pipefail
cd "$(dirname "$0")"
export PATH="/opt/swift/usr/bin:$PATH"
# Swift's own crash backtracer would take the trap's signal before libFuzzer, which then could not
# save the crashing input.
export SWIFT_BACKTRACE=enable=no
# Leaks are failures (libFuzzer checks after each input that allocated), except known ones of the
# Swift runtime libraries listed there.
export LSAN_OPTIONS="suppressions=$PWD/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

all=(FuzzFrame FuzzLISP FuzzLISPControl FuzzFlowSyntax FuzzJSONRPC FuzzConfig)
targets=()
limit=(-max_total_time=60)
build=1
mode=release
config=(-c release --build-path .build -Xswiftc -sanitize=fuzzer)
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) limit=(-max_total_time="$2"); shift 2 ;;
        --runs) limit=(-runs="$2"); shift 2 ;;
        --no-build) build=0; shift ;;
        --asan) mode=asan; config=(-c debug --build-path .build-asan -Xswiftc -sanitize=fuzzer,address); shift ;;
        Fuzz*) targets+=("$1"); shift ;;
        *) echo "usage: $0 [TARGET...] [--seconds N | --runs N] [--asan] [--no-build]" >&2; exit 2 ;;
    esac
done
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

if [ "$build" = 1 ]; then
    mkdir -p .scratch/logs
    # (ld.gold warns about local ASan symbols it cannot export; harmless, left out of the output.)
    if ! swift build "${config[@]}" >.scratch/logs/build.log 2>&1; then
        grep -v "Cannot export local symbol" .scratch/logs/build.log >&2
        echo "fuzz build failed" >&2
        exit 1
    fi
    tail -n 1 .scratch/logs/build.log
fi
bin="$(swift build "${config[@]}" --show-bin-path)"

status=0
for target in "${targets[@]}"; do
    [ -d "corpus/$target" ] || { echo "no seed corpus corpus/$target" >&2; exit 2; }
    scratch=".scratch/corpus/$target"
    mkdir -p "$scratch" .scratch/artifacts .scratch/logs
    log=".scratch/logs/$target-$mode.log"
    echo "== $target (${limit[*]} ${config[*]}) log: fuzz/$log"
    dict=()
    [ -f "dict/$target.dict" ] && dict=(-dict="dict/$target.dict")
    start=$(date +%s)
    # -timeout: an input taking over 10 s is a hang; -rss_limit_mb: unbounded memory is a failure.
    if "$bin/$target" "$scratch" "corpus/$target" "${limit[@]}" ${dict[@]+"${dict[@]}"} -timeout=10 -rss_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 -artifact_prefix=".scratch/artifacts/$target-" >"$log" 2>&1; then
        result=ok
    else
        result=FAILED
        status=1
        tail -n 30 "$log"
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
    echo "$target: $result, $runs inputs in $(( $(date +%s) - start )) s"
done
exit $status
