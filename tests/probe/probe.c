/*
 * probe: runs inside a container as the container process and reports what
 * the kernel shows it.  Build: cc -static -O2 -o probe probe.c
 * No NSS calls (getpwnam etc.) so the static binary needs nothing from the
 * rootfs.  See usage() for the subcommands.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/utsname.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

extern char **environ;

#define E(x) case x: return #x;
static const char *errname(int e)
{
    static char num[16];
    switch (e) {
    E(ENOENT) E(EACCES) E(EPERM) E(EROFS) E(EISDIR)
    E(ENOTDIR) E(EINVAL) E(EBUSY) E(ENXIO) E(ENODEV)
    E(ETXTBSY) E(ESRCH) E(ENOSYS) E(EEXIST) E(ELOOP)
    }
    snprintf(num, sizeof num, "%d", e);
    return num;
}

/* Print error:<NAME> for errno and return exit status 1. */
static int fail(void)
{
    printf("error:%s\n", errname(errno));
    return 1;
}

/* Read a whole (small) file into buf, NUL-terminated. Returns length or -1. */
static ssize_t slurp(const char *path, char *buf, size_t size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t len = 0;
    while (len + 1 < size) {
        ssize_t n = read(fd, buf + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1; /* short-lived process: fd leak is harmless */
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    close(fd);
    return (ssize_t)len;
}

static void trim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        s[--n] = '\0';
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int cmp_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

static int not_dots(const struct dirent *d)
{
    return strcmp(d->d_name, ".") && strcmp(d->d_name, "..");
}

static const char *rlim_str(rlim_t v, char *buf)
{
    if (v == RLIM_INFINITY) return "unlimited";
    sprintf(buf, "%llu", (unsigned long long)v);
    return buf;
}

static void print_rlimit(const char *name, int res)
{
    struct rlimit rl;
    char s[32], h[32];
    if (getrlimit(res, &rl) != 0)
        printf("rlimit_%s=error:%s\n", name, errname(errno));
    else
        printf("rlimit_%s=%s:%s\n", name, rlim_str(rl.rlim_cur, s), rlim_str(rl.rlim_max, h));
}

static int cmd_report(int argc, char **argv)
{
    static char buf[65536];
    printf("uid=%u\neuid=%u\ngid=%u\negid=%u\n", (unsigned)getuid(),
           (unsigned)geteuid(), (unsigned)getgid(), (unsigned)getegid());

    int ng = getgroups(0, NULL);
    printf("groups=");
    if (ng > 0) {
        gid_t *gs = calloc((size_t)ng, sizeof *gs);
        if (gs && (ng = getgroups(ng, gs)) > 0)
            for (int i = 0; i < ng; i++)
                printf("%s%u", i ? "," : "", (unsigned)gs[i]);
        free(gs);
    }
    printf("\npid=%d\nppid=%d\n", (int)getpid(), (int)getppid());
    printf("cwd=%s\n", getcwd(buf, sizeof buf) ? buf : "error");

    struct utsname u;
    if (uname(&u) == 0)
        printf("hostname=%s\ndomainname=%s\n", u.nodename, u.domainname);

    mode_t m = umask(0);
    umask(m);
    printf("umask=%04o\n", (unsigned)m);
    printf("no_new_privs=%d\n", prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0));
    printf("dumpable=%d\n", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));

    static const char *caps[] = {"Inh", "Prm", "Eff", "Bnd", "Amb"};
    if (slurp("/proc/self/status", buf, sizeof buf) >= 0) {
        for (size_t i = 0; i < sizeof caps / sizeof caps[0]; i++) {
            char key[16];
            snprintf(key, sizeof key, "\nCap%s:", caps[i]);
            char *p = strstr(buf, key);
            if (!p)
                continue;
            p += strlen(key);
            p += strspn(p, " \t");
            int len = (int)strcspn(p, "\n");
            printf("cap_%c%s=%.*s\n", caps[i][0] + ('a' - 'A'), caps[i] + 1, len, p);
        }
    }

    static const char *ns[] = {"mnt", "pid", "net", "ipc", "uts", "user", "cgroup", "time"};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++) {
        char path[64], target[256];
        snprintf(path, sizeof path, "/proc/self/ns/%s", ns[i]);
        ssize_t n = readlink(path, target, sizeof target - 1);
        if (n < 0)
            printf("ns_%s=error:%s\n", ns[i], errname(errno));
        else
            printf("ns_%s=%.*s\n", ns[i], (int)n, target);
    }

    print_rlimit("nofile", RLIMIT_NOFILE);
    print_rlimit("nproc", RLIMIT_NPROC);
    print_rlimit("core", RLIMIT_CORE);
    print_rlimit("stack", RLIMIT_STACK);
    print_rlimit("as", RLIMIT_AS);
    print_rlimit("cpu", RLIMIT_CPU);
    print_rlimit("memlock", RLIMIT_MEMLOCK);
    print_rlimit("fsize", RLIMIT_FSIZE);
    print_rlimit("data", RLIMIT_DATA);
    print_rlimit("rss", RLIMIT_RSS);
    print_rlimit("locks", RLIMIT_LOCKS);
    print_rlimit("sigpending", RLIMIT_SIGPENDING);
    print_rlimit("msgqueue", RLIMIT_MSGQUEUE);
    print_rlimit("nice", RLIMIT_NICE);
    print_rlimit("rtprio", RLIMIT_RTPRIO);
    print_rlimit("rttime", RLIMIT_RTTIME);

    if (slurp("/proc/self/oom_score_adj", buf, sizeof buf) >= 0) {
        trim(buf);
        printf("oom_score_adj=%s\n", buf);
    } else {
        printf("oom_score_adj=error:%s\n", errname(errno));
    }

    for (char **e = environ; e && *e; e++)
        printf("env_%s\n", *e);

    printf("fds=");
    DIR *d = opendir("/proc/self/fd");
    if (d) {
        int fds[1024], nfd = 0, self = dirfd(d);
        struct dirent *de;
        while ((de = readdir(d)) && nfd < 1024) {
            if (de->d_name[0] == '.')
                continue;
            int fd = atoi(de->d_name);
            if (fd != self)
                fds[nfd++] = fd;
        }
        closedir(d);
        qsort(fds, (size_t)nfd, sizeof fds[0], cmp_int);
        for (int i = 0; i < nfd; i++)
            printf("%s%d", i ? "," : "", fds[i]);
    }
    printf("\nargv=");
    for (int i = 0; i < argc; i++)
        printf("%s%s", i ? " " : "", argv[i]);
    printf("\n");
    return 0;
}

