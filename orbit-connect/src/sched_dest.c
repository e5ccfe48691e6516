/*
 * sched_dest.c - one destination of a job: its connection (an in-process
 * star over a socketpair, or a remote star), HAVE batching, PUT dispatch
 * under its backpressure guard, COMMIT, LIST and DELETE.
 *
 * Runs on the scheduler's loop thread only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/rand.h>

#include "orbit/backpressure.h"
#include "orbit/breaker.h"
#include "orbit/chunk_codec.h"
#include "orbit/error.h"
#include "orbit/orbit_clock.h"
#include "orbit/star.h"
#include "orbit/wire_client.h"
#include "sched_internal.h"

#define HAVE_BATCH       2048
#define LOCAL_BUSY_TRIES 150 /* 30 s in steps of 200 ms */

/* ---- a FIFO of chunk references ---------------------------------------- */

int
sched_refq_push(struct sched_refq *q, struct sched_batch *b, uint32_t i)
{
    if (q->len == q->cap) {
        size_t ncap = q->cap ? q->cap * 2 : 256;
        struct sched_ref *v = malloc(ncap * sizeof *v);
        if (!v)
            return ORBIT_ENOMEM;
        for (size_t k = 0; k < q->len; k++)
            v[k] = q->v[(q->head + k) % q->cap];
        free(q->v);
        q->v = v;
        q->cap = ncap;
        q->head = 0;
    }
    q->v[(q->head + q->len) % q->cap] = (struct sched_ref){b, i};
    q->len++;
    return 0;
}

static const struct sched_ref *
refq_front(const struct sched_refq *q)
{
    return q->len ? &q->v[q->head] : NULL;
}

bool
sched_refq_pop(struct sched_refq *q, struct sched_ref *out)
{
    if (q->len == 0)
        return false;
    *out = q->v[q->head];
    q->head = (q->head + 1) % q->cap;
    q->len--;
    return true;
}

void
sched_refq_release(struct sched_refq *q)
{
    free(q->v);
    memset(q, 0, sizeof *q);
}

/* ---- paths -----------------------------------------------------------------
 */

int
sched_dest_path(const struct sched_dest *d, const char *rel, char *buf)
{
    const char *pre = d->cfg->prefix ? d->cfg->prefix : "";
    int n;
    if (pre[0] == '\0')
        n = snprintf(buf, WIRE_MAX_PATH + 1, "%s", rel);
    else if (rel[0] == '\0')
        n = snprintf(buf, WIRE_MAX_PATH + 1, "%s", pre);
    else
        n = snprintf(buf, WIRE_MAX_PATH + 1, "%s/%s", pre, rel);
    return (n < 0 || n > WIRE_MAX_PATH) ? ORBIT_EPATH : 0;
}

/* ---- a chunk's use by this destination ends --------------------------------
 */

static void
ref_done(struct sched_dest *d, struct sched_batch *b)
{
    struct sched_file *f = b->file;
    f->pending[d->idx]--;
    sched_batch_unref(d->s, b);
    sched_file_progress(d->s, f, d->idx); /* f stays valid this pass */
}

static void fail_queued(struct sched_dest *d, int err);

/* Free the session, keeping its traffic in the destination's totals. */
static void
drop_client(struct sched_dest *d)
{
    uint64_t out = 0, in = 0;
    wire_client_traffic(d->client, &out, &in);
    d->wire_out += out;
    d->wire_in += in;
    wire_client_free(d->client);
    d->client = NULL;
}

void
sched_dest_traffic(const struct sched_dest *d, uint64_t *out, uint64_t *in)
{
    wire_client_traffic(d->client, out, in);
    *out += d->wire_out;
    *in += d->wire_in;
}

/* A request timed out: the stream may be desynchronized (a corrupted length
 * leaves every later reply unread), so the session is dropped and a new one
 * made, rather than letting every request time out in turn. */
static void
reset_session(struct sched_dest *d)
{
    if (!d->client || d->resetting)
        return;
    d->resetting = true;
    d->ready = false;
    drop_client(d); /* pending requests: ECANCELED */
    fail_queued(d, ORBIT_ECLOSED);
    d->resetting = false;
    sched_dest_ready(d->s, d, ORBIT_ETIMEDOUT);
}

/* The error a failed request ends with, and why in msg: the star's words
 * for an ERROR reply, else the local status. */
