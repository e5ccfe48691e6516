#include "orbit/chunk_id.h"

#include "orbit/error.h"
#include "starmap_alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * The digest is fetched once per context (EVP_MD_fetch) so that hashing a
 * chunk does no algorithm lookup and no allocation.
 */
struct chunk_id_ctx {
    EVP_MD *md;
    EVP_MD_CTX *mdctx;
};

struct chunk_id_stream {
    struct chunk_id_ctx c;
    int started;
};

static void
ctx_release(struct chunk_id_ctx *c)
{
    EVP_MD_CTX_free(c->mdctx);
    EVP_MD_free(c->md);
    c->mdctx = NULL;
    c->md = NULL;
}

static int
ctx_init(struct chunk_id_ctx *c)
{
    c->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    c->mdctx = EVP_MD_CTX_new();
    if (!c->md || !c->mdctx) {
        ctx_release(c);
        return ORBIT_ECRYPTO;
    }
    return 0;
}

int
chunk_id_ctx_new(struct chunk_id_ctx **out)
{
    if (!out)
        return ORBIT_EINVAL;
    *out = NULL;
    struct chunk_id_ctx *c = starmap_calloc(1, sizeof *c);
    if (!c)
        return ORBIT_ENOMEM;
    int rc = ctx_init(c);
    if (rc != 0) {
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void
chunk_id_ctx_free(struct chunk_id_ctx *ctx)
{
    if (!ctx)
        return;
    ctx_release(ctx);
    free(ctx);
}

int
chunk_id_ctx_compute(struct chunk_id_ctx *ctx, const void *data, size_t len,
                     struct chunk_id *out)
{
    unsigned int n = 0;
    if (!ctx || !out || (!data && len))
        return ORBIT_EINVAL;
    if (EVP_DigestInit_ex2(ctx->mdctx, ctx->md, NULL) != 1 ||
        EVP_DigestUpdate(ctx->mdctx, data, len) != 1 ||
        EVP_DigestFinal_ex(ctx->mdctx, out->b, &n) != 1 || n != CHUNK_ID_LEN)
        return ORBIT_ECRYPTO;
    return 0;
}

int
chunk_id_compute(const void *data, size_t len, struct chunk_id *out)
{
    unsigned int n = 0;
    if (!out || (!data && len))
        return ORBIT_EINVAL;
    if (EVP_Digest(data, len, out->b, &n, EVP_sha256(), NULL) != 1 ||
        n != CHUNK_ID_LEN)
        return ORBIT_ECRYPTO;
    return 0;
}

bool
chunk_id_equal(const struct chunk_id *a, const struct chunk_id *b)
{
    return memcmp(a->b, b->b, CHUNK_ID_LEN) == 0;
}

void
chunk_id_to_hex(const struct chunk_id *id, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < CHUNK_ID_LEN; i++) {
        out[2 * i] = digits[id->b[i] >> 4];
        out[2 * i + 1] = digits[id->b[i] & 0xf];
    }
    out[CHUNK_ID_HEX_LEN] = '\0';
}

static int
hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
chunk_id_from_hex(const char *hex, size_t len, struct chunk_id *out)
{
    if (!hex || !out)
        return ORBIT_EINVAL;
    if (len != CHUNK_ID_HEX_LEN)
        return ORBIT_EFORMAT;
    for (size_t i = 0; i < CHUNK_ID_LEN; i++) {
        int hi = hex_val(hex[2 * i]), lo = hex_val(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return ORBIT_EFORMAT;
        out->b[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

int
chunk_id_stream_new(struct chunk_id_stream **out)
{
    if (!out)
        return ORBIT_EINVAL;
    *out = NULL;
    struct chunk_id_stream *s = starmap_calloc(1, sizeof *s);
    if (!s)
        return ORBIT_ENOMEM;
    int rc = ctx_init(&s->c);
    if (rc == 0)
        rc = chunk_id_stream_reset(s);
    if (rc != 0) {
        chunk_id_stream_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void
chunk_id_stream_free(struct chunk_id_stream *s)
{
    if (!s)
        return;
    ctx_release(&s->c);
    free(s);
}

int
chunk_id_stream_reset(struct chunk_id_stream *s)
{
    if (!s)
        return ORBIT_EINVAL;
    if (EVP_DigestInit_ex2(s->c.mdctx, s->c.md, NULL) != 1)
        return ORBIT_ECRYPTO;
    s->started = 1;
    return 0;
}

int
chunk_id_stream_update(struct chunk_id_stream *s, const void *data, size_t len)
{
    if (!s || (!data && len) || !s->started)
        return ORBIT_EINVAL;
    if (EVP_DigestUpdate(s->c.mdctx, data, len) != 1)
        return ORBIT_ECRYPTO;
    return 0;
}

int
chunk_id_stream_final(struct chunk_id_stream *s, struct chunk_id *out)
{
    unsigned int n = 0;
    if (!s || !out || !s->started)
        return ORBIT_EINVAL;
    s->started = 0;
    if (EVP_DigestFinal_ex(s->c.mdctx, out->b, &n) != 1 || n != CHUNK_ID_LEN)
        return ORBIT_ECRYPTO;
    return 0;
}

static int
digest_fd(int fd, struct chunk_id_stream *s, uint8_t *buf, size_t cap)
{
    for (;;) {
        ssize_t got = read(fd, buf, cap);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return orbit_err_from_errno(errno);
        if (got == 0)
            return 0;
        int rc = chunk_id_stream_update(s, buf, (size_t)got);
        if (rc != 0)
            return rc;
    }
}

int
chunk_id_file(const char *path, struct chunk_id *out)
{
    const size_t cap = (size_t)1 << 20;
    struct chunk_id_stream *s = NULL;
    uint8_t *buf = NULL;
    int fd = -1, rc;
    if (!path || !out)
        return ORBIT_EINVAL;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        rc = orbit_err_from_errno(errno);
        goto out;
    }
    buf = starmap_malloc(cap);
    rc = buf ? chunk_id_stream_new(&s) : ORBIT_ENOMEM;
    if (rc == 0)
        rc = digest_fd(fd, s, buf, cap);
    if (rc == 0)
        rc = chunk_id_stream_final(s, out);
out:
    if (fd >= 0)
        close(fd);
    free(buf);
    chunk_id_stream_free(s);
    return rc;
}
