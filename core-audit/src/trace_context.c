/*
 * trace_context.c - W3C traceparent parsing, formatting and id generation.
 */
#include "orbit/trace.h"

#include "orbit/error.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

static int
hex_val(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1; /* uppercase is invalid in traceparent */
}

/* n bytes from 2n lowercase hex digits at s. */
static bool
hex_decode(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const int hi = hex_val(s[2 * i]);
        const int lo = hex_val(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static void
hex_encode(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0f];
    }
    out[2 * n] = '\0';
}

static bool
all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

int
trace_parse(const char *traceparent, struct trace_ctx *out)
{
    if (!traceparent || !out)
        return ORBIT_EINVAL;
    const char *s = traceparent;
    const size_t len = strnlen(s, TRACE_PARENT_LEN + 1);
    uint8_t version;
    if (len < TRACE_PARENT_LEN || !hex_decode(s, &version, 1))
        return ORBIT_EFORMAT;
    if (version == 0xff)
        return ORBIT_EVERSION;
    if (version == 0 && len != TRACE_PARENT_LEN)
        return ORBIT_EFORMAT;
    if (version != 0 && len > TRACE_PARENT_LEN && s[TRACE_PARENT_LEN] != '-')
        return ORBIT_EFORMAT;
    if (s[2] != '-' || s[35] != '-' || s[52] != '-')
        return ORBIT_EFORMAT;
    struct trace_ctx c;
    if (!hex_decode(s + 3, c.trace_id, TRACE_ID_LEN) ||
        !hex_decode(s + 36, c.span_id, TRACE_SPAN_LEN) ||
        !hex_decode(s + 53, &c.flags, 1))
        return ORBIT_EFORMAT;
    if (all_zero(c.trace_id, TRACE_ID_LEN) ||
        all_zero(c.span_id, TRACE_SPAN_LEN))
        return ORBIT_EFORMAT;
    *out = c;
    return 0;
}

int
trace_format(const struct trace_ctx *ctx, char *buf, size_t cap)
{
    if (!ctx || !buf || cap < TRACE_PARENT_LEN + 1)
        return ORBIT_EINVAL;
    memcpy(buf, "00-", 3);
    hex_encode(ctx->trace_id, TRACE_ID_LEN, buf + 3);
    buf[35] = '-';
    hex_encode(ctx->span_id, TRACE_SPAN_LEN, buf + 36);
    buf[52] = '-';
    hex_encode(&ctx->flags, 1, buf + 53);
    return 0;
}

/* n random bytes, never all zero (an all-zero id is invalid). */
static int
random_id(uint8_t *p, size_t n)
{
    do {
        size_t got = 0;
        while (got < n) {
            const ssize_t r = getrandom(p + got, n - got, 0);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0)
                return ORBIT_EIO;
            got += (size_t)r;
        }
    } while (all_zero(p, n));
    return 0;
}

int
trace_new(uint8_t flags, struct trace_ctx *out)
{
    if (!out)
        return ORBIT_EINVAL;
    struct trace_ctx c = {.flags = flags};
    int rc = random_id(c.trace_id, TRACE_ID_LEN);
    if (rc == 0)
        rc = random_id(c.span_id, TRACE_SPAN_LEN);
    if (rc == 0)
        *out = c;
    return rc;
}

int
trace_child(const struct trace_ctx *parent, struct trace_ctx *out)
{
    if (!parent || !out)
        return ORBIT_EINVAL;
    struct trace_ctx c = *parent;
    const int rc = random_id(c.span_id, TRACE_SPAN_LEN);
    if (rc == 0)
        *out = c;
    return rc;
}

int
trace_id_hex(const struct trace_ctx *ctx, char *buf, size_t cap)
{
    if (!ctx || !buf || cap < 2 * TRACE_ID_LEN + 1)
        return ORBIT_EINVAL;
    hex_encode(ctx->trace_id, TRACE_ID_LEN, buf);
    return 0;
}

int
trace_span_hex(const struct trace_ctx *ctx, char *buf, size_t cap)
{
    if (!ctx || !buf || cap < 2 * TRACE_SPAN_LEN + 1)
        return ORBIT_EINVAL;
    hex_encode(ctx->span_id, TRACE_SPAN_LEN, buf);
    return 0;
}

bool
trace_sampled(const struct trace_ctx *ctx)
{
    return ctx && (ctx->flags & TRACE_FLAG_SAMPLED);
}