static int
reply_error(const struct sched_dest *d, int status,
            const struct wire_msg *reply, char *msg, size_t cap)
{
    if (reply && reply->type == WIRE_ERROR) {
        snprintf(msg, cap, "%s: %s", d->cfg->name,
                 reply->u.error.message ? reply->u.error.message : "");
        return reply->u.error.code;
    }
    /* Our own reset of a suspect session cancels its requests: to the file
     * that is a lost connection, to be retried. */
    if (status == ORBIT_ECANCELED)
        status = ORBIT_ECLOSED;
    snprintf(msg, cap, "%s: %s", d->cfg->name, orbit_strerror(status));
    return status;
}

static void
reply_fail(struct sched_dest *d, struct sched_file *f, int status,
           const struct wire_msg *reply)
{
    char msg[512];
    int code = reply_error(d, status, reply, msg, sizeof msg);
    bool star_said = reply && reply->type == WIRE_ERROR;
    /* The star's word on retrying wins: a chunk gone from under a COMMIT is
     * ENOENT (not retryable as a source error) but marked retryable, since
     * the next HAVE reports it missing. */
    if (star_said && reply->u.error.retryable && !orbit_err_retryable(code)) {
        if (code == ORBIT_ENOENT && reply->u.error.item != WIRE_NO_ITEM)
            f->missing_mask |= 1u << d->idx; /* chunks it lacks: no wait */
        code = ORBIT_EAGAIN;
    }
    sched_file_fail(d->s, f, d->idx, code, msg);
    if (!star_said && status == ORBIT_ETIMEDOUT)
        reset_session(d);
}

/* ---- chunks on their way to this star
 * ----------------------------------------
 *
 * Two files (or two places in one file) often share a chunk. The first to
 * find it missing sends it; the others wait for that PUT's answer instead of
 * sending the same bytes again, then commit as if they had sent it. */

struct sched_inflight {
    uint8_t id[WIRE_ID_LEN];
    bool sent; /* its PUT is on the wire: waiters count it in on_wire */
    struct sched_file **waiters;
    uint32_t nwait;
    uint32_t capwait;
    struct sched_inflight *next;
};

#define INFLIGHT_BUCKETS 4096

static struct sched_inflight **
inflight_slot(struct sched_dest *d, const uint8_t *id)
{
    uint64_t h;
    memcpy(&h, id, sizeof h);
    struct sched_inflight **pp = &d->inflight[h % INFLIGHT_BUCKETS];
    while (*pp && memcmp((*pp)->id, id, WIRE_ID_LEN) != 0)
        pp = &(*pp)->next;
    return pp;
}

static int
inflight_add(struct sched_dest *d, const uint8_t *id)
{
    if (!d->inflight &&
        !(d->inflight = calloc(INFLIGHT_BUCKETS, sizeof *d->inflight)))
        return ORBIT_ENOMEM;
    struct sched_inflight **pp = inflight_slot(d, id);
    struct sched_inflight *r = calloc(1, sizeof *r);
    if (!r)
        return ORBIT_ENOMEM;
    memcpy(r->id, id, WIRE_ID_LEN);
    *pp = r;
    return 0;
}

static int
inflight_wait(struct sched_inflight *r, struct sched_file *f)
{
    if (r->nwait == r->capwait) {
        uint32_t ncap = r->capwait ? r->capwait * 2 : 4;
        struct sched_file **w = realloc(r->waiters, ncap * sizeof *w);
        if (!w)
            return ORBIT_ENOMEM;
        r->waiters = w;
        r->capwait = ncap;
    }
    r->waiters[r->nwait++] = f;
    return 0;
}

static void reply_fail(struct sched_dest *d, struct sched_file *f, int status,
                       const struct wire_msg *reply);

/* The PUT of id was answered (or could not be sent): release its waiters. */
static void
inflight_done(struct sched_dest *d, const uint8_t *id, int status,
              const struct wire_msg *reply)
{
    if (!d->inflight)
        return;
    struct sched_inflight **pp = inflight_slot(d, id);
    struct sched_inflight *r = *pp;
    if (!r)
        return;
    *pp = r->next;
    for (uint32_t i = 0; i < r->nwait; i++) {
        struct sched_file *f = r->waiters[i];
        if (status != 0)
            reply_fail(d, f, status, reply);
        if (r->sent)
            f->on_wire[d->idx]--;
        f->pending[d->idx]--;
        sched_file_progress(d->s, f, d->idx);
    }
    free(r->waiters);
    free(r);
}

