/*
 * hello: tiny static demo app for `make demo`.
 * Build: cc -static -O2 -o hello hello.c
 * Shows it runs sealed in a container: its own hostname, pid 1 in its pid
 * namespace, and only a handful of entries in its minimal root.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/utsname.h>

int main(void)
{
    struct utsname u;
    const char *host = uname(&u) == 0 ? u.nodename : "?";

    int entries = -1;
    DIR *d = opendir("/");
    if (d) {
        struct dirent *de;
        entries = 0;
        while ((de = readdir(d)))
            if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                entries++;
        closedir(d);
    }

    printf("Hello from inside nook!\n");
    printf("  hostname: %s\n", host);
    printf("  pid:      %d\n", (int)getpid());
    printf("  uid:      %u\n", (unsigned)getuid());
    printf("  entries in /: %d\n", entries);
    return 0;
}
