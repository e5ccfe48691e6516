/*
 * The star's server: lifecycle, the loop thread, the listener, connections,
 * authentication and request dispatch. Storage lives in star_put.c,
 * star_commit.c, star_fsops.c and star_store.c.
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <event2/util.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <limits.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "orbit/error.h"
#include "orbit/health.h"
#include "orbit/wire_pack.h"
#include "star_internal.h"
#include "star_alloc.h"
#include "wire_internal.h"

#define OUT_LIMIT  ((size_t)8 << 20) /* output bytes before reading pauses */
#define READ_LIMIT ((size_t)WIRE_HDR_LEN + WIRE_MAX_PAYLOAD)
#define PULL_BYTES ((size_t)4 << 20) /* input held for one pass */
#define PULL_STEP  ((size_t)256 << 10)
#define PACK_FLUSH ((size_t)64 << 10) /* a run this long is sent at once */

static const char *const state_names[] = {"REGISTERED", "SCHEDULED", "DRAINING",
                                          "SHUTDOWN"};

const char *
star_state_name(enum star_state st)
{
    if ((unsigned)st < sizeof state_names / sizeof state_names[0])
        return state_names[st];
    return "UNKNOWN";
}

uint64_t
star_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t
star_now_ms(void)
{
    return star_now_us() / 1000u;
}

void
star_log(const struct star *s, const char *fmt, ...)
{
    if (s->cfg.quiet)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "orbit-star: %s\n", line);
}

unsigned long
star_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0 &&
            getrlimit(RLIMIT_NOFILE, &rl) != 0)
            return 0;
    }
    return rl.rlim_cur == RLIM_INFINITY ? ULONG_MAX
                                        : (unsigned long)rl.rlim_cur;
}

void
star_config_init(struct star_config *c)
{
    memset(c, 0, sizeof *c);
    c->name = "orbit-star";
    c->max_connections = 1024;
    c->auth_timeout_ms = 10000;
    c->idle_timeout_ms = 300000;
    c->frame_timeout_ms = 30000;
    c->drain_timeout_ms = 30000;
    c->health_interval_ms = 5000;
    c->batch_max_chunks = 512;
    c->batch_max_bytes = (uint64_t)64 << 20;
    c->batch_delay_us = 0;
    c->round_interval_us = 20000;
    c->commit_group_max = 256;
    c->pack_max_bytes = (uint64_t)4 << 30;
    c->placement = STAR_PLACE_STAGING;
    c->verify_puts = true;
    c->staging_ttl_s = 7u * 24 * 3600;
}

void
star_count_ok(struct star *s, uint64_t ops)
{
    if (ops > 0 && s->health)
        health_record_ops(s->health, star_now_ms(), ops, 0);
}

void
star_count_error(struct star *s, int code)
{
    if (s->health)
        health_record_ops(s->health, star_now_ms(), 1, 1);
    s->stats.errors_total++;
    if (code == ORBIT_EIO || code == ORBIT_ENOSPC || code == ORBIT_EPERM ||
        code == ORBIT_EDB)
        s->stats.errors_io++;
    else if (code == ORBIT_EPROTO || code == ORBIT_ETOOBIG ||
             code == ORBIT_EVERSION || code == ORBIT_EPATH)
        s->stats.errors_proto++;
    else if (code == ORBIT_EAUTH)
        s->stats.errors_auth++;
}

/* ---- lifecycle ---- */

static void
set_state(struct star *s, enum star_state to)
{
    pthread_mutex_lock(&s->mu);
    enum star_state from = s->state;
    s->state = to;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (from == to)
        return;
    star_log(s, "state %s -> %s", star_state_name(from), star_state_name(to));
    if (s->cfg.on_state)
        s->cfg.on_state(s->cfg.on_state_arg, from, to);
}

enum star_state
star_get_state(const struct star *s)
{
    struct star *m = (struct star *)s;
    pthread_mutex_lock(&m->mu);
    enum star_state st = m->state;
    pthread_mutex_unlock(&m->mu);
    return st;
}

/* ---- running calls on the loop thread ---- */

struct loop_call {
    struct star *s;
    int (*fn)(struct star *s, void *arg);
    void *arg;
    int rc;
    bool done;
};

static void
loop_call_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct loop_call *call = arg;
    int rc = call->fn(call->s, call->arg);
    pthread_mutex_lock(&call->s->mu);
    call->rc = rc;
    call->done = true;
    pthread_cond_broadcast(&call->s->cv);
    pthread_mutex_unlock(&call->s->mu);
}

static int
in_loop(struct star *s, int (*fn)(struct star *, void *), void *arg)
{
    if (!s->own_thread || pthread_equal(pthread_self(), s->thread))
        return fn(s, arg);
    struct loop_call call = {s, fn, arg, 0, false};
    const struct timeval now = {0, 0};
    if (event_base_once(s->base, -1, EV_TIMEOUT, loop_call_cb, &call, &now))
        return ORBIT_ENOMEM;
    pthread_mutex_lock(&s->mu);
    while (!call.done)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    return call.rc;
}

