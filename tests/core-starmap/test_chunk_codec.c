#include "orbit/chunk_codec.h"
#include "orbit/chunk_id.h"
#include "orbit/error.h"
#include "starmap_test_util.h"

#include <criterion/criterion.h>
#include <zstd.h>

Test(chunk_id, known_digests_and_hex)
{
    struct chunk_id id, back;
    char hex[CHUNK_ID_HEX_LEN + 1];
    cr_assert_eq(chunk_id_compute("abc", 3, &id), 0);
    chunk_id_to_hex(&id, hex);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223"
                          "b00361a396177a9cb410ff61f20015ad");
    cr_assert_eq(chunk_id_from_hex(hex, strlen(hex), &back), 0);
    cr_assert(chunk_id_equal(&id, &back));
    hex[0] = 'B';
    cr_assert_eq(chunk_id_from_hex(hex, 64, &back), 0);
    cr_assert(chunk_id_equal(&id, &back));
    hex[5] = 'g';
    cr_assert_eq(chunk_id_from_hex(hex, 64, &back), ORBIT_EFORMAT);
    cr_assert_eq(chunk_id_from_hex(hex, 63, &back), ORBIT_EFORMAT);
    cr_assert_eq(chunk_id_compute(NULL, 0, &id), 0);
    chunk_id_to_hex(&id, hex);
    cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb924"
                          "27ae41e4649b934ca495991b7852b855");
}

Test(chunk_id, ctx_stream_and_file_agree)
{
    const size_t len = 3u << 20;
    uint8_t *data = tu_random_bytes(5, len);
    struct chunk_id a, b, c, d;
    struct chunk_id_ctx *ctx = NULL;
    struct chunk_id_stream *s = NULL;
    cr_assert_eq(chunk_id_ctx_new(&ctx), 0);
    cr_assert_eq(chunk_id_stream_new(&s), 0);
    cr_assert_eq(chunk_id_compute(data, len, &a), 0);
    cr_assert_eq(chunk_id_ctx_compute(ctx, data, len, &b), 0);
    for (size_t off = 0; off < len; off += 12345) {
        size_t n = len - off < 12345 ? len - off : 12345;
        cr_assert_eq(chunk_id_stream_update(s, data + off, n), 0);
    }
    cr_assert_eq(chunk_id_stream_final(s, &c), 0);
    cr_assert_eq(chunk_id_stream_update(s, data, 1), ORBIT_EINVAL);
    char dir[64], path[128];
    tu_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/f", dir);
    FILE *f = fopen(path, "wb");
    cr_assert_eq(fwrite(data, 1, len, f), len);
    fclose(f);
    cr_assert_eq(chunk_id_file(path, &d), 0);
    cr_assert(chunk_id_equal(&a, &b) && chunk_id_equal(&a, &c) &&
              chunk_id_equal(&a, &d));
    snprintf(path, sizeof path, "%s/missing", dir);
    cr_assert_eq(chunk_id_file(path, &d), ORBIT_ENOENT);
    /* A reused stream starts over after reset. */
    cr_assert_eq(chunk_id_stream_reset(s), 0);
    cr_assert_eq(chunk_id_stream_update(s, data, len), 0);
    cr_assert_eq(chunk_id_stream_final(s, &c), 0);
    cr_assert(chunk_id_equal(&a, &c));
    tu_rmrf(dir);
    chunk_id_ctx_free(ctx);
    chunk_id_stream_free(s);
    chunk_id_ctx_free(NULL);
    chunk_id_stream_free(NULL);
    free(data);
}

static void
roundtrip(struct chunk_codec *c, const uint8_t *raw, size_t len,
          uint8_t want_codec)
{
    size_t cap = chunk_codec_bound(len), stored_len = 0;
    uint8_t *st = malloc(cap), *out = malloc(len ? len : 1), codec = 9;
    cr_assert_eq(chunk_codec_encode(c, raw, len, st, cap, &stored_len, &codec),
                 0);
    cr_assert_eq(codec, want_codec, "len %zu codec %u", len, codec);
    if (codec == CHUNK_CODEC_RAW)
        cr_assert_eq(stored_len, len);
    else
        cr_assert(stored_len <= len - len * 3 / 100);
    cr_assert_eq(chunk_codec_decode(c, codec, st, stored_len, out, len), 0);
    cr_assert(len == 0 || memcmp(out, raw, len) == 0);
    free(st);
    free(out);
}

