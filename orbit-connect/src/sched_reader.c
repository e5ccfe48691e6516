/*
 * sched_reader.c - reader threads: open a source file, read it in large
 * blocks, cut it with FastCDC, name every chunk by SHA-256, digest the whole
 * file, and hand batches of chunks (with their bytes) to the main loop. A
 * file offered by digest alone is read whole and not cut: the main loop
 * cuts it (sched_batch_cut) only if a destination turns the offer down.
 *
 * Memory is bounded by held_limit: a reader waits before starting a batch
 * while the bytes of batches alive anywhere exceed it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/event.h>

#include "orbit/chunk_id.h"
#include "orbit/chunker.h"
#include "orbit/error.h"
#include "sched_internal.h"

#define READ_BLOCK ((size_t)1 << 20)

struct reader_ctx {
    struct sched_readers *r;
    struct chunker *ch;       /* chunks of the file being read */
    struct chunker *ch_large; /* files of SCHED_SMALL_FILE bytes or more */
    struct chunker *ch_small; /* smaller files: finer chunks */
    struct chunk_id_ctx *idc;
    struct chunk_id_stream *digest;
    uint8_t *buf;
    size_t cap;
    uint64_t file_size;   /* of the file being read, when opened */
    bool one_chunk;       /* its first chunk was the whole file: */
    struct chunk_id only; /* that chunk's id, the file's digest */
};

static void
post_msg(struct sched_readers *r, struct sched_rmsg *m)
{
    pthread_mutex_lock(&r->mu);
    m->next = NULL;
    if (r->out_tail)
        r->out_tail->next = m;
    else
        r->out_head = m;
    r->out_tail = m;
    pthread_mutex_unlock(&r->mu);
    event_active(r->wake, EV_READ, 0);
}

/*
 * The bytes of a batch of BATCH_MAP_MIN or more (a large file's) are mapped
 * and unmapped whole. From the heap, glibc would raise its mmap threshold
 * at the first free of one and then carve the next ones from an arena it
 * keeps: the source's peak RSS in a tree copy went from 49 to 57 MiB.
 */
#define BATCH_MAP_MIN ((size_t)256 << 10)

