/*
 * orbit_faultproxy - a TCP proxy that breaks connections on purpose, for the
 * proving ground (docs/reliability.md).
 *
 * It listens on 127.0.0.1 (an ephemeral port unless --listen says otherwise),
 * prints the port as the first line of stdout, and forwards every accepted
 * connection to 127.0.0.1:TARGET. Each connection gets at most one fault,
 * planned when it is accepted from a generator seeded with (--seed,
 * connection number), so a run is reproducible connection by connection
 * whatever the timing:
 *
 *   reset     after N bytes of one direction, close both sides with RST
 *   stall     after N bytes, forward nothing either way for --stall-ms
 *   delay     hold every forwarded byte of the connection for --delay-ms
 *   truncate  forward N bytes, moved inside a wire frame if N falls on a
 *             frame boundary, drop the rest of that frame and close (FIN)
 *   flip      invert one bit of the byte at offset N
 *
 * N is --at, or --min-at plus a draw from [0, --span). The direction is
 * --dir (up: client to target, down: target to client, any: drawn). With
 * --frame-type T, N counts only the payload bytes of wire frames of type T
 * (0x16: COMMIT), or of every frame with "any", so the fault lands inside
 * such a payload. On SIGTERM, SIGINT or after --max-seconds it prints one
 * summary line on stderr and exits 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define FP_HDR_LEN   12         /* the wire frame header */
#define FP_HIGH_MARK (1u << 20) /* stop reading a side past this backlog */
#define FP_MAX_KINDS 5
#define FP_ANY_TYPE  256 /* --frame-type any */

enum fp_kind {
    FP_NONE = -1,
    FP_RESET = 0,
    FP_STALL,
    FP_DELAY,
    FP_TRUNCATE,
    FP_FLIP,
};

static const char *const fp_kind_names[FP_MAX_KINDS] = {
    "reset", "stall", "delay", "truncate", "flip"};

enum fp_dir { FP_UP = 0, FP_DOWN = 1, FP_ANY = 2 };

struct fp_opts {
    uint16_t listen_port;
    uint16_t target_port;
    uint64_t seed;
    bool kinds[FP_MAX_KINDS];
    double rate;         /* probability that a connection gets a fault */
    uint64_t max_faults; /* 0: unlimited */
    uint64_t skip;       /* the first connections are left alone */
    bool at_set;
    uint64_t at;
    uint64_t span;
    uint64_t min_at; /* drawn offsets start here */
    enum fp_dir dir;
    int frame_type; /* -1, a type, or FP_ANY_TYPE: offsets in payloads */
    uint32_t stall_ms;
    uint32_t delay_ms;
    uint32_t max_seconds;
    bool verbose;
};

struct fp_stats {
    uint64_t connections;
    uint64_t bytes[2]; /* forwarded, per direction */
    uint64_t faults;
    uint64_t by_kind[FP_MAX_KINDS];
    uint64_t peer_errors; /* connections a peer reset or refused */
};

struct fp_conn;

struct fp_proxy {
    struct fp_opts o;
    struct fp_stats st;
    struct event_base *base;
    struct fp_conn *live;      /* open connections */
    struct fp_conn *graveyard; /* closed, freed by the reaper */
    struct event *reaper;
};

/* A stretch of bytes held back by the delay fault. */
struct fp_seg {
    struct fp_seg *next;
    struct evbuffer *buf;
    struct timeval due;
};

/* One direction of a connection. */
struct fp_leg {
    struct fp_conn *c;
    int dir;                  /* FP_UP or FP_DOWN */
    struct bufferevent **src; /* points into the connection */
    struct bufferevent **dst;
    uint64_t off;            /* bytes forwarded so far */
    uint8_t hdr[FP_HDR_LEN]; /* frame tracker: header bytes seen */
    size_t hdr_have;
    uint64_t payload_left;      /* of the current frame */
    uint8_t type;               /* of the current frame */
    uint64_t typed_off;         /* payload bytes of --frame-type frames */
    struct fp_seg *head, *tail; /* delayed bytes */
    size_t queued;
    struct event *delay_timer;
};

