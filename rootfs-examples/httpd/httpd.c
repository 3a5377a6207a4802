/*
 * httpd: a tiny static HTTP server for nook's examples.
 * Serves "hello from <hostname>" on every GET (or, when the config file
 * /etc/httpd/greeting exists, its first line: see `nook app`), on the port in $PORT (default 8080),
 * or on the listening socket systemd passed (socket activation: LISTEN_FDS=1 and
 * LISTEN_PID naming this process, the socket at fd 3; see httpd.socket and
 * httpd.service beside this file). Says READY=1 to $NOTIFY_SOCKET once it listens.
 * With --once it answers one request and exits (for tests).
 * Build: cc -static -O2 -o httpd httpd.c
 */
#include <netinet/in.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/utsname.h>
#include <unistd.h>

/* The socket systemd passed to this process, or -1 (sd_listen_fds, by hand). */
static int activated_socket(void)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    if (!pid || !fds || atoi(pid) != (int)getpid() || atoi(fds) < 1)
        return -1;
    return 3;
}

/* sd_notify(0, "READY=1"), by hand: one datagram to $NOTIFY_SOCKET. */
static void notify_ready(void)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || (path[0] != '/' && path[0] != '@'))
        return;
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    strncpy(a.sun_path, path, sizeof a.sun_path - 1);
    socklen_t len = sizeof a;
    if (path[0] == '@') {
        a.sun_path[0] = 0;
        len = offsetof(struct sockaddr_un, sun_path) + strlen(path);
    }
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        (void)sendto(fd, "READY=1", 7, 0, (struct sockaddr *)&a, len);
        close(fd);
    }
}

/* SIGTERM (systemctl stop, a restart) ends the server at once: as the init of its pid
 * namespace it would otherwise ignore the signal, and the stop wait for its timeout. */
static void on_term(int sig)
{
    (void)sig;
    _exit(0);
}

/* The first line of /etc/httpd/greeting (read at each request), or 0 without one. */
static int greeting(char *buf, size_t size)
{
    FILE *f = fopen("/etc/httpd/greeting", "r");
    if (!f)
        return 0;
    int n = fgets(buf, (int)size, f) ? (int)strlen(buf) : 0;
    fclose(f);
    return n;
}

/* Reads the request up to the blank line that ends its headers (or EOF, or 2 KiB). A
 * request that arrives in several writes (bash's printf makes two) is read whole: closing
 * with unread bytes would send the client a reset instead of the end of the reply. */
static void read_request(int c)
{
    char req[2048];
    size_t len = 0;
    while (len < sizeof req - 1) {
        ssize_t n = read(c, req + len, sizeof req - 1 - len);
        if (n <= 0)
            return;
        len += (size_t)n;
        req[len] = 0;
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
            return;
    }
}

int main(int argc, char **argv)
{
    int once = argc > 1 && strcmp(argv[1], "--once") == 0;
    signal(SIGTERM, on_term);
    const char *p = getenv("PORT");
    int port = p ? atoi(p) : 8080;
    struct utsname u;
    uname(&u);

    int s = activated_socket();
    if (s >= 0) {
        printf("httpd: serving the socket systemd passed (fd 3)\n");
    } else {
        s = socket(AF_INET, SOCK_STREAM, 0);
        int one = 1;
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
        if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 16)) {
            perror("httpd: listen");
            return 1;
        }
        printf("httpd: listening on port %d\n", port);
    }
    fflush(stdout);
    notify_ready();
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0)
            continue;
        read_request(c);
        char body[300], resp[512];
        int bl = greeting(body, sizeof body);
        if (bl <= 0)
            bl = snprintf(body, sizeof body, "hello from %s\n", u.nodename);
        int rl = snprintf(resp, sizeof resp,
                          "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n"
                          "Content-Length: %d\r\n\r\n%s", bl, body);
        if (write(c, resp, rl) != rl)
            perror("httpd: write");
        close(c);
        if (once)
            return 0;
    }
}
