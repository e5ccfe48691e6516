/*
 * star_internal.h - the star's context, connections and the request
 * handlers shared by the star_*.c files. Private to orbit-star; everything
 * here runs on the star's loop thread.
 */
#ifndef ORBIT_STAR_INTERNAL_H
#define ORBIT_STAR_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "orbit/star.h"
#include "orbit/starmap.h"
#include "orbit/wire.h"
#include "orbit/wire_auth.h"
#include "star_stageset.h"
#include "star_store.h"

struct event;
struct event_base;
struct evbuffer;
struct bufferevent;
struct wire_packer;
struct wire_unpacker;
struct evconnlistener;
struct health_monitor;

enum conn_phase {
    CONN_CHALLENGED = 0, /* AUTH_CHALLENGE sent, waiting for the response */
    CONN_AUTHED = 1,     /* AUTH_OK sent, waiting for HELLO */
    CONN_READY = 2,      /* HELLO done: requests accepted */
};

struct star_conn {
    struct star *star;
    struct bufferevent *bev;
    struct event *deadline; /* auth deadline, then the frame deadline */
    struct star_conn *prev, *next;
    char peer[64];
    enum conn_phase phase;
    uint8_t challenge[WIRE_CHALLENGE_LEN];
    uint32_t refs;    /* the list link plus one per deferred reply */
    uint32_t pending; /* deferred replies not yet sent */
    bool closing;     /* close once the output is flushed */
    bool dead;        /* bufferevent freed; only refs keep it */
    bool goodbye;     /* GOODBYE received, reply once pending is 0 */
    bool read_paused; /* output over its limit */
    uint32_t goodbye_rid;
    /* PACKED frames (the client offered them in HELLO): replies wait in
     * `pack` until the loop comes round (pack_ev) or the run is long. */
    bool packing;
    bool pack_failed;
    struct evbuffer *pack;
    struct event *pack_ev;
    struct wire_packer *packer;
    struct wire_unpacker *unpacker;
};

/* A PUT waiting for its sync round. */
struct star_put_item {
    struct star_conn *conn;
    uint32_t rid;
    bool existed;
    uint8_t id[WIRE_ID_LEN];
    struct star_loc *loc; /* NULL when the chunk was already being stored */
};

/* A COMMIT waiting for its sync round (owns copies of the manifest). */
struct star_commit_item {
    struct star_conn *conn;
    uint32_t rid;
    struct wire_commit c; /* path, target, chunks_raw point into buf */
    uint8_t *buf;
    /* filled while processing */
    int rc;
    uint32_t item;
    char msg[256];
    int fd;        /* assembled staging file, fsync pending */
    bool complete; /* answered COMMIT_OK complete */
    bool ready;    /* assembled and fsynced: to rename */
    bool renamed;
    bool in_place; /* same bytes already there: only mode and times set */
    bool trusted;  /* in place without reading: its record vouched for it */
    bool crossed;  /* copied across filesystems: the fd is not the target */
    bool has_rec;  /* rec: the committed file's fstat, to record */
    struct starmap_file_rec rec;
};

/*
 * A round in flight: its PUTs' syncs and index commit run on the syncer
 * thread (which reads ids and locs only) while the loop takes the next
 * round's requests; its replies and COMMIT group follow on the loop. One
 * round is in flight at a time, so a COMMIT never runs before the round of
 * a PUT received before it has completed.
 */
struct star_round {
    struct star_put_item *puts;
    size_t nputs;
    struct star_commit_item *commits;
    size_t ncommits;
    struct star_sync_plan plan;
    const uint8_t **ids; /* the PUTs that stored a chunk */
    const struct star_loc **locs;
    size_t k;
    int rc;
    uint64_t us_sync, us_index; /* measured on the syncer thread */
    enum {
        ROUND_PUTS,
        ROUND_FILES,
        ROUND_DIRS
    } step; /* what the syncer
               runs or ran */
    uint64_t us_commit_sync;
};

struct star_syncer;   /* star_syncer.c */
struct star_list_job; /* star_fsops.c */

struct star_partial; /* a multi-frame COMMIT in progress */
struct parent_dir;   /* star_commit.c */

struct star {
    struct star_config cfg;
    char *root;
    uint8_t token[WIRE_TOKEN_MAX];
    size_t token_len;
    char name[WIRE_MAX_NAME + 1];
    int rootfd;
    struct star_store *store;
    struct health_monitor *health;

    struct event_base *base;
    bool own_base;
    bool own_thread;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stop;

    struct evconnlistener *listener;
    uint16_t port;
    struct event *drain_timer;
    struct event *health_timer;
    struct event *expire_timer; /* abandoned staging files removed */
    uint32_t last_advisories;

    enum star_state state; /* written on the loop thread under mu */
    struct star_conn *conns;
    uint32_t nconns;

