/*
 * Frame and message codec. Readers and writers are bounds-checked cursors;
 * every length read from the wire is compared with what is left of the
 * payload and with its hard maximum before anything is indexed by it, and
 * nothing is ever allocated.
 */
#include <assert.h>
#include <string.h>

#include "orbit/error.h"
#include "orbit/wire.h"
#include "orbit/wire_path.h"
#include "wire_internal.h"

#define TRY(expr)                                                              \
    do {                                                                       \
        int try_rc_ = (expr);                                                  \
        if (try_rc_ < 0)                                                       \
            return try_rc_;                                                    \
    } while (0)

/* ---- writer ---- */

/* A writer with buf == NULL only counts, for wire_encoded_len(). */
struct wbuf {
    uint8_t *buf;
    size_t cap;
    size_t len;
};

static void
w_bytes(struct wbuf *w, const void *p, size_t n)
{
    if (w->buf && n > 0 && w->len <= w->cap && n <= w->cap - w->len)
        memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void
w_u8(struct wbuf *w, uint8_t v)
{
    w_bytes(w, &v, 1);
}

static void
w_u16(struct wbuf *w, uint16_t v)
{
    uint8_t b[2];
    wire_be16_put(b, v);
    w_bytes(w, b, sizeof b);
}

static void
w_u32(struct wbuf *w, uint32_t v)
{
    uint8_t b[4];
    wire_be32_put(b, v);
    w_bytes(w, b, sizeof b);
}

static void
w_u64(struct wbuf *w, uint64_t v)
{
    uint8_t b[8];
    wire_be64_put(b, v);
    w_bytes(w, b, sizeof b);
}

/* Strings travel as u16 length, the bytes, one zero byte. */
static int
w_str(struct wbuf *w, const char *s, size_t len, size_t max)
{
    if (len > max)
        return ORBIT_ETOOBIG;
    if (len > 0 && (!s || memchr(s, 0, len)))
        return ORBIT_EINVAL;
    w_u16(w, (uint16_t)len);
    w_bytes(w, s, len);
    w_u8(w, 0);
    return 0;
}

static int
w_path(struct wbuf *w, const char *s, size_t len, bool allow_empty)
{
    if (!(allow_empty && len == 0) && wire_path_check(s, len, NULL, 0) < 0)
        return ORBIT_EPATH;
    return w_str(w, s, len, WIRE_MAX_PATH);
}

static int
w_bool(struct wbuf *w, bool v)
{
    w_u8(w, v ? 1 : 0);
    return 0;
}

/* ---- reader ---- */

struct rbuf {
    const uint8_t *p;
    size_t len;
    size_t pos;
};

static size_t
r_left(const struct rbuf *r)
{
    return r->len - r->pos;
}

static int
r_bytes(struct rbuf *r, size_t n, const uint8_t **out)
{
    if (n > r_left(r))
        return ORBIT_EPROTO;
    *out = r->p + r->pos;
    r->pos += n;
    return 0;
}

static int
r_copy(struct rbuf *r, void *dst, size_t n)
{
    const uint8_t *p;
    TRY(r_bytes(r, n, &p));
    memcpy(dst, p, n);
    return 0;
}

static int
r_u8(struct rbuf *r, uint8_t *v)
{
    return r_copy(r, v, 1);
}

static int
r_u16(struct rbuf *r, uint16_t *v)
{
    const uint8_t *p;
    TRY(r_bytes(r, 2, &p));
    *v = wire_be16_get(p);
    return 0;
}

static int
r_u32(struct rbuf *r, uint32_t *v)
{
    const uint8_t *p;
    TRY(r_bytes(r, 4, &p));
    *v = wire_be32_get(p);
    return 0;
}

static int
r_u64(struct rbuf *r, uint64_t *v)
{
    const uint8_t *p;
    TRY(r_bytes(r, 8, &p));
    *v = wire_be64_get(p);
    return 0;
}

static int
r_i64(struct rbuf *r, int64_t *v)
{
    uint64_t u;
    TRY(r_u64(r, &u));
    /* Two's complement reinterpretation without implementation-defined
     * conversion of out-of-range values. */
    memcpy(v, &u, sizeof *v);
    return 0;
}

static int
r_bool(struct rbuf *r, bool *v)
{
    uint8_t b;
    TRY(r_u8(r, &b));
    if (b > 1)
        return ORBIT_EPROTO;
    *v = b == 1;
    return 0;
}

static int
r_str(struct rbuf *r, size_t max, const char **s, size_t *len)
{
    uint16_t n;
    const uint8_t *p;
    TRY(r_u16(r, &n));
    if (n > max)
        return ORBIT_ETOOBIG;
    TRY(r_bytes(r, (size_t)n + 1, &p));
    if (p[n] != 0 || memchr(p, 0, n))
        return ORBIT_EPROTO;
    *s = (const char *)p;
    *len = n;
    return 0;
}

static int
r_path(struct rbuf *r, bool allow_empty, const char **s, size_t *len)
{
    TRY(r_str(r, WIRE_MAX_PATH, s, len));
    if (allow_empty && *len == 0)
        return 0;
    return wire_path_check(*s, *len, NULL, 0) < 0 ? ORBIT_EPATH : 0;
}

static int
r_end(const struct rbuf *r)
{
    return r_left(r) == 0 ? 0 : ORBIT_EPROTO;
}

/* ---- messages ---- */

static int
enc_error(struct wbuf *w, const struct wire_msg *m)
{
    const struct wire_error *e = &m->u.error;
    if (e->code >= 0 || e->code == INT32_MIN)
        return ORBIT_EINVAL;
    w_u32(w, (uint32_t)e->code);
    w_bool(w, e->retryable);
    w_u32(w, e->item);
    return w_str(w, e->message, e->message_len, WIRE_MAX_STR);
}

static int
dec_error(struct rbuf *r, struct wire_msg *m)
{
    struct wire_error *e = &m->u.error;
    uint32_t code;
    TRY(r_u32(r, &code));
    /* The code must be a negative int32: bit 31 set, not INT32_MIN. */
    if (code <= 0x80000000u)
        return ORBIT_EPROTO;
    e->code = -(int32_t)(~code + 1u);
    TRY(r_bool(r, &e->retryable));
    TRY(r_u32(r, &e->item));
    return r_str(r, WIRE_MAX_STR, &e->message, &e->message_len);
}

static int
enc_challenge(struct wbuf *w, const struct wire_msg *m)
{
    w_u16(w, m->u.challenge.version);
    w_bytes(w, m->u.challenge.challenge, WIRE_CHALLENGE_LEN);
    return 0;
}

static int
dec_challenge(struct rbuf *r, struct wire_msg *m)
{
    TRY(r_u16(r, &m->u.challenge.version));
    return r_copy(r, m->u.challenge.challenge, WIRE_CHALLENGE_LEN);
}

static int
enc_response(struct wbuf *w, const struct wire_msg *m)
{
    w_bytes(w, m->u.response.mac, WIRE_MAC_LEN);
    return 0;
}

static int
dec_response(struct rbuf *r, struct wire_msg *m)
{
    return r_copy(r, m->u.response.mac, WIRE_MAC_LEN);
}

static int
enc_hello(struct wbuf *w, const struct wire_msg *m)
{
    const struct wire_hello *h = &m->u.hello;
    w_u16(w, h->version);
    TRY(w_str(w, h->traceparent, h->traceparent_len, WIRE_MAX_NAME));
    TRY(w_str(w, h->client_name, h->client_name_len, WIRE_MAX_NAME));
    TRY(w_str(w, h->job_id, h->job_id_len, WIRE_MAX_NAME));
    w_u32(w, h->features);
    return 0;
}

static int
dec_hello(struct rbuf *r, struct wire_msg *m)
{
    struct wire_hello *h = &m->u.hello;
    TRY(r_u16(r, &h->version));
    TRY(r_str(r, WIRE_MAX_NAME, &h->traceparent, &h->traceparent_len));
    TRY(r_str(r, WIRE_MAX_NAME, &h->client_name, &h->client_name_len));
    TRY(r_str(r, WIRE_MAX_NAME, &h->job_id, &h->job_id_len));
    return r_u32(r, &h->features);
}

static int
enc_hello_ok(struct wbuf *w, const struct wire_msg *m)
{
    const struct wire_hello_ok *h = &m->u.hello_ok;
    w_u16(w, h->version);
    TRY(w_str(w, h->star_name, h->star_name_len, WIRE_MAX_NAME));
    w_u8(w, h->state);
    w_u32(w, h->max_payload);
    w_u32(w, h->max_have);
    w_u32(w, h->max_chunk);
    w_u32(w, h->max_inflight);
    w_u32(w, h->features);
    return 0;
}

static int
dec_hello_ok(struct rbuf *r, struct wire_msg *m)
{
    struct wire_hello_ok *h = &m->u.hello_ok;
    TRY(r_u16(r, &h->version));
    TRY(r_str(r, WIRE_MAX_NAME, &h->star_name, &h->star_name_len));
    TRY(r_u8(r, &h->state));
    TRY(r_u32(r, &h->max_payload));
    TRY(r_u32(r, &h->max_have));
    TRY(r_u32(r, &h->max_chunk));
    TRY(r_u32(r, &h->max_inflight));
    return r_u32(r, &h->features);
}

static int
enc_have(struct wbuf *w, const struct wire_msg *m)
{
    const struct wire_have *h = &m->u.have;
    if (h->n > WIRE_MAX_HAVE)
        return ORBIT_ETOOBIG;
    if (h->n > 0 && !h->ids)
        return ORBIT_EINVAL;
    w_u32(w, h->n);
    w_bytes(w, h->ids, (size_t)h->n * WIRE_ID_LEN);
    return 0;
}

static int
dec_have(struct rbuf *r, struct wire_msg *m)
{
    struct wire_have *h = &m->u.have;
    TRY(r_u32(r, &h->n));
    if (h->n > WIRE_MAX_HAVE)
        return ORBIT_ETOOBIG;
    return r_bytes(r, (size_t)h->n * WIRE_ID_LEN, &h->ids);
}

static size_t
bitmap_len(uint32_t n)
{
    return ((size_t)n + 7) / 8;
}

static int
enc_have_reply(struct wbuf *w, const struct wire_msg *m)
{
    const struct wire_have_reply *h = &m->u.have_reply;
    if (h->n > WIRE_MAX_HAVE)
        return ORBIT_ETOOBIG;
    if (h->n > 0 && !h->bitmap)
        return ORBIT_EINVAL;
    w_u32(w, h->n);
    size_t blen = bitmap_len(h->n);
    if (blen == 0)
        return 0;
    w_bytes(w, h->bitmap, blen - 1);
    /* Bits past n are always sent as zero. */
    unsigned used = h->n % 8 ? h->n % 8 : 8;
    w_u8(w, (uint8_t)(h->bitmap[blen - 1] & ((1u << used) - 1u)));
    return 0;
}

static int
dec_have_reply(struct rbuf *r, struct wire_msg *m)
{
    struct wire_have_reply *h = &m->u.have_reply;
    TRY(r_u32(r, &h->n));
    if (h->n > WIRE_MAX_HAVE)
        return ORBIT_ETOOBIG;
    size_t blen = bitmap_len(h->n);
    TRY(r_bytes(r, blen, &h->bitmap));
    if (h->n % 8 && (h->bitmap[blen - 1] >> (h->n % 8)) != 0)
        return ORBIT_EPROTO;
    return 0;
}

static int
enc_put(struct wbuf *w, const struct wire_msg *m)
{
    const struct wire_put *p = &m->u.put;
    if (p->codec > WIRE_CODEC_ZSTD || p->raw_len == 0 ||
        (p->codec == WIRE_CODEC_RAW && p->data_len != p->raw_len) ||
        (p->data_len > 0 && !p->data))
        return ORBIT_EINVAL;
    if (p->raw_len > WIRE_MAX_CHUNK || p->data_len > WIRE_MAX_CHUNK)
        return ORBIT_ETOOBIG;
    w_bytes(w, p->id, WIRE_ID_LEN);
    w_u8(w, p->codec);
    w_u32(w, p->raw_len);
    w_bool(w, p->has_hint);
    if (p->has_hint) {
        TRY(w_path(w, p->hint_path, p->hint_path_len, false));
        w_u64(w, p->hint_offset);
    }
    w_u32(w, p->data_len);
    w_bytes(w, p->data, p->data_len);
    return 0;
}

static int
dec_put(struct rbuf *r, struct wire_msg *m)
{
    struct wire_put *p = &m->u.put;
    TRY(r_copy(r, p->id, WIRE_ID_LEN));
    TRY(r_u8(r, &p->codec));
    TRY(r_u32(r, &p->raw_len));
    if (p->codec > WIRE_CODEC_ZSTD || p->raw_len == 0)
        return ORBIT_EPROTO;
    if (p->raw_len > WIRE_MAX_CHUNK)
        return ORBIT_ETOOBIG;
    TRY(r_bool(r, &p->has_hint));
    p->hint_path = "";
    p->hint_path_len = 0;
    p->hint_offset = 0;
    if (p->has_hint) {
        TRY(r_path(r, false, &p->hint_path, &p->hint_path_len));
        TRY(r_u64(r, &p->hint_offset));
    }
    TRY(r_u32(r, &p->data_len));
    if (p->data_len > WIRE_MAX_CHUNK)
        return ORBIT_ETOOBIG;
    if (p->codec == WIRE_CODEC_RAW && p->data_len != p->raw_len)
        return ORBIT_EPROTO;
    return r_bytes(r, p->data_len, &p->data);
}

static int
enc_put_ok(struct wbuf *w, const struct wire_msg *m)
{
    w_bytes(w, m->u.put_ok.id, WIRE_ID_LEN);
    return w_bool(w, m->u.put_ok.existed);
}

static int
dec_put_ok(struct rbuf *r, struct wire_msg *m)
{
    TRY(r_copy(r, m->u.put_ok.id, WIRE_ID_LEN));
    return r_bool(r, &m->u.put_ok.existed);
}

/* The rules both sides apply to a manifest's metadata. */
static int
commit_check(const struct wire_commit *c)
{
    if (c->ftype < WIRE_FT_REGULAR || c->ftype > WIRE_FT_DIRECTORY ||
        c->mtime_nsec >= 1000000000u)
        return ORBIT_EPROTO;
    if (c->n > WIRE_MAX_COMMIT_CHUNKS)
        return ORBIT_ETOOBIG;
    if (c->chunk_first > c->chunk_total ||
        c->n > c->chunk_total - c->chunk_first)
        return ORBIT_EPROTO;
    if (c->ftype != WIRE_FT_REGULAR && (c->chunk_total != 0 || c->size != 0))
        return ORBIT_EPROTO;
    if ((c->ftype == WIRE_FT_SYMLINK) != (c->target_len > 0))
        return ORBIT_EPROTO;
    return 0;
}

static int
enc_commit(struct wbuf *w, const struct wire_msg *m)
{
    const struct wire_commit *c = &m->u.commit;
    int rc = commit_check(c);
    if (rc < 0)
        return rc == ORBIT_EPROTO ? ORBIT_EINVAL : rc;
    if (c->n > 0 && !c->chunks && !c->chunks_raw)
        return ORBIT_EINVAL;
    TRY(w_path(w, c->path, c->path_len, false));
    w_u8(w, c->ftype);
    w_u64(w, c->size);
    w_u32(w, c->mode);
    w_u64(w, (uint64_t)c->mtime_sec);
    w_u32(w, c->mtime_nsec);
    TRY(w_str(w, c->target, c->target_len, WIRE_MAX_PATH));
    w_bytes(w, c->digest, WIRE_DIGEST_LEN);
    w_u64(w, c->chunk_first);
    w_u64(w, c->chunk_total);
    w_u32(w, c->n);
    for (uint32_t i = 0; i < c->n; i++) {
        struct wire_chunk_ref ref;
        wire_commit_chunk(c, i, &ref);
        if (ref.raw_len == 0 || ref.raw_len > WIRE_MAX_CHUNK)
            return ORBIT_EINVAL;
        w_bytes(w, ref.id, WIRE_ID_LEN);
        w_u32(w, ref.raw_len);
    }
    return 0;
}

#define CHUNK_REF_LEN (WIRE_ID_LEN + 4)

static int
dec_commit(struct rbuf *r, struct wire_msg *m)
{
    struct wire_commit *c = &m->u.commit;
    TRY(r_path(r, false, &c->path, &c->path_len));
    TRY(r_u8(r, &c->ftype));
    TRY(r_u64(r, &c->size));
    TRY(r_u32(r, &c->mode));
    TRY(r_i64(r, &c->mtime_sec));
    TRY(r_u32(r, &c->mtime_nsec));
    TRY(r_str(r, WIRE_MAX_PATH, &c->target, &c->target_len));
    TRY(r_copy(r, c->digest, WIRE_DIGEST_LEN));
    TRY(r_u64(r, &c->chunk_first));
    TRY(r_u64(r, &c->chunk_total));
    TRY(r_u32(r, &c->n));
    c->chunks = NULL;
    TRY(commit_check(c));
    TRY(r_bytes(r, (size_t)c->n * CHUNK_REF_LEN, &c->chunks_raw));
    for (uint32_t i = 0; i < c->n; i++) {
        uint32_t len = wire_be32_get(c->chunks_raw + (size_t)i * CHUNK_REF_LEN +
                                     WIRE_ID_LEN);
        if (len == 0 || len > WIRE_MAX_CHUNK)
            return ORBIT_EPROTO;
    }
    return 0;
}

static int
enc_commit_ok(struct wbuf *w, const struct wire_msg *m)
{
    return w_bool(w, m->u.commit_ok.complete);
}

static int
dec_commit_ok(struct rbuf *r, struct wire_msg *m)
{
    return r_bool(r, &m->u.commit_ok.complete);
}

static int
enc_list(struct wbuf *w, const struct wire_msg *m)
{
    const struct wire_list *l = &m->u.list;
    TRY(w_path(w, l->path, l->path_len, true));
    TRY(w_str(w, l->cursor, l->cursor_len, WIRE_MAX_STR));
    if (l->flags & ~WIRE_LIST_DIGESTS)
        return ORBIT_EINVAL;
    w_u32(w, l->max_entries);
    w_u8(w, l->flags);
    return 0;
}

static int
dec_list(struct rbuf *r, struct wire_msg *m)
{
    struct wire_list *l = &m->u.list;
    TRY(r_path(r, true, &l->path, &l->path_len));
    TRY(r_str(r, WIRE_MAX_STR, &l->cursor, &l->cursor_len));
    TRY(r_u32(r, &l->max_entries));
    TRY(r_u8(r, &l->flags));
    return (l->flags & ~WIRE_LIST_DIGESTS) ? ORBIT_EPROTO : 0;
}

static int
enc_list_entry(struct wbuf *w, const struct wire_list_entry *e)
{
    if (e->ftype < WIRE_FT_REGULAR || e->ftype > WIRE_FT_DIRECTORY ||
        e->mtime_nsec >= 1000000000u)
        return ORBIT_EINVAL;
    TRY(w_path(w, e->path, e->path_len, false));
    w_u8(w, e->ftype);
    w_u64(w, e->size);
    w_u32(w, e->mode);
    w_u64(w, (uint64_t)e->mtime_sec);
    w_u32(w, e->mtime_nsec);
    w_bool(w, e->has_digest);
    if (e->has_digest)
        w_bytes(w, e->digest, WIRE_DIGEST_LEN);
    return 0;
}

static int
dec_list_entry(struct rbuf *r, struct wire_list_entry *e)
{
    TRY(r_path(r, false, &e->path, &e->path_len));
    TRY(r_u8(r, &e->ftype));
    TRY(r_u64(r, &e->size));
    TRY(r_u32(r, &e->mode));
    TRY(r_i64(r, &e->mtime_sec));
    TRY(r_u32(r, &e->mtime_nsec));
    if (e->ftype < WIRE_FT_REGULAR || e->ftype > WIRE_FT_DIRECTORY ||
        e->mtime_nsec >= 1000000000u)
        return ORBIT_EPROTO;
    TRY(r_bool(r, &e->has_digest));
    if (e->has_digest)
        return r_copy(r, e->digest, WIRE_DIGEST_LEN);
    memset(e->digest, 0, WIRE_DIGEST_LEN);
    return 0;
}

static int
enc_list_reply(struct wbuf *w, const struct wire_msg *m)
{
    const struct wire_list_reply *l = &m->u.list_reply;
    if (l->n > WIRE_MAX_LIST)
        return ORBIT_ETOOBIG;
    if (l->n > 0 && !l->entries && !l->entries_raw)
        return ORBIT_EINVAL;
    TRY(w_str(w, l->next_cursor, l->next_cursor_len, WIRE_MAX_STR));
    w_u32(w, l->n);
    size_t pos = 0;
    for (uint32_t i = 0; i < l->n; i++) {
        struct wire_list_entry e;
        if (wire_list_next(l, &pos, &e) < 0)
            return ORBIT_EINVAL;
        TRY(enc_list_entry(w, &e));
    }
    return 0;
}

static int
dec_list_reply(struct rbuf *r, struct wire_msg *m)
{
    struct wire_list_reply *l = &m->u.list_reply;
    TRY(r_str(r, WIRE_MAX_STR, &l->next_cursor, &l->next_cursor_len));
    TRY(r_u32(r, &l->n));
    if (l->n > WIRE_MAX_LIST)
        return ORBIT_ETOOBIG;
    l->entries = NULL;
    l->entries_raw = r->p + r->pos;
    size_t start = r->pos;
    for (uint32_t i = 0; i < l->n; i++) {
        struct wire_list_entry e;
        TRY(dec_list_entry(r, &e));
    }
    l->entries_raw_len = r->pos - start;
    return 0;
}

static int
enc_delete(struct wbuf *w, const struct wire_msg *m)
{
    if (m->u.del.flags & ~WIRE_DELETE_RECURSIVE)
        return ORBIT_EINVAL;
    TRY(w_path(w, m->u.del.path, m->u.del.path_len, false));
    w_u8(w, m->u.del.flags);
    return 0;
}

static int
dec_delete(struct rbuf *r, struct wire_msg *m)
{
    TRY(r_path(r, false, &m->u.del.path, &m->u.del.path_len));
    TRY(r_u8(r, &m->u.del.flags));
    return (m->u.del.flags & ~WIRE_DELETE_RECURSIVE) ? ORBIT_EPROTO : 0;
}

static int
enc_delete_ok(struct wbuf *w, const struct wire_msg *m)
{
    return w_bool(w, m->u.delete_ok.existed);
}

static int
dec_delete_ok(struct rbuf *r, struct wire_msg *m)
{
    return r_bool(r, &m->u.delete_ok.existed);
}

static int
enc_health(struct wbuf *w, const struct wire_msg *m)
{
    const struct wire_health_reply *h = &m->u.health;
    w_u64(w, h->disk_total);
    w_u64(w, h->disk_used);
    w_u64(w, h->bytes_received);
    w_u64(w, h->chunks_received);
    w_u64(w, h->errors_total);
    w_u64(w, h->errors_io);
    w_u64(w, h->errors_proto);
    w_u64(w, h->errors_auth);
    w_u64(w, h->uptime_sec);
    w_u32(w, h->connections);
    w_u8(w, h->state);
    w_u32(w, h->advisories);
    return 0;
}

static int
dec_health(struct rbuf *r, struct wire_msg *m)
{
    struct wire_health_reply *h = &m->u.health;
    TRY(r_u64(r, &h->disk_total));
    TRY(r_u64(r, &h->disk_used));
    TRY(r_u64(r, &h->bytes_received));
    TRY(r_u64(r, &h->chunks_received));
    TRY(r_u64(r, &h->errors_total));
    TRY(r_u64(r, &h->errors_io));
    TRY(r_u64(r, &h->errors_proto));
    TRY(r_u64(r, &h->errors_auth));
    TRY(r_u64(r, &h->uptime_sec));
    TRY(r_u32(r, &h->connections));
    TRY(r_u8(r, &h->state));
    return r_u32(r, &h->advisories);
}

static int
enc_bulletin(struct wbuf *w, const struct wire_msg *m)
{
    const struct wire_bulletin *b = &m->u.bulletin;
    w_u8(w, b->severity);
    w_u32(w, b->advisories);
    TRY(w_str(w, b->category, b->category_len, WIRE_MAX_NAME));
    return w_str(w, b->message, b->message_len, WIRE_MAX_STR);
}

static int
dec_bulletin(struct rbuf *r, struct wire_msg *m)
{
    struct wire_bulletin *b = &m->u.bulletin;
    TRY(r_u8(r, &b->severity));
    TRY(r_u32(r, &b->advisories));
    TRY(r_str(r, WIRE_MAX_NAME, &b->category, &b->category_len));
    return r_str(r, WIRE_MAX_STR, &b->message, &b->message_len);
}

/* A compressed segment never needs more than twice its frames' bytes. */
#define PACKED_MAX_DATA (2u * WIRE_MAX_PACK_RAW)

static int
enc_packed(struct wbuf *w, const struct wire_msg *m)
{
    const struct wire_packed *p = &m->u.packed;
    if (p->codec != WIRE_CODEC_ZSTD || p->raw_len < WIRE_HDR_LEN ||
        p->data_len == 0 || !p->data)
        return ORBIT_EINVAL;
    if (p->raw_len > WIRE_MAX_PACK_RAW || p->data_len > PACKED_MAX_DATA)
        return ORBIT_ETOOBIG;
    w_u8(w, p->codec);
    w_u32(w, p->raw_len);
    w_u32(w, p->raw_crc);
    w_u32(w, p->data_len);
    w_bytes(w, p->data, p->data_len);
    return 0;
}

static int
dec_packed(struct rbuf *r, struct wire_msg *m)
{
    struct wire_packed *p = &m->u.packed;
    TRY(r_u8(r, &p->codec));
    TRY(r_u32(r, &p->raw_len));
    TRY(r_u32(r, &p->raw_crc));
    TRY(r_u32(r, &p->data_len));
    if (p->codec != WIRE_CODEC_ZSTD || p->raw_len < WIRE_HDR_LEN ||
        p->data_len == 0)
        return ORBIT_EPROTO;
    if (p->raw_len > WIRE_MAX_PACK_RAW || p->data_len > PACKED_MAX_DATA)
        return ORBIT_ETOOBIG;
    return r_bytes(r, p->data_len, &p->data);
}

struct msg_codec {
    uint8_t type;
    const char *name;
    int (*enc)(struct wbuf *, const struct wire_msg *);
    int (*dec)(struct rbuf *, struct wire_msg *);
};

/* enc/dec NULL: the payload is empty. */
static const struct msg_codec codecs[] = {
    {WIRE_ERROR, "ERROR", enc_error, dec_error},
    {WIRE_AUTH_CHALLENGE, "AUTH_CHALLENGE", enc_challenge, dec_challenge},
    {WIRE_AUTH_RESPONSE, "AUTH_RESPONSE", enc_response, dec_response},
    {WIRE_AUTH_OK, "AUTH_OK", NULL, NULL},
    {WIRE_HELLO, "HELLO", enc_hello, dec_hello},
    {WIRE_HELLO_OK, "HELLO_OK", enc_hello_ok, dec_hello_ok},
    {WIRE_HAVE, "HAVE", enc_have, dec_have},
    {WIRE_HAVE_REPLY, "HAVE_REPLY", enc_have_reply, dec_have_reply},
    {WIRE_PUT, "PUT", enc_put, dec_put},
    {WIRE_PUT_OK, "PUT_OK", enc_put_ok, dec_put_ok},
    {WIRE_COMMIT, "COMMIT", enc_commit, dec_commit},
    {WIRE_COMMIT_OK, "COMMIT_OK", enc_commit_ok, dec_commit_ok},
    {WIRE_LIST, "LIST", enc_list, dec_list},
    {WIRE_LIST_REPLY, "LIST_REPLY", enc_list_reply, dec_list_reply},
    {WIRE_DELETE, "DELETE", enc_delete, dec_delete},
    {WIRE_DELETE_OK, "DELETE_OK", enc_delete_ok, dec_delete_ok},
    {WIRE_HEALTH, "HEALTH", NULL, NULL},
    {WIRE_HEALTH_REPLY, "HEALTH_REPLY", enc_health, dec_health},
    {WIRE_GOODBYE, "GOODBYE", NULL, NULL},
    {WIRE_GOODBYE_OK, "GOODBYE_OK", NULL, NULL},
    {WIRE_BULLETIN, "BULLETIN", enc_bulletin, dec_bulletin},
    {WIRE_PACKED, "PACKED", enc_packed, dec_packed},
};

static const struct msg_codec *
codec_of(uint8_t type)
{
    for (size_t i = 0; i < sizeof codecs / sizeof codecs[0]; i++)
        if (codecs[i].type == type)
            return &codecs[i];
    return NULL;
}

const char *
wire_type_name(uint8_t type)
{
    const struct msg_codec *c = codec_of(type);
    return c ? c->name : "UNKNOWN";
}

uint8_t
wire_reply_type(uint8_t type)
{
    switch (type) {
    case WIRE_AUTH_RESPONSE:
    case WIRE_HELLO:
    case WIRE_HAVE:
    case WIRE_PUT:
    case WIRE_COMMIT:
    case WIRE_LIST:
    case WIRE_DELETE:
    case WIRE_HEALTH:
    case WIRE_GOODBYE:
        return (uint8_t)(type + 1);
    default:
        return 0;
    }
}

/* ---- frame check ----------------------------------------------------------
 *
 * The header's flags field carries a check of the frame: bit 15 set means
 * bits 0-14 hold the low 15 bits of a CRC-32C over the header's other
 * fields and the payload's first WIRE_CHECK_SPAN bytes, chunk data
 * excluded (chunk data is verified against its SHA-256 id). A corrupted
 * path, mode, time, offset or count is refused instead of obeyed. Every
 * frame must carry it: bit 15 is always set, so clearing it is caught too. */

#define WIRE_CHECK_SPAN 8192u
#define WIRE_CHECK_BIT  0x8000u

static uint32_t
crc32c_nibbles(uint32_t crc, const uint8_t *p, size_t n)
{
    static const uint32_t t[16] = {
        0x00000000u, 0x105ec76fu, 0x20bd8edeu, 0x30e349b1u,
        0x417b1dbcu, 0x5125dad3u, 0x61c69362u, 0x7198540du,
        0x82f63b78u, 0x92a8fc17u, 0xa24bb5a6u, 0xb21572c9u,
        0xc38d26c4u, 0xd3d3e1abu, 0xe330a81au, 0xf36e6f75u,
    };
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ t[crc & 15u];
        crc = (crc >> 4) ^ t[crc & 15u];
    }
    return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* SSE4.2's crc32 instruction computes CRC-32C: 8 bytes a step. */
__attribute__((target("sse4.2"))) static uint32_t
crc32c_sse42(uint32_t crc, const uint8_t *p, size_t n)
{
    uint64_t c = crc;
    for (; n >= 8; n -= 8, p += 8) {
        uint64_t v;
        memcpy(&v, p, sizeof v);
        c = __builtin_ia32_crc32di(c, v);
    }
    uint32_t c32 = (uint32_t)c;
    for (; n > 0; n--, p++)
        c32 = __builtin_ia32_crc32qi(c32, *p);
    return c32;
}

static uint32_t
crc32c_update(uint32_t crc, const uint8_t *p, size_t n)
{
    static int hw = -1; /* benign race: every thread computes the same */
    if (hw < 0)
        hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    return hw ? crc32c_sse42(crc, p, n) : crc32c_nibbles(crc, p, n);
}
#else
static uint32_t
crc32c_update(uint32_t crc, const uint8_t *p, size_t n)
{
    return crc32c_nibbles(crc, p, n);
}
#endif

uint32_t
wire_crc32c(const void *data, size_t len)
{
    return crc32c_update(0xffffffffu, data, len) ^ 0xffffffffu;
}

uint32_t
wire_crc32c_portable(const void *data, size_t len)
{
    return crc32c_nibbles(0xffffffffu, data, len) ^ 0xffffffffu;
}

/* The bulk bytes at the end of a PUT or PACKED payload. */
static uint32_t
data_len_of(const struct wire_msg *m)
{
    return m->type == WIRE_PUT      ? m->u.put.data_len
           : m->type == WIRE_PACKED ? m->u.packed.data_len
                                    : 0;
}

/* Payload bytes the check covers: metadata, not chunk data (nor a PACKED
 * segment, whose frames carry their own checks and a CRC of them all). */
static size_t
check_span(uint8_t type, uint32_t payload_len, uint32_t data_len)
{
    size_t n = payload_len;
    if ((type == WIRE_PUT || type == WIRE_PACKED) && data_len <= n)
        n -= data_len;
    return n < WIRE_CHECK_SPAN ? n : WIRE_CHECK_SPAN;
}

static uint16_t
frame_check(uint8_t version, uint8_t type, uint32_t request_id,
            uint32_t payload_len, const uint8_t *payload, size_t span)
{
    uint8_t h[10] = {version, type};
    wire_be32_put(h + 2, request_id);
    wire_be32_put(h + 6, payload_len);
    uint32_t crc = crc32c_update(0xffffffffu, h, sizeof h);
    crc = crc32c_update(crc, payload, span) ^ 0xffffffffu;
    return (uint16_t)(WIRE_CHECK_BIT | (crc & 0x7fffu));
}

int
wire_frame_peek(const uint8_t *buf, size_t len, struct wire_hdr *out)
{
    if (!buf || len < WIRE_HDR_LEN)
        return ORBIT_ETRUNC;
    out->version = buf[0];
    out->type = buf[1];
    out->flags = wire_be16_get(buf + 2);
    out->request_id = wire_be32_get(buf + 4);
    out->payload_len = wire_be32_get(buf + 8);
    if (out->version != WIRE_VERSION)
        return ORBIT_EVERSION;
    if (out->payload_len > WIRE_MAX_PAYLOAD)
        return ORBIT_ETOOBIG;
    return 0;
}

static int
decode_payload(const struct wire_hdr *hdr, const uint8_t *payload,
               struct wire_msg *out)
{
    memset(out, 0, sizeof *out);
    out->type = hdr->type;
    out->flags = hdr->flags;
    out->request_id = hdr->request_id;
    if (hdr->payload_len > WIRE_MAX_PAYLOAD)
        return ORBIT_ETOOBIG;
    const struct msg_codec *c = codec_of(hdr->type);
    if (!c)
        return ORBIT_EPROTO;
    struct rbuf r = {payload, hdr->payload_len, 0};
    if (hdr->payload_len > 0 && !payload)
        return ORBIT_EINVAL;
    if (c->dec)
        TRY(c->dec(&r, out));
    return r_end(&r);
}

static uint16_t
check_of(const struct wire_hdr *hdr, const uint8_t *payload,
         const struct wire_msg *m)
{
    return frame_check(hdr->version, hdr->type, hdr->request_id,
                       hdr->payload_len, payload,
                       check_span(hdr->type, hdr->payload_len, data_len_of(m)));
}

int
wire_decode(const struct wire_hdr *hdr, const uint8_t *payload,
            struct wire_msg *out)
{
    TRY(decode_payload(hdr, payload, out));
    return check_of(hdr, payload, out) == hdr->flags ? 0 : ORBIT_ECORRUPT;
}

int
wire_frame_seal(uint8_t *frame, size_t len)
{
    struct wire_hdr hdr;
    struct wire_msg m;
    TRY(wire_frame_peek(frame, len, &hdr));
    if (len - WIRE_HDR_LEN != hdr.payload_len)
        return ORBIT_EINVAL;
    TRY(decode_payload(&hdr, frame + WIRE_HDR_LEN, &m));
    wire_be16_put(frame + 2, check_of(&hdr, frame + WIRE_HDR_LEN, &m));
    return 0;
}

int
wire_frame_decode(const uint8_t *buf, size_t len, struct wire_msg *out,
                  size_t *out_frame_len)
{
    struct wire_hdr hdr;
    *out_frame_len = 0;
    TRY(wire_frame_peek(buf, len, &hdr));
    if (len - WIRE_HDR_LEN < hdr.payload_len)
        return ORBIT_ETRUNC;
    *out_frame_len = WIRE_HDR_LEN + (size_t)hdr.payload_len;
    return wire_decode(&hdr, buf + WIRE_HDR_LEN, out);
}

static int
encode_into(const struct wire_msg *m, struct wbuf *w)
{
    const struct msg_codec *c = codec_of(m->type);
    if (!c)
        return ORBIT_EINVAL;
    w->len = WIRE_HDR_LEN;
    if (c->enc)
        TRY(c->enc(w, m));
    if (w->len - WIRE_HDR_LEN > WIRE_MAX_PAYLOAD)
        return ORBIT_ETOOBIG;
    return 0;
}

int
wire_encoded_len(const struct wire_msg *m, size_t *out_len)
{
    struct wbuf w = {NULL, 0, 0};
    TRY(encode_into(m, &w));
    *out_len = w.len;
    return 0;
}

int
wire_encode(const struct wire_msg *m, uint8_t *buf, size_t cap, size_t *out_len)
{
    if (!buf || cap < WIRE_HDR_LEN)
        return ORBIT_EFULL;
    struct wbuf w = {buf, cap, 0};
    TRY(encode_into(m, &w));
    if (w.len > cap)
        return ORBIT_EFULL;
    uint32_t plen = (uint32_t)(w.len - WIRE_HDR_LEN);
    uint32_t data = data_len_of(m);
    buf[0] = WIRE_VERSION;
    buf[1] = m->type;
    wire_be16_put(buf + 2, frame_check(WIRE_VERSION, m->type, m->request_id,
                                       plen, buf + WIRE_HDR_LEN,
                                       check_span(m->type, plen, data)));
    wire_be32_put(buf + 4, m->request_id);
    wire_be32_put(buf + 8, plen);
    *out_len = w.len;
    return 0;
}

void
wire_commit_chunk(const struct wire_commit *c, uint32_t i,
                  struct wire_chunk_ref *out)
{
    assert(i < c->n);
    if (c->chunks) {
        *out = c->chunks[i];
        return;
    }
    const uint8_t *p = c->chunks_raw + (size_t)i * CHUNK_REF_LEN;
    memcpy(out->id, p, WIRE_ID_LEN);
    out->raw_len = wire_be32_get(p + WIRE_ID_LEN);
}

int
wire_list_entry_size(const struct wire_list_entry *e, size_t *out_len)
{
    struct wbuf w = {NULL, 0, 0};
    TRY(enc_list_entry(&w, e));
    *out_len = w.len;
    return 0;
}

int
wire_list_next(const struct wire_list_reply *r, size_t *pos,
               struct wire_list_entry *out)
{
    if (r->entries) {
        if (*pos >= r->n)
            return ORBIT_ENOENT;
        *out = r->entries[(*pos)++];
        return 0;
    }
    struct rbuf rb = {r->entries_raw, r->entries_raw_len, *pos};
    if (!r->entries_raw || *pos >= r->entries_raw_len)
        return ORBIT_ENOENT;
    TRY(dec_list_entry(&rb, out));
    *pos = rb.pos;
    return 0;
}

bool
wire_bitmap_get(const uint8_t *bitmap, uint32_t i)
{
    return (bitmap[i / 8] >> (i % 8)) & 1u;
}

void
wire_bitmap_set(uint8_t *bitmap, uint32_t i)
{
    bitmap[i / 8] = (uint8_t)(bitmap[i / 8] | (1u << (i % 8)));
}

void
wire_error_init(struct wire_msg *m, uint32_t request_id, int code,
                const char *message, uint32_t item)
{
    memset(m, 0, sizeof *m);
    m->type = WIRE_ERROR;
    m->request_id = request_id;
    m->u.error.code = code < 0 ? code : ORBIT_EPROTO;
    m->u.error.retryable = orbit_err_retryable(m->u.error.code);
    m->u.error.item = item;
    m->u.error.message = message ? message : "";
    m->u.error.message_len = message ? strlen(message) : 0;
    if (m->u.error.message_len > WIRE_MAX_STR)
        m->u.error.message_len = WIRE_MAX_STR;
}
