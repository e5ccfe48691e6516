/*
 * PACKED frames: runs of frames come back whole and in order, later
 * segments compress against earlier ones, and every way a segment can lie
 * (length, CRC, order, contents that are not whole frames, a bomb) is
 * refused for good.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "orbit/error.h"
#include "orbit/wire.h"
#include "orbit/wire_pack.h"
#include "wire_internal.h"

/* A run of n COMMIT-by-digest frames (what a sync's probes look like),
 * paths numbered from `first`, into buf; returns its length. */
static size_t
probe_run(uint8_t *buf, size_t cap, int first, int n)
{
    size_t len = 0;
    for (int i = first; i < first + n; i++) {
        char path[128];
        int pl = snprintf(path, sizeof path,
                          "linux-source-6.1/drivers/net/ethernet/intel/"
                          "e1000e/file%04d.c",
                          i);
        struct wire_msg m;
        memset(&m, 0, sizeof m);
        m.type = WIRE_COMMIT;
        m.request_id = (uint32_t)(1000 + i);
        m.u.commit.path = path;
        m.u.commit.path_len = (size_t)pl;
        m.u.commit.ftype = WIRE_FT_REGULAR;
        m.u.commit.size = (uint64_t)(4000 + i * 13);
        m.u.commit.mode = 0644;
        m.u.commit.mtime_sec = 1700000000 + i;
        m.u.commit.target = "";
        for (int k = 0; k < WIRE_DIGEST_LEN; k++)
            m.u.commit.digest[k] = (uint8_t)(i * 31 + k * 7);
        size_t w = 0;
        cr_assert_eq(wire_encode(&m, buf + len, cap - len, &w), 0);
        len += w;
    }
    return len;
}

struct packed_frame {
    uint8_t *buf;
    size_t len;
    struct wire_msg m; /* decoded, points into buf */
};

static void
pack_run(struct wire_packer *p, const uint8_t *raw, size_t raw_len,
         struct packed_frame *out)
{
    size_t cap = wire_pack_bound(raw_len);
    out->buf = malloc(cap);
    cr_assert_not_null(out->buf);
    cr_assert_eq(wire_pack(p, raw, raw_len, out->buf, cap, &out->len), 0);
    size_t used = 0;
    cr_assert_eq(wire_frame_decode(out->buf, out->len, &out->m, &used), 0,
                 "a PACKED frame decodes with its check");
    cr_assert_eq(used, out->len);
    cr_assert_eq(out->m.type, WIRE_PACKED);
    cr_assert_eq(out->m.request_id, 0);
    cr_assert_eq(out->m.u.packed.raw_len, raw_len);
}

static uint8_t raw1[1 << 16], raw2[1 << 16];

Test(wire_pack, runs_come_back_whole_and_in_order)
{
    struct wire_packer *p;
    struct wire_unpacker *u;
    cr_assert_eq(wire_packer_new(WIRE_PACK_LEVEL, &p), 0);
    cr_assert_eq(wire_unpacker_new(&u), 0);
    size_t n1 = probe_run(raw1, sizeof raw1, 0, 200);
    size_t n2 = probe_run(raw2, sizeof raw2, 200, 200);
    struct packed_frame f1, f2;
    pack_run(p, raw1, n1, &f1);
    pack_run(p, raw2, n2, &f2);

    const uint8_t *out;
    size_t out_len;
    cr_assert_eq(wire_unpack(u, &f1.m.u.packed, &out, &out_len), 0);
    cr_assert_eq(out_len, n1);
    cr_assert_arr_eq(out, raw1, n1);
    size_t pos = 0, frames = 0;
    struct wire_hdr h;
    const uint8_t *payload;
    while (wire_unpacked_next(out, out_len, &pos, &h, &payload) == 1) {
        struct wire_msg m;
        cr_assert_eq(wire_decode(&h, payload, &m), 0);
        cr_assert_eq(m.request_id, 1000 + frames);
        frames++;
    }
    cr_assert_eq(frames, 200);
    cr_assert_eq(wire_unpack(u, &f2.m.u.packed, &out, &out_len), 0);
    cr_assert_arr_eq(out, raw2, n2);

    /* The paths share most bytes: a run shrinks to well under half. */
    cr_assert_lt(f1.len * 2, n1, "packed %zu of %zu bytes", f1.len, n1);
    free(f1.buf);
    free(f2.buf);
    wire_packer_free(p);
    wire_unpacker_free(u);
}