static int cmd_cat(const char *path)
{
    char buf[8192];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return fail();
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return fail(); /* process exits right after; fd leak is harmless */
        if (n == 0)
            break;
        fwrite(buf, 1, (size_t)n, stdout);
    }
    close(fd);
    return 0;
}

static int cmd_write(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, "x", 1) != 1)
        return fail();
    if (close(fd) != 0)
        return fail();
    printf("ok\n");
    return 0;
}

static int cmd_ls(const char *path)
{
    struct dirent **ents;
    int n = scandir(path, &ents, not_dots, cmp_name);
    if (n < 0)
        return fail();
    for (int i = 0; i < n; i++) {
        printf("%s\n", ents[i]->d_name);
        free(ents[i]);
    }
    free(ents);
    return 0;
}

static int cmd_stat(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return fail();
    const char *t = S_ISREG(st.st_mode) ? "file" : S_ISDIR(st.st_mode) ? "dir"
                  : S_ISLNK(st.st_mode) ? "link" : S_ISCHR(st.st_mode) ? "chr"
                  : S_ISBLK(st.st_mode) ? "blk" : S_ISFIFO(st.st_mode) ? "fifo"
                  : S_ISSOCK(st.st_mode) ? "sock" : "unknown";
    printf("type=%s mode=%04o uid=%u gid=%u rdev=%u:%u\n", t,
           (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid,
           (unsigned)st.st_gid, major(st.st_rdev), minor(st.st_rdev));
    return 0;
}

static volatile sig_atomic_t got_sig;
static void on_signal(int sig) { got_sig = sig; }

static int cmd_signals(void)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGUSR1, SIGUSR2};
    sigset_t block, old;
    sigemptyset(&block);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
        sigaddset(&block, sigs[i]);
        sigaction(sigs[i], &sa, NULL);
    }
    /* Block while checking so no signal slips in before we suspend. */
    sigprocmask(SIG_BLOCK, &block, &old);
    printf("ready\n");
    fflush(stdout);
    sigset_t wait_mask = old;
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigdelset(&wait_mask, sigs[i]);
    while (!got_sig)
        sigsuspend(&wait_mask);
    printf("got %d\n", (int)got_sig);
    return 100 + got_sig;
}

static int cmd_kill_self(int sig)
{
    sigset_t set;
    signal(sig, SIG_DFL);
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    fflush(stdout);
    raise(sig);
    fprintf(stderr, "probe: still alive after signal %d\n", sig);
    return 1;
}

static int cmd_signals(void);

/* notify STEP...: each step is a message sent to $NOTIFY_SOCKET (a literal "\\n" in it
 * becomes a newline), sleep:SECS, or wait-signal (as `signals`: ends the run). Prints
 * "notified" after the last. */
static int cmd_notify(int argc, char **argv)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path) { fprintf(stderr, "probe: NOTIFY_SOCKET is not set\n"); return 1; }
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return fail();
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "wait-signal"))
            return cmd_signals();
        if (!strncmp(argv[i], "sleep:", 6)) {
            double secs = strtod(argv[i] + 6, NULL);
            struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
            while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
                ;
            continue;
        }
        char msg[8192];
        size_t n = 0;
        for (const char *c = argv[i]; *c && n < sizeof msg - 1; c++) {
            if (c[0] == '\\' && c[1] == 'n') { msg[n++] = '\n'; c++; }
            else msg[n++] = *c;
        }
        if (sendto(fd, msg, n, 0, (struct sockaddr *)&a, sizeof a) < 0) return fail();
    }
    printf("notified\n");
    return 0;
}

