#!/bin/sh
# Usage: integration/bench-unpack.sh [N] [MB]   (as root; NOOK=path/to/nook, K=5 reps,
# KEEP=1 keeps the work dir). Unpack speed of a bundle tar (MB MiB, default 200, in 2000
# random files) by nook: `nook run --bundle big.tar` of /bin/true with an empty cache
# (read, sha256, safe unpack, syncfs, rename, run) minus the same run from the bundle
# directory; against GNU tar -xf, without and with `sync -f` (nook syncs before its
# rename). Then the start-time cost of a cached tar against a directory: median of N
# runs each (default 50).
set -eu
N=${1:-50}
MB=${2:-200}
NOOK=${NOOK:-target/x86_64-unknown-linux-gnu/release/nook}
NOOK=$(realpath "$NOOK")
BB=${NOOK_BUSYBOX:-/usr/bin/busybox}
[ "$(id -u)" = 0 ] || { echo "bench-unpack: needs root" >&2; exit 1; }
[ -x "$BB" ] || { echo "bench-unpack: no static busybox at $BB" >&2; exit 1; }
W=$(mktemp -d /var/tmp/nook-bench-unpack.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$W"' EXIT
cd "$W"

# The bundle: busybox, /bin/true, and MB MiB of random files in 50 directories.
mkdir -p b/rootfs/bin b/rootfs/proc b/rootfs/dev b/rootfs/tmp
cp "$BB" b/rootfs/bin/busybox
ln -s busybox b/rootfs/bin/true
(cd b && "$NOOK" spec)
sed -i 's/"terminal": true/"terminal": false/; s/"sh"$/"\/bin\/true"/' b/config.json
grep -q '"/bin/true"' b/config.json || { echo "bench-unpack: could not set args" >&2; exit 1; }
per=$((MB * 1024 / 2000)) # KiB per file
i=0
while [ $i -lt 50 ]; do
    d=b/rootfs/data/d$i
    mkdir -p $d
    head -c $((per * 1024 * 40)) /dev/urandom | split -b $((per * 1024)) -a 2 - $d/f
    i=$((i + 1))
done
tar -C b -cf big.tar .
size=$(stat -c %s big.tar)
mib() { awk -v b="$size" 'BEGIN { printf "%.1f", b / 1048576 }'; }
echo "bundle tar: $(mib) MiB, $(tar -tf big.tar | wc -l) entries"

now() { date +%s%N; }
# ms NS: nanoseconds as milliseconds
ms() { awk -v n="$1" 'BEGIN { printf "%.2f", n / 1e6 }'; }
rate() { awk -v b="$size" -v n="$1" 'BEGIN { printf "%.0f", (b / 1048576) / (n / 1e9) }'; }
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

# run ROOT BUNDLE: nanoseconds of one `nook run` of /bin/true
run() {
    t0=$(now)
    "$NOOK" --root "$1" run --bundle "$2" "bu-$$-$(now)" >/dev/null
    echo $(($(now) - t0))
}

# Repetitions of each, into fresh directories (nothing is deleted until the end: ext4
# slows down creating files right after deleting as many, which would skew the figures).
K=${K:-5}
: >cold.txt
: >dir.txt
: >gnu.txt
: >gnusync.txt
k=0
while [ $k -lt "$K" ]; do
    mkdir x$k y$k && sync
    run "$W/root$k" "$W/big.tar" >>cold.txt
    run "$W/root$k" "$W/b" >>dir.txt
    sync
    t0=$(now)
    tar -xf big.tar -C x$k
    echo $(($(now) - t0)) >>gnu.txt
    sync
    t0=$(now)
    tar -xf big.tar -C y$k && sync -f y$k
    echo $(($(now) - t0)) >>gnusync.txt
    k=$((k + 1))
done
cold=$(median <cold.txt)
dir=$(median <dir.txt)
gnu=$(median <gnu.txt)
gnusync=$(median <gnusync.txt)
unpack=$((cold - dir))
echo "--- unpack, median of $K (each into an empty cache)"
echo "nook run of the tar:        $(ms "$cold") ms"
echo "nook run of the directory:  $(ms "$dir") ms"
echo "nook unpack (difference):   $(ms "$unpack") ms  $(rate "$unpack") MiB/s"
echo "GNU tar -xf:                $(ms "$gnu") ms  $(rate "$gnu") MiB/s"
echo "GNU tar -xf + sync -f:      $(ms "$gnusync") ms  $(rate "$gnusync") MiB/s"
awk -v a="$unpack" -v g="$gnu" -v s="$gnusync" \
    'BEGIN { printf "nook / GNU tar time:        %.2f (%.2f against tar + sync)\n", a / g, a / s }'

echo "--- start from a cached tar vs a directory, median of $N runs"
: >cached.txt
: >direct.txt
: >added.txt
run "$W/root0" "$W/big.tar" >/dev/null # cached above; make sure
k=0
while [ $k -lt "$N" ]; do
    t=$(run "$W/root0" "$W/big.tar")
    d=$(run "$W/root0" "$W/b")
    echo "$t" >>cached.txt
    echo "$d" >>direct.txt
    echo $((t - d)) >>added.txt
    k=$((k + 1))
done
t=$(median <cached.txt)
d=$(median <direct.txt)
a=$(median <added.txt)
echo "cached tar: $(ms "$t") ms   directory: $(ms "$d") ms   added (median of pairs): $(ms "$a") ms"
