/*
 * sched.c - the scheduler's main loop: walk the sources, hand files to the
 * readers, route their chunk batches to every destination, decide when a
 * file is done, retried (penalty box) or dead-lettered (DLQ), and end the
 * job once every file has reached a final state.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/rand.h>

#include "orbit/backpressure.h"
#include "orbit/bulletin.h"
#include "orbit/metrics.h"
#include "orbit/breaker.h"
#include "orbit/chunk_codec.h"
#include "orbit/chunker.h"
#include "orbit/error.h"
#include "orbit/journal.h"
#include "orbit/orbit_clock.h"
#include "orbit/penalty_box.h"
#include "orbit/prio.h"
#include "orbit/walker.h"
#include "orbit/wire_client.h"
#include "sched_internal.h"
#include "sched_walk.h"

#define MAX_ACTIVE       512 /* files being read, sent or committed */
#define WINDOW           256 /* walked files the prioritizers choose from */
#define WALK_PER_PUMP    512 /* entries walked per loop pass */
#define TICK_MS          50
#define PROGRESS_MS      250
#define HELD_LIMIT       ((size_t)16 << 20)
#define RECONNECT_MS     1000
#define JOURNAL_FLUSH_MS 1000
#define HEALTH_MS        5000 /* how often each star is asked HEALTH */
#define QUICK_RETRIES    2    /* unpenalized attempts after missing chunks */
#define OFFERS_WINDOW    1024 /* answers to offers weighed for whole reads */
#define OFFERS_SLACK     16   /* refusals over kept ones still read whole */

struct sched {
    struct sched_config cfg;
    struct event_base *base;
    struct event *wake_ev;
    struct event *tick_ev;
    struct event *pump_ev;
    struct sched_readers rd;
    bool readers_started;
    struct sched_dest dests[SCHED_MAX_DESTS];
    unsigned ndests;
    struct penalty_box *pb;
    struct dlq *dlq;
    struct sched_stats st;
    struct sched_walk walk;
    size_t inflight; /* files alive: in the window, active or retrying */
    size_t active;   /* files started and not yet final */
    struct prio_chain *prio;
    struct prio_window *window;   /* NULL: walk order */
    struct sched_file *live;      /* every file between walk and final state */
    struct sched_file *graveyard; /* finished, freed at the next pass */
    bool tearing_down;
    struct sched_file *retry_head;
    size_t nretry;
    unsigned ready_count;
    unsigned lists_pending;
    bool walking;
    /* Directories sent, committed again at the end: writing their
     * entries changed their mtimes. A temporary file keeps memory flat. */
    FILE *dirlog;
    bool replaying;
    bool dirs_replayed;
    bool deleting;
    size_t deletes_pending;
    volatile int canceled;
    int fatal;
    char fatal_msg[512];
    uint64_t last_progress_ms;
    uint64_t last_flush_ms;
    struct metrics_counter *m_sent, *m_dedup, *m_files, *m_dead, *m_retries;
    struct metrics_gauge *m_active;
    /* Recent answers to offers by digest (halved past OFFERS_WINDOW):
     * files are read whole for an offer only while most are kept. */
    uint32_t offers_kept, offers_refused;
    /* --bwlimit token bucket */
    double bw_tokens;
    uint64_t bw_last_ms;
};

static uint64_t
now_ms(void)
{
    return orbit_clock_monotonic_ms(NULL);
}

struct event_base *
sched_base(struct sched *s)
{
    return s->base;
}

const char *
sched_job_id(struct sched *s)
{
    return s->cfg.job_id ? s->cfg.job_id : "";
}

void
sched_config_init(struct sched_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->compress_level = -1;
    cfg->jobs = 2;
    cfg->retries = 5;
    cfg->reconnect_wait_ms = 20000;
}

/* The job cannot go on: remember why (the first reason wins) and stop. */
static void
set_fatal(struct sched *s, int err, const char *what, const char *detail)
{
    if (s->fatal != 0)
        return;
    s->fatal = err;
    if (snprintf(s->fatal_msg, sizeof s->fatal_msg, "%s%s%s", what,
                 detail[0] ? ": " : "", detail) < 0)
        s->fatal_msg[0] = '\0';
    event_base_loopbreak(s->base);
}

/* ---- accounting callbacks from sched_dest.c --------------------------------
 */

void
sched_bulletin(struct sched *s, const struct sched_dest *d, int severity,
               const char *category, const char *message)
{
    if (!s->cfg.bulletins)
        return;
    struct bulletin_post p = {
        .severity = severity >= 2   ? BULLETIN_ERROR
                    : severity == 1 ? BULLETIN_WARNING
                                    : BULLETIN_INFO,
        .source = d ? BULLETIN_SOURCE_STAR : BULLETIN_SOURCE_JOB,
        .source_name = d ? d->cfg->name : sched_job_id(s),
        .category = category,
        .job_id = sched_job_id(s),
        .message = message,
    };
    bulletin_post(s->cfg.bulletins, &p, NULL);
}

static void
count(struct metrics_counter *c, uint64_t n)
{
    if (c)
        metrics_counter_add(c, n);
}

void
sched_count_sent(struct sched *s, uint64_t stored, uint64_t raw)
{
    count(s->m_sent, stored);
    s->st.bytes_sent += stored;
    s->st.bytes_raw_sent += raw;
    s->st.chunks_sent++;
}

void
sched_count_dedup(struct sched *s, struct sched_file *f, uint64_t raw)
{
    s->st.bytes_dedup += raw;
    count(s->m_dedup, raw);
    s->st.chunks_dedup++;
    f->bytes_dedup += raw;
}

bool
sched_bw_take(struct sched *s, uint64_t bytes)
{
    if (s->cfg.bwlimit == 0)
        return true;
    uint64_t now = now_ms();
    double rate = (double)s->cfg.bwlimit;
    s->bw_tokens += rate * (double)(now - s->bw_last_ms) / 1000.0;
    s->bw_last_ms = now;
    /* A burst of at most a fifth of a second, but room for one chunk. */
    double cap = rate / 5.0 > (double)bytes ? rate / 5.0 : (double)bytes;
    if (s->bw_tokens > cap)
        s->bw_tokens = cap;
    if (s->bw_tokens < (double)bytes)
        return false;
    s->bw_tokens -= (double)bytes;
    return true;
}

void
sched_wake(struct sched *s)
{
    event_active(s->pump_ev, EV_TIMEOUT, 0);
}

