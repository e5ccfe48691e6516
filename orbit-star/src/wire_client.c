/*
 * The libevent client: handshake state machine, a bounded window of pending
 * requests matched by request id, timeouts, backpressure on the outgoing
 * buffer, and exactly-once completion of every request.
 *
 * Reentrancy: user callbacks may issue requests or free the client. Every
 * libevent entry point brackets its work with enter()/leave(); a free or a
 * close requested inside only marks the client, and leave() releases the
 * bufferevent and the memory once the outermost entry point unwinds.
 */
#include <assert.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/util.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "orbit/error.h"
#include "orbit/wire_auth.h"
#include "orbit/wire_client.h"
#include "orbit/wire_pack.h"
#include "wire_internal.h"

#define DEFAULT_CONNECT_MS 10000u
#define DEFAULT_REQUEST_MS 60000u
#define DEFAULT_PENDING    4096u
#define MAX_PENDING        (1u << 20)
#define DEFAULT_OUT_BYTES  ((size_t)64 << 20)
#define PACK_FLUSH         ((size_t)64 << 10) /* a run this long is sent */

enum cstate {
    CS_CONNECTING, /* TCP connect in progress */
    CS_CHALLENGE,  /* waiting for AUTH_CHALLENGE */
    CS_AUTH,       /* AUTH_RESPONSE sent, waiting for AUTH_OK */
    CS_HELLO,      /* HELLO sent, waiting for HELLO_OK */
    CS_READY,
    CS_CLOSED,
};

struct slot {
    bool used;
    uint8_t want; /* the reply type */
    uint32_t id;
    uint32_t count; /* HAVE: ids asked, checked against the reply */
    uint64_t deadline_ms;
    wire_reply_cb cb;
    void *arg;
};

struct wire_client {
    struct event_base *base;
    struct bufferevent *bev;
    struct evdns_base *dns;
    struct evbuffer *held; /* requests encoded before the session is ready */
    struct event *timer;
    enum cstate state;
    struct wire_client_config cfg; /* strings point at the copies below */
    uint8_t token[WIRE_TOKEN_MAX];
    char *name, *job_id, *traceparent, *host;
    struct slot *slots;
    uint32_t mask; /* slot count - 1, a power of two minus one */
    size_t npending;
    uint32_t next_id;
    uint32_t hs_id; /* request id of the handshake frame in flight */
    uint64_t connect_deadline_ms;
    bool above_low;
    bool goodbye_ok;
    int busy;
    bool dying;
    uint64_t bytes_out, bytes_in; /* whole frames sent / received */
    /* PACKED frames: small requests wait in `pack` until the loop comes
     * round (pack_ev) or the run is long; replies may arrive packed. */
    bool packing; /* the star takes PACKED frames */
    int pack_error;
    struct evbuffer *pack;
    struct event *pack_ev;
    struct wire_packer *packer;
    struct wire_unpacker *unpacker;
};

static uint64_t
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void
destroy(struct wire_client *c)
{
    if (c->bev)
        bufferevent_free(c->bev);
    if (c->dns)
        evdns_base_free(c->dns, 0);
    if (c->held)
        evbuffer_free(c->held);
    if (c->timer)
        event_free(c->timer);
    if (c->pack)
        evbuffer_free(c->pack);
    if (c->pack_ev)
        event_free(c->pack_ev);
    wire_packer_free(c->packer);
    wire_unpacker_free(c->unpacker);
    free(c->slots);
    free(c->name);
    free(c->job_id);
    free(c->traceparent);
    free(c->host);
    explicit_bzero(c->token, sizeof c->token);
    free(c);
}

static void
enter(struct wire_client *c)
{
    c->busy++;
}

static void
leave(struct wire_client *c)
{
    assert(c->busy > 0);
    if (--c->busy > 0)
        return;
    if (c->state == CS_CLOSED && c->bev) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (c->dying)
        destroy(c);
}

static struct slot *
slot_of(struct wire_client *c, uint32_t id)
{
    struct slot *s = &c->slots[id & c->mask];
    return (s->used && s->id == id) ? s : NULL;
}

/* Take the slot out of the window first, so the callback may reuse it. */
static void
complete(struct wire_client *c, struct slot *s, int status,
         const struct wire_msg *reply)
{
    wire_reply_cb cb = s->cb;
    void *arg = s->arg;
    memset(s, 0, sizeof *s);
    c->npending--;
    if (cb)
        cb(arg, status, reply);
}

