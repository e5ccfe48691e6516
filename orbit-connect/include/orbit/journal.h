/*
 * orbit/journal.h - the job journal: what a job is, how far it got, and
 * what failed, kept in LMDB so an interrupted run resumes where it stopped.
 *
 * One journal directory holds every job of a host. A job has a short hex
 * id, a kind (copy or sync), its sources, destination and options (a JSON
 * string), a state, creation and update times and progress counters. Per
 * file, keyed by job id and path relative to the destination, it keeps the
 * size and mtime the file had when it was sent, its state, its digest and
 * the bytes sent, so a rerun skips what is done. Dead letters are kept per
 * job with the fields of a dlq_entry.
 *
 * Resume: the same command rerun finds its unfinished job through
 * journal_job_find_by_spec() (a hash of kind, sources and destination).
 * Durability: every write outside a batch is its own durable transaction;
 * inside journal_batch_begin()/journal_batch_commit() the writes become
 * durable together at the commit. A crash loses at most the open batch,
 * whose files are then simply redone. Mark a file done only after its
 * destination acknowledged the COMMIT.
 *
 * Ownership: strings passed in are copied. A journal_job filled by
 * journal_job_get() owns its strings: journal_job_release() frees them;
 * arrays from journal_job_list() are freed with journal_jobs_free(), arrays
 * of dead letters with dlq_entries_free().
 *
 * Errors: ORBIT_EINVAL (bad argument, unknown id syntax), ORBIT_ENOENT (no
 * such job, file or dead letter), ORBIT_ETOOBIG (a path or field longer
 * than JOURNAL_PATH_MAX), ORBIT_EDB (LMDB error; the map grows on demand,
 * so a full map is not one), ORBIT_EIO (the directory cannot be created),
 * ORBIT_ECORRUPT (a record that does not decode), ORBIT_ENOMEM.
 *
 * Thread-safety: none. A journal is used from one thread (the scheduler's
 * loop thread, which also serves the HTTP API); LMDB allows one open handle
 * per directory per process, so do not open the same directory twice.
 */
#ifndef ORBIT_JOURNAL_H
#define ORBIT_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orbit/dlq.h"

#define JOURNAL_ID_LEN     16u   /* hex characters of a job id */
#define JOURNAL_PATH_MAX   4096u /* longest relative path, source or key */
#define JOURNAL_DIGEST_LEN 32u   /* SHA-256 */

struct journal;

enum journal_job_kind {
    JOURNAL_KIND_COPY = 0,
    JOURNAL_KIND_SYNC,
};

enum journal_job_state {
    JOURNAL_JOB_CREATED = 0,
    JOURNAL_JOB_RUNNING,
    JOURNAL_JOB_COMPLETED,
    JOURNAL_JOB_PARTIAL, /* finished with dead letters */
    JOURNAL_JOB_FAILED,
    JOURNAL_JOB_CANCELED,
    JOURNAL_JOB_STATE_COUNT
};

enum journal_file_state {
    JOURNAL_FILE_PENDING = 0,
    JOURNAL_FILE_DONE,
    JOURNAL_FILE_DEAD,
};

/* What identifies a job; strings are borrowed for the call. */
struct journal_spec {
    enum journal_job_kind kind;
    const char *const *sources;
    size_t nsources;
    const char *destination;
    const char *options; /* JSON text, NULL for "{}"; not part of the key */
};

struct journal_counters {
    uint64_t files_total; /* files walked so far */
    uint64_t files_done;
    uint64_t bytes_total;
    uint64_t bytes_done;
    uint64_t bytes_sent;
    uint64_t bytes_dedup;
};

struct journal_job {
    char id[JOURNAL_ID_LEN + 1];
    enum journal_job_kind kind;
    enum journal_job_state state;
    char **sources;
    size_t nsources;
    char *destination;
    char *options; /* JSON text */
    uint64_t created_ms;
    uint64_t updated_ms;
    struct journal_counters counters;
    uint64_t dead_letters; /* counted from the stored dead letters */
};

