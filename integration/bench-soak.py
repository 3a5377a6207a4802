#!/usr/bin/env python3
"""Start-path soak: N consecutive `nook run` of /bin/true, one after the other.

Usage: bench-soak.py [N] [--timeout SECONDS]

N          runs (default 10000), each with a unique id.
--timeout  seconds one run may take (default 30). A run past it is a hang: reported with
           its iteration number; nook is killed and the container killed and deleted.
Env:       NOOK (default target/x86_64-unknown-linux-gnu/release/nook; relative paths are taken from the repo
           root), BUSYBOX (static busybox, default /usr/bin/busybox).

The bundle is bench.py's (runc spec's config.json, busybox's true, a read-only root).
Runs as root in a private mount namespace (re-executes itself under `unshare -m`), like
bench.py, but leaves a hybrid host's cgroup2 mount visible: only nook runs here, so it
gets the host's real layout.

Stops at the first failure (with nook's stderr) or hang. Prints the number of runs, the
wall time and runs per second, then checks that nothing is left under --root and that no
cgroup directory named after one of its ids is left in /sys/fs/cgroup/*/nook/ (each is
named and then removed). Exit status 1 on a failure, a hang or anything left behind.
"""
import argparse, glob, os, select, shutil, signal, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (bench.py beside this script)


def say(msg):
    print(f"bench-soak: {msg}", flush=True)


def die(msg):
    sys.exit(f"bench-soak: {msg}")


class Hang(Exception):
    pass


class Runs:
    """`nook run` of the bundle under its own --root, one at a time, each with a timeout."""

    def __init__(self, nook, root, bundle, tmp, timeout):
        self.nook, self.root, self.bundle, self.timeout = nook, root, bundle, timeout
        self.runner = bench.Runner(tmp)

    def run(self, cid):
        """Returns (exit code, stderr); raises Hang past the timeout (nook killed, the
        container deleted)."""
        argv = [self.nook, "--root", self.root, "run", "--bundle", self.bundle, cid]
        r = self.runner
        os.ftruncate(r.err, 0)
        os.lseek(r.err, 0, os.SEEK_SET)
        fa = [(os.POSIX_SPAWN_DUP2, r.null, 0), (os.POSIX_SPAWN_DUP2, r.null, 1),
              (os.POSIX_SPAWN_DUP2, r.err, 2)]
        pid = os.posix_spawn(argv[0], argv, os.environ, file_actions=fa)
        pidfd = os.pidfd_open(pid)
        try:
            ready, _, _ = select.select([pidfd], [], [], self.timeout)
            if not ready:
                raise Hang(f"no exit after {self.timeout:g} s")
            _, status = os.waitpid(pid, 0)
        except BaseException:  # a hang, ctrl-c, SIGTERM: leave nothing behind
            self.kill(pid, cid)
            raise
        finally:
            os.close(pidfd)
        os.lseek(r.err, 0, os.SEEK_SET)
        return os.waitstatus_to_exitcode(status), os.read(r.err, 1 << 16).decode(errors="replace").strip()

    def kill(self, pid, cid):
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        bench.quiet([self.nook, "--root", self.root, "kill", cid, "KILL"])
        bench.quiet([self.nook, "--root", self.root, "delete", "-f", cid])


def soak(runs, n, prefix):
    """Runs until n or the first failure; (runs done, wall seconds, failure or None)."""
    t0 = time.monotonic()
    for i in range(n):
        cid = f"{prefix}{i}"
        try:
            code, err = runs.run(cid)
        except Hang as e:
            return i, time.monotonic() - t0, f"run {i} ({cid}) hung: {e}; nook killed, the container deleted"
        if code != 0:
            return i, time.monotonic() - t0, f"run {i} ({cid}) failed with exit status {code}:\n--- stderr ---\n{err}"
        if sys.stdout.isatty() and (i + 1) % 100 == 0:
            print(f"\r  {i + 1}/{n}", end="", flush=True)
    if sys.stdout.isatty():
        print("\r\033[K", end="", flush=True)
    return n, time.monotonic() - t0, None


def leftovers(root, prefix):
    """What the runs left: entries under --root, cgroup dirs named after their ids
    (removed once named)."""
    left = [f"{root}/{e}" for e in sorted(os.listdir(root))]
    for d in sorted(glob.glob(f"/sys/fs/cgroup/*/nook/{glob.escape(prefix)}*")):
        try:
            os.rmdir(d)
            left.append(f"{d} (removed)")
        except OSError as e:
            left.append(f"{d} (cannot remove: {e.strerror})")
    return left


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("n", nargs="?", type=int, default=10000, help="runs (10000)")
    ap.add_argument("--timeout", type=float, default=30, help="seconds a run may take (30)")
    args = ap.parse_args()
    if args.n < 1:
        die("N must be >= 1")
    if os.geteuid() != 0:
        die("must run as root")
    bench.enter_private_mount_ns(os.path.abspath(__file__), hide_unified=False)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    nook = bench.nook_path()
    if not os.access(nook, os.X_OK):
        die(f"no nook at {nook} (make build, or NOOK=...)")
    busybox = os.environ.get("BUSYBOX", "/usr/bin/busybox")
    runc = shutil.which("runc", path=os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin")
    tmp = tempfile.mkdtemp(prefix="nook-bench-soak-")
    root = os.path.join(tmp, "root")
    os.mkdir(root)
    prefix = f"bsoak-{os.getpid()}-"
    try:
        bundle = bench.make_bundle(tmp, busybox, runc, None)
        say(f"{args.n} runs of /bin/true, one at a time, timeout {args.timeout:g} s; {nook} "
            f"({bench.version(nook)}), --root {root}")
        done, wall, failed = soak(Runs(nook, root, bundle, tmp, args.timeout), args.n, prefix)
        say(f"{done} runs in {wall:.1f} s ({done / wall if wall else 0:.1f} runs/s)")
        left = leftovers(root, prefix)
    except KeyboardInterrupt:
        die("interrupted")
    finally:
        for cid in os.listdir(root):  # what a failed run left: cleared after being counted
            bench.quiet([nook, "--root", root, "delete", "-f", cid])
        shutil.rmtree(tmp, ignore_errors=True)
    for what in left:
        say(f"left behind: {what}")
    if failed:
        die(f"FAILED: {failed}")
    if left:
        die(f"FAILED: {len(left)} things left behind")
    say(f"nothing left under --root or in /sys/fs/cgroup/*/nook/ for the {done} ids")


if __name__ == "__main__":
    main()
