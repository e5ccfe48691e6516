/*
 * Wire codec: round trip of every message, length boundaries, truncation at
 * every byte, malformed payloads.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "orbit/error.h"
#include "orbit/wire.h"
#include "wire_internal.h"

static const uint8_t types[] = {
    WIRE_ERROR,    WIRE_AUTH_CHALLENGE, WIRE_AUTH_RESPONSE, WIRE_AUTH_OK,
    WIRE_HELLO,    WIRE_HELLO_OK,       WIRE_HAVE,          WIRE_HAVE_REPLY,
    WIRE_PUT,      WIRE_PUT_OK,         WIRE_COMMIT,        WIRE_COMMIT_OK,
    WIRE_LIST,     WIRE_LIST_REPLY,     WIRE_DELETE,        WIRE_DELETE_OK,
    WIRE_HEALTH,   WIRE_HEALTH_REPLY,   WIRE_GOODBYE,       WIRE_GOODBYE_OK,
    WIRE_BULLETIN, WIRE_PACKED,
};
#define NTYPES (sizeof types / sizeof types[0])

static uint8_t ids[3 * WIRE_ID_LEN];
static uint8_t bitmap[1] = {0x05};
static uint8_t chunk[100];
static struct wire_chunk_ref refs[2];
static struct wire_list_entry entries[2];

#define S(str) str, sizeof(str) - 1

static void
sample(uint8_t type, struct wire_msg *m)
{
    memset(m, 0, sizeof *m);
    m->type = type;
    m->request_id = 0x01020304u + type;
    for (size_t i = 0; i < sizeof ids; i++)
        ids[i] = (uint8_t)i;
    for (size_t i = 0; i < sizeof chunk; i++)
        chunk[i] = (uint8_t)(i * 7);
    memcpy(refs[0].id, ids, WIRE_ID_LEN);
    refs[0].raw_len = 65536;
    memcpy(refs[1].id, ids + WIRE_ID_LEN, WIRE_ID_LEN);
    refs[1].raw_len = 100;
    entries[0] = (struct wire_list_entry){
        S("dir/a.txt"), WIRE_FT_REGULAR, 65636, 0644, 1700000000, 5, true, {1}};
    entries[1] = (struct wire_list_entry){
        S("dir/sub"), WIRE_FT_DIRECTORY, 0, 0755, -3, 999999999, false, {0}};
    switch (type) {
    case WIRE_ERROR:
        m->u.error =
            (struct wire_error){ORBIT_ENOSPC, false, 7, S("disk full on /srv")};
        break;
    case WIRE_AUTH_CHALLENGE:
        m->u.challenge.version = 1;
        memcpy(m->u.challenge.challenge, ids, WIRE_CHALLENGE_LEN);
        break;
    case WIRE_AUTH_RESPONSE:
        memcpy(m->u.response.mac, ids + 1, WIRE_MAC_LEN);
        break;
    case WIRE_HELLO:
        m->u.hello = (struct wire_hello){
            1, S("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            S("orbit@src"), S("job-42"), WIRE_FEATURE_PACKED};
        break;
    case WIRE_HELLO_OK:
        m->u.hello_ok = (struct wire_hello_ok){1,
                                               S("star-a"),
                                               WIRE_STATE_READY,
                                               WIRE_MAX_PAYLOAD,
                                               WIRE_MAX_HAVE,
                                               WIRE_MAX_CHUNK,
                                               256,
                                               WIRE_FEATURE_PACKED};
        break;
    case WIRE_HAVE:
        m->u.have = (struct wire_have){3, ids};
        break;
    case WIRE_HAVE_REPLY:
        m->u.have_reply = (struct wire_have_reply){3, bitmap};
        break;
    case WIRE_PUT:
        memcpy(m->u.put.id, ids, WIRE_ID_LEN);
        m->u.put.codec = WIRE_CODEC_ZSTD;
        m->u.put.raw_len = 4000;
        m->u.put.has_hint = true;
        m->u.put.hint_path = "dir/a.txt";
        m->u.put.hint_path_len = 9;
        m->u.put.hint_offset = 1u << 20;
        m->u.put.data = chunk;
        m->u.put.data_len = sizeof chunk;
        break;
    case WIRE_PUT_OK:
        memcpy(m->u.put_ok.id, ids, WIRE_ID_LEN);
        m->u.put_ok.existed = true;
        break;
    case WIRE_COMMIT:
        m->u.commit = (struct wire_commit){S("dir/a.txt"),
                                           WIRE_FT_REGULAR,
                                           65636,
                                           0644,
                                           1700000000,
                                           5,
                                           "",
                                           0,
                                           {9},
                                           0,
                                           2,
                                           2,
                                           refs,
                                           NULL};
        break;
    case WIRE_COMMIT_OK:
        m->u.commit_ok.complete = true;
        break;
    case WIRE_LIST:
        m->u.list = (struct wire_list){S("dir"), S("dir/a.txt"), 100,
                                       WIRE_LIST_DIGESTS};
        break;
    case WIRE_LIST_REPLY:
        m->u.list_reply =
            (struct wire_list_reply){S("dir/sub"), 2, entries, NULL, 0};
        break;
    case WIRE_DELETE:
        m->u.del = (struct wire_delete){S("dir/old"), WIRE_DELETE_RECURSIVE};
        break;
    case WIRE_DELETE_OK:
        m->u.delete_ok.existed = true;
        break;
    case WIRE_HEALTH_REPLY:
        m->u.health = (struct wire_health_reply){1ull << 40,
                                                 1ull << 39,
                                                 12345,
                                                 67,
                                                 8,
                                                 1,
                                                 2,
                                                 3,
                                                 3600,
                                                 4,
                                                 WIRE_STATE_DEGRADED,
                                                 WIRE_ADV_DISK_WARNING};
        break;
    case WIRE_PACKED:
        m->u.packed = (struct wire_packed){WIRE_CODEC_ZSTD, 4000, 0xdeadbeefu,
                                           chunk, sizeof chunk};
        break;
    case WIRE_BULLETIN:
        m->u.bulletin =
            (struct wire_bulletin){WIRE_SEV_WARNING, WIRE_ADV_DISK_WARNING,
                                   S("disk"), S("disk 86% used")};
        break;
    default:
        break;
    }
}

/* Encode m into a fresh heap buffer of exactly the encoded size. */
static uint8_t *
encode(const struct wire_msg *m, size_t *len)
{
    size_t want = 0;
    cr_assert_eq(wire_encoded_len(m, &want), 0, "type %s",
                 wire_type_name(m->type));
    uint8_t *buf = malloc(want);
    cr_assert_not_null(buf);
    cr_assert_eq(wire_encode(m, buf, want, len), 0);
    cr_assert_eq(*len, want);
    return buf;
}

