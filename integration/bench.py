#!/usr/bin/env python3
"""Lifecycle benchmark: `RUNTIME run` of /bin/true for nook, crun and runc.

Usage: bench.py [N] [--warmup K] [--json FILE] [--config-patch FILE] [--seccomp SOURCE]
                [--steps K] [--syscalls] [--throughput SECONDS] [--exec M]

N              iterations of the main table (default 200): every runtime runs once per
               iteration, in a shuffled order; median, p90, p99 (nearest rank), mean,
               and peak and median RSS from a second run per iteration.
--warmup K     warm-up runs per runtime before the table (default 3).
--json FILE    also write every figure (samples included) as JSON.
--config-patch FILE
               JSON merged into linux.resources of the bundle (every part below uses it).
--seccomp SOURCE
               linux.seccomp for every runtime: `default` takes the profile `nook spec`
               writes (docker's default strength, resolved for the default capabilities,
               which are also runc spec's), anything else is a JSON file holding a
               linux.seccomp object.
--steps K      after the table, K more runs of nook with NOOK_STEP_TIMES=FILE: nook
               appends `RUN ROLE STEP NS` lines (CLOCK_MONOTONIC) for the command (`nook`)
               and the container's init (`child`); the bench stamps `spawn` just before
               posix_spawn and `reaped` just after wait4. Printed per step in order of its
               median offset: the offset from spawn and the delta from the same process's
               step before it (medians, µs; nook and its child run side by side). A name
               met again in a run is numbered (`main`, `main#2`); one met 3 times or more is
               one row at its last time, `create.cgroup-dir (x9)`. A build that writes no lines is reported, not an
               error. Default 0 (off). Only `nook` (not nook-ro or nook-base) is broken down.
--syscalls     one `strace -f -c` run per runtime: total syscalls (the runtime and all it
               forks, /bin/true included) and the top 15 syscalls of nook by count beside
               the others' counts. Skipped, saying so, without strace.
--throughput SECONDS
               containers per second: back-to-back `run`s with unique ids for SECONDS, in
               1 loop and then in 2 parallel loops, per runtime; ratios of nook to the
               others. A failed run stops the bench with its stderr. Default 0 (off).
--exec M       `exec` latency: one detached container per runtime (`run -d` of
               `sh -c 'sleep 1000'`), then M iterations, each runtime's `exec ID /bin/true`
               once per iteration in a shuffled order; median, p90, p99 and ratios. A
               runtime whose run -d or exec fails is reported and left out. Default 0 (off).
Env:   NOOK (default target/x86_64-unknown-linux-gnu/release/nook; relative paths are taken from the repo root),
       BUSYBOX (static busybox, default /usr/bin/busybox), NOOK_BASELINE (another nook
       build measured as nook-base in the same shuffled runs, for an A/B comparison),
       NOOK_RO=0 (leave out nook-ro, nook from a read-only mount).

Runs as root inside a private mount namespace (re-executes itself under
`unshare -m`) with /sys/fs/cgroup/unified unmounted, because crun refuses the
host's hybrid cgroup layout otherwise.  Every runtime gets the same treatment.

Wall time: CLOCK_MONOTONIC around posix_spawn + wait4 of the runtime itself.
Peak RSS: measured in a separate run per iteration under `busybox time`.  The
rusage of a child spawned straight from Python is useless here: exec records
the old mm's high-water mark, so ru_maxrss would never drop below Python's own
RSS (~10 MiB).  busybox time is small, so its floor (printed) is ~1.3 MiB.
ru_maxrss covers the runtime process and the descendants it reaped.
"""
import argparse, collections, json, math, os, random, re, shutil, signal, statistics, subprocess, sys, tempfile
import threading, time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNIFIED = "/sys/fs/cgroup/unified"
NS_MARK = "NOOK_BENCH_IN_NS"
STEP_VAR = "NOOK_STEP_TIMES"
COLLAPSE = 3  # a step name met this often in a run or more makes one row
TOP_SYSCALLS = 15


def die(msg):
    sys.exit(f"bench: {msg}")


