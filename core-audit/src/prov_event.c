/*
 * prov_event.c - the provenance event object, type names and timestamps.
 */
#include "orbit/provenance.h"

#include "audit_check.h"

#include "orbit/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct prov_ctx_entry {
    char *key;
    char *value;
};

struct prov_event {
    enum prov_event_type type;
    int64_t ts_us;
    char *fields[PROV_FIELD_COUNT];
    uint64_t bytes;
    uint64_t duration_ms;
    bool has_bytes;
    bool has_duration;
    size_t n_ctx;
    struct prov_ctx_entry ctx[PROV_MAX_CONTEXT];
};

static const char *const type_names[PROV_EVENT_TYPE_COUNT] = {
    [PROV_CHUNK_CREATED] = "chunk_created",
    [PROV_CHUNK_DEDUPLICATED] = "chunk_deduplicated",
    [PROV_CHUNK_TRANSFERRED] = "chunk_transferred",
    [PROV_CHUNK_VERIFIED] = "chunk_verified",
    [PROV_CHUNK_HEALED] = "chunk_healed",
    [PROV_CHUNK_PENALIZED] = "chunk_penalized",
    [PROV_CHUNK_DEAD_LETTERED] = "chunk_dead_lettered",
    [PROV_CHUNK_PACKED] = "chunk_packed",
    [PROV_FILE_RENAMED] = "file_renamed",
    [PROV_FILE_SKIPPED] = "file_skipped",
    [PROV_FILE_STARTED] = "file_started",
    [PROV_FILE_COMPLETED] = "file_completed",
    [PROV_JOB_CREATED] = "job_created",
    [PROV_JOB_RESUMED] = "job_resumed",
    [PROV_JOB_COMPLETED] = "job_completed",
    [PROV_JOB_FAILED] = "job_failed",
    [PROV_STAR_REGISTERED] = "star_registered",
    [PROV_STAR_SCHEDULED] = "star_scheduled",
    [PROV_STAR_DRAINING] = "star_draining",
    [PROV_STAR_DEREGISTERED] = "star_deregistered",
};

static const char *const field_names[PROV_FIELD_COUNT] = {
    [PROV_F_JOB_ID] = "job_id",
    [PROV_F_CHUNK_HASH] = "chunk_hash",
    [PROV_F_SOURCE_STAR] = "source_star",
    [PROV_F_SOURCE_PATH] = "source_path",
    [PROV_F_DEST_STAR] = "dest_star",
    [PROV_F_DEST_PATH] = "dest_path",
    [PROV_F_ERROR] = "error",
    [PROV_F_TRACE_ID] = "trace_id",
};

const char *
prov_event_type_str(enum prov_event_type type)
{
    if ((unsigned)type >= PROV_EVENT_TYPE_COUNT)
        return "unknown";
    return type_names[type];
}

int
prov_event_type_parse(const char *name, enum prov_event_type *out)
{
    if (!name || !out)
        return ORBIT_EINVAL;
    for (unsigned i = 0; i < PROV_EVENT_TYPE_COUNT; i++) {
        if (strcmp(name, type_names[i]) == 0) {
            *out = (enum prov_event_type)i;
            return 0;
        }
    }
    return ORBIT_EINVAL;
}

const char *
prov_field_name(enum prov_field field)
{
    if ((unsigned)field >= PROV_FIELD_COUNT)
        return "unknown";
    return field_names[field];
}

/* ---- timestamps ---- */

int64_t
prov_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Hinnant's method). */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const int64_t yoe = y - era * 400;
    const int64_t mp = (m + 9) % 12;
    const int64_t doy = (153 * mp + 2) / 5 + d - 1;
    const int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static unsigned
days_in_month(int64_t y, unsigned m)
{
    static const unsigned mdays[12] = {31, 28, 31, 30, 31, 30,
                                       31, 31, 30, 31, 30, 31};
    const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : mdays[m - 1];
}