static void
fail_pending(struct wire_client *c, int status)
{
    for (size_t i = 0; i <= c->mask && c->npending > 0; i++)
        if (c->slots[i].used)
            complete(c, &c->slots[i], status, NULL);
}

/* End the session once: pending requests first, then the owner. */
static void
fail_session(struct wire_client *c, int reason)
{
    if (c->state == CS_CLOSED)
        return;
    bool was_ready = c->state == CS_READY;
    c->state = CS_CLOSED;
    if (c->bev)
        bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    evbuffer_drain(c->held, evbuffer_get_length(c->held));
    evbuffer_drain(c->pack, evbuffer_get_length(c->pack));
    event_del(c->pack_ev);
    event_del(c->timer);
    fail_pending(c, ORBIT_ECLOSED);
    if (!was_ready && c->cfg.on_ready)
        c->cfg.on_ready(c->cfg.arg, reason < 0 ? reason : ORBIT_ECLOSED, NULL);
    else if (was_ready && c->cfg.on_closed)
        c->cfg.on_closed(c->cfg.arg, reason);
}

size_t
wire_client_pending_bytes(const struct wire_client *c)
{
    size_t n = evbuffer_get_length(c->held) + evbuffer_get_length(c->pack);
    if (c->bev && c->state != CS_CLOSED)
        n += evbuffer_get_length(bufferevent_get_output(c->bev));
    return n;
}

void
wire_client_traffic(const struct wire_client *c, uint64_t *out, uint64_t *in)
{
    *out = c ? c->bytes_out : 0;
    *in = c ? c->bytes_in : 0;
}

size_t
wire_client_pending_requests(const struct wire_client *c)
{
    return c->npending;
}

bool
wire_client_ready(const struct wire_client *c)
{
    return c && c->state == CS_READY;
}

static bool
addr_loopback(const struct sockaddr *a)
{
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)a;
        return (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
    }
    if (a->sa_family == AF_INET6) {
        const struct in6_addr *v6 =
            &((const struct sockaddr_in6 *)a)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(v6))
            return true;
        return IN6_IS_ADDR_V4MAPPED(v6) && v6->s6_addr[12] == 127;
    }
    return false;
}

bool
wire_addr_local(const struct sockaddr *peer, const struct sockaddr *self)
{
    if (peer->sa_family == AF_UNIX || addr_loopback(peer))
        return true;
    if (!self || peer->sa_family != self->sa_family)
        return false;
    if (peer->sa_family == AF_INET)
        return ((const struct sockaddr_in *)peer)->sin_addr.s_addr ==
               ((const struct sockaddr_in *)self)->sin_addr.s_addr;
    if (peer->sa_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)peer)->sin6_addr,
                      &((const struct sockaddr_in6 *)self)->sin6_addr,
                      sizeof(struct in6_addr)) == 0;
    return false;
}

bool
wire_client_peer_local(const struct wire_client *c)
{
    if (!c || !c->bev)
        return false;
    evutil_socket_t fd = bufferevent_getfd(c->bev);
    struct sockaddr_storage peer, self;
    socklen_t plen = sizeof peer, slen = sizeof self;
    if (fd < 0 || getpeername(fd, (struct sockaddr *)&peer, &plen) != 0 ||
        getsockname(fd, (struct sockaddr *)&self, &slen) != 0)
        return false;
    return wire_addr_local((const struct sockaddr *)&peer,
                           (const struct sockaddr *)&self);
}

/* Encode m straight into contiguous space at the end of out. */
static int
encode_to(struct wire_client *c, struct evbuffer *out, const struct wire_msg *m,
          size_t len)
{
    struct evbuffer_iovec v;
    size_t written = 0;
    if (evbuffer_reserve_space(out, (ev_ssize_t)len, &v, 1) != 1)
        return ORBIT_ENOMEM;
    int rc = wire_encode(m, v.iov_base, v.iov_len, &written);
    v.iov_len = rc == 0 ? written : 0;
    if (out != c->pack)
        c->bytes_out += v.iov_len;
    evbuffer_commit_space(out, &v, 1);
    return rc;
}

