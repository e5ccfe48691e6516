/*
 * api_query.c - the query-string parser of the HTTP API, kept free of
 * libevent so it can be fuzzed alone.
 */
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "orbit/api.h"
#include "orbit/error.h"

static int
api_hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes src[0..len) into dst (never longer than the input). */
static int
api_decode(const char *src, size_t len, char *dst, size_t *outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (len - i < 3)
                return ORBIT_EFORMAT;
            int hi = api_hex(src[i + 1]), lo = api_hex(src[i + 2]);
            if (hi < 0 || lo < 0)
                return ORBIT_EFORMAT;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0')
            return ORBIT_EFORMAT;
        dst[o++] = c;
    }
    dst[o] = '\0';
    *outlen = o;
    return 0;
}

/* Decodes one "key[=value]" pair of length len into the buffer at *pos. */
static int
api_query_pair(struct api_query *q, const char *pair, size_t len, size_t *pos)
{
    const char *eq = memchr(pair, '=', len);
    size_t klen = eq ? (size_t)(eq - pair) : len;
    size_t n;
    if (klen == 0)
        return ORBIT_EFORMAT;
    if (q->n == API_QUERY_MAX_PARAMS)
        return ORBIT_ETOOBIG;
    char *key = q->buf + *pos;
    int rc = api_decode(pair, klen, key, &n);
    if (rc != 0)
        return rc;
    *pos += n + 1;
    char *value = q->buf + *pos;
    value[0] = '\0';
    n = 0;
    if (eq && (rc = api_decode(eq + 1, len - klen - 1, value, &n)) != 0)
        return rc;
    *pos += n + 1;
    if (api_query_get(q, key))
        return ORBIT_EEXIST;
    q->params[q->n].key = key;
    q->params[q->n].value = value;
    q->n++;
    return 0;
}

int
api_query_parse(const char *qs, size_t len, struct api_query *q)
{
    if (!q || (!qs && len))
        return ORBIT_EINVAL;
    memset(q, 0, sizeof *q);
    if (len > API_QUERY_MAX_LEN)
        return ORBIT_ETOOBIG;
    /* Each pair adds at most two NULs to its own length. */
    q->buf = api_malloc(2 * len + 2);
    if (!q->buf)
        return ORBIT_ENOMEM;
    size_t pos = 0, start = 0;
    int rc = 0;
    for (size_t i = 0; i <= len && rc == 0; i++) {
        if (i < len && qs[i] != '&')
            continue;
        if (i > start)
            rc = api_query_pair(q, qs + start, i - start, &pos);
        start = i + 1;
    }
    if (rc != 0)
        api_query_release(q);
    return rc;
}

void
api_query_release(struct api_query *q)
{
    if (!q)
        return;
    free(q->buf);
    memset(q, 0, sizeof *q);
}

const char *
api_query_get(const struct api_query *q, const char *key)
{
    for (size_t i = 0; q && key && i < q->n; i++)
        if (strcmp(q->params[i].key, key) == 0)
            return q->params[i].value;
    return NULL;
}