/* ---- files
 * -------------------------------------------------------------------- */

static void
file_free(struct sched_file *f)
{
    if (!f)
        return;
    for (unsigned i = 0; i < SCHED_MAX_DESTS; i++)
        free(f->fail_msg[i]);
    free(f->rel);
    free(f->src_path);
    free(f->target);
    free(f->refs);
    free(f);
}

static void
emit(struct sched *s, enum sched_file_outcome o, const struct sched_file *f,
     const struct sched_dest *d, int err, const char *msg,
     enum dlq_reason reason)
{
    if (!s->cfg.on_file)
        return;
    struct sched_file_event ev = {
        .outcome = o,
        .path = f->rel,
        .dest = d ? d->cfg->name : NULL,
        .size = f->size,
        .bytes_sent = f->bytes_sent,
        .bytes_dedup = f->bytes_dedup,
        .error = err,
        .message = msg,
        .reason = reason,
    };
    s->cfg.on_file(s->cfg.arg, &ev);
}

void
sched_file_fail(struct sched *s, struct sched_file *f, unsigned d, int err,
                const char *msg)
{
    (void)s;
    uint32_t bit = 1u << d;
    if (f->failed_mask & bit)
        return;
    f->failed_mask |= bit;
    f->fail_err[d] = err;
    free(f->fail_msg[d]);
    f->fail_msg[d] = strdup(msg ? msg : orbit_strerror(err));
}

static enum dlq_reason
reason_for(const struct sched_file *f, int err, bool exhausted)
{
    if (exhausted)
        return DLQ_RETRIES_EXHAUSTED;
    if (f->read_err != 0) {
        if (err == ORBIT_ENOENT || err == ORBIT_ENOTDIR)
            return DLQ_SOURCE_MISSING;
        return DLQ_PERMANENT_ERROR;
    }
    switch (err) {
    case ORBIT_ENOSPC:
        return DLQ_DESTINATION_FULL;
    case ORBIT_ECORRUPT:
        return DLQ_CHECKSUM_MISMATCH;
    case ORBIT_EPATH:
    case ORBIT_EPERM:
        return DLQ_PERMANENT_ERROR;
    default:
        return DLQ_DESTINATION_ERROR;
    }
}

static void
dead_letter(struct sched *s, struct sched_file *f, unsigned d,
            enum dlq_reason reason, uint32_t attempts)
{
    char dpath[WIRE_MAX_PATH + 1];
    if (sched_dest_path(&s->dests[d], f->rel, dpath) != 0)
        snprintf(dpath, sizeof dpath, "%s", f->rel);
    struct dlq_failure fl = {
        .key = f->rel,
        .job_id = sched_job_id(s),
        .reason = reason,
        .last_error = f->fail_msg[d] ? f->fail_msg[d] : "",
        .error_code = f->fail_err[d],
        .attempts = attempts,
        .source_path = f->src_path,
        .dest_path = dpath,
    };
    dlq_push(s->dlq, &fl);
    sched_walk_mark_dead(&s->walk, &fl);
    s->st.files_failed++;
    emit(s, SCHED_FILE_DEAD, f, &s->dests[d], f->fail_err[d], f->fail_msg[d],
         reason);
}

static void
file_reset_for_retry(struct sched_file *f, uint32_t mask)
{
    f->dest_mask = mask;
    f->failed_mask = 0;
    f->missing_mask = 0;
    f->commit_mask = 0;
    f->probing = 0; /* parked batches went with the last attempt */
    for (unsigned i = 0; i < SCHED_MAX_DESTS; i++) {
        f->pending[i] = 0;
        f->on_wire[i] = 0;
        f->fail_err[i] = 0;
        free(f->fail_msg[i]);
        f->fail_msg[i] = NULL;
    }
    f->nrefs = 0;
    f->read_done = false;
    f->read_err = 0;
    f->bytes_sent = 0;
    f->bytes_dedup = 0;
}

static void
live_link(struct sched *s, struct sched_file *f)
{
    f->live_prev = NULL;
    f->live_next = s->live;
    if (s->live)
        s->live->live_prev = f;
    s->live = f;
    s->inflight++;
}

static void
live_unlink(struct sched *s, struct sched_file *f)
{
    if (f->live_prev)
        f->live_prev->live_next = f->live_next;
    else
        s->live = f->live_next;
    if (f->live_next)
        f->live_next->live_prev = f->live_prev;
    s->inflight--;
}

struct dirlog_rec {
    uint32_t mode;
    uint32_t mtime_nsec;
    int64_t mtime_sec;
    uint32_t mask;
    uint32_t len;
};

static void
dirlog_add(struct sched *s, const struct sched_file *f, uint32_t mask)
{
    if (!s->dirlog && !(s->dirlog = tmpfile()))
        return; /* only the directory's mtime is at stake */
    struct dirlog_rec r = {f->mode, f->mtime_nsec, f->mtime_sec, mask,
                           (uint32_t)strlen(f->rel)};
    if (fwrite(&r, sizeof r, 1, s->dirlog) != 1 ||
        fwrite(f->rel, 1, r.len, s->dirlog) != r.len) {
        fclose(s->dirlog);
        s->dirlog = NULL;
    }
}