static void *
loop_main(void *arg)
{
    struct star *s = arg;
    pthread_setname_np(pthread_self(), "orbit-star"); /* for top -H, perf */
    while (!s->stop)
        event_base_loop(s->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/* ---- sending ---- */

/* Send the packed replies as one PACKED frame. A failure leaves the
 * client's stream unusable: the connection is closed from pack_ev. */
static int
flush_pack(struct star_conn *c)
{
    if (!c->pack || c->dead)
        return 0;
    size_t sent = 0;
    int rc = wire_pack_run(c->packer, c->pack, bufferevent_get_output(c->bev),
                           &sent);
    if (rc < 0) {
        c->pack_failed = true;
        event_active(c->pack_ev, EV_TIMEOUT, 0);
        return rc;
    }
    c->star->stats.packed_out += sent > 0;
    return 0;
}

static void conn_close(struct star_conn *c);

static void
pack_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct star_conn *c = arg;
    if (!c->pack_failed)
        flush_pack(c);
    if (c->pack_failed) {
        star_log(c->star, "cannot pack replies to %s, closing", c->peer);
        conn_close(c);
    }
}

/* Where a reply goes: the pack when the client takes PACKED frames (a run
 * never exceeds WIRE_MAX_PACK_RAW), else the output after the pack. */
static struct evbuffer *
reply_buffer(struct star_conn *c, size_t len)
{
    if (c->packing && !c->pack_failed && len <= WIRE_MAX_PACK_RAW) {
        if (evbuffer_get_length(c->pack) + len > WIRE_MAX_PACK_RAW)
            flush_pack(c);
        event_active(c->pack_ev, EV_TIMEOUT, 0);
        return c->pack;
    }
    flush_pack(c);
    return bufferevent_get_output(c->bev);
}

int
star_send(struct star_conn *c, const struct wire_msg *m)
{
    if (c->dead || c->pack_failed)
        return ORBIT_ECLOSED;
    size_t len = 0;
    int rc = wire_encoded_len(m, &len);
    if (rc < 0)
        return rc;
    struct evbuffer *out = reply_buffer(c, len);
    struct evbuffer_iovec vec;
    if (evbuffer_reserve_space(out, (ev_ssize_t)len, &vec, 1) < 1 ||
        vec.iov_len < len)
        return ORBIT_ENOMEM;
    size_t wrote = 0;
    rc = wire_encode(m, vec.iov_base, vec.iov_len, &wrote);
    vec.iov_len = rc == 0 ? wrote : 0;
    evbuffer_commit_space(out, &vec, 1);
    if (out == c->pack && evbuffer_get_length(out) >= PACK_FLUSH)
        flush_pack(c); /* a long run, or one large reply */
    return rc;
}

void
star_send_error(struct star_conn *c, uint32_t rid, int code, uint32_t item,
                const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    star_count_error(c->star, code);
    struct wire_msg m;
    wire_error_init(&m, rid, code, msg, item);
    star_send(c, &m);
}

/* ---- connections ---- */

static void check_drained(struct star *s);

static void
conn_close(struct star_conn *c)
{
    if (c->dead)
        return;
    struct star *s = c->star;
    c->dead = true;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nconns--;
    if (c->deadline) {
        event_free(c->deadline);
        c->deadline = NULL;
    }
    if (c->pack_ev)
        event_free(c->pack_ev);
    if (c->pack)
        evbuffer_free(c->pack);
    wire_packer_free(c->packer);
    wire_unpacker_free(c->unpacker);
    c->pack_ev = NULL;
    c->pack = NULL;
    c->packer = NULL;
    c->unpacker = NULL;
    c->packing = false;
    bufferevent_free(c->bev);
    c->bev = NULL;
    star_conn_unref(c);
    check_drained(s);
}

void
star_conn_unref(struct star_conn *c)
{
    if (--c->refs == 0)
        free(c);
}

/* Close once every queued byte is written. */
static void
conn_close_later(struct star_conn *c)
{
    if (c->dead)
        return;
    c->closing = true;
    bufferevent_disable(c->bev, EV_READ);
    flush_pack(c);
    if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
        conn_close(c);
        return;
    }
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
}

static void
send_goodbye(struct star_conn *c)
{
    struct wire_msg m;
    memset(&m, 0, sizeof m);
    m.type = WIRE_GOODBYE_OK;
    m.request_id = c->goodbye_rid;
    star_send(c, &m);
    conn_close_later(c);
}

void
star_conn_done(struct star_conn *c)
{
    if (c->pending > 0)
        c->pending--;
    if (!c->dead && c->goodbye && c->pending == 0)
        send_goodbye(c);
    if (!c->dead && c->closing && c->star->state >= STAR_DRAINING &&
        c->pending == 0)
        conn_close_later(c);
    star_conn_unref(c);
}

