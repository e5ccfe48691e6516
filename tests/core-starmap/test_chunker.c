#include "orbit/chunk_id.h"
#include "orbit/chunker.h"
#include "orbit/error.h"
#include "starmap_test_util.h"

#include <criterion/criterion.h>

#define MAX_CUTS 4096

struct cuts {
    size_t n;
    size_t len[MAX_CUTS];
};

/* Invariant checker: lengths within bounds, summing to the input. */
static void
check_cuts(const struct cuts *c, const struct chunker_params *p, size_t total)
{
    size_t sum = 0;
    for (size_t i = 0; i < c->n; i++) {
        cr_assert(c->len[i] > 0);
        cr_assert(c->len[i] <= p->max_size, "chunk %zu is %zu", i, c->len[i]);
        if (i + 1 < c->n)
            cr_assert(c->len[i] > p->min_size, "chunk %zu is %zu", i,
                      c->len[i]);
        sum += c->len[i];
    }
    cr_assert_eq(sum, total);
}

/* Chunk data fed in slices whose sizes come from slice_seed (0: whole). */
static void
chunk_sliced(const struct chunker_params *p, const uint8_t *data, size_t len,
             uint64_t slice_seed, size_t max_slice, struct cuts *out)
{
    struct chunker *ch = NULL;
    struct chunker_params def;
    chunker_params_default(&def);
    if (!p)
        p = &def;
    cr_assert_eq(chunker_new(p, &ch), 0);
    out->n = 0;
    size_t off = 0, start = 0;
    while (off < len) {
        size_t n = len - off;
        if (slice_seed) {
            size_t s = (size_t)(tu_rand(&slice_seed) % max_slice) + 1;
            n = s < n ? s : n;
        }
        size_t used = 0;
        while (used < n) {
            size_t cut = 0;
            cr_assert_eq(chunker_next(ch, data + off + used, n - used, &cut),
                         0);
            if (cut == 0)
                break;
            used += cut;
            cr_assert(out->n < MAX_CUTS);
            out->len[out->n++] = off + used - start;
            start = off + used;
        }
        off += n;
    }
    size_t tail = 0;
    cr_assert_eq(chunker_finish(ch, &tail), 0);
    cr_assert_eq(tail, len - start);
    if (tail)
        out->len[out->n++] = tail;
    chunker_free(ch);
    check_cuts(out, p, len);
}

Test(chunker, params_validation)
{
    struct chunker_params p;
    struct chunker *ch = NULL;
    chunker_params_default(&p);
    cr_assert_eq(chunker_params_validate(&p), 0);
    cr_assert_eq(p.avg_size, 64 * 1024);
    struct chunker_params bad[] = {
        {16384, 60000, 262144},          /* avg not a power of two */
        {65536, 65536, 262144},          /* min == avg */
        {16384, 65536, 65536},           /* max == avg */
        {32, 1024, 4096},                /* min below the limit */
        {16384, 65536, (size_t)1 << 30}, /* max above the limit */
        {100, 128, 4096},                /* avg below the limit */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_assert_eq(chunker_params_validate(&bad[i]), ORBIT_EINVAL, "%zu", i);
        cr_assert_eq(chunker_new(&bad[i], &ch), ORBIT_EINVAL);
        cr_assert_null(ch);
    }
    cr_assert_eq(chunker_params_validate(NULL), ORBIT_EINVAL);
    cr_assert_eq(chunker_new(NULL, &ch), 0);
    chunker_get_params(ch, &p);
    cr_assert_eq(p.min_size, CHUNKER_DEFAULT_MIN);
    size_t cut = 7;
    cr_assert_eq(chunker_next(ch, NULL, 0, &cut), 0);
    cr_assert_eq(cut, 0);
    cr_assert_eq(chunker_next(ch, NULL, 5, &cut), ORBIT_EINVAL);
    chunker_free(ch);
    chunker_free(NULL);
}

Test(chunker, slicing_does_not_move_cuts)
{
    const size_t len = 3u << 20;
    uint8_t *data = tu_random_bytes(1, len);
    struct chunker_params p = {2048, 8192, 65536};
    static struct cuts whole, sliced;
    chunk_sliced(&p, data, len, 0, 0, &whole);
    cr_assert_gt(whole.n, 100);
    size_t max_slices[] = {1, 3, 17, 4096, 100000};
    for (uint64_t seed = 1; seed <= 10; seed++) {
        size_t ms = max_slices[seed % 5];
        if (ms == 1 && seed > 5)
            continue;
        chunk_sliced(&p, data, ms == 1 ? len / 8 : len, seed, ms, &sliced);
        if (ms == 1) /* byte by byte on a prefix: compare the prefix */
            for (size_t i = 0; i + 1 < sliced.n; i++)
                cr_assert_eq(sliced.len[i], whole.len[i]);
        else
            cr_assert(sliced.n == whole.n &&
                          memcmp(sliced.len, whole.len,
                                 whole.n * sizeof whole.len[0]) == 0,
                      "seed %llu", (unsigned long long)seed);
    }
    free(data);
}

