#!/usr/bin/env python3
"""Soak: N container lifecycles through nook, 2 loops in parallel, then check that the
host is as it was.

Usage: soak.py [N] [--loops K]     (N default 10000, K default 2)
Env:   NOOK (default target/release/nook), BUSYBOX (static busybox, /usr/bin/busybox).

Each cycle is one of four kinds, in turn: a plain `run` of true; the same with memory and
pids limits; the same with the default seccomp profile (`nook spec`'s); and create,
start, exec of true, delete --force of a sleeping container. Meanwhile a foreground
`nook run` supervises one container for the whole soak.

Counted before (after a warm-up cycle of each kind, which fills nook's caches) and after:
the host's mounts, cgroup directories, nook's processes (nook and anything in a
container), files under the state root, and the supervisor's open fds and resident
memory. Any difference fails the run (exit 1); the
figures print as one table, with the wall time and cycles per second.
"""
import argparse, json, os, shutil, subprocess, sys, tempfile, threading, time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def die(msg):
    sys.exit(f"soak: {msg}")


def nook_path():
    p = os.environ.get("NOOK", "target/release/nook")
    p = p if os.path.isabs(p) else os.path.join(REPO, p)
    if not os.access(p, os.X_OK):
        die(f"no nook at {p} (make build, or NOOK=...)")
    return p


def make_bundle(tmp, name, busybox, nook, patch):
    b = os.path.join(tmp, name)
    os.makedirs(os.path.join(b, "rootfs", "bin"))
    shutil.copy2(busybox, os.path.join(b, "rootfs", "bin", "busybox"))
    for t in ("true", "sleep", "sh"):
        os.symlink("busybox", os.path.join(b, "rootfs", "bin", t))
    subprocess.run([nook, "spec", "--bundle", b], check=True)
    with open(os.path.join(b, "config.json")) as f:
        cfg = json.load(f)
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["/bin/true"]
    patch(cfg)
    with open(os.path.join(b, "config.json"), "w") as f:
        json.dump(cfg, f)
    return b


TAG = "NOOK_SOAK_TAG"


def nook_processes(tag):
    """Processes of nook's: a nook this soak started (or a fork of one: they carry TAG
    in their environment) and anything in a container (its root is not the host's).
    Other activity on the host does not count."""
    out = {}
    host_root = os.stat("/")
    mark = f"{TAG}={tag}".encode() + b"\0"
    for p in os.listdir("/proc"):
        if not p.isdigit() or int(p) == os.getpid():
            continue
        try:
            with open(f"/proc/{p}/environ", "rb") as f:
                env = f.read()
            r = os.stat(f"/proc/{p}/root")
        except OSError:
            continue
        if mark in env or (r.st_dev, r.st_ino) != (host_root.st_dev, host_root.st_ino):
            with open(f"/proc/{p}/cmdline", "rb") as f:
                out[int(p)] = f.read().replace(b"\0", b" ").decode(errors="replace")
    return out