static void
deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct star_conn *c = arg;
    if (c->phase == CONN_CHALLENGED) {
        c->star->stats.errors_auth++;
        star_log(c->star, "auth timeout from %s, closing", c->peer);
    } else {
        star_log(c->star, "frame timeout from %s, closing", c->peer);
    }
    conn_close(c);
}

static void
auth_fail(struct star_conn *c, uint32_t rid, const char *why)
{
    star_log(c->star, "auth failed from %s: %s", c->peer, why);
    star_send_error(c, rid, ORBIT_EAUTH, WIRE_NO_ITEM, "%s", why);
    conn_close_later(c);
}

static void
handle_auth(struct star_conn *c, const struct wire_msg *m)
{
    struct star *s = c->star;
    if (m->type != WIRE_AUTH_RESPONSE) {
        auth_fail(c, m->request_id, "authenticate first (AUTH_RESPONSE)");
        return;
    }
    if (wire_auth_verify(s->token, s->token_len, c->challenge,
                         m->u.response.mac) < 0) {
        auth_fail(c, m->request_id, "wrong token");
        return;
    }
    evtimer_del(c->deadline);
    c->phase = CONN_AUTHED;
    struct wire_msg r;
    memset(&r, 0, sizeof r);
    r.type = WIRE_AUTH_OK;
    r.request_id = m->request_id;
    star_send(c, &r);
}

static uint8_t
wire_state(const struct star *s)
{
    switch (s->state) {
    case STAR_REGISTERED:
        return WIRE_STATE_STARTING;
    case STAR_SCHEDULED:
        return WIRE_STATE_READY;
    case STAR_DRAINING:
        return WIRE_STATE_DRAINING;
    default:
        return WIRE_STATE_STOPPING;
    }
}

/* Replies from now on may be packed; without memory they are not. */
static void
start_packing(struct star_conn *c)
{
    if (c->packing)
        return;
    int level =
        c->star->cfg.pack_level ? c->star->cfg.pack_level : WIRE_PACK_LEVEL;
    c->pack = evbuffer_new();
    c->pack_ev = event_new(c->star->base, -1, 0, pack_cb, c);
    if (c->pack && c->pack_ev && wire_packer_new(level, &c->packer) == 0) {
        c->packing = true;
        return;
    }
    if (c->pack)
        evbuffer_free(c->pack);
    if (c->pack_ev)
        event_free(c->pack_ev);
    c->pack = NULL;
    c->pack_ev = NULL;
}

static void
handle_hello(struct star_conn *c, const struct wire_msg *m)
{
    struct star *s = c->star;
    if (m->u.hello.version < 1) {
        star_send_error(c, m->request_id, ORBIT_EVERSION, WIRE_NO_ITEM,
                        "protocol version %u not supported",
                        m->u.hello.version);
        return;
    }
    c->phase = CONN_READY;
    struct wire_msg r;
    memset(&r, 0, sizeof r);
    r.type = WIRE_HELLO_OK;
    r.request_id = m->request_id;
    r.u.hello_ok.version = WIRE_VERSION;
    r.u.hello_ok.star_name = s->name;
    r.u.hello_ok.star_name_len = strlen(s->name);
    r.u.hello_ok.state = wire_state(s);
    r.u.hello_ok.max_payload = WIRE_MAX_PAYLOAD;
    r.u.hello_ok.max_have = WIRE_MAX_HAVE;
    r.u.hello_ok.max_chunk = WIRE_MAX_CHUNK;
    r.u.hello_ok.max_inflight = s->cfg.batch_max_chunks * 2;
    if (s->cfg.pack_level >= 0)
        r.u.hello_ok.features = WIRE_FEATURE_PACKED;
    star_send(c, &r);
    if (s->cfg.pack_level >= 0 && (m->u.hello.features & WIRE_FEATURE_PACKED))
        start_packing(c);
}

static void
handle_goodbye(struct star_conn *c, const struct wire_msg *m)
{
    c->goodbye = true;
    c->goodbye_rid = m->request_id;
    bufferevent_disable(c->bev, EV_READ);
    if (c->pending == 0)
        send_goodbye(c);
}

static bool
is_work(uint8_t type)
{
    return type == WIRE_HAVE || type == WIRE_PUT || type == WIRE_COMMIT ||
           type == WIRE_DELETE;
}

