#include "orbit/dlq.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "orbit/error.h"
#include "res_alloc.h"
#include "res_lock.h"

/* The ring starts small so a large capacity costs nothing until used. */
#define DLQ_INITIAL_SLOTS 64u

struct dlq {
    struct dlq_entry *ring; /* slots entries, len live from head */
    size_t slots;           /* grows by doubling up to capacity */
    size_t capacity;
    size_t head;
    size_t len;
    uint64_t evicted;
    orbit_clock_fn now_ms;
    void *clock_ctx;
    pthread_mutex_t mu;
};

/* The i-th oldest live entry. */
static struct dlq_entry *
dlq_slot(const struct dlq *q, size_t i)
{
    return &q->ring[(q->head + i) % q->slots];
}

static const char *const dlq_reason_names[DLQ_REASON_COUNT] = {
    [DLQ_RETRIES_EXHAUSTED] = "retries_exhausted",
    [DLQ_PERMANENT_ERROR] = "permanent_error",
    [DLQ_CHECKSUM_MISMATCH] = "checksum_mismatch",
    [DLQ_SOURCE_MISSING] = "source_missing",
    [DLQ_DESTINATION_ERROR] = "destination_error",
    [DLQ_DESTINATION_FULL] = "destination_full",
    [DLQ_DATA_CORRUPTION] = "data_corruption",
};

const char *
dlq_reason_str(enum dlq_reason reason)
{
    if ((unsigned)reason >= DLQ_REASON_COUNT)
        return "unknown";
    return dlq_reason_names[reason];
}

int
dlq_reason_parse(const char *name, enum dlq_reason *out)
{
    if (!name || !out)
        return ORBIT_EINVAL;
    for (unsigned i = 0; i < DLQ_REASON_COUNT; i++) {
        if (strcmp(name, dlq_reason_names[i]) == 0) {
            *out = (enum dlq_reason)i;
            return ORBIT_OK;
        }
    }
    return ORBIT_EINVAL;
}

void
dlq_config_default(struct dlq_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->capacity = 1000;
}

int
dlq_new(const struct dlq_config *cfg, struct dlq **out)
{
    struct dlq_config c;
    struct dlq *q = NULL;

    if (!out)
        return ORBIT_EINVAL;
    *out = NULL;
    if (cfg)
        c = *cfg;
    else
        dlq_config_default(&c);
    if (c.capacity == 0 || c.capacity > DLQ_CAPACITY_MAX)
        return ORBIT_EINVAL;
    q = res_calloc(1, sizeof *q);
    if (!q)
        return ORBIT_ENOMEM;
    q->slots = c.capacity < DLQ_INITIAL_SLOTS ? c.capacity : DLQ_INITIAL_SLOTS;
    q->ring = res_calloc(q->slots, sizeof *q->ring);
    if (!q->ring || pthread_mutex_init(&q->mu, NULL) != 0) {
        free(q->ring);
        free(q);
        return ORBIT_ENOMEM;
    }
    q->capacity = c.capacity;
    q->now_ms = c.now_ms ? c.now_ms : orbit_clock_realtime_ms;
    q->clock_ctx = c.clock_ctx;
    *out = q;
    return ORBIT_OK;
}

static void
dlq_entry_release(struct dlq_entry *e)
{
    free(e->key);
    free(e->job_id);
    free(e->last_error);
    free(e->source_path);
    free(e->dest_path);
    memset(e, 0, sizeof *e);
}

void
dlq_entries_free(struct dlq_entry *entries, size_t n)
{
    if (!entries)
        return;
    for (size_t i = 0; i < n; i++)
        dlq_entry_release(&entries[i]);
    free(entries);
}