def enter_private_mount_ns(script=os.path.abspath(__file__), hide_unified=True):
    """Re-executes `script` under `unshare -m` (once); there, hides the cgroup2 mount of a
    hybrid host unless told not to (crun refuses that layout)."""
    if os.environ.get(NS_MARK) != "1":
        os.environ[NS_MARK] = "1"
        argv = ["unshare", "-m", "--propagation", "private", sys.executable, script]
        try:
            os.execvp("unshare", argv + sys.argv[1:])
        except OSError as e:
            die(f"cannot exec unshare: {e}")
    if os.readlink("/proc/self/ns/mnt") == os.readlink(f"/proc/{os.getppid()}/ns/mnt"):
        die("not in a private mount namespace; refusing to touch the host's mounts")
    if not hide_unified:
        return
    with open("/proc/self/mountinfo") as f:
        mounted = any(line.split()[4] == UNIFIED for line in f)
    if mounted:
        subprocess.run(["umount", "-l", UNIFIED], check=True)


def read_only_copy(exe, tmp):
    """nook on a read-only bind mount (in our private mount namespace): nook then skips
    the re-exec through a read-only view of itself (CVE-2019-5736 guard), so the
    nook/nook-ro line shows what that guard costs. NOOK_RO=0 leaves it out."""
    d = os.path.join(tmp, "ro")
    os.mkdir(d)
    shutil.copy2(exe, os.path.join(d, "nook"))
    subprocess.run(["mount", "--bind", d, d], check=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", d], check=True)
    return os.path.join(d, "nook")


def nook_path():
    nook = os.environ.get("NOOK", "target/x86_64-unknown-linux-gnu/release/nook")
    return os.path.join(REPO, nook)


def find_runtimes():
    cands = [("nook", nook_path())]
    path = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"
    cands += [(name, shutil.which(name, path=path)) for name in ("crun", "runc")]
    # NOOK_BASELINE: another nook build (say, of the previous commit), measured in the
    # same shuffled run, for an A/B comparison on a noisy machine.
    if os.environ.get("NOOK_BASELINE"):
        cands.append(("nook-base", os.path.abspath(os.environ["NOOK_BASELINE"])))
    found = []
    for name, exe in cands:
        if exe and os.path.isfile(exe) and os.access(exe, os.X_OK):
            found.append((name, exe))
        else:
            print(f"bench: skipping {name}: not found ({exe or 'not in PATH'})")
    return found


def deep_merge(dst, src):
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            deep_merge(dst[k], v)
        else:
            dst[k] = v


def seccomp_profile(source, nook, tmp):
    if source != "default":
        with open(source) as f:
            return json.load(f)
    d = os.path.join(tmp, "nook-spec")
    os.mkdir(d)
    subprocess.run([nook, "spec", "--bundle", d], check=True)
    with open(os.path.join(d, "config.json")) as f:
        return json.load(f)["linux"]["seccomp"]


def make_bundle(tmp, busybox, runc, patch_file, seccomp=None, name="bundle", args=("/bin/true",)):
    """runc spec's config.json with `args`, no terminal, a read-only root of busybox."""
    bundle = os.path.join(tmp, name)
    bindir = os.path.join(bundle, "rootfs", "bin")
    os.makedirs(bindir)
    shutil.copy2(busybox, os.path.join(bindir, "busybox"))
    for tool in ("true", "sh", "sleep"):
        os.symlink("busybox", os.path.join(bindir, tool))
    if runc:  # `runc spec` writes the default config.json into cwd
        subprocess.run([runc, "spec"], cwd=bundle, check=True)
    else:
        die("runc is needed to generate config.json (`runc spec`)")
    cfg_path = os.path.join(bundle, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["process"]["args"] = list(args)
    cfg["process"]["terminal"] = False
    cfg["root"]["readonly"] = True
    if patch_file:
        with open(patch_file) as f:
            deep_merge(cfg.setdefault("linux", {}).setdefault("resources", {}), json.load(f))
    if seccomp is not None:
        cfg.setdefault("linux", {})["seccomp"] = seccomp
    with open(cfg_path, "w") as f:
        json.dump(cfg, f, indent=2)
    return bundle


# One finished command: wall seconds, exit code, rusage, stderr, its pid, and
# CLOCK_MONOTONIC ns just before posix_spawn and just after wait4.
Ran = collections.namedtuple("Ran", "seconds code rusage err pid spawn_ns reaped_ns")


class Runner:
    """Spawns commands with stdin/stdout on /dev/null and stderr in a file (one Runner
    per thread: the file is its own)."""

    def __init__(self, tmp, tag=""):
        self.err = os.open(os.path.join(tmp, f"stderr{tag}"), os.O_RDWR | os.O_CREAT, 0o600)
        self.null = os.open(os.devnull, os.O_RDWR)

    def close(self):
        os.close(self.err)
        os.close(self.null)

    def run(self, argv, env=None):
        """Runs argv to its end; returns a Ran."""
        os.ftruncate(self.err, 0)
        os.lseek(self.err, 0, os.SEEK_SET)
        fa = [(os.POSIX_SPAWN_DUP2, self.null, 0), (os.POSIX_SPAWN_DUP2, self.null, 1),
              (os.POSIX_SPAWN_DUP2, self.err, 2)]
        env = os.environ if env is None else env
        t0 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        pid = os.posix_spawn(argv[0], argv, env, file_actions=fa)
        try:
            _, status, ru = os.wait4(pid, 0)
        except BaseException:  # ctrl-c / SIGTERM: don't leave the child behind
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
        t1 = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        os.lseek(self.err, 0, os.SEEK_SET)
        err = os.read(self.err, 1 << 16).decode(errors="replace")
        return Ran((t1 - t0) / 1e9, os.waitstatus_to_exitcode(status), ru, err, pid, t0, t1)


def failure(ran, argv, what):
    hint = "\n(crun: is the hybrid cgroup2 mount still visible?)" if "hybrid" in ran.err else ""
    return f"{what} failed with exit status {ran.code}: {' '.join(argv)}\n--- stderr ---\n{ran.err.strip()}{hint}"


def checked(runner, argv, what, env=None):
    ran = runner.run(argv, env)
    if ran.code != 0:
        die(failure(ran, argv, what))
    return ran


def busybox_rss_kib(text):
    # busybox time's %M passes ru_maxrss (already KiB) through its pages->KiB
    # conversion, so it prints KiB * (pagesize / 1024); undo that.
    return int(text.strip().splitlines()[-1]) // max(1, os.sysconf("SC_PAGESIZE") // 1024)


def pct(sorted_vals, p):  # nearest-rank percentile
    return sorted_vals[max(0, math.ceil(p / 100 * len(sorted_vals)) - 1)]


def latency(ms):
    s = sorted(ms)
    return {"runs": len(ms), "median_ms": statistics.median(s), "p90_ms": pct(s, 90), "p99_ms": pct(s, 99),
            "mean_ms": statistics.fmean(s), "min_ms": s[0], "max_ms": s[-1]}


def summarize(ms, rss):
    return dict(latency(ms), peak_rss_mib=max(rss) / 1024, median_rss_mib=statistics.median(rss) / 1024,
                samples_ms=ms, rss_kib=rss)


def ratios_of(res, keys):
    """The first runtime's figures over each other's, printed, and returned as
    {"nook/crun": {key: ratio}}; keys: [(key, field of res's entries)]."""
    names = list(res)
    ratios = {}
    for other in names[1:]:
        a, b = res[names[0]], res[other]
        ratios[f"{names[0]}/{other}"] = r = {k: a[f] / b[f] if b[f] else float("nan") for k, f in keys}
        print(f"{names[0] + '/' + other:<14} " + "   ".join(f"{k.replace('_', ' ')} {v:.2f}x" for k, v in r.items()))
    return ratios


def version(exe):
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout
        return out.splitlines()[0] if out else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def quiet(argv):
    """Runs a clean-up command, output discarded; one that fails to finish is reported."""
    try:
        subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        print(f"bench: clean-up: {' '.join(argv)}: {e}", file=sys.stderr)


def stop_detached(detached):
    """kill + delete -f of the containers started with run -d (emptying the list)."""
    while detached:
        exe, root, cid = detached.pop()
        quiet([exe, "--root", root, "kill", cid, "KILL"])
        quiet([exe, "--root", root, "delete", "-f", cid])


def state_tmpfs(tmp):
    """A tmpfs (in our private mount namespace) for the runtimes' --root dirs: state lives
    on /run, a tmpfs, by default for all three; on the disk under /tmp, removing a state
    dir costs an ext4 inode eviction per run that no real install pays."""
    d = os.path.join(tmp, "state")
    os.mkdir(d)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=0700", "tmpfs", d], check=True)
    return d


def cleanup(runtimes, roots, tmp, detached):
    stop_detached(detached)
    for (name, exe), root in zip(runtimes, roots):
        for cid in os.listdir(root) if os.path.isdir(root) else []:
            quiet([exe, "--root", root, "delete", "-f", cid])
    if os.path.isdir(os.path.join(tmp, "ro")):  # a bind onto itself: ismount() cannot tell
        subprocess.run(["umount", os.path.join(tmp, "ro")], check=False, stderr=subprocess.DEVNULL)
    if os.path.ismount(os.path.join(tmp, "state")):
        subprocess.run(["umount", os.path.join(tmp, "state")], check=False, stderr=subprocess.DEVNULL)
    shutil.rmtree(tmp, ignore_errors=True)


def progress(text):
    if sys.stdout.isatty():
        print(f"\r  {text}\033[K", end="", flush=True)


def progress_done():
    if sys.stdout.isatty():
        print("\r\033[K", end="", flush=True)


# --- the main table -------------------------------------------------------------------

def main_table(runner, pairs, life, n, busybox):
    ms = {name: [] for (name, _), _ in pairs}
    rss = {name: [] for (name, _), _ in pairs}
    shuffle = random.Random(1)
    for i in range(n):
        # Every runtime once per iteration, in a shuffled order: a run right after
        # another runtime's pays for what that one's exit left to the kernel (cgroup
        # teardown, RCU callbacks; ~8 ms after runc or crun with a seccomp profile),
        # so no runtime may always follow the same one. (Pausing between runs instead
        # makes every runtime slower here: an idle vCPU wakes up cold.)
        order = pairs[:]
        shuffle.shuffle(order)
        for (name, exe), root in order:
            ms[name].append(checked(runner, life(exe, root, f"bench-{name}-{i}"), f"{name} run {i}").seconds * 1e3)
        for (name, exe), root in order:
            ran = checked(runner, [busybox, "time", "-f", "%M"] + life(exe, root, f"bench-{name}-{i}m"),
                          f"{name} rss run {i}")
            rss[name].append(busybox_rss_kib(ran.err))
        progress(f"iteration {i + 1}/{n}")
    progress_done()
    return {name: summarize(ms[name], rss[name]) for name in ms}


def print_main_table(res):
    print(f"\n{'runtime':<9} {'runs':>5} {'median ms':>10} {'p90 ms':>8} {'p99 ms':>8} {'mean ms':>8}"
          f" {'peak RSS MiB':>13} {'median RSS MiB':>15}")
    for name, r in res.items():
        print(f"{name:<9} {r['runs']:>5} {r['median_ms']:>10.2f} {r['p90_ms']:>8.2f} {r['p99_ms']:>8.2f}"
              f" {r['mean_ms']:>8.2f} {r['peak_rss_mib']:>13.2f} {r['median_rss_mib']:>15.2f}")
    return ratios_of(res, [("median", "median_ms"), ("p90", "p90_ms"), ("p99", "p99_ms"),
                           ("median_rss", "median_rss_mib")])


# --- --steps: where nook's start time goes ----------------------------------------------

def parse_step_lines(path, runs):
    """The step file's lines per run: {pid: [(ns, role, step)]}, and the problems that
    make it unfit to rely on (lines that do not parse, unknown runs, times outside
    spawn..reaped, runs without lines)."""
    events, problems = collections.defaultdict(list), []
    with open(path, errors="replace") as f:
        lines = f.read().splitlines()
    for no, line in enumerate(lines, 1):
        fields = line.split()
        if len(fields) != 4 or not fields[0].isdigit() or not fields[3].isdigit():
            problems.append(f"line {no} is not `RUN ROLE STEP NS`: {line!r}")
            continue
        pid, role, step, ns = int(fields[0]), fields[1], fields[2], int(fields[3])
        if pid not in runs:
            problems.append(f"line {no}: run {pid} is not one the bench started: {line!r}")
        elif not runs[pid][0] <= ns <= runs[pid][1]:
            problems.append(f"line {no}: time outside the run's spawn..reaped: {line!r}")
        else:
            events[pid].append((ns, role, step))
    missing = [pid for pid in runs if pid not in events]
    if events and missing:
        problems.append(f"{len(missing)} of {len(runs)} runs wrote no lines")
    return events, problems


def label_steps(events):
    """[(ns, role, step)] of one run -> [(label, role, ns)] in time order. A name met again
    is numbered (main, main#2); one met COLLAPSE times or more (a step per cgroup
    hierarchy) is one row at its last time, `name (xN)`."""
    events = sorted(events)
    total = collections.Counter(step for _, _, step in events)
    seen, out = collections.Counter(), []
    for ns, role, step in events:
        seen[step] += 1
        if total[step] >= COLLAPSE:
            if seen[step] == total[step]:
                out.append((f"{step} (x{total[step]})", role, ns))
            continue
        out.append((step if seen[step] == 1 else f"{step}#{seen[step]}", role, ns))
    return out


def step_rows(events, runs):
    """Median offset from spawn and delta (µs) per labelled step, in order of the median
    offset. The delta is from the previous step of the same process (nook and its child
    run side by side); the child's first step counts from nook's last step before it, and
    `reaped` from nook's last."""
    offsets, deltas, roles = collections.defaultdict(list), collections.defaultdict(list), {}
    for pid, (spawn, reaped) in runs.items():
        seq = [("spawn", "bench", spawn)] + label_steps(events[pid]) + [("reaped", "bench", reaped)]
        last = {"nook": spawn}
        for label, role, ns in seq:
            key = (label, role)
            prev = last.get(role, last["nook"]) if role != "bench" else last["nook"]
            offsets[key].append((ns - spawn) / 1e3)
            deltas[key].append((ns - prev) / 1e3)
            if role != "bench":
                last[role] = ns
    rows = [{"step": label, "role": role, "runs": len(offsets[(label, role)]),
             "median_offset_us": statistics.median(offsets[(label, role)]),
             "median_delta_us": statistics.median(deltas[(label, role)])} for label, role in offsets]
    return sorted(rows, key=lambda r: (r["median_offset_us"], r["step"] != "spawn"))


def step_breakdown(runner, exe, life, root, k, tmp):
    """K runs of nook with NOOK_STEP_TIMES; the breakdown, or None when it cannot be
    relied on (said so)."""
    path = os.path.join(tmp, "steps")
    env = dict(os.environ, **{STEP_VAR: path})
    runs = {}
    for i in range(k):
        ran = checked(runner, life(exe, root, f"bench-steps-{i}"), f"nook steps run {i}", env)
        runs[ran.pid] = (ran.spawn_ns, ran.reaped_ns)
        progress(f"steps run {i + 1}/{k}")
    progress_done()
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        print(f"\nbench: --steps: nook wrote no step lines with {STEP_VAR} set (builds older than the step "
              f"timing do not write them); no breakdown")
        return None
    events, problems = parse_step_lines(path, runs)
    if problems:
        print(f"\nbench: --steps: the step file {STEP_VAR} does not check out; no breakdown:")
        for p in problems[:5]:
            print(f"  {p}")
        if len(problems) > 5:
            print(f"  ... and {len(problems) - 5} more")
        return None
    return {"runs": k, "rows": step_rows(events, runs)}


def print_steps(steps):
    k = steps["runs"]
    print(f"\nnook steps: {k} runs with {STEP_VAR}; medians in µs; offset from spawn (posix_spawn), "
          f"delta from the same process's step before it")
    width = max(len(r["step"]) for r in steps["rows"]) + 2
    print(f"{'step':<{width}} {'role':<6} {'offset µs':>10} {'delta µs':>9}")
    for r in steps["rows"]:
        note = f"  (in {r['runs']} of {k} runs)" if r["runs"] != k else ""
        print(f"{r['step']:<{width}} {r['role']:<6} {r['median_offset_us']:>10.1f} {r['median_delta_us']:>9.1f}{note}")


# --- --syscalls -----------------------------------------------------------------------

def parse_strace_summary(path):
    """strace -c's table: ({syscall: (calls, errors)}, (total calls, total errors)).
    The columns are right-aligned under the header `% time seconds usecs/call calls
    errors syscall`; a missing errors figure is 0."""
    with open(path) as f:
        lines = f.read().splitlines()
    header = next((i for i, l in enumerate(lines) if re.match(r"^%\s*time\s+seconds", l)), None)
    if header is None:
        raise ValueError(f"no strace -c table in {path}")
    ends = {m.group(): m.end() for m in re.finditer(r"\S+", lines[header])}
    if "calls" not in ends or "errors" not in ends:
        raise ValueError(f"unexpected strace -c header: {lines[header]!r}")
    calls, total = {}, None
    for line in lines[header + 1:]:
        if not line.strip() or line.lstrip().startswith("-"):
            continue
        by_end = {m.end(): m.group() for m in re.finditer(r"\S+", line)}
        name = line.split()[-1]
        figures = (int(by_end.get(ends["calls"], 0)), int(by_end.get(ends["errors"], 0)))
        if name == "total":
            total = figures
        else:
            calls[name] = figures
    if total is None:
        raise ValueError(f"no total line in {path}")
    return calls, total


def syscall_counts(runner, pairs, life, tmp):
    strace = shutil.which("strace")
    if not strace:
        print("\nbench: --syscalls: strace is not installed (apt-get install strace); skipping the syscall counts")
        return None
    counts = {}
    for (name, exe), root in pairs:
        out = os.path.join(tmp, f"strace-{name}")
        argv = [strace, "-f", "-c", "-o", out] + life(exe, root, f"bench-{name}-strace")
        ran = runner.run(argv)
        try:
            if ran.code != 0:
                raise ValueError(failure(ran, argv, f"{name} under strace"))
            calls, total = parse_strace_summary(out)
        except (OSError, ValueError) as e:
            print(f"bench: --syscalls: leaving out {name}: {e}")
            continue
        counts[name] = {"total_calls": total[0], "total_errors": total[1],
                        "calls": {k: v[0] for k, v in calls.items()}, "errors": {k: v[1] for k, v in calls.items()}}
    return counts or None


def print_syscalls(counts):
    names = list(counts)
    print("\nsyscalls per run (strace -f -c: the runtime and all it forks, /bin/true included)")
    print(f"{'runtime':<9} {'syscalls':>9} {'errors':>7}")
    for name, c in counts.items():
        print(f"{name:<9} {c['total_calls']:>9} {c['total_errors']:>7}")
    ref = names[0]
    top = sorted(counts[ref]["calls"].items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_SYSCALLS]
    print(f"\ntop {len(top)} syscalls of {ref} by count")
    print(f"{'syscall':<20}" + "".join(f"{n:>10}" for n in names))
    for sc, _ in top:
        print(f"{sc:<20}" + "".join(f"{counts[n]['calls'].get(sc, 0):>10}" for n in names))


# --- --throughput ---------------------------------------------------------------------

def run_loops(name, exe, root, bundle, loops, seconds, tmp):
    """`loops` threads of back-to-back runs for `seconds`; containers per second."""
    stop, lock = threading.Event(), threading.Lock()
    done, ends, errors = [0] * loops, [0.0] * loops, []
    label = f"{loops} loop{'s' if loops > 1 else ''}"
    t0 = time.monotonic()
    deadline = t0 + seconds

    def loop(k):
        runner = Runner(tmp, f"-tp{k}")
        try:
            i = 0
            while not stop.is_set() and time.monotonic() < deadline:
                argv = [exe, "--root", root, "run", "--bundle", bundle, f"bench-{name}-tp{loops}-{k}-{i}"]
                ran = runner.run(argv)
                if ran.code != 0:
                    with lock:
                        errors.append(failure(ran, argv, f"{name} throughput run in {label}"))
                    stop.set()
                    return
                done[k] += 1
                i += 1
        finally:
            ends[k] = time.monotonic()
            runner.close()

    threads = [threading.Thread(target=loop, args=(k,)) for k in range(loops)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        stop.set()
        for t in threads:
            t.join()
    if errors:
        die(errors[0])
    return sum(done) / (max(ends) - t0)


def throughput(pairs, bundle, seconds, tmp):
    res = {name: {} for (name, _), _ in pairs}
    shuffle = random.Random(2)
    for loops in (1, 2):
        order = pairs[:]
        shuffle.shuffle(order)
        for (name, exe), root in order:
            key = f"{loops}_loop{'s' if loops > 1 else ''}"
            progress(f"throughput: {name}, {key.replace('_', ' ')}")
            res[name][key] = run_loops(name, exe, root, bundle, loops, seconds, tmp)
    progress_done()
    return res


def print_throughput(res, seconds):
    print(f"\nthroughput: containers/s, back-to-back `run` of /bin/true for {seconds} s")
    print(f"{'runtime':<9} {'1 loop':>8} {'2 loops':>8}")
    for name, r in res.items():
        print(f"{name:<9} {r['1_loop']:>8.1f} {r['2_loops']:>8.1f}")
    return ratios_of(res, [("1_loop", "1_loop"), ("2_loops", "2_loops")])


# --- --exec ---------------------------------------------------------------------------

def start_detached(runner, pairs, bundle, detached):
    """One sleeping container per runtime; [(name, exe, root, cid)] of those that started."""
    live = []
    for (name, exe), root in pairs:
        cid = f"bench-{name}-exec"
        argv = [exe, "--root", root, "run", "-d", "--bundle", bundle, cid]
        detached.append((exe, root, cid))  # even a failed start may leave something to delete
        ran = runner.run(argv)
        if ran.code != 0:
            print(f"bench: --exec: leaving out {name}: {failure(ran, argv, 'run -d')}")
            continue
        live.append((name, exe, root, cid))
    return live


def exec_latency(runner, pairs, bundle, n, detached):
    live = start_detached(runner, pairs, bundle, detached)
    ms, failed = {name: [] for name, *_ in live}, {}
    shuffle = random.Random(3)
    for i in range(n):
        order = [c for c in live if c[0] not in failed]
        shuffle.shuffle(order)
        for name, exe, root, cid in order:
            argv = [exe, "--root", root, "exec", cid, "/bin/true"]
            ran = runner.run(argv)
            if ran.code != 0:
                failed[name] = failure(ran, argv, f"{name} exec {i}")
                print(f"\nbench: --exec: leaving out {name}: {failed[name]}")
                continue
            ms[name].append(ran.seconds * 1e3)
        progress(f"exec iteration {i + 1}/{n}")
    progress_done()
    stop_detached(detached)
    return {name: latency(v) for name, v in ms.items() if name not in failed and v}, failed


def print_exec(res, n):
    print(f"\nexec latency: `exec ID /bin/true` into a running container, {n} per runtime, shuffled")
    print(f"{'runtime':<9} {'runs':>5} {'median ms':>10} {'p90 ms':>8} {'p99 ms':>8} {'mean ms':>8}")
    for name, r in res.items():
        print(f"{name:<9} {r['runs']:>5} {r['median_ms']:>10.2f} {r['p90_ms']:>8.2f} {r['p99_ms']:>8.2f}"
              f" {r['mean_ms']:>8.2f}")
    return ratios_of(res, [("median", "median_ms"), ("p90", "p90_ms"), ("p99", "p99_ms")])


# --- main -----------------------------------------------------------------------------

def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("n", nargs="?", type=int, default=200, help="iterations per runtime (200)")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up runs per runtime (3)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    ap.add_argument("--config-patch", metavar="FILE", help="JSON merged into linux.resources")
    ap.add_argument("--seccomp", metavar="SOURCE",
                    help="linux.seccomp for all: 'default' (nook spec's profile) or a JSON file")
    ap.add_argument("--steps", type=int, default=0, metavar="K", help="nook's per-step breakdown over K runs (0: off)")
    ap.add_argument("--syscalls", action="store_true", help="syscall counts per run (strace -f -c)")
    ap.add_argument("--throughput", type=float, default=0, metavar="SECONDS",
                    help="containers/s in 1 and 2 loops for SECONDS each (0: off)")
    ap.add_argument("--exec", type=int, default=0, metavar="M", help="exec latency over M iterations (0: off)")
    args = ap.parse_args()
    if args.n < 1:
        die("N must be >= 1")
    if args.steps < 0 or args.exec < 0 or args.throughput < 0:
        die("--steps, --exec and --throughput must be >= 0")
    return args


def main():
    args = parse_args()
    if os.geteuid() != 0:
        die("must run as root")
    enter_private_mount_ns()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    busybox = os.environ.get("BUSYBOX", "/usr/bin/busybox")
    runtimes = find_runtimes()
    if not runtimes:
        die("no runtime found")
    tmp = tempfile.mkdtemp(prefix="nook-bench-")
    if "nook" in dict(runtimes) and os.environ.get("NOOK_RO", "1") != "0":
        runtimes.insert(1, ("nook-ro", read_only_copy(dict(runtimes)["nook"], tmp)))
    state = state_tmpfs(tmp)
    roots = [os.path.join(state, "root-" + name) for name, _ in runtimes]
    pairs = list(zip(runtimes, roots))
    detached = []  # (exe, root, id) of run -d containers, for cleanup
    out = {"n": args.n, "warmup": args.warmup, "config_patch": args.config_patch, "seccomp": args.seccomp}
    try:
        seccomp = None
        if args.seccomp:
            nook = dict(runtimes).get("nook") or die("--seccomp default needs nook")
            seccomp = seccomp_profile(args.seccomp, nook, tmp)
            print(f"bench: seccomp profile: {len(seccomp.get('syscalls', []))} rules, "
                  f"{sum(len(r['names']) for r in seccomp.get('syscalls', []))} syscall names")
        runc = dict(runtimes).get("runc") or shutil.which("runc")
        bundle = make_bundle(tmp, busybox, runc, args.config_patch, seccomp)
        for root in roots:
            os.mkdir(root)
        runner = Runner(tmp)
        life = lambda exe, root, cid: [exe, "--root", root, "run", "--bundle", bundle, cid]
        floor = busybox_rss_kib(checked(runner, [busybox, "time", "-f", "%M", busybox, "true"], "rss floor").err)
        out["rss_floor_kib"] = floor
        print(f"bench: N={args.n} warmup={args.warmup} bundle={bundle}  (RSS floor of busybox time: {floor / 1024:.2f} MiB)")
        for name, exe in runtimes:
            print(f"bench: {name}: {exe} ({version(exe)})")
        for (name, exe), root in pairs:
            for w in range(args.warmup or 1):  # first run doubles as the trial run
                checked(runner, life(exe, root, f"bench-{name}-w{w}"), f"{name} trial/warm-up run")

        res = main_table(runner, pairs, life, args.n, busybox)
        out["runtimes"] = {n: dict(res[n], path=e, version=version(e)) for n, e in runtimes}
        out["ratios"] = print_main_table(res)

        if args.steps:
            if "nook" in dict(runtimes):
                root = roots[[n for n, _ in runtimes].index("nook")]
                out["steps"] = step_breakdown(runner, dict(runtimes)["nook"], life, root, args.steps, tmp)
                if out["steps"]:
                    print_steps(out["steps"])
            else:
                print("\nbench: --steps: no nook to break down")
        if args.syscalls:
            out["syscalls"] = syscall_counts(runner, pairs, life, tmp)
            if out["syscalls"]:
                print_syscalls(out["syscalls"])
        if args.throughput:
            tp = throughput(pairs, bundle, args.throughput, tmp)
            out["throughput"] = {"seconds": args.throughput, "containers_per_s": tp,
                                 "ratios": print_throughput(tp, args.throughput)}
        if args.exec:
            sleeper = make_bundle(tmp, busybox, runc, args.config_patch, seccomp, name="bundle-sleep",
                                  args=("/bin/sh", "-c", "sleep 1000"))
            ex, failed = exec_latency(runner, pairs, sleeper, args.exec, detached)
            out["exec"] = {"n": args.exec, "runtimes": ex, "failed": failed}
            if ex:
                out["exec"]["ratios"] = print_exec(ex, args.exec)
    except KeyboardInterrupt:
        die("interrupted")
    finally:
        cleanup(runtimes, roots, tmp, detached)

    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
        print(f"bench: wrote {args.json}")


if __name__ == "__main__":
    main()
