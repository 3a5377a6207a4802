/*
 * httpd: a tiny static HTTP server for nook's examples.
 * Serves "hello from <hostname>" on every GET, on the port in $PORT (default 8080).
 * With --once it answers one request and exits (for tests).
 * Build: cc -static -O2 -o httpd httpd.c
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    int once = argc > 1 && strcmp(argv[1], "--once") == 0;
    const char *p = getenv("PORT");
    int port = p ? atoi(p) : 8080;
    struct utsname u;
    uname(&u);

    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 16)) {
        perror("httpd: listen");
        return 1;
    }
    printf("httpd: listening on port %d\n", port);
    fflush(stdout);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0)
            continue;
        char req[2048];
        ssize_t n = read(c, req, sizeof req - 1);
        (void)n;
        char body[300], resp[512];
        int bl = snprintf(body, sizeof body, "hello from %s\n", u.nodename);
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
