/* File records: the "files" database of the starmap. */
#include "orbit/error.h"
#include "orbit/starmap.h"
#include "starmap_internal.h"
#include "starmap_test_util.h"

#include <criterion/criterion.h>

static char root[64], index_dir[128];

static void
setup(void)
{
    tu_tmpdir(root, sizeof root);
    snprintf(index_dir, sizeof index_dir, "%s/starmap", root);
}

static void
teardown(void)
{
    tu_rmrf(root);
}

TestSuite(starmap_files, .init = setup, .fini = teardown);

static struct starmap *
open_sm(void)
{
    struct starmap *sm = NULL;
    cr_assert_eq(starmap_open(index_dir, NULL, &sm), 0, "%s",
                 starmap_errmsg(sm));
    return sm;
}

static void
make_rec(struct starmap_file_rec *r, uint64_t seed)
{
    uint8_t *d = tu_random_bytes(seed, sizeof r->digest);
    memcpy(r->digest, d, sizeof r->digest);
    free(d);
    r->size = seed * 1000 + 7;
    r->mtime_sec = -(int64_t)seed; /* before 1970 too */
    r->mtime_nsec = 999999999u;
    r->ctime_sec = 1700000000 + (int64_t)seed;
    r->ctime_nsec = (uint32_t)seed;
    r->ino = UINT64_MAX - seed;
    r->dev = 0x10000 + seed;
}

static void
assert_rec_eq(const struct starmap_file_rec *a,
              const struct starmap_file_rec *b)
{
    cr_assert_arr_eq(a->digest, b->digest, sizeof a->digest);
    cr_assert_eq(a->size, b->size);
    cr_assert_eq(a->mtime_sec, b->mtime_sec);
    cr_assert_eq(a->mtime_nsec, b->mtime_nsec);
    cr_assert_eq(a->ctime_sec, b->ctime_sec);
    cr_assert_eq(a->ctime_nsec, b->ctime_nsec);
    cr_assert_eq(a->ino, b->ino);
    cr_assert_eq(a->dev, b->dev);
}

static void
put_one(struct starmap *sm, const char *path, const struct starmap_file_rec *r)
{
    struct starmap_batch *b = NULL;
    cr_assert_eq(starmap_batch_new(&b), 0);
    cr_assert_eq(starmap_batch_file_put(b, path, r), 0);
    cr_assert_eq(starmap_batch_commit(sm, b, NULL), 0, "%s",
                 starmap_errmsg(sm));
    starmap_batch_free(b);
}

static void
drop_one(struct starmap *sm, const char *path)
{
    struct starmap_batch *b = NULL;
    cr_assert_eq(starmap_batch_new(&b), 0);
    cr_assert_eq(starmap_batch_file_drop(b, path), 0);
    cr_assert_eq(starmap_batch_commit(sm, b, NULL), 0, "%s",
                 starmap_errmsg(sm));
    starmap_batch_free(b);
}

Test(starmap_files, put_get_drop)
{
    struct starmap *sm = open_sm();
    struct starmap_file_rec r, got;
    make_rec(&r, 1);
    cr_assert_eq(starmap_file_get(sm, "a/b.txt", &got), ORBIT_ENOENT);
    put_one(sm, "a/b.txt", &r);
    cr_assert_eq(starmap_file_get(sm, "a/b.txt", &got), 0);
    assert_rec_eq(&got, &r);
    cr_assert_eq(starmap_file_get(sm, "a/b.tx", &got), ORBIT_ENOENT);
    cr_assert_eq(starmap_file_get(sm, "a/b.txt2", &got), ORBIT_ENOENT);
    uint64_t n = 0;
    cr_assert_eq(starmap_file_count(sm, &n), 0);
    cr_assert_eq(n, 1);
    cr_assert_eq(starmap_check(sm, NULL), 0, "%s", starmap_errmsg(sm));
    drop_one(sm, "a/b.txt");
    cr_assert_eq(starmap_file_get(sm, "a/b.txt", &got), ORBIT_ENOENT);
    drop_one(sm, "a/b.txt"); /* a missing record is ignored */
    cr_assert_eq(starmap_file_count(sm, &n), 0);
    cr_assert_eq(n, 0);
    starmap_close(sm);
}

