#!/usr/bin/env bash
# Compile every bpf/*.bpf.c into OUT_DIR (default .build/bpf). Called by scripts/build.sh and CI;
# no compiled object is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-.build/bpf}"
mkdir -p "$out"
cc=clang
command -v "$cc" >/dev/null 2>&1 || cc=/opt/swift/usr/bin/clang
arch_inc="/usr/include/$(uname -m)-linux-gnu"
for src in bpf/*.bpf.c; do
    obj="$out/$(basename "${src%.c}").o"
    # Rebuilt when the source or any shared header (bpf/*.h) is newer than the object.
    stale=0
    [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] && stale=1
    for header in bpf/*.h; do [ -f "$header" ] && [ "$header" -nt "$obj" ] && stale=1; done
    if [ "$stale" = 1 ]; then
        "$cc" -O2 -g -Wall -Werror -target bpf -I"$arch_inc" -c "$src" -o "$obj"
    fi
done