Test(wire_codec, round_trip_every_type_reencodes_identically)
{
    for (size_t t = 0; t < NTYPES; t++) {
        struct wire_msg m, d, d2;
        size_t len, len2, used;
        sample(types[t], &m);
        uint8_t *buf = encode(&m, &len);
        cr_assert_eq(wire_frame_decode(buf, len, &d, &used), 0, "type %s",
                     wire_type_name(types[t]));
        cr_assert_eq(used, len);
        cr_assert_eq(d.type, m.type);
        cr_assert_eq(d.request_id, m.request_id);
        uint8_t *buf2 = encode(&d, &len2);
        cr_assert_eq(len2, len);
        cr_assert_arr_eq(buf2, buf, len, "type %s", wire_type_name(types[t]));
        cr_assert_eq(wire_frame_decode(buf2, len2, &d2, &used), 0);
        free(buf);
        free(buf2);
    }
}

Test(wire_codec, decoded_fields_match)
{
    struct wire_msg m, d;
    size_t len, used;
    sample(WIRE_ERROR, &m);
    uint8_t *buf = encode(&m, &len);
    cr_assert_eq(wire_frame_decode(buf, len, &d, &used), 0);
    cr_assert_eq(d.u.error.code, ORBIT_ENOSPC);
    cr_assert_eq(d.u.error.item, 7);
    cr_assert_str_eq(d.u.error.message, "disk full on /srv");
    free(buf);

    sample(WIRE_COMMIT, &m);
    buf = encode(&m, &len);
    cr_assert_eq(wire_frame_decode(buf, len, &d, &used), 0);
    cr_assert_str_eq(d.u.commit.path, "dir/a.txt");
    cr_assert_eq(d.u.commit.mtime_sec, 1700000000);
    cr_assert_eq(d.u.commit.n, 2);
    struct wire_chunk_ref ref;
    wire_commit_chunk(&d.u.commit, 1, &ref);
    cr_assert_eq(ref.raw_len, 100);
    cr_assert_arr_eq(ref.id, ids + WIRE_ID_LEN, WIRE_ID_LEN);
    free(buf);

    sample(WIRE_LIST_REPLY, &m);
    buf = encode(&m, &len);
    cr_assert_eq(wire_frame_decode(buf, len, &d, &used), 0);
    struct wire_list_entry e;
    size_t pos = 0;
    cr_assert_eq(wire_list_next(&d.u.list_reply, &pos, &e), 0);
    cr_assert_str_eq(e.path, "dir/a.txt");
    cr_assert(e.has_digest);
    cr_assert_eq(wire_list_next(&d.u.list_reply, &pos, &e), 0);
    cr_assert_eq(e.mtime_sec, -3);
    cr_assert_eq(e.ftype, WIRE_FT_DIRECTORY);
    cr_assert_eq(wire_list_next(&d.u.list_reply, &pos, &e), ORBIT_ENOENT);
    free(buf);

    sample(WIRE_HAVE_REPLY, &m);
    buf = encode(&m, &len);
    cr_assert_eq(wire_frame_decode(buf, len, &d, &used), 0);
    cr_assert(wire_bitmap_get(d.u.have_reply.bitmap, 0));
    cr_assert_not(wire_bitmap_get(d.u.have_reply.bitmap, 1));
    cr_assert(wire_bitmap_get(d.u.have_reply.bitmap, 2));
    free(buf);
}

