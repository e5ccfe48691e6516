/*
 * Allocation-failure paths: strong definitions of the library's allocation
 * seam (starmap_alloc.h) fail the Nth allocation. Each scenario runs with
 * N = 0, 1, 2, ... until it completes without an injected failure; every
 * run must succeed or report ORBIT_ENOMEM, and leak nothing (the sanitizer
 * build checks leaks at exit).
 */
#include "orbit/chunk_codec.h"
#include "orbit/chunker.h"
#include "orbit/error.h"
#include "orbit/pak_pool.h"
#include "orbit/starmap.h"
#include "starmap_alloc.h"
#include "starmap_test_util.h"

#include <criterion/criterion.h>

/* Test-process state only: each Criterion test runs in its own process. */
static long fail_at = -1;
static long alloc_calls;

static int
should_fail(void)
{
    return fail_at >= 0 && alloc_calls++ == fail_at;
}

void *
starmap_malloc(size_t size)
{
    return should_fail() ? NULL : malloc(size);
}

void *
starmap_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : calloc(n, size);
}

void *
starmap_realloc(void *p, size_t size)
{
    return should_fail() ? NULL : realloc(p, size);
}

static void
sweep(const char *what, int (*scenario)(void))
{
    for (long n = 0; n < 10000; n++) {
        fail_at = n;
        alloc_calls = 0;
        int rc = scenario();
        long made = alloc_calls;
        fail_at = -1;
        cr_assert(rc == 0 || rc == ORBIT_ENOMEM, "%s: failing alloc %ld: %d",
                  what, n, rc);
        /* every scenario allocates: the seam must be in use */
        cr_assert(n > 0 || rc == ORBIT_ENOMEM, "%s: seam not used", what);
        if (n >= made) {
            cr_assert_eq(rc, 0, "%s: no failure injected", what);
            return;
        }
    }
    cr_assert_fail("%s: too many allocations", what);
}

static int
chunk_and_code(void)
{
    struct chunker *ch = NULL;
    struct chunk_codec *c = NULL;
    struct chunk_id_stream *s = NULL;
    uint8_t raw[4096] = {1}, st[8192];
    size_t n = 0;
    uint8_t codec;
    int rc = chunker_new(NULL, &ch);
    if (rc == 0)
        rc = chunk_codec_new(0, &c);
    if (rc == 0)
        rc = chunk_codec_encode(c, raw, sizeof raw, st, sizeof st, &n, &codec);
    if (rc == 0)
        rc = chunk_id_stream_new(&s);
    chunk_id_stream_free(s);
    chunk_codec_free(c);
    chunker_free(ch);
    return rc;
}

static char root[64];

/* Pool + index in a fresh directory: put, commit, look up, read, GC. */
static int
pool_and_index(void)
{
    char packs[128], idx[128];
    struct pak_pool *pool = NULL;
    struct starmap *sm = NULL;
    struct starmap_batch *b = NULL;
    static struct starmap_loc l;
    static uint8_t raw[3000], out[3000];
    struct chunk_id id;
    struct pak_loc pl;
    bool have = false;
    tu_tmpdir(root, sizeof root);
    snprintf(packs, sizeof packs, "%s/packs", root);
    snprintf(idx, sizeof idx, "%s/starmap", root);
    memset(raw, 'a', sizeof raw);
    chunk_id_compute(raw, sizeof raw, &id);
    int rc = pak_pool_open(packs, NULL, &pool);
    if (rc == 0)
        rc = starmap_open(idx, NULL, &sm);
    if (rc == 0)
        rc = pak_pool_append(pool, &id, CHUNK_CODEC_RAW, sizeof raw, raw,
                             sizeof raw, &pl);
    if (rc == 0)
        rc = starmap_batch_new(&b);
    if (rc == 0) {
        starmap_loc_pack(&l, &pl, sizeof raw);
        rc = starmap_batch_add_loc(b, &id, &l);
    }
    if (rc == 0)
        rc = starmap_batch_commit(sm, b, NULL);
    if (rc == 0)
        rc = starmap_have(sm, &id, 1, &have);
    if (rc == 0)
        rc = pak_pool_read(pool, &pl, &id, out, sizeof out, NULL);
    if (rc == 0)
        rc = starmap_check(sm, pool);
    if (rc == 0)
        rc = pak_pool_rotate(pool);
    if (rc == 0) {
        starmap_batch_clear(b);
        rc = starmap_batch_forget(b, &id);
    }
    if (rc == 0)
        rc = starmap_batch_commit(sm, b, NULL);
    if (rc == 0)
        rc = starmap_gc(sm, pool, NULL);
    if (rc == 0 && !have)
        rc = ORBIT_EINVAL;
    starmap_batch_free(b);
    starmap_close(sm);
    pak_pool_free(pool);
    tu_rmrf(root);
    return rc;
}

/* A container written, scanned with verification, read back. */
static int
container(void)
{
    char path[128];
    struct pak_writer *w = NULL;
    struct pak_reader *r = NULL;
    struct pak_scanner *s = NULL;
    struct pak_record_info info;
    static uint8_t raw[5000], out[5000];
    struct chunk_id id;
    uint64_t off = 0;
    tu_tmpdir(root, sizeof root);
    snprintf(path, sizeof path, "%s/c.orbitpak", root);
    memset(raw, 'b', sizeof raw);
    chunk_id_compute(raw, sizeof raw, &id);
    int rc = pak_writer_open(path, NULL, &w);
    if (rc == 0)
        rc = pak_writer_append(w, &id, CHUNK_CODEC_RAW, sizeof raw, raw,
                               sizeof raw, &off);
    pak_writer_free(w);
    w = NULL;
    if (rc == 0)
        rc = pak_writer_open(path, NULL, &w); /* resume: scans */
    if (rc == 0)
        rc = pak_reader_open(path, &r);
    if (rc == 0)
        rc = pak_reader_read(r, off, &id, out, sizeof out, &info);
    if (rc == 0)
        rc = pak_scanner_open(path, true, &s);
    if (rc == 0)
        rc = pak_scanner_next(s, &info);
    pak_scanner_free(s);
    pak_reader_free(r);
    pak_writer_free(w);
    tu_rmrf(root);
    return rc;
}

Test(starmap_alloc, chunker_codec_ids)
{
    sweep("chunk_and_code", chunk_and_code);
}

Test(starmap_alloc, container)
{
    sweep("container", container);
}

Test(starmap_alloc, pool_and_index)
{
    sweep("pool_and_index", pool_and_index);
}
