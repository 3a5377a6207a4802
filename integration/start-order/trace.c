/* Which functions a command runs, in the order they are first called: a breakpoint
 * (int3) on every function start given, set once the command has exec'd, each one
 * removed and printed (its address, hex) on its first hit. Forked and cloned children
 * are followed (they inherit the breakpoints not yet hit); the command's own re-exec
 * gets them again; any other exec (the container's program) is let go.
 *
 * usage: trace FUNCS PROGRAM ARGS...   (FUNCS: one hex address a line; needs root or
 * ptrace rights over PROGRAM). Used by integration/start-order.sh. x86_64 only. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#define SLOTS (1 << 20)
static unsigned long *addr;
static unsigned char *orig, *hit;
static long slot[SLOTS];
static long n;

static unsigned long hash(unsigned long a) { return (a * 0x9E3779B97F4A7C15ull) >> 44; }

static long find(unsigned long a) {
    for (unsigned long h = hash(a); slot[h] >= 0; h = (h + 1) & (SLOTS - 1))
        if (addr[slot[h]] == a) return slot[h];
    return -1;
}

static void insert(long i) {
    unsigned long h = hash(addr[i]);
    while (slot[h] >= 0) h = (h + 1) & (SLOTS - 1);
    slot[h] = i;
}

/* Read the byte at a (into *old when given) and write b there. */
static int poke_byte(pid_t p, unsigned long a, unsigned char b, unsigned char *old) {
    unsigned long base = a & ~7ul;
    errno = 0;
    long w = ptrace(PTRACE_PEEKTEXT, p, base, 0);
    if (errno) return -1;
    if (old) *old = ((unsigned char *)&w)[a - base];
    ((unsigned char *)&w)[a - base] = b;
    return ptrace(PTRACE_POKETEXT, p, base, w) == 0 ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: trace FUNCS PROGRAM ARGS...\n");
        return 2;
    }
    FILE *f = fopen(argv[1], "r");
    if (!f) { perror(argv[1]); return 2; }
    size_t cap = 1024;
    addr = malloc(cap * sizeof *addr);
    memset(slot, -1, sizeof slot);
    char line[64];
    while (fgets(line, sizeof line, f)) {
        if (n == (long)cap) addr = realloc(addr, (cap *= 2) * sizeof *addr);
        addr[n] = strtoul(line, 0, 16);
        insert(n++);
    }
    if (n >= SLOTS / 2) { fprintf(stderr, "too many functions\n"); return 2; }
    orig = calloc(n, 1);
    hit = calloc(n, 1);
    pid_t top = fork();
    if (top == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        execv(argv[2], argv + 2);
        _exit(127);
    }
    int st, armed = 0;
    waitpid(top, &st, 0);
    ptrace(PTRACE_SETOPTIONS, top, 0,
           PTRACE_O_TRACEFORK | PTRACE_O_TRACECLONE | PTRACE_O_TRACEVFORK |
               PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL);
    ptrace(PTRACE_CONT, top, 0, 0);
    for (;;) {
        pid_t w = waitpid(-1, &st, __WALL);
        if (w < 0) {
            if (errno == ECHILD) break;
            continue;
        }
        if (WIFEXITED(st) || WIFSIGNALED(st)) continue;
        int sig = WSTOPSIG(st), event = st >> 16;
        if (event == PTRACE_EVENT_EXEC) {
            if (w == top) {
                /* nook itself: its first exec, or its CVE-2019-5736 re-exec (a new image:
                 * the breakpoints not yet hit are set again). */
                for (long i = 0; i < n; i++)
                    if (!hit[i]) poke_byte(w, addr[i], 0xCC, armed ? 0 : &orig[i]);
                armed = 1;
                ptrace(PTRACE_CONT, w, 0, 0);
            } else {
                ptrace(PTRACE_DETACH, w, 0, 0);
            }
            continue;
        }
        if (event) { /* fork, clone: the new child arrives stopped on its own */
            ptrace(PTRACE_CONT, w, 0, 0);
            continue;
        }
        if (sig == SIGTRAP) {
            struct user_regs_struct r;
            long i = ptrace(PTRACE_GETREGS, w, 0, &r) == 0 ? find(r.rip - 1) : -1;
            if (i >= 0) {
                if (!hit[i]) {
                    hit[i] = 1;
                    printf("%lx\n", addr[i]);
                }
                poke_byte(w, addr[i], orig[i], 0);
                r.rip -= 1;
                ptrace(PTRACE_SETREGS, w, 0, &r);
            }
            ptrace(PTRACE_CONT, w, 0, 0);
            continue;
        }
        ptrace(PTRACE_CONT, w, 0, sig == SIGSTOP ? 0 : sig);
    }
    return 0;
}