Test(wire_pack, a_segment_compresses_against_the_ones_before)
{
    struct wire_packer *p;
    cr_assert_eq(wire_packer_new(WIRE_PACK_LEVEL, &p), 0);
    /* The same 20 requests twice: the second time they are history. */
    size_t n = probe_run(raw1, sizeof raw1, 0, 20);
    struct packed_frame f1, f2;
    pack_run(p, raw1, n, &f1);
    pack_run(p, raw1, n, &f2);
    cr_assert_lt(f2.len * 4, f1.len, "first %zu, repeated %zu", f1.len, f2.len);
    /* An unpacker that missed the first segment cannot read the second. */
    struct wire_unpacker *u;
    cr_assert_eq(wire_unpacker_new(&u), 0);
    const uint8_t *out;
    size_t out_len;
    cr_assert_eq(wire_unpack(u, &f2.m.u.packed, &out, &out_len),
                 ORBIT_ECORRUPT);
    /* ... and stays refused, even for the segment it missed. */
    cr_assert_eq(wire_unpack(u, &f1.m.u.packed, &out, &out_len),
                 ORBIT_ECORRUPT);
    wire_unpacker_free(u);
    free(f1.buf);
    free(f2.buf);
    wire_packer_free(p);
}

/* Pack raw once with a fresh packer, tamper with the decoded message, and
 * expect a fresh unpacker to refuse it. */
static void
expect_refused(const uint8_t *raw, size_t raw_len,
               void (*tamper)(struct wire_packed *pk), const char *what)
{
    struct wire_packer *p;
    struct wire_unpacker *u;
    cr_assert_eq(wire_packer_new(WIRE_PACK_LEVEL, &p), 0);
    cr_assert_eq(wire_unpacker_new(&u), 0);
    struct packed_frame f;
    pack_run(p, raw, raw_len, &f);
    struct wire_packed pk = f.m.u.packed;
    if (tamper)
        tamper(&pk);
    const uint8_t *out = (const uint8_t *)"x";
    size_t out_len = 1;
    cr_assert_eq(wire_unpack(u, &pk, &out, &out_len), ORBIT_ECORRUPT, "%s",
                 what);
    cr_assert_null(out);
    cr_assert_eq(out_len, 0);
    free(f.buf);
    wire_packer_free(p);
    wire_unpacker_free(u);
}

static void
len_short(struct wire_packed *pk)
{
    pk->raw_len -= 1;
}

static void
len_long(struct wire_packed *pk)
{
    pk->raw_len += 1;
}

static void
crc_wrong(struct wire_packed *pk)
{
    pk->raw_crc ^= 1;
}

static uint8_t flipped[1 << 16];

static void
byte_flipped(struct wire_packed *pk)
{
    memcpy(flipped, pk->data, pk->data_len);
    flipped[pk->data_len / 2] ^= 0x40;
    pk->data = flipped;
}

static void
tail_cut(struct wire_packed *pk)
{
    pk->data_len -= 3;
}

Test(wire_pack, a_segment_that_lies_is_refused)
{
    size_t n = probe_run(raw1, sizeof raw1, 0, 50);
    expect_refused(raw1, n, len_short, "raw length one short");
    expect_refused(raw1, n, len_long, "raw length one long");
    expect_refused(raw1, n, crc_wrong, "CRC of the frames wrong");
    expect_refused(raw1, n, byte_flipped, "a compressed byte flipped");
    expect_refused(raw1, n, tail_cut, "the segment cut short");
}

Test(wire_pack, a_run_must_be_whole_frames_and_never_nested)
{
    size_t n = probe_run(raw1, sizeof raw1, 0, 3);
    /* The last frame cut short. */
    expect_refused(raw1, n - 5, NULL, "a truncated frame");
    /* Bytes that are no frame at all. */
    uint8_t junk[64];
    memset(junk, 0xee, sizeof junk);
    expect_refused(junk, sizeof junk, NULL, "garbage");
    /* A PACKED frame inside a run. */
    struct wire_packer *p;
    cr_assert_eq(wire_packer_new(WIRE_PACK_LEVEL, &p), 0);
    struct packed_frame inner;
    pack_run(p, raw1, n, &inner);
    memcpy(raw2, raw1, n);
    memcpy(raw2 + n, inner.buf, inner.len);
    expect_refused(raw2, n + inner.len, NULL, "a nested PACKED frame");
    free(inner.buf);
    wire_packer_free(p);
}