Test(starmap_files, overwrite_and_order_in_one_batch)
{
    struct starmap *sm = open_sm();
    struct starmap_file_rec r1, r2, got;
    make_rec(&r1, 2);
    make_rec(&r2, 3);
    put_one(sm, "f", &r1);
    put_one(sm, "f", &r2);
    cr_assert_eq(starmap_file_get(sm, "f", &got), 0);
    assert_rec_eq(&got, &r2);
    /* Ops apply in order: drop then put keeps the put, put then drop not. */
    struct starmap_batch *b = NULL;
    cr_assert_eq(starmap_batch_new(&b), 0);
    cr_assert_eq(starmap_batch_file_drop(b, "f"), 0);
    cr_assert_eq(starmap_batch_file_put(b, "f", &r1), 0);
    cr_assert_eq(starmap_batch_file_put(b, "g", &r1), 0);
    cr_assert_eq(starmap_batch_file_drop(b, "g"), 0);
    cr_assert_eq(starmap_batch_len(b), 4);
    cr_assert_eq(starmap_batch_commit(sm, b, NULL), 0);
    starmap_batch_free(b);
    cr_assert_eq(starmap_file_get(sm, "f", &got), 0);
    assert_rec_eq(&got, &r1);
    cr_assert_eq(starmap_file_get(sm, "g", &got), ORBIT_ENOENT);
    starmap_close(sm);
}

Test(starmap_files, survives_close_and_reopen)
{
    struct starmap *sm = open_sm();
    struct starmap_file_rec r, got;
    make_rec(&r, 4);
    put_one(sm, "dir/file", &r);
    starmap_close(sm);
    sm = open_sm();
    cr_assert_eq(starmap_file_get(sm, "dir/file", &got), 0);
    assert_rec_eq(&got, &r);
    cr_assert_eq(starmap_check(sm, NULL), 0, "%s", starmap_errmsg(sm));
    starmap_close(sm);
}

