#!/usr/bin/env python3
"""Lifecycle benchmark: `RUNTIME run` of /bin/true for nook, crun and runc.

Usage: bench.py [N] [--warmup K] [--json FILE] [--config-patch FILE] [--seccomp SOURCE]
--seccomp: linux.seccomp for every runtime: `default` takes the profile `nook spec`
       writes (docker's default strength, resolved for the default capabilities, which
       are also runc spec's), anything else is a JSON file holding a linux.seccomp object.
Env:   NOOK (default target/release/nook; relative paths are taken from the
       repo root), BUSYBOX (static busybox, default /usr/bin/busybox).

Runs as root inside a private mount namespace (re-executes itself under
`unshare -m`) with /sys/fs/cgroup/unified unmounted, because crun refuses the
host's hybrid cgroup layout otherwise.  Every runtime gets the same treatment.

Wall time: perf_counter around posix_spawn + wait4 of the runtime itself.
Peak RSS: measured in a separate run per iteration under `busybox time`.  The
rusage of a child spawned straight from Python is useless here: exec records
the old mm's high-water mark, so ru_maxrss would never drop below Python's own
RSS (~10 MiB).  busybox time is small, so its floor (printed) is ~1.3 MiB.
ru_maxrss covers the runtime process and the descendants it reaped.
"""
import argparse, json, math, os, random, shutil, signal, statistics, subprocess, sys, tempfile, time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNIFIED = "/sys/fs/cgroup/unified"
NS_MARK = "NOOK_BENCH_IN_NS"


def die(msg):
    sys.exit(f"bench: {msg}")


def enter_private_mount_ns():
    if os.environ.get(NS_MARK) != "1":
        os.environ[NS_MARK] = "1"
        argv = ["unshare", "-m", "--propagation", "private", sys.executable, os.path.abspath(__file__)]
        try:
            os.execvp("unshare", argv + sys.argv[1:])
        except OSError as e:
            die(f"cannot exec unshare: {e}")
    if os.readlink("/proc/self/ns/mnt") == os.readlink(f"/proc/{os.getppid()}/ns/mnt"):
        die("not in a private mount namespace; refusing to touch the host's mounts")
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


def find_runtimes():
    nook = os.environ.get("NOOK", "target/release/nook")
    cands = [("nook", os.path.join(REPO, nook))]
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


def make_bundle(tmp, busybox, runc, patch_file, seccomp=None):
    bundle = os.path.join(tmp, "bundle")
    bindir = os.path.join(bundle, "rootfs", "bin")
    os.makedirs(bindir)
    shutil.copy2(busybox, os.path.join(bindir, "busybox"))
    for name in ("true", "sh"):
        os.symlink("busybox", os.path.join(bindir, name))
    if runc:  # `runc spec` writes the default config.json into cwd
        subprocess.run([runc, "spec"], cwd=bundle, check=True)
    else:
        die("runc is needed to generate config.json (`runc spec`)")
    cfg_path = os.path.join(bundle, "config.json")
    with open(cfg_path) as f:
        cfg = json.load(f)
    cfg["process"]["args"] = ["/bin/true"]
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


class Runner:
    """Spawns commands with stdin/stdout on /dev/null and stderr in a file."""

    def __init__(self, tmp):
        self.err = os.open(os.path.join(tmp, "stderr"), os.O_RDWR | os.O_CREAT, 0o600)
        self.null = os.open(os.devnull, os.O_RDWR)

    def run(self, argv):
        """Returns (seconds, status, rusage, stderr text)."""
        os.ftruncate(self.err, 0)
        os.lseek(self.err, 0, os.SEEK_SET)
        fa = [(os.POSIX_SPAWN_DUP2, self.null, 0), (os.POSIX_SPAWN_DUP2, self.null, 1),
              (os.POSIX_SPAWN_DUP2, self.err, 2)]
        t0 = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=fa)
        try:
            _, status, ru = os.wait4(pid, 0)
        except BaseException:  # ctrl-c / SIGTERM: don't leave the child behind
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise
        dt = time.perf_counter() - t0
        os.lseek(self.err, 0, os.SEEK_SET)
        return dt, os.waitstatus_to_exitcode(status), ru, os.read(self.err, 1 << 16).decode(errors="replace")


def checked(runner, argv, what):
    dt, code, ru, err = runner.run(argv)
    if code != 0:
        hint = "\n(crun: is the hybrid cgroup2 mount still visible?)" if "hybrid" in err else ""
        die(f"{what} failed with exit status {code}: {' '.join(argv)}\n--- stderr ---\n{err.strip()}{hint}")
    return dt, err


def busybox_rss_kib(text):
    # busybox time's %M passes ru_maxrss (already KiB) through its pages->KiB
    # conversion, so it prints KiB * (pagesize / 1024); undo that.
    return int(text.strip().splitlines()[-1]) // max(1, os.sysconf("SC_PAGESIZE") // 1024)


def pct(sorted_vals, p):  # nearest-rank percentile
    return sorted_vals[max(0, math.ceil(p / 100 * len(sorted_vals)) - 1)]


def summarize(ms, rss):
    s = sorted(ms)
    return {"runs": len(ms), "median_ms": statistics.median(s), "p90_ms": pct(s, 90),
            "mean_ms": statistics.fmean(s), "min_ms": s[0], "max_ms": s[-1],
            "peak_rss_mib": max(rss) / 1024, "median_rss_mib": statistics.median(rss) / 1024,
            "samples_ms": ms, "rss_kib": rss}


