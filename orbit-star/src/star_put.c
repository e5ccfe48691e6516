/*
 * HAVE, PUT and the sync round. PUTs are written as they arrive but
 * acknowledged only after the round that makes them durable: their index
 * entries appended to the fresh index's log (star_fresh.h), then one
 * fdatasync per file touched (or one syncfs, covering the log too). Those
 * run on the syncer thread while the loop takes the next round's
 * requests; one round is in flight at a time. COMMITs queue behind
 * the PUTs of the same round, so a manifest pipelined after its chunks finds
 * them durable.
 */
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zstd.h>

#include "orbit/error.h"
#include "orbit/wire_path.h"
#include "star_internal.h"
#include "star_alloc.h"

/* A round that gathered this many requests was a busy one: the next is
 * spaced by round_interval_us. */
#define STAR_BUSY_ROUND 16

/* Manifest bytes held before a group is committed regardless of count. */
#define COMMIT_GROUP_BYTES ((uint64_t)32 << 20)

static void flush_cb(evutil_socket_t fd, short what, void *arg);
static void round_done(void *arg);

int
star_batch_init(struct star *s)
{
    s->puts = star_calloc(s->cfg.batch_max_chunks, sizeof *s->puts);
    s->spare_puts = star_calloc(s->cfg.batch_max_chunks, sizeof *s->puts);
    s->commits = star_calloc(s->cfg.commit_group_max, sizeof *s->commits);
    s->spare_commits = star_calloc(s->cfg.commit_group_max, sizeof *s->commits);
    s->flush_ev = evtimer_new(s->base, flush_cb, s);
    if (!s->puts || !s->spare_puts || !s->commits || !s->spare_commits ||
        !s->flush_ev)
        return ORBIT_ENOMEM;
    return star_syncer_new(s->base, "orbit-sync", round_done, s, &s->syncer);
}

static void
commit_item_release(struct star_commit_item *it)
{
    free(it->buf);
    it->buf = NULL;
}

void
star_batch_release(struct star *s)
{
    s->flush_wanted = false;
    star_syncer_free(s->syncer); /* completes a round in flight */
    s->syncer = NULL;
    for (size_t i = 0; i < s->nputs; i++) {
        free(s->puts[i].loc);
        star_conn_unref(s->puts[i].conn);
    }
    for (size_t i = 0; i < s->ncommits; i++) {
        commit_item_release(&s->commits[i]);
        star_conn_unref(s->commits[i].conn);
    }
    s->nputs = s->ncommits = 0;
    stage_set_free(&s->group_files);
    free(s->puts);
    free(s->commits);
    free(s->spare_puts);
    free(s->spare_commits);
    if (s->flush_ev)
        event_free(s->flush_ev);
    s->puts = s->spare_puts = NULL;
    s->commits = s->spare_commits = NULL;
    s->flush_ev = NULL;
}

/* Room for one more PUT and one more COMMIT in the round being gathered:
 * a full one is handed over, after the one in flight if need be (the loop
 * then waits for the syncer: backpressure). */
static void
make_room(struct star *s)
{
    while (s->nputs >= s->cfg.batch_max_chunks ||
           s->ncommits >= s->cfg.commit_group_max) {
        if (s->round_busy)
            star_syncer_wait(s->syncer);
        else
            star_flush(s);
    }
}

/* After a busy round (pipelined clients: many requests gathered) the next
 * starts round_interval_us after it, so one sync covers what comes in
 * meanwhile; after a small one (a client waiting for each reply, or a
 * quiet spell) it starts at once, batch_delay_us later. */
static void
arm_flush(struct star *s)
{
    if (evtimer_pending(s->flush_ev, NULL))
        return;
    uint64_t us = s->cfg.batch_delay_us;
    uint64_t next = s->round_started_us + s->cfg.round_interval_us;
    uint64_t now = star_now_us();
    if (s->round_items >= STAR_BUSY_ROUND && next > now && next - now > us)
        us = next - now;
    struct timeval tv = {us / 1000000, (suseconds_t)(us % 1000000)};
    evtimer_add(s->flush_ev, &tv);
}

static void
flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    star_flush(arg);
}

