/*
 * orbit/wire_sync.h - a small blocking wire client for tests, `orbit verify`
 * and tools: connect, authenticate, HELLO, then one request at a time.
 *
 * Ownership: a wire_sync owns its socket (also one passed to
 * wire_sync_from_fd(), even when that call fails) and one receive buffer; a
 * reply returned by wire_sync_request() points into that buffer and is valid
 * until the next call on the same wire_sync.
 * Errors: ORBIT_ECONNECT, ORBIT_ETIMEDOUT (no progress within timeout_ms),
 * ORBIT_ECLOSED, ORBIT_EAUTH, ORBIT_EPROTO, ORBIT_EVERSION, ORBIT_ENOMEM,
 * the codec's errors, or the code of an ERROR reply.
 * Thread-safety: none; one thread per wire_sync.
 */
#ifndef ORBIT_WIRE_SYNC_H
#define ORBIT_WIRE_SYNC_H

#include <stddef.h>
#include <stdint.h>

#include "orbit/wire.h"

struct wire_sync;

/* Connect to host:port and complete AUTH and HELLO. timeout_ms (0: 30 s)
 * bounds every blocking step. */
int wire_sync_connect(const char *host, uint16_t port, const uint8_t *token,
                      size_t token_len, const char *client_name,
                      uint32_t timeout_ms, struct wire_sync **out);

/* The same over an already-connected blocking or non-blocking socket. */
int wire_sync_from_fd(int fd, const uint8_t *token, size_t token_len,
                      const char *client_name, uint32_t timeout_ms,
                      struct wire_sync **out);

/* The star's HELLO_OK (star_name valid as long as s). */
const struct wire_hello_ok *wire_sync_hello(const struct wire_sync *s);

/*
 * Send req (a request type; its request_id is assigned) and wait for its
 * reply, skipping BULLETINs. Returns 0 with the reply in *reply, the code of
 * an ERROR reply (then *reply is that ERROR), or a local error.
 */
int wire_sync_request(struct wire_sync *s, const struct wire_msg *req,
                      struct wire_msg *reply);

/* Close the socket and free s; NULL is a no-op. */
void wire_sync_free(struct wire_sync *s);

#endif
