/*
 * The libevent client and the blocking wrapper against a small fake star:
 * handshake, pipelining with replies out of order, errors, timeouts,
 * backpressure, and exactly-once ECLOSED on disconnect.
 */
#include <criterion/criterion.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "orbit/error.h"
#include "orbit/wire.h"
#include "orbit/wire_auth.h"
#include "orbit/wire_client.h"
#include "orbit/wire_sync.h"
#include "wire_internal.h"

#define TOKEN  "t0ken-for-tests"
#define MAXREQ 256

/* Strong definitions of the allocation seam: fail the Nth allocation. */
static int alloc_count, alloc_fail_at;

static bool
alloc_fails(void)
{
    return alloc_fail_at > 0 && ++alloc_count == alloc_fail_at;
}

void *
wire_malloc(size_t size)
{
    return alloc_fails() ? NULL : malloc(size);
}

void *
wire_calloc(size_t n, size_t size)
{
    return alloc_fails() ? NULL : calloc(n, size);
}

void *
wire_realloc(void *p, size_t size)
{
    return alloc_fails() ? NULL : realloc(p, size);
}

/* ---- the fake star ---- */

struct fake {
    struct event_base *base;
    struct bufferevent *bev;
    struct evconnlistener *listener;
    uint8_t challenge[WIRE_CHALLENGE_LEN];
    bool authed;
    int hold;        /* > 0: keep replies until this many, then reverse */
    int close_after; /* > 0: close, unanswered, after this many requests */
    uint8_t ignore;  /* a request type never answered */
    bool bulletins;  /* a BULLETIN before every reply */
    bool bad_have;   /* HAVE_REPLY with the wrong count */
    bool closing;
    int nreq;
    uint32_t ids[MAXREQ];
    uint8_t types[MAXREQ];
    uint32_t have_n[MAXREQ];
};

static void
fake_send(struct fake *f, const struct wire_msg *m)
{
    size_t len;
    cr_assert_eq(wire_encoded_len(m, &len), 0);
    uint8_t *buf = malloc(len);
    cr_assert_eq(wire_encode(m, buf, len, &len), 0);
    bufferevent_write(f->bev, buf, len);
    free(buf);
}

static void
fake_close(struct fake *f)
{
    bufferevent_free(f->bev);
    f->bev = NULL;
}

static void
fake_reply(struct fake *f, int i)
{
    static const uint8_t all[WIRE_MAX_HAVE / 8 + 1] = {
        [0 ... WIRE_MAX_HAVE / 8] = 0xff};
    struct wire_msg m = {.type = wire_reply_type(f->types[i]),
                         .request_id = f->ids[i]};
    if (f->bulletins) {
        struct wire_msg b = {.type = WIRE_BULLETIN};
        b.u.bulletin = (struct wire_bulletin){
            WIRE_SEV_WARNING, WIRE_ADV_DISK_WARNING, "disk", 4, "86%", 3};
        fake_send(f, &b);
    }
    switch (f->types[i]) {
    case WIRE_HAVE:
        m.u.have_reply =
            (struct wire_have_reply){f->have_n[i] + (f->bad_have ? 1 : 0), all};
        break;
    case WIRE_LIST:
        m.u.list_reply.next_cursor = "";
        break;
    case WIRE_DELETE:
        wire_error_init(&m, f->ids[i], ORBIT_EPATH, "path refused: x", 0);
        break;
    case WIRE_HEALTH:
        m.u.health.disk_total = 1000 + f->ids[i];
        m.u.health.state = WIRE_STATE_READY;
        break;
    case WIRE_GOODBYE:
        f->closing = true;
        break;
    default:
        break;
    }
    fake_send(f, &m);
}

static void
fake_request(struct fake *f, const struct wire_msg *m)
{
    /* A ring: only `hold` needs more than the latest request, and it is
     * used with few. */
    int i = f->nreq++ % MAXREQ;
    cr_assert(f->hold < MAXREQ);
    f->ids[i] = m->request_id;
    f->types[i] = m->type;
    f->have_n[i] = m->type == WIRE_HAVE ? m->u.have.n : 0;
    if (f->close_after && f->nreq == f->close_after) {
        fake_close(f);
        return;
    }
    if (m->type == f->ignore)
        return;
    if (!f->hold)
        fake_reply(f, i);
    else if (f->nreq == f->hold)
        for (int k = f->nreq - 1; k >= 0; k--)
            fake_reply(f, k);
}