/* The next directory to set again, or NULL at the end. */
/* Every destination of this attempt has an outcome: account for it. */
static void
file_final(struct sched *s, struct sched_file *f)
{
    uint32_t retry = 0;
    s->active--;
    /* Every failure a star naming chunks it lacks (their index entries
     * were stale, and are dropped now): the next attempt's HAVE finds them
     * missing and sends them, so it starts at once, unpenalized, a few
     * times per file before the usual backoff takes over. */
    if (f->failed_mask && (f->failed_mask & ~f->missing_mask) == 0 &&
        f->quick_retries < QUICK_RETRIES) {
        f->quick_retries++;
        retry = f->failed_mask;
    } else if (f->failed_mask) {
        struct penalty_info info = {0};
        int prc = penalty_box_penalize(s->pb, f->rel, &info);
        for (unsigned d = 0; d < s->ndests; d++) {
            if (!(f->failed_mask & (1u << d)))
                continue;
            int err = f->fail_err[d];
            bool can = orbit_err_retryable(err) && prc == 0 && !info.exhausted;
            if (can) {
                retry |= 1u << d;
                continue;
            }
            bool exhausted = orbit_err_retryable(err);
            dead_letter(s, f, d, reason_for(f, err, exhausted), info.penalties);
        }
    }
    if (retry) {
        s->st.retries++;
        count(s->m_retries, 1);
        unsigned d0 = (unsigned)__builtin_ctz(retry);
        emit(s, SCHED_FILE_RETRY, f, &s->dests[d0], f->fail_err[d0],
             f->fail_msg[d0], DLQ_RETRIES_EXHAUSTED);
        file_reset_for_retry(f, retry);
        f->next = s->retry_head;
        s->retry_head = f;
        s->nretry++;
        return;
    }
    penalty_box_clear(s->pb, f->rel);
    if (f->ftype == WIRE_FT_DIRECTORY && !f->fixup && f->done_mask)
        dirlog_add(s, f, f->done_mask);
    if (f->failed_mask == 0 && !f->fixup) {
        s->st.files_done++;
        count(s->m_files, 1);
        s->st.bytes_done += f->ftype == WIRE_FT_REGULAR ? f->size : 0;
        sched_walk_mark_done(&s->walk, f);
        emit(s, SCHED_FILE_DONE, f, NULL, 0, NULL, DLQ_RETRIES_EXHAUSTED);
    }
    live_unlink(s, f);
    /* Freed on the next loop pass: callers up the stack still hold f. */
    f->finished = true;
    f->next = s->graveyard;
    s->graveyard = f;
    sched_wake(s);
}

static void
bury(struct sched *s)
{
    while (s->graveyard) {
        struct sched_file *f = s->graveyard;
        s->graveyard = f->next;
        file_free(f);
    }
}

static void
file_maybe_final(struct sched *s, struct sched_file *f)
{
    if (f->finished || !f->read_done || f->batches_open > 0)
        return;
    for (unsigned d = 0; d < s->ndests; d++) {
        uint32_t bit = 1u << d;
        if (!(f->dest_mask & bit))
            continue;
        if (f->pending[d] > 0)
            return;
        if (!((f->done_mask | f->failed_mask) & bit))
            return;
    }
    file_final(s, f);
}

void
sched_file_progress(struct sched *s, struct sched_file *f, unsigned d)
{
    uint32_t bit = 1u << d;
    if (s->tearing_down || f->finished)
        return;
    if (!f->read_done || !(f->dest_mask & bit))
        return;
    if (!((f->failed_mask | f->done_mask) & bit)) {
        if (!(f->commit_mask & bit)) {
            /* Once all that is open for d is PUTs on the wire, the manifest
             * follows them at once: the star takes a COMMIT in the sync
             * round of the PUTs before it, so a file costs one round, not
             * two. It is done when every reply is in. */
            if (f->pending[d] > f->on_wire[d])
                return;
            f->commit_mask |= bit;
            struct sched_dest *dd = &s->dests[d];
            int rc = dd->client ? sched_dest_commit(dd, f) : ORBIT_ECLOSED;
            if (rc == 0)
                return; /* on_commit calls back here */
            char msg[256];
            snprintf(msg, sizeof msg, "%s: cannot commit: %s", dd->cfg->name,
                     orbit_strerror(rc));
            sched_file_fail(s, f, d, rc, msg);
        } else if (f->pending[d] > 0) {
            return;
        } else {
            f->done_mask |= bit;
        }
    }
    file_maybe_final(s, f);
}

void
sched_batch_unref(struct sched *s, struct sched_batch *b)
{
    if (--b->refs > 0)
        return;
    struct sched_file *f = b->file;
    sched_batch_free(&s->rd, b);
    f->batches_open--;
    if (s->tearing_down)
        return;
    for (unsigned d = 0; d < s->ndests; d++)
        if (f->dest_mask & (1u << d))
            sched_file_progress(s, f, d);
}

static int
refs_append(struct sched_file *f, const struct sched_batch *b)
{
    if (f->nrefs + b->n > f->caprefs) {
        uint32_t ncap = f->caprefs ? f->caprefs : 64;
        while (ncap < f->nrefs + b->n)
            ncap *= 2;
        struct wire_chunk_ref *r = realloc(f->refs, ncap * sizeof *r);
        if (!r)
            return ORBIT_ENOMEM;
        f->refs = r;
        f->caprefs = ncap;
    }
    for (uint32_t i = 0; i < b->n; i++) {
        memcpy(f->refs[f->nrefs + i].id, b->chunks[i].id, WIRE_ID_LEN);
        f->refs[f->nrefs + i].raw_len = b->chunks[i].len;
    }
    f->nrefs += b->n;
    return 0;
}

/* Drop the batches parked for probes (every probe answered). */
static void
release_parked(struct sched *s, struct sched_file *f)
{
    struct sched_batch *b = f->parked;
    f->parked = NULL;
    f->parked_bytes = 0;
    while (b) {
        struct sched_batch *next = b->park_next;
        sched_batch_unref(s, b);
        b = next;
    }
}

/* A batch read whole gets its chunks, and the file's manifest with them. */
static int
cut_batch(struct sched *s, struct sched_batch *b)
{
    if (!b->uncut)
        return 0;
    int rc = sched_batch_cut(&s->rd, b);
    if (rc == 0)
        s->st.files_cut_late++;
    return rc == 0 ? refs_append(b->file, b) : rc;
}

/* Destination d does not hold the file: its chunks go the usual way. */
static void
unpark_to(struct sched *s, struct sched_file *f, unsigned d)
{
    f->probe_mask &= ~(1u << d);
    if (f->failed_mask & (1u << d))
        return;
    for (struct sched_batch *b = f->parked; b; b = b->park_next) {
        int rc = cut_batch(s, b);
        if (rc != 0) {
            sched_file_fail(s, f, d, rc, "cannot cut the file into chunks");
            return;
        }
    }
    for (struct sched_batch *b = f->parked; b; b = b->park_next)
        sched_dest_enqueue(&s->dests[d], b);
    sched_dest_flush(&s->dests[d]);
}

