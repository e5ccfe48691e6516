/*
 * orbit/sched.h - the transfer scheduler behind `orbit copy` and `orbit sync`.
 *
 * One scheduler runs one job: it walks the sources, orders ready files,
 * reads, chunks (FastCDC) and hashes them on worker threads, asks every
 * destination star which chunks it lacks (HAVE, batched), sends those (PUT)
 * under each star's backpressure guard, and commits each file (COMMIT) once
 * its chunks are acknowledged. Transient failures go to a penalty box and are
 * retried with exponential backoff; exhausted or permanent failures become
 * dead letters (in memory and in the journal) while the job goes on.
 *
 * Threads: sched_run() runs a libevent loop on the calling thread and starts
 * cfg->jobs reader threads; every callback in the config is called on the
 * calling thread. sched_cancel() may be called from any thread or a signal
 * handler's deferred context (it only sets a flag and wakes the loop).
 *
 * Ownership: the config's strings and arrays are borrowed for the lifetime
 * of the scheduler. A local destination's star is owned by the scheduler.
 *
 * Errors: sched_run() returns 0 when every item reached a final state (done
 * or dead letter: see sched_stats.dead_letters), or a negative ORBIT_E* code
 * when the job could not run (no destination reachable, journal failure,
 * canceled).
 */
#ifndef ORBIT_SCHED_H
#define ORBIT_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orbit/dlq.h"

struct bulletin_board;
struct event_base;
struct journal;
struct metrics_registry;
struct sched;

#define SCHED_MAX_DESTS 8

enum sched_dest_kind {
    SCHED_DEST_LOCAL = 0, /* a directory, served by an in-process star */
    SCHED_DEST_STAR = 1,  /* star://HOST[:PORT]/PATH */
};

struct sched_dest_config {
    enum sched_dest_kind kind;
    const char *name;   /* for reports: the DST argument as given */
    const char *root;   /* LOCAL: the destination directory */
    const char *host;   /* STAR */
    uint16_t port;      /* STAR */
    const char *prefix; /* STAR: PATH inside the star's root, "" for none */
    const uint8_t *token;
    size_t token_len;
};

/* A source: its path, and the name it takes under the destination ("" puts
 * its contents directly in the destination, as a trailing '/' asks). */
struct sched_source {
    const char *path;
    const char *dest_name;
};

/* What happened to one file, for progress lines and --json events. */
enum sched_file_outcome {
    SCHED_FILE_STARTED = 0,
    SCHED_FILE_DONE,
    SCHED_FILE_SKIPPED,
    SCHED_FILE_RETRY,
    SCHED_FILE_DEAD,
    SCHED_FILE_DELETED,
};

struct sched_file_event {
    enum sched_file_outcome outcome;
    const char *path; /* relative destination path */
    const char *dest; /* destination name, NULL when it concerns all */
    uint64_t size;
    uint64_t bytes_sent;    /* stored bytes sent for this file */
    uint64_t bytes_dedup;   /* raw bytes the destination already held */
    int error;              /* ORBIT_E* for RETRY and DEAD */
    const char *message;    /* error text for RETRY and DEAD */
    enum dlq_reason reason; /* for DEAD */
};

struct sched_stats {
    uint64_t files_seen;     /* entries walked (files, links, dirs) */
    uint64_t files_done;     /* committed on every destination */
    uint64_t files_skipped;  /* unchanged (sync) or done earlier (resume) */
    uint64_t files_failed;   /* dead letters (file x destination) */
    uint64_t bytes_total;    /* bytes of regular files walked */
    uint64_t bytes_read;     /* bytes read and chunked */
    uint64_t bytes_done;     /* bytes of files committed or skipped */
    uint64_t bytes_sent;     /* stored (possibly compressed) bytes sent */
    uint64_t bytes_raw_sent; /* raw bytes of the chunks sent */
    uint64_t bytes_dedup;    /* raw bytes a destination already held */
    uint64_t chunks_sent;
    uint64_t chunks_dedup;
    uint64_t files_kept;     /* sync: kept by the star on their digest alone,
                                only mode and times set (no chunk ids sent) */
    uint64_t files_cut_late; /* sync: read whole for an offer by digest,
                                turned down, then cut on the loop */
    uint64_t wire_out;       /* protocol bytes sent to all stars: every frame
                                (HAVE ids, PUTs, manifests, handshakes) */
    uint64_t wire_in;        /* protocol bytes received from them */
    uint64_t retries;
    uint64_t deleted;
    bool walk_done;
};