static void
fake_frame(struct fake *f, const struct wire_msg *m)
{
    struct wire_msg r = {.request_id = m->request_id};
    if (!f->authed) {
        int rc = m->type == WIRE_AUTH_RESPONSE
                     ? wire_auth_verify((const uint8_t *)TOKEN, strlen(TOKEN),
                                        f->challenge, m->u.response.mac)
                     : ORBIT_EAUTH;
        if (rc < 0) {
            wire_error_init(&r, m->request_id, ORBIT_EAUTH, "bad token",
                            WIRE_NO_ITEM);
            fake_send(f, &r);
            f->closing = true;
            return;
        }
        f->authed = true;
        r.type = WIRE_AUTH_OK;
        fake_send(f, &r);
    } else if (m->type == WIRE_HELLO) {
        r.type = WIRE_HELLO_OK;
        r.u.hello_ok = (struct wire_hello_ok){WIRE_VERSION,
                                              "fake",
                                              4,
                                              WIRE_STATE_READY,
                                              WIRE_MAX_PAYLOAD,
                                              WIRE_MAX_HAVE,
                                              WIRE_MAX_CHUNK,
                                              64};
        fake_send(f, &r);
    } else {
        fake_request(f, m);
    }
}

static void
fake_read(struct bufferevent *bev, void *arg)
{
    struct fake *f = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    for (;;) {
        size_t avail = evbuffer_get_length(in), used = 0;
        struct wire_msg m;
        if (avail < WIRE_HDR_LEN)
            return;
        int rc = wire_frame_decode(evbuffer_pullup(in, -1), avail, &m, &used);
        if (rc == ORBIT_ETRUNC)
            return;
        cr_assert_eq(rc, 0, "client sent a bad frame: %d", rc);
        fake_frame(f, &m);
        if (!f->bev)
            return;
        evbuffer_drain(in, used);
    }
}

static void
fake_write(struct bufferevent *bev, void *arg)
{
    struct fake *f = arg;
    (void)bev;
    if (f->closing)
        fake_close(f);
}

static void
fake_event(struct bufferevent *bev, short what, void *arg)
{
    struct fake *f = arg;
    (void)bev;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        fake_close(f);
}

static void
fake_start(struct fake *f, evutil_socket_t fd)
{
    evutil_make_socket_nonblocking(fd);
    f->bev = bufferevent_socket_new(f->base, fd, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(f->bev, fake_read, fake_write, fake_event, f);
    bufferevent_enable(f->bev, EV_READ | EV_WRITE);
    struct wire_msg m = {.type = WIRE_AUTH_CHALLENGE};
    wire_auth_challenge(f->challenge);
    m.u.challenge.version = WIRE_VERSION;
    memcpy(m.u.challenge.challenge, f->challenge, WIRE_CHALLENGE_LEN);
    fake_send(f, &m);
}

/* ---- client side bookkeeping ---- */

struct rec {
    int calls;
    int status;
    uint8_t type;
    uint32_t n;
    uint64_t disk_total;
    bool retryable;
};

struct world {
    struct event_base *base;
    struct fake star;
    struct wire_client *c;
    int sv[2];
    int ready_calls, ready_status;
    int closed_calls, closed_status;
    int drains;
    int bulletins;
    int completed; /* callbacks seen before on_closed */
    int completed_at_close;
    struct rec recs[MAXREQ];
};

static struct world w;

static void
on_ready(void *arg, int status, const struct wire_hello_ok *hello)
{
    struct world *ww = arg;
    ww->ready_calls++;
    ww->ready_status = status;
    if (status == 0)
        cr_assert_str_eq(hello->star_name, "fake");
}

static void
on_closed(void *arg, int status)
{
    struct world *ww = arg;
    ww->closed_calls++;
    ww->closed_status = status;
    ww->completed_at_close = ww->completed;
}

static void
on_bulletin(void *arg, const struct wire_bulletin *b)
{
    struct world *ww = arg;
    ww->bulletins++;
    cr_assert_str_eq(b->category, "disk");
    cr_assert_eq(b->advisories, WIRE_ADV_DISK_WARNING);
}

static void
on_drain(void *arg)
{
    ((struct world *)arg)->drains++;
}

static void
check(void)
{
    if (w.c)
        cr_assert_eq(wire_client_check(w.c), 0, "client invariants");
}

static void
record(void *arg, int status, const struct wire_msg *reply)
{
    struct rec *r = arg;
    r->calls++;
    r->status = status;
    w.completed++;
    if (!reply)
        return;
    r->type = reply->type;
    if (reply->type == WIRE_HAVE_REPLY)
        r->n = reply->u.have_reply.n;
    if (reply->type == WIRE_HEALTH_REPLY)
        r->disk_total = reply->u.health.disk_total;
    if (reply->type == WIRE_ERROR)
        r->retryable = reply->u.error.retryable;
}

static void
setup(void)
{
    signal(SIGPIPE, SIG_IGN);
    memset(&w, 0, sizeof w);
    w.base = event_base_new();
    w.star.base = w.base;
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, w.sv), 0);
    fake_start(&w.star, w.sv[1]);
}

