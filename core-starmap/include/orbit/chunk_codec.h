/*
 * orbit/chunk_codec.h - per-chunk compression: zstd when it pays, raw when it
 * does not (less than 3% saved).
 *
 * Codec ids are stored in containers and sent on the wire: 0 raw, 1 zstd.
 * A chunk_codec holds reusable zstd compression and decompression contexts,
 * so encoding a chunk allocates nothing. Decoding is bounded by the raw
 * length the caller expects (from the record or the PUT): a zstd frame must
 * declare exactly that content size, be a single frame of exactly stored_len
 * bytes, and decode to exactly raw_len bytes; anything else is rejected.
 *
 * Ownership: chunk_codec_new() / chunk_codec_free() (free(NULL) no-op);
 * buffers are the caller's. Errors: ORBIT_EINVAL, ORBIT_ENOMEM,
 * ORBIT_ETOOBIG (raw length above CHUNK_CODEC_MAX_RAW), ORBIT_EFULL (dst too
 * small), ORBIT_EFORMAT (unknown codec id), ORBIT_ECORRUPT (sizes disagree),
 * ORBIT_ECODEC (zstd failed: corrupted frame).
 * Thread-safety: one codec per thread; distinct codecs are independent.
 */
#ifndef ORBIT_CHUNK_CODEC_H
#define ORBIT_CHUNK_CODEC_H

#include <stddef.h>
#include <stdint.h>

#define CHUNK_CODEC_RAW  0
#define CHUNK_CODEC_ZSTD 1

#define CHUNK_CODEC_DEFAULT_LEVEL 3
/* Largest raw chunk the codec accepts (the chunker's hard maximum). */
#define CHUNK_CODEC_MAX_RAW ((size_t)64 * 1024 * 1024)

struct chunk_codec;

/* level: zstd level (1..19; 0 means CHUNK_CODEC_DEFAULT_LEVEL). */
int chunk_codec_new(int level, struct chunk_codec **out);
void chunk_codec_free(struct chunk_codec *c);

/* dst capacity that chunk_codec_encode() needs for a raw_len chunk. */
size_t chunk_codec_bound(size_t raw_len);

/*
 * Encode raw[0, raw_len) into dst (dst_cap >= chunk_codec_bound(raw_len)):
 * *stored_len bytes, with *codec_id CHUNK_CODEC_ZSTD or, when compression
 * saves less than 3%, CHUNK_CODEC_RAW (dst then holds a copy of raw).
 */
int chunk_codec_encode(struct chunk_codec *c, const void *raw, size_t raw_len,
                       void *dst, size_t dst_cap, size_t *stored_len,
                       uint8_t *codec_id);

/*
 * Decode stored[0, stored_len) encoded with codec_id into dst, which must
 * hold raw_len bytes; succeeds only if exactly raw_len bytes come out.
 */
int chunk_codec_decode(struct chunk_codec *c, uint8_t codec_id,
                       const void *stored, size_t stored_len, void *dst,
                       size_t raw_len);

#endif