struct sched_config {
    const char *job_id;
    const struct sched_source *sources;
    size_t nsources;
    const struct sched_dest_config *dests;
    size_t ndests;
    bool sync_mode;         /* skip files whose size and mtime match */
    bool delete_extraneous; /* sync --delete */
    bool checksum;          /* sync: never skip on size and mtime alone */
    bool dry_run;
    const char *const *includes;
    size_t nincludes;
    const char *const *excludes;
    size_t nexcludes;
    const char *prioritize;    /* prioritizer chain, NULL for walk order */
    uint32_t chunk_avg;        /* 0: 64 KiB; min avg/4, max avg*4 */
    int compress_level;        /* -1 auto (remote only), 0 none, >0 zstd */
    uint64_t bwlimit;          /* bytes per second, 0 unlimited */
    unsigned jobs;             /* reader threads, 0: 2 */
    unsigned retries;          /* max penalties before a dead letter */
    uint64_t retry_initial_ms; /* 0: 1000 */
    uint64_t retry_max_ms;     /* 0: 60000 */
    /* How long the files waiting on a lost star are held for it before
     * their retries run (and end in dead letters if it never comes back);
     * default 20000, 0: not held. */
    uint32_t reconnect_wait_ms;
    struct journal *journal; /* NULL: no resume, no persisted dead letters */
    /* Only these relative paths (a dead-letter retry), when non-NULL. */
    const char *const *only_paths;
    size_t nonly_paths;
    /* Where dead letters, lost connections, opened circuits and star
     * advisories are posted (NULL: nowhere). */
    struct bulletin_board *bulletins;
    /* Counters and gauges of the job (NULL: none). */
    struct metrics_registry *metrics;
    /* Called with start = true once the loop exists (to serve an HTTP API
     * on the same base), with start = false before it is torn down. */
    void (*on_loop)(void *arg, struct sched *s, struct event_base *base,
                    bool start);
    void (*on_file)(void *arg, const struct sched_file_event *ev);
    void (*on_progress)(void *arg, const struct sched_stats *st);
    void *arg;
};

void sched_config_init(struct sched_config *cfg);

int sched_new(const struct sched_config *cfg, struct sched **out);
void sched_free(struct sched *s);

/* Run the job to its end. See the header comment for the result. */
int sched_run(struct sched *s);

/* Ask a running job to stop soon; sched_run() returns ORBIT_ECANCELED. */
void sched_cancel(struct sched *s);

void sched_get_stats(const struct sched *s, struct sched_stats *out);

/* Why sched_run() failed ("" when it did not); valid until sched_free. */
const char *sched_fatal_message(const struct sched *s);

/* What the scheduler knows of one destination, for `GET /api/stars`. */
struct sched_star_view {
    const char *name;
    const char *address; /* "host:port" or "local" */
    const char *state;   /* "connecting", "ready", "reconnecting" */
    const char *circuit; /* breaker_state_str() */
    uint32_t advisories; /* WIRE_ADV_* bits from its last HEALTH */
    uint64_t disk_total;
    uint64_t disk_used;
    uint64_t last_seen_ms; /* realtime of its last reply, 0: never */
    uint64_t inflight_objects;
    uint64_t inflight_bytes;
};

/* Calls emit once per destination (on the loop's thread). */
void sched_star_each(struct sched *s,
                     void (*each)(void *ctx, const struct sched_star_view *v),
                     void *ctx);

/* Commit the journal writes the scheduler has grouped so far (call before
 * reading the journal from the scheduler's thread). */
void sched_journal_flush(struct sched *s);

/* The dead letters of this run, oldest first (see dlq_drain). */
int sched_dead_letters(struct sched *s, struct dlq_entry **out, size_t *n);

#endif