/* The PUT of id went out: files waiting for it have it on the wire too. */
static void
inflight_sent(struct sched_dest *d, const uint8_t *id)
{
    struct sched_inflight *r = d->inflight ? *inflight_slot(d, id) : NULL;
    if (!r || r->sent)
        return;
    r->sent = true;
    for (uint32_t i = 0; i < r->nwait; i++)
        r->waiters[i]->on_wire[d->idx]++;
    for (uint32_t i = 0; i < r->nwait; i++)
        sched_file_progress(d->s, r->waiters[i], d->idx);
}

static void
inflight_release(struct sched_dest *d)
{
    for (size_t b = 0; d->inflight && b < INFLIGHT_BUCKETS; b++) {
        while (d->inflight[b]) {
            struct sched_inflight *r = d->inflight[b];
            d->inflight[b] = r->next;
            free(r->waiters);
            free(r);
        }
    }
    free(d->inflight);
    d->inflight = NULL;
}

/* ---- PUT -------------------------------------------------------------------
 */

struct put_ctx {
    struct sched_dest *d;
    struct sched_file *f;
    uint32_t len;
    uint8_t id[WIRE_ID_LEN];
};

static void pump_puts(struct sched_dest *d);

static void pump_commits(struct sched_dest *d);

void
sched_dest_pump(struct sched_dest *d)
{
    pump_commits(d);
    pump_puts(d);
    sched_dest_flush(d);
}

static void
on_put(void *arg, int status, const struct wire_msg *reply)
{
    struct put_ctx *c = arg;
    struct sched_dest *d = c->d;
    backpressure_release(d->guard, 1, c->len);
    if (reply)
        d->last_seen_ms = orbit_clock_realtime_ms(NULL);
    if (status != 0)
        reply_fail(d, c->f, status, reply);
    c->f->on_wire[d->idx]--;
    c->f->pending[d->idx]--;
    sched_file_progress(d->s, c->f, d->idx);
    inflight_done(d, c->id, status, reply);
    free(c);
    pump_puts(d);
}

/* Send the chunk at ref; the guard is already acquired. Returns EFULL when
 * the client cannot take it now (the caller keeps it queued). */
static int
send_put(struct sched_dest *d, const struct sched_ref *ref)
{
    const struct sched_chunk *k = &ref->b->chunks[ref->idx];
    struct sched_file *f = ref->b->file;
    char path[WIRE_MAX_PATH + 1];
    struct wire_put put = {.codec = WIRE_CODEC_RAW, .raw_len = k->len};
    memcpy(put.id, k->id, sizeof put.id);
    put.data = k->data;
    put.data_len = k->len;
    if (sched_dest_path(d, f->rel, path) == 0) {
        put.has_hint = true;
        put.hint_path = path;
        put.hint_path_len = strlen(path);
        put.hint_offset = k->off;
    }
    if (d->compress) {
        size_t stored = 0;
        uint8_t codec = 0;
        int rc = chunk_codec_encode(d->codec, k->data, k->len, d->zbuf, d->zcap,
                                    &stored, &codec);
        if (rc == 0 && codec == CHUNK_CODEC_ZSTD) {
            put.codec = WIRE_CODEC_ZSTD;
            put.data = d->zbuf;
            put.data_len = (uint32_t)stored;
        }
    }
    struct put_ctx *c = malloc(sizeof *c);
    if (!c)
        return ORBIT_ENOMEM;
    *c = (struct put_ctx){.d = d, .f = f, .len = k->len};
    memcpy(c->id, k->id, sizeof c->id);
    int rc = wire_client_put(d->client, &put, on_put, c, NULL);
    if (rc != 0) {
        free(c);
        return rc;
    }
    sched_count_sent(d->s, put.data_len, k->len);
    f->bytes_sent += put.data_len;
    return 0;
}

/* Send queued PUTs while the guard and the connection have room. */
static void
pump_puts(struct sched_dest *d)
{
    const struct sched_ref *ref;
    while (d->client && d->ready && (ref = refq_front(&d->putq)) != NULL) {
        struct sched_file *f = ref->b->file;
        struct sched_ref r = {0};
        /* Sent even when f has failed meanwhile: other files may wait
         * for this chunk. */
        uint32_t len = ref->b->chunks[ref->idx].len;
        if (!backpressure_try_acquire(d->guard, 1, len))
            return;
        if (!sched_bw_take(d->s, len)) {
            backpressure_release(d->guard, 1, len);
            return; /* the scheduler's tick pumps again */
        }
        int rc = send_put(d, ref);
        if (rc == ORBIT_EFULL) {
            backpressure_release(d->guard, 1, len);
            return; /* on_drain resumes */
        }
        sched_refq_pop(&d->putq, &r);
        if (rc != 0) {
            backpressure_release(d->guard, 1, len);
            char msg[256];
            snprintf(msg, sizeof msg, "%s: cannot send chunk: %s", d->cfg->name,
                     orbit_strerror(rc));
            sched_file_fail(d->s, f, d->idx, rc, msg);
            inflight_done(d, r.b->chunks[r.idx].id, rc, NULL);
            ref_done(d, r.b);
            continue;
        }
        /* The client copied the bytes: this use of the batch ends, the
         * file's pending count stays until PUT_OK. */
        f->pending[d->idx]++;
        f->on_wire[d->idx]++;
        inflight_sent(d, r.b->chunks[r.idx].id);
        ref_done(d, r.b);
    }
}

