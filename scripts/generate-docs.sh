#!/usr/bin/env bash
# Shell completions and man pages for vswiftd and vswiftctl, generated from their argument parsers
# (swift-argument-parser: `--generate-completion-script`, and its GenerateManual plugin), so they
# never drift from the options the programs take.
# Usage: scripts/generate-docs.sh [OUTDIR]    (default .build/docs; builds in debug if needed)
#   OUTDIR/completions/bash/{vswiftd,vswiftctl}        -> /usr/share/bash-completion/completions/
#   OUTDIR/completions/zsh/{_vswiftd,_vswiftctl}       -> a directory of $fpath
#   OUTDIR/completions/fish/{vswiftd,vswiftctl}.fish   -> /usr/share/fish/vendor_completions.d/
#   OUTDIR/man/man8/{vswiftd,vswiftctl}.8              -> /usr/local/share/man/man8/
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
out="${1:-.build/docs}"
bin="$(swift build --show-bin-path)"
if [ ! -x "$bin/vswiftd" ] || [ ! -x "$bin/vswiftctl" ]; then
    swift build --product vswiftd >/dev/null
    swift build --product vswiftctl >/dev/null
fi

mkdir -p "$out/completions/bash" "$out/completions/zsh" "$out/completions/fish" "$out/man/man8"
for tool in vswiftd vswiftctl; do
    "$bin/$tool" --generate-completion-script bash >"$out/completions/bash/$tool"
    "$bin/$tool" --generate-completion-script zsh >"$out/completions/zsh/_$tool"
    "$bin/$tool" --generate-completion-script fish >"$out/completions/fish/$tool.fish"
done

# The plugin builds the package's executables (debug: incremental after scripts/build.sh) and its
# generate-manual tool, then writes one page per executable that uses ArgumentParser.
swift package plugin generate-manual --configuration debug --section 8 \
    --authors "the vswift developers" >/dev/null
for tool in vswiftd vswiftctl; do
    page="$(find .build/plugins/GenerateManual/outputs/"$tool" -name "$tool.8" | head -n 1)"
    [ -n "$page" ] || { echo "generate-docs: no man page for $tool" >&2; exit 1; }
    cp "$page" "$out/man/man8/$tool.8"
done
echo "generate-docs: completions and man pages in $out"