static void
teardown(void)
{
    wire_client_free(w.c);
    if (w.star.bev)
        bufferevent_free(w.star.bev);
    if (w.star.listener)
        evconnlistener_free(w.star.listener);
    event_base_free(w.base);
}

static struct wire_client_config
config(void)
{
    return (struct wire_client_config){
        .fd = w.sv[0],
        .token = (const uint8_t *)TOKEN,
        .token_len = strlen(TOKEN),
        .client_name = "test",
        .job_id = "job-1",
        .on_ready = on_ready,
        .on_closed = on_closed,
        .on_drain = on_drain,
        .on_bulletin = on_bulletin,
        .arg = &w,
    };
}

static void
run_until(const int *flag, int value)
{
    for (int i = 0; i < 2000 && *flag < value; i++) {
        event_base_loop(w.base, EVLOOP_ONCE);
        check();
    }
    cr_assert_geq(*flag, value, "event loop did not get there");
}

static uint8_t ids[8 * WIRE_ID_LEN];

Test(wire_client, pipelined_replies_out_of_order, .init = setup,
     .fini = teardown)
{
    struct wire_client_config cfg = config();
    w.star.hold = 6;
    cr_assert_eq(wire_client_new(w.base, &cfg, &w.c), 0);
    uint32_t rid[6];
    /* Issued before the handshake completes: held, then sent. */
    for (uint32_t i = 0; i < 5; i++)
        cr_assert_eq(
            wire_client_have(w.c, ids, i + 1, record, &w.recs[i], &rid[i]), 0);
    cr_assert_eq(wire_client_health(w.c, record, &w.recs[5], &rid[5]), 0);
    cr_assert_eq(wire_client_pending_requests(w.c), 6);
    cr_assert_gt(wire_client_pending_bytes(w.c), 0);
    run_until(&w.completed, 6);
    cr_assert_eq(w.ready_calls, 1);
    cr_assert_eq(w.ready_status, 0);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(w.recs[i].calls, 1);
        cr_assert_eq(w.recs[i].status, 0);
        cr_assert_eq(w.recs[i].type, WIRE_HAVE_REPLY);
        cr_assert_eq(w.recs[i].n, (uint32_t)i + 1, "reply matched by id");
        for (int k = 0; k < i; k++)
            cr_assert_neq(rid[i], rid[k]);
    }
    cr_assert_eq(w.recs[5].disk_total, 1000 + rid[5]);
    cr_assert_eq(wire_client_pending_requests(w.c), 0);
    cr_assert(wire_client_ready(w.c));
}