/* Send the packed run as one PACKED frame. */
static int
flush_pack(struct wire_client *c)
{
    size_t sent = 0;
    int rc = wire_pack_run(c->packer, c->pack, bufferevent_get_output(c->bev),
                           &sent);
    c->bytes_out += sent;
    return rc;
}

/* A run that cannot be sent loses its requests: the session ends, from the
 * loop (pack_ev), so no callback runs inside wire_client_send(). */
static int
pack_failed(struct wire_client *c, int rc)
{
    c->pack_error = rc;
    event_active(c->pack_ev, EV_TIMEOUT, 0);
    return rc;
}

static bool
packable(const struct wire_client *c, uint8_t type, size_t len)
{
    return c->packing && c->state == CS_READY && len <= WIRE_MAX_PACK_RAW &&
           type != WIRE_PUT && type != WIRE_HAVE; /* ids do not compress */
}

/* The buffer a request of this type and length goes to, in order: the
 * held requests before HELLO_OK, the pack (a run never exceeds
 * WIRE_MAX_PACK_RAW), or the output after whatever was packed. */
static int
request_buffer(struct wire_client *c, uint8_t type, size_t len,
               struct evbuffer **out)
{
    if (c->state != CS_READY) {
        *out = c->held;
        return 0;
    }
    bool pack = packable(c, type, len);
    int rc = 0;
    if (!pack || evbuffer_get_length(c->pack) + len > WIRE_MAX_PACK_RAW)
        rc = flush_pack(c);
    if (rc < 0)
        return pack_failed(c, rc);
    if (pack)
        event_active(c->pack_ev, EV_TIMEOUT, 0);
    *out = pack ? c->pack : bufferevent_get_output(c->bev);
    return 0;
}

static void
on_pack(evutil_socket_t fd, short what, void *arg)
{
    struct wire_client *c = arg;
    (void)fd;
    (void)what;
    enter(c);
    int rc = c->pack_error;
    if (rc == 0 && c->state == CS_READY)
        rc = flush_pack(c);
    if (rc < 0)
        fail_session(c, rc);
    leave(c);
}

static int
send_now(struct wire_client *c, const struct wire_msg *m)
{
    size_t len = 0;
    int rc = wire_encoded_len(m, &len);
    if (rc == 0)
        rc = encode_to(c, bufferevent_get_output(c->bev), m, len);
    return rc;
}

static uint32_t
take_id(struct wire_client *c)
{
    uint32_t id = c->next_id++;
    if (id == 0)
        id = c->next_id++;
    return id;
}

/* A free slot's id: the next ids whose slot is not in use. */
static uint32_t
free_id(struct wire_client *c)
{
    for (;;) {
        uint32_t id = take_id(c);
        if (!c->slots[id & c->mask].used)
            return id;
    }
}

int
wire_client_send(struct wire_client *c, const struct wire_msg *m,
                 wire_reply_cb cb, void *arg, uint32_t *out_id)
{
    if (!c || !m || m->type == WIRE_AUTH_RESPONSE ||
        wire_reply_type(m->type) == 0)
        return ORBIT_EINVAL;
    if (c->state == CS_CLOSED || c->dying)
        return ORBIT_ECLOSED;
    if (c->npending > c->mask)
        return ORBIT_EFULL;
    size_t len = 0;
    int rc = wire_encoded_len(m, &len);
    if (rc < 0)
        return rc;
    size_t pending = wire_client_pending_bytes(c);
    /* One frame always fits an empty buffer, whatever the bound. */
    if (pending > 0 && (pending >= c->cfg.max_out_bytes ||
                        len > c->cfg.max_out_bytes - pending))
        return ORBIT_EFULL;
    if (c->pack_error)
        return ORBIT_ECLOSED; /* the session is ending */
    struct evbuffer *out;
    rc = request_buffer(c, m->type, len, &out);
    if (rc < 0)
        return rc;
    struct wire_msg copy = *m;
    copy.request_id = free_id(c);
    rc = encode_to(c, out, &copy, len);
    if (rc < 0)
        return rc;
    struct slot *s = &c->slots[copy.request_id & c->mask];
    *s = (struct slot){true,
                       wire_reply_type(m->type),
                       copy.request_id,
                       0,
                       now_ms() + c->cfg.request_timeout_ms,
                       cb,
                       arg};
    if (m->type == WIRE_HAVE)
        s->count = m->u.have.n;
    c->npending++;
    if (pending + len > c->cfg.low_water)
        c->above_low = true;
    if (out_id)
        *out_id = copy.request_id;
    /* A long run (or one large request) goes now. If it cannot, the
     * session ends from the loop and this request fails with the rest. */
    if (out == c->pack && evbuffer_get_length(out) >= PACK_FLUSH &&
        (rc = flush_pack(c)) < 0)
        pack_failed(c, rc);
    return 0;
}