static void
dispatch(struct star_conn *c, const struct wire_msg *m)
{
    struct star *s = c->star;
    if (c->phase == CONN_CHALLENGED) {
        handle_auth(c, m);
        return;
    }
    if (m->type == WIRE_HELLO) {
        handle_hello(c, m);
        return;
    }
    if (c->phase != CONN_READY) {
        star_send_error(c, m->request_id, ORBIT_ESTATE, WIRE_NO_ITEM,
                        "send HELLO before %s", wire_type_name(m->type));
        return;
    }
    if (is_work(m->type) && s->state != STAR_SCHEDULED) {
        star_send_error(c, m->request_id, ORBIT_ESTATE, WIRE_NO_ITEM,
                        "star is %s, not accepting work; retry later",
                        star_state_name(s->state));
        return;
    }
    switch (m->type) {
    case WIRE_HAVE:
        star_handle_have(c, m);
        break;
    case WIRE_PUT:
        star_handle_put(c, m);
        break;
    case WIRE_COMMIT:
        star_handle_commit(c, m);
        break;
    case WIRE_LIST:
        star_handle_list(c, m);
        break;
    case WIRE_DELETE:
        star_handle_delete(c, m);
        break;
    case WIRE_HEALTH:
        star_handle_health(c, m);
        break;
    case WIRE_GOODBYE:
        handle_goodbye(c, m);
        break;
    default:
        star_send_error(c, m->request_id, ORBIT_EPROTO, WIRE_NO_ITEM,
                        "%s is not a request a star accepts",
                        wire_type_name(m->type));
        break;
    }
}

/* A header the stream cannot recover from: answer and close. */
static void
bad_header(struct star_conn *c, const uint8_t *h, int rc)
{
    uint32_t rid = (uint32_t)h[4] << 24 | (uint32_t)h[5] << 16 |
                   (uint32_t)h[6] << 8 | h[7];
    star_log(c->star, "unusable frame header from %s (%s), closing", c->peer,
             orbit_errname(rc));
    star_send_error(c, rid, rc, WIRE_NO_ITEM,
                    rc == ORBIT_ETOOBIG ? "frame payload above the maximum"
                                        : "unsupported frame version");
    conn_close_later(c);
}

static void
bad_payload(struct star_conn *c, const struct wire_hdr *hdr, int rc)
{
    star_send_error(c, hdr->request_id, rc, WIRE_NO_ITEM,
                    "malformed %s payload (%s)", wire_type_name(hdr->type),
                    orbit_errname(rc));
    if (c->phase == CONN_CHALLENGED) {
        star_log(c->star, "auth failed from %s: malformed frame", c->peer);
        conn_close_later(c);
    }
}

/* A stream fault inside a PACKED frame: the requests it carried cannot be
 * named, so the session ends (the client sends them again elsewhere). */
static void
bad_pack(struct star_conn *c, int rc, const char *why)
{
    star_log(c->star, "%s from %s (%s), closing", why, c->peer,
             orbit_errname(rc));
    star_send_error(c, 0, rc, WIRE_NO_ITEM, "%s", why);
    conn_close_later(c);
}

/* The requests of a PACKED frame, in order, as if each had come alone. */
static void
handle_packed(struct star_conn *c, const struct wire_msg *m)
{
    if (c->phase != CONN_READY || c->star->cfg.pack_level < 0) {
        bad_pack(c, ORBIT_EPROTO, "PACKED frame without PACKED offered");
        return;
    }
    int rc = c->unpacker ? 0 : wire_unpacker_new(&c->unpacker);
    const uint8_t *raw = NULL;
    size_t len = 0, pos = 0;
    if (rc == 0)
        rc = wire_unpack(c->unpacker, &m->u.packed, &raw, &len);
    if (rc < 0) {
        bad_pack(c, rc, "PACKED frame does not unpack");
        return;
    }
    c->star->stats.packed_in++;
    struct wire_hdr hdr;
    const uint8_t *payload;
    while (!c->dead && !c->closing && !c->goodbye &&
           wire_unpacked_next(raw, len, &pos, &hdr, &payload) > 0) {
        struct wire_msg inner;
        rc = wire_decode(&hdr, payload, &inner);
        if (rc < 0)
            bad_payload(c, &hdr, rc);
        else
            dispatch(c, &inner);
    }
}

/* Decode and handle one complete frame if buffered; false to stop. */
static bool
process_one(struct star_conn *c, struct evbuffer *in)
{
    size_t len = evbuffer_get_length(in);
    if (len < WIRE_HDR_LEN)
        return false;
    const uint8_t *h = evbuffer_pullup(in, WIRE_HDR_LEN);
    struct wire_hdr hdr;
    int rc = wire_frame_peek(h, WIRE_HDR_LEN, &hdr);
    if (rc < 0) {
        bad_header(c, h, rc);
        return false;
    }
    size_t flen = WIRE_HDR_LEN + (size_t)hdr.payload_len;
    if (len < flen)
        return false;
    const uint8_t *f = evbuffer_pullup(in, (ev_ssize_t)flen);
    if (!f) {
        star_send_error(c, hdr.request_id, ORBIT_ENOMEM, WIRE_NO_ITEM,
                        "out of memory");
        conn_close_later(c);
        return false;
    }
    struct wire_msg m;
    rc = wire_decode(&hdr, f + WIRE_HDR_LEN, &m);
    if (rc < 0 && hdr.type == WIRE_PACKED)
        bad_pack(c, rc, "malformed PACKED frame"); /* requests unnamed */
    else if (rc < 0)
        bad_payload(c, &hdr, rc);
    else if (m.type == WIRE_PACKED)
        handle_packed(c, &m);
    else
        dispatch(c, &m);
    evbuffer_drain(in, flen);
    return true;
}

