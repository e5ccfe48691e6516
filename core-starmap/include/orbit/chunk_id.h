/*
 * orbit/chunk_id.h - chunk ids (SHA-256 of a chunk's raw bytes), their hex
 * form, and a streaming digest for whole files.
 *
 * A struct chunk_id is a plain value (32 bytes), copied freely.
 * chunk_id_ctx holds a reusable OpenSSL digest context: hashing through it
 * allocates nothing per call. chunk_id_compute() is the convenience form
 * (one context per call). chunk_id_stream digests a stream fed in slices.
 *
 * Ownership: *_new() objects are freed by the matching *_free(); free(NULL)
 * is a no-op. Errors: ORBIT_EINVAL, ORBIT_ENOMEM, ORBIT_ECRYPTO (OpenSSL
 * failure), ORBIT_EFORMAT (bad hex), and for chunk_id_file() the errno-based
 * codes (ORBIT_ENOENT, ORBIT_EPERM, ORBIT_EIO...).
 * Thread-safety: a context or stream is used by one thread at a time (one
 * per worker thread); the plain functions are thread-safe.
 */
#ifndef ORBIT_CHUNK_ID_H
#define ORBIT_CHUNK_ID_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHUNK_ID_LEN     32
#define CHUNK_ID_HEX_LEN 64 /* without the terminating NUL */

struct chunk_id {
    uint8_t b[CHUNK_ID_LEN];
};

struct chunk_id_ctx;
struct chunk_id_stream;

int chunk_id_ctx_new(struct chunk_id_ctx **out);
void chunk_id_ctx_free(struct chunk_id_ctx *ctx);
/* *out = SHA-256(data[0, len)). */
int chunk_id_ctx_compute(struct chunk_id_ctx *ctx, const void *data, size_t len,
                         struct chunk_id *out);

/* One-shot form of chunk_id_ctx_compute(). */
int chunk_id_compute(const void *data, size_t len, struct chunk_id *out);

bool chunk_id_equal(const struct chunk_id *a, const struct chunk_id *b);

/* Lower-case hex into out[CHUNK_ID_HEX_LEN + 1], NUL-terminated. */
void chunk_id_to_hex(const struct chunk_id *id, char *out);
/* Parse exactly CHUNK_ID_HEX_LEN hex digits (either case) from hex[0, len). */
int chunk_id_from_hex(const char *hex, size_t len, struct chunk_id *out);

int chunk_id_stream_new(struct chunk_id_stream **out);
void chunk_id_stream_free(struct chunk_id_stream *s);
/* Restart the digest (a stream is reusable after chunk_id_stream_final). */
int chunk_id_stream_reset(struct chunk_id_stream *s);
int chunk_id_stream_update(struct chunk_id_stream *s, const void *data,
                           size_t len);
/* The digest of everything fed since the last reset. */
int chunk_id_stream_final(struct chunk_id_stream *s, struct chunk_id *out);

/* SHA-256 of the whole file at path, read in 1 MiB slices. */
int chunk_id_file(const char *path, struct chunk_id *out);

#endif
