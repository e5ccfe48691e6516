/*
 * The fault proxy itself: bytes pass unchanged without faults, and every
 * fault does exactly what it says (a reset after N bytes, one flipped bit,
 * a cut inside a frame, a stall, a delay), reproducibly for a seed.
 */
#include "faults_util.h"

struct px {
    pid_t pid;
    uint16_t port; /* the proxy's */
    int lfd;       /* the target: a plain listener of the test's */
    uint16_t tport;
    char err[64];  /* the proxy's stderr */
    char *summary; /* its stderr once stopped */
};

/* The proxy of the current test, for the cleanup after a failure. */
static pid_t px_live_pid;
static char px_live_err[64];

static void
px_cleanup(void)
{
    if (px_live_pid > 0)
        fu_stop(px_live_pid, 5000);
    if (px_live_err[0])
        unlink(px_live_err);
    px_live_pid = 0;
    px_live_err[0] = 0;
}

TestSuite(proxy, .fini = px_cleanup);

static void
px_start(struct px *x, const char *const extra[])
{
    memset(x, 0, sizeof *x);
    x->lfd = fu_listen(&x->tport);
    snprintf(x->err, sizeof x->err, "/tmp/orbit-faults-px.XXXXXX");
    int efd = mkstemp(x->err);
    cr_assert_geq(efd, 0);
    close(efd);
    x->port = fu_proxy_start(x->tport, extra, x->err, &x->pid);
    px_live_pid = x->pid;
    memcpy(px_live_err, x->err, sizeof px_live_err);
}

/* Stop the proxy; its summary must have been printed. */
static void
px_finish(struct px *x)
{
    int st = fu_stop(x->pid, 10000);
    px_live_pid = 0;
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "proxy status %d", st);
    x->summary = fu_slurp(x->err, NULL);
    cr_assert_not_null(x->summary);
    cr_assert_not_null(strstr(x->summary, "faultproxy: seed="),
                       "no summary in: %s", x->summary);
    unlink(x->err);
    close(x->lfd);
}

static void
px_free(struct px *x)
{
    free(x->summary);
    x->summary = NULL;
}

/* Connect through the proxy; *server is the target's end. */
static int
px_pair(struct px *x, int *server)
{
    int c = fu_connect(x->port, 10);
    struct pollfd p = {x->lfd, POLLIN, 0};
    cr_assert_eq(poll(&p, 1, 10000), 1, "the proxy never connected");
    *server = accept4(x->lfd, NULL, NULL, SOCK_CLOEXEC);
    cr_assert_geq(*server, 0);
    return c;
}

/* One side of an exchange: what it sends, what it has received. */
struct flow {
    const uint8_t *out;
    size_t out_len, sent;
    uint8_t *in;
    size_t in_cap, got;
    bool done; /* EOF, error, or in_cap reached */
    bool rst;
};

static void
flow_step(int fd, struct flow *f, short rev)
{
    if ((rev & POLLOUT) && f->sent < f->out_len) {
        ssize_t w = send(fd, f->out + f->sent, f->out_len - f->sent,
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w > 0)
            f->sent += (size_t)w;
        else if (w < 0 && errno != EAGAIN && errno != EINTR)
            f->out_len = f->sent;
    }
    if (!(rev & (POLLIN | POLLHUP | POLLERR)) || f->done)
        return;
    ssize_t r = recv(fd, f->in + f->got, f->in_cap - f->got, MSG_DONTWAIT);
    if (r > 0)
        f->got += (size_t)r;
    if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
        f->done = true;
        f->rst = r < 0 && errno == ECONNRESET;
        f->out_len = f->sent;
    }
    if (f->got == f->in_cap)
        f->done = true;
}

/* Both sides send and receive at once until each is done or time is up. */
static void
exchange(int a, struct flow *fa, int b, struct flow *fb, int timeout_ms)
{
    uint64_t end = fu_now_ms() + (uint64_t)timeout_ms;
    while (!(fa->done && fb->done) && fu_now_ms() < end) {
        struct pollfd p[2] = {
            {a, (short)(POLLIN | (fa->sent < fa->out_len ? POLLOUT : 0)), 0},
            {b, (short)(POLLIN | (fb->sent < fb->out_len ? POLLOUT : 0)), 0}};
        if (poll(p, 2, 50) <= 0)
            continue;
        flow_step(a, fa, p[0].revents);
        flow_step(b, fb, p[1].revents);
    }
}