static void
update_deadline(struct star_conn *c, struct evbuffer *in)
{
    if (c->dead || c->phase == CONN_CHALLENGED)
        return;
    if (evbuffer_get_length(in) == 0 || c->read_paused || c->closing) {
        evtimer_del(c->deadline);
    } else if (!evtimer_pending(c->deadline, NULL)) {
        uint32_t ms = c->star->cfg.frame_timeout_ms;
        struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
        evtimer_add(c->deadline, &tv);
    }
}

/* How many bytes to hold before processing: a few MiB, or the whole of a
 * larger frame, never more than the read watermark. */
static size_t
pull_target(struct evbuffer *in)
{
    size_t target = PULL_BYTES;
    if (evbuffer_get_length(in) >= WIRE_HDR_LEN) {
        struct wire_hdr h;
        const uint8_t *p = evbuffer_pullup(in, WIRE_HDR_LEN);
        if (wire_frame_peek(p, WIRE_HDR_LEN, &h) == 0 &&
            WIRE_HDR_LEN + (size_t)h.payload_len > target)
            target = WIRE_HDR_LEN + (size_t)h.payload_len;
    }
    return target < READ_LIMIT ? target : READ_LIMIT;
}

/*
 * libevent 2.1 reads at most 4 KiB per callback, so a pipelined burst of
 * PUTs would be split over many loop passes (and sync rounds). Read what the
 * socket holds now, in large steps; EOF and errors are left for the
 * bufferevent to see on its next read.
 */
static void
pull_socket(struct star_conn *c, struct evbuffer *in)
{
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    size_t target = pull_target(in);
    /* The bufferevent keeps the end of its input frozen between reads. */
    evbuffer_unfreeze(in, 0);
    while (evbuffer_get_length(in) < target) {
        struct evbuffer_iovec v;
        if (evbuffer_reserve_space(in, (ev_ssize_t)PULL_STEP, &v, 1) < 1)
            break;
        size_t want = target - evbuffer_get_length(in);
        ssize_t n =
            recv(fd, v.iov_base, want < v.iov_len ? want : v.iov_len, 0);
        v.iov_len = n > 0 ? (size_t)n : 0;
        evbuffer_commit_space(in, &v, 1);
        if (n <= 0)
            break;
    }
    evbuffer_freeze(in, 0);
}

static void
read_cb(struct bufferevent *bev, void *arg)
{
    struct star_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    c->refs++;
    if (!c->read_paused && !c->closing && !c->goodbye)
        pull_socket(c, in);
    while (!c->dead && !c->closing && !c->goodbye && !c->read_paused) {
        if (!process_one(c, in))
            break;
        if (!c->dead &&
            evbuffer_get_length(bufferevent_get_output(c->bev)) > OUT_LIMIT) {
            c->read_paused = true;
            c->star->stats.reads_paused++;
            bufferevent_disable(c->bev, EV_READ);
        }
    }
    update_deadline(c, in);
    star_conn_unref(c);
}

static void
write_cb(struct bufferevent *bev, void *arg)
{
    struct star_conn *c = arg;
    size_t left = evbuffer_get_length(bufferevent_get_output(bev));
    if (c->closing && left == 0) {
        conn_close(c);
        return;
    }
    if (c->read_paused && left <= OUT_LIMIT / 2 && !c->closing && !c->goodbye &&
        c->star->state < STAR_DRAINING) {
        c->read_paused = false;
        bufferevent_enable(bev, EV_READ);
        read_cb(bev, c); /* frames may already be buffered */
    }
}

static void
event_cb(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct star_conn *c = arg;
    if (what & BEV_EVENT_TIMEOUT)
        star_log(c->star, "idle timeout from %s, closing", c->peer);
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
        conn_close(c);
}

static int
conn_start(struct star *s, struct star_conn *c)
{
    struct wire_msg m;
    memset(&m, 0, sizeof m);
    m.type = WIRE_AUTH_CHALLENGE;
    m.u.challenge.version = WIRE_VERSION;
    int rc = wire_auth_challenge(c->challenge);
    if (rc < 0)
        return rc;
    memcpy(m.u.challenge.challenge, c->challenge, WIRE_CHALLENGE_LEN);
    uint32_t ms = s->cfg.auth_timeout_ms;
    struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(c->deadline, &tv);
    if (s->nconns > s->cfg.max_connections) {
        star_log(s, "refusing %s: %u connections", c->peer, s->nconns - 1);
        star_send_error(c, 0, ORBIT_EAGAIN, WIRE_NO_ITEM,
                        "star at its connection limit; retry later");
        conn_close_later(c);
        return 0;
    }
    return star_send(c, &m);
}

