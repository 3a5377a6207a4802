#!/usr/bin/env bash
# Inside the test guest, as root, started by nook-test.service (see build-image.sh) with
# the project shared at /nook: run the integration-test binaries the host listed and
# write their output and an exit status for the host. The unit powers off when it ends.
#
# Reads  <share>/target/vm-results/plan   (shell variables written by run.sh)
#        <share>/target/vm-results/tests  (test binaries, one a line, relative to the repo)
# Writes <share>/target/vm-results/output.log  (facts, then every test binary's output)
#        <share>/target/vm-results/status      (last: 0 when every binary passed)
#
# Everything is in functions and the last line exits: bash reads a script as it runs,
# and this file lives on the host, where it may be edited during a run.
set -euo pipefail

share=/nook
results=$share/target/vm-results

# Whatever happens, the host gets a status (non-zero unless every binary passed).
finish() {
  local rc=$?
  [ -f "$results/status" ] || echo "${rc/#0/1}" >"$results/status"
}

# Under cgroup v2 a cgroup holding processes cannot hand controllers to children, so
# leave the unit's own (delegated) cgroup for a leaf beside which the tests can make
# cgroups, and enable every controller the unit was given for them.
enter_leaf_cgroup() {
  local unit_cg c
  unit_cg=/sys/fs/cgroup$(awk -F: '$1 == "0" { print $3 }' /proc/self/cgroup)
  mkdir -p "$unit_cg/runner"
  echo $$ >"$unit_cg/runner/cgroup.procs"
  for c in $(cat "$unit_cg/cgroup.controllers"); do
    echo "+$c" >"$unit_cg/cgroup.subtree_control" || echo "cannot enable $c for children"
  done
}

# The test binaries hold absolute host paths (the nook binary, CARGO_TARGET_TMPDIR):
# mount the repo at the same path as on the host, through its second 9p device and
# cached this time. The tests exec nook (68 MB in debug) for every command: uncached,
# each exec reads it all over 9p again (4 s under TCG, against 0.25 s cached). /nook
# stays uncached so that the host sees output.log as it is written.
mount_repo() {
  [ "$REPO" != "$share" ] || return 0
  mkdir -p "$REPO"
  mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144,cache=loose nook-repo "$REPO"
}

facts() {
  local cg
  cg=$(awk -F: '$1 == "0" { print $3 }' /proc/self/cgroup)
  echo "== guest facts"
  echo "booted in:       $(cut -d' ' -f1 /proc/uptime) s"
  echo "kernel:          $(uname -r)"
  echo "systemd:         $(systemctl --version | head -n1)"
  echo "/sys/fs/cgroup:  $(stat -fc %T /sys/fs/cgroup) ($(findmnt -no OPTIONS /sys/fs/cgroup))"
  echo "controllers:     $(cat /sys/fs/cgroup/cgroup.controllers)"
  echo "root subtree:    $(cat /sys/fs/cgroup/cgroup.subtree_control)"
  echo "test cgroup:     $cg"
  echo "unit subtree:    $(cat "/sys/fs/cgroup${cg%/runner}/cgroup.subtree_control")"
  echo "cpus, memory:    $(nproc), $(awk '/MemTotal/ { print $2 / 1024 " MiB" }' /proc/meminfo)"
  echo "apparmor:        $(cat /sys/module/apparmor/parameters/enabled 2>/dev/null || echo absent)"
  echo "selinux enforce: $(cat /sys/fs/selinux/enforce 2>/dev/null || echo absent)"
  echo "repo:            $REPO"
}

# Run every listed test binary from the repo; write the summary and the status.
run_tests() {
  local status=0 summary=() bin name start rc verdict
  export HOME=/root TMPDIR=/tmp RUST_BACKTRACE=1
  # The in-container probe, built once on the host (tests/common/mod.rs): no compile per
  # test binary, which takes seconds under TCG.
  export NOOK_PROBE=$REPO/target/nook-probe
  # Lets a test tell it runs in this guest.
  export NOOK_VM=1
  # The test binaries are not units (tests/units.rs makes its own): a nook they run must
  # not take this unit's cgroup for its own.
  unset INVOCATION_ID
  # Software emulation makes each container start ~50x slower: the instant-exit loop
  # runs 100 times here (1000 on the host).
  export NOOK_INSTANT_RUNS=100
  cd "$REPO"
  while read -r bin; do
    [ -n "$bin" ] || continue
    name=$(basename "$bin")
    name=${name%-*} # lifecycle-0123abcd -> lifecycle
    printf '\n== %s (%s)\n' "$name" "$bin"
    start=$SECONDS
    rc=0
    # </dev/null: the loop reads the list from stdin.
    timeout -k 10 "$BIN_TIMEOUT" "$REPO/$bin" --test-threads="$THREADS" "${TEST_ARGS[@]}" \
      </dev/null || rc=$?
    case $rc in
      0) verdict=ok ;;
      124 | 137) verdict="TIMEOUT (BIN_TIMEOUT ${BIN_TIMEOUT} s)" ;;
      *) verdict="FAILED (exit $rc)" ;;
    esac
    [ "$rc" = 0 ] || status=1
    summary+=("$(printf '%-12s %s in %d s' "$name" "$verdict" $((SECONDS - start)))")
  done <"$results/tests"
  printf '\n== summary (guest)\n'
  printf '%s\n' "${summary[@]}"
  echo "$status" >"$results/status.tmp"
  mv "$results/status.tmp" "$results/status"
}

# `make bench-vm`: the lifecycle bench on cgroup v2 (software emulation makes every
# figure large; the ratios are what compare).
run_bench() {
  local rc=0
  cd "$REPO"
  printf '\n== bench (cgroup v2, %s iterations)\n' "$BENCH"
  NOOK=$REPO/target/x86_64-unknown-linux-gnu/release/nook BUSYBOX=/bin/busybox \
    python3 integration/bench.py "$BENCH" --warmup 2 || rc=$?
  echo "$rc" >"$results/status.tmp"
  mv "$results/status.tmp" "$results/status"
}

main() {
  trap finish EXIT
  # shellcheck source=/dev/null
  . "$results/plan" # REPO, BENCH, THREADS, BIN_TIMEOUT, TEST_ARGS
  exec >>"$results/output.log" 2>&1
  enter_leaf_cgroup
  mount_repo
  facts
  if [ -n "${BENCH:-}" ]; then run_bench; else run_tests; fi
}

main "$@"; exit