static void
on_batch(struct sched *s, struct sched_batch *b)
{
    struct sched_file *f = b->file;
    f->batches_open++;
    s->st.bytes_read += b->bytes;
    b->refs = 1; /* held during routing */
    if (refs_append(f, b) != 0) {
        for (unsigned d = 0; d < s->ndests; d++)
            if (f->dest_mask & (1u << d))
                sched_file_fail(s, f, d, ORBIT_ENOMEM, "out of memory");
    }
    uint32_t park = f->dest_mask & f->probe_mask & ~f->failed_mask;
    if (park && f->parked_bytes + b->bytes > SCHED_PROBE_MAX) {
        /* grown past the bound since the walk: parking more could fill
         * the held-data limit with batches only this read would free */
        for (unsigned d = 0; d < s->ndests; d++)
            if (park & (1u << d))
                unpark_to(s, f, d);
        release_parked(s, f);
        park = 0;
    }
    uint32_t direct = f->dest_mask & ~f->failed_mask & ~park;
    int rc = direct ? cut_batch(s, b) : 0;
    for (unsigned d = 0; d < s->ndests; d++) {
        uint32_t bit = 1u << d;
        if (!(direct & bit))
            continue;
        if (rc != 0)
            sched_file_fail(s, f, d, rc, "cannot cut the file into chunks");
        else
            sched_dest_enqueue(&s->dests[d], b);
    }
    if (park) { /* kept until every probe is answered, in file order */
        struct sched_batch **tail = &f->parked;
        while (*tail)
            tail = &(*tail)->park_next;
        b->park_next = NULL;
        *tail = b;
        b->refs++;
        f->parked_bytes += b->bytes;
    }
    sched_batch_unref(s, b);
}

/* The file is read: offer it by digest where a probe was planned. */
static void
start_probes(struct sched *s, struct sched_file *f)
{
    uint32_t probe = f->dest_mask & f->probe_mask & ~f->failed_mask;
    for (unsigned d = 0; d < s->ndests; d++) {
        uint32_t bit = 1u << d;
        if (!(probe & bit))
            continue;
        struct sched_dest *dd = &s->dests[d];
        f->pending[d]++;
        f->probing |= bit;
        if (dd->client && sched_dest_probe(dd, f) == 0)
            continue;
        f->pending[d]--; /* no room or no session: send it all */
        f->probing &= ~bit;
        unpark_to(s, f, d);
    }
}

void
sched_probe_answered(struct sched *s, struct sched_file *f, unsigned d, int err,
                     const char *msg)
{
    uint32_t bit = 1u << d;
    f->pending[d]--;
    f->probing &= ~bit;
    f->batches_open++; /* hold f while it may end */
    if (err == 0 || err == ORBIT_ENOENT) {
        if (err == 0)
            s->offers_kept++;
        else
            s->offers_refused++;
        if (s->offers_kept + s->offers_refused > OFFERS_WINDOW) {
            s->offers_kept /= 2;
            s->offers_refused /= 2;
        }
    }
    if (err == 0) {
        f->commit_mask |= bit; /* committed in place */
        s->st.files_kept++;
        sched_count_dedup(s, f, f->size);
    } else if (s->tearing_down) {
        /* cancelled with the job: nothing more to send */
    } else if (err == ORBIT_ENOENT) {
        unpark_to(s, f, d);
    } else {
        sched_file_fail(s, f, d, err, msg);
    }
    if (!f->probing)
        release_parked(s, f);
    f->batches_open--;
    sched_file_progress(s, f, d);
    file_maybe_final(s, f);
}

static void
on_read_end(struct sched *s, struct sched_rmsg *m)
{
    struct sched_file *f = m->file;
    f->read_done = true;
    f->read_err = m->err;
    if (m->err == 0) {
        memcpy(f->digest, m->digest, sizeof f->digest);
        f->size = m->size;
        f->mtime_sec = m->mtime_sec;
        f->mtime_nsec = m->mtime_nsec;
    } else {
        char msg[512];
        snprintf(msg, sizeof msg, "source %s: %s", f->src_path, m->msg);
        for (unsigned d = 0; d < s->ndests; d++)
            if (f->dest_mask & (1u << d))
                sched_file_fail(s, f, d, m->err, msg);
    }
    /* Hold f: sched_file_progress may end (and free) it. */
    f->batches_open++;
    if (m->err == 0)
        start_probes(s, f);
    if (!f->probing)
        release_parked(s, f);
    for (unsigned d = 0; d < s->ndests; d++)
        if (f->dest_mask & (1u << d))
            sched_file_progress(s, f, d);
    f->batches_open--;
    file_maybe_final(s, f);
}

static void
on_wake(evutil_socket_t fd, short what, void *arg)
{
    struct sched *s = arg;
    (void)fd;
    (void)what;
    struct sched_rmsg *m = sched_readers_take(&s->rd);
    while (m) {
        struct sched_rmsg *next = m->next;
        if (m->kind == SCHED_RMSG_BATCH)
            on_batch(s, m->batch);
        else
            on_read_end(s, m);
        free(m);
        m = next;
    }
    for (unsigned d = 0; d < s->ndests; d++)
        sched_dest_flush(&s->dests[d]);
    sched_wake(s);
}

/* Start (or restart) a file: regular files go to the readers, the rest
 * commit at once. */
static void
file_start(struct sched *s, struct sched_file *f)
{
    s->active++;
    if (!f->fixup)
        emit(s, SCHED_FILE_STARTED, f, NULL, 0, NULL, DLQ_RETRIES_EXHAUSTED);
    for (unsigned d = 0; d < s->ndests; d++) {
        uint32_t bit = 1u << d;
        if ((f->replace_mask & f->dest_mask & bit) &&
            sched_dest_replace(&s->dests[d], f) != 0)
            sched_file_fail(s, f, d, ORBIT_EAGAIN,
                            "cannot remove what stands in the way");
    }
    if (f->ftype == WIRE_FT_REGULAR) {
        /* Offered by digest everywhere: its chunks may never be needed.
         * Not while most offers are turned down (same-size files that
         * changed, with --checksum): cutting them all on the loop would
         * take that work from the readers' threads. */
        uint32_t want = f->dest_mask & ~f->failed_mask;
        f->read_whole = want != 0 && (want & ~f->probe_mask) == 0 &&
                        s->offers_refused <= s->offers_kept + OFFERS_SLACK;
        sched_readers_submit(&s->rd, f);
        return;
    }
    f->read_done = true;
    for (unsigned d = 0; d < s->ndests; d++)
        if (f->dest_mask & (1u << d))
            sched_file_progress(s, f, d);
}

/* A file ready to start: through the prioritizers' window when there is
 * one, else at once. */
static void
file_ready(struct sched *s, struct sched_file *f)
{
    if (!s->window) {
        file_start(s, f);
        return;
    }
    struct prio_item it = {
        .path = f->rel,
        .size = f->size,
        .mtime_ns = f->mtime_sec * 1000000000LL + f->mtime_nsec,
        .retries = penalty_box_penalties(s->pb, f->rel),
        .data = f,
    };
    if (prio_window_push(s->window, &it) != 0)
        file_start(s, f); /* full: no worse than walk order */
}

