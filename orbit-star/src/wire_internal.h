/*
 * wire_internal.h - big-endian helpers shared by the wire_*.c files.
 * Private to orbit-star.
 */
#ifndef ORBIT_WIRE_INTERNAL_H
#define ORBIT_WIRE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* HMAC-SHA256 of any data (wire_auth_respond() fixes the data length),
 * exposed for known-answer tests. out holds 32 bytes. */
int wire_auth_hmac(const uint8_t *key, size_t key_len, const uint8_t *data,
                   size_t data_len, uint8_t out[32]);

/* Allocation seam (wire_alloc.c): weak, replaced by tests to fail the Nth
 * allocation. Memory is released with free(). */
void *wire_malloc(size_t size);
void *wire_calloc(size_t n, size_t size);
void *wire_realloc(void *p, size_t size);

struct wire_msg;

/* The AUTH_RESPONSE to a received AUTH_CHALLENGE; an ERROR received instead
 * yields its code, anything else ORBIT_EPROTO. */
int wire_auth_answer(const struct wire_msg *challenge, const uint8_t *token,
                     size_t token_len, uint32_t request_id,
                     struct wire_msg *out);

/* A HELLO for this protocol version; NULL strings are empty. The strings
 * must outlive m. */
void wire_hello_init(struct wire_msg *m, uint32_t request_id, const char *name,
                     const char *job_id, const char *traceparent);

struct wire_client;
struct wire_packer;
struct evbuffer;

/* Compress the whole of run (encoded frames, at most WIRE_MAX_PACK_RAW) into
 * one PACKED frame appended to out, and empty run; *sent is the frame's
 * size (0 when run was empty). wire_pack_bound() space is reserved. */
int wire_pack_run(struct wire_packer *p, struct evbuffer *run,
                  struct evbuffer *out, size_t *sent);

/* Invariants of a client (the request window matches its count, nothing is
 * held once ready, nothing pending once closed): 0 or ORBIT_ECORRUPT. */
int wire_client_check(const struct wire_client *c);

/* The O_NOFOLLOW component walk behind wire_path_open_beneath(), exposed so
 * tests can run it on kernels that have openat2. rel must be checked. */
int wire_path_open_walk(int rootfd, const char *rel, int flags, mode_t mode,
                        int *out_fd);

static inline void
wire_be16_put(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void
wire_be32_put(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static inline void
wire_be64_put(uint8_t *p, uint64_t v)
{
    wire_be32_put(p, (uint32_t)(v >> 32));
    wire_be32_put(p + 4, (uint32_t)v);
}

static inline uint16_t
wire_be16_get(const uint8_t *p)
{
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}

static inline uint32_t
wire_be32_get(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static inline uint64_t
wire_be64_get(const uint8_t *p)
{
    return (uint64_t)wire_be32_get(p) << 32 | wire_be32_get(p + 4);
}

#endif
