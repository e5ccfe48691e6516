#include "orbit/chunk_codec.h"
#include "orbit/error.h"
#include "orbit/starmap.h"
#include "starmap_internal.h"
#include "starmap_test_util.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define NCH 60

static char root[64], packs[128], index_dir[128];
static uint8_t *data[NCH];
static size_t lens[NCH];
static struct chunk_id ids[NCH];

static void
setup(void)
{
    tu_tmpdir(root, sizeof root);
    snprintf(packs, sizeof packs, "%s/.orbit/packs", root);
    snprintf(index_dir, sizeof index_dir, "%s/.orbit/starmap", root);
    for (int i = 0; i < NCH; i++) {
        lens[i] = 3000 + (size_t)i * 37;
        data[i] = i % 3 ? tu_text_bytes((uint64_t)i + 100, lens[i])
                        : tu_random_bytes((uint64_t)i + 100, lens[i]);
        chunk_id_compute(data[i], lens[i], &ids[i]);
    }
}

static void
teardown(void)
{
    for (int i = 0; i < NCH; i++)
        free(data[i]);
    tu_rmrf(root);
}

TestSuite(starmap, .init = setup, .fini = teardown);

static void
open_both(struct starmap **sm, struct pak_pool **pool, uint64_t rotate)
{
    struct pak_pool_opts o;
    pak_pool_opts_default(&o);
    o.rotate_size = rotate;
    cr_assert_eq(pak_pool_open(packs, &o, pool), 0);
    cr_assert_eq(starmap_open(index_dir, NULL, sm), 0, "%s",
                 starmap_errmsg(*sm));
}

/* Encode chunks [from, to) into the pool and index them in one batch. */
static void
put_chunks(struct starmap *sm, struct pak_pool *pool, int from, int to,
           struct pak_loc *locs)
{
    struct chunk_codec *c = NULL;
    struct starmap_batch *b = NULL;
    static struct starmap_loc l;
    uint8_t *buf = malloc(chunk_codec_bound(8000));
    cr_assert_eq(chunk_codec_new(0, &c), 0);
    cr_assert_eq(starmap_batch_new(&b), 0);
    for (int i = from; i < to; i++) {
        size_t n;
        uint8_t codec;
        cr_assert_eq(chunk_codec_encode(c, data[i], lens[i], buf,
                                        chunk_codec_bound(8000), &n, &codec),
                     0);
        cr_assert_eq(
            pak_pool_append(pool, &ids[i], codec, lens[i], buf, n, &locs[i]),
            0);
        starmap_loc_pack(&l, &locs[i], (uint32_t)n);
        cr_assert_eq(starmap_batch_add_loc(b, &ids[i], &l), 0);
    }
    cr_assert_eq(pak_pool_sync(pool), 0);
    cr_assert_eq(starmap_batch_commit(sm, b, NULL), 0, "%s",
                 starmap_errmsg(sm));
    cr_assert_eq(starmap_check(sm, pool), 0, "%s", starmap_errmsg(sm));
    starmap_batch_free(b);
    chunk_codec_free(c);
    free(buf);
}

/* Drop the pack location of chunks [from, to). */
static void
drop_chunks(struct starmap *sm, int from, int to, const struct pak_loc *locs)
{
    struct starmap_batch *b = NULL;
    static struct starmap_entry e;
    cr_assert_eq(starmap_batch_new(&b), 0);
    for (int i = from; i < to; i++) {
        cr_assert_eq(starmap_lookup(sm, &ids[i], &e), 0);
        for (size_t j = 0; j < e.nlocs; j++)
            if (e.locs[j].kind == STARMAP_LOC_PACK &&
                e.locs[j].container == locs[i].container)
                cr_assert_eq(starmap_batch_drop_loc(b, &ids[i], &e.locs[j]), 0);
    }
    cr_assert_eq(starmap_batch_commit(sm, b, NULL), 0, "%s",
                 starmap_errmsg(sm));
    starmap_batch_free(b);
}

