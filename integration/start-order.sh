#!/bin/sh
# Regenerates link/start-order.txt: the functions of nook's start path, in the order
# they are first called, for lld's --symbol-ordering-file (build.rs passes the file to
# release builds of the nook binary). Clustered together, they are mapped with a few
# fault-around windows (64 KiB each on this kernel) instead of one per scattered
# function: fewer page faults per start and a smaller RSS (ARCHITECTURE.md, "Measured").
#
# How: an unstripped release build; integration/start-order/trace.c puts a breakpoint
# on each of its functions and records the first hits while nook runs, starts,
# execs into, kills and deletes busybox containers; nm maps the addresses to symbol
# names. A symbol the next build does not have is skipped (--no-warn-symbol-ordering),
# so a stale list costs speed, never a build. Run it after large changes to the start
# path: `make start-order` (root; gcc, python3, busybox-static).
set -eu
cd "$(dirname "$0")/.."
repo=$(pwd)
work=$(mktemp -d /tmp/nook-start-order.XXXXXX)
root="$work/state"
cleanup() {
    [ -x "$work/nook" ] && for id in so-run so-run2 so-c; do
        "$work/nook" --root "$root" delete --force "$id" >/dev/null 2>&1 || true
    done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

CARGO_PROFILE_RELEASE_STRIP=false CARGO_TARGET_DIR="$work/target" cargo build --release --bin nook
cp "$work/target/x86_64-unknown-linux-gnu/release/nook" "$work/nook"
gcc -O2 -Wall -o "$work/trace" integration/start-order/trace.c
nm --defined-only -S "$work/nook" | awk '$3 ~ /^[tTwW]$/ && $2 !~ /^0+$/ {print $1}' | sort -u >"$work/funcs"

bundle="$work/bundle"
mkdir -p "$bundle/rootfs/bin"
cp "$(command -v busybox)" "$bundle/rootfs/bin/busybox"
for b in true sleep; do ln -s busybox "$bundle/rootfs/bin/$b"; done
(cd "$bundle" && "$work/nook" spec >/dev/null)
setargs() {
    python3 -c 'import json,sys; p=sys.argv[1]; c=json.load(open(p)); c["process"]["args"]=sys.argv[2:]; c["process"]["terminal"]=False; json.dump(c,open(p,"w"))' \
        "$bundle/config.json" "$@"
}
trace() { "$work/trace" "$work/funcs" "$work/nook" --root "$root" "$@" >>"$work/hits"; }
: >"$work/hits"
setargs /bin/true
trace run --bundle "$bundle" so-run
trace run --bundle "$bundle" so-run2
setargs /bin/sleep 30
# create is not traced: its init waits for start, and the tracer would wait with it
# (run covers create's code).
"$work/nook" --root "$root" create --bundle "$bundle" so-c
trace start so-c
trace exec so-c /bin/true
trace kill so-c KILL
sleep 0.5
trace delete so-c

mkdir -p link
nm --defined-only -S "$work/nook" | python3 -c '
import sys
names = {}
for line in sys.stdin:
    p = line.split()
    if len(p) >= 4 and p[2] in "tTwW":
        names.setdefault(int(p[0], 16), []).append(p[3])
seen, out = set(), []
for line in open(sys.argv[1]):
    line = line.strip()
    if not all(c in "0123456789abcdef" for c in line) or not line:
        continue  # output of the commands themselves (state JSON)
    for n in names.get(int(line, 16), []):
        if n not in seen:
            seen.add(n)
            out.append(n)
open(sys.argv[2], "w").write("".join(n + "\n" for n in out))
print(f"start-order: {len(out)} functions -> {sys.argv[2]}", file=sys.stderr)
' "$work/hits" "$repo/link/start-order.txt"