Test(wire_client, error_reply_and_goodbye, .init = setup, .fini = teardown)
{
    struct wire_client_config cfg = config();
    cr_assert_eq(wire_client_new(w.base, &cfg, &w.c), 0);
    run_until(&w.ready_calls, 1);
    cr_assert_eq(wire_client_delete(w.c, "x", 0, record, &w.recs[0], NULL), 0);
    cr_assert_eq(wire_client_list(w.c, NULL, NULL, 0, record, &w.recs[1], NULL),
                 0);
    cr_assert_eq(wire_client_delete(w.c, "../x", 0, record, &w.recs[9], NULL),
                 ORBIT_EPATH, "refused before it is sent");
    cr_assert_eq(wire_client_goodbye(w.c, record, &w.recs[2], NULL), 0);
    run_until(&w.closed_calls, 1);
    cr_assert_eq(w.recs[0].status, ORBIT_EPATH);
    cr_assert_eq(w.recs[0].type, WIRE_ERROR);
    cr_assert_not(w.recs[0].retryable);
    cr_assert_eq(w.recs[1].type, WIRE_LIST_REPLY);
    cr_assert_eq(w.recs[2].type, WIRE_GOODBYE_OK);
    cr_assert_eq(w.closed_status, 0, "a clean goodbye");
    cr_assert_eq(wire_client_health(w.c, record, &w.recs[3], NULL),
                 ORBIT_ECLOSED);
}

Test(wire_client, disconnect_fails_every_pending_once, .init = setup,
     .fini = teardown)
{
    struct wire_client_config cfg = config();
    w.star.close_after = 4;
    cr_assert_eq(wire_client_new(w.base, &cfg, &w.c), 0);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(wire_client_health(w.c, record, &w.recs[i], NULL), 0);
    run_until(&w.closed_calls, 1);
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(w.recs[i].calls, 1, "request %d", i);
        cr_assert_eq(w.recs[i].status, ORBIT_ECLOSED);
    }
    cr_assert_eq(w.completed_at_close, 10, "pending first, then on_closed");
    cr_assert_eq(w.closed_status, ORBIT_ECLOSED);
    for (int i = 0; i < 20; i++)
        event_base_loop(w.base, EVLOOP_NONBLOCK);
    cr_assert_eq(w.closed_calls, 1);
    cr_assert_eq(w.completed, 10);
}

Test(wire_client, wrong_token_fails_ready, .init = setup, .fini = teardown)
{
    struct wire_client_config cfg = config();
    cfg.token = (const uint8_t *)"not-the-token";
    cfg.token_len = 13;
    cr_assert_eq(wire_client_new(w.base, &cfg, &w.c), 0);
    cr_assert_eq(wire_client_health(w.c, record, &w.recs[0], NULL), 0);
    run_until(&w.ready_calls, 1);
    cr_assert_eq(w.ready_status, ORBIT_EAUTH);
    cr_assert_eq(w.recs[0].calls, 1);
    cr_assert_eq(w.recs[0].status, ORBIT_ECLOSED);
    cr_assert_eq(w.closed_calls, 0);
    cr_assert_not(wire_client_ready(w.c));
}

Test(wire_client, request_timeout_then_late_reply_ignored, .init = setup,
     .fini = teardown)
{
    struct wire_client_config cfg = config();
    cfg.request_timeout_ms = 50;
    w.star.ignore = WIRE_HEALTH;
    cr_assert_eq(wire_client_new(w.base, &cfg, &w.c), 0);
    cr_assert_eq(wire_client_health(w.c, record, &w.recs[0], NULL), 0);
    cr_assert_eq(wire_client_have(w.c, ids, 2, record, &w.recs[1], NULL), 0);
    run_until(&w.completed, 2);
    cr_assert_eq(w.recs[1].status, 0);
    cr_assert_eq(w.recs[0].status, ORBIT_ETIMEDOUT);
    /* The reply arrives after all: nobody is called twice. */
    fake_reply(&w.star, 0);
    for (int i = 0; i < 20; i++)
        event_base_loop(w.base, EVLOOP_NONBLOCK);
    cr_assert_eq(w.recs[0].calls, 1);
    cr_assert(wire_client_ready(w.c));
}

