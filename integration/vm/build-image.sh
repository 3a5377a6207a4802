#!/usr/bin/env bash
# Build the test guest for `make test-vm` into CACHE_DIR (default $NOOK_VM_CACHE, else
# /var/cache/nook-vm), once: a cached guest whose recipe (this file's hash) matches is reused.
#
# The guest is Debian bookworm (minbase + systemd as PID 1 + udev + kmod, and the tools
# the tests run) on Debian's stock kernel, with cgroup v2 only (bookworm's default:
# cgroup2 at /sys/fs/cgroup).
# It mounts the 9p share tagged "nook" (the project folder) at /nook and runs
# nook-test.service: /nook/integration/vm/guest-run.sh, then powers off.
#
# Output, in CACHE_DIR:
#   vmlinux      the kernel, uncompressed ELF (qemu boots it through PVH: no BIOS, no decompressor)
#   initrd.img   busybox + the modules needed to mount the root disk and the 9p share
#   rootfs.img   a sparse raw ext4 image (run.sh boots it with snapshot=on: it is never changed)
#   recipe       the hash of this file, written last: a build that did not finish is rebuilt
#
# The host is not changed: debootstrap writes into a work directory under CACHE_DIR, the
# kernel package is unpacked there with dpkg-deb -x, and the image is made with
# `mkfs.ext4 -d` (no loop device, no mount). Needs root (debootstrap), debootstrap,
# e2fsprogs, busybox-static, xz-utils and apt (run.sh installs them).
set -euo pipefail

cache=${1:-${NOOK_VM_CACHE:-/var/cache/nook-vm}}
self=$(readlink -f "$0")
recipe=$(sha256sum "$self" | cut -d' ' -f1)
# Modules the initramfs loads (with their dependencies) to reach systemd: the virtio
# bus and disk, ext4 (crc32c_generic is asked for through the crypto API, not as a
# dependency, so it is named), and the 9p share (loaded here so /nook mounts at once).
initrd_modules=(virtio_pci virtio_blk crc32c_generic ext4 9pnet_virtio 9p)
# Module directories of hardware a VM never has, left out of the guest (about 240 MiB).
prune_modules=(sound drivers/gpu drivers/media drivers/net/wireless drivers/net/ethernet
  drivers/infiniband drivers/scsi drivers/usb drivers/iio drivers/staging drivers/comedi
  drivers/hwmon drivers/bluetooth net/wireless net/mac80211 net/bluetooth)

log() { printf 'build-image: %s\n' "$*" >&2; }

have_image() {
  [ -f "$cache/recipe" ] && [ "$(cat "$cache/recipe")" = "$recipe" ] &&
    [ -f "$cache/vmlinux" ] && [ -f "$cache/initrd.img" ] && [ -f "$cache/rootfs.img" ]
}

# The Debian mirror apt uses for bookworm (deb822 .sources or one-line format).
mirror() {
  local f sources=() lists=() m
  for f in /etc/apt/sources.list.d/*.sources; do [ -f "$f" ] && sources+=("$f"); done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do [ -f "$f" ] && lists+=("$f"); done
  m=$(awk '
    FNR == 1 || /^$/ { deb = suite = 0; uri = "" }
    /^Types:/ && / deb( |$)/ { deb = 1 }
    /^Suites:/ && / bookworm( |$)/ { suite = 1 }
    /^URIs:/ { uri = $2 }
    deb && suite && uri && !found { found = uri }
    END { print found }' /dev/null "${sources[@]}")
  [ -n "$m" ] || m=$(awk '
    { sub(/\[[^]]*\] */, "") }
    $1 == "deb" && $3 == "bookworm" && !found { found = $2 }
    END { print found }' /dev/null "${lists[@]}")
  echo "${NOOK_VM_MIRROR:-${m:-http://deb.debian.org/debian}}"
}

