/*
 * bulletin.c - the bounded ring of bulletins.
 *
 * Ids are consecutive, so the ring position of id k is known from the
 * oldest id: since_id queries start in the right place without a scan.
 */
#include "orbit/bulletin.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bulletin_internal.h"
#include "orbit/error.h"
#include "orbit/orbit_clock.h"

struct bulletin_board {
    pthread_mutex_t mu;
    struct bulletin *ring;
    size_t cap;
    size_t head; /* slot of the oldest */
    size_t count;
    uint64_t next_id;
    uint64_t evicted;
};

__attribute__((weak)) void *
bulletin_malloc(size_t size)
{
    return malloc(size);
}

__attribute__((weak)) void *
bulletin_calloc(size_t n, size_t size)
{
    return calloc(n, size);
}

static char *
bulletin_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = bulletin_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

static const char *const bulletin_sev_names[] = {"info", "warning", "error"};
static const char *const bulletin_src_names[] = {"job", "star"};

const char *
bulletin_severity_str(enum bulletin_severity s)
{
    return (unsigned)s <= BULLETIN_ERROR ? bulletin_sev_names[s] : "unknown";
}

int
bulletin_severity_parse(const char *name, enum bulletin_severity *out)
{
    for (unsigned i = 0; name && i <= BULLETIN_ERROR; i++)
        if (strcmp(name, bulletin_sev_names[i]) == 0) {
            *out = (enum bulletin_severity)i;
            return 0;
        }
    if (name && strcmp(name, "warn") == 0) {
        *out = BULLETIN_WARNING;
        return 0;
    }
    return ORBIT_EINVAL;
}

const char *
bulletin_source_str(enum bulletin_source s)
{
    return (unsigned)s <= BULLETIN_SOURCE_STAR ? bulletin_src_names[s]
                                               : "unknown";
}

int
bulletin_source_parse(const char *name, enum bulletin_source *out)
{
    for (unsigned i = 0; name && i <= BULLETIN_SOURCE_STAR; i++)
        if (strcmp(name, bulletin_src_names[i]) == 0) {
            *out = (enum bulletin_source)i;
            return 0;
        }
    return ORBIT_EINVAL;
}

void
bulletin_filter_init(struct bulletin_filter *f)
{
    memset(f, 0, sizeof *f);
    f->min_severity = BULLETIN_INFO;
    f->any_source = true;
}

/* Length of the UTF-8 sequence starting at s (1..4), or 0 if invalid. */
static size_t
bulletin_utf8_len(const unsigned char *s, size_t left)
{
    size_t n;
    unsigned c = s[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4;
    else
        return 0;
    if (n > left)
        return 0;
    for (size_t i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    /* Overlongs, surrogates and code points above U+10FFFF. */
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] > 0x9F) ||
        (c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] > 0x8F))
        return 0;
    return n;
}

char *
bulletin_utf8_copy(const char *s, size_t max)
{
    size_t len = strlen(s), out = 0;
    char *d = bulletin_malloc((len < max ? len : max) + 1);
    if (!d)
        return NULL;
    for (size_t i = 0; i < len;) {
        size_t n = bulletin_utf8_len((const unsigned char *)s + i, len - i);
        size_t take = n ? n : 1;
        if (out + take > max)
            break;
        if (n)
            memcpy(d + out, s + i, n);
        else
            d[out] = '?';
        out += take;
        i += take;
    }
    d[out] = '\0';
    return d;
}

static void
bulletin_release(struct bulletin *bl)
{
    free(bl->source_name);
    free(bl->category);
    free(bl->job_id);
    free(bl->message);
    memset(bl, 0, sizeof *bl);
}

void
bulletin_list_free(struct bulletin *list, size_t n)
{
    for (size_t i = 0; list && i < n; i++)
        bulletin_release(&list[i]);
    free(list);
}

int
bulletin_board_new(size_t capacity, struct bulletin_board **out)
{
    if (!out || capacity > BULLETIN_CAPACITY_MAX)
        return ORBIT_EINVAL;
    if (capacity == 0)
        capacity = BULLETIN_CAPACITY_DEFAULT;
    struct bulletin_board *b = bulletin_calloc(1, sizeof *b);
    if (!b)
        return ORBIT_ENOMEM;
    b->ring = bulletin_calloc(capacity, sizeof *b->ring);
    if (!b->ring || pthread_mutex_init(&b->mu, NULL) != 0) {
        free(b->ring);
        free(b);
        return ORBIT_ENOMEM;
    }
    b->cap = capacity;
    b->next_id = 1;
    *out = b;
    return 0;
}