static uint8_t *
pattern(size_t n, uint64_t seed)
{
    uint8_t *p = malloc(n ? n : 1);
    cr_assert_not_null(p);
    fu_fill(p, n, seed);
    return p;
}

static struct flow
flow_of(const uint8_t *out, size_t out_len, size_t in_cap)
{
    struct flow f = {out,    out_len, 0,           malloc(in_cap + 1),
                     in_cap, 0,       in_cap == 0, false};
    cr_assert_not_null(f.in);
    return f;
}

Test(proxy, forwards_both_ways_unchanged_without_faults)
{
    struct px x;
    px_start(&x, NULL);
    size_t up = 4u << 20, down = 3u << 20;
    uint8_t *u = pattern(up, 1), *d = pattern(down, 2);
    int srv = -1, cli = px_pair(&x, &srv);
    struct flow fc = flow_of(u, up, down), fs = flow_of(d, down, up);
    exchange(cli, &fc, srv, &fs, 30000);
    cr_assert_eq(fs.got, up);
    cr_assert_eq(fc.got, down);
    cr_assert_eq(memcmp(fs.in, u, up), 0);
    cr_assert_eq(memcmp(fc.in, d, down), 0);
    close(cli);
    close(srv);
    px_finish(&x);
    cr_assert_eq(fu_summary_field(x.summary, "faults"), 0);
    cr_assert_eq(fu_summary_field(x.summary, "bytes_up"), up);
    cr_assert_eq(fu_summary_field(x.summary, "bytes_down"), down);
    cr_assert_eq(fu_summary_field(x.summary, "connections"), 1);
    px_free(&x);
    free(u);
    free(d);
    free(fc.in);
    free(fs.in);
}

/* Send `size` bytes one way through a reset at `at`; check what arrived. */
static void
reset_case(const char *const extra[], bool upward, size_t at, size_t size)
{
    struct px x;
    px_start(&x, extra);
    uint8_t *data = pattern(size, 3);
    int srv = -1, cli = px_pair(&x, &srv);
    struct flow fc = flow_of(upward ? data : NULL, upward ? size : 0, size);
    struct flow fs = flow_of(upward ? NULL : data, upward ? 0 : size, size);
    exchange(cli, &fc, srv, &fs, 10000);
    struct flow *rx = upward ? &fs : &fc, *tx = upward ? &fc : &fs;
    cr_assert(rx->done && tx->done, "the reset did not end the connection");
    cr_assert_eq(rx->got, at, "%zu bytes arrived, reset planned after %zu",
                 rx->got, at);
    cr_assert_eq(memcmp(rx->in, data, at), 0);
    cr_assert(rx->rst || tx->rst, "no side saw a reset");
    close(cli);
    close(srv);
    px_finish(&x);
    cr_assert_eq(fu_summary_field(x.summary, "reset"), 1);
    cr_assert_eq(fu_summary_field(x.summary, "faults"), 1);
    px_free(&x);
    free(data);
    free(fc.in);
    free(fs.in);
}

Test(proxy, reset_after_n_bytes_up)
{
    const char *extra[] = {"--fault", "reset", "--at", "100000", NULL};
    reset_case(extra, true, 100000, 1u << 20);
}

Test(proxy, reset_after_n_bytes_down)
{
    const char *extra[] = {"--fault", "reset", "--at", "5000",
                           "--dir",   "down",  NULL};
    reset_case(extra, false, 5000, 64u << 10);
}

Test(proxy, min_at_moves_drawn_offsets)
{
    const char *extra[] = {"--fault", "reset",  "--min-at", "1000", "--span",
                           "1",       "--seed", "99",       NULL};
    reset_case(extra, true, 1000, 8192);
}

