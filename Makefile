# nook: `make demo` runs a small static app in a container; `make test` runs every test.
CARGO ?= cargo
CC ?= cc
BUILD := build
NOOK := target/x86_64-unknown-linux-gnu/release/nook
N ?= 200

.PHONY: all build demo test unit-test bench clean lint

all: build

build:
	$(CARGO) build --release

$(BUILD)/hello/rootfs/hello: rootfs-examples/hello/hello.c
	mkdir -p $(BUILD)/hello/rootfs/proc $(BUILD)/hello/rootfs/dev
	$(CC) -static -O2 -o $@ $<
	cp rootfs-examples/hello/config.json $(BUILD)/hello/config.json

# Build nook and the example app, make its bundle, run it (needs root).
demo: build $(BUILD)/hello/rootfs/hello
	$(NOOK) --root $(BUILD)/state run --bundle $(BUILD)/hello demo-$$$$

# Unit tests and the integration tests that run real containers (as root).
test:
	$(CARGO) test --no-fail-fast --all-targets -- --test-threads=4

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

# Full lifecycles of nook, crun and runc side by side (needs runc, crun, busybox-static).
bench: build
	NOOK=$(NOOK) integration/bench.sh $(N)
	@echo "--- the same with a 64 MiB memory limit and a pids limit of 64"
	NOOK=$(NOOK) integration/bench.sh $(N) --config-patch integration/bench-limits.json

clean:
	$(CARGO) clean
	rm -rf $(BUILD)
