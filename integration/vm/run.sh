#!/usr/bin/env bash
# `make test-vm`: run nook's integration tests as root in a Debian bookworm guest with
# cgroup v2 only and systemd as PID 1, and report them here.
#
#   integration/vm/run.sh [TEST-ARGS...]   e.g. run.sh create_start_kill_delete --exact
#
# 1. installs the host packages it needs (apt-get), 2. builds or reuses the guest
# (build-image.sh), 3. builds nook, the integration tests and the probe here (static:
# the guest needs no Rust toolchain), 4. boots the guest with the repo shared over 9p
# twice ("nook": uncached, at /nook, for guest-run.sh and its results; "nook-repo":
# cached, at the repo's own path, for the tests), where guest-run.sh runs each test
# binary (with TEST-ARGS), 5. shows their output as it comes and exits with the
# guest's status (1 when the guest never reported).
#
# Environment: NOOK_VM_CACHE (guest image dir, default /var/cache/nook-vm),
# NOOK_VM_TIMEOUT (whole run, s, default 1800), NOOK_VM_BIN_TIMEOUT (one test binary, s,
# default 600), NOOK_VM_TESTS (binaries to run, e.g. "lifecycle run"; default all),
# NOOK_VM_THREADS (--test-threads, default the guest's cpus), NOOK_VM_CPUS (default
# nproc, at most 8), NOOK_VM_MEM (MiB, default 2048), NOOK_VM_ACCEL (auto, kvm or tcg),
# NOOK_VM_LSM (apparmor, the default, or selinux: boots with security=selinux, the
# guest's policy loaded in permissive mode).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)
cache=${NOOK_VM_CACHE:-/var/cache/nook-vm}
results=$repo/target/vm-results
cpus=${NOOK_VM_CPUS:-$(($(nproc) < 8 ? $(nproc) : 8))}

