/*
 * orbit/wire_auth.h - challenge/response authentication of a wire session.
 *
 * The star sends WIRE_CHALLENGE_LEN random bytes; the client answers with
 * HMAC-SHA256(token, challenge); the star compares in constant time. The
 * token is a shared secret read from a file (wire_token_load()).
 *
 * Ownership: callers own every buffer; nothing is allocated or kept.
 * Errors: ORBIT_EAUTH (MAC mismatch), ORBIT_ECRYPTO (OpenSSL failure),
 * ORBIT_EINVAL (empty token, NULL argument), ORBIT_EIO / ORBIT_ENOENT /
 * ORBIT_EPERM (token file), ORBIT_ETOOBIG (token longer than the buffer or
 * WIRE_TOKEN_MAX).
 * Thread-safety: all functions are reentrant.
 */
#ifndef ORBIT_WIRE_AUTH_H
#define ORBIT_WIRE_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "orbit/wire.h"

#define WIRE_TOKEN_MAX 4096

/* Fill out with WIRE_CHALLENGE_LEN cryptographically random bytes. */
int wire_auth_challenge(uint8_t out[WIRE_CHALLENGE_LEN]);

/* out_mac = HMAC-SHA256(token, challenge). */
int wire_auth_respond(const uint8_t *token, size_t token_len,
                      const uint8_t challenge[WIRE_CHALLENGE_LEN],
                      uint8_t out_mac[WIRE_MAC_LEN]);

/* 0 if mac is HMAC-SHA256(token, challenge) (constant-time compare),
 * ORBIT_EAUTH otherwise. */
int wire_auth_verify(const uint8_t *token, size_t token_len,
                     const uint8_t challenge[WIRE_CHALLENGE_LEN],
                     const uint8_t mac[WIRE_MAC_LEN]);

/*
 * Read a token file into buf (cap bytes): trailing "\n" / "\r\n" stripped,
 * an empty token or one over WIRE_TOKEN_MAX bytes refused. *out_len is the
 * token length; buf is not NUL-terminated.
 */
int wire_token_load(const char *path, uint8_t *buf, size_t cap,
                    size_t *out_len);

#endif
