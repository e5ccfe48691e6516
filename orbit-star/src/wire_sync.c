/*
 * Blocking client: poll() bounds every step by the timeout, MSG_DONTWAIT
 * keeps a blocking socket from stalling past it, MSG_NOSIGNAL keeps a closed
 * peer from raising SIGPIPE.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "orbit/error.h"
#include "orbit/wire_auth.h"
#include "orbit/wire_sync.h"
#include "wire_internal.h"

#define DEFAULT_TIMEOUT_MS 30000u

struct wire_sync {
    int fd;
    int timeout_ms;
    uint32_t next_id;
    uint8_t *buf; /* receive buffer, grown up to one maximal frame */
    size_t cap;
    struct wire_hello_ok hello;
    char star_name[WIRE_MAX_NAME + 1];
};

static int
wait_fd(const struct wire_sync *s, short events)
{
    struct pollfd p = {s->fd, events, 0};
    int n;
    do {
        n = poll(&p, 1, s->timeout_ms);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return orbit_err_from_errno(errno);
    return n == 0 ? ORBIT_ETIMEDOUT : 0;
}

static int
send_all(const struct wire_sync *s, const uint8_t *p, size_t len)
{
    while (len > 0) {
        int rc = wait_fd(s, POLLOUT);
        if (rc < 0)
            return rc;
        ssize_t n = send(s->fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n < 0)
            return errno == EPIPE || errno == ECONNRESET
                       ? ORBIT_ECLOSED
                       : orbit_err_from_errno(errno);
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int
recv_all(const struct wire_sync *s, uint8_t *p, size_t len)
{
    while (len > 0) {
        int rc = wait_fd(s, POLLIN);
        if (rc < 0)
            return rc;
        ssize_t n = recv(s->fd, p, len, MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (n < 0)
            return errno == ECONNRESET ? ORBIT_ECLOSED
                                       : orbit_err_from_errno(errno);
        if (n == 0)
            return ORBIT_ECLOSED;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int
send_msg(struct wire_sync *s, const struct wire_msg *m)
{
    size_t len = 0, written = 0;
    int rc = wire_encoded_len(m, &len);
    if (rc < 0)
        return rc;
    uint8_t *out = wire_malloc(len);
    if (!out)
        return ORBIT_ENOMEM;
    rc = wire_encode(m, out, len, &written);
    if (rc == 0)
        rc = send_all(s, out, written);
    free(out);
    return rc;
}

/* Read one frame into s->buf; *m points into it. */
static int
recv_msg(struct wire_sync *s, struct wire_msg *m)
{
    struct wire_hdr hdr;
    uint8_t h[WIRE_HDR_LEN];
    int rc = recv_all(s, h, sizeof h);
    if (rc == 0)
        rc = wire_frame_peek(h, sizeof h, &hdr);
    if (rc < 0)
        return rc;
    if (hdr.payload_len > s->cap) {
        uint8_t *n = wire_realloc(s->buf, hdr.payload_len);
        if (!n)
            return ORBIT_ENOMEM;
        s->buf = n;
        s->cap = hdr.payload_len;
    }
    rc = recv_all(s, s->buf, hdr.payload_len);
    return rc < 0 ? rc : wire_decode(&hdr, s->buf, m);
}

/* Wait for the reply to request id, of type want. */
static int
await(struct wire_sync *s, uint32_t id, uint8_t want, struct wire_msg *m)
{
    for (;;) {
        int rc = recv_msg(s, m);
        if (rc < 0)
            return rc;
        if (m->type == WIRE_ERROR && m->request_id == 0)
            return m->u.error.code; /* about the session itself */
        if (m->type == WIRE_BULLETIN || m->request_id != id)
            continue;
        if (m->type == WIRE_ERROR)
            return m->u.error.code;
        return m->type == want ? 0 : ORBIT_EPROTO;
    }
}

static int
handshake(struct wire_sync *s, const uint8_t *token, size_t token_len,
          const char *name)
{
    struct wire_msg in, out;
    int rc = recv_msg(s, &in);
    if (rc == 0)
        rc = wire_auth_answer(&in, token, token_len, s->next_id++, &out);
    if (rc == 0)
        rc = send_msg(s, &out);
    if (rc == 0)
        rc = await(s, out.request_id, WIRE_AUTH_OK, &in);
    if (rc < 0)
        return rc;
    wire_hello_init(&out, s->next_id++, name, NULL, NULL);
    rc = send_msg(s, &out);
    if (rc == 0)
        rc = await(s, out.request_id, WIRE_HELLO_OK, &in);
    if (rc < 0)
        return rc;
    if (in.u.hello_ok.version != WIRE_VERSION)
        return ORBIT_EVERSION;
    s->hello = in.u.hello_ok;
    memcpy(s->star_name, in.u.hello_ok.star_name,
           in.u.hello_ok.star_name_len + 1);
    s->hello.star_name = s->star_name;
    return 0;
}

int
wire_sync_from_fd(int fd, const uint8_t *token, size_t token_len,
                  const char *client_name, uint32_t timeout_ms,
                  struct wire_sync **out)
{
    if (fd < 0 || !out) {
        if (fd >= 0)
            close(fd);
        return ORBIT_EINVAL;
    }
    struct wire_sync *s = wire_calloc(1, sizeof *s);
    if (!s) {
        close(fd);
        return ORBIT_ENOMEM;
    }
    s->fd = fd;
    s->next_id = 1;
    uint32_t t = timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS;
    s->timeout_ms = t > INT32_MAX ? INT32_MAX : (int)t;
    int rc = handshake(s, token, token_len, client_name);
    if (rc < 0) {
        wire_sync_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* A non-blocking connect bounded by timeout_ms. */
static int
connect_one(const struct addrinfo *ai, int timeout_ms, int *out_fd)
{
    int fd =
        socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
               ai->ai_protocol);
    if (fd < 0)
        return ORBIT_ECONNECT;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
        close(fd);
        return ORBIT_ECONNECT;
    }
    struct pollfd p = {fd, POLLOUT, 0};
    int err = 0;
    socklen_t len = sizeof err;
    if (poll(&p, 1, timeout_ms) != 1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err != 0) {
        close(fd);
        return ORBIT_ECONNECT;
    }
    *out_fd = fd;
    return 0;
}

int
wire_sync_connect(const char *host, uint16_t port, const uint8_t *token,
                  size_t token_len, const char *client_name,
                  uint32_t timeout_ms, struct wire_sync **out)
{
    if (!host || !out)
        return ORBIT_EINVAL;
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned)port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, service, &hints, &res) != 0)
        return ORBIT_ECONNECT;
    uint32_t t = timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS;
    int fd = -1, rc = ORBIT_ECONNECT;
    for (const struct addrinfo *ai = res; ai && rc < 0; ai = ai->ai_next)
        rc = connect_one(ai, t > INT32_MAX ? INT32_MAX : (int)t, &fd);
    freeaddrinfo(res);
    if (rc < 0)
        return rc;
    return wire_sync_from_fd(fd, token, token_len, client_name, timeout_ms,
                             out);
}

const struct wire_hello_ok *
wire_sync_hello(const struct wire_sync *s)
{
    return &s->hello;
}

int
wire_sync_request(struct wire_sync *s, const struct wire_msg *req,
                  struct wire_msg *reply)
{
    uint8_t want = req ? wire_reply_type(req->type) : 0;
    if (!s || !reply || want == 0 || req->type == WIRE_AUTH_RESPONSE)
        return ORBIT_EINVAL;
    struct wire_msg m = *req;
    m.request_id = s->next_id++;
    if (m.request_id == 0)
        m.request_id = s->next_id++;
    int rc = send_msg(s, &m);
    return rc < 0 ? rc : await(s, m.request_id, want, reply);
}

void
wire_sync_free(struct wire_sync *s)
{
    if (!s)
        return;
    if (s->fd >= 0)
        close(s->fd);
    free(s->buf);
    free(s);
}
