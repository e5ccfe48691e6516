/*
 * orbit/bulletin.h - the bulletin board: one bounded feed of notices from
 * every job and star, for operators and `GET /api/bulletins`.
 *
 * A bulletin has a monotonically increasing id (from 1), a wall-clock time
 * in milliseconds, a severity (info < warning < error), a source (a job or
 * a star, with a name), a category ("health", "dead-letter", ...), an
 * optional job id and a message. The board is a ring: when it holds
 * capacity bulletins (default 1000) the oldest is evicted by the next post.
 * Queries filter by minimum severity, source kind and name, category and
 * job id, by id (only bulletins after since_id), and keep the most recent
 * limit matches; results come oldest first.
 *
 * Text: every string is stored as valid UTF-8 (an invalid byte becomes
 * '?') and cut at its BULLETIN_*_MAX on a character boundary, so a
 * bulletin always renders as JSON.
 * Ownership: posts are copied. Arrays handed out by queries belong to the
 * caller: bulletin_list_free(). bulletin_to_json() returns a new jansson
 * reference (json_decref() it).
 * Errors: ORBIT_EINVAL (missing source name, category or message, bad
 * severity or source kind, capacity 0 or above BULLETIN_CAPACITY_MAX),
 * ORBIT_ENOMEM.
 * Thread-safety: every function on a board is thread-safe (one mutex).
 */
#ifndef ORBIT_BULLETIN_H
#define ORBIT_BULLETIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BULLETIN_CAPACITY_DEFAULT 1000u
#define BULLETIN_CAPACITY_MAX     (1u << 20)
#define BULLETIN_MESSAGE_MAX      4096u
#define BULLETIN_NAME_MAX         256u /* source name, category, job id */

struct json_t;
struct bulletin_board;

enum bulletin_severity {
    BULLETIN_INFO = 0,
    BULLETIN_WARNING,
    BULLETIN_ERROR,
};

enum bulletin_source {
    BULLETIN_SOURCE_JOB = 0,
    BULLETIN_SOURCE_STAR,
};

/* What a poster gives; strings are borrowed for the call. */
struct bulletin_post {
    enum bulletin_severity severity;
    enum bulletin_source source;
    const char *source_name;
    const char *category;
    const char *job_id; /* NULL or "" for none */
    const char *message;
    uint64_t time_ms; /* 0: now (CLOCK_REALTIME) */
};

/* A stored bulletin; every string is owned and non-NULL. */
struct bulletin {
    uint64_t id;
    uint64_t time_ms;
    enum bulletin_severity severity;
    enum bulletin_source source;
    char *source_name;
    char *category;
    char *job_id; /* "" for none */
    char *message;
};

struct bulletin_filter {
    enum bulletin_severity min_severity;
    bool any_source; /* false: only source below */
    enum bulletin_source source;
    const char *source_name; /* NULL: any */
    const char *category;    /* NULL: any */
    const char *job_id;      /* NULL: any */
    uint64_t since_id;       /* only ids above it */
    size_t limit;            /* 0: no limit; else the latest limit */
};

/* Matches everything. */
void bulletin_filter_init(struct bulletin_filter *f);

/* capacity 0 means BULLETIN_CAPACITY_DEFAULT. */
int bulletin_board_new(size_t capacity, struct bulletin_board **out);
void bulletin_board_free(struct bulletin_board *b);

/* Posts a copy; its id goes to *id_out (may be NULL). */
int bulletin_post(struct bulletin_board *b, const struct bulletin_post *p,
                  uint64_t *id_out);

/* Matching bulletins, oldest first; *out is NULL when *n is 0. */
int bulletin_query(struct bulletin_board *b, const struct bulletin_filter *f,
                   struct bulletin **out, size_t *n);
/* The latest n bulletins. */
int bulletin_recent(struct bulletin_board *b, size_t n, struct bulletin **out,
                    size_t *nout);
/* Every bulletin with an id above since_id. */
int bulletin_since(struct bulletin_board *b, uint64_t since_id,
                   struct bulletin **out, size_t *nout);
void bulletin_list_free(struct bulletin *list, size_t n);

size_t bulletin_count(struct bulletin_board *b);
size_t bulletin_capacity(const struct bulletin_board *b);
/* The id of the latest post (0 before any). */
uint64_t bulletin_last_id(struct bulletin_board *b);
uint64_t bulletin_evicted(struct bulletin_board *b);

/* {"id":..,"time_ms":..,"time":"2026-..Z","severity":"warning",
 *  "source":"star","source_name":..,"category":..,"job_id":..|null,
 *  "message":..}; NULL on allocation failure. */
struct json_t *bulletin_to_json(const struct bulletin *bl);

const char *bulletin_severity_str(enum bulletin_severity s);
int bulletin_severity_parse(const char *name, enum bulletin_severity *out);
const char *bulletin_source_str(enum bulletin_source s);
int bulletin_source_parse(const char *name, enum bulletin_source *out);

/* Invariant checker: ids consecutive, count within capacity, strings
 * present. 0 or ORBIT_ECORRUPT. */
int bulletin_check(struct bulletin_board *b);

#endif