void
star_handle_have(struct star_conn *c, const struct wire_msg *m)
{
    struct star *s = c->star;
    uint32_t n = m->u.have.n;
    uint8_t *bitmap = star_calloc(1, (size_t)n / 8 + 1);
    if (!bitmap) {
        star_send_error(c, m->request_id, ORBIT_ENOMEM, WIRE_NO_ITEM,
                        "out of memory answering HAVE");
        return;
    }
    int rc = star_store_have(s->store, m->u.have.ids, n, bitmap);
    if (rc < 0) {
        star_send_error(c, m->request_id, rc, WIRE_NO_ITEM,
                        "chunk index lookup failed: %s", orbit_strerror(rc));
    } else {
        struct wire_msg r;
        memset(&r, 0, sizeof r);
        r.type = WIRE_HAVE_REPLY;
        r.request_id = m->request_id;
        r.u.have_reply.n = n;
        r.u.have_reply.bitmap = bitmap;
        star_send(c, &r);
    }
    free(bitmap);
}

static void
hex_id(const uint8_t *id, char out[17])
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < 8; i++) {
        out[2 * i] = hex[id[i] >> 4];
        out[2 * i + 1] = hex[id[i] & 15];
    }
    out[16] = 0;
}

/* The raw bytes of a PUT, decompressed into scratch if needed, verified. */
static int
put_raw(struct star *s, const struct wire_put *p, const uint8_t **raw)
{
    if (p->codec == WIRE_CODEC_RAW) {
        if (p->data_len != p->raw_len)
            return ORBIT_EPROTO;
        *raw = p->data;
    } else if (p->codec == WIRE_CODEC_ZSTD) {
        size_t n = ZSTD_decompressDCtx(s->zdctx, s->scratch, WIRE_MAX_CHUNK,
                                       p->data, p->data_len);
        if (ZSTD_isError(n) || n != p->raw_len)
            return ORBIT_ECORRUPT;
        *raw = s->scratch;
    } else {
        return ORBIT_EPROTO;
    }
    if (!s->cfg.verify_puts)
        return 0; /* the client is this process: its ids name these bytes */
    uint8_t h[32];
    int rc = star_sha256(*raw, p->raw_len, h);
    if (rc == 0 && memcmp(h, p->id, 32) != 0)
        rc = ORBIT_ECORRUPT;
    return rc;
}

static bool
in_puts(const struct star_put_item *puts, size_t n, const uint8_t *id)
{
    for (size_t i = 0; i < n; i++)
        if (puts[i].loc && memcmp(puts[i].id, id, WIRE_ID_LEN) == 0)
            return true;
    return false;
}

/* Being stored by this round or the one in flight: durable once this
 * round completes (rounds complete in order). */
static bool
in_batch(const struct star *s, const uint8_t *id)
{
    return in_puts(s->puts, s->nputs, id) ||
           (s->round_busy && in_puts(s->round.puts, s->round.nputs, id));
}

static void
put_ok(struct star_conn *c, uint32_t rid, const uint8_t *id, bool existed)
{
    struct wire_msg r;
    memset(&r, 0, sizeof r);
    r.type = WIRE_PUT_OK;
    r.request_id = rid;
    memcpy(r.u.put_ok.id, id, WIRE_ID_LEN);
    r.u.put_ok.existed = existed;
    star_send(c, &r);
}

/* Write the chunk where it belongs; loc is filled. */
static int
put_store(struct star *s, const struct wire_put *p, const uint8_t *raw,
          struct star_loc *loc)
{
    if (p->has_hint && s->cfg.placement == STAR_PLACE_STAGING &&
        wire_path_check(p->hint_path, p->hint_path_len, NULL, 0) == 0 &&
        p->hint_offset <= UINT64_MAX - p->raw_len) {
        int rc = star_store_put_file(s->store, p->hint_path, p->hint_offset,
                                     raw, p->raw_len, loc);
        if (rc != ORBIT_EISDIR && rc != ORBIT_EPATH && rc != ORBIT_ETOOBIG)
            return rc;
    }
    return star_store_put_pack(s->store, p->id, p->codec, p->raw_len, p->data,
                               p->data_len, loc);
}