/* Where one bit differs between a and b (n bytes); asserts exactly one. */
static size_t
one_flipped_bit(const uint8_t *a, const uint8_t *b, size_t n, unsigned *bit)
{
    size_t where = SIZE_MAX;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t x = (uint8_t)(a[i] ^ b[i]);
        if (!x)
            continue;
        bits += __builtin_popcount(x);
        where = i;
        *bit = (unsigned)__builtin_ctz(x);
    }
    cr_assert_eq(bits, 1, "%d bits differ", bits);
    return where;
}

/* Send data (NULL: 256 KiB of a pattern) through a flip with the given
 * options; the flip's offset. data is freed. */
static size_t
flip_case(const char *const extra[], bool upward, unsigned *bit, uint8_t *data,
          size_t size)
{
    struct px x;
    px_start(&x, extra);
    if (!data) {
        size = 256u << 10;
        data = pattern(size, 4);
    }
    int srv = -1, cli = px_pair(&x, &srv);
    struct flow fc =
        flow_of(upward ? data : NULL, upward ? size : 0, upward ? 0 : size);
    struct flow fs =
        flow_of(upward ? NULL : data, upward ? 0 : size, upward ? size : 0);
    exchange(cli, &fc, srv, &fs, 10000);
    struct flow *rx = upward ? &fs : &fc;
    cr_assert_eq(rx->got, size);
    size_t where = one_flipped_bit(data, rx->in, size, bit);
    close(cli);
    close(srv);
    px_finish(&x);
    cr_assert_eq(fu_summary_field(x.summary, "flip"), 1);
    px_free(&x);
    free(data);
    free(fc.in);
    free(fs.in);
    return where;
}

Test(proxy, flip_is_exactly_one_bit_at_the_planned_offset)
{
    const char *fixed[] = {"--fault", "flip", "--at", "12345",
                           "--dir",   "down", NULL};
    unsigned bit = 0;
    cr_assert_eq(flip_case(fixed, false, &bit, NULL, 0), 12345);
}

Test(proxy, flip_offset_and_bit_follow_the_seed)
{
    const char *seeded[] = {"--fault", "flip",  "--seed", "7",
                            "--span",  "65536", NULL};
    unsigned b1 = 0, b2 = 0;
    size_t w1 = flip_case(seeded, true, &b1, NULL, 0);
    size_t w2 = flip_case(seeded, true, &b2, NULL, 0);
    cr_assert_lt(w1, 65536);
    cr_assert_eq(w1, w2, "same seed, offsets %zu and %zu", w1, w2);
    cr_assert_eq(b1, b2);
}

/* Frames of a 12-byte header (payload length at 8..11) and a payload. */
static uint8_t *
frames(size_t count, uint32_t payload, size_t *len)
{
    size_t one = 12 + payload;
    uint8_t *p = pattern(count * one, 5);
    for (size_t i = 0; i < count; i++) {
        uint8_t *h = p + i * one;
        h[0] = 1;
        h[8] = (uint8_t)(payload >> 24);
        h[9] = (uint8_t)(payload >> 16);
        h[10] = (uint8_t)(payload >> 8);
        h[11] = (uint8_t)payload;
    }
    *len = count * one;
    return p;
}

Test(proxy, truncate_cuts_inside_a_frame_and_closes)
{
    size_t len = 0, one = 12 + 1000;
    uint8_t *data = frames(50, 1000, &len);
    char at[32];
    snprintf(at, sizeof at, "%zu", 3 * one); /* a frame boundary */
    const char *extra[] = {"--fault", "truncate", "--at", at, NULL};
    struct px x;
    px_start(&x, extra);
    int srv = -1, cli = px_pair(&x, &srv);
    struct flow fc = flow_of(data, len, 16), fs = flow_of(NULL, 0, len);
    exchange(cli, &fc, srv, &fs, 10000);
    cr_assert(fs.done && fc.done);
    cr_assert_gt(fs.got, 3 * one, "cut at a boundary: %zu", fs.got);
    cr_assert_lt(fs.got, 3 * one + 12, "cut past the header: %zu", fs.got);
    cr_assert_eq(memcmp(fs.in, data, fs.got), 0);
    cr_assert_not(fs.rst, "a truncation closes, it does not reset");
    close(cli);
    close(srv);
    px_finish(&x);
    cr_assert_eq(fu_summary_field(x.summary, "truncate"), 1);
    px_free(&x);
    free(data);
    free(fc.in);
    free(fs.in);
}