Test(wire_client, backpressure_bound_and_drain, .init = setup, .fini = teardown)
{
    static uint8_t data[100000];
    struct wire_client_config cfg = config();
    cfg.max_out_bytes = 310000;
    cfg.low_water = 1000;
    cr_assert_eq(wire_client_new(w.base, &cfg, &w.c), 0);
    struct wire_put put = {.codec = WIRE_CODEC_RAW,
                           .raw_len = sizeof data,
                           .data = data,
                           .data_len = sizeof data};
    int ok = 0, rc = 0;
    while ((rc = wire_client_put(w.c, &put, record, &w.recs[ok], NULL)) == 0)
        ok++;
    cr_assert_eq(rc, ORBIT_EFULL);
    cr_assert_eq(ok, 3);
    cr_assert_leq(wire_client_pending_bytes(w.c), 310000);
    run_until(&w.drains, 1);
    cr_assert_leq(wire_client_pending_bytes(w.c), 1000);
    cr_assert_eq(wire_client_put(w.c, &put, record, &w.recs[ok], NULL), 0);
    run_until(&w.completed, 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(w.recs[i].type, WIRE_PUT_OK);
}

Test(wire_client, large_chunks_bulletins_and_bad_replies, .init = setup,
     .fini = teardown)
{
    static uint8_t data[WIRE_MAX_CHUNK];
    struct wire_client_config cfg = config();
    w.star.bulletins = true;
    w.star.bad_have = true;
    cr_assert_eq(wire_client_new(w.base, &cfg, &w.c), 0);
    struct wire_put put = {.codec = WIRE_CODEC_RAW,
                           .raw_len = sizeof data,
                           .data = data,
                           .data_len = sizeof data};
    for (int i = 0; i < 4; i++)
        cr_assert_eq(wire_client_put(w.c, &put, record, &w.recs[i], NULL), 0);
    cr_assert_eq(wire_client_have(w.c, ids, 8, record, &w.recs[4], NULL), 0);
    run_until(&w.completed, 5);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(w.recs[i].type, WIRE_PUT_OK);
    cr_assert_eq(w.recs[4].status, ORBIT_EPROTO, "reply count mismatch");
    cr_assert_eq(w.bulletins, 5);
    cr_assert(wire_client_ready(w.c));
}

/* A ready session with one HEALTH the star never answers. */
static void
start_with_unanswered_health(void)
{
    struct wire_client_config cfg = config();
    w.star.ignore = WIRE_HEALTH;
    cr_assert_eq(wire_client_new(w.base, &cfg, &w.c), 0);
    cr_assert_eq(wire_client_health(w.c, record, &w.recs[0], NULL), 0);
    run_until(&w.ready_calls, 1);
}

static void
expect_session_end(int status)
{
    run_until(&w.closed_calls, 1);
    cr_assert_eq(w.closed_status, status);
    cr_assert_eq(w.recs[0].status, ORBIT_ECLOSED);
    cr_assert_eq(w.recs[0].calls, 1);
}

Test(wire_client, unusable_header_ends_the_session, .init = setup,
     .fini = teardown)
{
    start_with_unanswered_health();
    const uint8_t bad[WIRE_HDR_LEN] = {7, WIRE_HEALTH_REPLY, 0, 0, 0, 0, 0, 1};
    bufferevent_write(w.star.bev, bad, sizeof bad);
    expect_session_end(ORBIT_EVERSION);
}

/* A PACKED frame from the star that does not decode: the replies in it
 * cannot be named, so the session ends now rather than at their timeouts. */
Test(wire_client, a_malformed_packed_frame_ends_the_session, .init = setup,
     .fini = teardown)
{
    start_with_unanswered_health();
    /* codec 0 (raw) is no PACKED codec */
    const uint8_t bad[WIRE_HDR_LEN + 14] = {
        WIRE_VERSION, WIRE_PACKED, 0x80, 0, 0, 0, 0, 0, 0, 0, 0,
        14,           0,           0,    0, 0, 12};
    bufferevent_write(w.star.bev, bad, sizeof bad);
    expect_session_end(ORBIT_EPROTO);
}

Test(wire_client, session_error_ends_the_session, .init = setup,
     .fini = teardown)
{
    start_with_unanswered_health();
    struct wire_msg m;
    wire_error_init(&m, 0, ORBIT_ESTATE, "star stopping", WIRE_NO_ITEM);
    fake_send(&w.star, &m);
    expect_session_end(ORBIT_ESTATE);
}

/* Requests issued from callbacks through a tiny window: slots are reused
 * thousands of times and every reply still finds its request. */
static int chain_done;

static void
chain_cb(void *arg, int status, const struct wire_msg *reply)
{
    uint32_t n = (uint32_t)(uintptr_t)arg;
    cr_assert_eq(status, 0);
    cr_assert_eq(reply->u.have_reply.n, n);
    chain_done++;
    if (chain_done + (int)wire_client_pending_requests(w.c) < 2000) {
        uint32_t next = (n % 8) + 1;
        cr_assert_eq(wire_client_have(w.c, ids, next, chain_cb,
                                      (void *)(uintptr_t)next, NULL),
                     0);
    }
}

Test(wire_client, window_reuse_from_callbacks, .init = setup, .fini = teardown)
{
    struct wire_client_config cfg = config();
    cfg.max_pending = 8;
    cr_assert_eq(wire_client_new(w.base, &cfg, &w.c), 0);
    uint32_t n;
    for (n = 1; n <= 8; n++)
        cr_assert_eq(
            wire_client_have(w.c, ids, n, chain_cb, (void *)(uintptr_t)n, NULL),
            0);
    cr_assert_eq(wire_client_have(w.c, ids, 1, chain_cb, NULL, NULL),
                 ORBIT_EFULL, "window of 8");
    run_until(&chain_done, 2000);
    cr_assert_eq(wire_client_pending_requests(w.c), 0);
}

static void
free_from_callback(void *arg, int status, const struct wire_msg *reply)
{
    record(arg, status, reply);
    wire_client_free(w.c);
    w.c = NULL;
}

Test(wire_client, free_cancels_pending_even_inside_a_callback, .init = setup,
     .fini = teardown)
{
    struct wire_client_config cfg = config();
    w.star.ignore = WIRE_HEALTH;
    cr_assert_eq(wire_client_new(w.base, &cfg, &w.c), 0);
    cr_assert_eq(wire_client_health(w.c, record, &w.recs[1], NULL), 0);
    cr_assert_eq(
        wire_client_have(w.c, ids, 1, free_from_callback, &w.recs[0], NULL), 0);
    run_until(&w.completed, 2);
    cr_assert_eq(w.recs[0].status, 0);
    cr_assert_eq(w.recs[1].status, ORBIT_ECANCELED);
    cr_assert_eq(w.recs[1].calls, 1);
    cr_assert_null(w.c);
}

static void
accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
          int len, void *arg)
{
    struct fake *f = arg;
    (void)sa;
    (void)len;
    /* One connection per fake: the loop ends when it does. */
    evconnlistener_free(l);
    f->listener = NULL;
    fake_start(f, fd);
}

