/*
 * PACKED frames at a real star: packed requests are answered like single
 * ones (packed back to a client that offers it, plain to one that does
 * not), a segment that does not unpack ends that session only, a star that
 * does not offer them refuses them, and the libevent client packs small
 * requests on its own.
 */
#include <event2/event.h>

#include "orbit/wire_client.h"
#include "orbit/wire_pack.h"
#include "test_star_helpers.h"
#include "wire_internal.h"

static struct tstar T;

static void
setup(void)
{
    ts_start(&T);
}

static void
teardown(void)
{
    ts_stop(&T);
}

/* Authenticated, HELLO sent with these features; the star's features. */
static uint32_t
open_with(uint32_t features, int *out_fd)
{
    int fd = tc_connect(T.port);
    cr_assert_eq(tc_auth(fd, ts_token, TS_TOKEN_LEN), 0);
    struct wire_msg h, r;
    memset(&h, 0, sizeof h);
    h.type = WIRE_HELLO;
    h.request_id = 2;
    h.u.hello.version = WIRE_VERSION;
    h.u.hello.traceparent = "";
    h.u.hello.client_name = "packer";
    h.u.hello.client_name_len = 6;
    h.u.hello.job_id = "";
    h.u.hello.features = features;
    uint8_t *buf = NULL;
    cr_assert_eq(tc_call(fd, &h, &r, &buf), WIRE_HELLO_OK);
    uint32_t star_features = r.u.hello_ok.features;
    free(buf);
    *out_fd = fd;
    return star_features;
}

/* Encode msgs back to back into raw; returns the length. */
static size_t
encode_run(const struct wire_msg *msgs, size_t n, uint8_t *raw, size_t cap)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t w = 0;
        cr_assert_eq(wire_encode(&msgs[i], raw + len, cap - len, &w), 0);
        len += w;
    }
    return len;
}

static void
send_packed(int fd, struct wire_packer *p, const uint8_t *raw, size_t len,
            bool break_crc)
{
    size_t cap = wire_pack_bound(len), flen = 0;
    uint8_t *f = malloc(cap);
    cr_assert_not_null(f);
    cr_assert_eq(wire_pack(p, raw, len, f, cap, &flen), 0);
    if (break_crc) { /* the CRC of the frames inside, then a valid check */
        f[WIRE_HDR_LEN + 5] ^= 0x01;
        cr_assert_eq(wire_frame_seal(f, flen), 0);
    }
    cr_assert_eq(tc_write_all(fd, f, flen), 0);
    free(f);
}

/* Replies as they arrive, PACKED ones opened with u (NULL: none allowed). */
struct replies {
    struct wire_unpacker *u;
    uint8_t *buf;
    uint8_t *copy[64]; /* each reply frame, copied */
    struct wire_msg m[64];
    size_t n;
    unsigned packed; /* PACKED frames received */
};

static void
keep(struct replies *rs, const struct wire_hdr *h, const uint8_t *payload)
{
    cr_assert_lt(rs->n, 64);
    size_t len = WIRE_HDR_LEN + (size_t)h->payload_len;
    uint8_t *c = malloc(len);
    cr_assert_not_null(c);
    memcpy(c, payload - WIRE_HDR_LEN, len);
    struct wire_hdr h2;
    cr_assert_eq(wire_frame_peek(c, len, &h2), 0);
    cr_assert_eq(wire_decode(&h2, c + WIRE_HDR_LEN, &rs->m[rs->n]), 0,
                 "a reply inside a PACKED frame decodes");
    rs->copy[rs->n++] = c;
}