static int
conn_new(struct star *s, evutil_socket_t fd, const char *peer)
{
    struct star_conn *c = star_calloc(1, sizeof *c);
    if (!c) {
        evutil_closesocket(fd);
        return ORBIT_ENOMEM;
    }
    evutil_make_socket_nonblocking(fd);
    c->star = s;
    c->refs = 1;
    snprintf(c->peer, sizeof c->peer, "%s", peer);
    c->bev = bufferevent_socket_new(s->base, fd, BEV_OPT_CLOSE_ON_FREE);
    c->deadline = evtimer_new(s->base, deadline_cb, c);
    if (!c->bev || !c->deadline) {
        if (c->bev)
            bufferevent_free(c->bev);
        else
            evutil_closesocket(fd);
        if (c->deadline)
            event_free(c->deadline);
        free(c);
        return ORBIT_ENOMEM;
    }
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    bufferevent_setwatermark(c->bev, EV_READ, 0, READ_LIMIT);
    bufferevent_setwatermark(c->bev, EV_WRITE, OUT_LIMIT / 2, 0);
    bufferevent_set_max_single_read(c->bev, (size_t)1 << 20);
    uint32_t ms = s->cfg.idle_timeout_ms;
    struct timeval idle = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
    bufferevent_set_timeouts(c->bev, &idle, &idle);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->nconns++;
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    int rc = conn_start(s, c);
    if (rc < 0)
        conn_close(c);
    return rc;
}

static void
format_peer(const struct sockaddr *sa, int salen, char *out, size_t cap)
{
    char host[64] = "?";
    unsigned port = 0;
    (void)salen;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)sa;
        evutil_inet_ntop(AF_INET, &in4->sin_addr, host, sizeof host);
        port = ntohs(in4->sin_port);
        snprintf(out, cap, "%s:%u", host, port);
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        evutil_inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
        snprintf(out, cap, "[%s]:%u", host, port);
    } else {
        snprintf(out, cap, "local");
    }
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
          int salen, void *arg)
{
    (void)l;
    struct star *s = arg;
    char peer[64];
    format_peer(sa, salen, peer, sizeof peer);
    if (s->state >= STAR_DRAINING) {
        evutil_closesocket(fd);
        return;
    }
    /* Replies are small and answer pipelined requests: no Nagle delay. */
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (conn_new(s, fd, peer) < 0)
        star_log(s, "could not serve %s", peer);
}

static void
accept_error_cb(struct evconnlistener *l, void *arg)
{
    (void)l;
    struct star *s = arg;
    int e = EVUTIL_SOCKET_ERROR();
    star_log(s, "accept failed: %s", evutil_socket_error_to_string(e));
}

/* ---- public calls, run on the loop thread ---- */