/* ---- HAVE
 * -------------------------------------------------------------------- */

struct have_ctx {
    struct sched_dest *d;
    uint32_t n;
    struct sched_ref refs[];
};

static void
on_have(void *arg, int status, const struct wire_msg *reply)
{
    struct have_ctx *c = arg;
    struct sched_dest *d = c->d;
    bool ok = status == 0 && reply && reply->u.have_reply.n == c->n;
    if (status == 0 && !ok)
        status = ORBIT_EPROTO;
    for (uint32_t i = 0; i < c->n; i++) {
        struct sched_ref *r = &c->refs[i];
        struct sched_file *f = r->b->file;
        if (!ok) {
            reply_fail(d, f, status, reply);
        } else if (wire_bitmap_get(reply->u.have_reply.bitmap, i) &&
                   !(f->failed_mask & (1u << d->idx))) {
            const uint8_t *id = r->b->chunks[r->idx].id;
            struct sched_inflight *fl =
                d->inflight ? *inflight_slot(d, id) : NULL;
            if (fl && inflight_wait(fl, f) == 0) {
                f->pending[d->idx]++; /* until that PUT is answered */
                f->on_wire[d->idx] += fl->sent;
                sched_count_dedup(d->s, f, r->b->chunks[r->idx].len);
            } else if (!fl && inflight_add(d, id) == 0) {
                if (sched_refq_push(&d->putq, r->b, r->idx) == 0)
                    continue; /* the queued PUT now holds this use */
                inflight_done(d, id, ORBIT_ENOMEM, NULL);
                sched_file_fail(d->s, f, d->idx, ORBIT_ENOMEM, "out of memory");
            } else {
                sched_file_fail(d->s, f, d->idx, ORBIT_ENOMEM, "out of memory");
            }
        } else if (!(f->failed_mask & (1u << d->idx))) {
            sched_count_dedup(d->s, f, r->b->chunks[r->idx].len);
        }
        ref_done(d, r->b);
    }
    free(c);
    pump_puts(d);
    sched_dest_flush(d);
}

void
sched_dest_flush(struct sched_dest *d)
{
    while (d->client && d->ready && d->haveq.len > 0) {
        uint32_t n =
            d->haveq.len < HAVE_BATCH ? (uint32_t)d->haveq.len : HAVE_BATCH;
        struct have_ctx *c = malloc(sizeof *c + n * sizeof c->refs[0]);
        uint8_t *ids = malloc((size_t)n * WIRE_ID_LEN);
        if (!c || !ids) {
            free(c);
            free(ids);
            return; /* retried at the next flush */
        }
        c->d = d;
        c->n = n;
        for (uint32_t i = 0; i < n; i++) {
            c->refs[i] = d->haveq.v[(d->haveq.head + i) % d->haveq.cap];
            memcpy(ids + (size_t)i * WIRE_ID_LEN,
                   c->refs[i].b->chunks[c->refs[i].idx].id, WIRE_ID_LEN);
        }
        int rc = wire_client_have(d->client, ids, n, on_have, c, NULL);
        free(ids);
        if (rc != 0) {
            free(c);
            return; /* EFULL: on_drain flushes again */
        }
        struct sched_ref dummy;
        for (uint32_t i = 0; i < n; i++)
            sched_refq_pop(&d->haveq, &dummy);
    }
}

