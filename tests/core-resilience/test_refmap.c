#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "orbit/error.h"
#include "orbit/refmap.h"

#define RM_OK(rm) cr_assert_eq(refmap_check(rm), 0, "invariant broken")

static void
mkid(uint8_t id[REFMAP_ID_LEN], unsigned n)
{
    memset(id, 0, REFMAP_ID_LEN);
    memcpy(id, &n, sizeof n);
    id[31] = 0x5A;
}

static struct refmap *
rm_make(size_t max)
{
    struct refmap *rm = NULL;
    cr_assert_eq(refmap_new(max, &rm), 0);
    RM_OK(rm);
    return rm;
}

static uint64_t
inc(struct refmap *rm, unsigned n)
{
    uint8_t id[REFMAP_ID_LEN];
    uint64_t c = 0;
    mkid(id, n);
    cr_assert_eq(refmap_incref(rm, id, &c), 0);
    RM_OK(rm);
    return c;
}

static uint64_t
dec(struct refmap *rm, unsigned n)
{
    uint8_t id[REFMAP_ID_LEN];
    uint64_t c = 99;
    mkid(id, n);
    cr_assert_eq(refmap_decref(rm, id, &c), 0);
    RM_OK(rm);
    return c;
}

static size_t
collect(struct refmap *rm, uint8_t (*out)[REFMAP_ID_LEN], size_t max)
{
    size_t n = 99;
    cr_assert_eq(refmap_collect(rm, out, max, &n), 0);
    RM_OK(rm);
    return n;
}

static void
sync_now(struct refmap *rm)
{
    cr_assert_eq(refmap_confirm_wal_synced(rm, refmap_seq(rm)), 0);
    RM_OK(rm);
}

Test(refmap, bad_arguments)
{
    struct refmap *rm = (void *)1;
    cr_assert_eq(refmap_new(0, &rm), ORBIT_EINVAL);
    cr_assert_null(rm);
    cr_assert_eq(refmap_new(1, NULL), ORBIT_EINVAL);
    rm = rm_make(4);
    uint8_t id[REFMAP_ID_LEN] = {0};
    uint64_t c;
    size_t n;
    cr_assert_eq(refmap_incref(rm, NULL, &c), ORBIT_EINVAL);
    cr_assert_eq(refmap_decref(NULL, id, &c), ORBIT_EINVAL);
    cr_assert_eq(refmap_get(rm, id, NULL), ORBIT_EINVAL);
    cr_assert_eq(refmap_collect(rm, NULL, 1, &n), ORBIT_EINVAL);
    cr_assert_eq(refmap_collect(rm, NULL, 0, &n), 0);
    cr_assert_eq(n, 0);
    refmap_free(rm);
    refmap_free(NULL);
}

Test(refmap, counts_up_and_down)
{
    struct refmap *rm = rm_make(16);
    cr_assert_eq(inc(rm, 1), 1);
    cr_assert_eq(inc(rm, 1), 2);
    cr_assert_eq(inc(rm, 1), 3);
    cr_assert_eq(dec(rm, 1), 2);
    uint8_t id[REFMAP_ID_LEN];
    uint64_t c;
    mkid(id, 1);
    cr_assert_eq(refmap_get(rm, id, &c), 0);
    cr_assert_eq(c, 2);
    cr_assert_eq(refmap_count(rm), 1);
    cr_assert_eq(refmap_pending(rm), 0);
    cr_assert_eq(refmap_incref(rm, id, NULL), 0, "out_count optional");
    refmap_free(rm);
}

Test(refmap, ids_differing_in_one_byte_are_distinct)
{
    struct refmap *rm = rm_make(16);
    uint8_t a[REFMAP_ID_LEN] = {0}, b[REFMAP_ID_LEN] = {0};
    b[31] = 1;
    uint64_t c;
    cr_assert_eq(refmap_incref(rm, a, &c), 0);
    cr_assert_eq(refmap_incref(rm, b, &c), 0);
    cr_assert_eq(refmap_incref(rm, b, &c), 0);
    cr_assert_eq(c, 2);
    cr_assert_eq(refmap_get(rm, a, &c), 0);
    cr_assert_eq(c, 1);
    cr_assert_eq(refmap_count(rm), 2);
    RM_OK(rm);
    refmap_free(rm);
}