/* HOST:PORT; evutil refuses port 0, which here means "any free port". */
static int
parse_addr(const char *addr, struct sockaddr_storage *ss, int *sslen)
{
    char tmp[300];
    size_t n = strlen(addr);
    if (n < 2 || n >= sizeof tmp)
        return ORBIT_EINVAL;
    memcpy(tmp, addr, n + 1);
    bool any = strcmp(tmp + n - 2, ":0") == 0;
    if (any)
        tmp[n - 1] = '1';
    memset(ss, 0, sizeof *ss);
    if (evutil_parse_sockaddr_port(tmp, (struct sockaddr *)ss, sslen) != 0)
        return ORBIT_EINVAL;
    if (any && ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = 0;
    else if (any)
        ((struct sockaddr_in6 *)ss)->sin6_port = 0;
    return 0;
}

static int
do_listen(struct star *s, void *arg)
{
    const char *addr = arg;
    if (s->listener)
        return ORBIT_EEXIST;
    if (s->state >= STAR_DRAINING)
        return ORBIT_ESTATE;
    struct sockaddr_storage ss;
    int sslen = (int)sizeof ss;
    if (parse_addr(addr, &ss, &sslen) < 0)
        return ORBIT_EINVAL;
    s->listener = evconnlistener_new_bind(
        s->base, accept_cb, s,
        LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, -1,
        (struct sockaddr *)&ss, sslen);
    if (!s->listener)
        return errno == EADDRINUSE ? ORBIT_EEXIST
               : errno == EACCES   ? ORBIT_EPERM
                                   : ORBIT_ECONNECT;
    evconnlistener_set_error_cb(s->listener, accept_error_cb);
    struct sockaddr_storage bound;
    socklen_t blen = sizeof bound;
    evutil_socket_t lfd = evconnlistener_get_fd(s->listener);
    if (getsockname(lfd, (struct sockaddr *)&bound, &blen) == 0)
        s->port = ntohs(bound.ss_family == AF_INET6
                            ? ((struct sockaddr_in6 *)&bound)->sin6_port
                            : ((struct sockaddr_in *)&bound)->sin_port);
    star_log(s,
             "listening on %s (port %u), root %s; busy rounds spaced %u ms, "
             "disk checked every %u s",
             addr, s->port, s->root, s->cfg.round_interval_us / 1000u,
             s->cfg.health_interval_ms / 1000u);
    return 0;
}

int
star_listen(struct star *s, const char *addr)
{
    if (!s || !addr)
        return ORBIT_EINVAL;
    if (!s->cfg.verify_puts)
        return ORBIT_EINVAL; /* unverified PUTs: its own process only */
    return in_loop(s, do_listen, (void *)addr);
}

uint16_t
star_port(const struct star *s)
{
    return s ? s->port : 0;
}

static int
do_adopt(struct star *s, void *arg)
{
    int fd = *(int *)arg;
    if (s->state >= STAR_DRAINING) {
        close(fd);
        return ORBIT_ESTATE;
    }
    return conn_new(s, fd, "socketpair");
}

int
star_adopt_fd(struct star *s, int fd)
{
    if (!s || fd < 0) {
        if (fd >= 0)
            close(fd);
        return ORBIT_EINVAL;
    }
    return in_loop(s, do_adopt, &fd);
}

static int
do_schedule(struct star *s, void *arg)
{
    (void)arg;
    if (s->state != STAR_REGISTERED)
        return ORBIT_ESTATE;
    set_state(s, STAR_SCHEDULED);
    return 0;
}

int
star_schedule(struct star *s)
{
    if (!s)
        return ORBIT_EINVAL;
    return in_loop(s, do_schedule, NULL);
}

static void
check_drained(struct star *s)
{
    if (s->state != STAR_DRAINING || s->nconns > 0)
        return;
    if (s->drain_timer)
        evtimer_del(s->drain_timer);
    star_log(s,
             "%llu file(s) committed, %llu in place (%llu trusted "
             "without reading)",
             (unsigned long long)s->stats.files_committed,
             (unsigned long long)s->stats.commits_in_place,
             (unsigned long long)s->stats.commits_trusted);
    const struct star_stats *t = &s->stats;
    uint64_t fresh = 0, merges = 0;
    if (s->store)
        star_store_fresh_stats(s->store, &fresh, &merges);
    if (t->rounds > 0)
        star_log(s,
                 "time in %llu round(s): PUTs %.1f s (verify, store), their "
                 "syncs %.1f s, index %.1f s (%llu merge(s), %llu entries "
                 "left to merge at close); COMMITs %.1f s (assemble, "
                 "verify), syncs %.1f s, renames %.1f s, records %.1f s",
                 (unsigned long long)t->rounds, (double)t->us_put / 1e6,
                 (double)t->us_put_sync / 1e6, (double)t->us_index / 1e6,
                 (unsigned long long)merges, (unsigned long long)fresh,
                 (double)t->us_assemble / 1e6, (double)t->us_commit_sync / 1e6,
                 (double)t->us_rename / 1e6, (double)t->us_record / 1e6);
    set_state(s, STAR_SHUTDOWN);
}

static void
force_close_all(struct star *s)
{
    while (s->conns)
        conn_close(s->conns);
}

static void
drain_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct star *s = arg;
    star_log(s, "drain timeout: closing %u connection(s)", s->nconns);
    force_close_all(s);
}

static int
do_drain(struct star *s, void *arg)
{
    (void)arg;
    if (s->state >= STAR_DRAINING)
        return 0;
    set_state(s, STAR_DRAINING);
    if (s->listener) {
        evconnlistener_free(s->listener);
        s->listener = NULL;
    }
    star_flush(s);
    for (struct star_conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        c->closing = true;
        bufferevent_disable(c->bev, EV_READ);
        if (c->pending == 0)
            conn_close_later(c);
    }
    uint32_t ms = s->cfg.drain_timeout_ms;
    struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
    if (s->drain_timer)
        evtimer_add(s->drain_timer, &tv);
    check_drained(s);
    return 0;
}