Test(starmap, index_have_lookup_refs)
{
    struct starmap *sm = NULL;
    struct pak_pool *pool = NULL;
    struct pak_loc locs[NCH];
    open_both(&sm, &pool, PAK_POOL_DEFAULT_ROTATE);
    put_chunks(sm, pool, 0, NCH / 2, locs);
    bool have[NCH];
    cr_assert_eq(starmap_have(sm, ids, NCH, have), 0);
    for (int i = 0; i < NCH; i++)
        cr_assert_eq(have[i], i < NCH / 2, "%d", i);
    uint64_t n = 0, rec, bytes;
    cr_assert_eq(starmap_count(sm, &n), 0);
    cr_assert_eq(n, NCH / 2);
    cr_assert_eq(starmap_container_live(sm, 1, &rec, &bytes), 0);
    cr_assert_eq(rec, NCH / 2);
    static struct starmap_entry e;
    static struct starmap_loc fl;
    struct starmap_batch *b = NULL;
    cr_assert_eq(starmap_batch_new(&b), 0);
    cr_assert_eq(starmap_batch_ref(b, &ids[0], 2), 0);
    cr_assert_eq(starmap_loc_file(&fl, "dir/file.bin", 4096, 3000), 0);
    cr_assert_eq(starmap_batch_add_loc(b, &ids[0], &fl), 0);
    cr_assert_eq(starmap_batch_add_loc(b, &ids[0], &fl), 0); /* once */
    cr_assert_eq(starmap_batch_commit(sm, b, NULL), 0);
    cr_assert_eq(starmap_lookup(sm, &ids[0], &e), 0);
    cr_assert_eq(e.refs, 2);
    cr_assert_eq(e.nlocs, 2);
    cr_assert_eq(e.locs[0].kind, STARMAP_LOC_PACK);
    cr_assert_eq(e.locs[1].kind, STARMAP_LOC_FILE);
    cr_assert_str_eq(e.locs[1].path, "dir/file.bin");
    cr_assert_eq(e.locs[1].offset, 4096);
    /* a failing operation rolls the whole batch back */
    starmap_batch_clear(b);
    cr_assert_eq(starmap_batch_ref(b, &ids[1], 1), 0);
    cr_assert_eq(starmap_batch_ref(b, &ids[0], -3), 0);
    size_t failed = 99;
    cr_assert_eq(starmap_batch_commit(sm, b, &failed), ORBIT_EINVAL);
    cr_assert_eq(failed, 1);
    cr_assert(strstr(starmap_errmsg(sm), "batch operation 1"));
    starmap_batch_clear(b);
    cr_assert_eq(starmap_batch_ref(b, &ids[NCH - 1], 1), 0);
    cr_assert_eq(starmap_batch_commit(sm, b, &failed), ORBIT_ENOENT);
    cr_assert_eq(starmap_lookup(sm, &ids[1], &e), 0);
    cr_assert_eq(e.refs, 0);
    cr_assert_eq(starmap_lookup(sm, &ids[NCH - 1], &e), ORBIT_ENOENT);
    /* forget drops the entry and its container reference */
    starmap_batch_clear(b);
    cr_assert_eq(starmap_batch_forget(b, &ids[2]), 0);
    cr_assert_eq(starmap_batch_commit(sm, b, NULL), 0);
    cr_assert_eq(starmap_container_live(sm, 1, &rec, &bytes), 0);
    cr_assert_eq(rec, NCH / 2 - 1);
    cr_assert_eq(starmap_check(sm, pool), 0, "%s", starmap_errmsg(sm));
    starmap_batch_free(b);
    starmap_close(sm);
    /* reopen: all of it durable */
    cr_assert_eq(starmap_open(index_dir, NULL, &sm), 0);
    cr_assert_eq(starmap_lookup(sm, &ids[0], &e), 0);
    cr_assert_eq(e.refs, 2);
    cr_assert_eq(starmap_check(sm, pool), 0, "%s", starmap_errmsg(sm));
    starmap_close(sm);
    pak_pool_free(pool);
}