Test(refmap, decrement_below_zero_and_unknown_are_errors)
{
    struct refmap *rm = rm_make(16);
    uint8_t id[REFMAP_ID_LEN];
    uint64_t c = 7;
    mkid(id, 9);
    cr_assert_eq(refmap_decref(rm, id, &c), ORBIT_ENOENT);
    cr_assert_eq(c, 7);
    cr_assert_eq(refmap_get(rm, id, &c), ORBIT_ENOENT);
    inc(rm, 9);
    cr_assert_eq(dec(rm, 9), 0);
    uint64_t seq = refmap_seq(rm);
    cr_assert_eq(refmap_decref(rm, id, &c), ORBIT_EINVAL);
    cr_assert_eq(refmap_seq(rm), seq, "failed ops take no sequence number");
    RM_OK(rm);
    cr_assert_eq(refmap_pending(rm), 1);
    refmap_free(rm);
}

Test(refmap, zero_is_not_collected_before_sync)
{
    struct refmap *rm = rm_make(16);
    uint8_t out[4][REFMAP_ID_LEN];
    inc(rm, 1);
    dec(rm, 1);
    cr_assert_eq(refmap_pending(rm), 1);
    cr_assert_eq(collect(rm, out, 4), 0);
    uint64_t c;
    uint8_t id[REFMAP_ID_LEN];
    mkid(id, 1);
    cr_assert_eq(refmap_get(rm, id, &c), 0);
    cr_assert_eq(c, 0);
    refmap_free(rm);
}

Test(refmap, sync_boundary_is_the_zero_sequence_number)
{
    struct refmap *rm = rm_make(16);
    uint8_t out[4][REFMAP_ID_LEN], id[REFMAP_ID_LEN];
    inc(rm, 1);
    inc(rm, 2);
    dec(rm, 1);
    uint64_t zero_seq = refmap_seq(rm);
    cr_assert_eq(zero_seq, 3);
    cr_assert_eq(refmap_confirm_wal_synced(rm, zero_seq - 1), 0);
    cr_assert_eq(collect(rm, out, 4), 0, "one short of the zero");
    cr_assert_eq(refmap_confirm_wal_synced(rm, zero_seq), 0);
    cr_assert_eq(collect(rm, out, 4), 1);
    mkid(id, 1);
    cr_assert_eq(memcmp(out[0], id, REFMAP_ID_LEN), 0);
    uint64_t c;
    cr_assert_eq(refmap_get(rm, id, &c), ORBIT_ENOENT, "collected: forgotten");
    cr_assert_eq(refmap_count(rm), 1);
    cr_assert_eq(refmap_pending(rm), 0);
    cr_assert_eq(collect(rm, out, 4), 0, "collected only once");
    refmap_free(rm);
}

Test(refmap, rereferenced_chunk_is_not_collected)
{
    struct refmap *rm = rm_make(16);
    uint8_t out[4][REFMAP_ID_LEN];
    inc(rm, 1);
    dec(rm, 1);
    cr_assert_eq(inc(rm, 1), 1);
    cr_assert_eq(refmap_pending(rm), 0);
    sync_now(rm);
    cr_assert_eq(collect(rm, out, 4), 0);
    cr_assert_eq(refmap_count(rm), 1);
    refmap_free(rm);
}

Test(refmap, second_zero_needs_its_own_sync)
{
    struct refmap *rm = rm_make(16);
    uint8_t out[4][REFMAP_ID_LEN];
    inc(rm, 1);
    dec(rm, 1); /* zero at seq 2 */
    cr_assert_eq(refmap_confirm_wal_synced(rm, 2), 0);
    inc(rm, 1);
    dec(rm, 1); /* zero again at seq 4 */
    cr_assert_eq(collect(rm, out, 4), 0, "sync 2 predates the new zero");
    cr_assert_eq(refmap_confirm_wal_synced(rm, 4), 0);
    cr_assert_eq(collect(rm, out, 4), 1);
    refmap_free(rm);
}

Test(refmap, collects_oldest_first_up_to_max)
{
    struct refmap *rm = rm_make(16);
    uint8_t out[2][REFMAP_ID_LEN], id[REFMAP_ID_LEN];
    for (unsigned i = 0; i < 5; i++)
        inc(rm, i);
    for (unsigned i = 5; i-- > 0;)
        dec(rm, i); /* zero order: 4 3 2 1 0 */
    sync_now(rm);
    unsigned want = 4;
    for (size_t batch = 0; batch < 3; batch++) {
        size_t n = collect(rm, out, 2);
        cr_assert_eq(n, batch < 2 ? 2 : 1);
        for (size_t k = 0; k < n; k++) {
            mkid(id, want--);
            cr_assert_eq(memcmp(out[k], id, REFMAP_ID_LEN), 0);
        }
    }
    cr_assert_eq(refmap_count(rm), 0);
    refmap_free(rm);
}