/* Offsets counted in payloads of one frame type only. */
Test(proxy, frame_type_aims_inside_those_frames)
{
    size_t len = 0, one = 12 + 100;
    uint8_t *data = frames(10, 100, &len);
    for (size_t i = 0; i < 10; i++)
        data[i * one + 1] = i % 2 ? 0x16 : 0x14; /* PUT, COMMIT, ... */
    /* Payload byte 150 of the COMMITs: byte 50 of the second one. */
    const char *extra[] = {"--fault", "flip", "--frame-type", "22", "--at",
                           "150",     NULL};
    unsigned bit = 0;
    cr_assert_eq(flip_case(extra, true, &bit, data, len), 3 * one + 12 + 50);
    /* "any": payload bytes of every frame, headers skipped. */
    data = frames(10, 100, &len);
    const char *any[] = {"--fault", "flip", "--frame-type", "any", "--at",
                         "100",     NULL};
    cr_assert_eq(flip_case(any, true, &bit, data, len), one + 12);
}

/* One request of n bytes through the proxy and an echo of it; ms taken. */
static uint64_t
timed_echo(struct px *x, size_t n)
{
    uint8_t *data = pattern(n, 6);
    int srv = -1, cli = px_pair(x, &srv);
    uint64_t t0 = fu_now_ms();
    struct flow fc = flow_of(data, n, 0), fs = flow_of(NULL, 0, n);
    exchange(cli, &fc, srv, &fs, 10000);
    cr_assert_eq(fs.got, n);
    cr_assert_eq(memcmp(fs.in, data, n), 0);
    struct flow back = flow_of(fs.in, n, 0), echo = flow_of(NULL, 0, n);
    exchange(srv, &back, cli, &echo, 10000);
    cr_assert_eq(echo.got, n);
    cr_assert_eq(memcmp(echo.in, data, n), 0);
    uint64_t ms = fu_now_ms() - t0;
    close(cli);
    close(srv);
    free(data);
    free(fc.in);
    free(fs.in);
    free(back.in);
    free(echo.in);
    return ms;
}

Test(proxy, stall_holds_the_stream_then_resumes_intact)
{
    const char *extra[] = {"--fault",    "stall", "--at", "10",
                           "--stall-ms", "300",   NULL};
    struct px x;
    px_start(&x, extra);
    cr_assert_geq(timed_echo(&x, 20), 280);
    px_finish(&x);
    cr_assert_eq(fu_summary_field(x.summary, "stall"), 1);
    px_free(&x);
}

Test(proxy, delay_holds_every_forward)
{
    const char *extra[] = {"--fault", "delay", "--delay-ms", "100", NULL};
    struct px x;
    px_start(&x, extra);
    cr_assert_geq(timed_echo(&x, 1000), 190, "each way is held 100 ms");
    px_finish(&x);
    cr_assert_eq(fu_summary_field(x.summary, "delay"), 1);
    px_free(&x);
}

Test(proxy, skip_and_max_faults_bound_the_damage)
{
    const char *extra[] = {"--fault", "reset",        "--at", "0", "--skip",
                           "1",       "--max-faults", "1",    NULL};
    struct px x;
    px_start(&x, extra);
    timed_echo(&x, 100); /* connection 0: skipped */
    int srv = -1, cli = px_pair(&x, &srv);
    uint8_t b = 1;
    cr_assert_eq(send(cli, &b, 1, MSG_NOSIGNAL), 1);
    cr_assert(fu_closed_within(srv, 5000, NULL), "connection 1 was reset");
    close(cli);
    close(srv);
    timed_echo(&x, 100); /* connection 2: the budget is spent */
    px_finish(&x);
    cr_assert_eq(fu_summary_field(x.summary, "connections"), 3);
    cr_assert_eq(fu_summary_field(x.summary, "faults"), 1);
    px_free(&x);
}
