/*
 * The scheduler's reader threads (sched_reader.c), driven directly: a file
 * of many chunks arrives in few batches, every chunk named by the SHA-256
 * of its bytes and the file by the SHA-256 of all of them; a file read
 * whole (sync's offer by digest) arrives uncut, and sched_batch_cut makes
 * exactly the chunks a reader makes.
 */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "connect_test.h"
#include "orbit/chunk_id.h"
#include "orbit/chunker.h"
#include "orbit/error.h"
#include "sched_internal.h"

#define MAX_BATCHES 256

struct rig {
    struct event_base *base;
    struct event *wake;
    struct sched_readers r;
    char *dir;
};

struct outcome {
    struct sched_batch *b[MAX_BATCHES];
    size_t nb;
    bool ended;
    int err;
    uint8_t digest[WIRE_DIGEST_LEN];
    uint64_t size;
};

static void
noop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

static void
rig_start(struct rig *g)
{
    memset(g, 0, sizeof *g);
    evthread_use_pthreads();
    g->base = event_base_new();
    cr_assert_not_null(g->base);
    g->wake = event_new(g->base, -1, 0, noop, NULL);
    cr_assert_not_null(g->wake);
    g->r.chunk_avg = CHUNKER_DEFAULT_AVG;
    g->r.chunk_min = CHUNKER_DEFAULT_AVG / 4;
    g->r.chunk_max = CHUNKER_DEFAULT_AVG * 4;
    g->r.held_limit = (size_t)16 << 20;
    cr_assert_eq(sched_readers_start(&g->r, 1, g->wake), 0);
    g->dir = connect_test_tmpdir("reader");
}

static void
rig_stop(struct rig *g)
{
    sched_readers_stop(&g->r);
    sched_readers_release(&g->r);
    event_free(g->wake);
    event_base_free(g->base);
    connect_test_rmtree(g->dir);
    free(g->dir);
}

/* size bytes that FastCDC finds cut points in (xorshift, seeded). */
static uint8_t *
noise(size_t size, uint64_t seed)
{
    uint8_t *p = malloc(size);
    cr_assert_not_null(p);
    uint64_t x = seed | 1;
    for (size_t i = 0; i < size; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)(x >> 32);
    }
    return p;
}

static char *
write_file(const struct rig *g, const char *name, const uint8_t *data,
           size_t size)
{
    char *path = NULL;
    cr_assert_gt(asprintf(&path, "%s/%s", g->dir, name), 0);
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, size, f), size);
    cr_assert_eq(fclose(f), 0);
    return path;
}

/* Submit f and collect its batches and end (10 s at most). */
static void
read_one(struct rig *g, struct sched_file *f, struct outcome *o)
{
    memset(o, 0, sizeof *o);
    sched_readers_submit(&g->r, f);
    for (int spins = 0; !o->ended && spins < 10000; spins++) {
        struct sched_rmsg *m = sched_readers_take(&g->r);
        if (!m) {
            nanosleep(&(struct timespec){0, 1000000}, NULL);
            continue;
        }
        while (m) {
            struct sched_rmsg *next = m->next;
            if (m->kind == SCHED_RMSG_BATCH) {
                cr_assert_lt(o->nb, MAX_BATCHES);
                o->b[o->nb++] = m->batch;
            } else {
                o->ended = true;
                o->err = m->err;
                o->size = m->size;
                memcpy(o->digest, m->digest, sizeof o->digest);
            }
            free(m);
            m = next;
        }
    }
    cr_assert(o->ended, "the reader never ended the file");
}

static void
outcome_free(struct rig *g, struct outcome *o)
{
    for (size_t i = 0; i < o->nb; i++)
        sched_batch_free(&g->r, o->b[i]);
    o->nb = 0;
}

/* Every chunk of o, in order, covers data exactly and is named by it;
 * returns the number of chunks. */
static size_t
expect_chunks(const struct outcome *o, const uint8_t *data, size_t size)
{
    uint64_t off = 0;
    size_t n = 0;
    for (size_t i = 0; i < o->nb; i++) {
        const struct sched_batch *b = o->b[i];
        cr_assert_not(b->uncut);
        for (uint32_t j = 0; j < b->n; j++, n++) {
            const struct sched_chunk *k = &b->chunks[j];
            cr_assert_eq(k->off, off, "chunk %zu at %llu", n,
                         (unsigned long long)k->off);
            cr_assert_leq(off + k->len, size);
            cr_assert_eq(memcmp(k->data, data + off, k->len), 0);
            struct chunk_id id;
            cr_assert_eq(chunk_id_compute(data + off, k->len, &id), 0);
            cr_assert_eq(memcmp(k->id, id.b, sizeof id.b), 0,
                         "chunk %zu is misnamed", n);
            off += k->len;
        }
    }
    cr_assert_eq(off, size, "the chunks cover %llu of %zu bytes",
                 (unsigned long long)off, size);
    return n;
}

static void
expect_digest(const struct outcome *o, const uint8_t *data, size_t size)
{
    struct chunk_id d;
    cr_assert_eq(chunk_id_compute(data, size, &d), 0);
    cr_assert_eq(o->err, 0);
    cr_assert_eq(o->size, size);
    cr_assert_eq(memcmp(o->digest, d.b, sizeof d.b), 0,
                 "the file's digest is not the SHA-256 of its bytes");
}

