/*
 * Fuzz target: the chunk codec's decoder on hostile input. The first byte
 * picks the codec id, the next three give the expected raw length (bounded
 * to 1 MiB here), the rest is the stored frame. Decoding must fail cleanly
 * or produce exactly that many bytes, which must then survive an encode /
 * decode round trip. The input itself also round-trips as a chunk.
 */
#include "orbit/chunk_codec.h"
#include "orbit/error.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
roundtrip(struct chunk_codec *c, const uint8_t *raw, size_t len)
{
    size_t cap = chunk_codec_bound(len), n = 0;
    uint8_t codec = 0;
    uint8_t *st = malloc(cap ? cap : 1), *back = malloc(len ? len : 1);
    if (!st || !back)
        abort();
    if (chunk_codec_encode(c, raw, len, st, cap, &n, &codec) != 0)
        abort();
    if (chunk_codec_decode(c, codec, st, n, back, len) != 0)
        abort();
    if (len && memcmp(back, raw, len) != 0)
        abort();
    free(st);
    free(back);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct chunk_codec *c;
    if (!c && chunk_codec_new(1, &c) != 0)
        abort();
    if (size < 4)
        return 0;
    uint8_t codec = data[0];
    size_t raw_len =
        (size_t)data[1] | (size_t)data[2] << 8 | (size_t)(data[3] & 0x0f) << 16;
    uint8_t *out = malloc(raw_len ? raw_len : 1);
    if (!out)
        abort();
    int rc = chunk_codec_decode(c, codec, data + 4, size - 4, out, raw_len);
    if (rc != 0 && rc != ORBIT_ECODEC && rc != ORBIT_ECORRUPT &&
        rc != ORBIT_EFORMAT)
        abort();
    if (rc == 0)
        roundtrip(c, out, raw_len);
    free(out);
    roundtrip(c, data, size);
    return 0;
}
