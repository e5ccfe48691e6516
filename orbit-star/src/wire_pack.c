/*
 * PACKED frames: one zstd stream per connection and direction, flushed at
 * every PACKED frame so each segment decodes on its own given the ones
 * before it. The unpacker bounds everything it produces by the announced
 * length (never more than WIRE_MAX_PACK_RAW) and the window it accepts.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include <zstd.h>

#include "orbit/error.h"
#include "orbit/wire_pack.h"
#include "wire_internal.h"

/* PACKED payload before the segment: codec, raw length, raw CRC, length. */
#define PACKED_FIXED 13u

struct wire_packer {
    ZSTD_CCtx *z;
    bool broken;
};

struct wire_unpacker {
    ZSTD_DCtx *z;
    uint8_t *buf; /* the last run of frames */
    size_t cap;
    bool broken;
};

int
wire_packer_new(int level, struct wire_packer **out)
{
    *out = NULL;
    if (level < 1 || level > 19)
        return ORBIT_EINVAL;
    struct wire_packer *p = wire_calloc(1, sizeof *p);
    if (!p)
        return ORBIT_ENOMEM;
    p->z = ZSTD_createCCtx();
    if (!p->z ||
        ZSTD_isError(
            ZSTD_CCtx_setParameter(p->z, ZSTD_c_compressionLevel, level)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(p->z, ZSTD_c_windowLog,
                                            WIRE_PACK_WINDOW_LOG))) {
        wire_packer_free(p);
        return ORBIT_ENOMEM;
    }
    *out = p;
    return 0;
}

void
wire_packer_free(struct wire_packer *p)
{
    if (!p)
        return;
    ZSTD_freeCCtx(p->z);
    free(p);
}

size_t
wire_pack_bound(size_t raw_len)
{
    /* A flush closes a block; the first segment carries the frame header. */
    return WIRE_HDR_LEN + PACKED_FIXED + ZSTD_compressBound(raw_len) + 32;
}

int
wire_pack(struct wire_packer *p, const uint8_t *raw, size_t raw_len,
          uint8_t *out, size_t cap, size_t *out_len)
{
    *out_len = 0;
    if (!p || !raw || !out || raw_len < WIRE_HDR_LEN ||
        raw_len > WIRE_MAX_PACK_RAW)
        return ORBIT_EINVAL;
    if (p->broken)
        return ORBIT_ECORRUPT;
    if (cap < wire_pack_bound(raw_len))
        return ORBIT_EFULL;
    size_t head = WIRE_HDR_LEN + PACKED_FIXED;
    ZSTD_inBuffer in = {raw, raw_len, 0};
    ZSTD_outBuffer o = {out + head, cap - head, 0};
    size_t left;
    do {
        left = ZSTD_compressStream2(p->z, &o, &in, ZSTD_e_flush);
        if (ZSTD_isError(left) || (left > 0 && o.pos == o.size)) {
            p->broken = true;
            return ORBIT_ENOMEM;
        }
    } while (left > 0);
    size_t payload = PACKED_FIXED + o.pos;
    out[0] = WIRE_VERSION;
    out[1] = WIRE_PACKED;
    wire_be16_put(out + 2, 0);
    wire_be32_put(out + 4, 0);
    wire_be32_put(out + 8, (uint32_t)payload);
    out[WIRE_HDR_LEN] = WIRE_CODEC_ZSTD;
    wire_be32_put(out + WIRE_HDR_LEN + 1, (uint32_t)raw_len);
    wire_be32_put(out + WIRE_HDR_LEN + 5, wire_crc32c(raw, raw_len));
    wire_be32_put(out + WIRE_HDR_LEN + 9, (uint32_t)o.pos);
    int rc = wire_frame_seal(out, WIRE_HDR_LEN + payload);
    if (rc < 0) {
        p->broken = true;
        return rc;
    }
    *out_len = WIRE_HDR_LEN + payload;
    return 0;
}