/* Read until `want` replies are in (false if the star closed first). */
static bool
collect(int fd, struct replies *rs, size_t want)
{
    while (rs->n < want) {
        struct wire_msg m;
        if (tc_recv(fd, &rs->buf, &m) < 0)
            return false;
        struct wire_hdr h;
        cr_assert_eq(wire_frame_peek(rs->buf, WIRE_HDR_LEN, &h), 0);
        if (m.type != WIRE_PACKED) {
            keep(rs, &h, rs->buf + WIRE_HDR_LEN);
            continue;
        }
        cr_assert_not_null(rs->u, "a PACKED reply to a client that did not "
                                  "offer PACKED");
        rs->packed++;
        const uint8_t *raw;
        size_t len, pos = 0;
        cr_assert_eq(wire_unpack(rs->u, &m.u.packed, &raw, &len), 0);
        const uint8_t *payload;
        while (wire_unpacked_next(raw, len, &pos, &h, &payload) == 1)
            keep(rs, &h, payload);
    }
    return true;
}

static const struct wire_msg *
reply_to(const struct replies *rs, uint32_t rid)
{
    for (size_t i = 0; i < rs->n; i++)
        if (rs->m[i].request_id == rid)
            return &rs->m[i];
    cr_assert_fail("no reply to request %u", rid);
    return NULL;
}

static void
replies_free(struct replies *rs)
{
    for (size_t i = 0; i < rs->n; i++)
        free(rs->copy[i]);
    free(rs->buf);
    wire_unpacker_free(rs->u);
}

/* HEALTH, LIST of the root, DELETE of nothing, a probe of a missing file. */
static size_t
four_requests(uint8_t *raw, size_t cap)
{
    struct wire_msg m[4];
    memset(m, 0, sizeof m);
    m[0].type = WIRE_HEALTH;
    m[0].request_id = 10;
    m[1].type = WIRE_LIST;
    m[1].request_id = 11;
    m[1].u.list = (struct wire_list){"", 0, "", 0, 0};
    m[2].type = WIRE_DELETE;
    m[2].request_id = 12;
    m[2].u.del = (struct wire_delete){"nope", 4, 0};
    m[3].type = WIRE_COMMIT;
    m[3].request_id = 13;
    m[3].u.commit.path = "missing.c";
    m[3].u.commit.path_len = 9;
    m[3].u.commit.ftype = WIRE_FT_REGULAR;
    m[3].u.commit.size = 100;
    m[3].u.commit.mode = 0644;
    m[3].u.commit.target = "";
    return encode_run(m, 4, raw, cap);
}

static void
check_four(const struct replies *rs)
{
    cr_assert_eq(reply_to(rs, 10)->type, WIRE_HEALTH_REPLY);
    const struct wire_msg *l = reply_to(rs, 11);
    cr_assert_eq(l->type, WIRE_LIST_REPLY);
    cr_assert_eq(l->u.list_reply.n, 2, "a.txt and b.txt listed");
    const struct wire_msg *d = reply_to(rs, 12);
    cr_assert_eq(d->type, WIRE_DELETE_OK);
    cr_assert_not(d->u.delete_ok.existed);
    const struct wire_msg *c = reply_to(rs, 13);
    cr_assert_eq(c->type, WIRE_ERROR);
    cr_assert_eq(c->u.error.code, ORBIT_ENOENT);
}

static void
two_files(void)
{
    char p[512];
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/%c.txt", T.root, 'a' + i);
        FILE *f = fopen(p, "w");
        cr_assert_not_null(f);
        fputs("x", f);
        fclose(f);
    }
}

TestSuite(star_packed, .init = setup, .fini = teardown);

Test(star_packed, packed_requests_get_packed_replies)
{
    two_files();
    int fd;
    cr_assert_eq(open_with(WIRE_FEATURE_PACKED, &fd) & WIRE_FEATURE_PACKED,
                 WIRE_FEATURE_PACKED, "the star offers PACKED");
    struct wire_packer *p;
    cr_assert_eq(wire_packer_new(WIRE_PACK_LEVEL, &p), 0);
    uint8_t raw[4096];
    send_packed(fd, p, raw, four_requests(raw, sizeof raw), false);
    struct replies rs = {0};
    cr_assert_eq(wire_unpacker_new(&rs.u), 0);
    cr_assert(collect(fd, &rs, 4));
    check_four(&rs);
    cr_assert_geq(rs.packed, 1);
    /* A second run on the same streams, then a plain request between. */
    send_packed(fd, p, raw, four_requests(raw, sizeof raw), false);
    struct replies rs2 = {0};
    rs2.u = rs.u;
    rs.u = NULL;
    cr_assert(collect(fd, &rs2, 4));
    check_four(&rs2);
    struct star_stats st;
    star_get_stats(T.star, &st);
    cr_assert_eq(st.packed_in, 2);
    cr_assert_geq(st.packed_out, 2);
    cr_assert_eq(st.packed_out, rs.packed + rs2.packed);
    replies_free(&rs);
    replies_free(&rs2);
    wire_packer_free(p);
    close(fd);
}

