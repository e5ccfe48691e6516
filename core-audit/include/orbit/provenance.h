/*
 * orbit/provenance.h - typed provenance events, their JSON Lines log and its
 * reader (docs/core-audit.md describes the schema).
 *
 * An event says what happened to a chunk, a file, a job or a star: a UTC
 * timestamp with microsecond precision, one of PROV_EVENT_TYPE_COUNT types,
 * and, where known, the job, chunk, source and destination it concerns, a
 * byte count, a duration, an error text, a trace id and a small string map of
 * extra context. Unset fields are left out of the JSON.
 *
 * Ownership: prov_event_new() and prov_event_clone() return an event the
 * caller frees with prov_event_free(). Setters copy their strings; getters
 * return pointers owned by the event, valid until the field is set again or
 * the event is freed. prov_log_new() returns a logger freed (flushed and
 * closed) by prov_log_free(). Events passed to a prov_read_file() callback are
 * borrowed for the duration of the call; clone them to keep them.
 *
 * Errors: ORBIT_EINVAL (NULL or out-of-range argument, unknown type name,
 * bad timestamp), ORBIT_ETOOBIG (a string longer than its PROV_MAX_* bound),
 * ORBIT_EFULL (more than PROV_MAX_CONTEXT context entries), ORBIT_ENOMEM,
 * ORBIT_EFORMAT (a JSON line that is not an event), and the translated errno
 * of file operations (ORBIT_EIO, ORBIT_ENOENT, ORBIT_EPERM, ORBIT_ENOSPC).
 *
 * Thread-safety: an event is a plain object: use it from one thread at a
 * time. A logger serializes its writers with a mutex: any number of threads
 * may call prov_log_write() and prov_log_flush() on one logger. The reader
 * keeps no shared state.
 */
#ifndef ORBIT_PROVENANCE_H
#define ORBIT_PROVENANCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROV_MAX_FIELD        4096 /* bytes of one string field, without NUL */
#define PROV_MAX_CONTEXT      32   /* entries in an event's context map */
#define PROV_MAX_CONTEXT_KEY  64   /* bytes of a context key */
#define PROV_MAX_CONTEXT_VAL  1024 /* bytes of a context value */
#define PROV_TS_LEN           27   /* "2026-11-25T13:45:01.123456Z", no NUL */
#define PROV_DEFAULT_MAX_LINE (1u << 20) /* reader's line bound by default */

/* The event types; the order is part of no format (names are). */
enum prov_event_type {
    PROV_CHUNK_CREATED = 0,
    PROV_CHUNK_DEDUPLICATED,
    PROV_CHUNK_TRANSFERRED,
    PROV_CHUNK_VERIFIED,
    PROV_CHUNK_HEALED,
    PROV_CHUNK_PENALIZED,
    PROV_CHUNK_DEAD_LETTERED,
    PROV_CHUNK_PACKED,
    PROV_FILE_RENAMED,
    PROV_FILE_SKIPPED,
    PROV_FILE_STARTED,
    PROV_FILE_COMPLETED,
    PROV_JOB_CREATED,
    PROV_JOB_RESUMED,
    PROV_JOB_COMPLETED,
    PROV_JOB_FAILED,
    PROV_STAR_REGISTERED,
    PROV_STAR_SCHEDULED,
    PROV_STAR_DRAINING,
    PROV_STAR_DEREGISTERED,
    PROV_EVENT_TYPE_COUNT
};

/* The optional string fields of an event, named as in the JSON. */
enum prov_field {
    PROV_F_JOB_ID = 0,
    PROV_F_CHUNK_HASH,
    PROV_F_SOURCE_STAR,
    PROV_F_SOURCE_PATH,
    PROV_F_DEST_STAR,
    PROV_F_DEST_PATH,
    PROV_F_ERROR,
    PROV_F_TRACE_ID,
    PROV_FIELD_COUNT
};

struct prov_event;