static void
drain_window(struct sched *s)
{
    struct prio_item it;
    while (s->window && s->active < MAX_ACTIVE &&
           prio_window_pop(s->window, &it) == 0)
        file_start(s, it.data);
}

/* ---- walking
 * ------------------------------------------------------------------ */

static bool
listed_unchanged(struct sched *s, struct sched_dest *d, struct sched_file *f)
{
    char path[WIRE_MAX_PATH + 1];
    if (sched_dest_path(d, f->rel, path) != 0)
        return false;
    struct sched_listed le;
    if (!sched_listing_find(d->listing, path, &le))
        return false;
    const struct sched_listed *e = &le;
    sched_listing_mark_seen(d->listing, e->idx);
    if (e->ftype != f->ftype) {
        f->replace_mask |= 1u << d->idx;
        return false;
    }
    if (!s->cfg.sync_mode)
        return false;
    if (f->ftype == WIRE_FT_REGULAR && e->size == f->size && f->size > 0 &&
        f->size <= SCHED_PROBE_MAX)
        f->probe_mask |= 1u << d->idx;
    if (s->cfg.checksum)
        return false;
    if (f->ftype == WIRE_FT_DIRECTORY)
        return false;                /* cheap, and keeps modes right */
    if (f->ftype == WIRE_FT_SYMLINK) /* a link's size is its target's */
        return e->mtime_sec == f->mtime_sec && e->mtime_nsec == f->mtime_nsec;
    return e->size == f->size && e->mtime_sec == f->mtime_sec &&
           e->mtime_nsec == f->mtime_nsec;
}

static struct sched_file *
dirlog_next(struct sched *s)
{
    struct dirlog_rec r;
    struct sched_file *f = NULL;
    if (fread(&r, sizeof r, 1, s->dirlog) != 1 || r.len > WIRE_MAX_PATH ||
        !(f = calloc(1, sizeof *f)) || !(f->rel = malloc(r.len + 1)) ||
        fread(f->rel, 1, r.len, s->dirlog) != r.len) {
        file_free(f);
        return NULL;
    }
    f->rel[r.len] = '\0';
    if (!(f->src_path = strdup(f->rel))) {
        file_free(f);
        return NULL;
    }
    f->ftype = WIRE_FT_DIRECTORY;
    f->mode = r.mode;
    f->mtime_sec = r.mtime_sec;
    f->mtime_nsec = r.mtime_nsec;
    f->dest_mask = r.mask;
    f->fixup = true;
    return f;
}

static void
pump_dirlog(struct sched *s)
{
    while (s->replaying && s->active < MAX_ACTIVE) {
        struct sched_file *f = dirlog_next(s);
        if (!f) {
            s->replaying = false;
            return;
        }
        live_link(s, f);
        file_start(s, f);
    }
}

static void
walk_entry(struct sched *s, struct sched_file *f)
{
    s->st.files_seen++;
    if (f->ftype == WIRE_FT_REGULAR)
        s->st.bytes_total += f->size;
    uint32_t mask = 0;
    for (unsigned d = 0; d < s->ndests; d++)
        if (!listed_unchanged(s, &s->dests[d], f))
            mask |= 1u << d;
    /* Directories are always set (cheap, and their modes may have been
     * held open for a retry); files done in this job are not read again. */
    if (mask && f->ftype != WIRE_FT_DIRECTORY &&
        sched_walk_is_done(&s->walk, f))
        mask = 0;
    if (mask == 0 || s->cfg.dry_run) {
        if (mask == 0) {
            s->st.files_skipped++;
            s->st.bytes_done += f->ftype == WIRE_FT_REGULAR ? f->size : 0;
        }
        emit(s, mask == 0 ? SCHED_FILE_SKIPPED : SCHED_FILE_STARTED, f, NULL, 0,
             NULL, DLQ_RETRIES_EXHAUSTED);
        file_free(f);
        return;
    }
    f->dest_mask = mask;
    live_link(s, f);
    file_ready(s, f);
}

static void
walk_error(struct sched *s, struct sched_file *f, int err, const char *msg)
{
    /* An entry the walk could not read: a dead letter for every
     * destination, the walk goes on. */
    f->read_err = err;
    f->read_done = true;
    for (unsigned d = 0; d < s->ndests; d++) {
        sched_file_fail(s, f, d, err, msg);
        dead_letter(s, f, d, reason_for(f, err, false), 1);
    }
    file_free(f);
}

static void
pump_walk(struct sched *s)
{
    for (unsigned n = 0; s->walking && n < WALK_PER_PUMP; n++) {
        if (s->inflight >= MAX_ACTIVE + (s->window ? WINDOW : 0))
            return;
        struct sched_file *f = NULL;
        char msg[512];
        int rc = sched_walk_next(&s->walk, &f, msg, sizeof msg);
        if (rc == ORBIT_ENOENT) {
            s->walking = false;
            s->st.walk_done = true;
            return;
        }
        if (rc != 0 && !f) {
            set_fatal(s, rc, msg, "");
            return;
        }
        if (rc != 0)
            walk_error(s, f, rc, msg);
        else
            walk_entry(s, f);
    }
    if (s->walking)
        sched_wake(s); /* more next pass, after I/O callbacks ran */
}

/* ---- retries, deletions, the end
 * ----------------------------------------------- */

/* Every destination f waits for is reconnecting, and not for long: hold
 * the file instead of spending its retries on a star that is coming back.
 * After reconnect_wait_ms the retries run (and end in dead letters). */
static bool
dests_coming_back(const struct sched *s, const struct sched_file *f,
                  uint64_t now)
{
    for (unsigned d = 0; d < s->ndests; d++) {
        const struct sched_dest *dd = &s->dests[d];
        if (!(f->dest_mask & (1u << d)))
            continue;
        if (!sched_dest_down(dd) || dd->down_since_ms == 0 ||
            now - dd->down_since_ms >= s->cfg.reconnect_wait_ms)
            return false;
    }
    return true;
}

static void
pump_retries(struct sched *s)
{
    struct sched_file **pp = &s->retry_head;
    uint64_t now = now_ms();
    while (*pp) {
        struct sched_file *f = *pp;
        if (!penalty_box_is_eligible(s->pb, f->rel, now) ||
            dests_coming_back(s, f, now)) {
            pp = &f->next;
            continue;
        }
        *pp = f->next;
        f->next = NULL;
        s->nretry--;
        file_ready(s, f);
    }
}

