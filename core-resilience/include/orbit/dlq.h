/*
 * orbit/dlq.h - the in-memory dead-letter queue: items that will not be
 * retried, with why.
 *
 * An item whose penalties are exhausted, or that hit a permanent error, is
 * pushed here so the rest of the job can finish; the job's final report
 * drains or queries the queue. The queue is bounded: a push into a full
 * queue evicts the oldest entry and counts the eviction (the journal keeps
 * the durable record). Memory grows with use, so a large capacity costs
 * nothing until it fills.
 *
 * Ownership: dlq_push copies every string of the failure it is given.
 * Entries handed out by dlq_drain and dlq_query_job belong to the caller,
 * who frees them with dlq_entries_free. Every string of an entry is
 * non-NULL (absent optional fields are "").
 * Time: failure times are wall-clock milliseconds since the epoch; a zero
 * time in a pushed failure is stamped from the configured clock
 * (CLOCK_REALTIME by default); a first failure time later than that stamp
 * is clamped to it.
 * Errors: ORBIT_EINVAL (missing key or job id, unknown reason, positive
 * error code, first failure after last), ORBIT_ETOOBIG (key, job id or path
 * longer than DLQ_FIELD_MAX), ORBIT_ENOMEM. Error text longer than
 * DLQ_ERROR_TEXT_MAX is truncated (on a UTF-8 boundary), not refused.
 * Thread-safety: every function is thread-safe (one mutex per queue).
 */
#ifndef ORBIT_DLQ_H
#define ORBIT_DLQ_H

#include <stddef.h>
#include <stdint.h>

#include "orbit/orbit_clock.h"

#define DLQ_FIELD_MAX      4096u
#define DLQ_ERROR_TEXT_MAX 1024u
#define DLQ_CAPACITY_MAX   (1u << 24)

enum dlq_reason {
    DLQ_RETRIES_EXHAUSTED = 0,
    DLQ_PERMANENT_ERROR,
    DLQ_CHECKSUM_MISMATCH,
    DLQ_SOURCE_MISSING,
    DLQ_DESTINATION_ERROR,
    DLQ_DESTINATION_FULL,
    DLQ_DATA_CORRUPTION,
    DLQ_REASON_COUNT
};

/* What the caller pushes; strings are borrowed for the duration of the
 * call. key and job_id are required, the rest may be NULL. */
struct dlq_failure {
    const char *key; /* file path or hex chunk id */
    const char *job_id;
    enum dlq_reason reason;
    const char *last_error; /* human-readable text of the last error */
    int error_code;         /* ORBIT_E* (0 or negative) */
    uint32_t attempts;
    uint64_t first_failure_ms; /* 0 = same as last_failure_ms */
    uint64_t last_failure_ms;  /* 0 = now */
    const char *source_path;
    const char *dest_path;
};

/* What the queue hands back; every string is owned by the entry. */
struct dlq_entry {
    char *key;
    char *job_id;
    enum dlq_reason reason;
    char *last_error;
    int error_code;
    uint32_t attempts;
    uint64_t first_failure_ms;
    uint64_t last_failure_ms;
    char *source_path;
    char *dest_path;
};

struct dlq_config {
    size_t capacity;       /* default 1000; 1 .. DLQ_CAPACITY_MAX */
    orbit_clock_fn now_ms; /* NULL = orbit_clock_realtime_ms */
    void *clock_ctx;
};

struct dlq;

void dlq_config_default(struct dlq_config *cfg);

/* cfg NULL means the defaults. */
int dlq_new(const struct dlq_config *cfg, struct dlq **out);
void dlq_free(struct dlq *q);

/* Appends a copy of f, evicting the oldest entry if the queue is full. */
int dlq_push(struct dlq *q, const struct dlq_failure *f);

/* Moves every entry, oldest first, into a new array for the caller; the
 * queue is empty afterwards. *out is NULL when *n_out is 0. On failure the
 * queue is left untouched. */
int dlq_drain(struct dlq *q, struct dlq_entry **out, size_t *n_out);

/* Copies the entries of one job, oldest first, leaving them queued. */
int dlq_query_job(const struct dlq *q, const char *job_id,
                  struct dlq_entry **out, size_t *n_out);

size_t dlq_count(const struct dlq *q);
size_t dlq_count_job(const struct dlq *q, const char *job_id);
/* Entries evicted by overflow since creation. */
uint64_t dlq_evicted(const struct dlq *q);
size_t dlq_capacity(const struct dlq *q);

/* Frees an array returned by dlq_drain or dlq_query_job (NULL is a no-op). */
void dlq_entries_free(struct dlq_entry *entries, size_t n);

/* Stable snake_case name ("retries_exhausted"); "unknown" if out of range. */
const char *dlq_reason_str(enum dlq_reason reason);
/* Inverse of dlq_reason_str; ORBIT_EINVAL for anything else. */
int dlq_reason_parse(const char *name, enum dlq_reason *out);

/* Invariant checker: 0, or ORBIT_ECORRUPT. */
int dlq_check(const struct dlq *q);

#endif