Test(refmap, partial_sync_collects_only_the_durable_prefix)
{
    struct refmap *rm = rm_make(16);
    uint8_t out[4][REFMAP_ID_LEN], id[REFMAP_ID_LEN];
    inc(rm, 1);
    inc(rm, 2);
    dec(rm, 1); /* seq 3 */
    dec(rm, 2); /* seq 4 */
    cr_assert_eq(refmap_confirm_wal_synced(rm, 3), 0);
    cr_assert_eq(collect(rm, out, 4), 1);
    mkid(id, 1);
    cr_assert_eq(memcmp(out[0], id, REFMAP_ID_LEN), 0);
    cr_assert_eq(refmap_pending(rm), 1);
    refmap_free(rm);
}

Test(refmap, sync_cannot_run_ahead_or_back)
{
    struct refmap *rm = rm_make(16);
    cr_assert_eq(refmap_seq(rm), 0);
    cr_assert_eq(refmap_confirm_wal_synced(rm, 0), 0);
    cr_assert_eq(refmap_confirm_wal_synced(rm, 1), ORBIT_EINVAL);
    inc(rm, 1);
    inc(rm, 1);
    cr_assert_eq(refmap_confirm_wal_synced(rm, 2), 0);
    cr_assert_eq(refmap_confirm_wal_synced(rm, 1), 0, "backwards: no-op");
    cr_assert_eq(refmap_synced_seq(rm), 2);
    cr_assert_eq(refmap_confirm_wal_synced(rm, UINT64_MAX), ORBIT_EINVAL);
    cr_assert_eq(refmap_synced_seq(rm), 2);
    cr_assert_eq(refmap_confirm_wal_synced(NULL, 0), ORBIT_EINVAL);
    RM_OK(rm);
    refmap_free(rm);
}

Test(refmap, bound_counts_pending_and_collect_frees_room)
{
    struct refmap *rm = rm_make(2);
    uint8_t out[2][REFMAP_ID_LEN], id[REFMAP_ID_LEN];
    uint64_t c;
    inc(rm, 1);
    inc(rm, 2);
    mkid(id, 3);
    cr_assert_eq(refmap_incref(rm, id, &c), ORBIT_EFULL);
    dec(rm, 1);
    cr_assert_eq(refmap_incref(rm, id, &c), ORBIT_EFULL, "pending still held");
    sync_now(rm);
    cr_assert_eq(collect(rm, out, 2), 1);
    cr_assert_eq(inc(rm, 3), 1);
    cr_assert_eq(inc(rm, 2), 2, "known ids still count");
    refmap_free(rm);
}

Test(refmap, collected_id_starts_fresh)
{
    struct refmap *rm = rm_make(4);
    uint8_t out[1][REFMAP_ID_LEN];
    inc(rm, 1);
    dec(rm, 1);
    sync_now(rm);
    cr_assert_eq(collect(rm, out, 1), 1);
    cr_assert_eq(inc(rm, 1), 1);
    cr_assert_eq(dec(rm, 1), 0);
    cr_assert_eq(collect(rm, out, 1), 0, "new zero not yet durable");
    refmap_free(rm);
}

Test(refmap, matches_a_model_under_random_operations)
{
    enum { IDS = 64, OPS = 4000 };
    struct refmap *rm = rm_make(IDS);
    uint64_t model[IDS] = {0};
    int known[IDS] = {0};
    uint8_t out[IDS][REFMAP_ID_LEN], id[REFMAP_ID_LEN];
    unsigned seed = 12345;
    for (unsigned op = 0; op < OPS; op++) {
        seed = seed * 1103515245u + 12345u;
        unsigned k = (seed >> 16) % IDS, what = (seed >> 8) % 10;
        uint64_t c;
        mkid(id, k);
        if (what < 5) {
            cr_assert_eq(refmap_incref(rm, id, &c), 0);
            model[k]++;
            known[k] = 1;
            cr_assert_eq(c, model[k]);
        } else if (what < 9) {
            int rc = refmap_decref(rm, id, &c);
            if (!known[k])
                cr_assert_eq(rc, ORBIT_ENOENT);
            else if (model[k] == 0)
                cr_assert_eq(rc, ORBIT_EINVAL);
            else
                cr_assert_eq(c, --model[k]);
        } else {
            sync_now(rm);
            size_t n = collect(rm, out, IDS);
            for (size_t i = 0; i < n; i++) {
                unsigned got;
                memcpy(&got, out[i], sizeof got);
                cr_assert(known[got] && model[got] == 0);
                known[got] = 0;
            }
            for (unsigned i = 0; i < IDS; i++)
                cr_assert(!(known[i] && model[i] == 0), "zero left behind");
        }
        RM_OK(rm);
    }
    refmap_free(rm);
}

