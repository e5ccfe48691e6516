/*
 * test_star_helpers.h - a star on an ephemeral 127.0.0.1 port and a raw,
 * blocking wire client for the star tests (hostile frames included).
 */
#ifndef TEST_STAR_HELPERS_H
#define TEST_STAR_HELPERS_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "orbit/error.h"
#include "orbit/star.h"
#include "orbit/wire.h"
#include "orbit/wire_auth.h"

#define TS_UNUSED __attribute__((unused))

static const uint8_t ts_token[] = "test-token-0123456789";
#define TS_TOKEN_LEN (sizeof ts_token - 1)

struct tstar {
    char root[256];
    struct star *star;
    uint16_t port;
};

TS_UNUSED static void
ts_mkroot(char *root, size_t cap)
{
    snprintf(root, cap, "/tmp/orbit-star-test.XXXXXX");
    cr_assert_not_null(mkdtemp(root));
}

TS_UNUSED static void
ts_config(struct star_config *cfg, const char *root)
{
    star_config_init(cfg);
    cfg->root = root;
    cfg->token = ts_token;
    cfg->token_len = TS_TOKEN_LEN;
    cfg->quiet = getenv("ORBIT_TEST_VERBOSE") == NULL;
}

/* A star with its own thread, listening on an ephemeral port, scheduled. */
TS_UNUSED static void
ts_start_cfg(struct tstar *t, struct star_config *cfg)
{
    cr_assert_eq(star_new(cfg, &t->star), 0);
    cr_assert_eq(star_listen(t->star, "127.0.0.1:0"), 0);
    t->port = star_port(t->star);
    cr_assert_neq(t->port, 0);
    cr_assert_eq(star_schedule(t->star), 0);
}

TS_UNUSED static void
ts_start(struct tstar *t)
{
    ts_mkroot(t->root, sizeof t->root);
    struct star_config cfg;
    ts_config(&cfg, t->root);
    ts_start_cfg(t, &cfg);
}

TS_UNUSED static void
ts_stop(struct tstar *t)
{
    if (t->star)
        cr_assert_eq(star_check(t->star), 0, "star invariants broken");
    star_free(t->star);
    t->star = NULL;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", t->root);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", t->root);
}