static void
session_ready(struct wire_client *c, const struct wire_msg *m)
{
    c->state = CS_READY;
    c->packing =
        c->cfg.pack_level >= 0 &&
        (m->u.hello_ok.features & WIRE_FEATURE_PACKED) &&
        wire_packer_new(c->cfg.pack_level ? c->cfg.pack_level : WIRE_PACK_LEVEL,
                        &c->packer) == 0;
    if (evbuffer_get_length(c->held) > 0)
        evbuffer_add_buffer(bufferevent_get_output(c->bev), c->held);
    if (c->cfg.on_ready)
        c->cfg.on_ready(c->cfg.arg, 0, &m->u.hello_ok);
}

/* One frame while the handshake is in progress. */
static void
handshake(struct wire_client *c, const struct wire_msg *m)
{
    struct wire_msg out;
    int rc = 0;
    if (m->type == WIRE_ERROR) {
        rc = m->u.error.code;
    } else if (c->state == CS_CHALLENGE) {
        c->hs_id = take_id(c);
        rc = wire_auth_answer(m, c->token, c->cfg.token_len, c->hs_id, &out);
        if (rc == 0)
            rc = send_now(c, &out);
        c->state = CS_AUTH;
    } else if (c->state == CS_AUTH && m->type == WIRE_AUTH_OK &&
               m->request_id == c->hs_id) {
        c->hs_id = take_id(c);
        wire_hello_init(&out, c->hs_id, c->name, c->job_id, c->traceparent);
        if (c->cfg.pack_level >= 0)
            out.u.hello.features = WIRE_FEATURE_PACKED;
        rc = send_now(c, &out);
        c->state = CS_HELLO;
    } else if (c->state == CS_HELLO && m->type == WIRE_HELLO_OK &&
               m->request_id == c->hs_id) {
        rc = m->u.hello_ok.version == WIRE_VERSION ? 0 : ORBIT_EVERSION;
        if (rc == 0)
            session_ready(c, m);
    } else {
        rc = ORBIT_EPROTO;
    }
    if (rc < 0)
        fail_session(c, rc);
}

static void
reply(struct wire_client *c, int rc, const struct wire_msg *m)
{
    struct slot *s = slot_of(c, m->request_id);
    if (!s)
        return; /* timed out earlier, or not ours */
    if (rc < 0)
        complete(c, s, ORBIT_EPROTO, NULL);
    else if (m->type == WIRE_ERROR)
        complete(c, s, m->u.error.code, m);
    else if (m->type != s->want ||
             (m->type == WIRE_HAVE_REPLY && m->u.have_reply.n != s->count))
        complete(c, s, ORBIT_EPROTO, NULL);
    else {
        if (m->type == WIRE_GOODBYE_OK)
            c->goodbye_ok = true;
        complete(c, s, 0, m);
    }
}

static void
dispatch(struct wire_client *c, int rc, const struct wire_msg *m)
{
    if (rc == 0 && m->type == WIRE_BULLETIN) {
        if (c->cfg.on_bulletin && c->state == CS_READY)
            c->cfg.on_bulletin(c->cfg.arg, &m->u.bulletin);
    } else if (rc == 0 && m->type == WIRE_ERROR && m->request_id == 0) {
        fail_session(c, m->u.error.code); /* about the session itself */
    } else if (c->state == CS_READY) {
        reply(c, rc, m);
    } else if (rc < 0) {
        fail_session(c, rc);
    } else {
        handshake(c, m);
    }
}