Test(star_packed, replies_stay_plain_for_a_client_that_does_not_offer)
{
    two_files();
    int fd;
    open_with(0, &fd);
    struct wire_packer *p;
    cr_assert_eq(wire_packer_new(WIRE_PACK_LEVEL, &p), 0);
    uint8_t raw[4096];
    send_packed(fd, p, raw, four_requests(raw, sizeof raw), false);
    struct replies rs = {0}; /* no unpacker: a PACKED reply fails */
    cr_assert(collect(fd, &rs, 4));
    check_four(&rs);
    struct star_stats st;
    star_get_stats(T.star, &st);
    cr_assert_eq(st.packed_in, 1);
    cr_assert_eq(st.packed_out, 0);
    replies_free(&rs);
    wire_packer_free(p);
    close(fd);
}

Test(star_packed, a_segment_that_does_not_unpack_ends_that_session_only)
{
    int fd;
    open_with(WIRE_FEATURE_PACKED, &fd);
    struct wire_packer *p;
    cr_assert_eq(wire_packer_new(WIRE_PACK_LEVEL, &p), 0);
    uint8_t raw[4096];
    send_packed(fd, p, raw, four_requests(raw, sizeof raw), true);
    struct replies rs = {0};
    cr_assert_eq(wire_unpacker_new(&rs.u), 0);
    cr_assert(collect(fd, &rs, 1));
    cr_assert_eq(rs.n, 1, "none of the requests inside was obeyed");
    cr_assert_eq(rs.m[0].type, WIRE_ERROR);
    cr_assert_eq(rs.m[0].request_id, 0, "an error about the session");
    cr_assert_eq(rs.m[0].u.error.code, ORBIT_ECORRUPT);
    cr_assert(tc_closed(fd));
    close(fd);
    replies_free(&rs);
    wire_packer_free(p);
    /* Everyone else is served. */
    int fd2 = tc_open(T.port);
    struct wire_msg m, r;
    uint8_t *buf = NULL;
    memset(&m, 0, sizeof m);
    m.type = WIRE_HEALTH;
    m.request_id = 5;
    cr_assert_eq(tc_call(fd2, &m, &r, &buf), WIRE_HEALTH_REPLY);
    free(buf);
    close(fd2);
}

/* A PACKED frame whose payload does not decode ends the session too: the
 * requests inside cannot be answered one by one. */
Test(star_packed, a_malformed_packed_frame_ends_that_session)
{
    int fd;
    open_with(WIRE_FEATURE_PACKED, &fd);
    uint8_t bad[WIRE_HDR_LEN + 14] = {
        WIRE_VERSION, WIRE_PACKED, 0x80, 0, 0, 0, 0, 0, 0, 0, 0,
        14,           0,           0,    0, 0, 12};
    cr_assert_eq(tc_write_all(fd, bad, sizeof bad), 0);
    struct replies rs = {0};
    cr_assert_eq(wire_unpacker_new(&rs.u), 0);
    cr_assert(collect(fd, &rs, 1));
    cr_assert_eq(rs.m[0].type, WIRE_ERROR);
    cr_assert_eq(rs.m[0].request_id, 0);
    cr_assert_eq(rs.m[0].u.error.code, ORBIT_EPROTO);
    cr_assert(tc_closed(fd));
    close(fd);
    replies_free(&rs);
}