void
sched_dest_enqueue(struct sched_dest *d, struct sched_batch *b)
{
    struct sched_file *f = b->file;
    if (sched_dest_down(d)) {
        char msg[256];
        snprintf(msg, sizeof msg, "%s: not connected (reconnecting)",
                 d->cfg->name);
        sched_file_fail(d->s, f, d->idx, ORBIT_ECLOSED, msg);
        return;
    }
    for (uint32_t i = 0; i < b->n; i++) {
        if (sched_refq_push(&d->haveq, b, i) != 0) {
            sched_file_fail(d->s, f, d->idx, ORBIT_ENOMEM, "out of memory");
            return;
        }
        b->refs++;
        f->pending[d->idx]++;
    }
    if (d->haveq.len >= HAVE_BATCH)
        sched_dest_flush(d);
}

/* ---- COMMIT
 * ------------------------------------------------------------------ */

struct commit_ctx {
    struct sched_dest *d;
    struct sched_file *f;
};

static void
on_commit(void *arg, int status, const struct wire_msg *reply)
{
    struct commit_ctx *c = arg;
    if (status != 0)
        reply_fail(c->d, c->f, status, reply);
    c->f->pending[c->d->idx]--;
    sched_file_progress(c->d->s, c->f, c->d->idx);
    free(c);
}

static int commit_frames(struct sched_dest *d, struct sched_file *f);

/* Continue the manifests that waited for room in the connection. */
static void
pump_commits(struct sched_dest *d)
{
    while (d->client && d->ready && d->commitq_len > 0) {
        struct sched_file *f = d->commitq[d->commitq_head];
        int rc = commit_frames(d, f);
        if (rc == ORBIT_EFULL)
            return;
        d->commitq_head = (d->commitq_head + 1) % SCHED_COMMITQ;
        d->commitq_len--;
        f->pending[d->idx]--; /* the hold taken when it was queued */
        if (rc != 0)
            sched_file_fail(d->s, f, d->idx, rc, "cannot send manifest");
        sched_file_progress(d->s, f, d->idx);
    }
}

int
sched_dest_commit(struct sched_dest *d, struct sched_file *f)
{
    f->commit_next[d->idx] = 0;
    int rc = commit_frames(d, f);
    if (rc != ORBIT_EFULL)
        return rc;
    if (d->commitq_len == SCHED_COMMITQ)
        return ORBIT_EAGAIN; /* retried later through the penalty box */
    d->commitq[(d->commitq_head + d->commitq_len) % SCHED_COMMITQ] = f;
    d->commitq_len++;
    f->pending[d->idx]++; /* held until the rest of it is sent */
    return 0;
}

/* f's metadata as a COMMIT for d (path in buf of WIRE_MAX_PATH + 1 bytes),
 * its whole chunk list announced, no chunks in the frame yet. */
static int
manifest_head(const struct sched_dest *d, const struct sched_file *f,
              char *path, struct wire_commit *m)
{
    int rc = sched_dest_path(d, f->rel, path);
    if (rc != 0)
        return rc;
    *m = (struct wire_commit){
        .path = path,
        .path_len = strlen(path),
        .ftype = f->ftype,
        .size = f->ftype == WIRE_FT_REGULAR ? f->size : 0,
        /* Directories stay open to us until the end of the job, when
         * their final modes are set (an unwritable directory would refuse
         * its own entries). */
        .mode = f->ftype == WIRE_FT_DIRECTORY && !f->fixup ? f->mode | 0700
                                                           : f->mode,
        .mtime_sec = f->mtime_sec,
        .mtime_nsec = f->mtime_nsec,
        .target = f->target ? f->target : "",
        .target_len = f->target ? strlen(f->target) : 0,
        .chunk_total = f->nrefs,
    };
    if (f->ftype == WIRE_FT_REGULAR)
        memcpy(m->digest, f->digest, sizeof m->digest);
    return 0;
}

/* ---- probe: a COMMIT by digest alone (SCHED_PROBE_MAX)
 * ------------------------------------------------------ */

static void
on_probe(void *arg, int status, const struct wire_msg *reply)
{
    struct commit_ctx *c = arg;
    char msg[512];
    msg[0] = 0;
    int err = status;
    if (status == 0 && reply && !reply->u.commit_ok.complete)
        err = ORBIT_EPROTO; /* a probe is whole or nothing */
    if (err != 0)
        err = reply_error(c->d, err, reply, msg, sizeof msg);
    sched_probe_answered(c->d->s, c->f, c->d->idx, err, msg);
    if (status == ORBIT_ETIMEDOUT)
        reset_session(c->d);
    free(c);
}

/* Send one COMMIT frame for f, its answer to cb. */
static int
send_commit(struct sched_dest *d, struct sched_file *f,
            const struct wire_commit *m, wire_reply_cb cb)
{
    struct commit_ctx *c = malloc(sizeof *c);
    if (!c)
        return ORBIT_ENOMEM;
    *c = (struct commit_ctx){d, f};
    int rc = wire_client_commit(d->client, m, cb, c, NULL);
    if (rc != 0)
        free(c);
    return rc;
}