struct rm_worker {
    struct refmap *rm;
    unsigned base;
};

static void *
rm_worker_run(void *arg)
{
    struct rm_worker *w = arg;
    uint8_t id[REFMAP_ID_LEN];
    for (unsigned round = 0; round < 200; round++) {
        for (unsigned i = 0; i < 16; i++) {
            mkid(id, w->base + i);
            if (refmap_incref(w->rm, id, NULL) != 0 ||
                refmap_incref(w->rm, id, NULL) != 0)
                return (void *)1;
        }
        for (unsigned i = 0; i < 16; i++) {
            mkid(id, w->base + i);
            if (refmap_decref(w->rm, id, NULL) != 0 ||
                refmap_decref(w->rm, id, NULL) != 0)
                return (void *)1;
        }
    }
    return NULL;
}

static void *
rm_collector_run(void *arg)
{
    struct refmap *rm = arg;
    uint8_t out[8][REFMAP_ID_LEN];
    size_t total = 0, n;
    for (int i = 0; i < 2000; i++) {
        if (refmap_confirm_wal_synced(rm, refmap_seq(rm)) != 0 ||
            refmap_collect(rm, out, 8, &n) != 0 || refmap_check(rm) != 0)
            return (void *)-1;
        total += n;
    }
    return (void *)total;
}

Test(refmap, concurrent_references_and_collection)
{
    struct refmap *rm = rm_make(1024);
    pthread_t t[3], col;
    struct rm_worker w[3];
    cr_assert_eq(pthread_create(&col, NULL, rm_collector_run, rm), 0);
    for (unsigned i = 0; i < 3; i++) {
        w[i] = (struct rm_worker){rm, 100 * i};
        cr_assert_eq(pthread_create(&t[i], NULL, rm_worker_run, &w[i]), 0);
    }
    for (unsigned i = 0; i < 3; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        cr_assert_null(rv);
    }
    void *crv;
    pthread_join(col, &crv);
    cr_assert_neq(crv, (void *)-1);
    RM_OK(rm);
    /* every id ended at zero: once synced, all of them are collectable */
    sync_now(rm);
    uint8_t out[64][REFMAP_ID_LEN];
    collect(rm, out, 64);
    cr_assert_eq(refmap_count(rm), 0);
    cr_assert_eq(refmap_pending(rm), 0);
    refmap_free(rm);
}

Test(refmap, rezeroed_chunk_moves_behind_later_zeros)
{
    struct refmap *rm = rm_make(16);
    uint8_t out[4][REFMAP_ID_LEN], id[REFMAP_ID_LEN];
    inc(rm, 1); /* seq 1 */
    inc(rm, 2); /* seq 2 */
    dec(rm, 1); /* seq 3: 1 at zero */
    dec(rm, 2); /* seq 4: 2 at zero */
    inc(rm, 1); /* seq 5: 1 referenced again */
    dec(rm, 1); /* seq 6: 1 at zero again, now the newest */
    cr_assert_eq(refmap_confirm_wal_synced(rm, 5), 0);
    cr_assert_eq(collect(rm, out, 4), 1);
    mkid(id, 2);
    cr_assert_eq(memcmp(out[0], id, REFMAP_ID_LEN), 0, "only 2 is durable");
    cr_assert_eq(refmap_confirm_wal_synced(rm, 6), 0);
    cr_assert_eq(collect(rm, out, 4), 1);
    mkid(id, 1);
    cr_assert_eq(memcmp(out[0], id, REFMAP_ID_LEN), 0);
    refmap_free(rm);
}

Test(refmap, sync_without_pending_collects_nothing)
{
    struct refmap *rm = rm_make(16);
    uint8_t out[4][REFMAP_ID_LEN];
    inc(rm, 1);
    inc(rm, 2);
    sync_now(rm);
    cr_assert_eq(collect(rm, out, 4), 0);
    cr_assert_eq(refmap_count(rm), 2);
    refmap_free(rm);
}