Test(star_packed, a_star_that_does_not_offer_refuses_them)
{
    ts_stop(&T);
    ts_mkroot(T.root, sizeof T.root);
    struct star_config cfg;
    ts_config(&cfg, T.root);
    cfg.pack_level = -1;
    ts_start_cfg(&T, &cfg);
    int fd;
    cr_assert_eq(open_with(WIRE_FEATURE_PACKED, &fd), 0, "no offer");
    struct wire_packer *p;
    cr_assert_eq(wire_packer_new(WIRE_PACK_LEVEL, &p), 0);
    uint8_t raw[4096];
    send_packed(fd, p, raw, four_requests(raw, sizeof raw), false);
    struct replies rs = {0};
    cr_assert(collect(fd, &rs, 1));
    cr_assert_eq(rs.n, 1);
    cr_assert_eq(rs.m[0].type, WIRE_ERROR);
    cr_assert_eq(rs.m[0].request_id, 0);
    cr_assert_eq(rs.m[0].u.error.code, ORBIT_EPROTO);
    cr_assert(tc_closed(fd));
    close(fd);
    replies_free(&rs);
    wire_packer_free(p);
}

/* ---- the libevent client ---- */

struct run {
    struct event_base *base;
    struct wire_client *c;
    int ready, done, failed;
};

static void
on_ready(void *arg, int status, const struct wire_hello_ok *hello)
{
    struct run *r = arg;
    (void)hello;
    r->ready = status == 0 ? 1 : -1;
    event_base_loopbreak(r->base);
}

static void
on_reply(void *arg, int status, const struct wire_msg *reply)
{
    struct run *r = arg;
    (void)reply;
    r->done++;
    r->failed += status != 0;
}

/* 300 DELETEs of missing files and a LIST through a wire_client at
 * pack_level; returns the bytes it sent and received. */
static uint64_t
client_traffic(int pack_level)
{
    struct run r = {0};
    r.base = event_base_new();
    cr_assert_not_null(r.base);
    struct wire_client_config cfg = {
        .host = "127.0.0.1",
        .port = T.port,
        .fd = -1,
        .token = ts_token,
        .token_len = TS_TOKEN_LEN,
        .client_name = "packing-client",
        .pack_level = pack_level,
        .on_ready = on_ready,
        .arg = &r,
    };
    cr_assert_eq(wire_client_new(r.base, &cfg, &r.c), 0);
    while (r.ready == 0)
        event_base_loop(r.base, EVLOOP_ONCE);
    cr_assert_eq(r.ready, 1);
    int sent = 0;
    char path[128];
    for (int i = 0; i < 300; i++, sent++) {
        snprintf(path, sizeof path, "src/lib/module-%03d/file-%04d.c", i / 10,
                 i);
        cr_assert_eq(wire_client_delete(r.c, path, 0, on_reply, &r, NULL), 0);
    }
    cr_assert_eq(wire_client_list(r.c, NULL, NULL, 0, on_reply, &r, NULL), 0);
    sent++;
    while (r.done < sent)
        event_base_loop(r.base, EVLOOP_ONCE);
    cr_assert_eq(r.failed, 0);
    uint64_t out, in;
    wire_client_traffic(r.c, &out, &in);
    cr_assert_eq(wire_client_check(r.c), 0);
    wire_client_free(r.c);
    event_base_free(r.base);
    return out + in;
}

Test(star_packed, the_client_packs_small_requests_when_offered)
{
    struct star_stats st;
    uint64_t plain = client_traffic(-1);
    star_get_stats(T.star, &st);
    cr_assert_eq(st.packed_in + st.packed_out, 0,
                 "pack_level -1 packs nothing");
    uint64_t packed = client_traffic(0);
    star_get_stats(T.star, &st);
    cr_assert_geq(st.packed_in, 1);
    cr_assert_geq(st.packed_out, 1);
    cr_assert_lt(packed * 3, plain, "packed %llu bytes, plain %llu",
                 (unsigned long long)packed, (unsigned long long)plain);
}
