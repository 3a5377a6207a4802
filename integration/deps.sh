#!/usr/bin/env bash
# The one list of Debian packages nook's build, tests, bench and VM run need, and the
# step that installs the missing ones. The Makefile (`make deps`, and every target
# before it builds), .ci/run and integration/vm/run.sh all call this script, so the
# lists never drift apart.
#
#   integration/deps.sh GROUP...          install what GROUP needs (as root), or say how
#   integration/deps.sh --list GROUP...   print the packages, one a line
#
# Groups: build (nook and the example apps), devbuild (build plus the test targets: make
# unit-test), test (make test), bench (make bench), vm (make test-vm, on the host side).
set -euo pipefail

# cc and a static libc (libc6-dev ships libc.a) build nook (linked statically) and the
# in-container probe; libseccomp-dev ships libseccomp.a for the libseccomp crate.
build=(gcc libc6-dev make libseccomp-dev)
# Building the test targets too (make unit-test, make test): protoc, which the k8s-cri
# dev-dependency (tests/cri.rs's CRI client) runs at build time.
devbuild=("${build[@]}" protobuf-compiler)
# runc: the pack tests also run packed bundles with it (plain OCI bundles); podman and
# containerd: tests/podman.rs and tests/containerd.rs drive nook through them;
# docker.io: tests/docker.rs runs a private dockerd with nook as a runtime; busybox-static:
# shell scripts in test containers; tmux: the terminal tests' user; apparmor: its parser
# (tests/lsm.rs, where AppArmor is on); uidmap: newuidmap/newgidmap (tests/rootless.rs);
# etcd-server and etcd-client: the etcd tests/discovery.rs starts and checks with etcdctl;
# git: the config repositories of tests/apps.rs.
test=("${build[@]}" "${devbuild[@]}" runc busybox-static tmux podman containerd docker.io apparmor uidmap
  etcd-server etcd-client git)
# crun and runc side by side with nook.
bench=("${build[@]}" runc crun busybox-static python3 strace)
# qemu (software emulation works), debootstrap and mkfs for the guest image; busybox
# for its initramfs; the host builds the tests the guest runs (devbuild).
vm=("${devbuild[@]}" qemu-system-x86 debootstrap e2fsprogs busybox-static xz-utils)

say() { printf 'deps: %s\n' "$*" >&2; }

packages() {
  local g
  for g in "$@"; do
    case $g in
      build) printf '%s\n' "${build[@]}" ;;
      devbuild) printf '%s\n' "${devbuild[@]}" ;;
      test) printf '%s\n' "${test[@]}" ;;
      bench) printf '%s\n' "${bench[@]}" ;;
      vm) printf '%s\n' "${vm[@]}" ;;
      *) say "unknown group '$g' (build, devbuild, test, bench or vm)"; exit 2 ;;
    esac
  done | awk '!seen[$0]++'
}

list=0
if [ "${1:-}" = --list ]; then
  list=1
  shift
fi
[ $# -gt 0 ] || { say "usage: $0 [--list] build|devbuild|test|bench|vm..."; exit 2; }
mapfile -t want < <(packages "$@")
if [ $list = 1 ]; then
  printf '%s\n' "${want[@]}"
  exit 0
fi

# cargo comes from rustup (Debian 12's cargo 0.66 is older than the crates need).
export PATH="$HOME/.cargo/bin:/usr/local/cargo/bin:$PATH"
if ! command -v cargo >/dev/null 2>&1 && [[ " $* " == *" build "* || " $* " == *" devbuild "* || " $* " == *" test "* ]]; then
  say "cargo is not installed: install a current Rust toolchain with rustup (as the user"
  say "who builds: its installer puts cargo in ~/.cargo/bin), then run this again"
  exit 1
fi

missing=()
if command -v dpkg >/dev/null 2>&1; then
  for p in "${want[@]}"; do
    dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed' || missing+=("$p")
  done
else
  say "not a Debian system: make sure these (Debian names) are installed: ${want[*]}"
  exit 0
fi
[ ${#missing[@]} -gt 0 ] || exit 0

if [ "$(id -u)" != 0 ]; then
  say "missing packages: ${missing[*]}"
  say "install them with:  sudo apt-get install -y ${missing[*]}"
  exit 1
fi
say "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Recommends only where they are wanted (podman's); qemu's would bring a desktop's worth.
if [ "$*" = vm ]; then
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi
