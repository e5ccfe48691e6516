/* Helpers shared by the core-starmap tests. */
#ifndef STARMAP_TEST_UTIL_H
#define STARMAP_TEST_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline uint64_t
tu_rand(uint64_t *s)
{
    uint64_t z = (*s += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

/* len pseudo-random bytes from seed (caller frees). */
static inline uint8_t *
tu_random_bytes(uint64_t seed, size_t len)
{
    uint8_t *b = malloc(len ? len : 1);
    for (size_t i = 0; i < len; i += 8) {
        uint64_t v = tu_rand(&seed);
        size_t n = len - i < 8 ? len - i : 8;
        memcpy(b + i, &v, n);
    }
    return b;
}

/* Compressible text-like bytes: words from a small vocabulary. */
static inline uint8_t *
tu_text_bytes(uint64_t seed, size_t len)
{
    static const char *words[] = {"orbit ", "star ", "chunk ", "map ",
                                  "pak ",   "zstd ", "index ", "file\n",
                                  "the ",   "copy ", "sync ",  "of "};
    uint8_t *b = malloc(len ? len : 1);
    size_t i = 0;
    while (i < len) {
        const char *w = words[tu_rand(&seed) % 12];
        size_t n = strlen(w);
        if (n > len - i)
            n = len - i;
        memcpy(b + i, w, n);
        i += n;
    }
    return b;
}

/* A fresh temporary directory (caller removes it with tu_rmrf). */
static inline void
tu_tmpdir(char *buf, size_t cap)
{
    snprintf(buf, cap, "/tmp/orbit-starmap-test-XXXXXX");
    if (!mkdtemp(buf))
        abort();
}

static inline void
tu_rmrf(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

#endif