Test(starmap, entry_decoder_rejects_garbage)
{
    static struct starmap_entry e;
    uint8_t buf[64] = {1, 1};
    cr_assert_eq(starmap_entry_decode(buf, 10, &e), ORBIT_ECORRUPT);
    cr_assert_eq(starmap_entry_decode(buf, 16, &e), ORBIT_ECORRUPT);
    buf[16] = STARMAP_LOC_FILE;
    cr_assert_eq(starmap_entry_decode(buf, 31, &e), ORBIT_ECORRUPT);
    buf[1] = STARMAP_MAX_LOCS + 1;
    cr_assert_eq(starmap_entry_decode(buf, 64, &e), ORBIT_ECORRUPT);
    buf[1] = 0;
    buf[0] = 2;
    cr_assert_eq(starmap_entry_decode(buf, 16, &e), ORBIT_ECORRUPT);
}

Test(starmap, map_grows_on_demand)
{
    struct starmap_opts o;
    struct starmap *sm = NULL;
    starmap_opts_default(&o);
    o.initial_map_size = 64 * 1024;
    int rc = starmap_open(index_dir, &o, &sm);
    cr_assert_eq(rc, 0, "%d", rc);
    struct starmap_batch *b = NULL;
    static struct starmap_loc l;
    cr_assert_eq(starmap_batch_new(&b), 0);
    const int n = 20000;
    for (int i = 0; i < n; i++) {
        struct chunk_id id;
        struct pak_loc pl = {7, 16 + (uint64_t)i * 100};
        chunk_id_compute(&i, sizeof i, &id);
        starmap_loc_pack(&l, &pl, 48);
        cr_assert_eq(starmap_batch_add_loc(b, &id, &l), 0);
    }
    cr_assert_eq(starmap_batch_commit(sm, b, NULL), 0, "%s",
                 starmap_errmsg(sm));
    uint64_t count, rec, bytes;
    cr_assert_eq(starmap_count(sm, &count), 0);
    cr_assert_eq(count, (uint64_t)n);
    cr_assert_eq(starmap_container_live(sm, 7, &rec, &bytes), 0);
    cr_assert_eq(rec, (uint64_t)n);
    cr_assert_eq(bytes, (uint64_t)n * 48);
    cr_assert_eq(starmap_check(sm, NULL), 0, "%s", starmap_errmsg(sm));
    starmap_batch_free(b);
    starmap_close(sm);
}

struct reader_arg {
    struct starmap *sm;
    volatile int stop;
    int errors;
};

static void *
have_loop(void *p)
{
    struct reader_arg *a = p;
    bool have[NCH];
    while (!a->stop)
        if (starmap_have(a->sm, ids, NCH, have) != 0)
            a->errors++;
    return NULL;
}

Test(starmap, lookups_run_while_the_map_grows)
{
    struct starmap_opts o;
    struct starmap *sm = NULL;
    starmap_opts_default(&o);
    o.initial_map_size = 64 * 1024;
    cr_assert_eq(starmap_open(index_dir, &o, &sm), 0);
    struct reader_arg a = {sm, 0, 0};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, have_loop, &a);
    struct starmap_batch *b = NULL;
    static struct starmap_loc l;
    cr_assert_eq(starmap_batch_new(&b), 0);
    for (int round = 0; round < 10; round++) {
        starmap_batch_clear(b);
        for (int i = 0; i < 2000; i++) {
            struct chunk_id id;
            int v = round * 2000 + i;
            struct pak_loc pl = {3, 16 + (uint64_t)v};
            chunk_id_compute(&v, sizeof v, &id);
            starmap_loc_pack(&l, &pl, 1);
            cr_assert_eq(starmap_batch_add_loc(b, &id, &l), 0);
        }
        cr_assert_eq(starmap_batch_commit(sm, b, NULL), 0);
    }
    a.stop = 1;
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    cr_assert_eq(a.errors, 0);
    starmap_batch_free(b);
    starmap_close(sm);
}