Test(wire_pack, a_small_segment_cannot_inflate_past_its_length)
{
    /* 1 MiB of zeros compresses to a few hundred bytes; announced as 4 KiB
     * it must stop at 4 KiB + 1, not produce the MiB. */
    size_t big = WIRE_MAX_PACK_RAW;
    uint8_t *zeros = calloc(1, big);
    cr_assert_not_null(zeros);
    size_t cap = ZSTD_compressBound(big);
    uint8_t *z = malloc(cap);
    cr_assert_not_null(z);
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cc, ZSTD_c_windowLog, WIRE_PACK_WINDOW_LOG);
    ZSTD_inBuffer in = {zeros, big, 0};
    ZSTD_outBuffer o = {z, cap, 0};
    cr_assert_eq(ZSTD_compressStream2(cc, &o, &in, ZSTD_e_flush), 0);
    ZSTD_freeCCtx(cc);
    cr_assert_lt(o.pos, 4096);
    struct wire_packed pk = {WIRE_CODEC_ZSTD, 4096, wire_crc32c(zeros, 4096), z,
                             (uint32_t)o.pos};
    struct wire_unpacker *u;
    cr_assert_eq(wire_unpacker_new(&u), 0);
    const uint8_t *out;
    size_t out_len;
    cr_assert_eq(wire_unpack(u, &pk, &out, &out_len), ORBIT_ECORRUPT);
    /* Announced at its true size it is accepted as far as zstd goes, and
     * refused only because zeros are not frames. */
    struct wire_unpacker *u2;
    cr_assert_eq(wire_unpacker_new(&u2), 0);
    pk.raw_len = (uint32_t)big;
    pk.raw_crc = wire_crc32c(zeros, big);
    cr_assert_eq(wire_unpack(u2, &pk, &out, &out_len), ORBIT_ECORRUPT);
    wire_unpacker_free(u);
    wire_unpacker_free(u2);
    free(zeros);
    free(z);
}

Test(wire_pack, limits_and_arguments)
{
    struct wire_packer *p;
    cr_assert_eq(wire_packer_new(0, &p), ORBIT_EINVAL);
    cr_assert_null(p);
    cr_assert_eq(wire_packer_new(20, &p), ORBIT_EINVAL);
    cr_assert_eq(wire_packer_new(WIRE_PACK_LEVEL, &p), 0);
    size_t n = probe_run(raw1, sizeof raw1, 0, 2);
    uint8_t small[64];
    size_t len = 7;
    cr_assert_eq(wire_pack(p, raw1, n, small, sizeof small, &len), ORBIT_EFULL);
    cr_assert_eq(len, 0);
    cr_assert_eq(wire_pack(p, raw1, WIRE_HDR_LEN - 1, raw2, sizeof raw2, &len),
                 ORBIT_EINVAL);
    cr_assert_eq(wire_pack(p, raw1, (size_t)WIRE_MAX_PACK_RAW + 1, raw2,
                           sizeof raw2, &len),
                 ORBIT_EINVAL);
    wire_packer_free(p);

    /* The codec refuses what no packer makes. */
    struct wire_msg m;
    memset(&m, 0, sizeof m);
    m.type = WIRE_PACKED;
    m.u.packed = (struct wire_packed){WIRE_CODEC_ZSTD, WIRE_MAX_PACK_RAW + 1, 0,
                                      raw1, 16};
    size_t need;
    cr_assert_eq(wire_encoded_len(&m, &need), ORBIT_ETOOBIG);
    m.u.packed.raw_len = 100;
    m.u.packed.codec = WIRE_CODEC_RAW;
    cr_assert_eq(wire_encoded_len(&m, &need), ORBIT_EINVAL);
    m.u.packed.codec = WIRE_CODEC_ZSTD;
    m.u.packed.raw_len = WIRE_HDR_LEN - 1;
    cr_assert_eq(wire_encoded_len(&m, &need), ORBIT_EINVAL);
    /* Decoding the same: patch a valid frame's raw length and codec. */
    m.u.packed.raw_len = 100;
    size_t w = 0;
    cr_assert_eq(wire_encode(&m, raw2, sizeof raw2, &w), 0);
    struct wire_msg d;
    size_t used;
    raw2[WIRE_HDR_LEN] = WIRE_CODEC_RAW;
    cr_assert_eq(wire_frame_seal(raw2, w), ORBIT_EPROTO);
    raw2[WIRE_HDR_LEN] = WIRE_CODEC_ZSTD;
    wire_be32_put(raw2 + WIRE_HDR_LEN + 1, WIRE_MAX_PACK_RAW + 1);
    cr_assert_eq(wire_frame_seal(raw2, w), ORBIT_ETOOBIG);
    wire_be32_put(raw2 + WIRE_HDR_LEN + 1, 100);
    cr_assert_eq(wire_frame_seal(raw2, w), 0);
    cr_assert_eq(wire_frame_decode(raw2, w, &d, &used), 0);
    cr_assert_eq(d.u.packed.raw_len, 100);
    /* The frame check covers the fields, not the segment (the CRC of the
     * frames inside does): a flipped field is caught here. */
    raw2[WIRE_HDR_LEN + 6] ^= 1;
    cr_assert_eq(wire_frame_decode(raw2, w, &d, &used), ORBIT_ECORRUPT);
}