/* The replies a PACKED frame carries, in order. */
static void
dispatch_packed(struct wire_client *c, const struct wire_msg *m)
{
    const uint8_t *raw;
    size_t len, pos = 0;
    int rc = ORBIT_EPROTO; /* we never offered them */
    if (c->cfg.pack_level >= 0 && !c->unpacker)
        rc = wire_unpacker_new(&c->unpacker);
    if (c->unpacker)
        rc = wire_unpack(c->unpacker, &m->u.packed, &raw, &len);
    if (rc < 0) {
        fail_session(c, rc);
        return;
    }
    struct wire_hdr hdr;
    const uint8_t *payload;
    while (c->state != CS_CLOSED &&
           wire_unpacked_next(raw, len, &pos, &hdr, &payload) > 0) {
        struct wire_msg inner;
        int drc = wire_decode(&hdr, payload, &inner);
        dispatch(c, drc, &inner);
    }
}

static void
on_read(struct bufferevent *bev, void *arg)
{
    struct wire_client *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    enter(c);
    while (c->state != CS_CLOSED) {
        size_t avail = evbuffer_get_length(in);
        struct wire_hdr hdr;
        if (avail < WIRE_HDR_LEN)
            break;
        int rc =
            wire_frame_peek(evbuffer_pullup(in, WIRE_HDR_LEN), avail, &hdr);
        if (rc < 0) {
            fail_session(c, rc);
            break;
        }
        size_t total = WIRE_HDR_LEN + (size_t)hdr.payload_len;
        if (avail < total)
            break;
        const uint8_t *frame = evbuffer_pullup(in, (ev_ssize_t)total);
        struct wire_msg m;
        rc = wire_decode(&hdr, frame + WIRE_HDR_LEN, &m);
        c->bytes_in += total;
        if (rc < 0 && hdr.type == WIRE_PACKED)
            fail_session(c, rc); /* its replies cannot be named */
        else if (rc == 0 && m.type == WIRE_PACKED)
            dispatch_packed(c, &m);
        else
            dispatch(c, rc, &m);
        evbuffer_drain(in, total);
    }
    leave(c);
}

static void
on_write(struct bufferevent *bev, void *arg)
{
    struct wire_client *c = arg;
    (void)bev;
    enter(c);
    if (c->above_low && c->state == CS_READY &&
        wire_client_pending_bytes(c) <= c->cfg.low_water) {
        c->above_low = false;
        if (c->cfg.on_drain)
            c->cfg.on_drain(c->cfg.arg);
    }
    leave(c);
}

static void
set_nodelay(struct bufferevent *bev)
{
    int one = 1;
    /* Fails harmlessly on a socketpair. */
    (void)setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one,
                     sizeof one);
}

static void
on_event(struct bufferevent *bev, short what, void *arg)
{
    struct wire_client *c = arg;
    enter(c);
    if ((what & BEV_EVENT_CONNECTED) && c->state == CS_CONNECTING) {
        set_nodelay(bev);
        c->state = CS_CHALLENGE;
    } else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        int reason = ORBIT_ECLOSED;
        if (c->state == CS_CONNECTING)
            reason = ORBIT_ECONNECT;
        else if (c->goodbye_ok)
            reason = 0;
        fail_session(c, reason);
    }
    leave(c);
}

static void
on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct wire_client *c = arg;
    (void)fd;
    (void)what;
    enter(c);
    uint64_t now = now_ms();
    if (c->state != CS_READY && c->state != CS_CLOSED &&
        now >= c->connect_deadline_ms)
        fail_session(c, ORBIT_ETIMEDOUT);
    for (size_t i = 0; i <= c->mask && c->state == CS_READY; i++)
        if (c->slots[i].used && c->slots[i].deadline_ms <= now)
            complete(c, &c->slots[i], ORBIT_ETIMEDOUT, NULL);
    leave(c);
}

static char *
dup_or_null(const char *s, bool *fail)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = wire_malloc(n);
    if (!d)
        *fail = true;
    else
        memcpy(d, s, n);
    return d;
}