Test(wire_codec, truncated_at_every_byte_needs_more)
{
    for (size_t t = 0; t < NTYPES; t++) {
        struct wire_msg m, d;
        size_t len, used;
        sample(types[t], &m);
        uint8_t *buf = encode(&m, &len);
        for (size_t k = 0; k < len; k++) {
            /* A short copy on the heap so ASan sees any overread. */
            uint8_t *part = malloc(k ? k : 1);
            memcpy(part, buf, k);
            cr_assert_eq(wire_frame_decode(part, k, &d, &used), ORBIT_ETRUNC,
                         "%s cut at %zu", wire_type_name(types[t]), k);
            /* The same prefix claimed as a whole frame is malformed. */
            if (k >= WIRE_HDR_LEN && k < len) {
                wire_be32_put(part + 8, (uint32_t)(k - WIRE_HDR_LEN));
                cr_assert_lt(wire_frame_decode(part, k, &d, &used), 0,
                             "%s short payload %zu", wire_type_name(types[t]),
                             k);
            }
            free(part);
        }
        free(buf);
    }
}

Test(wire_codec, trailing_byte_is_refused)
{
    for (size_t t = 0; t < NTYPES; t++) {
        struct wire_msg m, d;
        size_t len, used;
        sample(types[t], &m);
        uint8_t *buf = encode(&m, &len);
        uint8_t *big = calloc(1, len + 1);
        memcpy(big, buf, len);
        wire_be32_put(big + 8, (uint32_t)(len + 1 - WIRE_HDR_LEN));
        cr_assert_eq(wire_frame_decode(big, len + 1, &d, &used), ORBIT_EPROTO);
        cr_assert_eq(used, len + 1, "a bad frame still says its size");
        free(big);
        free(buf);
    }
}