static bool
ancestor_unseen(struct sched_dest *d, const char *path)
{
    char buf[WIRE_MAX_PATH + 1];
    snprintf(buf, sizeof buf, "%s", path);
    char *slash;
    while ((slash = strrchr(buf, '/')) != NULL) {
        *slash = '\0';
        struct sched_listed e;
        if (sched_listing_find(d->listing, buf, &e) &&
            !sched_listing_seen(d->listing, e.idx))
            return true;
    }
    return false;
}

void
sched_delete_done(struct sched *s, int status)
{
    (void)status;
    if (s->deletes_pending > 0)
        s->deletes_pending--;
    if (status == 0)
        s->st.deleted++;
    sched_wake(s);
}

/* Whether a destination entry the source lacks is outside what this sync
 * covers: not under the source's name, or filtered out by --exclude (or
 * not matched by --include). rsync keeps such entries too. */
static bool
delete_protected(const struct sched *s, const struct sched_dest *d,
                 const struct sched_listed *e)
{
    const char *rel = e->path;
    const char *pre = d->cfg->prefix ? d->cfg->prefix : "";
    const char *name = s->cfg.sources[0].dest_name;
    const char *const skip[] = {pre, name};
    for (size_t i = 0; i < 2; i++) {
        size_t n = strlen(skip[i]);
        if (n == 0)
            continue;
        if (strncmp(rel, skip[i], n) != 0 || rel[n] != '/')
            return true;
        rel += n + 1;
    }
    char buf[WIRE_MAX_PATH + 1];
    snprintf(buf, sizeof buf, "%s", rel);
    bool is_dir = e->ftype == WIRE_FT_DIRECTORY;
    for (;;) { /* the entry, then each of its parents */
        for (size_t i = 0; i < s->cfg.nexcludes; i++)
            if (walker_rule_matches(s->cfg.excludes[i], buf, is_dir))
                return true;
        char *slash = strrchr(buf, '/');
        if (!slash)
            break;
        *slash = '\0';
        is_dir = true;
    }
    if (s->cfg.nincludes == 0 || e->ftype == WIRE_FT_DIRECTORY)
        return false;
    for (size_t i = 0; i < s->cfg.nincludes; i++)
        if (walker_rule_matches(s->cfg.includes[i], rel, false))
            return false;
    return true;
}

static void
start_deletes(struct sched *s)
{
    s->deleting = true;
    for (unsigned di = 0; di < s->ndests; di++) {
        struct sched_dest *d = &s->dests[di];
        size_t n = d->listing ? sched_listing_count(d->listing) : 0;
        for (size_t i = 0; i < n; i++) {
            struct sched_listed e;
            sched_listing_get(d->listing, i, &e);
            if (sched_listing_seen(d->listing, i) ||
                ancestor_unseen(d, e.path) || delete_protected(s, d, &e))
                continue;
            if (s->cfg.on_file) {
                struct sched_file_event ev = {
                    .outcome = SCHED_FILE_DELETED,
                    .path = e.path,
                    .dest = d->cfg->name,
                };
                s->cfg.on_file(s->cfg.arg, &ev);
            }
            if (s->cfg.dry_run || !d->client)
                continue;
            if (sched_dest_delete(d, e.path) == 0)
                s->deletes_pending++;
        }
    }
}

static void
maybe_finish(struct sched *s)
{
    if (s->walking || s->replaying || s->inflight > 0 || s->nretry > 0 ||
        s->lists_pending > 0 || s->ready_count < s->ndests)
        return;
    if (s->cfg.sync_mode && s->cfg.delete_extraneous && !s->deleting)
        start_deletes(s);
    if (s->deletes_pending > 0)
        return;
    if (s->dirlog && !s->dirs_replayed) {
        /* Last, once nothing else changes them: directory times. */
        s->dirs_replayed = true;
        s->replaying = true;
        rewind(s->dirlog);
        sched_wake(s);
        return;
    }
    event_base_loopexit(s->base, NULL);
}

static void
report_progress(struct sched *s, bool force)
{
    uint64_t now = now_ms();
    if (!s->cfg.on_progress ||
        (!force && now - s->last_progress_ms < PROGRESS_MS))
        return;
    s->last_progress_ms = now;
    s->cfg.on_progress(s->cfg.arg, &s->st);
}

static void
on_pump(evutil_socket_t fd, short what, void *arg)
{
    struct sched *s = arg;
    (void)fd;
    (void)what;
    bury(s);
    if (s->canceled) {
        set_fatal(s, ORBIT_ECANCELED, "canceled", "");
        return;
    }
    pump_walk(s);
    drain_window(s);
    pump_dirlog(s);
    maybe_finish(s);
}

/* The job's counters in the journal, so that `orbit status` and a control
 * plane in another process see a running job move. */
static void
journal_progress(struct sched *s)
{
    struct journal *j = s->cfg.journal;
    if (!j || !s->cfg.job_id)
        return;
    struct journal_counters c = {
        .files_total = s->st.files_seen,
        .files_done = s->st.files_done + s->st.files_skipped,
        .bytes_total = s->st.bytes_total,
        .bytes_done = s->st.bytes_done,
        .bytes_sent = s->st.bytes_sent,
        .bytes_dedup = s->st.bytes_dedup,
    };
    sched_walk_flush(&s->walk); /* a batch may hold the write transaction */
    journal_job_set_counters(j, s->cfg.job_id, &c);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct sched *s = arg;
    (void)fd;
    (void)what;
    pump_retries(s);
    for (unsigned d = 0; d < s->ndests; d++)
        sched_dest_pump(&s->dests[d]);
    uint64_t now = now_ms();
    for (unsigned d = 0; d < s->ndests; d++) {
        if (now - s->dests[d].last_health_ms >= HEALTH_MS) {
            s->dests[d].last_health_ms = now;
            sched_dest_health(&s->dests[d]);
        }
    }
    if (s->m_active)
        metrics_gauge_set_i64(s->m_active, (int64_t)s->active);
    if (now - s->last_flush_ms >= JOURNAL_FLUSH_MS) {
        s->last_flush_ms = now;
        journal_progress(s);
        sched_walk_flush(&s->walk);
    }
    report_progress(s, false);
    on_pump(-1, 0, s);
}