int
sched_dest_probe(struct sched_dest *d, struct sched_file *f)
{
    char path[WIRE_MAX_PATH + 1];
    struct wire_commit m;
    int rc = manifest_head(d, f, path, &m);
    if (rc != 0)
        return rc;
    m.chunk_total = 0; /* by digest alone */
    return send_commit(d, f, &m, on_probe);
}

/* Send the frames of f's manifest from f->commit_next on; ORBIT_EFULL when
 * the connection has no room (the rest waits in the commit queue). */
static int
commit_frames(struct sched_dest *d, struct sched_file *f)
{
    char path[WIRE_MAX_PATH + 1];
    struct wire_commit m;
    int rc = manifest_head(d, f, path, &m);
    if (rc != 0)
        return rc;
    uint64_t first = f->commit_next[d->idx];
    do {
        uint64_t left = f->nrefs - first;
        m.chunk_first = first;
        m.n =
            (uint32_t)(left < WIRE_MAX_COMMIT_CHUNKS ? left
                                                     : WIRE_MAX_COMMIT_CHUNKS);
        m.chunks = f->refs + first;
        rc = send_commit(d, f, &m, on_commit);
        if (rc != 0)
            return rc;
        f->pending[d->idx]++;
        first += m.n;
        f->commit_next[d->idx] = first;
    } while (first < f->nrefs);
    return 0;
}

/* ---- LIST (sync) and DELETE
 * ---------------------------------------------------- */

static int
listing_done(struct sched_dest *d)
{
    d->listing_done = true;
    if (!d->listing) {
        int rc = sched_listing_new(&d->listing);
        if (rc != 0)
            return rc;
    }
    return sched_listing_seal(d->listing);
}

static void
on_list(void *arg, int status, const struct wire_msg *reply)
{
    struct sched_dest *d = arg;
    if (status == ORBIT_ENOENT && d->cursor[0] == '\0') {
        /* PATH is not at the star yet: a first sync lists nothing. */
        sched_dest_listed_done(d->s, d, listing_done(d));
        return;
    }
    if (status != 0) {
        sched_dest_listed_done(d->s, d, status);
        return;
    }
    int rc = d->listing ? 0 : sched_listing_new(&d->listing);
    const struct wire_list_reply *r = &reply->u.list_reply;
    size_t pos = 0;
    struct wire_list_entry e;
    while (rc == 0 && wire_list_next(r, &pos, &e) == 0)
        rc = sched_listing_add(d->listing, &e);
    if (rc != 0) {
        sched_dest_listed_done(d->s, d, rc);
        return;
    }
    if (r->next_cursor_len == 0 || r->next_cursor_len > WIRE_MAX_PATH) {
        sched_dest_listed_done(d->s, d, listing_done(d));
        return;
    }
    memcpy(d->cursor, r->next_cursor, r->next_cursor_len);
    d->cursor[r->next_cursor_len] = '\0';
    rc = sched_dest_list(d);
    if (rc != 0)
        sched_dest_listed_done(d->s, d, rc);
}

int
sched_dest_list(struct sched_dest *d)
{
    const char *pre = d->cfg->prefix ? d->cfg->prefix : "";
    return wire_client_list(d->client, pre, d->cursor, 0, on_list, d, NULL);
}

static void
on_delete(void *arg, int status, const struct wire_msg *reply)
{
    struct sched_dest *d = arg;
    if (status != 0)
        fprintf(stderr, "orbit: %s: delete failed: %s\n", d->cfg->name,
                reply && reply->type == WIRE_ERROR && reply->u.error.message
                    ? reply->u.error.message
                    : orbit_strerror(status));
    sched_delete_done(d->s, status);
}

struct replace_ctx {
    struct sched_dest *d;
    struct sched_file *f;
};

static void
on_replace(void *arg, int status, const struct wire_msg *reply)
{
    struct replace_ctx *c = arg;
    if (status != 0)
        reply_fail(c->d, c->f, status, reply);
    c->f->pending[c->d->idx]--;
    sched_file_progress(c->d->s, c->f, c->d->idx);
    free(c);
}

/* The destination holds another type at f's path (a directory where a file
 * goes, or the reverse): remove it first; f commits once that is answered. */