void
dlq_free(struct dlq *q)
{
    if (!q)
        return;
    for (size_t i = 0; i < q->len; i++)
        dlq_entry_release(dlq_slot(q, i));
    free(q->ring);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

/* A copy of s cut to at most max bytes, never inside a UTF-8 sequence. */
static char *
dlq_strdup_cut(const char *s, size_t max)
{
    size_t len;
    char *copy;

    if (!s)
        s = "";
    len = strnlen(s, max + 1);
    if (len > max) {
        len = max;
        while (len > 0 && ((unsigned char)s[len] & 0xC0u) == 0x80u)
            len--;
    }
    copy = res_malloc(len + 1);
    if (!copy)
        return NULL;
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

static int
dlq_failure_validate(const struct dlq_failure *f)
{
    const char *bounded[] = {f->key, f->job_id, f->source_path, f->dest_path};

    if (!f->key || !f->key[0] || !f->job_id || !f->job_id[0] ||
        (unsigned)f->reason >= DLQ_REASON_COUNT || f->error_code > 0)
        return ORBIT_EINVAL;
    for (size_t i = 0; i < sizeof bounded / sizeof bounded[0]; i++)
        if (bounded[i] &&
            strnlen(bounded[i], DLQ_FIELD_MAX + 1) > DLQ_FIELD_MAX)
            return ORBIT_ETOOBIG;
    if (f->first_failure_ms != 0 && f->last_failure_ms != 0 &&
        f->first_failure_ms > f->last_failure_ms)
        return ORBIT_EINVAL;
    return ORBIT_OK;
}

/* Builds an owned entry from f; times already resolved by the caller. */
static int
dlq_entry_build(const struct dlq_failure *f, struct dlq_entry *e)
{
    memset(e, 0, sizeof *e);
    e->key = dlq_strdup_cut(f->key, DLQ_FIELD_MAX);
    e->job_id = dlq_strdup_cut(f->job_id, DLQ_FIELD_MAX);
    e->last_error = dlq_strdup_cut(f->last_error, DLQ_ERROR_TEXT_MAX);
    e->source_path = dlq_strdup_cut(f->source_path, DLQ_FIELD_MAX);
    e->dest_path = dlq_strdup_cut(f->dest_path, DLQ_FIELD_MAX);
    if (!e->key || !e->job_id || !e->last_error || !e->source_path ||
        !e->dest_path) {
        dlq_entry_release(e);
        return ORBIT_ENOMEM;
    }
    e->reason = f->reason;
    e->error_code = f->error_code;
    e->attempts = f->attempts;
    e->first_failure_ms = f->first_failure_ms;
    e->last_failure_ms = f->last_failure_ms;
    return ORBIT_OK;
}

/* Doubles the ring, oldest entry first at index 0. */
static int
dlq_grow(struct dlq *q)
{
    size_t slots = q->slots * 2 < q->capacity ? q->slots * 2 : q->capacity;
    struct dlq_entry *ring = res_calloc(slots, sizeof *ring);

    if (!ring)
        return ORBIT_ENOMEM;
    for (size_t i = 0; i < q->len; i++)
        ring[i] = *dlq_slot(q, i);
    free(q->ring);
    q->ring = ring;
    q->slots = slots;
    q->head = 0;
    return ORBIT_OK;
}

/* Ensures a free slot: grows below capacity, evicts the oldest at it. */
static int
dlq_make_room(struct dlq *q)
{
    if (q->len < q->slots)
        return ORBIT_OK;
    if (q->slots < q->capacity)
        return dlq_grow(q);
    dlq_entry_release(dlq_slot(q, 0));
    q->head = (q->head + 1) % q->slots;
    q->len--;
    q->evicted++;
    return ORBIT_OK;
}

int
dlq_push(struct dlq *q, const struct dlq_failure *f)
{
    struct dlq_failure resolved;
    struct dlq_entry e;
    int rc;

    if (!q || !f)
        return ORBIT_EINVAL;
    rc = dlq_failure_validate(f);
    if (rc < 0)
        return rc;
    resolved = *f;
    if (resolved.last_failure_ms == 0)
        resolved.last_failure_ms = q->now_ms(q->clock_ctx);
    if (resolved.first_failure_ms == 0 ||
        resolved.first_failure_ms > resolved.last_failure_ms)
        resolved.first_failure_ms = resolved.last_failure_ms;
    rc = dlq_entry_build(&resolved, &e);
    if (rc < 0)
        return rc;
    res_lock(&q->mu);
    rc = dlq_make_room(q);
    if (rc == ORBIT_OK) {
        *dlq_slot(q, q->len) = e;
        q->len++;
    }
    res_unlock(&q->mu);
    if (rc < 0)
        dlq_entry_release(&e);
    return rc;
}

int
dlq_drain(struct dlq *q, struct dlq_entry **out, size_t *n_out)
{
    struct dlq_entry *arr = NULL;

    if (!q || !out || !n_out)
        return ORBIT_EINVAL;
    *out = NULL;
    *n_out = 0;
    res_lock(&q->mu);
    if (q->len > 0) {
        arr = res_calloc(q->len, sizeof *arr);
        if (!arr) {
            res_unlock(&q->mu);
            return ORBIT_ENOMEM;
        }
        for (size_t i = 0; i < q->len; i++) {
            struct dlq_entry *slot = dlq_slot(q, i);
            arr[i] = *slot;
            memset(slot, 0, sizeof *slot);
        }
    }
    *out = arr;
    *n_out = q->len;
    q->head = 0;
    q->len = 0;
    res_unlock(&q->mu);
    return ORBIT_OK;
}

static int
dlq_entry_copy(const struct dlq_entry *src, struct dlq_entry *dst)
{
    const struct dlq_failure f = {
        .key = src->key,
        .job_id = src->job_id,
        .reason = src->reason,
        .last_error = src->last_error,
        .error_code = src->error_code,
        .attempts = src->attempts,
        .first_failure_ms = src->first_failure_ms,
        .last_failure_ms = src->last_failure_ms,
        .source_path = src->source_path,
        .dest_path = src->dest_path,
    };
    return dlq_entry_build(&f, dst);
}

/* Counts live entries of job_id; under the lock. */
static size_t
dlq_count_job_locked(const struct dlq *q, const char *job_id)
{
    size_t n = 0;

    for (size_t i = 0; i < q->len; i++)
        if (strcmp(dlq_slot(q, i)->job_id, job_id) == 0)
            n++;
    return n;
}

static int
dlq_copy_job_locked(const struct dlq *q, const char *job_id,
                    struct dlq_entry *arr, size_t n)
{
    size_t k = 0;

    for (size_t i = 0; i < q->len && k < n; i++) {
        const struct dlq_entry *e = dlq_slot(q, i);
        if (strcmp(e->job_id, job_id) != 0)
            continue;
        if (dlq_entry_copy(e, &arr[k]) < 0) {
            for (size_t j = 0; j < k; j++)
                dlq_entry_release(&arr[j]);
            return ORBIT_ENOMEM;
        }
        k++;
    }
    return ORBIT_OK;
}

int
dlq_query_job(const struct dlq *q, const char *job_id, struct dlq_entry **out,
              size_t *n_out)
{
    struct dlq_entry *arr = NULL;
    size_t n;
    int rc = ORBIT_OK;

    if (!q || !job_id || !out || !n_out)
        return ORBIT_EINVAL;
    *out = NULL;
    *n_out = 0;
    res_lock(&q->mu);
    n = dlq_count_job_locked(q, job_id);
    if (n == 0)
        goto out;
    arr = res_calloc(n, sizeof *arr);
    rc = arr ? dlq_copy_job_locked(q, job_id, arr, n) : ORBIT_ENOMEM;
    if (rc < 0) {
        free(arr);
        goto out;
    }
    *out = arr;
    *n_out = n;
out:
    res_unlock(&q->mu);
    return rc;
}

size_t
dlq_count(const struct dlq *q)
{
    size_t n;

    if (!q)
        return 0;
    res_lock(&q->mu);
    n = q->len;
    res_unlock(&q->mu);
    return n;
}

size_t
dlq_count_job(const struct dlq *q, const char *job_id)
{
    size_t n;

    if (!q || !job_id)
        return 0;
    res_lock(&q->mu);
    n = dlq_count_job_locked(q, job_id);
    res_unlock(&q->mu);
    return n;
}

uint64_t
dlq_evicted(const struct dlq *q)
{
    uint64_t n;

    if (!q)
        return 0;
    res_lock(&q->mu);
    n = q->evicted;
    res_unlock(&q->mu);
    return n;
}

size_t
dlq_capacity(const struct dlq *q)
{
    return q ? q->capacity : 0;
}

static bool
dlq_entry_valid(const struct dlq_entry *e)
{
    return e->key && e->key[0] && e->job_id && e->job_id[0] && e->last_error &&
           e->source_path && e->dest_path &&
           (unsigned)e->reason < DLQ_REASON_COUNT && e->error_code <= 0 &&
           e->first_failure_ms <= e->last_failure_ms &&
           strlen(e->last_error) <= DLQ_ERROR_TEXT_MAX;
}

static bool
dlq_slot_empty(const struct dlq_entry *e)
{
    return !e->key && !e->job_id && !e->last_error && !e->source_path &&
           !e->dest_path;
}

int
dlq_check(const struct dlq *q)
{
    int rc = ORBIT_OK;

    if (!q || !q->ring || !q->now_ms || q->capacity == 0)
        return ORBIT_ECORRUPT;
    res_lock(&q->mu);
    if (q->slots == 0 || q->slots > q->capacity || q->len > q->slots ||
        q->head >= q->slots)
        rc = ORBIT_ECORRUPT;
    for (size_t i = 0; rc == ORBIT_OK && i < q->slots; i++) {
        size_t age = (i + q->slots - q->head) % q->slots;
        const struct dlq_entry *e = &q->ring[i];
        bool live = age < q->len;
        if (live ? !dlq_entry_valid(e) : !dlq_slot_empty(e))
            rc = ORBIT_ECORRUPT;
    }
    res_unlock(&q->mu);
    return rc;
}