static uint8_t *
buf_alloc(size_t cap)
{
    if (cap < BATCH_MAP_MIN)
        return malloc(cap);
    void *p = mmap(NULL, cap, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void
buf_free(uint8_t *p, size_t cap)
{
    if (!p)
        return;
    if (cap < BATCH_MAP_MIN)
        free(p);
    else
        munmap(p, cap);
}

/*
 * A batch holds up to SCHED_BATCH_BYTES plus one chunk, but never more than
 * what is left of its file (with room for the chunk at hand should the file
 * have grown): a small file's batch holds and counts its own size, so the
 * held-data limit admits many small files at once.
 */
static int
batch_new(struct sched_readers *r, struct sched_file *f, uint64_t left,
          size_t need, bool uncut, struct sched_batch **out)
{
    size_t cap = SCHED_BATCH_BYTES + r->chunk_max;
    if (left < cap)
        cap = (size_t)left;
    if (cap < need)
        cap = need;
    pthread_mutex_lock(&r->mu);
    while (!r->stop && r->held_bytes >= r->held_limit)
        pthread_cond_wait(&r->space_cv, &r->mu);
    bool stop = r->stop;
    if (!stop)
        r->held_bytes += cap;
    pthread_mutex_unlock(&r->mu);
    if (stop)
        return ORBIT_ECANCELED;
    struct sched_batch *b = calloc(1, sizeof *b);
    if (!b) {
        sched_readers_unhold(r, cap);
        return ORBIT_ENOMEM;
    }
    b->cap = cap;
    b->uncut = uncut;
    b->chunks = uncut ? NULL : calloc(SCHED_BATCH_CHUNKS, sizeof *b->chunks);
    b->buf = buf_alloc(cap);
    if ((!uncut && !b->chunks) || !b->buf) {
        sched_batch_free(r, b); /* gives back cap */
        return ORBIT_ENOMEM;
    }
    b->file = f;
    *out = b;
    return 0;
}

void
sched_readers_unhold(struct sched_readers *r, size_t bytes)
{
    pthread_mutex_lock(&r->mu);
    r->held_bytes = r->held_bytes >= bytes ? r->held_bytes - bytes : 0;
    pthread_cond_signal(&r->space_cv);
    pthread_mutex_unlock(&r->mu);
}

void
sched_batch_free(struct sched_readers *r, struct sched_batch *b)
{
    if (!b)
        return;
    free(b->chunks);
    buf_free(b->buf, b->cap);
    size_t held = b->cap;
    free(b);
    sched_readers_unhold(r, held);
}

static void
batch_post(struct sched_readers *r, struct sched_batch *b)
{
    struct sched_rmsg *m = calloc(1, sizeof *m);
    if (!m) {
        /* Cannot hand it over: drop it and let the file end in error. */
        sched_batch_free(r, b);
        return;
    }
    m->kind = SCHED_RMSG_BATCH;
    m->file = b->file;
    m->batch = b;
    post_msg(r, m);
}

/* Add chunk [data, data+len) at file offset off to the current batch. */
static int
emit_chunk(struct reader_ctx *c, struct sched_file *f, struct sched_batch **cur,
           const uint8_t *data, size_t len, uint64_t off)
{
    struct sched_batch *b = *cur;
    if (b && (b->n == SCHED_BATCH_CHUNKS || b->bytes >= SCHED_BATCH_BYTES ||
              b->cap - b->bytes < len)) {
        batch_post(c->r, b);
        *cur = b = NULL;
    }
    if (!b) {
        uint64_t left = c->file_size > off ? c->file_size - off : 0;
        int rc = batch_new(c->r, f, left, len, false, cur);
        if (rc != 0)
            return rc;
        b = *cur;
    }
    struct sched_chunk *k = &b->chunks[b->n];
    struct chunk_id id;
    int rc = chunk_id_ctx_compute(c->idc, data, len, &id);
    if (rc == 0 && off == 0 && len == c->file_size) {
        /* The whole file as opened is this chunk: its digest is the
         * chunk's id, no second pass over it. Should the file have grown
         * (another chunk follows), its size after the read differs and
         * the read is refused: this digest is never used then. */
        c->only = id;
        c->one_chunk = true;
    } else if (rc == 0) {
        rc = chunk_id_stream_update(c->digest, data, len);
    }
    if (rc != 0)
        return rc;
    memcpy(k->id, id.b, sizeof k->id);
    k->len = (uint32_t)len;
    k->off = off;
    k->data = b->buf + b->bytes;
    memcpy(b->buf + b->bytes, data, len);
    b->bytes += len;
    b->n++;
    return 0;
}

/* One read(2), retried when interrupted; *got 0 at the end of the file. */
static int
read_some(int fd, uint8_t *buf, size_t len, size_t *got)
{
    ssize_t n;
    do
        n = read(fd, buf, len);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return orbit_err_from_errno(errno);
    *got = (size_t)n;
    return 0;
}

/*
 * Read fd up to the size it had when opened (or an earlier end), emitting
 * chunks; *total gets the bytes read. No read waits for the end of file
 * past that size: a file that grew meanwhile has another size in the
 * fstat after the read, and the read is refused there. A file of size 0 is
 * read to its end all the same: some (/proc, some FUSE file systems) have
 * bytes all the same, and must not pass for empty.
 */
static int
chunk_stream(struct reader_ctx *c, struct sched_file *f, int fd,
             struct sched_batch **cur, uint64_t *total)
{
    size_t start = 0, fill = 0, scan = 0;
    uint64_t base = 0; /* file offset of buf[0] */
    while (c->file_size == 0 || base + fill < c->file_size) {
        size_t n = 0;
        int rrc = read_some(fd, c->buf + fill, c->cap - fill, &n);
        if (rrc != 0)
            return rrc;
        if (n == 0)
            break;
        fill += n;
        while (scan < fill) {
            size_t cut = 0;
            int rc = chunker_next(c->ch, c->buf + scan, fill - scan, &cut);
            if (rc != 0)
                return rc;
            if (cut == 0) {
                scan = fill;
                break;
            }
            scan += cut;
            rc = emit_chunk(c, f, cur, c->buf + start, scan - start,
                            base + start);
            if (rc != 0)
                return rc;
            start = scan;
        }
        memmove(c->buf, c->buf + start, fill - start);
        base += start;
        fill -= start;
        scan -= start;
        start = 0;
    }
    size_t tail = 0;
    int rc = chunker_finish(c->ch, &tail);
    if (rc == 0 && fill > 0)
        rc = emit_chunk(c, f, cur, c->buf, fill, base);
    *total = base + fill;
    return rc;
}

/*
 * A file every destination is offered by digest alone (SCHED_PROBE_MAX):
 * its bytes go into one batch, digested but not cut. A destination that
 * turns the offer down gets its chunks from sched_batch_cut on the main
 * thread; most files of a touched tree are kept, and are never cut.
 */
static int
read_whole(struct reader_ctx *c, struct sched_file *f, int fd,
           struct sched_batch **cur, uint64_t *total)
{
    size_t size = (size_t)c->file_size;
    int rc = batch_new(c->r, f, size, size, true, cur);
    if (rc != 0)
        return rc;
    struct sched_batch *b = *cur;
    size_t fill = 0;
    while (fill < size) {
        size_t n = 0;
        rc = read_some(fd, b->buf + fill, size - fill, &n);
        if (rc != 0)
            return rc;
        if (n == 0)
            break;
        fill += n;
    }
    b->bytes = fill;
    *total = fill;
    return chunk_id_stream_update(c->digest, b->buf, fill);
}

static bool
same_stat(const struct stat *a, const struct stat *b)
{
    /* ctime too: a writer can put the mtime back, not the ctime */
    return a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
           a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
           a->st_ctim.tv_sec == b->st_ctim.tv_sec &&
           a->st_ctim.tv_nsec == b->st_ctim.tv_nsec && a->st_ino == b->st_ino;
}

static int
read_file(struct reader_ctx *c, struct sched_file *f, struct sched_rmsg *end)
{
    struct sched_batch *cur = NULL;
    struct stat before, after;
    int rc = 0;
    int fd = open(f->src_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        rc = orbit_err_from_errno(errno);
        snprintf(end->msg, sizeof end->msg, "cannot open: %s", strerror(errno));
        return rc;
    }
    if (fstat(fd, &before) != 0 || !S_ISREG(before.st_mode)) {
        rc = ORBIT_EINVAL;
        snprintf(end->msg, sizeof end->msg, "no longer a regular file");
        goto out;
    }
    c->file_size = (uint64_t)before.st_size;
    c->one_chunk = false;
    c->ch = c->file_size < SCHED_SMALL_FILE ? c->ch_small : c->ch_large;
    chunker_reset(c->ch);
    rc = chunk_id_stream_reset(c->digest);
    uint64_t total = 0;
    bool whole =
        f->read_whole && c->file_size > 0 && c->file_size <= SCHED_PROBE_MAX;
    if (rc == 0)
        rc = whole ? read_whole(c, f, fd, &cur, &total)
                   : chunk_stream(c, f, fd, &cur, &total);
    if (rc != 0) {
        snprintf(end->msg, sizeof end->msg, "read failed: %s",
                 orbit_strerror(rc));
        goto out;
    }
    if (fstat(fd, &after) != 0 || !same_stat(&before, &after) ||
        total != (uint64_t)after.st_size) {
        rc = ORBIT_EAGAIN;
        snprintf(end->msg, sizeof end->msg, "changed while being read");
        goto out;
    }
    struct chunk_id d = c->only;
    if (!c->one_chunk)
        rc = chunk_id_stream_final(c->digest, &d);
    if (rc == 0) {
        memcpy(end->digest, d.b, sizeof end->digest);
        end->size = total;
        /* The manifest carries the size and mtime actually read. */
        end->mtime_sec = after.st_mtim.tv_sec;
        end->mtime_nsec = (uint32_t)after.st_mtim.tv_nsec;
    }
out:
    if (cur)
        batch_post(c->r, cur);
    close(fd);
    return rc;
}

static struct sched_file *
next_work(struct sched_readers *r)
{
    pthread_mutex_lock(&r->mu);
    while (!r->stop && !r->work_head)
        pthread_cond_wait(&r->work_cv, &r->mu);
    struct sched_file *f = NULL;
    if (!r->stop) {
        f = r->work_head;
        r->work_head = f->next;
        if (!r->work_head)
            r->work_tail = NULL;
        f->next = NULL;
    }
    pthread_mutex_unlock(&r->mu);
    return f;
}

void
sched_small_params(size_t avg, struct chunker_params *out)
{
    size_t a = avg / 8 < CHUNKER_AVG_MIN ? CHUNKER_AVG_MIN : avg / 8;
    out->avg_size = a;
    out->min_size = a / 4 < CHUNKER_MIN_LIMIT ? CHUNKER_MIN_LIMIT : a / 4;
    out->max_size = a * 4;
}

static int
reader_ctx_init(struct reader_ctx *c, struct sched_readers *r)
{
    struct chunker_params p = {
        .min_size = r->chunk_min,
        .avg_size = r->chunk_avg,
        .max_size = r->chunk_max,
    };
    struct chunker_params small;
    sched_small_params(r->chunk_avg, &small);
    memset(c, 0, sizeof *c);
    c->r = r;
    c->cap = r->chunk_max + READ_BLOCK;
    c->buf = malloc(c->cap);
    int rc = c->buf ? 0 : ORBIT_ENOMEM;
    if (rc == 0)
        rc = chunker_new(&p, &c->ch_large);
    if (rc == 0)
        rc = chunker_new(&small, &c->ch_small);
    c->ch = c->ch_large;
    if (rc == 0)
        rc = chunk_id_ctx_new(&c->idc);
    if (rc == 0)
        rc = chunk_id_stream_new(&c->digest);
    return rc;
}

static void
reader_ctx_release(struct reader_ctx *c)
{
    chunker_free(c->ch_large);
    chunker_free(c->ch_small);
    chunk_id_ctx_free(c->idc);
    chunk_id_stream_free(c->digest);
    free(c->buf);
}

static void *
reader_main(void *arg)
{
    struct sched_readers *r = arg;
    pthread_setname_np(pthread_self(), "orbit-reader"); /* for top -H */
    struct reader_ctx c;
    int init_rc = reader_ctx_init(&c, r);
    struct sched_file *f;
    while ((f = next_work(r)) != NULL) {
        struct sched_rmsg *end = calloc(1, sizeof *end);
        if (!end) /* the main loop notices the file never ends: give up */
            break;
        end->kind = SCHED_RMSG_END;
        end->file = f;
        end->err = init_rc != 0 ? init_rc : read_file(&c, f, end);
        if (end->err != 0 && end->msg[0] == '\0')
            snprintf(end->msg, sizeof end->msg, "%s", orbit_strerror(end->err));
        post_msg(r, end);
    }
    reader_ctx_release(&c);
    return NULL;
}

int
sched_batch_cut(struct sched_readers *r, struct sched_batch *b)
{
    if (!b->uncut)
        return 0;
    struct chunker_params small;
    sched_small_params(r->chunk_avg, &small);
    size_t maxn = b->bytes / small.min_size + 1;
    struct sched_chunk *k = calloc(maxn, sizeof *k);
    if (!k)
        return ORBIT_ENOMEM;
    chunker_reset(r->cut_ch);
    size_t off = 0, n = 0;
    int rc = 0;
    while (rc == 0 && off < b->bytes) {
        size_t cut = 0;
        rc = chunker_next(r->cut_ch, b->buf + off, b->bytes - off, &cut);
        if (rc != 0)
            break;
        if (cut == 0) /* no cut point before the end: the last chunk */
            cut = b->bytes - off;
        if (n == maxn) {
            rc = ORBIT_EINVAL; /* more chunks than the minimum size allows */
            break;
        }
        struct chunk_id id;
        rc = chunk_id_ctx_compute(r->cut_idc, b->buf + off, cut, &id);
        memcpy(k[n].id, id.b, sizeof k[n].id);
        k[n].len = (uint32_t)cut;
        k[n].off = off;
        k[n].data = b->buf + off;
        n++;
        off += cut;
    }
    if (rc != 0) { /* the next cut starts with chunker_reset() */
        free(k);
        return rc;
    }
    b->chunks = k;
    b->n = (uint32_t)n;
    b->uncut = false;
    return 0;
}

int
sched_readers_start(struct sched_readers *r, unsigned nthreads,
                    struct event *wake)
{
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->work_cv, NULL);
    pthread_cond_init(&r->space_cv, NULL);
    r->wake = wake;
    struct chunker_params small;
    sched_small_params(r->chunk_avg, &small);
    int rc = chunker_new(&small, &r->cut_ch);
    if (rc == 0)
        rc = chunk_id_ctx_new(&r->cut_idc);
    if (rc != 0)
        return rc;
    r->threads = calloc(nthreads, sizeof *r->threads);
    if (!r->threads)
        return ORBIT_ENOMEM;
    for (unsigned i = 0; i < nthreads; i++) {
        if (pthread_create(&r->threads[i], NULL, reader_main, r) != 0) {
            sched_readers_stop(r);
            return ORBIT_ENOMEM;
        }
        r->nthreads++;
    }
    return 0;
}

void
sched_readers_stop(struct sched_readers *r)
{
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_broadcast(&r->work_cv);
    pthread_cond_broadcast(&r->space_cv);
    pthread_mutex_unlock(&r->mu);
    for (unsigned i = 0; i < r->nthreads; i++)
        pthread_join(r->threads[i], NULL);
    free(r->threads);
    r->threads = NULL;
    r->nthreads = 0;
    struct sched_rmsg *m = sched_readers_take(r);
    while (m) {
        struct sched_rmsg *next = m->next;
        sched_batch_free(r, m->batch);
        free(m);
        m = next;
    }
}

void
sched_readers_release(struct sched_readers *r)
{
    chunker_free(r->cut_ch);
    chunk_id_ctx_free(r->cut_idc);
    r->cut_ch = NULL;
    r->cut_idc = NULL;
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->work_cv);
    pthread_cond_destroy(&r->space_cv);
}

void
sched_readers_submit(struct sched_readers *r, struct sched_file *f)
{
    pthread_mutex_lock(&r->mu);
    f->next = NULL;
    if (r->work_tail)
        r->work_tail->next = f;
    else
        r->work_head = f;
    r->work_tail = f;
    pthread_cond_signal(&r->work_cv);
    pthread_mutex_unlock(&r->mu);
}

struct sched_rmsg *
sched_readers_take(struct sched_readers *r)
{
    pthread_mutex_lock(&r->mu);
    struct sched_rmsg *m = r->out_head;
    r->out_head = r->out_tail = NULL;
    pthread_mutex_unlock(&r->mu);
    return m;
}