/* ---- destinations
 * ----------------------------------------------------------------- */

static void
start_walk(struct sched *s)
{
    s->walking = true;
    sched_wake(s);
}

void
sched_dest_listed_done(struct sched *s, struct sched_dest *d, int err)
{
    if (err != 0) {
        char what[512];
        snprintf(what, sizeof what, "cannot list %s", d->cfg->name);
        set_fatal(s, err, what, orbit_strerror(err));
        return;
    }
    if (--s->lists_pending == 0)
        start_walk(s);
}

static void
on_reconnect(evutil_socket_t fd, short what, void *arg)
{
    struct sched_dest *d = arg;
    (void)fd;
    (void)what;
    if (d->client)
        return;
    struct timeval tv = {RECONNECT_MS / 1000, (RECONNECT_MS % 1000) * 1000};
    if (!breaker_allow(d->breaker, now_ms()) || sched_dest_open(d) != 0)
        event_add(d->reconnect_ev, &tv);
}

void
sched_dest_ready(struct sched *s, struct sched_dest *d, int status)
{
    if (status == 0) {
        d->down_since_ms = 0;
        breaker_record_success(d->breaker, now_ms());
        if (d->was_ready)
            return;
        d->was_ready = true;
        if (++s->ready_count < s->ndests)
            return;
        if (s->cfg.sync_mode) {
            for (unsigned i = 0; i < s->ndests; i++) {
                s->lists_pending++;
                int rc = sched_dest_list(&s->dests[i]);
                if (rc != 0) {
                    sched_dest_listed_done(s, &s->dests[i], rc);
                    return;
                }
            }
        } else {
            start_walk(s);
        }
        return;
    }
    enum breaker_state before = breaker_state(d->breaker);
    breaker_record_failure(d->breaker, now_ms());
    if (d->was_ready && d->down_since_ms == 0)
        d->down_since_ms = now_ms();
    if (d->was_ready) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s: connection lost (%s); reconnecting",
                 d->cfg->name, orbit_strerror(status));
        sched_bulletin(s, d, 1, "connection", msg);
    }
    if (before != BREAKER_OPEN && breaker_state(d->breaker) == BREAKER_OPEN) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s: circuit opened after %u failures",
                 d->cfg->name, breaker_failures(d->breaker));
        sched_bulletin(s, d, 2, "circuit_open", msg);
    }
    /* Before the first session: a refused connection or a wrong token is
     * final, a session lost during its handshake is tried again. */
    bool transient = status == ORBIT_ECLOSED || status == ORBIT_ETIMEDOUT ||
                     status == ORBIT_EPROTO;
    if (!d->was_ready && (!transient || ++d->handshakes_failed > 3)) {
        char what[512];
        snprintf(what, sizeof what, "cannot reach %s", d->cfg->name);
        set_fatal(s, status, what, orbit_strerror(status));
        return;
    }
    if (d->client) {
        wire_client_free(d->client);
        d->client = NULL;
    }
    struct timeval tv = {RECONNECT_MS / 1000, (RECONNECT_MS % 1000) * 1000};
    event_add(d->reconnect_ev, &tv);
}

static int
dest_init(struct sched *s, unsigned i)
{
    struct sched_dest *d = &s->dests[i];
    d->s = s;
    d->idx = i;
    d->cfg = &s->cfg.dests[i];
    int level = s->cfg.compress_level;
    if (level < 0) {
        /* auto: decided per session (raw to a star on this host) */
        d->compress_auto = d->cfg->kind == SCHED_DEST_STAR;
        level = d->compress_auto ? 3 : 0;
    }
    d->compress = level > 0;
    struct backpressure_config bc;
    backpressure_config_default(&bc);
    bc.max_bytes = 8u << 20; /* chunk bytes in flight to one star */
    int rc = backpressure_guard_new(&bc, &d->guard);
    struct breaker_config kc;
    breaker_config_default(&kc);
    if (rc == 0)
        rc = breaker_new(&kc, &d->breaker);
    if (rc == 0 && d->compress) {
        rc = chunk_codec_new(level, &d->codec);
        d->zcap = chunk_codec_bound(CHUNKER_DEFAULT_MAX * 16);
        d->zbuf = malloc(d->zcap);
        if (rc == 0 && !d->zbuf)
            rc = ORBIT_ENOMEM;
    }
    d->reconnect_ev = evtimer_new(s->base, on_reconnect, d);
    if (rc == 0 && !d->reconnect_ev)
        rc = ORBIT_ENOMEM;
    if (rc == 0)
        rc = sched_dest_open(d);
    return rc;
}

static void
dest_release(struct sched_dest *d)
{
    if (!d->s)
        return;
    sched_dest_close(d);
    if (d->reconnect_ev)
        event_free(d->reconnect_ev);
    backpressure_guard_free(d->guard);
    breaker_free(d->breaker);
    chunk_codec_free(d->codec);
    free(d->zbuf);
}

/* ---- lifecycle
 * ----------------------------------------------------------------------- */