int
star_drain(struct star *s)
{
    if (!s)
        return ORBIT_EINVAL;
    int rc = in_loop(s, do_drain, NULL);
    if (rc < 0 || !s->own_thread || pthread_equal(pthread_self(), s->thread))
        return rc;
    pthread_mutex_lock(&s->mu);
    while (s->state != STAR_SHUTDOWN)
        pthread_cond_wait(&s->cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

static int
do_stats(struct star *s, void *arg)
{
    struct star_stats *out = arg;
    *out = s->stats;
    out->put_syncs = s->store ? star_store_put_syncs(s->store) : 0;
    if (s->store)
        star_store_fresh_stats(s->store, &out->index_fresh, &out->index_merges);
    out->connections = s->nconns;
    return 0;
}

void
star_get_stats(struct star *s, struct star_stats *out)
{
    memset(out, 0, sizeof *out);
    if (s)
        in_loop(s, do_stats, out);
}

static int
do_check(struct star *s, void *arg)
{
    (void)arg;
    uint32_t n = 0;
    for (const struct star_conn *c = s->conns; c; c = c->next, n++) {
        if (c->dead || c->refs < 1 + c->pending ||
            (c->next && c->next->prev != c) || (!c->prev && s->conns != c))
            return ORBIT_ECORRUPT;
    }
    if (n != s->nconns || s->nputs > s->cfg.batch_max_chunks ||
        s->ncommits > s->cfg.commit_group_max ||
        (s->state >= STAR_DRAINING && s->listener))
        return ORBIT_ECORRUPT;
    return star_store_check(s->store);
}

int
star_check(struct star *s)
{
    return s ? in_loop(s, do_check, NULL) : ORBIT_EINVAL;
}

/* ---- creation ---- */

static int
copy_config(struct star *s, const struct star_config *cfg)
{
    if (!cfg->root || !cfg->token || cfg->token_len == 0 ||
        cfg->token_len > WIRE_TOKEN_MAX)
        return ORBIT_EINVAL;
    s->cfg = *cfg;
    s->root = star_strdup(cfg->root);
    if (!s->root)
        return ORBIT_ENOMEM;
    memcpy(s->token, cfg->token, cfg->token_len);
    s->token_len = cfg->token_len;
    snprintf(s->name, sizeof s->name, "%s", cfg->name ? cfg->name : "star");
    if (s->cfg.max_connections == 0)
        s->cfg.max_connections = 1;
    if (s->cfg.batch_max_chunks == 0)
        s->cfg.batch_max_chunks = 1;
    if (s->cfg.commit_group_max == 0)
        s->cfg.commit_group_max = 1;
    s->cfg.root = s->root;
    s->cfg.token = s->token;
    s->cfg.name = s->name;
    return 0;
}

static int
open_root(struct star *s)
{
    s->rootfd = open(s->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->rootfd < 0)
        return orbit_err_from_errno(errno);
    return star_store_open(s->rootfd, s->root, s->cfg.pack_max_bytes,
                           &s->store);
}

static int
make_base(struct star *s)
{
    if (s->cfg.base) {
        s->base = s->cfg.base;
        return 0;
    }
    evthread_use_pthreads();
    s->base = event_base_new();
    if (!s->base)
        return ORBIT_ENOMEM;
    s->own_base = true;
    return 0;
}

static int
setup(struct star *s, const struct star_config *cfg)
{
    int rc = copy_config(s, cfg);
    if (rc == 0)
        rc = open_root(s);
    if (rc == 0)
        rc = health_new(NULL, &s->health);
    if (rc == 0)
        rc = make_base(s);
    if (rc == 0)
        rc = star_batch_init(s);
    if (rc == 0)
        rc = star_lister_init(s);
    if (rc == 0)
        rc = star_commit_init(s);
    if (rc < 0)
        return rc;
    s->scratch = star_malloc(WIRE_MAX_CHUNK);
    s->scratch2 = star_malloc(WIRE_MAX_CHUNK);
    s->locs = star_calloc(STAR_MAX_LOCS, sizeof *s->locs);
    s->zdctx = ZSTD_createDCtx();
    s->drain_timer = evtimer_new(s->base, drain_timeout_cb, s);
    if (!s->scratch || !s->scratch2 || !s->locs || !s->zdctx || !s->drain_timer)
        return ORBIT_ENOMEM;
    rc = star_health_start(s);
    return rc == 0 ? star_expire_start(s) : rc;
}

int
star_new(const struct star_config *cfg, struct star **out)
{
    if (!cfg || !out)
        return ORBIT_EINVAL;
    struct sigaction old;
    if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL)
        signal(SIGPIPE, SIG_IGN);
    struct star *s = star_calloc(1, sizeof *s);
    if (!s)
        return ORBIT_ENOMEM;
    s->rootfd = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->started_ms = star_now_ms();
    int rc = setup(s, cfg);
    if (rc == 0 && s->own_base) {
        if (pthread_create(&s->thread, NULL, loop_main, s) != 0)
            rc = ORBIT_ENOMEM;
        else
            s->own_thread = true;
    }
    if (rc < 0) {
        star_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static int
do_stop(struct star *s, void *arg)
{
    (void)arg;
    s->stop = true;
    event_base_loopbreak(s->base);
    return 0;
}

void
star_free(struct star *s)
{
    if (!s)
        return;
    if (s->own_thread) {
        star_drain(s);
        in_loop(s, do_stop, NULL);
        pthread_join(s->thread, NULL);
        s->own_thread = false;
    } else if (s->base) {
        do_drain(s, NULL);
        force_close_all(s);
    }
    if (s->listener)
        evconnlistener_free(s->listener);
    if (s->lister)
        star_lister_release(s);
    star_batch_release(s);
    star_partials_free(s);
    star_commit_release(s);
    if (s->drain_timer)
        event_free(s->drain_timer);
    if (s->health_timer)
        event_free(s->health_timer);
    if (s->expire_timer)
        event_free(s->expire_timer);
    if (s->own_base)
        event_base_free(s->base);
    star_store_close(s->store);
    health_free(s->health);
    if (s->rootfd >= 0)
        close(s->rootfd);
    ZSTD_freeDCtx(s->zdctx);
    free(s->scratch);
    free(s->scratch2);
    free(s->locs);
    free(s->root);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