/* Listen on an ephemeral loopback port; returns the port. */
static uint16_t
fake_listen(struct fake *f)
{
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    f->listener = evconnlistener_new_bind(
        f->base, accept_cb, f, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
        (struct sockaddr *)&sin, sizeof sin);
    cr_assert_not_null(f->listener);
    socklen_t sl = sizeof sin;
    getsockname(evconnlistener_get_fd(f->listener), (struct sockaddr *)&sin,
                &sl);
    return ntohs(sin.sin_port);
}

/* A loopback port nobody listens on (bound, then closed). */
static uint16_t
unused_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sin;
    bind(s, (struct sockaddr *)&sin, sizeof sin);
    getsockname(s, (struct sockaddr *)&sin, &sl);
    close(s);
    return ntohs(sin.sin_port);
}

Test(wire_client, connects_by_host_and_port)
{
    signal(SIGPIPE, SIG_IGN);
    memset(&w, 0, sizeof w);
    w.base = event_base_new();
    w.star.base = w.base;
    struct wire_client_config cfg = config();
    cfg.fd = -1;
    cfg.host = "127.0.0.1";
    cfg.port = fake_listen(&w.star);
    cr_assert_eq(wire_client_new(w.base, &cfg, &w.c), 0);
    cr_assert_eq(wire_client_health(w.c, record, &w.recs[0], NULL), 0);
    run_until(&w.completed, 1);
    cr_assert_eq(w.ready_status, 0);
    cr_assert_eq(w.recs[0].type, WIRE_HEALTH_REPLY);
    cr_assert(wire_client_peer_local(w.c), "127.0.0.1 is this host");
    teardown();
}