struct journal_file {
    uint64_t size;
    int64_t mtime_ns;
    enum journal_file_state state;
    bool has_digest;
    uint8_t digest[JOURNAL_DIGEST_LEN];
    uint64_t bytes_sent;
};

/*
 * Opens (creating it, mode 0700) the journal in dir; dir NULL means
 * $ORBIT_STATE_DIR/journal, else $XDG_STATE_HOME/orbit/journal, else
 * ~/.local/state/orbit/journal.
 */
int journal_open(const char *dir, struct journal **out);
/* Closes the journal; an open batch is aborted. NULL is a no-op. */
void journal_close(struct journal *j);

/* Groups every following write into one transaction. ORBIT_ESTATE if a
 * batch is already open. */
int journal_batch_begin(struct journal *j);
/* Makes the batch's writes durable; the batch is closed even on error. */
int journal_batch_commit(struct journal *j);
/* Drops the batch's writes. */
void journal_batch_abort(struct journal *j);
bool journal_batch_active(const struct journal *j);

/* Creates a job in state CREATED; its id goes to id_out. */
int journal_job_create(struct journal *j, const struct journal_spec *spec,
                       char id_out[JOURNAL_ID_LEN + 1]);
/* The id of the latest job with this spec, unless it completed: ENOENT. */
int journal_job_find_by_spec(struct journal *j, const struct journal_spec *spec,
                             char id_out[JOURNAL_ID_LEN + 1]);
int journal_job_get(struct journal *j, const char *id, struct journal_job *out);
void journal_job_release(struct journal_job *job);
int journal_job_set_state(struct journal *j, const char *id,
                          enum journal_job_state state);
/* Replaces the job's counters (absolute values). */
int journal_job_set_counters(struct journal *j, const char *id,
                             const struct journal_counters *c);
/* Every job, oldest first. *out is NULL when *n is 0. */
int journal_job_list(struct journal *j, struct journal_job **out, size_t *n);
void journal_jobs_free(struct journal_job *jobs, size_t n);
/* Removes a job with its files and dead letters. */
int journal_job_delete(struct journal *j, const char *id);

int journal_file_get(struct journal *j, const char *job_id, const char *path,
                     struct journal_file *out);
int journal_file_put(struct journal *j, const char *job_id, const char *path,
                     const struct journal_file *f);
/* Whether path is recorded DONE with this size and mtime (false on any
 * error, which only costs a redo). */
bool journal_file_is_done(struct journal *j, const char *job_id,
                          const char *path, uint64_t size, int64_t mtime_ns);
/* Number of files recorded for the job, by state (NULL to skip). */
int journal_file_count(struct journal *j, const char *job_id,
                       uint64_t counts[3]);

/* Stores (or replaces, by key) a dead letter for f->job_id. A zero
 * last_failure_ms is stamped with the current time. */
int journal_dead_add(struct journal *j, const struct dlq_failure *f);
/* Dead letters of a job, in key order. */
int journal_dead_list(struct journal *j, const char *job_id,
                      struct dlq_entry **out, size_t *n);
int journal_dead_remove(struct journal *j, const char *job_id, const char *key);
/* Removes every dead letter of the job; *removed may be NULL. */
int journal_dead_purge(struct journal *j, const char *job_id, size_t *removed);

/* Whether id has the syntax of a job id (16 lowercase hex characters). */
bool journal_id_valid(const char *id);

/* Stable names ("copy", "running", "done") and their inverses. */
const char *journal_kind_str(enum journal_job_kind kind);
int journal_kind_parse(const char *name, enum journal_job_kind *out);
const char *journal_state_str(enum journal_job_state state);
int journal_state_parse(const char *name, enum journal_job_state *out);
const char *journal_file_state_str(enum journal_file_state state);

/* Current LMDB map size in bytes (it doubles when full). */
size_t journal_map_size(const struct journal *j);

/* Invariant checker: every record decodes and every spec entry points to a
 * job. 0 or ORBIT_ECORRUPT. */
int journal_check(struct journal *j);

#endif