/* serve-fd3: accept one connection on the inherited listening socket fd 3 and answer
 * with this process's pid and its LISTEN_* variables. */
static int cmd_serve_fd3(void)
{
    int c = accept(3, NULL, NULL);
    if (c < 0) return fail();
    char out[256];
    const char *lp = getenv("LISTEN_PID"), *lf = getenv("LISTEN_FDS");
    int n = snprintf(out, sizeof out, "served by pid %d LISTEN_PID=%s LISTEN_FDS=%s\n",
                     (int)getpid(), lp ? lp : "-", lf ? lf : "-");
    if (write(c, out, n) != n) return fail();
    close(c);
    return 0;
}

/* pause: a pod's sandbox process (what Kubernetes' pause image does): sleep until
 * SIGTERM or SIGINT (then exit 0), reaping any child re-parented to it. */
static volatile sig_atomic_t pause_stop;
static void on_pause_stop(int sig) { (void)sig; pause_stop = 1; }
static void on_pause_child(int sig)
{
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}
static int cmd_pause(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_pause_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_pause_child;
    sa.sa_flags = SA_NOCLDSTOP;
    sigaction(SIGCHLD, &sa, NULL);
    while (!pause_stop)
        pause();
    return 0;
}

static void usage(void);
#include "escape.inc"

static void usage(void)
{
    fprintf(stderr, "usage: probe report|mounts|hello|signals|cat PATH|write PATH|"
            "ls PATH|readlink PATH|stat PATH|exit N|sleep SECS|kill-self SIG|"
            "sysctl NAME|syscall NR [ARG...]|notify STEP...|serve-fd3|pause|esc-* (escape.inc)\n");
}

int main(int argc, char **argv)
{
    const char *cmd = argc > 1 ? argv[1] : "";
    const char *arg = argc > 2 ? argv[2] : NULL;
    int rc = 2;

    if (!strcmp(cmd, "report")) rc = cmd_report(argc, argv);
    else if (!strcmp(cmd, "mounts")) rc = cmd_cat("/proc/self/mountinfo");
    else if (!strcmp(cmd, "hello")) { printf("hello from probe\n"); rc = 0; }
    else if (!strcmp(cmd, "signals")) rc = cmd_signals();
    else if (!strcmp(cmd, "notify")) rc = cmd_notify(argc, argv);
    else if (!strcmp(cmd, "serve-fd3")) rc = cmd_serve_fd3();
    else if (!strcmp(cmd, "pause")) rc = cmd_pause();
    else if (!strncmp(cmd, "esc-", 4)) rc = cmd_escape(cmd, argc, argv);
    else if (!arg) { usage(); return 2; }
    else if (!strcmp(cmd, "cat")) rc = cmd_cat(arg);
    else if (!strcmp(cmd, "write")) rc = cmd_write(arg);
    else if (!strcmp(cmd, "ls")) rc = cmd_ls(arg);
    else if (!strcmp(cmd, "stat")) rc = cmd_stat(arg);
    else if (!strcmp(cmd, "exit")) rc = atoi(arg);
    else if (!strcmp(cmd, "kill-self")) rc = cmd_kill_self(atoi(arg));
    else if (!strcmp(cmd, "readlink")) {
        char target[4096];
        ssize_t n = readlink(arg, target, sizeof target - 1);
        if (n < 0) rc = fail();
        else { printf("%.*s\n", (int)n, target); rc = 0; }
    } else if (!strcmp(cmd, "sleep")) {
        double secs = strtod(arg, NULL);
        struct timespec ts = {(time_t)secs, (long)((secs - (double)(time_t)secs) * 1e9)};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        rc = 0;
    } else if (!strcmp(cmd, "sysctl")) {
        char path[512], buf[65536];
        snprintf(path, sizeof path, "/proc/sys/%s", arg);
        for (char *p = path + 10; *p; p++)
            if (*p == '.') *p = '/';
        if (slurp(path, buf, sizeof buf) < 0) rc = fail();
        else { trim(buf); printf("%s\n", buf); rc = 0; }
    } else if (!strcmp(cmd, "syscall")) {
        /* syscall NR [ARG...]: one raw syscall with numeric arguments (0x.. allowed);
         * prints ret:<value> or error:<errno>. */
        unsigned long a[6] = {0};
        for (int i = 0; i < 6 && 3 + i < argc; i++)
            a[i] = strtoul(argv[3 + i], NULL, 0);
        long r = syscall(strtol(arg, NULL, 0), a[0], a[1], a[2], a[3], a[4], a[5]);
        if (r == -1) rc = fail();
        else { printf("ret:%ld\n", r); rc = 0; }
    } else {
        usage();
        return 2;
    }
    fflush(stdout);
    return rc;
}