def counts(root, sup_pid, tag):
    """What must be the same before and after."""
    with open("/proc/self/mountinfo") as f:
        mounts = sum(1 for _ in f)
    cgroups = sum(len(dirs) for _, dirs, _ in os.walk("/sys/fs/cgroup"))
    procs = len(nook_processes(tag))
    files = sum(len(fs) + len(ds) for _, ds, fs in os.walk(root))
    fds = len(os.listdir(f"/proc/{sup_pid}/fd"))
    return {"mounts": mounts, "cgroup dirs": cgroups, "processes": procs,
            "files under --root": files, "supervisor fds": fds}


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("n", nargs="?", type=int, default=10000)
    ap.add_argument("--loops", type=int, default=2)
    args = ap.parse_args()
    if os.geteuid() != 0:
        die("needs root")
    nook = nook_path()
    busybox = os.environ.get("BUSYBOX", "/usr/bin/busybox")
    tmp = tempfile.mkdtemp(prefix="nook-soak-")
    os.environ[TAG] = tmp
    root = os.path.join(tmp, "state")
    seccomp = {}

    def with_limits(c):
        c["linux"].setdefault("resources", {})
        c["linux"]["resources"]["memory"] = {"limit": 64 << 20}
        c["linux"]["resources"]["pids"] = {"limit": 64}

    def with_seccomp(c):
        c["linux"]["seccomp"] = seccomp["profile"]

    def sleeper(c):
        c["process"]["args"] = ["/bin/sleep", "1000000"]

    # nook spec writes the default profile into config.json's linux.seccomp.
    probe = make_bundle(tmp, "probe", busybox, nook, lambda c: None)
    with open(os.path.join(probe, "config.json")) as f:
        seccomp["profile"] = json.load(f)["linux"].get("seccomp") or {"defaultAction": "SCMP_ACT_ALLOW"}
    plain = make_bundle(tmp, "plain", busybox, nook, lambda c: c["linux"].pop("seccomp", None))
    limited = make_bundle(tmp, "limited", busybox, nook,
                          lambda c: (c["linux"].pop("seccomp", None), with_limits(c)))
    filtered = make_bundle(tmp, "seccomp", busybox, nook, with_seccomp)
    sleeping = make_bundle(tmp, "sleeping", busybox, nook,
                           lambda c: (c["linux"].pop("seccomp", None), sleeper(c)))

    def nk(*a):
        # stderr to a file, not a pipe: a created container inherits it, so a pipe would
        # not reach EOF while the container lives.
        with tempfile.TemporaryFile() as err:
            r = subprocess.run([nook, "--root", root, *a], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=err, timeout=60)
            if r.returncode != 0:
                err.seek(0)
                msg = err.read().decode(errors="replace").strip()
                raise RuntimeError(f"nook {' '.join(a)}: {msg}")

    def cycle(loop, i):
        cid = f"soak-{loop}-{i}"
        kind = i % 4
        if kind == 3:
            nk("create", cid, "--bundle", sleeping)
            nk("start", cid)
            nk("exec", cid, "/bin/true")
            nk("delete", "--force", cid)
        else:
            nk("run", cid, "--bundle", (plain, limited, filtered)[kind])

    # The supervisor: a foreground run for the whole soak.
    sup = subprocess.Popen([nook, "--root", root, "run", "soak-supervised", "--bundle", sleeping],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(200):
            if os.path.exists(os.path.join(root, "soak-supervised", "state.json")):
                break
            time.sleep(0.05)
        for i in range(4):
            cycle("warm", i)
        before = counts(root, sup.pid, tmp)
        rss_before = rss_kib(sup.pid)
        errors = []
        done = [0] * args.loops

        def loop(k):
            for i in range(k, args.n, args.loops):
                try:
                    cycle(k, i)
                except Exception as e:  # keep going: report them all
                    errors.append(f"cycle {i}: {e}")
                    if len(errors) > 20:
                        return
                done[k] += 1

        t0 = time.monotonic()
        threads = [threading.Thread(target=loop, args=(k,)) for k in range(args.loops)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - t0
        after = counts(root, sup.pid, tmp)
        rss_after = rss_kib(sup.pid)
        alive = sup.poll() is None
    finally:
        subprocess.run([nook, "--root", root, "delete", "--force", "soak-supervised"],
                       stderr=subprocess.DEVNULL)
        try:
            sup.wait(timeout=30)
        except subprocess.TimeoutExpired:
            sup.kill()

    cycles = sum(done)
    print(f"soak: {cycles} cycles in {wall:.1f} s ({cycles / wall:.1f}/s), {args.loops} loops, nook {nook}")
    print(f"{'':24}{'before':>10}{'after':>10}")
    bad = []
    for k in before:
        print(f"{k:24}{before[k]:>10}{after[k]:>10}")
        if before[k] != after[k]:
            bad.append(k)
    print(f"{'supervisor RSS KiB':24}{rss_before:>10}{rss_after:>10}")
    for e in errors:
        print(f"soak: {e}")
    if "processes" in bad:
        for pid, cmd in sorted(nook_processes(tmp).items()):
            print(f"soak: process {pid}: {cmd}")
    if not alive:
        bad.append("the supervised container died")
    if rss_after > rss_before + 256:
        bad.append("supervisor memory grew")
    if errors or bad or cycles != args.n:
        die(f"FAILED: {', '.join(bad) or f'{len(errors)} errors'}")
    shutil.rmtree(tmp, ignore_errors=True)
    print("soak: nothing leaked")


if __name__ == "__main__":
    main()