Test(chunk_codec, roundtrip_and_raw_fallback)
{
    struct chunk_codec *c = NULL;
    cr_assert_eq(chunk_codec_new(0, &c), 0);
    uint8_t *text = tu_text_bytes(3, 70000);
    uint8_t *rnd = tu_random_bytes(3, 70000);
    roundtrip(c, text, 70000, CHUNK_CODEC_ZSTD);
    roundtrip(c, rnd, 70000, CHUNK_CODEC_RAW);
    roundtrip(c, text, 0, CHUNK_CODEC_RAW);
    roundtrip(c, text, 1, CHUNK_CODEC_RAW);
    /* 97% random, 3% compressible: saving under 3%, stays raw */
    memcpy(rnd, text, 1000);
    roundtrip(c, rnd, 70000, CHUNK_CODEC_RAW);
    chunk_codec_free(c);
    cr_assert_eq(chunk_codec_new(99, &c), ORBIT_EINVAL);
    cr_assert_null(c);
    cr_assert_eq(chunk_codec_new(19, &c), 0);
    roundtrip(c, text, 70000, CHUNK_CODEC_ZSTD);
    chunk_codec_free(c);
    chunk_codec_free(NULL);
    free(text);
    free(rnd);
}

Test(chunk_codec, rejects_bad_frames)
{
    struct chunk_codec *c = NULL;
    cr_assert_eq(chunk_codec_new(3, &c), 0);
    const size_t len = 50000;
    uint8_t *text = tu_text_bytes(4, len);
    size_t cap = chunk_codec_bound(len), n = 0;
    uint8_t *st = malloc(cap + 16), *out = malloc(len + 100), codec;
    cr_assert_eq(chunk_codec_encode(c, text, len, st, cap, &n, &codec), 0);
    cr_assert_eq(codec, CHUNK_CODEC_ZSTD);
    /* wrong expected raw length, either way */
    cr_assert_eq(chunk_codec_decode(c, codec, st, n, out, len - 1),
                 ORBIT_ECORRUPT);
    cr_assert_eq(chunk_codec_decode(c, codec, st, n, out, len + 1),
                 ORBIT_ECORRUPT);
    /* truncated, trailing garbage, unknown codec, raw length mismatch */
    int rc = chunk_codec_decode(c, codec, st, n - 1, out, len);
    cr_assert(rc == ORBIT_ECODEC || rc == ORBIT_ECORRUPT, "%d", rc);
    st[n] = 0;
    cr_assert_eq(chunk_codec_decode(c, codec, st, n + 1, out, len),
                 ORBIT_ECORRUPT);
    cr_assert_eq(chunk_codec_decode(c, 7, st, n, out, len), ORBIT_EFORMAT);
    cr_assert_eq(chunk_codec_decode(c, CHUNK_CODEC_RAW, st, n, out, len),
                 ORBIT_ECORRUPT);
    cr_assert_eq(
        chunk_codec_decode(c, codec, st, n, out, CHUNK_CODEC_MAX_RAW + 1),
        ORBIT_ETOOBIG);
    /* bit flips anywhere: an error or, if zstd cannot tell, the right size,
     * never a crash (the chunk id catches the rest) */
    uint64_t seed = 9;
    for (int i = 0; i < 2000; i++) {
        size_t pos = (size_t)(tu_rand(&seed) % n);
        uint8_t bit = (uint8_t)(1u << (tu_rand(&seed) % 8));
        st[pos] ^= bit;
        rc = chunk_codec_decode(c, codec, st, n, out, len);
        cr_assert(rc == 0 || rc == ORBIT_ECODEC || rc == ORBIT_ECORRUPT, "%d",
                  rc);
        st[pos] ^= bit;
    }
    cr_assert_eq(chunk_codec_decode(c, codec, st, n, out, len), 0);
    cr_assert_eq(memcmp(out, text, len), 0);
    cr_assert_eq(chunk_codec_encode(c, text, len, st, 10, &n, &codec),
                 ORBIT_EFULL);
    free(text);
    free(st);
    free(out);
    chunk_codec_free(c);
}

Test(chunk_codec, unknown_content_size_refused)
{
    struct chunk_codec *c = NULL;
    cr_assert_eq(chunk_codec_new(3, &c), 0);
    const size_t len = 20000;
    uint8_t *text = tu_text_bytes(8, len), *out = malloc(len);
    size_t cap = ZSTD_compressBound(len);
    uint8_t *st = malloc(cap);
    ZSTD_CCtx *z = ZSTD_createCCtx();
    /* a frame that omits its content size */
    ZSTD_CCtx_setParameter(z, ZSTD_c_contentSizeFlag, 0);
    size_t n = ZSTD_compress2(z, st, cap, text, len);
    cr_assert(!ZSTD_isError(n));
    cr_assert_eq(ZSTD_getFrameContentSize(st, n), ZSTD_CONTENTSIZE_UNKNOWN);
    cr_assert_eq(chunk_codec_decode(c, CHUNK_CODEC_ZSTD, st, n, out, len),
                 ORBIT_ECORRUPT);
    ZSTD_freeCCtx(z);
    free(text);
    free(out);
    free(st);
    chunk_codec_free(c);
}