/* Copy the config, apply defaults, size the request window. */
static int
configure(struct wire_client *c, const struct wire_client_config *cfg)
{
    bool fail = false;
    c->cfg = *cfg;
    memcpy(c->token, cfg->token, cfg->token_len);
    c->cfg.token = c->token;
    c->name = dup_or_null(cfg->client_name, &fail);
    c->job_id = dup_or_null(cfg->job_id, &fail);
    c->traceparent = dup_or_null(cfg->traceparent, &fail);
    c->host = dup_or_null(cfg->host, &fail);
    if (!c->cfg.connect_timeout_ms)
        c->cfg.connect_timeout_ms = DEFAULT_CONNECT_MS;
    if (!c->cfg.request_timeout_ms)
        c->cfg.request_timeout_ms = DEFAULT_REQUEST_MS;
    if (!c->cfg.max_out_bytes)
        c->cfg.max_out_bytes = DEFAULT_OUT_BYTES;
    if (!c->cfg.low_water || c->cfg.low_water > c->cfg.max_out_bytes)
        c->cfg.low_water = c->cfg.max_out_bytes / 4;
    uint32_t want = c->cfg.max_pending ? c->cfg.max_pending : DEFAULT_PENDING;
    uint32_t cap = 1;
    while (cap < want && cap < MAX_PENDING)
        cap <<= 1;
    c->mask = cap - 1;
    c->slots = wire_calloc(cap, sizeof *c->slots);
    c->held = evbuffer_new();
    c->pack = evbuffer_new();
    return (fail || !c->slots || !c->held || !c->pack) ? ORBIT_ENOMEM : 0;
}