int
wire_pack_run(struct wire_packer *p, struct evbuffer *run, struct evbuffer *out,
              size_t *sent)
{
    *sent = 0;
    size_t raw_len = evbuffer_get_length(run);
    if (raw_len == 0)
        return 0;
    struct evbuffer_iovec v;
    const uint8_t *raw = evbuffer_pullup(run, -1);
    int rc = ORBIT_ENOMEM;
    if (raw && evbuffer_reserve_space(out, (ev_ssize_t)wire_pack_bound(raw_len),
                                      &v, 1) == 1) {
        rc = wire_pack(p, raw, raw_len, v.iov_base, v.iov_len, sent);
        v.iov_len = *sent;
        evbuffer_commit_space(out, &v, 1);
    }
    evbuffer_drain(run, raw_len);
    return rc;
}

int
wire_unpacker_new(struct wire_unpacker **out)
{
    *out = NULL;
    struct wire_unpacker *u = wire_calloc(1, sizeof *u);
    if (!u)
        return ORBIT_ENOMEM;
    u->z = ZSTD_createDCtx();
    if (!u->z || ZSTD_isError(ZSTD_DCtx_setParameter(u->z, ZSTD_d_windowLogMax,
                                                     WIRE_PACK_WINDOW_LOG))) {
        wire_unpacker_free(u);
        return ORBIT_ENOMEM;
    }
    *out = u;
    return 0;
}

void
wire_unpacker_free(struct wire_unpacker *u)
{
    if (!u)
        return;
    ZSTD_freeDCtx(u->z);
    free(u->buf);
    free(u);
}

int
wire_unpacked_next(const uint8_t *raw, size_t len, size_t *pos,
                   struct wire_hdr *hdr, const uint8_t **payload)
{
    if (*pos == len)
        return 0;
    if (*pos > len || wire_frame_peek(raw + *pos, len - *pos, hdr) < 0 ||
        hdr->type == WIRE_PACKED ||
        hdr->payload_len > len - *pos - WIRE_HDR_LEN)
        return ORBIT_ECORRUPT;
    *payload = raw + *pos + WIRE_HDR_LEN;
    *pos += WIRE_HDR_LEN + (size_t)hdr->payload_len;
    return 1;
}

/* Decompress exactly pk->raw_len bytes into u->buf. */
static int
inflate_segment(struct wire_unpacker *u, const struct wire_packed *pk)
{
    size_t want = (size_t)pk->raw_len + 1; /* room to see an overrun */
    if (u->cap < want) {
        uint8_t *nb = wire_realloc(u->buf, want);
        if (!nb)
            return ORBIT_ENOMEM;
        u->buf = nb;
        u->cap = want;
    }
    ZSTD_inBuffer in = {pk->data, pk->data_len, 0};
    ZSTD_outBuffer o = {u->buf, want, 0};
    while (in.pos < in.size) {
        size_t rc = ZSTD_decompressStream(u->z, &o, &in);
        if (ZSTD_isError(rc) || o.pos == o.size)
            return ORBIT_ECORRUPT;
    }
    if (o.pos != pk->raw_len || wire_crc32c(u->buf, o.pos) != pk->raw_crc)
        return ORBIT_ECORRUPT;
    return 0;
}

int
wire_unpack(struct wire_unpacker *u, const struct wire_packed *pk,
            const uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (!u || !pk)
        return ORBIT_EINVAL;
    if (u->broken)
        return ORBIT_ECORRUPT;
    if (pk->codec != WIRE_CODEC_ZSTD || pk->raw_len < WIRE_HDR_LEN ||
        pk->raw_len > WIRE_MAX_PACK_RAW || !pk->data) {
        u->broken = true;
        return ORBIT_ECORRUPT;
    }
    int rc = inflate_segment(u, pk);
    size_t pos = 0;
    struct wire_hdr hdr;
    const uint8_t *payload;
    while (rc == 0 && (rc = wire_unpacked_next(u->buf, pk->raw_len, &pos, &hdr,
                                               &payload)) > 0)
        rc = 0;
    if (rc < 0) {
        u->broken = true;
        return rc;
    }
    *out = u->buf;
    *out_len = pk->raw_len;
    return 0;
}