struct fp_plan {
    enum fp_kind kind;
    int dir;
    uint64_t at;
    unsigned bit;
    bool fired;
};

struct fp_conn {
    struct fp_proxy *p;
    struct fp_conn *prev, *next; /* in p->live, then p->graveyard */
    uint64_t num;
    uint64_t rng;
    struct bufferevent *side[2]; /* [0] client, [1] target */
    struct fp_leg leg[2];        /* [FP_UP] client -> target, [FP_DOWN] back */
    struct fp_plan plan;
    struct event *stall_timer;
    bool stalled;
    bool closing;
    bool dead;
};

/* splitmix64: tiny, well mixed, and enough for choosing faults. */
static uint64_t
fp_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t
fp_below(uint64_t *s, uint64_t n)
{
    return n ? fp_rand(s) % n : 0;
}

static double
fp_unit(uint64_t *s)
{
    return (double)(fp_rand(s) >> 11) / (double)(1ull << 53);
}

static void fp_log(const struct fp_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
fp_log(const struct fp_conn *c, const char *fmt, ...)
{
    if (!c->p->o.verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "faultproxy: conn %" PRIu64 ": ", c->num);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void
fp_plan_conn(struct fp_conn *c)
{
    const struct fp_opts *o = &c->p->o;
    enum fp_kind eligible[FP_MAX_KINDS];
    size_t n = 0;
    for (int k = 0; k < FP_MAX_KINDS; k++)
        if (o->kinds[k])
            eligible[n++] = (enum fp_kind)k;
    c->plan.kind = FP_NONE;
    /* Draw everything first so the plan does not depend on the options
     * that only filter it. */
    double r = fp_unit(&c->rng);
    uint64_t pick = fp_below(&c->rng, n);
    int dir = (int)fp_below(&c->rng, 2);
    uint64_t at = fp_below(&c->rng, o->span);
    unsigned bit = (unsigned)fp_below(&c->rng, 8);
    if (n == 0 || c->num < o->skip || r >= o->rate)
        return;
    c->plan.kind = eligible[pick];
    c->plan.dir = o->dir == FP_ANY ? dir : (int)o->dir;
    c->plan.at = o->at_set ? o->at : o->min_at + at;
    c->plan.bit = bit;
}

/* Whether the fault budget allows one more; counts it if so. */
static bool
fp_take_fault(struct fp_conn *c)
{
    struct fp_proxy *p = c->p;
    if (p->o.max_faults && p->st.faults >= p->o.max_faults) {
        c->plan.kind = FP_NONE;
        return false;
    }
    p->st.faults++;
    p->st.by_kind[c->plan.kind]++;
    c->plan.fired = true;
    return true;
}

static void
fp_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct fp_proxy *p = arg;
    while (p->graveyard) {
        struct fp_conn *c = p->graveyard;
        p->graveyard = c->next;
        free(c);
    }
}

static void
fp_unlink(struct fp_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        c->p->live = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static void
fp_leg_clear(struct fp_leg *l)
{
    while (l->head) {
        struct fp_seg *s = l->head;
        l->head = s->next;
        evbuffer_free(s->buf);
        free(s);
    }
    l->tail = NULL;
    l->queued = 0;
    if (l->delay_timer)
        event_free(l->delay_timer);
    l->delay_timer = NULL;
}

/*
 * Deliver what was forwarded before a reset (up to 64 chains of it). A
 * bufferevent keeps the start of its output frozen, so write it ourselves,
 * waiting a little (at most ~0.4 s) for room and for the kernel to send it.
 */
static void
fp_flush_now(struct evbuffer *out, evutil_socket_t fd)
{
    struct evbuffer_iovec v[64];
    int nv = evbuffer_peek(out, -1, NULL, v, 64);
    int waits = 0;
    for (int i = 0; i < nv && i < 64 && waits < 20;) {
        ssize_t w =
            send(fd, v[i].iov_base, v[i].iov_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w >= 0 && (size_t)w == v[i].iov_len) {
            i++;
            continue;
        }
        if (w > 0) {
            v[i].iov_base = (uint8_t *)v[i].iov_base + w;
            v[i].iov_len -= (size_t)w;
            continue;
        }
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            break;
        struct pollfd p = {fd, POLLOUT, 0};
        poll(&p, 1, 10);
        waits++;
    }
    /* An abortive close discards what the kernel has not sent yet. */
    int queued = 0;
    for (int i = 0; i < 100 && ioctl(fd, SIOCOUTQ, &queued) == 0 && queued; i++)
        usleep(2000);
}

/*
 * Close everything now; with rst, both sockets are reset (SO_LINGER 0). The
 * struct itself is freed from the loop, so callers may still read c->dead.
 */
static void
fp_conn_kill(struct fp_conn *c, bool rst)
{
    if (c->dead)
        return;
    c->dead = true;
    for (int i = 0; i < 2; i++) {
        fp_leg_clear(&c->leg[i]);
        if (!c->side[i])
            continue;
        evutil_socket_t fd = bufferevent_getfd(c->side[i]);
        if (rst && fd >= 0) {
            fp_flush_now(bufferevent_get_output(c->side[i]), fd);
            struct linger lg = {1, 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
        bufferevent_free(c->side[i]);
        c->side[i] = NULL;
    }
    if (c->stall_timer)
        event_free(c->stall_timer);
    c->stall_timer = NULL;
    fp_unlink(c);
    c->next = c->p->graveyard;
    c->p->graveyard = c;
    event_active(c->p->reaper, EV_TIMEOUT, 0);
}

/* Closing: free each side once every byte meant for it is written. */
static void
fp_conn_try_close(struct fp_conn *c)
{
    if (c->dead || !c->closing || c->stalled)
        return;
    for (int i = 0; i < 2; i++) {
        struct bufferevent *b = c->side[i];
        /* Side i receives what the other leg carries. */
        const struct fp_leg *in = &c->leg[1 - i];
        if (!b || in->queued > 0)
            continue;
        if (evbuffer_get_length(bufferevent_get_output(b)) == 0) {
            bufferevent_free(b);
            c->side[i] = NULL;
        }
    }
    if (!c->side[0] && !c->side[1])
        fp_conn_kill(c, false);
}

/* Whether the payload being forwarded counts towards the fault offset. */
static bool
fp_counted(const struct fp_leg *l)
{
    int ft = l->c->p->o.frame_type;
    return ft == FP_ANY_TYPE || ft == (int)l->type;
}

/* Follow frame boundaries over the next n bytes of in. */
static void
fp_track(struct fp_leg *l, struct evbuffer *in, size_t n)
{
    size_t pos = 0;
    while (pos < n) {
        if (l->payload_left > 0) {
            uint64_t k = n - pos < l->payload_left ? n - pos : l->payload_left;
            l->payload_left -= k;
            if (fp_counted(l))
                l->typed_off += k;
            pos += (size_t)k;
            continue;
        }
        size_t k = FP_HDR_LEN - l->hdr_have;
        if (k > n - pos)
            k = n - pos;
        struct evbuffer_ptr ptr;
        evbuffer_ptr_set(in, &ptr, pos, EVBUFFER_PTR_SET);
        evbuffer_copyout_from(in, &ptr, l->hdr + l->hdr_have, k);
        l->hdr_have += k;
        pos += k;
        if (l->hdr_have == FP_HDR_LEN) {
            const uint8_t *h = l->hdr + 8;
            l->payload_left = (uint64_t)h[0] << 24 | (uint64_t)h[1] << 16 |
                              (uint64_t)h[2] << 8 | h[3];
            l->type = l->hdr[1];
            l->hdr_have = 0;
        }
    }
}

static bool
fp_at_boundary(const struct fp_leg *l)
{
    return l->hdr_have == 0 && l->payload_left == 0;
}

static struct timeval
fp_ms(uint32_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

static void
fp_delay_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct fp_leg *l = arg;
    struct fp_conn *c = l->c;
    struct timeval now;
    event_base_gettimeofday_cached(c->p->base, &now);
    while (l->head && !evutil_timercmp(&l->head->due, &now, >)) {
        struct fp_seg *s = l->head;
        l->head = s->next;
        if (!l->head)
            l->tail = NULL;
        l->queued -= evbuffer_get_length(s->buf);
        evbuffer_add_buffer(bufferevent_get_output(*l->dst), s->buf);
        evbuffer_free(s->buf);
        free(s);
    }
    if (l->head) {
        struct timeval left;
        evutil_timersub(&l->head->due, &now, &left);
        evtimer_add(l->delay_timer, &left);
    }
    fp_conn_try_close(c);
}

/* Hold n bytes of in for --delay-ms. */
static int
fp_delay(struct fp_leg *l, struct evbuffer *in, size_t n)
{
    struct fp_conn *c = l->c;
    struct fp_seg *s = calloc(1, sizeof *s);
    if (!s || !(s->buf = evbuffer_new())) {
        free(s);
        return -1;
    }
    if (!l->delay_timer &&
        !(l->delay_timer = evtimer_new(c->p->base, fp_delay_flush, l))) {
        evbuffer_free(s->buf);
        free(s);
        return -1;
    }
    evbuffer_remove_buffer(in, s->buf, n);
    struct timeval now, d = fp_ms(c->p->o.delay_ms);
    event_base_gettimeofday_cached(c->p->base, &now);
    evutil_timeradd(&now, &d, &s->due);
    if (l->tail)
        l->tail->next = s;
    else
        l->head = s;
    l->tail = s;
    l->queued += n;
    if (!evtimer_pending(l->delay_timer, NULL))
        evtimer_add(l->delay_timer, &d);
    return 0;
}

/* Forward the next n bytes of in, through the delay queue if planned. */
static void
fp_move(struct fp_leg *l, struct evbuffer *in, size_t n)
{
    struct fp_conn *c = l->c;
    fp_track(l, in, n);
    l->off += n;
    c->p->st.bytes[l->dir] += n;
    if (c->plan.kind == FP_DELAY) {
        if (fp_delay(l, in, n) < 0)
            fp_conn_kill(c, true);
        return;
    }
    evbuffer_remove_buffer(in, bufferevent_get_output(*l->dst), n);
}

static void fp_stall_end(evutil_socket_t fd, short what, void *arg);

/*
 * Inject the planned fault at the current offset. Returns true if the leg
 * may go on forwarding.
 */
static bool
fp_fire(struct fp_leg *l, struct evbuffer *in)
{
    struct fp_conn *c = l->c;
    struct fp_plan *pl = &c->plan;
    const char *dn = l->dir == FP_UP ? "up" : "down";
    if (pl->kind == FP_TRUNCATE && fp_at_boundary(l)) {
        /* Cut inside the frame header that starts here. */
        pl->at += 1 + fp_below(&c->rng, FP_HDR_LEN - 1);
        return true;
    }
    if (!fp_take_fault(c))
        return true;
    switch (pl->kind) {
    case FP_RESET:
        fp_log(c, "%s: reset at offset %" PRIu64, dn, l->off);
        fp_conn_kill(c, true);
        return false;
    case FP_TRUNCATE:
        fp_log(c, "%s: truncate at offset %" PRIu64, dn, l->off);
        evbuffer_drain(in, evbuffer_get_length(in));
        c->closing = true;
        for (int i = 0; i < 2; i++)
            if (c->side[i])
                bufferevent_disable(c->side[i], EV_READ);
        fp_conn_try_close(c);
        return false;
    case FP_STALL: {
        fp_log(c, "%s: stall %u ms at offset %" PRIu64, dn, c->p->o.stall_ms,
               l->off);
        c->stall_timer = evtimer_new(c->p->base, fp_stall_end, c);
        if (!c->stall_timer) {
            fp_conn_kill(c, true);
            return false;
        }
        struct timeval tv = fp_ms(c->p->o.stall_ms);
        evtimer_add(c->stall_timer, &tv);
        c->stalled = true;
        for (int i = 0; i < 2; i++)
            bufferevent_disable(c->side[i], EV_READ);
        return false;
    }
    case FP_FLIP: {
        uint8_t b = 0;
        fp_track(l, in, 1);
        evbuffer_remove(in, &b, 1);
        uint8_t f = (uint8_t)(b ^ (1u << pl->bit));
        fp_log(c, "%s: flip bit %u at offset %" PRIu64 " (0x%02x -> 0x%02x)",
               dn, pl->bit, l->off, b, f);
        l->off++;
        c->p->st.bytes[l->dir]++;
        evbuffer_add(bufferevent_get_output(*l->dst), &f, 1);
        return true;
    }
    default:
        return true;
    }
}

/*
 * How many of the avail buffered bytes to forward before the fault point;
 * 0: fire now. With --frame-type, the point is counted in the payloads of
 * frames of that type only, so everything else passes untouched.
 */
static size_t
fp_gap(const struct fp_leg *l, size_t avail)
{
    const struct fp_plan *pl = &l->c->plan;
    uint64_t gap;
    if (l->c->p->o.frame_type < 0) {
        gap = pl->at > l->off ? pl->at - l->off : 0;
    } else if (l->payload_left == 0) {
        gap = FP_HDR_LEN - l->hdr_have; /* to the end of this header */
    } else if (!fp_counted(l)) {
        gap = l->payload_left;
    } else {
        gap = pl->at > l->typed_off ? pl->at - l->typed_off : 0;
        if (gap > l->payload_left)
            gap = l->payload_left;
    }
    return gap < avail ? (size_t)gap : avail;
}

/* Forward what src has buffered, up to the fault point if there is one. */
static void
fp_pump(struct fp_leg *l)
{
    struct fp_conn *c = l->c;
    if (c->dead || c->stalled || !*l->src || !*l->dst)
        return;
    struct evbuffer *in = bufferevent_get_input(*l->src);
    size_t avail;
    while (!c->dead && !c->stalled && (avail = evbuffer_get_length(in)) > 0) {
        const struct fp_plan *pl = &c->plan;
        bool pending = pl->kind != FP_NONE && pl->kind != FP_DELAY &&
                       !pl->fired && pl->dir == l->dir;
        if (!pending) {
            fp_move(l, in, avail);
            continue;
        }
        size_t n = fp_gap(l, avail);
        if (n > 0) {
            fp_move(l, in, n);
            continue;
        }
        if (!fp_fire(l, in))
            break;
    }
    if (c->dead || c->closing || c->stalled || !*l->src)
        return;
    size_t backlog = evbuffer_get_length(bufferevent_get_output(*l->dst));
    if (backlog + l->queued >= FP_HIGH_MARK)
        bufferevent_disable(*l->src, EV_READ);
}

static void
fp_stall_end(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct fp_conn *c = arg;
    c->stalled = false;
    for (int i = 0; i < 2; i++)
        if (c->side[i] && !c->closing)
            bufferevent_enable(c->side[i], EV_READ);
    fp_pump(&c->leg[FP_UP]);
    fp_pump(&c->leg[FP_DOWN]);
    fp_conn_try_close(c);
}

static int
fp_side_of(const struct fp_conn *c, const struct bufferevent *b)
{
    return c->side[0] == b ? 0 : 1;
}

static void
fp_read_cb(struct bufferevent *b, void *arg)
{
    struct fp_conn *c = arg;
    fp_pump(&c->leg[fp_side_of(c, b) == 0 ? FP_UP : FP_DOWN]);
}

/* Output of b drained below the low mark: resume the leg feeding it. */
static void
fp_write_cb(struct bufferevent *b, void *arg)
{
    struct fp_conn *c = arg;
    if (c->closing) {
        fp_conn_try_close(c);
        return;
    }
    int i = fp_side_of(c, b);
    struct fp_leg *feeder = &c->leg[i == 0 ? FP_DOWN : FP_UP];
    if (!c->stalled && c->side[1 - i])
        bufferevent_enable(c->side[1 - i], EV_READ);
    fp_pump(feeder);
}

static void
fp_event_cb(struct bufferevent *b, short what, void *arg)
{
    struct fp_conn *c = arg;
    if (what & BEV_EVENT_CONNECTED)
        return;
    if (what & BEV_EVENT_ERROR) {
        c->p->st.peer_errors++;
        fp_conn_kill(c, true);
        return;
    }
    if (what & BEV_EVENT_EOF) {
        /* Deliver what arrived before the FIN, then close both sides. */
        fp_pump(&c->leg[fp_side_of(c, b) == 0 ? FP_UP : FP_DOWN]);
        if (c->dead)
            return;
        c->closing = true;
        for (int i = 0; i < 2; i++)
            if (c->side[i])
                bufferevent_disable(c->side[i], EV_READ);
        fp_conn_try_close(c);
    }
}

static void
fp_nodelay(evutil_socket_t fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static struct bufferevent *
fp_bev(struct fp_conn *c, evutil_socket_t fd)
{
    struct bufferevent *b = bufferevent_socket_new(
        c->p->base, fd, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (!b)
        return NULL;
    bufferevent_setcb(b, fp_read_cb, fp_write_cb, fp_event_cb, c);
    bufferevent_setwatermark(b, EV_WRITE, FP_HIGH_MARK / 2, 0);
    bufferevent_enable(b, EV_READ | EV_WRITE);
    return b;
}

static int
fp_connect_target(struct fp_conn *c)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(c->p->o.target_port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    c->side[1] = fp_bev(c, -1);
    if (!c->side[1])
        return -1;
    if (bufferevent_socket_connect(c->side[1], (struct sockaddr *)&sa,
                                   sizeof sa) < 0)
        return -1;
    fp_nodelay(bufferevent_getfd(c->side[1]));
    return 0;
}

static void
fp_accept_cb(struct evconnlistener *ln, evutil_socket_t fd,
             struct sockaddr *addr, int len, void *arg)
{
    (void)ln;
    (void)addr;
    (void)len;
    struct fp_proxy *p = arg;
    struct fp_conn *c = calloc(1, sizeof *c);
    if (!c) {
        evutil_closesocket(fd);
        return;
    }
    c->p = p;
    c->next = p->live;
    if (p->live)
        p->live->prev = c;
    p->live = c;
    c->num = p->st.connections++;
    c->rng = p->o.seed ^ (c->num * 0xd1b54a32d192ed03ull);
    fp_rand(&c->rng);
    fp_plan_conn(c);
    for (int d = 0; d < 2; d++) {
        struct fp_leg *l = &c->leg[d];
        l->c = c;
        l->dir = d;
        l->src = &c->side[d == FP_UP ? 0 : 1];
        l->dst = &c->side[d == FP_UP ? 1 : 0];
    }
    fp_nodelay(fd);
    c->side[0] = fp_bev(c, fd);
    if (!c->side[0]) {
        evutil_closesocket(fd);
        fp_conn_kill(c, false);
        return;
    }
    if (fp_connect_target(c) < 0) {
        p->st.peer_errors++;
        fp_conn_kill(c, true);
        return;
    }
    if (c->plan.kind == FP_DELAY && fp_take_fault(c))
        fp_log(c, "delay %u ms on every forward", p->o.delay_ms);
}

static void
fp_summary(const struct fp_proxy *p)
{
    const struct fp_stats *s = &p->st;
    fprintf(stderr,
            "faultproxy: seed=%" PRIu64 " connections=%" PRIu64
            " bytes_up=%" PRIu64 " bytes_down=%" PRIu64 " faults=%" PRIu64,
            p->o.seed, s->connections, s->bytes[FP_UP], s->bytes[FP_DOWN],
            s->faults);
    for (int k = 0; k < FP_MAX_KINDS; k++)
        fprintf(stderr, " %s=%" PRIu64, fp_kind_names[k], s->by_kind[k]);
    fprintf(stderr, " peer_errors=%" PRIu64 "\n", s->peer_errors);
}

static void
fp_stop_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

static void
fp_usage(FILE *f)
{
    fprintf(f, "usage: orbit_faultproxy --target PORT [--listen PORT] "
               "[--seed N]\n"
               "  [--fault KIND[,KIND...]] [--rate P] [--max-faults N] "
               "[--skip N]\n"
               "  [--at BYTES | --min-at BYTES --span BYTES] "
               "[--dir up|down|any] "
               "[--frame-type T|any]\n"
               "  [--stall-ms MS] [--delay-ms MS] [--max-seconds S] "
               "[--verbose]\n"
               "KIND: reset, stall, delay, truncate, flip. Prints its port on "
               "the first line\n"
               "of stdout; a summary on stderr at exit (SIGTERM, SIGINT, "
               "--max-seconds).\n");
}

static int
fp_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || !end || *end || end == s || s[0] == '-' || v > max)
        return -1;
    *out = v;
    return 0;
}

static int
fp_parse_kinds(const char *s, bool kinds[FP_MAX_KINDS])
{
    char buf[128];
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t;
         t = strtok_r(NULL, ",", &save)) {
        int k = 0;
        while (k < FP_MAX_KINDS && strcmp(t, fp_kind_names[k]) != 0)
            k++;
        if (k == FP_MAX_KINDS)
            return -1;
        kinds[k] = true;
    }
    return 0;
}

static int
fp_parse_opt(int ch, const char *v, struct fp_opts *o)
{
    uint64_t n = 0;
    char *end = NULL;
    switch (ch) {
    case 't':
    case 'l':
        if (fp_parse_u64(v, 65535, &n) < 0 || (ch == 't' && n == 0))
            return -1;
        *(ch == 't' ? &o->target_port : &o->listen_port) = (uint16_t)n;
        return 0;
    case 's':
        return fp_parse_u64(v, UINT64_MAX, &o->seed);
    case 'f':
        return fp_parse_kinds(v, o->kinds);
    case 'r':
        o->rate = strtod(v, &end);
        return (*end || o->rate < 0 || o->rate > 1) ? -1 : 0;
    case 'm':
        return fp_parse_u64(v, UINT64_MAX, &o->max_faults);
    case 'k':
        return fp_parse_u64(v, UINT64_MAX, &o->skip);
    case 'a':
        o->at_set = true;
        return fp_parse_u64(v, UINT64_MAX, &o->at);
    case 'S':
        return fp_parse_u64(v, UINT64_MAX, &o->span) < 0 || o->span == 0 ? -1
                                                                         : 0;
    case 'd':
        o->dir = strcmp(v, "up") == 0     ? FP_UP
                 : strcmp(v, "down") == 0 ? FP_DOWN
                                          : FP_ANY;
        return strcmp(v, "any") == 0 || o->dir != FP_ANY ? 0 : -1;
    case 'T':
    case 'D':
    case 'x':
        if (fp_parse_u64(v, 3600000, &n) < 0)
            return -1;
        *(ch == 'T'   ? &o->stall_ms
          : ch == 'D' ? &o->delay_ms
                      : &o->max_seconds) = (uint32_t)n;
        return 0;
    case 'M':
        return fp_parse_u64(v, UINT64_MAX, &o->min_at);
    case 'F':
        if (strcmp(v, "any") == 0)
            n = FP_ANY_TYPE;
        else if (fp_parse_u64(v, 255, &n) < 0)
            return -1;
        o->frame_type = (int)n;
        return 0;
    case 'v':
        o->verbose = true;
        return 0;
    default:
        return -1;
    }
}

static int
fp_parse(int argc, char **argv, struct fp_opts *o)
{
    static const struct option lo[] = {
        {"target", required_argument, NULL, 't'},
        {"listen", required_argument, NULL, 'l'},
        {"seed", required_argument, NULL, 's'},
        {"fault", required_argument, NULL, 'f'},
        {"rate", required_argument, NULL, 'r'},
        {"max-faults", required_argument, NULL, 'm'},
        {"skip", required_argument, NULL, 'k'},
        {"at", required_argument, NULL, 'a'},
        {"span", required_argument, NULL, 'S'},
        {"dir", required_argument, NULL, 'd'},
        {"stall-ms", required_argument, NULL, 'T'},
        {"delay-ms", required_argument, NULL, 'D'},
        {"max-seconds", required_argument, NULL, 'x'},
        {"frame-type", required_argument, NULL, 'F'},
        {"min-at", required_argument, NULL, 'M'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(o, 0, sizeof *o);
    o->seed = 1;
    o->rate = 1.0;
    o->span = 256 * 1024;
    o->dir = FP_UP;
    o->frame_type = -1;
    o->stall_ms = 2000;
    o->delay_ms = 20;
    o->max_seconds = 600;
    int ch;
    while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        if (ch == 'h') {
            fp_usage(stdout);
            exit(0);
        }
        if (ch == '?' || fp_parse_opt(ch, optarg, o) < 0) {
            fprintf(stderr, "orbit_faultproxy: bad option %s\n",
                    argv[optind - 1]);
            return -1;
        }
    }
    if (optind != argc || o->target_port == 0) {
        fp_usage(stderr);
        return -1;
    }
    return 0;
}

static struct evconnlistener *
fp_listen(struct fp_proxy *p, uint16_t *port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(p->o.listen_port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct evconnlistener *ln = evconnlistener_new_bind(
        p->base, fp_accept_cb, p, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
        128, (struct sockaddr *)&sa, sizeof sa);
    if (!ln)
        return NULL;
    socklen_t sl = sizeof sa;
    getsockname(evconnlistener_get_fd(ln), (struct sockaddr *)&sa, &sl);
    *port = ntohs(sa.sin_port);
    return ln;
}

int
main(int argc, char **argv)
{
    struct fp_proxy p;
    memset(&p, 0, sizeof p);
    if (fp_parse(argc, argv, &p.o) < 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    int rc = 1;
    struct evconnlistener *ln = NULL;
    struct event *term = NULL, *intr = NULL, *limit = NULL;
    p.base = event_base_new();
    if (!p.base || !(p.reaper = event_new(p.base, -1, 0, fp_reap, &p)))
        goto out;
    uint16_t port = 0;
    ln = fp_listen(&p, &port);
    if (!ln) {
        fprintf(stderr, "orbit_faultproxy: cannot listen: %s\n",
                strerror(errno));
        goto out;
    }
    printf("%u\n", port);
    fflush(stdout);
    term = evsignal_new(p.base, SIGTERM, fp_stop_cb, p.base);
    intr = evsignal_new(p.base, SIGINT, fp_stop_cb, p.base);
    limit = evtimer_new(p.base, fp_stop_cb, p.base);
    if (!term || !intr || !limit)
        goto out;
    struct timeval lt = {(time_t)p.o.max_seconds, 0};
    evsignal_add(term, NULL);
    evsignal_add(intr, NULL);
    evtimer_add(limit, &lt);
    event_base_dispatch(p.base);
    fp_summary(&p);
    rc = 0;
out:
    if (term)
        event_free(term);
    if (intr)
        event_free(intr);
    if (limit)
        event_free(limit);
    if (ln)
        evconnlistener_free(ln);
    while (p.live)
        fp_conn_kill(p.live, false);
    if (p.reaper) {
        fp_reap(-1, 0, &p);
        event_free(p.reaper);
    }
    if (p.base)
        event_base_free(p.base);
    return rc;
}