log() { printf 'test-vm: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# Host packages (integration/deps.sh's vm list), installed with apt-get when missing (CI
# runs this as root on a fresh clone).
ensure_packages() {
  "$repo/integration/deps.sh" vm
}

# Build nook, the integration tests and the probe; write the guest's list of test
# binaries (paths relative to the repo) to $results/tests.
build_tests() {
  local json target bins=() b name
  cd "$repo"
  target=$(cargo metadata --format-version 1 --no-deps |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
  case $target/ in
    "$repo"/*) ;;
    *) die "the cargo target dir ($target) must be inside $repo: the guest sees only the repo" ;;
  esac
  log "building the integration tests"
  # --test '*': every integration test (and the nook binary they run), not the unit tests.
  json=$(cargo test --no-run --message-format=json --test '*')
  while read -r b; do
    name=$(basename "$b")
    name=${name%-*}
    if [ -z "${NOOK_VM_TESTS:-}" ] || [[ " $NOOK_VM_TESTS " == *" $name "* ]]; then
      bins+=("${b#"$repo"/}")
    fi
  done < <(grep '"reason":"compiler-artifact"' <<<"$json" | grep '"kind":\["test"\]' |
    sed -n 's/.*"executable":"\([^"]*\)".*/\1/p' | sort)
  [ ${#bins[@]} -gt 0 ] || die "no integration test binaries${NOOK_VM_TESTS:+ named $NOOK_VM_TESTS}"
  # The in-container probe, static (tests/common/mod.rs uses it through NOOK_PROBE).
  # probe.c includes the other files there: any of them newer means a rebuild.
  if [ ! -f target/nook-probe ] || [ -n "$(find tests/probe -newer target/nook-probe)" ]; then
    cc -static -O2 -o target/nook-probe.tmp tests/probe/probe.c
    mv target/nook-probe.tmp target/nook-probe
  fi
  rm -rf "$results"
  mkdir -p "$results"
  printf '%s\n' "${bins[@]}" >"$results/tests"
}

# NOOK_VM_BENCH=N: no tests; a release nook for the guest's `integration/bench.py N`.
build_bench() {
  cd "$repo"
  log "building the release nook for the bench"
  cargo build --release
  rm -rf "$results"
  mkdir -p "$results"
  : >"$results/tests"
}

# What guest-run.sh reads (shell syntax, values quoted).
write_plan() {
  {
    printf 'REPO=%q\n' "$repo"
    printf 'BENCH=%q\n' "${NOOK_VM_BENCH:-}"
    printf 'THREADS=%q\n' "${NOOK_VM_THREADS:-$cpus}"
    printf 'BIN_TIMEOUT=%q\n' "${NOOK_VM_BIN_TIMEOUT:-600}"
    printf 'TEST_ARGS=('
    [ $# -eq 0 ] || printf '%q ' "$@"
    printf ')\n'
  } >"$results/plan"
}

# Whether KVM can boot Debian's kernel here: not on a PVM host (/dev/kvm exists but a
# stock kernel hangs), and only if a kernel-only boot (no root: it panics and exits at
# once) prints its banner within 20 s.
kvm_works() {
  [ -w /dev/kvm ] && [ ! -e /sys/module/kvm_pvm ] || return 1
  local out
  out=$(timeout 20 qemu-system-x86_64 -enable-kvm -cpu host -machine q35 -m 256 \
    -nodefaults -no-user-config -display none -no-reboot -serial stdio \
    -kernel "$cache/vmlinux" -append "console=ttyS0 panic=-1" 2>/dev/null || true)
  grep -q 'Linux version' <<<"$out"
}

# Sets accel: qemu's accelerator and cpu arguments.
pick_accel() {
  # shellcheck disable=SC2054 # commas inside qemu options
  local tcg=(-accel tcg,thread=multi -cpu max) kvm=(-enable-kvm -cpu host)
  case ${NOOK_VM_ACCEL:-auto} in
    kvm) accel=("${kvm[@]}") ;;
    tcg) accel=("${tcg[@]}") ;;
    auto) if kvm_works; then accel=("${kvm[@]}"); else accel=("${tcg[@]}"); fi ;;
    *) die "NOOK_VM_ACCEL must be auto, kvm or tcg" ;;
  esac
}

# Boot the guest and show output.log as the guest writes it (the share is live).
boot() {
  local accel=() qemu_pid qemu_rc=0 limit=${NOOK_VM_TIMEOUT:-1800} lsm_args=
  pick_accel
  case ${NOOK_VM_LSM:-apparmor} in
    apparmor) ;;
    selinux) lsm_args="security=selinux selinux=1" ;;
    *) die "NOOK_VM_LSM must be apparmor or selinux" ;;
  esac
  log "booting the guest (${accel[*]}, $cpus cpus, timeout $limit s)"
  timeout -k 10 "$limit" qemu-system-x86_64 \
    "${accel[@]}" -machine q35 -smp "$cpus" -m "${NOOK_VM_MEM:-2048}" \
    -nodefaults -no-user-config -display none -no-reboot -nic none \
    -serial "file:$results/serial.log" \
    -kernel "$cache/vmlinux" -initrd "$cache/initrd.img" \
    -append "console=ttyS0 panic=-1 systemd.unified_cgroup_hierarchy=1 $lsm_args" \
    -drive "file=$cache/rootfs.img,format=raw,if=virtio,snapshot=on" \
    -virtfs "local,path=$repo,mount_tag=nook,security_model=passthrough,id=nook" \
    -virtfs "local,path=$repo,mount_tag=nook-repo,security_model=passthrough,id=nook-repo" &
  qemu_pid=$!
  # An interrupted run takes its guest along (background jobs ignore Ctrl-C).
  trap 'kill "$qemu_pid" 2>/dev/null || true' EXIT
  trap 'exit 130' INT TERM
  touch "$results/output.log"
  # --pid: tail reads to the end once qemu is gone, then exits.
  tail -n +1 -f --pid="$qemu_pid" "$results/output.log" &
  wait "$qemu_pid" || qemu_rc=$?
  wait $! || true
  trap - EXIT INT TERM
  if [ "$qemu_rc" = 124 ]; then
    log "the guest did not finish within $limit s (NOOK_VM_TIMEOUT)"
  elif [ "$qemu_rc" != 0 ]; then
    log "qemu exited with $qemu_rc"
  fi
}

main() {
  local start=$SECONDS t rc
  # debootstrap, and qemu's 9p passthrough (it keeps the guest's owners and modes).
  [ "$(id -u)" = 0 ] || die "needs root"
  ensure_packages
  "$here/build-image.sh" "$cache"
  if [ -n "${NOOK_VM_BENCH:-}" ]; then build_bench; else build_tests; fi
  write_plan "$@"
  t=$SECONDS
  boot
  log "guest ran for $((SECONDS - t)) s (total $((SECONDS - start)) s)"
  if [ ! -s "$results/status" ]; then
    log "the guest wrote no status; the end of its serial console ($results/serial.log):"
    tail -n 40 "$results/serial.log" >&2 || true
    exit 1
  fi
  rc=$(cat "$results/status")
  if [ "$rc" != 0 ]; then log "FAILED in the guest (status $rc)"
  elif [ -n "${NOOK_VM_BENCH:-}" ]; then log "the bench ran in the guest"
  else log "all test binaries passed in the guest"; fi
  exit "$rc"
}

# On one line with main: bash reads a script as it runs, and this one may be edited meanwhile.
main "$@"; exit