Test(wire_codec, header_boundaries)
{
    uint8_t h[WIRE_HDR_LEN] = {WIRE_VERSION, WIRE_HAVE, 0, 0, 0, 0, 0, 9};
    struct wire_hdr hdr;
    wire_be32_put(h + 8, WIRE_MAX_PAYLOAD);
    cr_assert_eq(wire_frame_peek(h, sizeof h, &hdr), 0);
    cr_assert_eq(hdr.payload_len, WIRE_MAX_PAYLOAD);
    cr_assert_eq(hdr.request_id, 9);
    wire_be32_put(h + 8, WIRE_MAX_PAYLOAD + 1);
    cr_assert_eq(wire_frame_peek(h, sizeof h, &hdr), ORBIT_ETOOBIG);
    wire_be32_put(h + 8, UINT32_MAX);
    cr_assert_eq(wire_frame_peek(h, sizeof h, &hdr), ORBIT_ETOOBIG);
    wire_be32_put(h + 8, 0);
    h[0] = 2;
    cr_assert_eq(wire_frame_peek(h, sizeof h, &hdr), ORBIT_EVERSION);
    h[0] = WIRE_VERSION;
    h[1] = 0x77;
    cr_assert_eq(wire_frame_peek(h, sizeof h, &hdr), 0, "type checked later");
    struct wire_msg d;
    size_t used;
    cr_assert_eq(wire_frame_decode(h, sizeof h, &d, &used), ORBIT_EPROTO);
    cr_assert_eq(d.request_id, 9, "request id kept for the ERROR reply");
    for (size_t k = 0; k < WIRE_HDR_LEN; k++)
        cr_assert_eq(wire_frame_peek(h, k, &hdr), ORBIT_ETRUNC);
}

Test(wire_codec, have_count_boundary)
{
    uint8_t *many = calloc(WIRE_MAX_HAVE + 1, WIRE_ID_LEN);
    struct wire_msg m = {.type = WIRE_HAVE};
    size_t len;
    m.u.have = (struct wire_have){WIRE_MAX_HAVE, many};
    uint8_t *buf = encode(&m, &len);
    struct wire_msg d;
    size_t used;
    cr_assert_eq(wire_frame_decode(buf, len, &d, &used), 0);
    cr_assert_eq(d.u.have.n, WIRE_MAX_HAVE);
    m.u.have.n = WIRE_MAX_HAVE + 1;
    cr_assert_eq(wire_encoded_len(&m, &len), ORBIT_ETOOBIG);
    /* A hostile count with only a few bytes behind it. */
    wire_be32_put(buf + WIRE_HDR_LEN, WIRE_MAX_HAVE + 1);
    cr_assert_eq(wire_frame_decode(buf, used, &d, &used), ORBIT_ETOOBIG);
    wire_be32_put(buf + WIRE_HDR_LEN, UINT32_MAX);
    cr_assert_eq(wire_frame_decode(buf, used, &d, &used), ORBIT_ETOOBIG);
    free(buf);
    free(many);
}

Test(wire_codec, string_and_chunk_boundaries)
{
    char *s = malloc(WIRE_MAX_STR + 2);
    memset(s, 'x', WIRE_MAX_STR + 1);
    s[WIRE_MAX_STR + 1] = 0;
    struct wire_msg m;
    size_t len;
    wire_error_init(&m, 1, ORBIT_EIO, NULL, WIRE_NO_ITEM);
    m.u.error.message = s;
    m.u.error.message_len = WIRE_MAX_STR;
    cr_assert_eq(wire_encoded_len(&m, &len), 0);
    m.u.error.message_len = WIRE_MAX_STR + 1;
    cr_assert_eq(wire_encoded_len(&m, &len), ORBIT_ETOOBIG);
    m.u.error.message = "a\0b";
    m.u.error.message_len = 3;
    cr_assert_eq(wire_encoded_len(&m, &len), ORBIT_EINVAL);
    free(s);

    uint8_t *data = calloc(1, WIRE_MAX_CHUNK + 1);
    sample(WIRE_PUT, &m);
    m.u.put.codec = WIRE_CODEC_RAW;
    m.u.put.data = data;
    m.u.put.raw_len = m.u.put.data_len = WIRE_MAX_CHUNK;
    uint8_t *buf = encode(&m, &len);
    struct wire_msg d;
    size_t used;
    cr_assert_eq(wire_frame_decode(buf, len, &d, &used), 0);
    cr_assert_eq(d.u.put.data_len, WIRE_MAX_CHUNK);
    free(buf);
    m.u.put.raw_len = m.u.put.data_len = WIRE_MAX_CHUNK + 1;
    cr_assert_eq(wire_encoded_len(&m, &len), ORBIT_ETOOBIG);
    m.u.put.raw_len = 10;
    m.u.put.data_len = 11;
    cr_assert_eq(wire_encoded_len(&m, &len), ORBIT_EINVAL, "raw: lens match");
    free(data);
}