/* Store a raw value under path's key, behind the API's back. */
static void
put_raw(struct starmap *sm, const char *path, const void *val, size_t len)
{
    uint8_t key[STARMAP_FILE_KEY_MAX];
    size_t klen = 0;
    cr_assert_eq(starmap_file_key(path, key, &klen), 0);
    MDB_txn *txn = NULL;
    cr_assert_eq(mdb_txn_begin(sm->env, NULL, 0, &txn), 0);
    MDB_val k = {klen, key}, v = {len, (void *)val};
    cr_assert_eq(mdb_put(txn, sm->files, &k, &v, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
}

Test(starmap_files, malformed_value_rejected)
{
    struct starmap *sm = open_sm();
    struct starmap_file_rec r, got;
    make_rec(&r, 5);
    uint8_t good[STARMAP_FILE_REC_LEN];
    starmap_file_rec_encode(&r, good);
    /* Short: a strict prefix of a good value, in its own allocation so a
     * read past it would show under the sanitizer. */
    uint8_t *shortv = malloc(10);
    memcpy(shortv, good, 10);
    put_raw(sm, "short", shortv, 10);
    free(shortv);
    cr_assert_eq(starmap_file_get(sm, "short", &got), ORBIT_ECORRUPT);
    cr_assert(strstr(starmap_errmsg(sm), "short") != NULL, "%s",
              starmap_errmsg(sm));
    cr_assert_eq(starmap_check(sm, NULL), ORBIT_ECORRUPT);
    cr_assert_eq(starmap_file_rec_decode(good, sizeof good - 1, &got),
                 ORBIT_ECORRUPT);
    cr_assert_eq(starmap_file_rec_decode(good, 0, &got), ORBIT_ECORRUPT);
    /* Long, an unknown version, a bad nanosecond field. */
    uint8_t longer[STARMAP_FILE_REC_LEN + 1] = {0};
    memcpy(longer, good, sizeof good);
    cr_assert_eq(starmap_file_rec_decode(longer, sizeof longer, &got),
                 ORBIT_ECORRUPT);
    uint8_t bad[STARMAP_FILE_REC_LEN];
    memcpy(bad, good, sizeof bad);
    bad[0] = 2;
    cr_assert_eq(starmap_file_rec_decode(bad, sizeof bad, &got),
                 ORBIT_ECORRUPT);
    memcpy(bad, good, sizeof bad);
    memset(bad + 56, 0xff, 4);
    cr_assert_eq(starmap_file_rec_decode(bad, sizeof bad, &got),
                 ORBIT_ECORRUPT);
    cr_assert_eq(starmap_file_rec_decode(good, sizeof good, &got), 0);
    assert_rec_eq(&got, &r);
    /* Overwritten by a good record, the index checks clean again. */
    put_one(sm, "short", &r);
    cr_assert_eq(starmap_file_get(sm, "short", &got), 0);
    cr_assert_eq(starmap_check(sm, NULL), 0, "%s", starmap_errmsg(sm));
    starmap_close(sm);
}

static char *
long_path(size_t len, char last)
{
    cr_assert_gt(len, 0);
    char *p = malloc(len + 1);
    cr_assert_not_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = i % 16 == 15 ? '/' : (char)('a' + i % 26);
    p[len - 1] = last;
    p[len] = '\0';
    return p;
}

Test(starmap_files, long_paths_are_hashed)
{
    struct starmap *sm = open_sm();
    static const size_t lens[] = {1,   479, 480, 481,  510,
                                  511, 512, 600, 4095, 4096};
    size_t n = sizeof lens / sizeof lens[0];
    for (size_t i = 0; i < n; i++) {
        char *p = long_path(lens[i], 'x');
        struct starmap_file_rec r;
        make_rec(&r, 10 + i);
        put_one(sm, p, &r);
        free(p);
    }
    starmap_close(sm);
    sm = open_sm();
    for (size_t i = 0; i < n; i++) {
        char *p = long_path(lens[i], 'x');
        char *q = long_path(lens[i], 'y'); /* same length, last byte differs */
        struct starmap_file_rec r, got;
        make_rec(&r, 10 + i);
        cr_assert_eq(starmap_file_get(sm, p, &got), 0, "len %zu", lens[i]);
        assert_rec_eq(&got, &r);
        cr_assert_eq(starmap_file_get(sm, q, &got), ORBIT_ENOENT, "len %zu",
                     lens[i]);
        free(p);
        free(q);
    }
    uint64_t count = 0;
    cr_assert_eq(starmap_file_count(sm, &count), 0);
    cr_assert_eq(count, n);
    cr_assert_eq(starmap_check(sm, NULL), 0, "%s", starmap_errmsg(sm));
    char *p = long_path(4096, 'x');
    drop_one(sm, p);
    struct starmap_file_rec got;
    cr_assert_eq(starmap_file_get(sm, p, &got), ORBIT_ENOENT);
    free(p);
    starmap_close(sm);
}

Test(starmap_files, bad_arguments)
{
    struct starmap *sm = open_sm();
    struct starmap_batch *b = NULL;
    struct starmap_file_rec r, got;
    make_rec(&r, 6);
    cr_assert_eq(starmap_batch_new(&b), 0);
    char *p = long_path(4097, 'x');
    cr_assert_eq(starmap_batch_file_put(b, p, &r), ORBIT_ETOOBIG);
    cr_assert_eq(starmap_batch_file_drop(b, p), ORBIT_ETOOBIG);
    cr_assert_eq(starmap_file_get(sm, p, &got), ORBIT_ETOOBIG);
    free(p);
    cr_assert_eq(starmap_batch_file_put(b, "", &r), ORBIT_EINVAL);
    cr_assert_eq(starmap_batch_file_put(b, NULL, &r), ORBIT_EINVAL);
    cr_assert_eq(starmap_batch_file_put(b, "x", NULL), ORBIT_EINVAL);
    cr_assert_eq(starmap_batch_file_put(NULL, "x", &r), ORBIT_EINVAL);
    cr_assert_eq(starmap_file_get(sm, "", &got), ORBIT_EINVAL);
    cr_assert_eq(starmap_file_get(sm, "x", NULL), ORBIT_EINVAL);
    cr_assert_eq(starmap_batch_len(b), 0);
    starmap_batch_free(b);
    starmap_close(sm);
}

/* A file record shares its batch's transaction: all or nothing. */
Test(starmap_files, atomic_with_chunk_ops)
{
    struct starmap *sm = open_sm();
    struct starmap_batch *b = NULL;
    struct starmap_file_rec r, got;
    struct chunk_id unknown;
    memset(unknown.b, 0x5a, sizeof unknown.b);
    make_rec(&r, 7);
    cr_assert_eq(starmap_batch_new(&b), 0);
    cr_assert_eq(starmap_batch_file_put(b, "atomic", &r), 0);
    cr_assert_eq(starmap_batch_ref(b, &unknown, 1), 0);
    size_t failed = 99;
    cr_assert_eq(starmap_batch_commit(sm, b, &failed), ORBIT_ENOENT);
    cr_assert_eq(failed, 1);
    cr_assert_eq(starmap_file_get(sm, "atomic", &got), ORBIT_ENOENT);
    starmap_batch_clear(b);
    struct starmap_loc loc;
    cr_assert_eq(starmap_loc_file(&loc, "atomic", 0, 10), 0);
    cr_assert_eq(starmap_batch_add_loc(b, &unknown, &loc), 0);
    cr_assert_eq(starmap_batch_file_put(b, "atomic", &r), 0);
    cr_assert_eq(starmap_batch_commit(sm, b, NULL), 0);
    cr_assert_eq(starmap_file_get(sm, "atomic", &got), 0);
    struct starmap_entry *e = malloc(sizeof *e);
    cr_assert_eq(starmap_lookup(sm, &unknown, e), 0);
    cr_assert_eq(e->nlocs, 1);
    free(e);
    cr_assert_eq(starmap_check(sm, NULL), 0, "%s", starmap_errmsg(sm));
    starmap_batch_free(b);
    starmap_close(sm);
}

/* KiB of RSS in this process's mappings of the index file (smaps). */
static size_t
index_rss_kib(void)
{
    char data[256], line[512];
    snprintf(data, sizeof data, "%s/data.mdb", index_dir);
    FILE *f = fopen("/proc/self/smaps", "r");
    cr_assert_not_null(f);
    size_t kib = 0;
    bool in = false;
    while (fgets(line, sizeof line, f)) {
        size_t v = 0;
        if (strchr(line, '-') && strchr(line, ':') && line[0] != ' ' &&
            !strstr(line, "kB"))
            in = strstr(line, data) != NULL; /* a mapping's header line */
        else if (in && sscanf(line, "Rss: %zu kB", &v) == 1)
            kib += v;
    }
    fclose(f);
    return kib;
}

Test(starmap_files, trim_drops_mapped_pages_and_keeps_every_record)
{
    struct starmap *sm = open_sm();
    enum { N = 20000 };
    struct starmap_batch *b = NULL;
    cr_assert_eq(starmap_batch_new(&b), 0);
    char path[64];
    struct starmap_file_rec r, got;
    for (unsigned i = 0; i < N; i++) {
        snprintf(path, sizeof path, "dir/%u/file-%u.c", i % 97, i);
        make_rec(&r, i);
        cr_assert_eq(starmap_batch_file_put(b, path, &r), 0);
    }
    cr_assert_eq(starmap_batch_commit(sm, b, NULL), 0, "%s",
                 starmap_errmsg(sm));
    starmap_batch_free(b);
    for (unsigned i = 0; i < N; i++) { /* touch every page */
        snprintf(path, sizeof path, "dir/%u/file-%u.c", i % 97, i);
        cr_assert_eq(starmap_file_get(sm, path, &got), 0);
    }
    size_t before = index_rss_kib();
    cr_assert_gt(before, 1024, "index mapped: %zu KiB", before);
    size_t trimmed = 0;
    cr_assert_eq(starmap_trim(sm, &trimmed), 0);
    cr_assert_geq(trimmed, before * 1024);
    size_t after = index_rss_kib();
    cr_assert_lt(after, before / 4, "%zu KiB -> %zu KiB", before, after);
    for (unsigned i = 0; i < N; i += 7) { /* the same bytes, mapped again */
        snprintf(path, sizeof path, "dir/%u/file-%u.c", i % 97, i);
        make_rec(&r, i);
        cr_assert_eq(starmap_file_get(sm, path, &got), 0);
        assert_rec_eq(&got, &r);
    }
    cr_assert_eq(starmap_trim(NULL, NULL), ORBIT_EINVAL);
    starmap_close(sm);
}
