/*
 * resolve: resolves a name (through /etc/nsswitch.conf and /etc/hosts) and loads the
 * CA bundle, the two things a networked service needs from its host: run it without
 * injection and both fail.
 * Build: cc -O2 -o resolve resolve.c
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>

static int count_certs(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[512];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "-----BEGIN CERTIFICATE-----", 27) == 0)
            n++;
    fclose(f);
    return n;
}

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "localhost";
    struct addrinfo hints = {.ai_family = AF_INET}, *res;
    int rc = getaddrinfo(name, NULL, &hints, &res);
    if (rc != 0) {
        printf("resolve: %s: %s\n", name, gai_strerror(rc));
        return 1;
    }
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, ip, sizeof ip);
    freeaddrinfo(res);
    int certs = count_certs("/etc/ssl/certs/ca-certificates.crt");
    if (certs <= 0) {
        printf("resolve: %s is %s, but no CA certificates\n", name, ip);
        return 2;
    }
    printf("resolve: %s is %s; %d CA certificates\n", name, ip, certs);
    return 0;
}