static bool
exists(const struct pak_pool *pool, uint32_t c)
{
    char path[256];
    struct stat st;
    pak_pool_path(pool, c, path, sizeof path);
    return stat(path, &st) == 0;
}

Test(starmap, gc_deletes_emptied_containers_after_commit)
{
    struct starmap *sm = NULL;
    struct pak_pool *pool = NULL;
    struct pak_loc locs[NCH];
    open_both(&sm, &pool, 40000);
    put_chunks(sm, pool, 0, NCH, locs);
    uint32_t first = locs[0].container;
    cr_assert_neq(first, pak_pool_active(pool));
    int end = 0;
    while (locs[end].container == first)
        end++;
    drop_chunks(sm, 0, end - 1, locs);
    cr_assert_eq(starmap_gc_pending(sm), 0);
    drop_chunks(sm, end - 1, end, locs);
    cr_assert_eq(starmap_gc_pending(sm), 1);
    cr_assert_eq(starmap_check(sm, pool), 0, "%s", starmap_errmsg(sm));
    size_t removed = 0;
    cr_assert(exists(pool, first));
    cr_assert_eq(starmap_gc(sm, pool, &removed), 0, "%s", starmap_errmsg(sm));
    cr_assert_eq(removed, 1);
    cr_assert(!exists(pool, first));
    cr_assert_eq(starmap_gc_pending(sm), 0);
    cr_assert_eq(starmap_check(sm, pool), 0, "%s", starmap_errmsg(sm));
    /* the active container is kept while active */
    uint32_t active = pak_pool_active(pool);
    int a0 = NCH - 1;
    while (a0 > 0 && locs[a0 - 1].container == active)
        a0--;
    drop_chunks(sm, a0, NCH, locs);
    cr_assert_eq(starmap_gc(sm, pool, &removed), 0);
    cr_assert_eq(removed, 0);
    cr_assert(exists(pool, active));
    cr_assert_eq(pak_pool_rotate(pool), 0);
    cr_assert_eq(starmap_gc(sm, pool, &removed), 0);
    cr_assert_eq(removed, 1);
    cr_assert(!exists(pool, active));
    cr_assert_eq(starmap_check(sm, pool), 0, "%s", starmap_errmsg(sm));
    starmap_close(sm);
    pak_pool_free(pool);
}

Test(starmap, compaction_moves_live_records)
{
    struct starmap *sm = NULL;
    struct pak_pool *pool = NULL;
    struct pak_loc locs[NCH];
    open_both(&sm, &pool, 80000);
    put_chunks(sm, pool, 0, NCH, locs);
    uint32_t first = locs[0].container;
    int end = 0;
    while (locs[end].container == first)
        end++;
    drop_chunks(sm, 0, end / 2, locs); /* half of it dead */
    cr_assert_eq(starmap_compact(sm, pool, pak_pool_active(pool), NULL),
                 ORBIT_ESTATE);
    uint64_t moved = 0;
    int rc = starmap_compact(sm, pool, first, &moved);
    cr_assert_eq(rc, 0, "%d %s", rc, starmap_errmsg(sm));
    cr_assert_eq(moved, (uint64_t)(end - end / 2));
    size_t removed = 0;
    cr_assert_eq(starmap_gc(sm, pool, &removed), 0);
    cr_assert_eq(removed, 1);
    cr_assert(!exists(pool, first));
    cr_assert_eq(starmap_check(sm, pool), 0, "%s", starmap_errmsg(sm));
    bool have[NCH];
    cr_assert_eq(starmap_have(sm, ids, NCH, have), 0);
    for (int i = 0; i < NCH; i++)
        cr_assert(have[i]);
    starmap_close(sm);
    pak_pool_free(pool);
}

