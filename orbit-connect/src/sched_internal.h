/*
 * sched_internal.h - the scheduler's private structures, shared by the
 * main-loop part (sched.c, sched_dest.c) and the reader threads
 * (sched_reader.c).
 */
#ifndef ORBIT_SCHED_INTERNAL_H
#define ORBIT_SCHED_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "sched_listing.h"
#include "orbit/sched.h"
#include "orbit/wire.h"

struct chunk_id_ctx;
struct chunker;
struct event;
struct event_base;

/* A file moving through the pipeline. Owned by the main thread; a reader
 * thread only reads its source fields while it holds the file. */
struct sched_file {
    char *rel;      /* relative destination path (prefix applied per dest) */
    char *src_path; /* path to open on the source */
    char *target;   /* symlink target */
    uint8_t ftype;  /* enum wire_ftype */
    uint64_t size;
    uint32_t mode;
    int64_t mtime_sec;
    uint32_t mtime_nsec;
    uint32_t dest_mask;         /* destinations this attempt serves */
    uint32_t done_mask;         /* destinations that committed it */
    uint32_t failed_mask;       /* destinations that failed this attempt */
    uint32_t commit_mask;       /* destinations a COMMIT was sent to */
    uint32_t replace_mask;      /* destinations holding another type there */
    uint32_t probe_mask;        /* destinations listing a file of this size
                                   here: ask them to keep it by digest first */
    uint32_t probing;           /* destinations whose probe is unanswered */
    uint32_t missing_mask;      /* destinations whose star named chunks it
                                   lacks: sending them is the whole fix */
    uint8_t quick_retries;      /* attempts made at once for those */
    bool read_whole;            /* every destination probes it: read it
                                   into one batch and digest it, uncut */
    struct sched_batch *parked; /* batches held for a probe's answer */
    uint64_t parked_bytes;
    int fail_err[SCHED_MAX_DESTS];
    char *fail_msg[SCHED_MAX_DESTS];
    uint32_t pending[SCHED_MAX_DESTS]; /* HAVE ids + PUTs + COMMIT open */
    uint32_t on_wire[SCHED_MAX_DESTS]; /* of those, PUTs sent (own or shared)
                                          and not yet answered */
    uint64_t commit_next[SCHED_MAX_DESTS]; /* next manifest entry to send */
    /* the manifest, grown as batches arrive */
    struct wire_chunk_ref *refs;
    uint32_t nrefs;
    uint32_t caprefs;
    uint64_t bytes_sent;
    uint64_t bytes_dedup;
    /* reader outcome */
    bool read_done;
    int read_err;
    char read_msg[256];
    uint8_t digest[WIRE_DIGEST_LEN];
    uint32_t batches_open;   /* batches of this file still alive */
    bool finished;           /* done or dead: waiting to be freed */
    bool fixup;              /* a directory set again at the end of the job */
    struct sched_file *next; /* queue link (readers, retry list) */
    struct sched_file *live_prev, *live_next; /* every file alive */
};

struct sched_chunk {
    uint8_t id[WIRE_ID_LEN];
    uint32_t len;
    uint64_t off; /* offset in the file */
    const uint8_t *data;
};

/* Up to SCHED_BATCH_CHUNKS chunks of one file, with their bytes. */
struct sched_batch {
    struct sched_file *file;
    uint32_t first_ref; /* index of chunks[0] in file->refs */
    uint32_t n;
    struct sched_chunk *chunks;
    uint8_t *buf;
    size_t bytes;
    size_t cap;    /* of buf; what it counts in the readers' held bytes */
    uint32_t refs; /* uses outstanding: HAVE per dest, queued PUTs */
    bool uncut;    /* a whole file's bytes, no chunks yet (read_whole) */
    struct sched_batch *next;
    struct sched_batch *park_next; /* file->parked list */
};

/* Reader -> main messages. */
enum sched_rmsg_kind {
    SCHED_RMSG_BATCH = 0,
    SCHED_RMSG_END,
};