int
sched_dest_replace(struct sched_dest *d, struct sched_file *f)
{
    char path[WIRE_MAX_PATH + 1];
    int rc = sched_dest_path(d, f->rel, path);
    struct replace_ctx *c = rc == 0 ? malloc(sizeof *c) : NULL;
    if (rc != 0 || !c)
        return rc != 0 ? rc : ORBIT_ENOMEM;
    *c = (struct replace_ctx){d, f};
    rc = d->client ? wire_client_delete(d->client, path, WIRE_DELETE_RECURSIVE,
                                        on_replace, c, NULL)
                   : ORBIT_ECLOSED;
    if (rc != 0) {
        free(c);
        return rc;
    }
    f->pending[d->idx]++;
    return 0;
}

int
sched_dest_delete(struct sched_dest *d, const char *path)
{
    return wire_client_delete(d->client, path, WIRE_DELETE_RECURSIVE, on_delete,
                              d, NULL);
}

/* ---- the connection
 * ----------------------------------------------------------- */

static void
on_ready(void *arg, int status, const struct wire_hello_ok *hello)
{
    struct sched_dest *d = arg;
    (void)hello;
    d->ready = status == 0;
    if (d->ready && d->compress_auto) {
        /* Compressing for a star on this host only spends CPU on both
         * ends: the bytes never cross a network. */
        d->compress = !wire_client_peer_local(d->client);
    }
    if (status != 0 && d->was_ready)
        fail_queued(d, ORBIT_ECLOSED);
    sched_dest_ready(d->s, d, status);
    if (d->ready)
        sched_dest_pump(d);
}

static void
on_drain(void *arg)
{
    sched_dest_pump(arg);
}

static void
on_star_bulletin(void *arg, const struct wire_bulletin *b)
{
    struct sched_dest *d = arg;
    char cat[64], msg[512];
    snprintf(cat, sizeof cat, "%.*s", (int)b->category_len, b->category);
    snprintf(msg, sizeof msg, "%.*s", (int)b->message_len, b->message);
    sched_bulletin(d->s, d, b->severity, cat[0] ? cat : "star", msg);
}

static const char *const adv_names[] = {
    "disk_warning",   "disk_critical",   "disk_exhaustion_predicted",
    "throughput_low", "error_rate_high",
};

static void
on_health(void *arg, int status, const struct wire_msg *reply)
{
    struct sched_dest *d = arg;
    if (status != 0 || !reply)
        return;
    const struct wire_health_reply *h = &reply->u.health;
    d->last_seen_ms = orbit_clock_realtime_ms(NULL);
    d->disk_total = h->disk_total;
    d->disk_used = h->disk_used;
    uint32_t fresh = h->advisories & ~d->advisories;
    d->advisories = h->advisories;
    for (unsigned i = 0; i < 5; i++) {
        if (!(fresh & (1u << i)))
            continue;
        char msg[256];
        snprintf(msg, sizeof msg, "%s: %s (disk %llu of %llu bytes used)",
                 d->cfg->name, adv_names[i], (unsigned long long)h->disk_used,
                 (unsigned long long)h->disk_total);
        bool bad =
            (1u << i) & (WIRE_ADV_DISK_CRITICAL | WIRE_ADV_DISK_EXHAUSTION);
        sched_bulletin(d->s, d, bad ? 2 : 1, adv_names[i], msg);
    }
}

/* Ask the star how it is (every few seconds, from the scheduler's tick). */
void
sched_dest_health(struct sched_dest *d)
{
    if (d->client && d->ready)
        wire_client_health(d->client, on_health, d, NULL);
}

/* The session is gone: whatever waited to be sent on it fails now
 * (retryable), so its files go to the penalty box instead of waiting for a
 * connection that may never come back. */
static void
fail_queued(struct sched_dest *d, int err)
{
    char msg[256];
    snprintf(msg, sizeof msg, "%s: connection lost", d->cfg->name);
    struct sched_ref r;
    while (sched_refq_pop(&d->haveq, &r)) {
        sched_file_fail(d->s, r.b->file, d->idx, err, msg);
        ref_done(d, r.b);
    }
    while (sched_refq_pop(&d->putq, &r)) {
        sched_file_fail(d->s, r.b->file, d->idx, err, msg);
        inflight_done(d, r.b->chunks[r.idx].id, err, NULL);
        ref_done(d, r.b);
    }
    while (d->commitq_len > 0) {
        struct sched_file *f = d->commitq[d->commitq_head];
        d->commitq_head = (d->commitq_head + 1) % SCHED_COMMITQ;
        d->commitq_len--;
        sched_file_fail(d->s, f, d->idx, err, msg);
        f->pending[d->idx]--;
        sched_file_progress(d->s, f, d->idx);
    }
}