Test(chunker, sizes_are_near_the_average)
{
    const size_t len = 32u << 20;
    uint8_t *data = tu_random_bytes(2, len);
    static struct cuts c;
    chunk_sliced(NULL, data, len, 0, 0, &c);
    struct chunker_params p;
    chunker_params_default(&p);
    check_cuts(&c, &p, len);
    double avg = (double)len / (double)c.n;
    cr_assert(avg > 40000 && avg < 100000, "average chunk %.0f", avg);
    free(data);
}

static void
assert_cuts(const struct cuts *c, const size_t *want, size_t n)
{
    cr_assert_eq(c->n, n);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(c->len[i], want[i], "chunk %zu: %zu", i, c->len[i]);
}

/* Golden cut points: pinned so that a change of the algorithm, the gear
 * table or the masks (which would break dedup against stored chunks) shows. */
Test(chunker, golden_cut_points)
{
    const size_t len = 1u << 20;
    uint8_t *data = tu_random_bytes(42, len);
    static struct cuts c;
    chunk_sliced(NULL, data, len, 0, 0, &c);
    static const size_t golden_default[] = {78525, 81422, 74614, 85584, 67130,
                                            81946, 56278, 73957, 68614, 75514,
                                            68288, 72035, 70590, 94079};
    assert_cuts(&c, golden_default, sizeof golden_default / sizeof(size_t));
    struct chunker_params small = {2048, 8192, 65536};
    chunk_sliced(&small, data, 64 * 1024, 0, 0, &c);
    static const size_t golden_small[] = {9155, 9028,  8297, 7162,
                                          3596, 10650, 6857, 10791};
    assert_cuts(&c, golden_small, sizeof golden_small / sizeof(size_t));
    free(data);
}

Test(chunker, max_size_forces_a_cut)
{
    const size_t len = 1u << 20;
    uint8_t *zeros = calloc(1, len);
    static struct cuts c;
    chunk_sliced(NULL, zeros, len, 0, 0, &c);
    cr_assert_eq(c.n, 4);
    for (size_t i = 0; i < c.n; i++)
        cr_assert_eq(c.len[i], CHUNKER_DEFAULT_MAX);
    free(zeros);
}

static size_t
ids_of(const uint8_t *data, size_t len, struct chunk_id *ids, size_t max)
{
    static struct cuts c;
    chunk_sliced(NULL, data, len, 0, 0, &c);
    cr_assert(c.n <= max);
    size_t off = 0;
    for (size_t i = 0; i < c.n; i++) {
        cr_assert_eq(chunk_id_compute(data + off, c.len[i], &ids[i]), 0);
        off += c.len[i];
    }
    return c.n;
}

Test(chunker, insertion_changes_only_nearby_chunks)
{
    const size_t len = 8u << 20;
    uint8_t *a = tu_random_bytes(7, len);
    uint8_t *b = malloc(len + 100);
    memcpy(b, a, 5000);
    memset(b + 5000, 'x', 100); /* 100 bytes inserted near the start */
    memcpy(b + 5100, a + 5000, len - 5000);
    static struct chunk_id ia[MAX_CUTS], ib[MAX_CUTS];
    size_t na = ids_of(a, len, ia, MAX_CUTS);
    size_t nb = ids_of(b, len + 100, ib, MAX_CUTS);
    size_t shared = 0;
    for (size_t j = 0; j < nb; j++)
        for (size_t i = 0; i < na; i++)
            if (chunk_id_equal(&ib[j], &ia[i])) {
                shared++;
                break;
            }
    cr_assert(na > 50);
    /* Only the chunk holding the insertion (and at most one more) differ. */
    cr_assert_geq(shared + 2, nb, "%zu of %zu chunks shared", shared, nb);
    cr_assert(chunk_id_equal(&ia[na - 1], &ib[nb - 1]));
    free(a);
    free(b);
}

/* The two-lane scan against the byte-at-a-time rule, on random and on
 * repetitive data, with sizes that put cuts in either lane. */
Test(chunker, lanes_match_bytewise)
{
    const size_t len = 1u << 20;
    struct chunker_params ps[] = {
        {1024, 4096, 32768}, {2048, 8192, 65536}, {4096, 65536, 131072}};
    static struct cuts whole, bytewise;
    for (int kind = 0; kind < 2; kind++) {
        uint8_t *d = kind ? tu_text_bytes(11, len) : tu_random_bytes(11, len);
        for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
            chunk_sliced(&ps[k], d, len, 0, 0, &whole);
            chunk_sliced(&ps[k], d, len, 99, 1, &bytewise);
            cr_assert(whole.n == bytewise.n &&
                          memcmp(whole.len, bytewise.len,
                                 whole.n * sizeof whole.len[0]) == 0,
                      "kind %d params %zu", kind, k);
        }
        free(d);
    }
}
