#!/bin/sh
# Usage: integration/bench.sh [N] [--warmup K] [--json FILE] [--config-patch FILE] [--seccomp default|FILE]
# N defaults to 200.  NOOK=path/to/nook overrides ./target/release/nook.
exec python3 "$(dirname "$0")/bench.py" "$@"