int
sched_new(const struct sched_config *cfg, struct sched **out)
{
    *out = NULL;
    if (!cfg || cfg->nsources == 0 || cfg->ndests == 0 ||
        cfg->ndests > SCHED_MAX_DESTS)
        return ORBIT_EINVAL;
    struct sched *s = calloc(1, sizeof *s);
    if (!s)
        return ORBIT_ENOMEM;
    s->cfg = *cfg;
    if (s->cfg.jobs == 0)
        s->cfg.jobs = 2;
    struct penalty_box_config pc;
    penalty_box_config_default(&pc);
    pc.max_penalties = cfg->retries;
    if (cfg->retry_initial_ms)
        pc.initial_delay_ms = cfg->retry_initial_ms;
    if (cfg->retry_max_ms)
        pc.max_delay_ms = cfg->retry_max_ms;
    if (pc.max_delay_ms < pc.initial_delay_ms)
        pc.max_delay_ms = pc.initial_delay_ms;
    struct dlq_config qc;
    dlq_config_default(&qc);
    qc.capacity = DLQ_CAPACITY_MAX;
    int rc = penalty_box_new(&pc, &s->pb);
    if (rc == 0)
        rc = dlq_new(&qc, &s->dlq);
    if (rc == 0 && cfg->prioritize && cfg->prioritize[0]) {
        rc = prio_chain_parse(cfg->prioritize, &s->prio);
        if (rc == 0)
            rc = prio_window_new(s->prio, WINDOW, &s->window);
    }
    if (rc != 0) {
        sched_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void
sched_free(struct sched *s)
{
    if (!s)
        return;
    penalty_box_free(s->pb);
    dlq_free(s->dlq);
    prio_window_free(s->window);
    prio_chain_free(s->prio);
    free(s);
}

void
sched_cancel(struct sched *s)
{
    s->canceled = 1;
    if (s->base)
        event_active(s->pump_ev, EV_TIMEOUT, 0);
}

void
sched_get_stats(const struct sched *s, struct sched_stats *out)
{
    *out = s->st;
    for (unsigned i = 0; i < s->ndests; i++) {
        uint64_t o = 0, in = 0;
        sched_dest_traffic(&s->dests[i], &o, &in);
        out->wire_out += o;
        out->wire_in += in;
    }
}

void
sched_journal_flush(struct sched *s)
{
    sched_walk_flush(&s->walk);
}

void
sched_star_each(struct sched *s,
                void (*each)(void *ctx, const struct sched_star_view *v),
                void *ctx)
{
    for (unsigned i = 0; i < s->ndests; i++) {
        const struct sched_dest *d = &s->dests[i];
        struct backpressure_stats bs = {0};
        if (d->guard)
            backpressure_stats(d->guard, &bs);
        struct sched_star_view v = {
            .name = d->cfg->name,
            .address = d->address,
            .state = d->ready       ? "ready"
                     : d->was_ready ? "reconnecting"
                                    : "connecting",
            .circuit = d->breaker ? breaker_state_str(breaker_state(d->breaker))
                                  : "closed",
            .advisories = d->advisories,
            .disk_total = d->disk_total,
            .disk_used = d->disk_used,
            .last_seen_ms = d->last_seen_ms,
            .inflight_objects = bs.objects,
            .inflight_bytes = bs.bytes,
        };
        each(ctx, &v);
    }
}

int
sched_dead_letters(struct sched *s, struct dlq_entry **out, size_t *n)
{
    return dlq_drain(s->dlq, out, n);
}

/* Handles made once; updates are then lock-free atomics. A registry that
 * refuses one (cardinality cap) only costs that metric. */
static void
metrics_setup(struct sched *s)
{
    struct metrics_registry *m = s->cfg.metrics;
    if (!m)
        return;
    metrics_counter_get(m, "orbit_bytes_sent_total",
                        "Stored chunk bytes sent to stars", NULL, 0,
                        &s->m_sent);
    metrics_counter_get(m, "orbit_bytes_deduplicated_total",
                        "Chunk bytes a star already held", NULL, 0,
                        &s->m_dedup);
    metrics_counter_get(m, "orbit_files_completed_total",
                        "Files committed on every destination", NULL, 0,
                        &s->m_files);
    metrics_counter_get(m, "orbit_dead_letters_total",
                        "Items given up on, by file and destination", NULL, 0,
                        &s->m_dead);
    metrics_counter_get(m, "orbit_retries_total",
                        "File attempts penalized and retried", NULL, 0,
                        &s->m_retries);
    metrics_gauge_get_i64(m, "orbit_files_active",
                          "Files being read, sent or committed", NULL, 0,
                          &s->m_active);
}

static int
loop_setup(struct sched *s)
{
    static const struct timeval tick = {0, TICK_MS * 1000};
    evthread_use_pthreads();
    s->base = event_base_new();
    if (!s->base)
        return ORBIT_ENOMEM;
    s->wake_ev = event_new(s->base, -1, 0, on_wake, s);
    s->pump_ev = event_new(s->base, -1, 0, on_pump, s);
    s->tick_ev = event_new(s->base, -1, EV_PERSIST, on_tick, s);
    if (!s->wake_ev || !s->pump_ev || !s->tick_ev)
        return ORBIT_ENOMEM;
    event_add(s->tick_ev, &tick);
    s->bw_last_ms = now_ms();
    size_t avg = s->cfg.chunk_avg ? s->cfg.chunk_avg : CHUNKER_DEFAULT_AVG;
    s->rd.chunk_avg = avg;
    s->rd.chunk_min = avg / 4;
    s->rd.chunk_max = avg * 4;
    s->rd.held_limit = HELD_LIMIT;
    int rc = sched_readers_start(&s->rd, s->cfg.jobs, s->wake_ev);
    s->readers_started = true;
    if (rc == 0)
        metrics_setup(s);
    return rc;
}

static void
loop_teardown(struct sched *s)
{
    s->tearing_down = true;
    if (s->readers_started)
        sched_readers_stop(&s->rd);
    for (unsigned i = 0; i < s->ndests; i++)
        dest_release(&s->dests[i]);
    if (s->readers_started)
        sched_readers_release(&s->rd);
    /* Retrying files stay on the live list too. */
    s->retry_head = NULL;
    while (s->live) {
        struct sched_file *f = s->live;
        live_unlink(s, f);
        file_free(f);
    }
    bury(s);
    sched_walk_release(&s->walk);
    if (s->dirlog)
        fclose(s->dirlog);
    s->dirlog = NULL;
    if (s->wake_ev)
        event_free(s->wake_ev);
    if (s->pump_ev)
        event_free(s->pump_ev);
    if (s->tick_ev)
        event_free(s->tick_ev);
    if (s->base)
        event_base_free(s->base);
    s->base = NULL;
}

int
sched_run(struct sched *s)
{
    int rc = loop_setup(s);
    if (rc == 0)
        rc = sched_walk_init(&s->walk, &s->cfg);
    for (unsigned i = 0; rc == 0 && i < s->cfg.ndests; i++) {
        s->ndests = i + 1;
        rc = dest_init(s, i);
        if (rc != 0)
            snprintf(s->fatal_msg, sizeof s->fatal_msg, "cannot open %s: %s",
                     s->cfg.dests[i].name, orbit_strerror(rc));
    }
    if (rc == 0) {
        if (s->cfg.on_loop)
            s->cfg.on_loop(s->cfg.arg, s, s->base, true);
        event_base_dispatch(s->base);
        rc = s->fatal;
        if (s->cfg.on_loop)
            s->cfg.on_loop(s->cfg.arg, s, s->base, false);
    }
    report_progress(s, true);
    /* Files still in flight (canceled, fatal) are abandoned: the journal
     * and the stars' chunk stores let the next run resume them. */
    loop_teardown(s);
    return rc;
}

const char *
sched_fatal_message(const struct sched *s)
{
    return s->fatal_msg;
}
