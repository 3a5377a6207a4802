#!/usr/bin/env bash
# `make fuzz`: run each of nook's fuzz targets (fuzz/fuzz_targets, cargo-fuzz with
# libFuzzer) for a given time, one after another, and print a line of figures each.
#
#   integration/fuzz.sh SECONDS [TARGET...]    (default: every target)
#
# Seeds come from fuzz/corpus/<target> (in the repo, read-only here); what the fuzzer
# finds new goes to target/fuzz-corpus/<target> (kept between runs, so a later run goes
# on from there). A crash leaves its input in fuzz/artifacts/<target>/ and stops the run
# with the fuzzer's report: turn the input into a regression test.
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly toolchain (`rustup
# toolchain install nightly`); without nightly it falls back to RUSTC_BOOTSTRAP=1 on
# stable. FUZZ_JOBS (default 1) runs that many fuzzer processes per target (each for
# SECONDS).
set -euo pipefail
shopt -s nullglob

repo=$(cd "$(dirname "$0")/.." && pwd -P)
cd "$repo"
secs=${1:?usage: integration/fuzz.sh SECONDS [TARGET...]}
shift
say() { printf 'fuzz: %s\n' "$*" >&2; }

export PATH="$HOME/.cargo/bin:$PATH"
if ! cargo fuzz --version >/dev/null 2>&1; then
  say "cargo-fuzz is not installed: run 'cargo install cargo-fuzz' (as the user who builds)"
  exit 2
fi
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  fuzz=(cargo +nightly fuzz)
else
  say "no nightly toolchain ('rustup toolchain install nightly' adds one): using stable with RUSTC_BOOTSTRAP=1"
  export RUSTC_BOOTSTRAP=1
  fuzz=(cargo fuzz)
fi

# User + system CPU seconds of this script's finished children so far, into $cpu (`times`
# must run in this shell, not in a command substitution's subshell).
timesf=$(mktemp)
trap 'rm -f "$timesf"' EXIT
cpu_now() {
  times >"$timesf"
  cpu=$(awk 'NR == 2 { split($1, u, /[ms]/); split($2, s, /[ms]/); print int(u[1] * 60 + u[2] + s[1] * 60 + s[2]) }' "$timesf")
}

mapfile -t all < <("${fuzz[@]}" list)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")
"${fuzz[@]}" build -O
jobs=${FUZZ_JOBS:-1}
par=()
[ "$jobs" -le 1 ] || par=(-jobs="$jobs" -workers="$jobs")
for t in "${targets[@]}"; do
  work=target/fuzz-corpus/$t
  mkdir -p "$work" "fuzz/artifacts/$t"
  log=target/fuzz-corpus/$t.log
  say "$t: ${secs}s (log: $log)"
  # CPU seconds the run used (the fuzzer and its workers), from bash's `times`.
  # libseccomp 2.5 leaks a few objects compiling argument rules for socket(2) on the
  # x86/x32 ABIs (socketcall): inside the library, after nook releases the context (see
  # linux::seccomp's socket_argument_rules_on_three_abis_compile). Not nook's to fix.
  # Both libFuzzer's per-input check and LeakSanitizer's at exit are turned off for it.
  extra=()
  asan=${ASAN_OPTIONS:-}
  if [ "$t" = seccomp ]; then
    extra=(-detect_leaks=0)
    asan=detect_leaks=0${asan:+:$asan}
  fi
  cpu_now
  cpu0=$cpu
  if ! ASAN_OPTIONS=$asan "${fuzz[@]}" run -O "$t" "$work" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" "${par[@]}" "${extra[@]}" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    say "$t: the fuzzer stopped on a failure (input in fuzz/artifacts/$t/)"
    exit 1
  fi
  # libFuzzer's final stats: executions, and the coverage it reached.
  # (With FUZZ_JOBS > 1 each worker logs to ./fuzz-N.log.)
  logs=("$log" fuzz-*.log)
  execs=$(awk '/stat::number_of_executed_units/ {s+=$2} END {print s+0}' "${logs[@]}")
  cov=$(awk '{for (i = 1; i < NF; i++) if ($i == "cov:" && $(i+1) > m) m = $(i+1)} END {print m+0}' "${logs[@]}")
  rm -f fuzz-*.log
  cpu_now
  cpu=$((cpu - cpu0))
  printf '%-13s %6ss wall %6ss CPU  %12s executions  coverage %s edges  corpus %s\n' \
    "$t" "$secs" "$cpu" "$execs" "${cov:-?}" "$(find "$work" -type f | wc -l)"
done