/* "chunk_created" ... "star_deregistered"; "unknown" when out of range. */
const char *prov_event_type_str(enum prov_event_type type);

/* Parse a snake_case type name. ORBIT_EINVAL if unknown. */
int prov_event_type_parse(const char *name, enum prov_event_type *out);

/* The JSON key of a string field ("job_id", ...); "unknown" if out of range. */
const char *prov_field_name(enum prov_field field);

/* Microseconds since the Unix epoch, from the realtime clock. */
int64_t prov_now_us(void);

/*
 * Format ts_us as RFC 3339 UTC with six fraction digits into buf (at least
 * PROV_TS_LEN + 1 bytes). ORBIT_EINVAL if cap is too small or the time is
 * outside years 0000-9999.
 */
int prov_ts_format(int64_t ts_us, char *buf, size_t cap);

/*
 * Parse an RFC 3339 timestamp: "YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|+hh:mm|-hh:mm)"
 * ('t' and 'z' accepted too); fractions beyond microseconds are truncated.
 */
int prov_ts_parse(const char *text, int64_t *ts_us);

/* A new event of type stamped now; job_id may be NULL. */
int prov_event_new(enum prov_event_type type, const char *job_id,
                   struct prov_event **out);

/* A deep copy of ev. */
int prov_event_clone(const struct prov_event *ev, struct prov_event **out);

/* Free ev; NULL is a no-op. */
void prov_event_free(struct prov_event *ev);

enum prov_event_type prov_event_type(const struct prov_event *ev);
int64_t prov_event_ts(const struct prov_event *ev);
void prov_event_set_ts(struct prov_event *ev, int64_t ts_us);

/* Set a string field; NULL or "" unsets it. */
int prov_event_set(struct prov_event *ev, enum prov_field field,
                   const char *value);

/* A string field, or NULL when unset. */
const char *prov_event_get(const struct prov_event *ev, enum prov_field field);

/* Byte count; values above INT64_MAX are ORBIT_EINVAL (JSON integers). */
int prov_event_set_bytes(struct prov_event *ev, uint64_t bytes);
void prov_event_clear_bytes(struct prov_event *ev);
/* Whether bytes are set; if so and out is not NULL, *out receives them. */
bool prov_event_bytes(const struct prov_event *ev, uint64_t *out);

/* Duration in milliseconds, same rules as bytes. */
int prov_event_set_duration_ms(struct prov_event *ev, uint64_t ms);
void prov_event_clear_duration(struct prov_event *ev);
bool prov_event_duration_ms(const struct prov_event *ev, uint64_t *out);

/*
 * Set context[key] = value (replacing an existing key; NULL value removes
 * it). Keys are non-empty. ORBIT_EFULL past PROV_MAX_CONTEXT entries.
 */
int prov_event_context_set(struct prov_event *ev, const char *key,
                           const char *value);
const char *prov_event_context_get(const struct prov_event *ev,
                                   const char *key);
size_t prov_event_context_count(const struct prov_event *ev);
/* The i-th entry in insertion order; ORBIT_ENOENT if i is out of range. */
int prov_event_context_at(const struct prov_event *ev, size_t i,
                          const char **key, const char **value);

/*
 * One JSON object, no newline, as a malloc'd string the caller frees
 * (*len excludes the NUL; len may be NULL).
 */
int prov_event_to_json(const struct prov_event *ev, char **out, size_t *len);

/* Parse one JSON object (len bytes, no NUL needed). ORBIT_EFORMAT if bad. */
int prov_event_from_json(const char *text, size_t len, struct prov_event **out);

/* ---- JSON Lines logger ---- */

enum prov_flush_policy {
    PROV_FLUSH_EVERY = 0, /* flush after every event */
    PROV_FLUSH_BATCH,     /* flush after every flush_every events */
    PROV_FLUSH_MANUAL,    /* only prov_log_flush(), rotation and free */
};