Test(wire_codec, encode_refuses_small_buffer)
{
    struct wire_msg m;
    size_t len = 0, out;
    sample(WIRE_HELLO, &m);
    cr_assert_eq(wire_encoded_len(&m, &len), 0);
    uint8_t *buf = malloc(len);
    cr_assert_eq(wire_encode(&m, buf, len - 1, &out), ORBIT_EFULL);
    cr_assert_eq(wire_encode(&m, buf, 3, &out), ORBIT_EFULL);
    cr_assert_eq(wire_encode(&m, buf, len, &out), 0);
    free(buf);
}

/* Build a frame of type t around a hand-written payload and decode it. */
static int
decode_raw(uint8_t t, const uint8_t *payload, size_t n)
{
    uint8_t *f = malloc(WIRE_HDR_LEN + n);
    f[0] = WIRE_VERSION;
    f[1] = t;
    wire_be16_put(f + 2, 0);
    wire_be32_put(f + 4, 1);
    wire_be32_put(f + 8, (uint32_t)n);
    memcpy(f + WIRE_HDR_LEN, payload, n);
    /* a valid check where the payload parses; otherwise the parse error */
    (void)wire_frame_seal(f, WIRE_HDR_LEN + n);
    struct wire_msg d;
    size_t used;
    int rc = wire_frame_decode(f, WIRE_HDR_LEN + n, &d, &used);
    free(f);
    return rc;
}

Test(wire_codec, hostile_payloads)
{
    /* DELETE of a string missing its terminator, then with "..". */
    const uint8_t no_nul[] = {0, 1, 'a', 'b', 0};
    cr_assert_eq(decode_raw(WIRE_DELETE, no_nul, sizeof no_nul), ORBIT_EPROTO);
    const uint8_t dotdot[] = {0, 2, '.', '.', 0, 0};
    cr_assert_eq(decode_raw(WIRE_DELETE, dotdot, sizeof dotdot), ORBIT_EPATH);
    const uint8_t inner_nul[] = {0, 3, 'a', 0, 'b', 0, 0};
    cr_assert_eq(decode_raw(WIRE_DELETE, inner_nul, sizeof inner_nul),
                 ORBIT_EPROTO);
    const uint8_t abs[] = {0, 4, '/', 'e', 't', 'c', 0, 0};
    cr_assert_eq(decode_raw(WIRE_DELETE, abs, sizeof abs), ORBIT_EPATH);
    const uint8_t ok[] = {0, 1, 'a', 0, 1};
    cr_assert_eq(decode_raw(WIRE_DELETE, ok, sizeof ok), 0);
    const uint8_t bad_flag[] = {0, 1, 'a', 0, 2};
    cr_assert_eq(decode_raw(WIRE_DELETE, bad_flag, sizeof bad_flag),
                 ORBIT_EPROTO);
    /* HAVE_REPLY with a bit set past n. */
    const uint8_t hi_bits[] = {0, 0, 0, 3, 0x08};
    cr_assert_eq(decode_raw(WIRE_HAVE_REPLY, hi_bits, sizeof hi_bits),
                 ORBIT_EPROTO);
    /* Empty-payload types refuse any byte; bools refuse 2. */
    const uint8_t one[] = {2};
    cr_assert_eq(decode_raw(WIRE_GOODBYE, one, 1), ORBIT_EPROTO);
    cr_assert_eq(decode_raw(WIRE_COMMIT_OK, one, 1), ORBIT_EPROTO);
    /* ERROR with a non-negative code. */
    const uint8_t pos_code[] = {0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0};
    cr_assert_eq(decode_raw(WIRE_ERROR, pos_code, sizeof pos_code),
                 ORBIT_EPROTO);
}

