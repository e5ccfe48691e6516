#include "orbit/chunk_codec.h"

#include "orbit/error.h"
#include "starmap_alloc.h"

#include <stdlib.h>
#include <string.h>
#include <zstd.h>

struct chunk_codec {
    ZSTD_CCtx *cctx;
    ZSTD_DCtx *dctx;
    int level;
};

int
chunk_codec_new(int level, struct chunk_codec **out)
{
    if (!out)
        return ORBIT_EINVAL;
    *out = NULL;
    if (level == 0)
        level = CHUNK_CODEC_DEFAULT_LEVEL;
    if (level < 1 || level > ZSTD_maxCLevel())
        return ORBIT_EINVAL;
    struct chunk_codec *c = starmap_calloc(1, sizeof *c);
    if (!c)
        return ORBIT_ENOMEM;
    c->level = level;
    c->cctx = ZSTD_createCCtx();
    c->dctx = ZSTD_createDCtx();
    if (!c->cctx || !c->dctx ||
        ZSTD_isError(
            ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel, level)) ||
        ZSTD_isError(
            ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_contentSizeFlag, 1)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_checksumFlag, 0))) {
        chunk_codec_free(c);
        return ORBIT_ENOMEM;
    }
    *out = c;
    return 0;
}

void
chunk_codec_free(struct chunk_codec *c)
{
    if (!c)
        return;
    ZSTD_freeCCtx(c->cctx);
    ZSTD_freeDCtx(c->dctx);
    free(c);
}

size_t
chunk_codec_bound(size_t raw_len)
{
    size_t b = ZSTD_compressBound(raw_len);
    return b > raw_len ? b : raw_len;
}

int
chunk_codec_encode(struct chunk_codec *c, const void *raw, size_t raw_len,
                   void *dst, size_t dst_cap, size_t *stored_len,
                   uint8_t *codec_id)
{
    if (!c || !dst || !stored_len || !codec_id || (!raw && raw_len))
        return ORBIT_EINVAL;
    if (raw_len > CHUNK_CODEC_MAX_RAW)
        return ORBIT_ETOOBIG;
    if (dst_cap < chunk_codec_bound(raw_len))
        return ORBIT_EFULL;
    size_t n = ZSTD_compress2(c->cctx, dst, dst_cap, raw, raw_len);
    if (ZSTD_isError(n)) {
        ZSTD_CCtx_reset(c->cctx, ZSTD_reset_session_only);
        return ORBIT_ECODEC;
    }
    /* Keep zstd only if it saves at least 3% of the raw size. */
    if (raw_len > 0 && n <= raw_len - (raw_len * 3 + 99) / 100) {
        *stored_len = n;
        *codec_id = CHUNK_CODEC_ZSTD;
        return 0;
    }
    if (raw_len)
        memcpy(dst, raw, raw_len);
    *stored_len = raw_len;
    *codec_id = CHUNK_CODEC_RAW;
    return 0;
}

static int
decode_zstd(struct chunk_codec *c, const void *stored, size_t stored_len,
            void *dst, size_t raw_len)
{
    unsigned long long fcs = ZSTD_getFrameContentSize(stored, stored_len);
    if (fcs == ZSTD_CONTENTSIZE_ERROR)
        return ORBIT_ECODEC;
    if (fcs == ZSTD_CONTENTSIZE_UNKNOWN || fcs != raw_len)
        return ORBIT_ECORRUPT;
    size_t fsz = ZSTD_findFrameCompressedSize(stored, stored_len);
    if (ZSTD_isError(fsz))
        return ORBIT_ECODEC;
    if (fsz != stored_len)
        return ORBIT_ECORRUPT; /* trailing bytes or a second frame */
    size_t n = ZSTD_decompressDCtx(c->dctx, dst, raw_len, stored, stored_len);
    if (ZSTD_isError(n)) {
        ZSTD_DCtx_reset(c->dctx, ZSTD_reset_session_only);
        return ORBIT_ECODEC;
    }
    return n == raw_len ? 0 : ORBIT_ECORRUPT;
}

int
chunk_codec_decode(struct chunk_codec *c, uint8_t codec_id, const void *stored,
                   size_t stored_len, void *dst, size_t raw_len)
{
    if (!c || (!stored && stored_len) || (!dst && raw_len))
        return ORBIT_EINVAL;
    if (raw_len > CHUNK_CODEC_MAX_RAW)
        return ORBIT_ETOOBIG;
    switch (codec_id) {
    case CHUNK_CODEC_RAW:
        if (stored_len != raw_len)
            return ORBIT_ECORRUPT;
        if (raw_len)
            memcpy(dst, stored, raw_len);
        return 0;
    case CHUNK_CODEC_ZSTD:
        if (stored_len == 0)
            return ORBIT_ECODEC;
        return decode_zstd(c, stored, stored_len, dst, raw_len);
    default:
        return ORBIT_EFORMAT;
    }
}
