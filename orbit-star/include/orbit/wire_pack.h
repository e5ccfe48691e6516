/*
 * orbit/wire_pack.h - PACKED frames: runs of small frames sent as one
 * compressed segment (docs/protocol.md, "Packed frames").
 *
 * Each direction of a connection that negotiated WIRE_FEATURE_PACKED may
 * carry one zstd stream: every PACKED frame holds the next flushed segment
 * of it, so a small frame compresses against everything the sender packed
 * before it on that connection (the paths of one tree share most of their
 * bytes, and request ids count up). The sender owns a wire_packer, the
 * receiver a wire_unpacker, one per connection and direction; both must see
 * every PACKED frame of the direction, in order. A segment that fails to
 * unpack leaves the stream unusable: the receiver ends the connection.
 *
 * Errors: ORBIT_ENOMEM, ORBIT_EINVAL (bad argument), ORBIT_EFULL (output
 * below wire_pack_bound()), ORBIT_ECORRUPT (a segment that does not unpack
 * to whole, acceptable frames of the announced length and CRC).
 *
 * Thread-safety: a packer or unpacker is used by one thread at a time.
 */
#ifndef ORBIT_WIRE_PACK_H
#define ORBIT_WIRE_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "orbit/wire.h"

/* The zstd window of a packed stream: 64 KiB (what an unpacker accepts). */
#define WIRE_PACK_WINDOW_LOG 16
#define WIRE_PACK_LEVEL      1 /* the default zstd level */

struct wire_packer;
struct wire_unpacker;

/* A packer compressing at zstd level `level` (1 ... 19). */
int wire_packer_new(int level, struct wire_packer **out);
void wire_packer_free(struct wire_packer *p);

/* The most bytes a PACKED frame of raw_len bytes of frames can take. */
size_t wire_pack_bound(size_t raw_len);

/*
 * Compress raw (whole encoded frames, WIRE_HDR_LEN <= raw_len <=
 * WIRE_MAX_PACK_RAW) into one sealed PACKED frame (request id 0) at out,
 * which holds cap >= wire_pack_bound(raw_len) bytes; *out_len is its size.
 * After an error the packer's stream is unusable (the receiver would fail).
 */
int wire_pack(struct wire_packer *p, const uint8_t *raw, size_t raw_len,
              uint8_t *out, size_t cap, size_t *out_len);

int wire_unpacker_new(struct wire_unpacker **out);
void wire_unpacker_free(struct wire_unpacker *u);

/*
 * Decompress a decoded PACKED message. On success *out points at raw_len
 * bytes owned by u (valid until the next call or the free) that are whole
 * frames, each with an acceptable header (wire_frame_peek) and none of them
 * PACKED; walk them with wire_unpacked_next(). Any failure is final: later
 * calls fail too.
 */
int wire_unpack(struct wire_unpacker *u, const struct wire_packed *pk,
                const uint8_t **out, size_t *out_len);

/* The next frame of an unpacked run at *pos: 1 with its header and payload
 * (then *pos moves past it), 0 at the end, ORBIT_ECORRUPT if the run is not
 * whole frames. */
int wire_unpacked_next(const uint8_t *raw, size_t len, size_t *pos,
                       struct wire_hdr *hdr, const uint8_t **payload);

#endif
