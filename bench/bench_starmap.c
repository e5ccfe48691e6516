/*
 * bench_starmap - core-starmap throughput and dedup figures.
 *
 *   bench_starmap [--runs N] [--min B --avg B --max B] [--level L]
 *                 [--dedup-only] FILE [FILE2]
 *
 * On FILE (loaded in memory): chunker MB/s, SHA-256 MB/s over the chunks,
 * the chunk+hash path over the in-memory file and as a source worker runs
 * it (4 MiB read() calls into a reused buffer, chunk, hash), and zstd
 * encode/decode MB/s with the share of bytes saved; each the median of N
 * runs on one core. With FILE2: the fraction of FILE2's bytes whose chunks
 * also occur in FILE, both files streamed through the chunker in 4 MiB
 * reads (the streaming API, as the scheduler uses it).
 */
#include "orbit/chunk_codec.h"
#include "orbit/chunk_id.h"
#include "orbit/chunker.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_RUNS  31
#define READ_SIZE ((size_t)4 << 20)

struct opts {
    struct chunker_params p;
    int runs;
    int level;
    int dedup_only;
    const char *a, *b;
};

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
die(const char *what)
{
    fprintf(stderr, "bench_starmap: %s\n", what);
    exit(1);
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double
median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static uint8_t *
load(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        die("cannot open input");
    *len = (size_t)st.st_size;
    uint8_t *buf = malloc(*len ? *len : 1);
    if (!buf)
        die("out of memory");
    size_t off = 0;
    while (off < *len) {
        ssize_t n = read(fd, buf + off, *len - off);
        if (n <= 0)
            die("read failed");
        off += (size_t)n;
    }
    close(fd);
    return buf;
}

/* Cut the whole buffer; chunk lengths into cuts (may be NULL). */
static size_t
cut_all(struct chunker *ch, const uint8_t *d, size_t len, uint32_t *cuts)
{
    size_t off = 0, n = 0, cut = 0;
    chunker_reset(ch);
    while (off < len) {
        chunker_next(ch, d + off, len - off, &cut);
        if (cut == 0)
            break;
        if (cuts)
            cuts[n] = (uint32_t)cut;
        n++;
        off += cut;
    }
    chunker_finish(ch, &cut);
    if (cut && cuts)
        cuts[n] = (uint32_t)cut;
    return n + (cut ? 1 : 0);
}

static void stream_chunks(const struct chunker_params *p, const char *path,
                          void (*fn)(const uint8_t *, size_t, void *),
                          void *arg);

static void
hash_chunk(const uint8_t *d, size_t n, void *arg)
{
    struct chunk_id id;
    chunk_id_ctx_compute(arg, d, n, &id);
}

static double
run_hash(struct chunk_id_ctx *h, const uint8_t *d, const uint32_t *cuts,
         size_t n)
{
    struct chunk_id id;
    size_t off = 0;
    double t = now();
    for (size_t i = 0; i < n; i++) {
        chunk_id_ctx_compute(h, d + off, cuts[i], &id);
        off += cuts[i];
    }
    return now() - t;
}

static double
run_chunk_hash(struct chunker *ch, struct chunk_id_ctx *h, const uint8_t *d,
               size_t len)
{
    struct chunk_id id;
    size_t off = 0, cut = 0;
    double t = now();
    chunker_reset(ch);
    while (off < len) {
        chunker_next(ch, d + off, len - off, &cut);
        if (cut == 0)
            cut = len - off;
        chunk_id_ctx_compute(h, d + off, cut, &id);
        off += cut;
    }
    chunker_reset(ch);
    return now() - t;
}

static void
run_codec(struct chunk_codec *c, const uint8_t *d, const uint32_t *cuts,
          size_t n, uint8_t *st, size_t cap, uint8_t *out, double *enc,
          double *dec, double *saved)
{
    size_t off = 0, stored = 0, total = 0;
    double te = 0, td = 0;
    for (size_t i = 0; i < n; i++) {
        size_t sl;
        uint8_t codec;
        double t0 = now();
        if (chunk_codec_encode(c, d + off, cuts[i], st, cap, &sl, &codec))
            die("encode failed");
        double t1 = now();
        if (chunk_codec_decode(c, codec, st, sl, out, cuts[i]))
            die("decode failed");
        td += now() - t1;
        te += t1 - t0;
        stored += sl;
        total += cuts[i];
        off += cuts[i];
    }
    *enc = te;
    *dec = td;
    *saved = total ? 1.0 - (double)stored / (double)total : 0;
}

/*
 * The same two loops on a 4 MiB window that stays in the cache, repeated:
 * the CPU cost alone, without the memory bandwidth a 1 GB scan pays.
 */
static void
hot(const struct opts *o, struct chunker *ch, struct chunk_id_ctx *h,
    const uint8_t *d, size_t len, uint32_t *cuts)
{
    double tc[MAX_RUNS], th[MAX_RUNS];
    size_t w = len < READ_SIZE ? len : READ_SIZE, reps = ((size_t)1 << 30) / w;
    for (int r = 0; r < o->runs; r++) {
        size_t n = 0;
        double t = now();
        for (size_t k = 0; k < reps; k++)
            n = cut_all(ch, d, w, cuts);
        tc[r] = (double)(w * reps) / 1e6 / (now() - t);
        t = now();
        for (size_t k = 0; k < reps; k++)
            run_hash(h, d, cuts, n);
        th[r] = (double)(w * reps) / 1e6 / (now() - t);
    }
    printf("chunker, hot   %8.0f MB/s  (4 MiB window in cache)\n",
           median(tc, o->runs));
    printf("sha256, hot    %8.0f MB/s  (4 MiB window in cache)\n",
           median(th, o->runs));
}

static void
throughput(const struct opts *o, const uint8_t *d, size_t len)
{
    struct chunker *ch = NULL;
    struct chunk_id_ctx *h = NULL;
    struct chunk_codec *c = NULL;
    if (chunker_new(&o->p, &ch) || chunk_id_ctx_new(&h) ||
        chunk_codec_new(o->level, &c))
        die("cannot create contexts");
    uint32_t *cuts = malloc((len / o->p.min_size + 2) * sizeof *cuts);
    size_t cap = chunk_codec_bound(o->p.max_size);
    uint8_t *st = malloc(cap), *out = malloc(o->p.max_size);
    double tc[MAX_RUNS], th[MAX_RUNS], tch[MAX_RUNS], ts[MAX_RUNS],
        te[MAX_RUNS], td[MAX_RUNS], saved = 0;
    size_t n = 0;
    const double mb = (double)len / 1e6;
    for (int r = 0; r < o->runs; r++) {
        double t = now();
        n = cut_all(ch, d, len, cuts);
        tc[r] = mb / (now() - t);
        th[r] = mb / run_hash(h, d, cuts, n);
        tch[r] = mb / run_chunk_hash(ch, h, d, len);
        t = now();
        stream_chunks(&o->p, o->a, hash_chunk, h);
        ts[r] = mb / (now() - t);
    }
    int crun = o->runs < 3 ? o->runs : 3; /* the codec is slow: 3 runs */
    for (int r = 0; r < crun; r++) {
        double e, dd;
        run_codec(c, d, cuts, n, st, cap, out, &e, &dd, &saved);
        te[r] = mb / e;
        td[r] = mb / dd;
    }
    printf("input          %.1f MB, %zu chunks, average %.1f KiB\n", mb, n,
           (double)len / (double)n / 1024);
    printf("chunker        %8.0f MB/s\n", median(tc, o->runs));
    printf("sha256         %8.0f MB/s\n", median(th, o->runs));
    printf("chunk+sha256   %8.0f MB/s\n", median(tch, o->runs));
    printf("read+chunk+sha %8.0f MB/s  (4 MiB reads from the page cache)\n",
           median(ts, o->runs));
    hot(o, ch, h, d, len, cuts);
    printf("zstd-%d encode  %8.0f MB/s  (%.1f%% of bytes saved)\n", o->level,
           median(te, crun), saved * 100);
    printf("zstd-%d decode  %8.0f MB/s\n", o->level, median(td, crun));
    free(cuts);
    free(st);
    free(out);
    chunker_free(ch);
    chunk_id_ctx_free(h);
    chunk_codec_free(c);
}

/* ---- dedup: a set of chunk ids (open addressing) ---------------------- */

struct idset {
    struct chunk_id *slot;
    uint8_t *used;
    size_t cap, n;
};

static uint64_t
id_hash(const struct chunk_id *id)
{
    uint64_t h;
    memcpy(&h, id->b, sizeof h);
    return h;
}

static int idset_add(struct idset *s, const struct chunk_id *id);

static void
idset_grow(struct idset *s)
{
    struct idset old = *s;
    s->cap = old.cap ? old.cap * 2 : 1u << 16;
    s->n = 0;
    s->slot = malloc(s->cap * sizeof *s->slot);
    s->used = calloc(s->cap, 1);
    if (!s->slot || !s->used)
        die("out of memory");
    for (size_t i = 0; i < old.cap; i++)
        if (old.used[i])
            idset_add(s, &old.slot[i]);
    free(old.slot);
    free(old.used);
}

/* 1 if id was already in the set. */
static int
idset_add(struct idset *s, const struct chunk_id *id)
{
    if (2 * (s->n + 1) > s->cap)
        idset_grow(s);
    size_t i = id_hash(id) & (s->cap - 1);
    while (s->used[i]) {
        if (chunk_id_equal(&s->slot[i], id))
            return 1;
        i = (i + 1) & (s->cap - 1);
    }
    s->used[i] = 1;
    s->slot[i] = *id;
    s->n++;
    return 0;
}

static int
idset_has(const struct idset *s, const struct chunk_id *id)
{
    size_t i = id_hash(id) & (s->cap - 1);
    while (s->used[i]) {
        if (chunk_id_equal(&s->slot[i], id))
            return 1;
        i = (i + 1) & (s->cap - 1);
    }
    return 0;
}

/* Stream path through the chunker; call fn on every chunk. */
static void
stream_chunks(const struct chunker_params *p, const char *path,
              void (*fn)(const uint8_t *, size_t, void *), void *arg)
{
    struct chunker *ch = NULL;
    if (chunker_new(p, &ch))
        die("chunker");
    size_t cap = p->max_size + READ_SIZE, have = 0, cut;
    uint8_t *buf = malloc(cap);
    int fd = open(path, O_RDONLY);
    if (fd < 0 || !buf)
        die("cannot open input");
    for (;;) {
        ssize_t r = read(fd, buf + have, cap - have);
        if (r < 0)
            die("read failed");
        /* bytes [scanned, have) are new to the chunker */
        size_t start = 0, scanned = have;
        have += (size_t)r;
        while (scanned < have) {
            chunker_next(ch, buf + scanned, have - scanned, &cut);
            if (cut == 0)
                break;
            scanned += cut;
            fn(buf + start, scanned - start, arg);
            start = scanned;
        }
        memmove(buf, buf + start, have - start);
        have -= start;
        if (r == 0)
            break;
    }
    chunker_finish(ch, &cut);
    if (cut)
        fn(buf, cut, arg);
    close(fd);
    free(buf);
    chunker_free(ch);
}

struct dedup {
    struct idset set;
    struct chunk_id_ctx *h;
    uint64_t bytes, dup_bytes, chunks, dup_chunks;
};

static void
add_chunk(const uint8_t *d, size_t n, void *arg)
{
    struct dedup *dd = arg;
    struct chunk_id id;
    chunk_id_ctx_compute(dd->h, d, n, &id);
    idset_add(&dd->set, &id);
}

static void
probe_chunk(const uint8_t *d, size_t n, void *arg)
{
    struct dedup *dd = arg;
    struct chunk_id id;
    chunk_id_ctx_compute(dd->h, d, n, &id);
    dd->bytes += n;
    dd->chunks++;
    if (idset_has(&dd->set, &id)) {
        dd->dup_bytes += n;
        dd->dup_chunks++;
    }
}

static void
dedup(const struct opts *o)
{
    struct dedup dd = {0};
    if (chunk_id_ctx_new(&dd.h))
        die("hash context");
    double t = now();
    stream_chunks(&o->p, o->a, add_chunk, &dd);
    stream_chunks(&o->p, o->b, probe_chunk, &dd);
    printf("dedup          chunks %zu/%zu/%zu KiB: %.2f%% of the second "
           "file's bytes (%llu of %llu chunks) already in the first "
           "[%.1f s]\n",
           o->p.min_size / 1024, o->p.avg_size / 1024, o->p.max_size / 1024,
           dd.bytes ? 100.0 * (double)dd.dup_bytes / (double)dd.bytes : 0,
           (unsigned long long)dd.dup_chunks, (unsigned long long)dd.chunks,
           now() - t);
    free(dd.set.slot);
    free(dd.set.used);
    chunk_id_ctx_free(dd.h);
}

static void
parse(int argc, char **argv, struct opts *o)
{
    chunker_params_default(&o->p);
    o->runs = 5;
    o->level = CHUNK_CODEC_DEFAULT_LEVEL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--runs") && more)
            o->runs = atoi(argv[++i]);
        else if (!strcmp(a, "--min") && more)
            o->p.min_size = (size_t)atol(argv[++i]);
        else if (!strcmp(a, "--avg") && more)
            o->p.avg_size = (size_t)atol(argv[++i]);
        else if (!strcmp(a, "--max") && more)
            o->p.max_size = (size_t)atol(argv[++i]);
        else if (!strcmp(a, "--level") && more)
            o->level = atoi(argv[++i]);
        else if (!strcmp(a, "--dedup-only"))
            o->dedup_only = 1;
        else if (!o->a)
            o->a = a;
        else if (!o->b)
            o->b = a;
        else
            die("usage: bench_starmap [--runs N] [--min B --avg B --max B] "
                "[--level L] [--dedup-only] FILE [FILE2]");
    }
    if (!o->a || o->runs < 1 || o->runs > MAX_RUNS ||
        chunker_params_validate(&o->p) != 0)
        die("bad arguments (see the header of bench_starmap.c)");
}

int
main(int argc, char **argv)
{
    struct opts o = {0};
    parse(argc, argv, &o);
    if (!o.dedup_only) {
        size_t len;
        uint8_t *d = load(o.a, &len);
        throughput(&o, d, len);
        free(d);
    }
    if (o.b)
        dedup(&o);
    return 0;
}