void
bulletin_board_free(struct bulletin_board *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->count; i++)
        bulletin_release(&b->ring[(b->head + i) % b->cap]);
    free(b->ring);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

static int
bulletin_build(const struct bulletin_post *p, struct bulletin *bl)
{
    memset(bl, 0, sizeof *bl);
    bl->severity = p->severity;
    bl->source = p->source;
    bl->time_ms = p->time_ms ? p->time_ms : orbit_clock_realtime_ms(NULL);
    bl->source_name = bulletin_utf8_copy(p->source_name, BULLETIN_NAME_MAX);
    bl->category = bulletin_utf8_copy(p->category, BULLETIN_NAME_MAX);
    bl->job_id =
        bulletin_utf8_copy(p->job_id ? p->job_id : "", BULLETIN_NAME_MAX);
    bl->message = bulletin_utf8_copy(p->message, BULLETIN_MESSAGE_MAX);
    if (bl->source_name && bl->category && bl->job_id && bl->message)
        return 0;
    bulletin_release(bl);
    return ORBIT_ENOMEM;
}

int
bulletin_post(struct bulletin_board *b, const struct bulletin_post *p,
              uint64_t *id_out)
{
    struct bulletin bl;
    if (!b || !p || !p->source_name || !*p->source_name || !p->category ||
        !*p->category || !p->message ||
        (unsigned)p->severity > BULLETIN_ERROR ||
        (unsigned)p->source > BULLETIN_SOURCE_STAR)
        return ORBIT_EINVAL;
    int rc = bulletin_build(p, &bl);
    if (rc != 0)
        return rc;
    pthread_mutex_lock(&b->mu);
    if (b->count == b->cap) {
        bulletin_release(&b->ring[b->head]);
        b->head = (b->head + 1) % b->cap;
        b->count--;
        b->evicted++;
    }
    bl.id = b->next_id++;
    b->ring[(b->head + b->count) % b->cap] = bl;
    b->count++;
    pthread_mutex_unlock(&b->mu);
    if (id_out)
        *id_out = bl.id;
    return 0;
}

static bool
bulletin_matches(const struct bulletin *bl, const struct bulletin_filter *f)
{
    return bl->severity >= f->min_severity &&
           (f->any_source || bl->source == f->source) &&
           (!f->source_name || strcmp(bl->source_name, f->source_name) == 0) &&
           (!f->category || strcmp(bl->category, f->category) == 0) &&
           (!f->job_id || strcmp(bl->job_id, f->job_id) == 0);
}

static int
bulletin_copy(const struct bulletin *src, struct bulletin *dst)
{
    *dst = *src;
    dst->source_name = bulletin_strdup(src->source_name);
    dst->category = bulletin_strdup(src->category);
    dst->job_id = bulletin_strdup(src->job_id);
    dst->message = bulletin_strdup(src->message);
    if (dst->source_name && dst->category && dst->job_id && dst->message)
        return 0;
    bulletin_release(dst);
    return ORBIT_ENOMEM;
}

/* Ring offsets (from head) of the matches, newest last, at most limit of
 * them (the latest); the caller holds the lock. */
static size_t
bulletin_select(const struct bulletin_board *b, const struct bulletin_filter *f,
                size_t *offs)
{
    size_t start = 0, n = 0;
    uint64_t oldest = b->count ? b->ring[b->head].id : 0;
    if (b->count && f->since_id >= oldest)
        start = (size_t)(f->since_id - oldest + 1);
    size_t limit = f->limit ? f->limit : b->count;
    /* Walk backwards so a limit keeps the latest matches. */
    for (size_t i = b->count; i > start && n < limit; i--) {
        const struct bulletin *bl = &b->ring[(b->head + i - 1) % b->cap];
        if (bulletin_matches(bl, f))
            offs[n++] = i - 1;
    }
    for (size_t i = 0; i < n / 2; i++) {
        size_t t = offs[i];
        offs[i] = offs[n - 1 - i];
        offs[n - 1 - i] = t;
    }
    return n;
}