Test(wire_codec, commit_rules)
{
    struct wire_msg m;
    size_t len;
    sample(WIRE_COMMIT, &m);
    m.u.commit.chunk_total = 1; /* n = 2 > total */
    cr_assert_eq(wire_encoded_len(&m, &len), ORBIT_EINVAL);
    sample(WIRE_COMMIT, &m);
    m.u.commit.mtime_nsec = 1000000000u;
    cr_assert_eq(wire_encoded_len(&m, &len), ORBIT_EINVAL);
    sample(WIRE_COMMIT, &m);
    m.u.commit.path = ".orbit/starmap";
    m.u.commit.path_len = 14;
    cr_assert_eq(wire_encoded_len(&m, &len), ORBIT_EPATH);
    /* A symlink carries a target and no chunks. */
    sample(WIRE_COMMIT, &m);
    m.u.commit.ftype = WIRE_FT_SYMLINK;
    m.u.commit.size = 0;
    m.u.commit.n = 0;
    m.u.commit.chunk_total = 0;
    cr_assert_eq(wire_encoded_len(&m, &len), ORBIT_EINVAL, "needs a target");
    m.u.commit.target = "../elsewhere";
    m.u.commit.target_len = 12;
    uint8_t *buf = encode(&m, &len);
    struct wire_msg d;
    size_t used;
    cr_assert_eq(wire_frame_decode(buf, len, &d, &used), 0);
    cr_assert_str_eq(d.u.commit.target, "../elsewhere");
    free(buf);
    /* A later part of a long manifest. */
    sample(WIRE_COMMIT, &m);
    m.u.commit.chunk_first = 1000000;
    m.u.commit.chunk_total = 1000002;
    buf = encode(&m, &len);
    cr_assert_eq(wire_frame_decode(buf, len, &d, &used), 0);
    cr_assert_eq(d.u.commit.chunk_first, 1000000);
    free(buf);
}

Test(wire_codec, reply_types_and_names)
{
    cr_assert_eq(wire_reply_type(WIRE_HAVE), WIRE_HAVE_REPLY);
    cr_assert_eq(wire_reply_type(WIRE_AUTH_RESPONSE), WIRE_AUTH_OK);
    cr_assert_eq(wire_reply_type(WIRE_HAVE_REPLY), 0);
    cr_assert_eq(wire_reply_type(WIRE_BULLETIN), 0);
    cr_assert_str_eq(wire_type_name(WIRE_COMMIT_OK), "COMMIT_OK");
    cr_assert_str_eq(wire_type_name(0xee), "UNKNOWN");
    struct wire_msg m;
    wire_error_init(&m, 5, ORBIT_EAGAIN, "busy", 3);
    cr_assert(m.u.error.retryable);
    cr_assert_eq(m.u.error.item, 3);
}

/* A LIST_REPLY of 4,096 long paths fills a payload to the exact maximum. */
Test(wire_codec, payload_of_exactly_the_maximum)
{
    static char path[WIRE_MAX_PATH + 1];
    for (size_t i = 0; i < WIRE_MAX_PATH; i++)
        path[i] = (i % 101 == 100) ? '/' : 'a';
    struct wire_list_entry *e = calloc(WIRE_MAX_LIST, sizeof *e);
    /* cursor "" + count = 7 bytes; an entry without digest = len + 29. */
    size_t left = WIRE_MAX_PAYLOAD - 7;
    for (size_t i = 0; i < WIRE_MAX_LIST; i++) {
        size_t len = (i + 1 < WIRE_MAX_LIST) ? 4068 : left - 29;
        e[i] = (struct wire_list_entry){path, len, WIRE_FT_REGULAR};
        left -= len + 29;
    }
    cr_assert_eq(left, 0);
    size_t esize = 0;
    cr_assert_eq(wire_list_entry_size(&e[0], &esize), 0);
    cr_assert_eq(esize, 4068 + 29);
    struct wire_msg m = {.type = WIRE_LIST_REPLY};
    m.u.list_reply = (struct wire_list_reply){"", 0, WIRE_MAX_LIST, e};
    size_t len = 0, used = 0;
    uint8_t *buf = encode(&m, &len);
    cr_assert_eq(len, WIRE_HDR_LEN + WIRE_MAX_PAYLOAD);
    struct wire_msg d;
    cr_assert_eq(wire_frame_decode(buf, len, &d, &used), 0);
    cr_assert_eq(d.u.list_reply.n, WIRE_MAX_LIST);
    /* One byte more (a one-byte cursor) is over the limit. */
    m.u.list_reply.next_cursor = "c";
    m.u.list_reply.next_cursor_len = 1;
    cr_assert_eq(wire_encoded_len(&m, &len), ORBIT_ETOOBIG);
    free(buf);
    free(e);
}