struct sched_rmsg {
    enum sched_rmsg_kind kind;
    struct sched_file *file;
    struct sched_batch *batch; /* BATCH */
    int err;                   /* END */
    char msg[256];
    uint8_t digest[WIRE_DIGEST_LEN];
    uint64_t size;
    int64_t mtime_sec;
    uint32_t mtime_nsec;
    struct sched_rmsg *next;
};

/* The reader pool: files in, messages out (woken through an event). */
struct sched_readers {
    pthread_mutex_t mu;
    pthread_cond_t work_cv;  /* files queued or stop */
    pthread_cond_t space_cv; /* held bytes fell */
    struct sched_file *work_head, *work_tail;
    struct sched_rmsg *out_head, *out_tail;
    bool stop;
    size_t held_bytes; /* batch bytes alive anywhere */
    size_t held_limit;
    struct event *wake; /* activated when out_* gains a message */
    pthread_t *threads;
    unsigned nthreads;
    size_t chunk_min, chunk_avg, chunk_max;
    int error; /* a reader could not start */
    /* the main thread's, for sched_batch_cut */
    struct chunker *cut_ch;
    struct chunk_id_ctx *cut_idc;
};

#define SCHED_COMMITQ 1024 /* more than MAX_ACTIVE: every active file fits */

/*
 * Files under SCHED_SMALL_FILE bytes are cut with an average of an eighth
 * of the job's (8 KiB by default, from 2 to 32 KiB): most files of a source
 * tree are a few KiB, and with 64 KiB chunks a one-line edit re-sends the
 * whole file. The class is chosen by the size when the file is opened, so a
 * file that crosses the limit between two versions shares no chunks.
 */
#define SCHED_SMALL_FILE ((uint64_t)1 << 20)

/*
 * sync: a regular file of at most SCHED_PROBE_MAX bytes whose destination
 * lists a file of the same size at its path (its mtime differs, or
 * --checksum) is first offered by digest alone (a COMMIT without chunks):
 * the star keeps the file it has when the bytes match and sets mode and
 * times, so neither the chunk ids nor the chunks cross the wire. Its batches
 * wait for the answer; the bound keeps what the readers park while still
 * reading (a batch counts at most its file's size) far under the held-data
 * limit, so parked batches never stop the readers that would release them.
 */
#define SCHED_PROBE_MAX ((uint64_t)256 << 10)
_Static_assert(SCHED_PROBE_MAX < SCHED_SMALL_FILE,
               "a file read whole is cut with the small-file chunker");
struct chunker_params;
void sched_small_params(size_t avg, struct chunker_params *out);

struct backpressure_guard;
struct breaker;
struct chunk_codec;
struct star;
struct wire_client;
struct sched;
struct sched_inflight;

/* A pending use of a chunk by one destination (HAVE answer or PUT). */
struct sched_ref {
    struct sched_batch *b;
    uint32_t idx;
};

struct sched_refq {
    struct sched_ref *v;
    size_t head, len, cap;
};

struct sched_dest {
    struct sched *s;
    unsigned idx;
    const struct sched_dest_config *cfg;
    struct star *star; /* LOCAL: the in-process star */
    struct wire_client *client;
    uint64_t wire_out, wire_in; /* frame bytes of the sessions closed */
    bool ready;
    bool was_ready;             /* the first session came up */
    bool resetting;             /* dropping a suspect session */
    uint64_t down_since_ms;     /* lost its session at (monotonic), 0: up */
    unsigned handshakes_failed; /* before the first session came up */
    bool compress;              /* this session's chunks are compressed */
    bool compress_auto; /* --compress auto: not for a star on this host */
    struct backpressure_guard *guard;
    struct breaker *breaker;
    struct sched_refq haveq;          /* ids waiting for a HAVE */
    struct sched_refq putq;           /* PUTs waiting for room */
    struct sched_inflight **inflight; /* chunk ids queued or being PUT */
    struct chunk_codec *codec;
    uint8_t *zbuf;
    size_t zcap;
    struct event *reconnect_ev;
    char address[300];
    uint32_t advisories;
    uint64_t disk_total, disk_used;
    uint64_t last_seen_ms;
    uint64_t last_health_ms;
    /* files whose manifest waits for room in the connection */
    struct sched_file *commitq[SCHED_COMMITQ];
    size_t commitq_head, commitq_len;
    int fatal; /* could not connect at all */
    /* listing for sync */
    struct sched_listing *listing;
    bool listing_done;
    char cursor[WIRE_MAX_PATH + 1];
};