static void
queue_put(struct star_conn *c, uint32_t rid, const uint8_t *id,
          struct star_loc *loc, uint32_t bytes)
{
    struct star *s = c->star;
    make_room(s);
    struct star_put_item *it = &s->puts[s->nputs++];
    it->conn = c;
    it->rid = rid;
    it->existed = loc == NULL;
    it->loc = loc;
    memcpy(it->id, id, WIRE_ID_LEN);
    c->refs++;
    c->pending++;
    s->put_bytes += bytes;
    if (s->nputs >= s->cfg.batch_max_chunks ||
        s->put_bytes >= s->cfg.batch_max_bytes)
        star_flush(s);
    else
        arm_flush(s);
}

/* Decompress, verify and store a PUT: 1 to queue it for the round (*loc
 * NULL when the chunk is already being stored in this round), 0 when it
 * was answered here. */
static int
take_put(struct star_conn *c, const struct wire_msg *m, struct star_loc **loc)
{
    struct star *s = c->star;
    const struct wire_put *p = &m->u.put;
    char idh[17];
    hex_id(p->id, idh);
    const uint8_t *raw = NULL;
    int rc = put_raw(s, p, &raw);
    if (rc < 0) {
        star_send_error(c, m->request_id, rc, WIRE_NO_ITEM, "chunk %s: %s", idh,
                        rc == ORBIT_ECORRUPT
                            ? "bytes do not match the id; resend it"
                            : "bad codec or length");
        return 0;
    }
    bool have = false;
    rc = star_store_has(s->store, p->id, &have);
    if (rc == 0 && have) {
        put_ok(c, m->request_id, p->id, true);
        return 0;
    }
    if (rc == 0 && in_batch(s, p->id))
        return 1;
    struct star_loc *l = rc == 0 ? star_malloc(sizeof *l) : NULL;
    if (rc == 0 && !l)
        rc = ORBIT_ENOMEM;
    if (rc == 0)
        rc = put_store(s, p, raw, l);
    if (rc < 0) {
        free(l);
        star_send_error(c, m->request_id, rc, WIRE_NO_ITEM,
                        "chunk %s not stored: %s", idh, orbit_strerror(rc));
        return 0;
    }
    s->stats.bytes_received += p->raw_len;
    s->stats.chunks_received++;
    *loc = l;
    return 1;
}

void
star_handle_put(struct star_conn *c, const struct wire_msg *m)
{
    uint64_t t0 = star_now_us();
    struct star_loc *loc = NULL;
    int queue = take_put(c, m, &loc);
    c->star->stats.us_put += star_now_us() - t0;
    if (queue) /* may run the round: timed on its own */
        queue_put(c, m->request_id, m->u.put.id, loc,
                  loc ? m->u.put.raw_len : 0);
}

/* ---- COMMIT queueing ---- */

/* Copy the manifest out of the input buffer. */
static int
commit_copy(struct star_commit_item *it, const struct wire_commit *c)
{
    size_t chunks = (size_t)c->n * (WIRE_ID_LEN + 4);
    size_t need = c->path_len + 1 + c->target_len + 1 + chunks;
    it->buf = star_malloc(need);
    if (!it->buf)
        return ORBIT_ENOMEM;
    it->c = *c;
    char *p = (char *)it->buf;
    memcpy(p, c->path, c->path_len);
    p[c->path_len] = 0;
    it->c.path = p;
    p += c->path_len + 1;
    memcpy(p, c->target, c->target_len);
    p[c->target_len] = 0;
    it->c.target = p;
    p += c->target_len + 1;
    if (chunks)
        memcpy(p, c->chunks_raw, chunks);
    it->c.chunks_raw = (const uint8_t *)p;
    it->c.chunks = NULL;
    return 0;
}

