/*
 * dynamic: a dynamically linked program (libc and libm) for `nook pack --libc host`.
 * Without the host's loader and libraries injected it cannot even start.
 * Build: cc -O2 -o dynamic dynamic.c -lm
 */
#include <gnu/libc-version.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
    double x = argc > 1 ? atof(argv[1]) : 2.0;
    printf("dynamic: glibc %s, sqrt(%g) = %.6f\n", gnu_get_libc_version(), x, sqrt(x));
    return 0;
}