static struct sockaddr_in
v4(const char *a)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    cr_assert_eq(inet_pton(AF_INET, a, &sin.sin_addr), 1, "%s", a);
    return sin;
}

static struct sockaddr_in6
v6(const char *a)
{
    struct sockaddr_in6 sin6 = {.sin6_family = AF_INET6};
    cr_assert_eq(inet_pton(AF_INET6, a, &sin6.sin6_addr), 1, "%s", a);
    return sin6;
}

#define SA(x) ((const struct sockaddr *)&(x))

/* Which stars are on this host (chunks go to them uncompressed under
 * --compress auto): loopback, a UNIX socket, or an address of our own. */
Test(wire_client, a_star_is_local_on_loopback_or_an_own_address)
{
    struct sockaddr_in lo = v4("127.0.0.1"), lo9 = v4("127.9.8.7"),
                       a = v4("10.1.2.3"), b = v4("10.1.2.4");
    struct sockaddr_in6 lo6 = v6("::1"), mapped = v6("::ffff:127.0.0.1"),
                        mapped_far = v6("::ffff:10.1.2.4"), c = v6("fd00::1"),
                        d = v6("fd00::2");
    struct sockaddr un = {.sa_family = AF_UNIX};
    cr_assert(wire_addr_local(SA(lo), SA(lo)));
    cr_assert(wire_addr_local(SA(lo9), NULL));
    cr_assert(wire_addr_local(SA(lo6), NULL));
    cr_assert(wire_addr_local(SA(mapped), SA(mapped)));
    cr_assert(wire_addr_local(&un, &un));
    cr_assert(wire_addr_local(SA(b), SA(b)), "our own address");
    cr_assert(wire_addr_local(SA(d), SA(d)), "our own address");
    cr_assert_not(wire_addr_local(SA(b), SA(a)), "another host");
    cr_assert_not(wire_addr_local(SA(b), NULL));
    cr_assert_not(wire_addr_local(SA(d), SA(c)), "another host");
    cr_assert_not(wire_addr_local(SA(mapped_far), SA(c)));
    cr_assert_not(wire_addr_local(SA(b), SA(d)), "families differ");
}

Test(wire_client, connect_refused_reports_econnect)
{
    memset(&w, 0, sizeof w);
    w.base = event_base_new();
    struct wire_client_config cfg = config();
    cfg.fd = -1;
    cfg.host = "127.0.0.1";
    cfg.port = unused_port();
    cr_assert_eq(wire_client_new(w.base, &cfg, &w.c), 0);
    run_until(&w.ready_calls, 1);
    cr_assert_eq(w.ready_status, ORBIT_ECONNECT);
    teardown();
}

/* ---- the blocking wrapper, against the fake star on its own thread ---- */

static void *
star_thread(void *arg)
{
    struct fake *f = arg;
    event_base_dispatch(f->base);
    return NULL;
}

/* A fake star on its own thread, serving one end of a socketpair. */
struct threaded {
    struct fake f;
    pthread_t t;
    int client_fd;
};

static void
threaded_start(struct threaded *th)
{
    int sv[2];
    signal(SIGPIPE, SIG_IGN);
    memset(th, 0, sizeof *th);
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    th->f.base = event_base_new();
    fake_start(&th->f, sv[1]);
    th->client_fd = sv[0];
    pthread_create(&th->t, NULL, star_thread, &th->f);
}

static void
threaded_stop(struct threaded *th)
{
    pthread_join(th->t, NULL);
    event_base_free(th->f.base);
}