int sched_refq_push(struct sched_refq *q, struct sched_batch *b, uint32_t i);
bool sched_refq_pop(struct sched_refq *q, struct sched_ref *out);
void sched_refq_release(struct sched_refq *q);

/* sched_dest.c */
int sched_dest_open(struct sched_dest *d);
void sched_dest_close(struct sched_dest *d);
void sched_dest_traffic(const struct sched_dest *d, uint64_t *out,
                        uint64_t *in);
void sched_dest_enqueue(struct sched_dest *d, struct sched_batch *b);
void sched_dest_flush(struct sched_dest *d);
void sched_dest_pump(struct sched_dest *d);
/* It was connected once and is not now (a reconnect is pending). */
bool sched_dest_down(const struct sched_dest *d);
int sched_dest_commit(struct sched_dest *d, struct sched_file *f);
/* Offer f by digest (see SCHED_PROBE_MAX); the answer comes back through
 * sched_probe_answered(). */
int sched_dest_probe(struct sched_dest *d, struct sched_file *f);
int sched_dest_list(struct sched_dest *d);
int sched_dest_delete(struct sched_dest *d, const char *path);
int sched_dest_replace(struct sched_dest *d, struct sched_file *f);
/* The destination-side path of rel (the prefix applied); buf of
 * WIRE_MAX_PATH + 1 bytes. */
int sched_dest_path(const struct sched_dest *d, const char *rel, char *buf);

/* sched.c, called back by sched_dest.c */
void sched_batch_unref(struct sched *s, struct sched_batch *b);
void sched_file_progress(struct sched *s, struct sched_file *f, unsigned d);
void sched_file_fail(struct sched *s, struct sched_file *f, unsigned d, int err,
                     const char *msg);
void sched_dest_ready(struct sched *s, struct sched_dest *d, int status);
void sched_dest_listed_done(struct sched *s, struct sched_dest *d, int err);
void sched_count_sent(struct sched *s, uint64_t stored, uint64_t raw);
/* err 0: the star kept its copy; else why not (ORBIT_ENOENT: its bytes
 * differ, send the chunks). */
void sched_probe_answered(struct sched *s, struct sched_file *f, unsigned d,
                          int err, const char *msg);
void sched_count_dedup(struct sched *s, struct sched_file *f, uint64_t raw);
void sched_wake(struct sched *s);
bool sched_bw_take(struct sched *s, uint64_t bytes);
void sched_delete_done(struct sched *s, int status);
/* Post a bulletin about destination d (d NULL: about the job). */
void sched_bulletin(struct sched *s, const struct sched_dest *d, int severity,
                    const char *category, const char *message);
void sched_dest_health(struct sched_dest *d);
struct event_base *sched_base(struct sched *s);
const char *sched_job_id(struct sched *s);

#define SCHED_BATCH_CHUNKS 64
#define SCHED_BATCH_BYTES  ((size_t)2 << 20)

int sched_readers_start(struct sched_readers *r, unsigned nthreads,
                        struct event *wake);
void sched_readers_stop(struct sched_readers *r);
/* After stop, once no batch is alive any more. */
void sched_readers_release(struct sched_readers *r);
void sched_readers_submit(struct sched_readers *r, struct sched_file *f);
/* Take every pending message (a list, oldest first). */
struct sched_rmsg *sched_readers_take(struct sched_readers *r);
/*
 * On the main thread: cut an uncut batch (a file read whole while every
 * destination was to be offered it by digest) into the chunks a reader
 * would have made, naming each. Its bytes stay where they are. Returns 0
 * at once for a batch already cut.
 */
int sched_batch_cut(struct sched_readers *r, struct sched_batch *b);
/* A batch is done with: its bytes no longer count as held. */
void sched_batch_free(struct sched_readers *r, struct sched_batch *b);
/* Give back bytes counted as held (a batch freed or never made). */
void sched_readers_unhold(struct sched_readers *r, size_t bytes);

#endif
