/*
 * Fuzz target: the path validator. Whatever it accepts must really be a
 * safe relative path; whatever it refuses must come with a message.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "orbit/error.h"
#include "orbit/wire_path.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_accepted(const char *p, size_t n)
{
    if (n == 0 || n > 4096 || p[0] == '/' || memchr(p, 0, n))
        abort();
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && p[i] != '/')
            continue;
        size_t len = i - start;
        const char *c = p + start;
        if (len == 0 || len > 255 || (len == 1 && c[0] == '.') ||
            (len == 2 && c[0] == '.' && c[1] == '.') ||
            (start == 0 && len == 6 && strncasecmp(c, ".orbit", 6) == 0))
            abort();
        start = i + 1;
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[160];
    /* A heap copy of exactly size bytes, so reading past it is caught. */
    char *p = calloc(1, size ? size : 1);
    if (!p)
        return 0;
    if (size)
        memcpy(p, data, size);
    err[0] = 0;
    int rc = wire_path_check(p, size, err, sizeof err);
    if (rc == 0)
        check_accepted(p, size);
    else if (rc != ORBIT_EPATH || err[0] == 0)
        abort();
    char tiny[4];
    if (wire_path_check(p, size, tiny, sizeof tiny) != rc)
        abort();
    free(p);
    return 0;
}
