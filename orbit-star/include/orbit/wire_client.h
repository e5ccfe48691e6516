/*
 * orbit/wire_client.h - the source side of the wire protocol on libevent.
 *
 * A wire_client owns one connection to a star: it connects (host and port,
 * or an already-connected socket such as a socketpair end), answers the
 * star's AUTH_CHALLENGE with the token, sends HELLO, and then carries
 * pipelined requests. Each request returns its request id at once and later
 * calls its callback exactly once:
 *
 *   status 0          reply is the expected reply type (HAVE -> HAVE_REPLY...)
 *   status < 0, reply->type == WIRE_ERROR
 *                     the star refused: reply->u.error has the code,
 *                     retryable flag, message and batch item
 *   status < 0, reply == NULL
 *                     local outcome: ORBIT_ECLOSED (connection lost),
 *                     ORBIT_ETIMEDOUT (no reply within request_timeout_ms),
 *                     ORBIT_ECANCELED (wire_client_free), ORBIT_EPROTO (the
 *                     reply was malformed or of the wrong type)
 *
 * A reply and everything it points to is valid only during the callback.
 * Requests may be issued before the session is ready: they are held in
 * memory and sent after HELLO_OK. Outgoing bytes are bounded by
 * max_out_bytes: a request that does not fit returns ORBIT_EFULL and the
 * caller waits for on_drain (called once the buffered bytes fall to
 * low_water after having been above it); wire_client_pending_bytes() says
 * how much is buffered.
 *
 * Ownership: the config's strings and token are copied; buffers passed to a
 * request are copied (encoded) before the call returns. Callbacks may issue
 * requests and may call wire_client_free(), which then takes effect when
 * the callback returns.
 * Errors from the calls: ORBIT_EINVAL, ORBIT_ENOMEM, ORBIT_EFULL (outgoing
 * buffer or request window full), ORBIT_ECLOSED (session over), ORBIT_ECONNECT,
 * and the encoder's ORBIT_ETOOBIG / ORBIT_EPATH.
 * Thread-safety: none; use a client only from its event_base's thread.
 * Signals: libevent writes with writev(), so a process using clients should
 * ignore SIGPIPE (a closed peer then shows as ORBIT_ECLOSED).
 */
#ifndef ORBIT_WIRE_CLIENT_H
#define ORBIT_WIRE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orbit/wire.h"

struct event_base;
struct wire_client;

typedef void (*wire_reply_cb)(void *arg, int status,
                              const struct wire_msg *reply);

struct wire_client_config {
    const char *host; /* with port; used when fd < 0 */
    uint16_t port;
    int fd; /* >= 0: a connected stream socket, owned by the client after
               a successful wire_client_new() */
    const uint8_t *token;
    size_t token_len;
    const char *client_name; /* HELLO fields, NULL for "" */
    const char *job_id;
    const char *traceparent;
    uint32_t connect_timeout_ms; /* connect + auth + HELLO; 0: 10 s */
    uint32_t request_timeout_ms; /* per request; 0: 60 s */
    uint32_t max_pending;        /* requests in flight; 0: 4096 */
    size_t max_out_bytes;        /* buffered outgoing bytes; 0: 64 MiB */
    size_t low_water;            /* on_drain threshold; 0: max_out_bytes/4 */
    /* zstd level of PACKED frames (small requests are packed when the star
     * offers them, its replies when we do); 0: WIRE_PACK_LEVEL, < 0: never
     * (for a socketpair to an in-process star, where bytes cost nothing). */
    int pack_level;
    /* Exactly once: 0 with the star's HELLO_OK, or the failure (EAUTH,
     * ECONNECT, ETIMEDOUT, EVERSION, ECLOSED...) after which the client is
     * closed. hello (star name, limits) is valid during the call only. */
    void (*on_ready)(void *arg, int status, const struct wire_hello_ok *hello);
    /* Once, when a session that was ready ends (ECLOSED, EPROTO...), after
     * every pending callback has been called. */
    void (*on_closed)(void *arg, int status);
    void (*on_drain)(void *arg);
    void (*on_bulletin)(void *arg, const struct wire_bulletin *bulletin);
    void *arg;
};

/* Create a client and start connecting on base. With cfg->fd < 0, connects
 * to cfg->host:cfg->port (host names resolved by libevent). */
int wire_client_new(struct event_base *base,
                    const struct wire_client_config *cfg,
                    struct wire_client **out);

/* Close the connection; every pending callback gets ORBIT_ECANCELED.
 * NULL is a no-op. */
void wire_client_free(struct wire_client *c);

/* Any request message (type HELLO..GOODBYE, not AUTH_*); m->request_id is
 * assigned by the client and returned in *out_id (which may be NULL). */
int wire_client_send(struct wire_client *c, const struct wire_msg *m,
                     wire_reply_cb cb, void *arg, uint32_t *out_id);

int wire_client_have(struct wire_client *c, const uint8_t *ids, uint32_t n,
                     wire_reply_cb cb, void *arg, uint32_t *out_id);
int wire_client_put(struct wire_client *c, const struct wire_put *put,
                    wire_reply_cb cb, void *arg, uint32_t *out_id);
int wire_client_commit(struct wire_client *c, const struct wire_commit *commit,
                       wire_reply_cb cb, void *arg, uint32_t *out_id);
/* path and cursor: NUL-terminated, NULL for "". */
int wire_client_list(struct wire_client *c, const char *path,
                     const char *cursor, uint32_t max_entries, wire_reply_cb cb,
                     void *arg, uint32_t *out_id);
int wire_client_delete(struct wire_client *c, const char *path, uint8_t flags,
                       wire_reply_cb cb, void *arg, uint32_t *out_id);
int wire_client_health(struct wire_client *c, wire_reply_cb cb, void *arg,
                       uint32_t *out_id);
int wire_client_goodbye(struct wire_client *c, wire_reply_cb cb, void *arg,
                        uint32_t *out_id);

/* Encoded bytes not yet handed to the kernel (held or buffered). */
size_t wire_client_pending_bytes(const struct wire_client *c);

/* Bytes of whole frames this client sent (requests, handshake included;
 * a packed run counts as its PACKED frame) and received (replies) since it
 * was created: what crossed the connection. */
void wire_client_traffic(const struct wire_client *c, uint64_t *out,
                         uint64_t *in);

/* Requests sent or held whose callback has not run yet. */
size_t wire_client_pending_requests(const struct wire_client *c);

/* Whether HELLO_OK has arrived and the session is still open. */
bool wire_client_ready(const struct wire_client *c);

/* Whether the star is on this host: connected over a socketpair or a UNIX
 * socket, to a loopback address, or to an address this end's own address
 * equals (one of this host's). False when not connected. */
bool wire_client_peer_local(const struct wire_client *c);

/* The rule above, for a connection from self (may be NULL) to peer: a UNIX
 * socket, a loopback address (127/8, ::1, ::ffff:127/104), or the same IP
 * address at both ends (a connection to one of this host's addresses
 * leaves from that address). */
struct sockaddr;
bool wire_addr_local(const struct sockaddr *peer, const struct sockaddr *self);

#endif