void
star_handle_commit(struct star_conn *c, const struct wire_msg *m)
{
    struct star *s = c->star;
    char err[256];
    if (wire_path_check(m->u.commit.path, m->u.commit.path_len, err,
                        sizeof err) < 0) {
        star_log(s, "refused COMMIT path from %s: %s", c->peer, err);
        star_send_error(c, m->request_id, ORBIT_EPATH, WIRE_NO_ITEM, "%s", err);
        return;
    }
    make_room(s);
    /* A file the gathering group already completes (a client that died
     * with its COMMIT queued, then its rerun): both would assemble the one
     * staging file and the second rename would find it gone, so this one
     * goes to the next group. */
    uint8_t key[32];
    bool regular = m->u.commit.ftype == WIRE_FT_REGULAR &&
                   star_sha256((const uint8_t *)m->u.commit.path,
                               m->u.commit.path_len, key) == 0;
    while (regular && stage_set_has(&s->group_files, key)) {
        if (s->round_busy)
            star_syncer_wait(s->syncer);
        else
            star_flush(s);
    }
    struct star_commit_item *it = &s->commits[s->ncommits];
    memset(it, 0, sizeof *it);
    it->fd = -1;
    if (commit_copy(it, &m->u.commit) < 0) {
        star_send_error(c, m->request_id, ORBIT_ENOMEM, WIRE_NO_ITEM,
                        "out of memory for the manifest of %s",
                        m->u.commit.path);
        return;
    }
    it->conn = c;
    it->rid = m->request_id;
    const struct wire_commit *wc = &m->u.commit;
    /* Out of memory, the path is not remembered: a second COMMIT of it
     * in this group could then fail as it did before this check. */
    if (regular && wc->chunk_first + wc->n == wc->chunk_total)
        stage_set_add(&s->group_files, key);
    s->ncommits++;
    s->commit_bytes += (uint64_t)m->u.commit.n * (WIRE_ID_LEN + 4);
    c->refs++;
    c->pending++;
    if (s->ncommits >= s->cfg.commit_group_max ||
        s->commit_bytes >= COMMIT_GROUP_BYTES)
        star_flush(s);
    else
        arm_flush(s);
}

/* ---- the sync round ----
 *
 * A round in flight alternates between the syncer thread and the loop:
 *   syncer: PUT locations logged, PUT data and log synced (one syncfs, or
 *           an fdatasync each), the locations published to lookups
 *   loop:   PUT_OKs; the COMMIT group assembled
 *   syncer: the assembled files synced
 *   loop:   renamed into place
 *   syncer: their directories synced
 *   loop:   records, COMMIT_OKs; the next round may start
 * While the syncer works the loop takes the next round's requests. */

static void
round_job(void *arg)
{
    struct star *s = arg;
    struct star_round *r = &s->round;
    uint64_t t0 = star_now_us();
    switch (r->step) {
    case ROUND_PUTS: {
        r->rc = r->plan.rc;
        if (r->rc == 0)
            r->rc = star_store_index_log(s->store, r->ids, r->locs, r->k);
        uint64_t t1 = star_now_us();
        if (r->rc == 0)
            r->rc = star_sync_plan_run(&r->plan);
        uint64_t t2 = star_now_us();
        if (r->rc == 0)
            r->rc = star_store_index_publish(s->store, r->ids, r->locs, r->k);
        r->us_sync = t2 - t1;
        r->us_index = (t1 - t0) + (star_now_us() - t2);
        break;
    }
    case ROUND_FILES:
        star_commit_sync_files(s, r->commits, r->ncommits);
        r->us_commit_sync += star_now_us() - t0;
        break;
    case ROUND_DIRS:
        star_commit_sync_dirs(s, r->commits, r->ncommits);
        r->us_commit_sync += star_now_us() - t0;
        break;
    }
}

static void
reply_puts(struct star *s, struct star_round *r)
{
    int rc = r->rc;
    s->stats.sync_rounds += r->nputs > 0;
    s->stats.us_put_sync += r->us_sync;
    s->stats.us_index += r->us_index;
    for (size_t i = 0; i < r->nputs; i++) {
        struct star_put_item *it = &r->puts[i];
        char idh[17];
        hex_id(it->id, idh);
        if (rc == 0)
            put_ok(it->conn, it->rid, it->id, it->existed);
        else
            star_send_error(it->conn, it->rid, rc, WIRE_NO_ITEM,
                            "chunk %s not made durable: %s", idh,
                            orbit_strerror(rc));
        free(it->loc);
        star_conn_done(it->conn);
    }
    if (rc < 0)
        star_log(s, "sync round of %zu chunk(s) failed: %s", r->nputs,
                 orbit_strerror(rc));
    else
        star_count_ok(s, r->nputs);
}

static void reply_commit(struct star *s, struct star_commit_item *it);

/* Hand the round's next step to the syncer (or run it here if it will
 * not take it, which one round at a time never causes). */
static void
next_step(struct star *s, int step)
{
    s->round.step = step;
    if (star_syncer_post(s->syncer, round_job, s) != 0) {
        round_job(s);
        round_done(s);
    }
}

