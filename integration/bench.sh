#!/bin/sh
# Usage: integration/bench.sh [N] [--warmup K] [--json FILE] [--config-patch FILE] [--seccomp default|FILE]
#                             [--steps K] [--syscalls] [--throughput SECONDS] [--exec M]
# N defaults to 200; every option is described at the top of integration/bench.py
# (or: integration/bench.sh --help).  NOOK=path/to/nook overrides ./target/x86_64-unknown-linux-gnu/release/nook.
exec python3 "$(dirname "$0")/bench.py" "$@"