int
prov_ts_format(int64_t ts_us, char *buf, size_t cap)
{
    if (!buf || cap < PROV_TS_LEN + 1)
        return ORBIT_EINVAL;
    int64_t secs = ts_us / 1000000;
    int64_t frac = ts_us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        secs -= 1;
    }
    const time_t t = (time_t)secs;
    struct tm tm;
    if (!gmtime_r(&t, &tm) || tm.tm_year < -1900 || tm.tm_year > 9999 - 1900)
        return ORBIT_EINVAL;
    const int n = snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ",
                           tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                           tm.tm_hour, tm.tm_min, tm.tm_sec, (int)frac);
    return n == PROV_TS_LEN ? 0 : ORBIT_EINVAL;
}

/* Read exactly n decimal digits at *p into *out and advance *p. */
static bool
read_digits(const char **p, unsigned n, unsigned *out)
{
    unsigned v = 0;
    for (unsigned i = 0; i < n; i++) {
        const char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (unsigned)(c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static bool
expect(const char **p, char c)
{
    if (**p != c)
        return false;
    (*p)++;
    return true;
}

/* ".f{1,9}" if present: the microseconds it holds (extra digits dropped). */
static bool
read_fraction(const char **p, int64_t *us)
{
    *us = 0;
    if (**p != '.')
        return true;
    (*p)++;
    unsigned n = 0;
    int64_t scale = 100000;
    while (**p >= '0' && **p <= '9') {
        if (++n > 9)
            return false;
        *us += (**p - '0') * scale;
        scale /= 10;
        (*p)++;
    }
    return n > 0;
}

/* "Z" or "+hh:mm" / "-hh:mm": the offset in seconds east of UTC. */
static bool
read_offset(const char **p, int64_t *off)
{
    *off = 0;
    if (**p == 'Z' || **p == 'z') {
        (*p)++;
        return true;
    }
    const char sign = **p;
    if (sign != '+' && sign != '-')
        return false;
    (*p)++;
    unsigned hh, mm;
    if (!read_digits(p, 2, &hh) || !expect(p, ':') || !read_digits(p, 2, &mm))
        return false;
    if (hh > 23 || mm > 59)
        return false;
    *off = (int64_t)(hh * 3600 + mm * 60) * (sign == '-' ? -1 : 1);
    return true;
}

int
prov_ts_parse(const char *text, int64_t *ts_us)
{
    if (!text || !ts_us)
        return ORBIT_EINVAL;
    const char *p = text;
    unsigned y, mo, d, h, mi, s;
    int64_t frac, off;
    if (!read_digits(&p, 4, &y) || !expect(&p, '-') ||
        !read_digits(&p, 2, &mo) || !expect(&p, '-') || !read_digits(&p, 2, &d))
        return ORBIT_EINVAL;
    if (*p != 'T' && *p != 't')
        return ORBIT_EINVAL;
    p++;
    if (!read_digits(&p, 2, &h) || !expect(&p, ':') ||
        !read_digits(&p, 2, &mi) || !expect(&p, ':') ||
        !read_digits(&p, 2, &s) || !read_fraction(&p, &frac) ||
        !read_offset(&p, &off) || *p != '\0')
        return ORBIT_EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 ||
        mi > 59 || s > 60)
        return ORBIT_EINVAL;
    const int64_t secs = days_from_civil(y, mo, d) * 86400 +
                         (int64_t)(h * 3600 + mi * 60 + s) - off;
    *ts_us = secs * 1000000 + frac;
    return 0;
}

/* ---- strings ---- */

size_t
prov_utf8_seq_len(const unsigned char *s, size_t n)
{
    const unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        len = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        len = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        len = 4;
    else
        return 0;
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F;
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F;
    if (n < len || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return len;
}

/*
 * A copy of s (at most max bytes) as valid UTF-8: each byte that starts no
 * valid sequence becomes U+FFFD, so odd file names still reach the log.
 */
static int
dup_utf8(const char *s, size_t max, char **out)
{
    const size_t n = strlen(s);
    if (n > max)
        return ORBIT_ETOOBIG;
    char *copy = malloc(n * 3 + 1);
    if (!copy)
        return ORBIT_ENOMEM;
    const unsigned char *u = (const unsigned char *)s;
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        const size_t len = prov_utf8_seq_len(u + i, n - i);
        if (len == 0) {
            memcpy(copy + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i++;
        } else {
            memcpy(copy + o, s + i, len);
            o += len;
            i += len;
        }
    }
    copy[o] = '\0';
    *out = copy;
    return 0;
}

/* ---- the event ---- */

int
prov_event_new(enum prov_event_type type, const char *job_id,
               struct prov_event **out)
{
    if (!out || (unsigned)type >= PROV_EVENT_TYPE_COUNT)
        return ORBIT_EINVAL;
    struct prov_event *ev = calloc(1, sizeof *ev);
    if (!ev)
        return ORBIT_ENOMEM;
    ev->type = type;
    ev->ts_us = prov_now_us();
    const int rc = prov_event_set(ev, PROV_F_JOB_ID, job_id);
    if (rc < 0) {
        prov_event_free(ev);
        return rc;
    }
    *out = ev;
    return 0;
}

void
prov_event_free(struct prov_event *ev)
{
    if (!ev)
        return;
    for (size_t i = 0; i < PROV_FIELD_COUNT; i++)
        free(ev->fields[i]);
    for (size_t i = 0; i < ev->n_ctx; i++) {
        free(ev->ctx[i].key);
        free(ev->ctx[i].value);
    }
    free(ev);
}

int
prov_event_clone(const struct prov_event *ev, struct prov_event **out)
{
    if (!ev || !out)
        return ORBIT_EINVAL;
    struct prov_event *c = NULL;
    int rc = prov_event_new(ev->type, NULL, &c);
    if (rc < 0)
        return rc;
    c->ts_us = ev->ts_us;
    c->bytes = ev->bytes;
    c->has_bytes = ev->has_bytes;
    c->duration_ms = ev->duration_ms;
    c->has_duration = ev->has_duration;
    for (size_t i = 0; i < PROV_FIELD_COUNT && rc == 0; i++)
        rc = prov_event_set(c, (enum prov_field)i, ev->fields[i]);
    for (size_t i = 0; i < ev->n_ctx && rc == 0; i++)
        rc = prov_event_context_set(c, ev->ctx[i].key, ev->ctx[i].value);
    if (rc < 0) {
        prov_event_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

enum prov_event_type
prov_event_type(const struct prov_event *ev)
{
    return ev->type;
}

int64_t
prov_event_ts(const struct prov_event *ev)
{
    return ev->ts_us;
}

void
prov_event_set_ts(struct prov_event *ev, int64_t ts_us)
{
    ev->ts_us = ts_us;
}

int
prov_event_set(struct prov_event *ev, enum prov_field field, const char *value)
{
    if (!ev || (unsigned)field >= PROV_FIELD_COUNT)
        return ORBIT_EINVAL;
    char *copy = NULL;
    if (value && *value) {
        const int rc = dup_utf8(value, PROV_MAX_FIELD, &copy);
        if (rc < 0)
            return rc;
    }
    free(ev->fields[field]);
    ev->fields[field] = copy;
    return 0;
}

const char *
prov_event_get(const struct prov_event *ev, enum prov_field field)
{
    if (!ev || (unsigned)field >= PROV_FIELD_COUNT)
        return NULL;
    return ev->fields[field];
}

int
prov_event_set_bytes(struct prov_event *ev, uint64_t bytes)
{
    if (!ev || bytes > INT64_MAX)
        return ORBIT_EINVAL;
    ev->bytes = bytes;
    ev->has_bytes = true;
    return 0;
}

void
prov_event_clear_bytes(struct prov_event *ev)
{
    ev->has_bytes = false;
}

bool
prov_event_bytes(const struct prov_event *ev, uint64_t *out)
{
    if (ev->has_bytes && out)
        *out = ev->bytes;
    return ev->has_bytes;
}

int
prov_event_set_duration_ms(struct prov_event *ev, uint64_t ms)
{
    if (!ev || ms > INT64_MAX)
        return ORBIT_EINVAL;
    ev->duration_ms = ms;
    ev->has_duration = true;
    return 0;
}

void
prov_event_clear_duration(struct prov_event *ev)
{
    ev->has_duration = false;
}

bool
prov_event_duration_ms(const struct prov_event *ev, uint64_t *out)
{
    if (ev->has_duration && out)
        *out = ev->duration_ms;
    return ev->has_duration;
}

/* ---- context map ---- */

static struct prov_ctx_entry *
ctx_find(const struct prov_event *ev, const char *key, size_t *index)
{
    for (size_t i = 0; i < ev->n_ctx; i++) {
        if (strcmp(ev->ctx[i].key, key) == 0) {
            *index = i;
            return (struct prov_ctx_entry *)&ev->ctx[i];
        }
    }
    return NULL;
}

static void
ctx_remove(struct prov_event *ev, size_t i)
{
    free(ev->ctx[i].key);
    free(ev->ctx[i].value);
    memmove(&ev->ctx[i], &ev->ctx[i + 1],
            (ev->n_ctx - i - 1) * sizeof ev->ctx[0]);
    ev->n_ctx--;
}

int
prov_event_context_set(struct prov_event *ev, const char *key,
                       const char *value)
{
    if (!ev || !key || !*key)
        return ORBIT_EINVAL;
    size_t i = 0;
    struct prov_ctx_entry *e = ctx_find(ev, key, &i);
    if (!value) {
        if (e)
            ctx_remove(ev, i);
        return 0;
    }
    char *v = NULL;
    int rc = dup_utf8(value, PROV_MAX_CONTEXT_VAL, &v);
    if (rc < 0)
        return rc;
    if (e) {
        free(e->value);
        e->value = v;
        return 0;
    }
    char *k = NULL;
    if (ev->n_ctx == PROV_MAX_CONTEXT)
        rc = ORBIT_EFULL;
    else
        rc = dup_utf8(key, PROV_MAX_CONTEXT_KEY, &k);
    if (rc < 0) {
        free(v);
        return rc;
    }
    ev->ctx[ev->n_ctx].key = k;
    ev->ctx[ev->n_ctx].value = v;
    ev->n_ctx++;
    return 0;
}

const char *
prov_event_context_get(const struct prov_event *ev, const char *key)
{
    size_t i = 0;
    if (!ev || !key)
        return NULL;
    const struct prov_ctx_entry *e = ctx_find(ev, key, &i);
    return e ? e->value : NULL;
}

size_t
prov_event_context_count(const struct prov_event *ev)
{
    return ev ? ev->n_ctx : 0;
}

int
prov_event_context_at(const struct prov_event *ev, size_t i, const char **key,
                      const char **value)
{
    if (!ev || !key || !value)
        return ORBIT_EINVAL;
    if (i >= ev->n_ctx)
        return ORBIT_ENOENT;
    *key = ev->ctx[i].key;
    *value = ev->ctx[i].value;
    return 0;
}

/* ---- invariants ---- */

static bool
utf8_valid(const char *s, size_t max)
{
    const size_t n = strlen(s);
    return n > 0 && n <= max && prov_utf8_valid(s);
}

bool
prov_utf8_valid(const char *s)
{
    const size_t n = strlen(s);
    for (size_t i = 0; i < n;) {
        const size_t len =
            prov_utf8_seq_len((const unsigned char *)s + i, n - i);
        if (len == 0)
            return false;
        i += len;
    }
    return true;
}

int
prov_event_check(const struct prov_event *ev)
{
    /* U+FFFD replacement may triple a string's length. */
    bool ok = ev && (unsigned)ev->type < PROV_EVENT_TYPE_COUNT &&
              ev->n_ctx <= PROV_MAX_CONTEXT &&
              (!ev->has_bytes || ev->bytes <= INT64_MAX) &&
              (!ev->has_duration || ev->duration_ms <= INT64_MAX);
    for (size_t f = 0; ok && f < PROV_FIELD_COUNT; f++)
        ok = !ev->fields[f] || utf8_valid(ev->fields[f], 3 * PROV_MAX_FIELD);
    for (size_t i = 0; ok && i < ev->n_ctx; i++) {
        ok = ev->ctx[i].key && ev->ctx[i].value &&
             utf8_valid(ev->ctx[i].key, 3 * PROV_MAX_CONTEXT_KEY) &&
             (!*ev->ctx[i].value ||
              utf8_valid(ev->ctx[i].value, 3 * PROV_MAX_CONTEXT_VAL));
        for (size_t j = 0; ok && j < i; j++)
            ok = strcmp(ev->ctx[i].key, ev->ctx[j].key) != 0;
    }
    return ok ? 0 : ORBIT_ECORRUPT;
}