/* Take the gathered PUTs and COMMITs as the round in flight. */
static void
start_round(struct star *s)
{
    struct star_round *r = &s->round;
    memset(r, 0, sizeof *r);
    r->ids = star_calloc(s->nputs ? s->nputs : 1, sizeof *r->ids);
    r->locs = star_calloc(s->nputs ? s->nputs : 1, sizeof *r->locs);
    r->puts = s->puts;
    r->nputs = s->nputs;
    r->commits = s->commits;
    r->ncommits = s->ncommits;
    s->puts = s->spare_puts;
    s->commits = s->spare_commits;
    s->spare_puts = NULL;
    s->spare_commits = NULL;
    s->nputs = s->ncommits = 0;
    s->put_bytes = s->commit_bytes = 0;
    stage_set_free(&s->group_files);
    for (size_t i = 0; i < r->nputs && r->ids && r->locs; i++) {
        if (r->puts[i].loc) {
            r->ids[r->k] = r->puts[i].id;
            r->locs[r->k++] = r->puts[i].loc;
        }
    }
    star_store_sync_plan(s->store, &r->plan);
    if (!r->ids || !r->locs)
        r->plan.rc = ORBIT_ENOMEM;
    s->round_busy = true;
    next_step(s, ROUND_PUTS);
}

static void
end_round(struct star *s)
{
    struct star_round *r = &s->round;
    s->stats.us_commit_sync += r->us_commit_sync;
    free(r->ids);
    free(r->locs);
    s->spare_puts = r->puts;
    s->spare_commits = r->commits;
    memset(r, 0, sizeof *r);
    s->round_busy = false;
    if (s->flush_wanted) {
        s->flush_wanted = false;
        star_flush(s);
    } else if (s->nputs > 0 || s->ncommits > 0) {
        arm_flush(s);
    }
}

/* On the loop, after each of the syncer's steps. */
static void
round_done(void *arg)
{
    struct star *s = arg;
    struct star_round *r = &s->round;
    switch (r->step) {
    case ROUND_PUTS:
        star_sync_plan_free(&r->plan);
        reply_puts(s, r);
        if (r->ncommits == 0)
            break;
        s->stats.commit_groups++;
        star_commit_assemble(s, r->commits, r->ncommits);
        next_step(s, ROUND_FILES);
        return;
    case ROUND_FILES:
        star_commit_rename(s, r->commits, r->ncommits);
        next_step(s, ROUND_DIRS);
        return;
    case ROUND_DIRS:
        star_commit_finish(s, r->commits, r->ncommits);
        for (size_t i = 0; i < r->ncommits; i++)
            reply_commit(s, &r->commits[i]);
        break;
    }
    end_round(s);
}

static void
reply_commit(struct star *s, struct star_commit_item *it)
{
    if (it->rc == 0) {
        struct wire_msg r;
        memset(&r, 0, sizeof r);
        r.type = WIRE_COMMIT_OK;
        r.request_id = it->rid;
        r.u.commit_ok.complete = it->complete;
        star_send(it->conn, &r);
        if (it->complete)
            s->stats.files_committed++;
        if (it->complete && it->in_place)
            s->stats.commits_in_place++;
        if (it->complete && it->trusted)
            s->stats.commits_trusted++;
        star_count_ok(s, 1);
    } else {
        /* A missing chunk is fixed by sending it: a retry of the file (HAVE,
         * PUT, COMMIT) succeeds, so say so. */
        struct wire_msg e;
        wire_error_init(&e, it->rid, it->rc, it->msg, it->item);
        if (it->rc == ORBIT_ENOENT && it->item != WIRE_NO_ITEM)
            e.u.error.retryable = true;
        star_count_error(s, it->rc);
        star_send(it->conn, &e);
    }
    commit_item_release(it);
    star_conn_done(it->conn);
}

void
star_flush(struct star *s)
{
    if (s->flush_ev)
        evtimer_del(s->flush_ev);
    if (s->round_busy) {
        s->flush_wanted = true; /* right after the one in flight */
        return;
    }
    s->round_started_us = star_now_us();
    s->round_items = s->nputs + s->ncommits;
    star_store_trim(s->store, star_now_ms());
    if (s->round_items == 0)
        return;
    s->stats.rounds++;
    start_round(s);
}