int
bulletin_query(struct bulletin_board *b, const struct bulletin_filter *f,
               struct bulletin **out, size_t *nout)
{
    struct bulletin_filter all;
    int rc = 0;
    if (!b || !out || !nout)
        return ORBIT_EINVAL;
    if (!f) {
        bulletin_filter_init(&all);
        f = &all;
    }
    *out = NULL;
    *nout = 0;
    size_t *offs = bulletin_malloc(b->cap * sizeof *offs);
    struct bulletin *list = bulletin_calloc(b->cap, sizeof *list);
    if (!offs || !list) {
        free(offs);
        free(list);
        return ORBIT_ENOMEM;
    }
    pthread_mutex_lock(&b->mu);
    size_t n = bulletin_select(b, f, offs), done = 0;
    for (; done < n && rc == 0; done++)
        rc = bulletin_copy(&b->ring[(b->head + offs[done]) % b->cap],
                           &list[done]);
    pthread_mutex_unlock(&b->mu);
    free(offs);
    if (rc != 0 || n == 0) {
        bulletin_list_free(list, rc ? done - 1 : 0);
        return rc;
    }
    *out = list;
    *nout = n;
    return 0;
}

int
bulletin_recent(struct bulletin_board *b, size_t n, struct bulletin **out,
                size_t *nout)
{
    struct bulletin_filter f;
    bulletin_filter_init(&f);
    f.limit = n;
    if (n == 0) {
        if (!out || !nout)
            return ORBIT_EINVAL;
        *out = NULL;
        *nout = 0;
        return 0;
    }
    return bulletin_query(b, &f, out, nout);
}

int
bulletin_since(struct bulletin_board *b, uint64_t since_id,
               struct bulletin **out, size_t *nout)
{
    struct bulletin_filter f;
    bulletin_filter_init(&f);
    f.since_id = since_id;
    return bulletin_query(b, &f, out, nout);
}

size_t
bulletin_count(struct bulletin_board *b)
{
    if (!b)
        return 0;
    pthread_mutex_lock(&b->mu);
    size_t n = b->count;
    pthread_mutex_unlock(&b->mu);
    return n;
}

size_t
bulletin_capacity(const struct bulletin_board *b)
{
    return b ? b->cap : 0;
}

uint64_t
bulletin_last_id(struct bulletin_board *b)
{
    if (!b)
        return 0;
    pthread_mutex_lock(&b->mu);
    uint64_t id = b->next_id - 1;
    pthread_mutex_unlock(&b->mu);
    return id;
}

uint64_t
bulletin_evicted(struct bulletin_board *b)
{
    if (!b)
        return 0;
    pthread_mutex_lock(&b->mu);
    uint64_t n = b->evicted;
    pthread_mutex_unlock(&b->mu);
    return n;
}

int
bulletin_check(struct bulletin_board *b)
{
    int rc = 0;
    if (!b)
        return ORBIT_EINVAL;
    pthread_mutex_lock(&b->mu);
    if (b->count > b->cap || b->head >= b->cap ||
        b->evicted + b->count != b->next_id - 1)
        rc = ORBIT_ECORRUPT;
    for (size_t i = 0; rc == 0 && i < b->count; i++) {
        const struct bulletin *bl = &b->ring[(b->head + i) % b->cap];
        if (bl->id != b->evicted + 1 + i || !bl->source_name || !bl->category ||
            !bl->job_id || !bl->message)
            rc = ORBIT_ECORRUPT;
    }
    pthread_mutex_unlock(&b->mu);
    return rc;
}

static void
bulletin_iso_time(uint64_t ms, char *buf, size_t cap)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&secs, &tm) ||
        strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm) == 0) {
        buf[0] = '\0';
        return;
    }
    size_t len = strlen(buf);
    snprintf(buf + len, cap - len, ".%03uZ", (unsigned)(ms % 1000));
}

struct json_t *
bulletin_to_json(const struct bulletin *bl)
{
    char when[40];
    if (!bl)
        return NULL;
    bulletin_iso_time(bl->time_ms, when, sizeof when);
    return json_pack("{s:I, s:I, s:s, s:s, s:s, s:s, s:s, s:o, s:s}", "id",
                     (json_int_t)bl->id, "time_ms", (json_int_t)bl->time_ms,
                     "time", when, "severity",
                     bulletin_severity_str(bl->severity), "source",
                     bulletin_source_str(bl->source), "source_name",
                     bl->source_name, "category", bl->category, "job_id",
                     bl->job_id[0] ? json_string(bl->job_id) : json_null(),
                     "message", bl->message);
}