static int
start_connect(struct wire_client *c)
{
    int fd = c->cfg.fd;
    if (fd >= 0 && evutil_make_socket_nonblocking(fd) < 0)
        return ORBIT_EINVAL;
    c->bev = bufferevent_socket_new(c->base, fd, BEV_OPT_CLOSE_ON_FREE);
    if (!c->bev)
        return ORBIT_ENOMEM;
    bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
    bufferevent_setwatermark(c->bev, EV_WRITE, c->cfg.low_water, 0);
    /* Read no further ahead than one maximal frame: bounded memory, and
     * a frame can always complete. */
    bufferevent_setwatermark(c->bev, EV_READ, 0,
                             WIRE_HDR_LEN + (size_t)WIRE_MAX_PAYLOAD);
    if (bufferevent_enable(c->bev, EV_READ | EV_WRITE) < 0)
        return ORBIT_EIO;
    if (fd >= 0) {
        set_nodelay(c->bev);
        c->state = CS_CHALLENGE;
        return 0;
    }
    c->state = CS_CONNECTING;
    /* Asynchronous resolution when a resolver is configured; otherwise
     * libevent falls back to a blocking lookup (numeric hosts need none). */
    c->dns = evdns_base_new(c->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                         EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (bufferevent_socket_connect_hostname(c->bev, c->dns, AF_UNSPEC, c->host,
                                            c->cfg.port) < 0)
        return ORBIT_ECONNECT;
    return 0;
}

static int
start_timer(struct wire_client *c)
{
    uint32_t tick = c->cfg.request_timeout_ms / 8;
    if (c->cfg.connect_timeout_ms / 8 < tick)
        tick = c->cfg.connect_timeout_ms / 8;
    tick = tick < 10 ? 10 : tick > 1000 ? 1000 : tick;
    struct timeval tv = {(time_t)(tick / 1000), (long)(tick % 1000) * 1000};
    c->timer = event_new(c->base, -1, EV_PERSIST, on_tick, c);
    c->pack_ev = event_new(c->base, -1, 0, on_pack, c);
    if (!c->timer || !c->pack_ev || event_add(c->timer, &tv) < 0)
        return ORBIT_ENOMEM;
    c->connect_deadline_ms = now_ms() + c->cfg.connect_timeout_ms;
    return 0;
}

int
wire_client_new(struct event_base *base, const struct wire_client_config *cfg,
                struct wire_client **out)
{
    if (!base || !cfg || !out || !cfg->token || cfg->token_len == 0 ||
        cfg->token_len > WIRE_TOKEN_MAX || (cfg->fd < 0 && !cfg->host))
        return ORBIT_EINVAL;
    struct wire_client *c = wire_calloc(1, sizeof *c);
    if (!c)
        return ORBIT_ENOMEM;
    c->base = base;
    c->next_id = 1;
    int rc = configure(c, cfg);
    if (rc == 0)
        rc = start_timer(c);
    if (rc == 0)
        rc = start_connect(c);
    if (rc < 0) {
        /* The caller keeps its fd when we fail. */
        if (c->bev && cfg->fd >= 0)
            bufferevent_setfd(c->bev, -1);
        destroy(c);
        return rc;
    }
    *out = c;
    return 0;
}

void
wire_client_free(struct wire_client *c)
{
    if (!c || c->dying)
        return;
    if (c->state != CS_CLOSED) {
        c->state = CS_CLOSED;
        if (c->bev)
            bufferevent_disable(c->bev, EV_READ | EV_WRITE);
        event_del(c->timer);
        event_del(c->pack_ev);
        enter(c);
        fail_pending(c, ORBIT_ECANCELED);
        c->busy--;
    }
    c->dying = true;
    if (c->busy == 0)
        destroy(c);
}

int
wire_client_have(struct wire_client *c, const uint8_t *ids, uint32_t n,
                 wire_reply_cb cb, void *arg, uint32_t *out_id)
{
    struct wire_msg m = {.type = WIRE_HAVE};
    m.u.have = (struct wire_have){n, ids};
    return wire_client_send(c, &m, cb, arg, out_id);
}

int
wire_client_put(struct wire_client *c, const struct wire_put *put,
                wire_reply_cb cb, void *arg, uint32_t *out_id)
{
    if (!put)
        return ORBIT_EINVAL;
    struct wire_msg m = {.type = WIRE_PUT};
    m.u.put = *put;
    return wire_client_send(c, &m, cb, arg, out_id);
}

int
wire_client_commit(struct wire_client *c, const struct wire_commit *commit,
                   wire_reply_cb cb, void *arg, uint32_t *out_id)
{
    if (!commit)
        return ORBIT_EINVAL;
    struct wire_msg m = {.type = WIRE_COMMIT};
    m.u.commit = *commit;
    return wire_client_send(c, &m, cb, arg, out_id);
}

int
wire_client_list(struct wire_client *c, const char *path, const char *cursor,
                 uint32_t max_entries, wire_reply_cb cb, void *arg,
                 uint32_t *out_id)
{
    struct wire_msg m = {.type = WIRE_LIST};
    m.u.list.path = path ? path : "";
    m.u.list.path_len = strnlen(m.u.list.path, WIRE_MAX_PATH + 1);
    m.u.list.cursor = cursor ? cursor : "";
    m.u.list.cursor_len = strnlen(m.u.list.cursor, WIRE_MAX_STR + 1);
    m.u.list.max_entries = max_entries;
    return wire_client_send(c, &m, cb, arg, out_id);
}

int
wire_client_delete(struct wire_client *c, const char *path, uint8_t flags,
                   wire_reply_cb cb, void *arg, uint32_t *out_id)
{
    if (!path)
        return ORBIT_EINVAL;
    struct wire_msg m = {.type = WIRE_DELETE};
    m.u.del.path = path;
    m.u.del.path_len = strnlen(path, WIRE_MAX_PATH + 1);
    m.u.del.flags = flags;
    return wire_client_send(c, &m, cb, arg, out_id);
}

int
wire_client_health(struct wire_client *c, wire_reply_cb cb, void *arg,
                   uint32_t *out_id)
{
    struct wire_msg m = {.type = WIRE_HEALTH};
    return wire_client_send(c, &m, cb, arg, out_id);
}

int
wire_client_goodbye(struct wire_client *c, wire_reply_cb cb, void *arg,
                    uint32_t *out_id)
{
    struct wire_msg m = {.type = WIRE_GOODBYE};
    return wire_client_send(c, &m, cb, arg, out_id);
}

int
wire_client_check(const struct wire_client *c)
{
    size_t used = 0;
    for (size_t i = 0; i <= c->mask; i++) {
        const struct slot *s = &c->slots[i];
        if (!s->used)
            continue;
        used++;
        if ((s->id & c->mask) != i || s->id == 0 || s->want == 0)
            return ORBIT_ECORRUPT;
    }
    if (used != c->npending)
        return ORBIT_ECORRUPT;
    if (c->state == CS_CLOSED && (c->npending || evbuffer_get_length(c->held) ||
                                  evbuffer_get_length(c->pack)))
        return ORBIT_ECORRUPT;
    if (c->state == CS_READY && evbuffer_get_length(c->held))
        return ORBIT_ECORRUPT;
    if (!c->packing && evbuffer_get_length(c->pack))
        return ORBIT_ECORRUPT;
    return 0;
}