def version(exe):
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout
        return out.splitlines()[0] if out else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def cleanup(runtimes, roots, tmp):
    for (name, exe), root in zip(runtimes, roots):
        for cid in os.listdir(root) if os.path.isdir(root) else []:
            subprocess.run([exe, "--root", root, "delete", "-f", cid],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=30)
    if os.path.isdir(os.path.join(tmp, "ro")):  # a bind onto itself: ismount() cannot tell
        subprocess.run(["umount", os.path.join(tmp, "ro")], check=False, stderr=subprocess.DEVNULL)
    shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("n", nargs="?", type=int, default=200, help="iterations per runtime (200)")
    ap.add_argument("--warmup", type=int, default=3, help="warm-up runs per runtime (3)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    ap.add_argument("--config-patch", metavar="FILE", help="JSON merged into linux.resources")
    ap.add_argument("--seccomp", metavar="SOURCE",
                    help="linux.seccomp for all: 'default' (nook spec's profile) or a JSON file")
    args = ap.parse_args()
    if args.n < 1:
        die("N must be >= 1")
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
    roots = [os.path.join(tmp, "root-" + name) for name, _ in runtimes]
    try:
        seccomp = None
        if args.seccomp:
            nook = dict(runtimes).get("nook") or die("--seccomp default needs nook")
            seccomp = seccomp_profile(args.seccomp, nook, tmp)
            print(f"bench: seccomp profile: {len(seccomp.get('syscalls', []))} rules, "
                  f"{sum(len(r['names']) for r in seccomp.get('syscalls', []))} syscall names")
        bundle = make_bundle(tmp, busybox, dict(runtimes).get("runc") or shutil.which("runc"), args.config_patch,
                             seccomp)
        for root in roots:
            os.mkdir(root)
        runner = Runner(tmp)
        life = lambda exe, root, cid: [exe, "--root", root, "run", "--bundle", bundle, cid]
        floor = busybox_rss_kib(checked(runner, [busybox, "time", "-f", "%M", busybox, "true"], "rss floor")[1])
        print(f"bench: N={args.n} warmup={args.warmup} bundle={bundle}  (RSS floor of busybox time: {floor / 1024:.2f} MiB)")
        for (name, exe), root in zip(runtimes, roots):
            print(f"bench: {name}: {exe} ({version(exe)})")
            for w in range(args.warmup or 1):  # first run doubles as the trial run
                checked(runner, life(exe, root, f"bench-{name}-w{w}"), f"{name} trial/warm-up run")
        ms = {name: [] for name, _ in runtimes}
        rss = {name: [] for name, _ in runtimes}
        pairs = list(zip(runtimes, roots))
        shuffle = random.Random(1)
        for i in range(args.n):
            # Every runtime once per iteration, in a shuffled order: a run right after
            # another runtime's pays for what that one's exit left to the kernel (cgroup
            # teardown, RCU callbacks; ~8 ms after runc or crun with a seccomp profile),
            # so no runtime may always follow the same one. (Pausing between runs instead
            # makes every runtime slower here: an idle vCPU wakes up cold.)
            order = pairs[:]
            shuffle.shuffle(order)
            for (name, exe), root in order:
                ms[name].append(checked(runner, life(exe, root, f"bench-{name}-{i}"), f"{name} run {i}")[0] * 1e3)
            for (name, exe), root in order:
                _, err = checked(runner, [busybox, "time", "-f", "%M"] + life(exe, root, f"bench-{name}-{i}m"),
                                 f"{name} rss run {i}")
                rss[name].append(busybox_rss_kib(err))
            if sys.stdout.isatty():
                print(f"\r  iteration {i + 1}/{args.n}", end="", flush=True)
        if sys.stdout.isatty():
            print()
    except KeyboardInterrupt:
        die("interrupted")
    finally:
        cleanup(runtimes, roots, tmp)

    res = {name: summarize(ms[name], rss[name]) for name, _ in runtimes}
    print(f"\n{'runtime':<8} {'runs':>5} {'median ms':>10} {'p90 ms':>8} {'mean ms':>8} {'peak RSS MiB':>13} {'median RSS MiB':>15}")
    for name, r in res.items():
        print(f"{name:<8} {r['runs']:>5} {r['median_ms']:>10.2f} {r['p90_ms']:>8.2f} {r['mean_ms']:>8.2f}"
              f" {r['peak_rss_mib']:>13.2f} {r['median_rss_mib']:>15.2f}")
    ref, ratios = runtimes[0][0], {}  # nook, or the first runtime present
    for other in list(res)[1:]:
        a, b = res[ref], res[other]
        ratios[f"{ref}/{other}"] = r = {"median": a["median_ms"] / b["median_ms"], "p90": a["p90_ms"] / b["p90_ms"],
                                        "median_rss": a["median_rss_mib"] / b["median_rss_mib"]}
        print(f"{ref}/{other:<5} median {r['median']:.2f}x   p90 {r['p90']:.2f}x   median RSS {r['median_rss']:.2f}x")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"n": args.n, "warmup": args.warmup, "rss_floor_kib": floor, "config_patch": args.config_patch,
                       "seccomp": args.seccomp,
                       "runtimes": {n: dict(res[n], path=e, version=version(e)) for n, e in runtimes},
                       "ratios": ratios}, f, indent=2)
        print(f"bench: wrote {args.json}")


if __name__ == "__main__":
    main()