Test(wire_sync, request_reply_and_errors)
{
    struct threaded th;
    threaded_start(&th);
    struct wire_sync *s = NULL;
    cr_assert_eq(wire_sync_from_fd(th.client_fd, (const uint8_t *)TOKEN,
                                   strlen(TOKEN), "sync", 5000, &s),
                 0);
    cr_assert_str_eq(wire_sync_hello(s)->star_name, "fake");
    struct wire_msg req = {.type = WIRE_HEALTH}, rep;
    cr_assert_eq(wire_sync_request(s, &req, &rep), 0);
    cr_assert_eq(rep.type, WIRE_HEALTH_REPLY);
    req.type = WIRE_DELETE;
    req.u.del.path = "a";
    req.u.del.path_len = 1;
    cr_assert_eq(wire_sync_request(s, &req, &rep), ORBIT_EPATH);
    cr_assert_eq(rep.type, WIRE_ERROR);
    cr_assert_str_eq(rep.u.error.message, "path refused: x");
    req.type = WIRE_GOODBYE;
    cr_assert_eq(wire_sync_request(s, &req, &rep), 0);
    cr_assert_eq(wire_sync_request(s, &req, &rep), ORBIT_ECLOSED);
    wire_sync_free(s);
    threaded_stop(&th);
}

Test(wire_sync, wrong_token_is_eauth)
{
    struct threaded th;
    threaded_start(&th);
    struct wire_sync *s = NULL;
    cr_assert_eq(wire_sync_from_fd(th.client_fd, (const uint8_t *)"nope", 4,
                                   "sync", 5000, &s),
                 ORBIT_EAUTH);
    cr_assert_null(s);
    threaded_stop(&th);
}

Test(wire_client, every_allocation_failure_is_clean, .init = setup,
     .fini = teardown)
{
    struct wire_client_config cfg = config();
    int rc = ORBIT_ENOMEM;
    int n;
    for (n = 1; n < 50 && rc == ORBIT_ENOMEM; n++) {
        alloc_count = 0;
        alloc_fail_at = n;
        rc = wire_client_new(w.base, &cfg, &w.c);
        if (rc == ORBIT_ENOMEM)
            cr_assert_neq(fcntl(w.sv[0], F_GETFD), -1, "caller keeps its fd");
    }
    alloc_fail_at = 0;
    cr_assert_eq(rc, 0);
    cr_assert_gt(n, 3, "the seam was used");
    cr_assert_eq(wire_client_health(w.c, record, &w.recs[0], NULL), 0);
    run_until(&w.completed, 1);
    cr_assert_eq(w.recs[0].status, 0);
}

Test(wire_sync, every_allocation_failure_is_clean)
{
    int rc = ORBIT_ENOMEM;
    int n;
    for (n = 1; n < 50 && rc == ORBIT_ENOMEM; n++) {
        struct threaded th;
        threaded_start(&th);
        struct wire_sync *s = NULL;
        alloc_count = 0;
        alloc_fail_at = n;
        rc = wire_sync_from_fd(th.client_fd, (const uint8_t *)TOKEN,
                               strlen(TOKEN), "sync", 5000, &s);
        alloc_fail_at = 0;
        if (rc == 0) {
            struct wire_msg req = {.type = WIRE_GOODBYE}, rep;
            cr_assert_eq(wire_sync_request(s, &req, &rep), 0);
        }
        wire_sync_free(s);
        threaded_stop(&th);
    }
    cr_assert_eq(rc, 0);
    cr_assert_gt(n, 3, "the seam was used");
}

Test(wire_sync, connects_over_tcp)
{
    signal(SIGPIPE, SIG_IGN);
    struct fake f = {0};
    f.base = event_base_new();
    uint16_t port = fake_listen(&f);
    pthread_t t;
    pthread_create(&t, NULL, star_thread, &f);
    struct wire_sync *s = NULL;
    cr_assert_eq(wire_sync_connect("127.0.0.1", port, (const uint8_t *)TOKEN,
                                   strlen(TOKEN), "sync", 5000, &s),
                 0);
    struct wire_msg req = {.type = WIRE_GOODBYE}, rep;
    cr_assert_eq(wire_sync_request(s, &req, &rep), 0);
    cr_assert_eq(rep.type, WIRE_GOODBYE_OK);
    wire_sync_free(s);
    pthread_join(t, NULL);
    event_base_free(f.base);
    cr_assert_eq(wire_sync_connect("127.0.0.1", unused_port(),
                                   (const uint8_t *)TOKEN, strlen(TOKEN),
                                   "sync", 5000, &s),
                 ORBIT_ECONNECT);
}