    /* sync round */
    struct event *flush_ev;
    uint64_t round_started_us; /* monotonic start of the latest flush */
    size_t round_items;        /* PUTs and COMMITs it carried */
    struct star_put_item *puts;
    size_t nputs;
    uint64_t put_bytes;
    struct star_commit_item *commits;
    size_t ncommits;
    uint64_t commit_bytes; /* manifest copies held by the group */
    /* SHA-256 of the paths of the regular files the group completes: a
     * second COMMIT of one of them waits for the next group */
    struct stage_set group_files;
    struct star_round round; /* in flight while round_busy */
    bool round_busy;
    bool flush_wanted;                /* a flush came while one was in flight */
    struct star_put_item *spare_puts; /* the arrays not in use */
    struct star_commit_item *spare_commits;
    struct star_syncer *syncer;
    /* LISTs with digests read whole files: one at a time on a thread of
     * their own, the others queued in arrival order */
    struct star_syncer *lister;
    struct star_list_job *list_jobs, *list_jobs_tail; /* head: running */
    size_t nlist_jobs;
    uint8_t *list_buf;       /* WIRE_MAX_CHUNK: the running job's reads */
    _Atomic bool list_stop;  /* the star is going: jobs end early */
    struct parent_dir *dirs; /* commit_group_max: directories to fsync */
    struct star_partial *partials;
    bool records_failing; /* file records not written: logged once */

    uint8_t *scratch;      /* WIRE_MAX_CHUNK: decompressed chunk */
    uint8_t *scratch2;     /* WIRE_MAX_CHUNK: chunk reads */
    struct star_loc *locs; /* STAR_MAX_LOCS: lookups */
    void *zdctx;
    uint64_t started_ms;
    struct star_stats stats;
};

/* ---- star_server.c ---- */
void star_log(const struct star *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Encode and queue m on c (dropped if c is closing or dead). */
int star_send(struct star_conn *c, const struct wire_msg *m);
/* Queue ERROR code/message for request rid; counts the error. */
void star_send_error(struct star_conn *c, uint32_t rid, int code, uint32_t item,
                     const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void star_conn_unref(struct star_conn *c);
/* One deferred reply has been sent (or dropped). */
void star_conn_done(struct star_conn *c);
void star_count_error(struct star *s, int code);
/* ops requests succeeded (for the health monitor's error rate). */
void star_count_ok(struct star *s, uint64_t ops);
uint64_t star_now_ms(void);
uint64_t star_now_us(void); /* CLOCK_MONOTONIC */

/* ---- star_put.c ---- */
int star_batch_init(struct star *s);
void star_batch_release(struct star *s);
void star_handle_have(struct star_conn *c, const struct wire_msg *m);
void star_handle_put(struct star_conn *c, const struct wire_msg *m);
void star_handle_commit(struct star_conn *c, const struct wire_msg *m);
/* Run the pending sync round now (PUTs, then COMMITs). */
void star_flush(struct star *s);

/* ---- star_syncer.c ---- */
/* done(arg) runs on base's loop after each posted job returns, or inside
 * star_syncer_wait(): exactly once per job. */
int star_syncer_new(struct event_base *base, const char *name,
                    void (*done)(void *arg), void *arg,
                    struct star_syncer **out);
/* Hand job(arg) to the thread; ORBIT_EAGAIN while one is posted. */
int star_syncer_post(struct star_syncer *y, void (*job)(void *arg), void *arg);
/* Wait for the posted job, if any, and run its completion now. */
void star_syncer_wait(struct star_syncer *y);
void star_syncer_free(struct star_syncer *y); /* waits first */
void star_syncer_test_pause(void);            /* test seam, weak */

/* ---- star_commit.c ---- */
/* Copy size bytes of src into dst (dst < 0: none) from offset 0, hashing
 * them with SHA-256 into d; reads through buf (WIRE_MAX_CHUNK bytes).
 * ORBIT_ECANCELED as soon as *stop (NULL: never) is set. */
int star_copy_hashed(uint8_t *buf, int src, int dst, uint64_t size,
                     const _Atomic bool *stop, uint8_t d[32]);

/* The group's steps one by one (the two sync steps may run on another
 * thread: they touch only the items, star->dirs and fds). */
void star_commit_assemble(struct star *s, struct star_commit_item *items,
                          size_t n);
void star_commit_sync_files(struct star *s, struct star_commit_item *items,
                            size_t n);
void star_commit_rename(struct star *s, struct star_commit_item *items,
                        size_t n);
void star_commit_sync_dirs(struct star *s, struct star_commit_item *items,
                           size_t n);
void star_commit_finish(struct star *s, struct star_commit_item *items,
                        size_t n);

void star_partials_free(struct star *s);
/* The per-group directory table (commit_group_max entries). */
int star_commit_init(struct star *s);
void star_commit_release(struct star *s);

/* ---- star_fsops.c ---- */
void star_handle_list(struct star_conn *c, const struct wire_msg *m);
int star_lister_init(struct star *s);
/* Ends the running digest LIST early and drops the queued ones (their
 * connections get no reply: the star is going). */
void star_lister_release(struct star *s);
void star_handle_delete(struct star_conn *c, const struct wire_msg *m);
void star_handle_health(struct star_conn *c, const struct wire_msg *m);
/* Sample the disk into the health monitor; the wire advisories now. */
uint32_t star_health_sample(struct star *s, uint64_t *total, uint64_t *used);
/* Arm the periodic health check (BULLETINs on advisory changes). */
int star_health_start(struct star *s);
/* Remove staging files untouched for staging_ttl_s now, then hourly. */
int star_expire_start(struct star *s);

#endif