Test(starmap, index_container_recovers_unindexed_records)
{
    struct starmap *sm = NULL;
    struct pak_pool *pool = NULL;
    struct pak_loc locs[NCH];
    open_both(&sm, &pool, PAK_POOL_DEFAULT_ROTATE);
    put_chunks(sm, pool, 0, 10, locs);
    for (int i = 10; i < 20; i++) /* appended, never indexed */
        cr_assert_eq(pak_pool_append(pool, &ids[i], CHUNK_CODEC_RAW, lens[i],
                                     data[i], lens[i], &locs[i]),
                     0);
    uint64_t added = 0;
    int rc = starmap_index_container(sm, pool, 1, &added);
    cr_assert_eq(rc, 0, "%d %s", rc, starmap_errmsg(sm));
    cr_assert_eq(added, 10);
    cr_assert_eq(starmap_index_container(sm, pool, 1, &added), 0);
    cr_assert_eq(added, 0);
    bool have[NCH];
    cr_assert_eq(starmap_have(sm, ids, NCH, have), 0);
    for (int i = 0; i < NCH; i++)
        cr_assert_eq(have[i], i < 20);
    cr_assert_eq(starmap_check(sm, pool), 0, "%s", starmap_errmsg(sm));
    starmap_close(sm);
    pak_pool_free(pool);
}

/* ---- crash tests: a child is SIGKILLed at a named point ----------------- */

static const char *kill_point;

static void
kill_at(const char *point, void *arg)
{
    (void)arg;
    if (kill_point && strcmp(point, kill_point) == 0)
        raise(SIGKILL);
}

/* The child: index everything, then drop container `first` and GC it. */
static void
child_run(const char *point)
{
    struct starmap *sm = NULL;
    struct pak_pool *pool = NULL;
    struct pak_loc locs[NCH];
    open_both(&sm, &pool, 40000);
    put_chunks(sm, pool, 0, NCH, locs);
    int end = 0;
    while (locs[end].container == locs[0].container)
        end++;
    kill_point = point;
    starmap_set_hook(sm, kill_at, NULL);
    drop_chunks(sm, 0, end, locs);
    starmap_gc(sm, pool, NULL);
    _exit(0);
}

static void
crash_at(const char *point, bool committed)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0)
        child_run(point);
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "child was not killed at %s (status %d)", point, status);
    struct starmap *sm = NULL;
    struct pak_pool *pool = NULL;
    open_both(&sm, &pool, 40000);
    /* The index never names missing bytes: every location reads back. */
    cr_assert_eq(starmap_check(sm, pool), 0, "%s: %s", point,
                 starmap_errmsg(sm));
    uint64_t rec, bytes;
    cr_assert_eq(starmap_container_live(sm, 1, &rec, &bytes), 0);
    cr_assert_eq(rec == 0, committed, "%s: %llu live", point,
                 (unsigned long long)rec);
    cr_assert_eq(starmap_gc_pending(sm), committed ? 1 : 0, "%s", point);
    size_t removed = 0;
    cr_assert_eq(starmap_gc(sm, pool, &removed), 0);
    cr_assert_eq(exists(pool, 1), !committed, "%s", point);
    cr_assert_eq(starmap_gc_pending(sm), 0);
    cr_assert_eq(starmap_check(sm, pool), 0, "%s: %s", point,
                 starmap_errmsg(sm));
    starmap_close(sm);
    pak_pool_free(pool);
}

Test(starmap, crash_before_commit_keeps_everything)
{
    crash_at("batch-applied", false);
}

Test(starmap, crash_after_commit_before_gc)
{
    crash_at("batch-committed", true);
}

Test(starmap, crash_before_delete)
{
    crash_at("gc-before-remove", true);
}

Test(starmap, crash_after_delete_before_list_cleared)
{
    crash_at("gc-after-remove", true);
}