bool
sched_dest_down(const struct sched_dest *d)
{
    return d->was_ready && (!d->client || !d->ready);
}

static void
on_closed(void *arg, int status)
{
    struct sched_dest *d = arg;
    d->ready = false;
    drop_client(d);
    fail_queued(d, ORBIT_ECLOSED);
    sched_dest_ready(d->s, d, status < 0 ? status : ORBIT_ECLOSED);
}

static int
local_socket(struct sched_dest *d, int *client_fd)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        return orbit_err_from_errno(errno);
    int rc = star_adopt_fd(d->star, sv[1]);
    if (rc != 0) {
        close(sv[0]);
        return rc;
    }
    *client_fd = sv[0];
    return 0;
}

static int
local_star(struct sched_dest *d)
{
    struct star_config sc;
    star_config_init(&sc);
    sc.root = d->cfg->root;
    sc.token = d->cfg->token;
    sc.token_len = d->cfg->token_len;
    sc.name = "local";
    sc.quiet = true;
    sc.batch_max_bytes = 16u << 20;
    /* Let PUTs gather for 2 ms so one fdatasync covers many (measured:
     * 1 GB file, 13.8 s with 0, 5.9 s with 2 ms). */
    sc.batch_delay_us = 2000;
    /* its one client is this process, which named every chunk it sends
     * from the same bytes: not hashed again on arrival (the COMMIT's
     * whole-file digest still checks every file) */
    sc.verify_puts = false;
    sc.pack_level = -1; /* a socketpair: compressing frames only costs */
    int rc = star_new(&sc, &d->star);
    /* Another process still serves this root (e.g. the previous run of
     * this job, stopping): wait for it a while rather than fail. */
    for (int i = 0; rc == ORBIT_EAGAIN && i < LOCAL_BUSY_TRIES; i++) {
        if (i == 0)
            fprintf(stderr,
                    "orbit: %s is in use by another process; "
                    "waiting for it\n",
                    d->cfg->root);
        struct timespec nap = {0, 200 * 1000 * 1000};
        nanosleep(&nap, NULL);
        rc = star_new(&sc, &d->star);
    }
    if (rc == 0)
        rc = star_schedule(d->star);
    return rc;
}

int
sched_dest_open(struct sched_dest *d)
{
    struct wire_client_config wc = {
        .host = d->cfg->host,
        .port = d->cfg->port,
        .fd = -1,
        .token = d->cfg->token,
        .token_len = d->cfg->token_len,
        .client_name = "orbit",
        .job_id = sched_job_id(d->s),
        .max_out_bytes = 16u << 20,
        /* A reply later than this means a stuck or desynchronized session:
         * it is dropped and made again (reset_session). */
        .request_timeout_ms = 30000,
        .on_ready = on_ready,
        .on_closed = on_closed,
        .on_drain = on_drain,
        .on_bulletin = on_star_bulletin,
        .arg = d,
    };
    int rc = 0;
    if (d->cfg->kind == SCHED_DEST_LOCAL)
        snprintf(d->address, sizeof d->address, "local:%s", d->cfg->root);
    else
        snprintf(d->address, sizeof d->address, "%s:%u", d->cfg->host,
                 (unsigned)d->cfg->port);
    if (d->cfg->kind == SCHED_DEST_LOCAL) {
        wc.pack_level = -1;
        if (!d->star && (rc = local_star(d)) != 0)
            return rc;
        if ((rc = local_socket(d, &wc.fd)) != 0)
            return rc;
    }
    rc = wire_client_new(sched_base(d->s), &wc, &d->client);
    if (rc != 0 && wc.fd >= 0 && d->cfg->kind == SCHED_DEST_LOCAL)
        close(wc.fd);
    return rc;
}

void
sched_dest_close(struct sched_dest *d)
{
    d->ready = false; /* callbacks fired by the free send nothing */
    drop_client(d);
    star_free(d->star);
    d->star = NULL;
    struct sched_ref r;
    while (sched_refq_pop(&d->haveq, &r))
        sched_batch_unref(d->s, r.b);
    while (sched_refq_pop(&d->putq, &r))
        sched_batch_unref(d->s, r.b);
    sched_refq_release(&d->haveq);
    sched_refq_release(&d->putq);
    inflight_release(d);
    sched_listing_free(d->listing);
    d->listing = NULL;
}
