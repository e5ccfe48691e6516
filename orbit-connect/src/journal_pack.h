/*
 * journal_pack.h - the journal's record encoding: a version byte, then
 * little-endian u64 fields and length-prefixed byte strings. Paths are
 * bytes, not text, so the journal does not store them as JSON.
 */
#ifndef ORBIT_JOURNAL_PACK_H
#define ORBIT_JOURNAL_PACK_H

#include <stddef.h>
#include <stdint.h>

struct journal_pk {
    unsigned char *buf;
    size_t len;
    size_t cap;
    int err; /* first error, sticky */
};

struct journal_upk {
    const unsigned char *p;
    size_t left;
    int err; /* first error, sticky */
};

/* The allocation seam of the journal: every allocation it makes goes through
 * these (memory is released with free()). The definitions are weak and call
 * the C library, so a test can link strong ones that fail the Nth call. */
void *journal_malloc(size_t size);
void *journal_calloc(size_t n, size_t size);
void *journal_realloc(void *p, size_t size);

void journal_pk_u64(struct journal_pk *pk, uint64_t v);
/* Appends len bytes without a length prefix. */
void journal_pk_raw(struct journal_pk *pk, const void *data, size_t len);
void journal_pk_bytes(struct journal_pk *pk, const void *data, size_t len);
/* NULL packs as "". */
void journal_pk_str(struct journal_pk *pk, const char *s);
void journal_pk_release(struct journal_pk *pk);

uint64_t journal_upk_u64(struct journal_upk *up);
/* A new NUL-terminated copy, or NULL with up->err set. */
char *journal_upk_str(struct journal_upk *up);
/* Copies exactly len bytes into dst. */
void journal_upk_fixed(struct journal_upk *up, void *dst, size_t len);

#endif
