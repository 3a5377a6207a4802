# nook: `make demo` runs a small static app in a container; `make test` runs every test.
CARGO ?= cargo
CC ?= cc
BUILD := build
NOOK := target/x86_64-unknown-linux-gnu/release/nook
# make bench N=... (default 200); make soak N=... and make bench-soak N=... (default 10000).
ifeq ($(origin N),undefined)
BENCH_N := 200
SOAK_N := 10000
else
BENCH_N := $(N)
SOAK_N := $(N)
endif

.PHONY: all build demo test unit-test fuzz soak bench bench-soak bench-unpack bench-vm clean lint test-vm deps deps-build as-root start-order

all: build

# One list of packages (integration/deps.sh) for the build, the tests, the bench and the
# VM run; each target installs what it needs (as root), or says what to run.
DEPS := integration/deps.sh
# Targets that run containers stop at once for another user, naming the command to run.
as-root:
	@if [ "$$(id -u)" != 0 ]; then \
	  echo "make $(MAKECMDGOALS): runs containers, so it needs root; run:" >&2; \
	  echo "    sudo env PATH=\"$$PATH\" make $(MAKECMDGOALS)" >&2; exit 1; fi

deps:
	$(DEPS) build test
deps-build:
	@$(DEPS) build

build: deps-build
	$(CARGO) build --release

$(BUILD)/hello/rootfs/hello: rootfs-examples/hello/hello.c
	mkdir -p $(BUILD)/hello/rootfs/proc $(BUILD)/hello/rootfs/dev
	$(CC) -static -O2 -o $@ $<
	cp rootfs-examples/hello/config.json $(BUILD)/hello/config.json

# Build nook and the example app, make its bundle, run it (needs root).
demo: as-root build $(BUILD)/hello/rootfs/hello
	$(NOOK) --root $(BUILD)/state run --bundle $(BUILD)/hello demo-$$$$

EX := $(BUILD)/examples
$(EX)/httpd: rootfs-examples/httpd/httpd.c
	mkdir -p $(EX)
	$(CC) -static -O2 -o $@ $<
$(EX)/dynamic: rootfs-examples/dynamic/dynamic.c
	mkdir -p $(EX)
	$(CC) -O2 -o $@ $< -lm
$(EX)/resolve: rootfs-examples/resolve/resolve.c
	mkdir -p $(EX)
	$(CC) -O2 -o $@ $<

# Each example: packed into a minimal bundle tar by `nook pack`, then run by nook.
example-httpd: build $(EX)/httpd
	rootfs-examples/run-example.sh $(NOOK) $(EX) httpd
example-dynamic: build $(EX)/dynamic
	rootfs-examples/run-example.sh $(NOOK) $(EX) dynamic --libc host --arg 2
example-resolve: build $(EX)/resolve
	rootfs-examples/run-example.sh $(NOOK) $(EX) resolve --libc host
examples: example-httpd example-dynamic example-resolve

# Unit tests and the integration tests that run real containers (as root).
# NOOK_TEST_STRICT: a test whose tool is missing fails instead of skipping (the
# packages are installed just before, so a skip would mean the list lacks one).
test: as-root
	@$(DEPS) test
	NOOK_TEST_STRICT=1 $(CARGO) test --no-fail-fast --all-targets -- --test-threads=4

# The unit tests alone (no root, no containers).
unit-test:
	@$(DEPS) devbuild
	$(CARGO) test --lib --bins

# N container lifecycles (default 10000; plain, limited, seccomp, exec'd) in 2 parallel
# loops beside a long foreground run: fails if mounts, cgroup dirs, nook's processes,
# files under --root or the supervisor's fds or memory differ afterwards.
soak: as-root build
	@$(DEPS) bench
	NOOK=$(NOOK) python3 integration/soak.py $(SOAK_N)

# Fuzz each target (fuzz/fuzz_targets) for FUZZ_SECONDS (default 60): needs cargo-fuzz and
# a nightly toolchain (integration/fuzz.sh says what to do without them); FUZZ_TARGETS
# picks some. Not part of make test.
FUZZ_SECONDS ?= 60
fuzz:
	integration/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

# Full lifecycles of nook, crun and runc side by side (needs runc, crun, busybox-static):
# median/p90/p99, RSS; for the plain run also nook's per-step breakdown (50 runs), syscalls
# per run (strace; skipped, saying so, without it), containers/s in 1 and 2 loops (10 s
# each) and exec latency (100). Options: integration/bench.py's docstring.
bench: as-root build
	@$(DEPS) bench
	NOOK=$(NOOK) integration/bench.sh $(BENCH_N) --steps 50 --syscalls --throughput 10 --exec 100
	@echo "--- the same with a 64 MiB memory limit and a pids limit of 64"
	NOOK=$(NOOK) integration/bench.sh $(BENCH_N) --config-patch integration/bench-limits.json
	@echo "--- the same with the default seccomp profile of nook spec (docker's default strength)"
	NOOK=$(NOOK) integration/bench.sh $(BENCH_N) --seccomp default
	$(MAKE) --no-print-directory bench-unpack

# N consecutive `nook run`s of /bin/true (default 10000), each with a 30 s timeout; stops
# at the first failure or hang, prints runs/s, then checks that nothing is left under
# --root or in /sys/fs/cgroup/*/nook/ for its ids.
# link/start-order.txt: the start path's functions in the order they run, for the
# release link (build.rs). Regenerate after large changes to the start path.
start-order: as-root
	@$(DEPS) bench
	integration/start-order.sh

bench-soak: as-root build
	@$(DEPS) bench
	NOOK=$(NOOK) python3 integration/bench-soak.py $(SOAK_N)

# Bundle tars: nook's unpack against GNU tar, and a cached tar's start against a directory.
# The lifecycle bench in the cgroup v2 guest with systemd (qemu, software emulation: the
# ratios compare, not the absolute figures): nook, crun and runc, N iterations (30).
BENCH_VM_N ?= 30
bench-vm: as-root
	@$(DEPS) vm
	NOOK_VM_BENCH=$(BENCH_VM_N) integration/vm/run.sh

bench-unpack: build
	NOOK=$(NOOK) integration/bench-unpack.sh 50

clean:
	$(CARGO) clean
	rm -rf $(BUILD)

# The integration tests as root in a Debian bookworm guest with cgroup v2 and systemd
# (qemu; builds the guest image once into /var/cache/nook-vm), AppArmor on; then the LSM
# tests again in the same guest booted with SELinux instead. See integration/vm/README.md.
test-vm:
	integration/vm/run.sh
	NOOK_VM_LSM=selinux NOOK_VM_TESTS=lsm integration/vm/run.sh