struct prov_log_opts {
    const char *path;             /* live file, e.g. ".../events.jsonl" */
    enum prov_flush_policy flush; /* when to push lines to the kernel */
    uint32_t flush_every;         /* N for PROV_FLUSH_BATCH (>= 1) */
    bool fsync;                   /* every flush also fsyncs the file */
    uint64_t rotate_bytes;        /* rotate before exceeding this; 0: never */
    uint32_t max_files; /* files kept, live one included (path, path.1,
                           ..., path.(max_files-1)); 0 counts as 1 */
};

struct prov_log;

/*
 * Open (create or append to) opts->path. The opts strings are copied. If the
 * file ends in a torn line (a crash cut a write short), a newline is written
 * first so that the next event starts a line of its own.
 */
int prov_log_new(const struct prov_log_opts *opts, struct prov_log **out);

/* Flush, fsync if configured, close and free; NULL is a no-op. */
void prov_log_free(struct prov_log *log);

/*
 * Append ev as one line, rotating first if the line would push the live
 * file past rotate_bytes (a single line larger than that still gets written,
 * alone in its file).
 */
int prov_log_write(struct prov_log *log, const struct prov_event *ev);

/* Push buffered lines to the kernel (and to disk if opts.fsync). */
int prov_log_flush(struct prov_log *log);

/* Bytes in the live file, buffered lines included. */
uint64_t prov_log_size(struct prov_log *log);

/* ---- reader ---- */

/* Which events a read hands to its callback; a zeroed filter passes all. */
struct prov_filter {
    const char *job_id; /* only this job; NULL: any */
    uint32_t types;     /* bit (1u << type) per wanted type; 0: any */
    int64_t since_us;   /* ts >= since_us, when has_since */
    int64_t until_us;   /* ts < until_us, when has_until */
    bool has_since;
    bool has_until;
};

/* Return 0 to go on; any other value stops the read and is returned by it. */
typedef int (*prov_event_cb)(const struct prov_event *ev, void *arg);

/* A malformed line: the file, its 1-based line number, a static reason. */
typedef void (*prov_malformed_cb)(const char *path, uint64_t line_no,
                                  const char *reason, void *arg);

struct prov_read_opts {
    size_t max_line;                  /* bytes per line; 0: default */
    const struct prov_filter *filter; /* NULL: all events */
    prov_malformed_cb on_malformed;   /* NULL: only counted */
    void *malformed_arg;
};

struct prov_read_stats {
    uint64_t lines;     /* lines seen, torn tail included */
    uint64_t events;    /* well-formed events */
    uint64_t matched;   /* events that passed the filter */
    uint64_t malformed; /* lines reported as malformed */
    bool torn_tail;     /* an unterminated, unparsable last line was skipped */
};

/* Whether ev passes filter (NULL passes everything). */
bool prov_filter_match(const struct prov_filter *filter,
                       const struct prov_event *ev);

/*
 * Stream path line by line, calling cb for every event that passes the
 * filter. Malformed lines (bad JSON, not an event, too long, NUL bytes) are
 * reported and skipped; blank lines are skipped silently; an unterminated
 * last line that does not parse is a torn write and skipped silently. opts
 * and stats may be NULL. Returns 0, a file error, or cb's non-zero value.
 */
int prov_read_file(const char *path, const struct prov_read_opts *opts,
                   prov_event_cb cb, void *arg, struct prov_read_stats *stats);

/*
 * Read a rotated log oldest first: path.(max_files-1), ..., path.1, path,
 * skipping the ones that do not exist (ORBIT_ENOENT only if none does).
 * stats add up over the files; torn_tail is set if any file had one (a file
 * cut short before a rotation). Same callbacks and errors as prov_read_file.
 */
int prov_read_rotated(const char *path, uint32_t max_files,
                      const struct prov_read_opts *opts, prov_event_cb cb,
                      void *arg, struct prov_read_stats *stats);

#endif