Test(sched_reader, a_file_of_many_chunks_arrives_in_few_batches)
{
    struct rig g;
    rig_start(&g);
    size_t size = 600 << 10; /* under SCHED_SMALL_FILE: ~8 KiB chunks */
    uint8_t *data = noise(size, 7);
    struct sched_file f = {.ftype = WIRE_FT_REGULAR};
    f.src_path = write_file(&g, "many", data, size);
    struct outcome o;
    read_one(&g, &f, &o);
    expect_digest(&o, data, size);
    size_t n = expect_chunks(&o, data, size);
    cr_assert_gt(n, SCHED_BATCH_CHUNKS, "only %zu chunks", n);
    size_t most = (n + SCHED_BATCH_CHUNKS - 1) / SCHED_BATCH_CHUNKS;
    cr_assert_leq(o.nb, most, "%zu chunks came in %zu batches (%zu at most)", n,
                  o.nb, most);
    outcome_free(&g, &o);
    free(f.src_path);
    free(data);
    rig_stop(&g);
}

Test(sched_reader, a_file_read_whole_is_cut_as_the_readers_cut_it)
{
    struct rig g;
    rig_start(&g);
    size_t size = 200 << 10; /* under SCHED_PROBE_MAX */
    uint8_t *data = noise(size, 11);
    struct sched_file f = {.ftype = WIRE_FT_REGULAR};
    f.src_path = write_file(&g, "whole", data, size);

    struct outcome cut;
    read_one(&g, &f, &cut);
    size_t n = expect_chunks(&cut, data, size);
    cr_assert_gt(n, 4, "only %zu chunks", n);

    f.read_whole = true;
    struct outcome whole;
    read_one(&g, &f, &whole);
    expect_digest(&whole, data, size);
    cr_assert_eq(whole.nb, 1);
    struct sched_batch *b = whole.b[0];
    cr_assert(b->uncut);
    cr_assert_eq(b->n, 0);
    cr_assert_eq(b->bytes, size);
    cr_assert_eq(memcmp(b->buf, data, size), 0);

    cr_assert_eq(sched_batch_cut(&g.r, b), 0);
    cr_assert_eq(expect_chunks(&whole, data, size), n);
    uint32_t j = 0;
    for (size_t i = 0; i < cut.nb; i++)
        for (uint32_t k = 0; k < cut.b[i]->n; k++, j++) {
            cr_assert_eq(b->chunks[j].len, cut.b[i]->chunks[k].len,
                         "chunk %u differs", j);
            cr_assert_eq(
                memcmp(b->chunks[j].id, cut.b[i]->chunks[k].id, WIRE_ID_LEN),
                0);
        }
    cr_assert_eq(sched_batch_cut(&g.r, b), 0, "cutting twice changes nothing");
    cr_assert_eq(b->n, n);

    outcome_free(&g, &cut);
    outcome_free(&g, &whole);
    free(f.src_path);
    free(data);
    rig_stop(&g);
}

Test(sched_reader, a_file_over_the_probe_bound_is_cut_even_when_asked_whole)
{
    struct rig g;
    rig_start(&g);
    size_t size = (size_t)SCHED_PROBE_MAX + 1;
    uint8_t *data = noise(size, 13);
    struct sched_file f = {.ftype = WIRE_FT_REGULAR, .read_whole = true};
    f.src_path = write_file(&g, "big", data, size);
    struct outcome o;
    read_one(&g, &f, &o);
    expect_digest(&o, data, size);
    cr_assert_gt(expect_chunks(&o, data, size), 1);
    outcome_free(&g, &o);
    free(f.src_path);
    free(data);
    rig_stop(&g);
}

Test(sched_reader, an_empty_file_ends_without_a_batch)
{
    struct rig g;
    rig_start(&g);
    struct sched_file f = {.ftype = WIRE_FT_REGULAR};
    f.src_path = write_file(&g, "empty", (const uint8_t *)"", 0);
    struct outcome o;
    read_one(&g, &f, &o);
    expect_digest(&o, (const uint8_t *)"", 0);
    cr_assert_eq(o.nb, 0);
    free(f.src_path);
    rig_stop(&g);
}

/* A file of one chunk is named by that chunk's id (the same SHA-256); a
 * file of several is digested over all of them, in order. */
Test(sched_reader, the_digest_of_one_chunk_or_many_is_the_files)
{
    struct rig g;
    rig_start(&g);
    const size_t sizes[] = {1, 1500, 40 << 10, 3 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        uint8_t *data = noise(sizes[i], 17 + i);
        char name[32];
        snprintf(name, sizeof name, "f%zu", i);
        struct sched_file f = {.ftype = WIRE_FT_REGULAR};
        f.src_path = write_file(&g, name, data, sizes[i]);
        struct outcome o;
        read_one(&g, &f, &o);
        expect_digest(&o, data, sizes[i]);
        size_t n = expect_chunks(&o, data, sizes[i]);
        if (i < 2)
            cr_assert_eq(n, 1, "%zu bytes: %zu chunks", sizes[i], n);
        else
            cr_assert_gt(n, 1, "%zu bytes: %zu chunks", sizes[i], n);
        outcome_free(&g, &o);
        free(f.src_path);
        free(data);
    }
    rig_stop(&g);
}

/* A "regular" file whose size says 0 but which has bytes (procfs) is not
 * taken for an empty file: its read is refused as a changing file. */
Test(sched_reader, a_file_of_size_zero_with_bytes_is_not_taken_for_empty)
{
    struct rig g;
    rig_start(&g);
    struct stat st;
    cr_assert_eq(stat("/proc/self/status", &st), 0);
    cr_assert(S_ISREG(st.st_mode) && st.st_size == 0);
    char proc[] = "/proc/self/status";
    struct sched_file f = {.ftype = WIRE_FT_REGULAR, .src_path = proc};
    struct outcome o;
    read_one(&g, &f, &o);
    cr_assert_eq(o.err, ORBIT_EAGAIN, "err %d, size %llu", o.err,
                 (unsigned long long)o.size);
    outcome_free(&g, &o);
    rig_stop(&g);
}
