/*
 * The frame check carried in the header's flags: every encoded frame has
 * one; a flipped bit in a COMMIT's metadata (path, mode, time) or in any
 * header field but the length is refused with ECORRUPT instead of obeyed;
 * chunk data in a PUT is left to its SHA-256 id; a frame whose check was
 * cleared is refused too.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "orbit/error.h"
#include "orbit/wire.h"

static size_t
encode_commit(uint8_t *buf, size_t cap)
{
    static const struct wire_chunk_ref refs[1] = {{{1, 2, 3}, 10}};
    struct wire_msg m = {.type = WIRE_COMMIT, .request_id = 77};
    m.u.commit = (struct wire_commit){
        .path = "dir/file.txt",
        .path_len = 12,
        .ftype = WIRE_FT_REGULAR,
        .size = 10,
        .mode = 0644,
        .mtime_sec = 1600000000,
        .target = "",
        .chunk_total = 1,
        .n = 1,
        .chunks = refs,
    };
    size_t len = 0;
    cr_assert_eq(wire_encode(&m, buf, cap, &len), 0);
    return len;
}

Test(wire_check, every_frame_carries_a_check)
{
    uint8_t buf[512];
    size_t len = encode_commit(buf, sizeof buf);
    struct wire_hdr h;
    cr_assert_eq(wire_frame_peek(buf, len, &h), 0);
    cr_assert(h.flags & 0x8000u);
    struct wire_msg out;
    size_t flen = 0;
    cr_assert_eq(wire_frame_decode(buf, len, &out, &flen), 0);
    cr_assert_str_eq(out.u.commit.path, "dir/file.txt");
}

Test(wire_check, a_flipped_bit_in_a_commit_is_refused)
{
    uint8_t buf[512], bad[512];
    size_t len = encode_commit(buf, sizeof buf);
    unsigned refused = 0, total = 0;
    for (size_t byte = 0; byte < len; byte++) {
        if (byte >= 8 && byte < 12)
            continue; /* the length: a different frame boundary */
        for (unsigned bit = 0; bit < 8; bit++) {
            memcpy(bad, buf, len);
            bad[byte] ^= (uint8_t)(1u << bit);
            struct wire_msg out;
            size_t flen = 0;
            int rc = wire_frame_decode(bad, len, &out, &flen);
            total++;
            /* refused one way or another: never decoded as valid */
            cr_assert_neq(rc, 0, "bit %u of byte %zu flipped, accepted", bit,
                          byte);
            refused += rc == ORBIT_ECORRUPT;
        }
    }
    cr_assert_gt(refused, total / 2, "%u of %u by the check", refused, total);
}

Test(wire_check, put_data_is_left_to_the_chunk_id)
{
    static uint8_t data[64];
    struct wire_msg m = {.type = WIRE_PUT, .request_id = 5};
    m.u.put = (struct wire_put){.codec = WIRE_CODEC_RAW,
                                .raw_len = sizeof data,
                                .data = data,
                                .data_len = sizeof data};
    uint8_t buf[256];
    size_t len = 0;
    cr_assert_eq(wire_encode(&m, buf, sizeof buf, &len), 0);
    buf[len - 1] ^= 1; /* in the chunk bytes */
    struct wire_msg out;
    size_t flen = 0;
    cr_assert_eq(wire_frame_decode(buf, len, &out, &flen), 0);
    buf[WIRE_HDR_LEN] ^= 1; /* in the chunk id */
    cr_assert_eq(wire_frame_decode(buf, len, &out, &flen), ORBIT_ECORRUPT);
}

Test(wire_check, frames_without_a_check_are_refused)
{
    uint8_t buf[512];
    size_t len = encode_commit(buf, sizeof buf);
    buf[2] = 0;
    buf[3] = 0;
    struct wire_msg out;
    size_t flen = 0;
    cr_assert_eq(wire_frame_decode(buf, len, &out, &flen), ORBIT_ECORRUPT);
}

/* CRC-32C by the definition: reflected polynomial 0x82F63B78, bit by bit. */
static uint32_t
crc32c_bitwise(const uint8_t *p, size_t n)
{
    uint32_t crc = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++)
            crc = (crc >> 1) ^ (0x82f63b78u & (0u - (crc & 1u)));
    }
    return crc ^ 0xffffffffu;
}

/* The check's CRC (hardware where the CPU has SSE4.2) is CRC-32C: the
 * standard check value, and the same as the table and the bitwise
 * definition for every length and alignment up to 300 bytes. */
Test(wire_check, the_crc_is_crc32c_on_every_path)
{
    cr_assert_eq(wire_crc32c("123456789", 9), 0xe3069283u);
    cr_assert_eq(wire_crc32c_portable("123456789", 9), 0xe3069283u);
    cr_assert_eq(wire_crc32c("", 0), 0);
    uint8_t buf[320];
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < sizeof buf; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (uint8_t)x;
    }
    for (size_t off = 0; off < 8; off++) {
        for (size_t n = 0; n + off <= 300; n++) {
            uint32_t want = crc32c_bitwise(buf + off, n);
            cr_assert_eq(wire_crc32c(buf + off, n), want, "off %zu len %zu",
                         off, n);
            cr_assert_eq(wire_crc32c_portable(buf + off, n), want);
        }
    }
}