# Unmount whatever a failed debootstrap left mounted under $1 (deepest first).
umount_under() {
  local m
  for m in $(awk -v d="$1/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r); do
    umount -l "$m" || true
  done
}

cleanup() {
  [ -n "${work:-}" ] && [ -d "$work" ] || return 0
  umount_under "$work"
  # --one-file-system: never descend into something still mounted (a host /dev or /proc).
  rm -rf --one-file-system "$work"
}

# The newest bookworm kernel, unpacked (not installed) into $work/kernel.
fetch_kernel() {
  local pkg
  pkg=$(apt-cache depends --important linux-image-amd64 | awk '/Depends:/ && !p { p = $2 } END { print p }')
  [ -n "$pkg" ] || { log "cannot resolve linux-image-amd64 (apt-get update?)"; exit 1; }
  log "kernel package $pkg"
  (cd "$work" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >/dev/null)
  dpkg-deb -x "$work"/"$pkg"_*.deb "$work/kernel"
  kver=$(basename "$(ls -d "$work"/kernel/lib/modules/*)")
}

# The uncompressed ELF vmlinux, cut out of the bzImage's xz payload. LC_ALL=C: a UTF-8
# locale makes grep -P miss the binary magic.
extract_vmlinux() {
  local bz=$work/kernel/boot/vmlinuz-$kver off
  off=$(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$bz" | awk -F: 'NR == 1 { print $1 }')
  [ -n "$off" ] || { log "no xz payload in $bz"; exit 1; }
  # xz stops after its stream, so tail may die of SIGPIPE: check the result instead.
  xz -dc --single-stream <(tail -c +$((off + 1)) "$bz") >"$work/vmlinux"
  [ "$(head -c4 "$work/vmlinux" | od -An -c | tr -d ' ')" = 177ELF ] ||
    { log "vmlinux is not an ELF file"; exit 1; }
}

debootstrap_root() {
  local m
  m=$(mirror)
  log "debootstrap bookworm from $m"
  mkdir -p "$cache/debs"
  # What the tests run on the host side, as .ci/run installs it on a CI host: cc and
  # libc6-dev (the pack tests compile programs), runc (pack), busybox-static (shell
  # scripts in containers), tmux (terminal), ca-certificates (inject), apparmor
  # (apparmor_parser: tests/lsm.rs loads a profile; Debian's kernel enables AppArmor),
  # selinux-policy-default (the policy a boot with security=selinux loads: run.sh's
  # NOOK_VM_LSM=selinux, for the SELinux tests in tests/lsm.rs).
  local tools=gcc,libc6-dev,runc,busybox-static,tmux,ca-certificates,apparmor
  tools+=,selinux-policy-default
  # dbus: the system bus, which the systemd cgroup driver (--systemd-cgroup) talks to.
  # (podman comes afterwards, install_clients: here debootstrap fails configuring
  # containers-common.)
  tools+=,dbus
  debootstrap --variant=minbase --include=systemd,systemd-sysv,udev,kmod,$tools \
    --cache-dir="$cache/debs" bookworm "$root" "$m" >"$work/debootstrap.log" 2>&1 || {
    tail -n 30 "$work/debootstrap.log" >&2
    exit 1
  }
}

# The clients the tests drive nook through: podman, for tests/units.rs (its default
# systemd cgroup manager) and tests/podman.rs; containerd, for tests/containerd.rs and
# tests/cri.rs (the CRI plugin with the systemd cgroup driver, kubelet's default on such
# hosts); dbus-user-session, the session bus of a user's systemd (tests/rootless.rs's
# --systemd-cgroup through `systemd --user`); etcd-server and etcd-client, the etcd a
# unit from `nook unit --announce` registers in (tests/units.rs); git, the config
# repositories of tests/apps.rs; crun and python3, for `make bench-vm` (integration/bench.py
# with crun and runc beside nook on cgroup v2). Installed by the guest's own apt once the
# base is configured (no recommends: the tests pass the runtime's path and need no
# network helpers).
install_clients() {
  local resolv=$root/etc/resolv.conf saved=$work/resolv.conf.guest
  log "installing podman, containerd, dbus-user-session, etcd, git, crun and python3 in the guest"
  [ ! -e "$resolv" ] || mv "$resolv" "$saved"
  cp -L /etc/resolv.conf "$resolv"
  chroot "$root" env DEBIAN_FRONTEND=noninteractive sh -c \
    'apt-get update -qq && apt-get install -y -qq --no-install-recommends podman containerd dbus-user-session etcd-server etcd-client git crun python3' \
    >"$work/clients.log" 2>&1 || {
    tail -n 30 "$work/clients.log" >&2
    exit 1
  }
  rm -f "$resolv"
  [ ! -e "$saved" ] || mv "$saved" "$resolv"
  chroot "$root" apt-get clean
}

# The kernel's modules (minus absent hardware) with their index, built by the guest's depmod.
install_modules() {
  local d=$root/lib/modules/$kver
  mkdir -p "$root/lib/modules"
  cp -a "$work/kernel/lib/modules/$kver" "$d"
  for p in "${prune_modules[@]}"; do rm -rf "${d:?}/kernel/$p"; done
  chroot "$root" depmod -a "$kver"
}

# Everything that makes the guest a test runner rather than a login system.
configure_guest() {
  echo nook-vm >"$root/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 nook-vm\n::1 localhost\n' >"$root/etc/hosts"
  # The root disk is a throwaway snapshot: no fsck. The share is mounted rw; nofail so a
  # broken share still boots far enough to show why (nook-test.service then fails).
  cat >"$root/etc/fstab" <<'EOF'
/dev/vda  /      ext4  rw,relatime  0 0
nook      /nook  9p    trans=virtio,version=9p2000.L,msize=262144,nofail  0 0
EOF
  mkdir -p "$root/nook"
  # Used only when booted with security=selinux: permissive (the image's files carry no
  # labels), so the policy is loaded and labels apply, but nothing is denied.
  printf 'SELINUX=permissive\nSELINUXTYPE=default\n' >"$root/etc/selinux/config"
  # With -cpu max the guest sees svm/vmx; KVM inside TCG is useless and slow to load.
  printf 'blacklist kvm_amd\nblacklist kvm_intel\n' >"$root/etc/modprobe.d/nook-vm.conf"

  cat >"$root/etc/systemd/system/nook-test.service" <<'EOF'
# Runs nook's integration tests from the share, then powers off (run.sh reads the results).
[Unit]
Description=nook integration tests (/nook/integration/vm/guest-run.sh)
RequiresMountsFor=/nook
# Power off once it ends, however it ends (the script itself never does, so it can
# also be run by hand).
SuccessAction=poweroff
FailureAction=poweroff

[Service]
Type=oneshot
# The tests create cgroups: the unit owns its subtree (guest-run.sh moves itself to a leaf).
Delegate=yes
ExecStart=/bin/bash /nook/integration/vm/guest-run.sh
TimeoutStartSec=infinity
StandardOutput=journal+console
StandardError=journal+console

[Install]
WantedBy=multi-user.target
EOF
  chroot "$root" systemctl enable -q nook-test.service
  # No logins (nothing waits on a console), no first-boot prompts, no timers firing
  # mid-test, no profiles compiled at boot (apparmor.service; the tests load their own;
  # AppArmor itself is on, from the kernel), and no modprobe@ units for modules the
  # tests do not need (each takes seconds under TCG; the kernel still loads modules on
  # demand).
  chroot "$root" systemctl mask -q getty.target serial-getty@ttyS0.service getty@tty1.service \
    systemd-firstboot.service apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
    e2scrub_all.timer fstrim.timer apparmor.service \
    podman.service podman.socket podman-restart.service podman-auto-update.timer \
    containerd.service \
    modprobe@configfs.service modprobe@dm_mod.service modprobe@drm.service \
    modprobe@efi_pstore.service modprobe@fuse.service modprobe@loop.service
  # Smaller image: no apt lists or package cache, no docs.
  rm -rf "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
    "$root"/usr/share/man/*
}

# A tiny initramfs: busybox, the modules above in load order, and an /init that
# mounts /dev/vda and hands over to systemd.
make_initrd() {
  local ird=$work/initrd d=$root/lib/modules/$kver m dep
  local -A seen=()
  local order=()
  mkdir -p "$ird"/{bin,dev,proc,sys,root,modules}
  cp /bin/busybox "$ird/bin/busybox"
  mknod -m 600 "$ird/dev/console" c 5 1
  # modules.dep lists each module's full dependency closure; the last one loads first.
  for m in "${initrd_modules[@]}"; do
    local line deps=() path
    line=$(grep -E "/$m\.ko: |/$m\.ko:\$" "$d/modules.dep") || { log "no module $m"; exit 1; }
    path=${line%%:*}
    read -ra deps <<<"${line#*:}"
    for ((i = ${#deps[@]} - 1; i >= 0; i--)); do
      dep=${deps[i]}
      [ -n "${seen[$dep]:-}" ] || { seen[$dep]=1; order+=("$dep"); }
    done
    [ -n "${seen[$path]:-}" ] || { seen[$path]=1; order+=("$path"); }
  done
  for m in "${order[@]}"; do
    cp "$d/$m" "$ird/modules/"
    basename "$m" >>"$ird/modules/order"
  done
  cat >"$ird/init" <<'EOF'
#!/bin/busybox sh
# initramfs PID 1: load the drivers, mount the root disk, exec systemd.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
fail() { echo "initramfs: $*"; poweroff -f; }
while read -r m; do insmod "/modules/$m" || fail "insmod $m failed"; done </modules/order
i=0
until [ -b /dev/vda ]; do
  i=$((i + 1)); [ $i -lt 100 ] || fail "no /dev/vda"; sleep 0.1
done
mount -t ext4 -o rw /dev/vda /root || fail "cannot mount /dev/vda"
umount /proc /sys /dev
exec switch_root /root /sbin/init
EOF
  chmod 755 "$ird/init"
  (cd "$ird" && find . | busybox cpio -o -H newc --quiet) >"$work/initrd.img"
}

main() {
  [ "$(id -u)" = 0 ] || { log "needs root (debootstrap)"; exit 1; }
  mkdir -p "$cache"
  # One builder at a time; a second run waits, then finds the image built.
  exec 9>"$cache/.lock"
  flock 9
  if have_image; then
    log "reusing the guest in $cache"
    return
  fi
  local start=$SECONDS
  log "building the guest in $cache (about 2 minutes)"
  rm -f "$cache/recipe"
  # Work dirs of builds that were killed.
  for work in "$cache"/build.*; do cleanup; done
  work=$(mktemp -d "$cache/build.XXXXXX")
  root=$work/root
  trap cleanup EXIT
  apt-get update -qq
  fetch_kernel
  extract_vmlinux
  debootstrap_root
  install_clients
  install_modules
  configure_guest
  make_initrd
  log "making the ext4 image"
  rm -f "$work/rootfs.img"
  mkfs.ext4 -q -F -L nook-root -d "$root" "$work/rootfs.img" 4G >/dev/null
  mv -f "$work/vmlinux" "$work/initrd.img" "$work/rootfs.img" "$cache/"
  echo "$kver" >"$cache/kernel-version"
  echo "$recipe" >"$cache/recipe"
  log "guest built in $((SECONDS - start)) s (kernel $kver, $(du -sh "$cache/rootfs.img" | cut -f1) used)"
}

# On one line with main: bash reads a script as it runs, and this one may be edited meanwhile.
main "$@"; exit