TS_UNUSED static int
tc_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0,
                 "connect: %s", strerror(errno));
    struct timeval tv = {20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

TS_UNUSED static int
tc_write_all(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

TS_UNUSED static int
tc_send(int fd, const struct wire_msg *m)
{
    size_t len = 0;
    cr_assert_eq(wire_encoded_len(m, &len), 0);
    uint8_t *buf = malloc(len);
    cr_assert_not_null(buf);
    size_t wrote = 0;
    cr_assert_eq(wire_encode(m, buf, len, &wrote), 0);
    int rc = tc_write_all(fd, buf, wrote);
    free(buf);
    return rc;
}

/* Read exactly n bytes; -1 on EOF, error or timeout. */
TS_UNUSED static int
tc_read_all(int fd, uint8_t *p, size_t n)
{
    while (n > 0) {
        ssize_t r = recv(fd, p, n, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Receive one frame into *buf (realloc'd), decoded into *m; -1 on close. */
TS_UNUSED static int
tc_recv_any(int fd, uint8_t **buf, struct wire_msg *m)
{
    uint8_t hdr[WIRE_HDR_LEN];
    if (tc_read_all(fd, hdr, sizeof hdr) < 0)
        return -1;
    struct wire_hdr h;
    cr_assert_eq(wire_frame_peek(hdr, sizeof hdr, &h), 0);
    uint8_t *b = realloc(*buf, WIRE_HDR_LEN + (size_t)h.payload_len + 1);
    cr_assert_not_null(b);
    *buf = b;
    memcpy(b, hdr, sizeof hdr);
    if (tc_read_all(fd, b + WIRE_HDR_LEN, h.payload_len) < 0)
        return -1;
    cr_assert_eq(wire_decode(&h, b + WIRE_HDR_LEN, m), 0);
    return 0;
}

/* Unsolicited BULLETINs seen by tc_recv(): how many, the latest's bits. */
static unsigned tc_bulletins;
static uint32_t tc_bulletin_adv;
static uint8_t tc_bulletin_sev;

/* The next frame that is not an unsolicited BULLETIN. */
TS_UNUSED static int
tc_recv(int fd, uint8_t **buf, struct wire_msg *m)
{
    int rc;
    while ((rc = tc_recv_any(fd, buf, m)) == 0 && m->type == WIRE_BULLETIN) {
        tc_bulletins++;
        tc_bulletin_adv = m->u.bulletin.advisories;
        tc_bulletin_sev = m->u.bulletin.severity;
    }
    return rc;
}

/* Whether the peer closed (EOF) within a few seconds. */
TS_UNUSED static bool
tc_closed(int fd)
{
    uint8_t b[4096];
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 5000) <= 0)
            return false;
        ssize_t r = recv(fd, b, sizeof b, 0);
        if (r <= 0)
            return true;
    }
}

TS_UNUSED static int
tc_auth(int fd, const uint8_t *token, size_t token_len)
{
    uint8_t *buf = NULL;
    struct wire_msg m;
    cr_assert_eq(tc_recv(fd, &buf, &m), 0);
    cr_assert_eq(m.type, WIRE_AUTH_CHALLENGE);
    struct wire_msg r;
    memset(&r, 0, sizeof r);
    r.type = WIRE_AUTH_RESPONSE;
    r.request_id = 1;
    cr_assert_eq(wire_auth_respond(token, token_len, m.u.challenge.challenge,
                                   r.u.response.mac),
                 0);
    tc_send(fd, &r);
    int rc = -1;
    if (tc_recv(fd, &buf, &m) == 0)
        rc = m.type == WIRE_AUTH_OK ? 0 : m.u.error.code;
    free(buf);
    return rc;
}

TS_UNUSED static void
tc_hello(int fd)
{
    struct wire_msg r;
    memset(&r, 0, sizeof r);
    r.type = WIRE_HELLO;
    r.request_id = 2;
    r.u.hello.version = 1;
    r.u.hello.traceparent = "";
    r.u.hello.client_name = "test";
    r.u.hello.client_name_len = 4;
    r.u.hello.job_id = "job";
    r.u.hello.job_id_len = 3;
    tc_send(fd, &r);
    uint8_t *buf = NULL;
    struct wire_msg m;
    cr_assert_eq(tc_recv(fd, &buf, &m), 0);
    cr_assert_eq(m.type, WIRE_HELLO_OK);
    free(buf);
}

/* Connected, authenticated and past HELLO. */
TS_UNUSED static int
tc_open(uint16_t port)
{
    int fd = tc_connect(port);
    cr_assert_eq(tc_auth(fd, ts_token, TS_TOKEN_LEN), 0);
    tc_hello(fd);
    return fd;
}

TS_UNUSED static void
ts_sha(const void *data, size_t len, uint8_t out[32])
{
    unsigned int n = 0;
    cr_assert(EVP_Digest(data, len, out, &n, EVP_sha256(), NULL));
}

TS_UNUSED static void
tc_put_msg(struct wire_msg *m, uint32_t rid, const uint8_t *data, uint32_t len,
           const char *hint, uint64_t off)
{
    memset(m, 0, sizeof *m);
    m->type = WIRE_PUT;
    m->request_id = rid;
    ts_sha(data, len, m->u.put.id);
    m->u.put.codec = WIRE_CODEC_RAW;
    m->u.put.raw_len = len;
    m->u.put.data = data;
    m->u.put.data_len = len;
    if (hint) {
        m->u.put.has_hint = true;
        m->u.put.hint_path = hint;
        m->u.put.hint_path_len = strlen(hint);
        m->u.put.hint_offset = off;
    }
}

/* Send a request and return its reply type (ERROR: *code set). */
TS_UNUSED static uint8_t
tc_call(int fd, const struct wire_msg *req, struct wire_msg *reply,
        uint8_t **buf)
{
    cr_assert_eq(tc_send(fd, req), 0);
    cr_assert_eq(tc_recv(fd, buf, reply), 0, "no reply to %s",
                 wire_type_name(req->type));
    cr_assert_eq(reply->request_id, req->request_id);
    return reply->type;
}

/* PUT one chunk and expect PUT_OK. */
TS_UNUSED static void
tc_put(int fd, uint32_t rid, const uint8_t *data, uint32_t len,
       const char *hint, uint64_t off)
{
    struct wire_msg m, r;
    uint8_t *buf = NULL;
    tc_put_msg(&m, rid, data, len, hint, off);
    uint8_t t = tc_call(fd, &m, &r, &buf);
    cr_assert_eq(t, WIRE_PUT_OK, "PUT: %s %.*s", wire_type_name(t),
                 t == WIRE_ERROR ? (int)r.u.error.message_len : 0,
                 t == WIRE_ERROR ? r.u.error.message : "");
    free(buf);
}

/* A COMMIT of a regular file made of the given chunks (ids computed). */
struct tc_file {
    const char *path;
    const uint8_t *data;
    size_t size;
    const size_t *cuts; /* chunk lengths, summing to size */
    size_t ncuts;
    uint32_t mode;
    int64_t mtime;
};

TS_UNUSED static void
tc_commit_msg(struct wire_msg *m, uint32_t rid, const struct tc_file *f,
              struct wire_chunk_ref *refs)
{
    memset(m, 0, sizeof *m);
    m->type = WIRE_COMMIT;
    m->request_id = rid;
    m->u.commit.path = f->path;
    m->u.commit.path_len = strlen(f->path);
    m->u.commit.ftype = WIRE_FT_REGULAR;
    m->u.commit.size = f->size;
    m->u.commit.mode = f->mode ? f->mode : 0644;
    m->u.commit.mtime_sec = f->mtime ? f->mtime : 1700000000;
    m->u.commit.target = "";
    ts_sha(f->data, f->size, m->u.commit.digest);
    size_t off = 0;
    for (size_t i = 0; i < f->ncuts; i++) {
        ts_sha(f->data + off, f->cuts[i], refs[i].id);
        refs[i].raw_len = (uint32_t)f->cuts[i];
        off += f->cuts[i];
    }
    m->u.commit.chunk_total = f->ncuts;
    m->u.commit.n = (uint32_t)f->ncuts;
    m->u.commit.chunks = refs;
}

/* COMMIT f whole and expect COMMIT_OK (with the star's message if not). */
TS_UNUSED static void
tc_commit_ok(int fd, uint32_t rid, const struct tc_file *f)
{
    struct wire_chunk_ref *refs = calloc(f->ncuts ? f->ncuts : 1, sizeof *refs);
    cr_assert_not_null(refs);
    struct wire_msg m, r;
    uint8_t *buf = NULL;
    tc_commit_msg(&m, rid, f, refs);
    uint8_t t = tc_call(fd, &m, &r, &buf);
    cr_assert_eq(t, WIRE_COMMIT_OK, "COMMIT %s: %s", f->path,
                 t == WIRE_ERROR ? r.u.error.message : "");
    free(buf);
    free(refs);
}

TS_UNUSED static void
ts_fill(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)x;
    }
}

TS_UNUSED static char *
ts_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) {
        free(b);
        b = NULL;
    }
    fclose(f);
    if (len)
        *len = (size_t)n;
    return b;
}

/* Expect ROOT/rel to hold exactly the len bytes at data. */
TS_UNUSED static void
ts_expect_file(const char *root, const char *rel, const void *data, size_t len)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    size_t got_len = 0;
    char *got = ts_read_file(p, &got_len);
    cr_assert_not_null(got, "%s missing", rel);
    cr_assert_eq(got_len, len, "%s: %zu bytes, %zu expected", rel, got_len,
                 len);
    cr_assert_eq(memcmp(got, data, len), 0, "%s: other bytes", rel);
    free(got);
}

#endif
