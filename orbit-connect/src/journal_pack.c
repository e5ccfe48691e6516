#include "journal_pack.h"

#include <stdlib.h>
#include <string.h>

#include "orbit/error.h"

__attribute__((weak)) void *
journal_malloc(size_t size)
{
    return malloc(size);
}

__attribute__((weak)) void *
journal_calloc(size_t n, size_t size)
{
    return calloc(n, size);
}

__attribute__((weak)) void *
journal_realloc(void *p, size_t size)
{
    return realloc(p, size);
}

void
journal_pk_raw(struct journal_pk *pk, const void *data, size_t len)
{
    if (pk->err)
        return;
    if (len > SIZE_MAX / 2 - pk->len) {
        pk->err = ORBIT_ETOOBIG;
        return;
    }
    if (pk->len + len > pk->cap) {
        size_t ncap = pk->cap ? pk->cap : 128;
        while (ncap < pk->len + len)
            ncap *= 2;
        unsigned char *n = journal_realloc(pk->buf, ncap);
        if (!n) {
            pk->err = ORBIT_ENOMEM;
            return;
        }
        pk->buf = n;
        pk->cap = ncap;
    }
    if (len)
        memcpy(pk->buf + pk->len, data, len);
    pk->len += len;
}

void
journal_pk_u64(struct journal_pk *pk, uint64_t v)
{
    unsigned char b[8];
    for (size_t i = 0; i < 8; i++)
        b[i] = (unsigned char)(v >> (8 * i));
    journal_pk_raw(pk, b, sizeof b);
}

void
journal_pk_bytes(struct journal_pk *pk, const void *data, size_t len)
{
    journal_pk_u64(pk, len);
    journal_pk_raw(pk, data, len);
}

void
journal_pk_str(struct journal_pk *pk, const char *s)
{
    if (!s)
        s = "";
    journal_pk_bytes(pk, s, strlen(s));
}

void
journal_pk_release(struct journal_pk *pk)
{
    free(pk->buf);
    pk->buf = NULL;
    pk->len = pk->cap = 0;
}

uint64_t
journal_upk_u64(struct journal_upk *up)
{
    uint64_t v = 0;
    if (up->err)
        return 0;
    if (up->left < 8) {
        up->err = ORBIT_ECORRUPT;
        return 0;
    }
    for (size_t i = 0; i < 8; i++)
        v |= (uint64_t)up->p[i] << (8 * i);
    up->p += 8;
    up->left -= 8;
    return v;
}

char *
journal_upk_str(struct journal_upk *up)
{
    uint64_t len = journal_upk_u64(up);
    if (up->err)
        return NULL;
    if (len > up->left) {
        up->err = ORBIT_ECORRUPT;
        return NULL;
    }
    char *s = journal_malloc((size_t)len + 1);
    if (!s) {
        up->err = ORBIT_ENOMEM;
        return NULL;
    }
    memcpy(s, up->p, (size_t)len);
    s[len] = '\0';
    up->p += len;
    up->left -= (size_t)len;
    return s;
}

void
journal_upk_fixed(struct journal_upk *up, void *dst, size_t len)
{
    if (up->err)
        return;
    if (len > up->left) {
        up->err = ORBIT_ECORRUPT;
        return;
    }
    memcpy(dst, up->p, len);
    up->p += len;
    up->left -= len;
}
