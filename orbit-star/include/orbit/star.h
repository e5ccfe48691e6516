/*
 * orbit/star.h - the star: a destination daemon serving the wire protocol
 * (docs/protocol.md) over TCP or an adopted stream socket (a socketpair end
 * for in-process destinations), storing chunks and committing files beneath
 * one root directory (docs/orbit-star.md).
 *
 * Health: the disk is sampled every health_interval_ms into core-resilience's
 * health monitor (with request outcomes); when the advisories change, every
 * client past HELLO gets a BULLETIN (category "health").
 *
 * Lifecycle: REGISTERED (created, refuses work) -> SCHEDULED (star_schedule:
 * accepts work) -> DRAINING (star_drain: no new connections, no new work,
 * in-flight requests finish) -> SHUTDOWN (every connection closed). Work
 * requests (HAVE, PUT, COMMIT, DELETE) outside SCHEDULED are answered ERROR
 * ESTATE, retryable. Each transition is written to stderr (unless quiet)
 * and reported to star_config.on_state, on the star's loop thread.
 *
 * Threads: with star_config.base NULL the star runs its own event_base on its
 * own thread, and every function here may be called from any thread (calls
 * are handed to the star's thread and waited for). With a caller's base, the
 * caller runs the loop and calls these functions from the loop's thread (or
 * before it runs); callbacks fire on that thread.
 *
 * Ownership: star_new copies the config (root path, token, name). Adopted
 * fds belong to the star from the call on, also on failure. The star ignores
 * SIGPIPE process-wide if its disposition is the default, because a peer
 * closing early must never kill the process.
 *
 * Errors: ORBIT_EINVAL (bad config or argument), ORBIT_ENOENT / ORBIT_ENOTDIR
 * / ORBIT_EPERM (root), ORBIT_EAGAIN (another star serves the root),
 * ORBIT_EEXIST (address in use), ORBIT_ECONNECT (cannot listen), ORBIT_ESTATE
 * (not allowed in this state), ORBIT_EDB (index), ORBIT_ENOMEM.
 */
#ifndef ORBIT_STAR_H
#define ORBIT_STAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct star;

enum star_state {
    STAR_REGISTERED = 0,
    STAR_SCHEDULED = 1,
    STAR_DRAINING = 2,
    STAR_SHUTDOWN = 3,
};

/* Where chunks that carry a placement hint are written. */
enum star_placement {
    STAR_PLACE_STAGING = 0, /* into the hinted file's staging file (default) */
    STAR_PLACE_PACK = 1,    /* always into containers */
};

typedef void (*star_state_cb)(void *arg, enum star_state from,
                              enum star_state to);

struct star_config {
    const char *root;     /* destination root directory; must exist */
    const uint8_t *token; /* shared secret, 1 .. WIRE_TOKEN_MAX bytes */
    size_t token_len;
    const char *name;          /* reported in HELLO_OK; default "orbit-star" */
    struct event_base *base;   /* NULL: the star runs its own loop thread */
    uint32_t max_connections;  /* default 1024; more are refused EAGAIN */
    uint32_t auth_timeout_ms;  /* default 10000: auth must finish by then */
    uint32_t idle_timeout_ms;  /* default 300000: no byte for this long */
    uint32_t frame_timeout_ms; /* default 30000: a started frame completes */
    uint32_t drain_timeout_ms; /* default 30000: then connections are cut */
    uint32_t health_interval_ms; /* default 5000: disk sampled, BULLETIN to
                                    every client when advisories change;
                                    0: only on HEALTH */
    uint32_t batch_max_chunks;   /* default 512 PUTs per sync round */
    uint64_t batch_max_bytes;    /* default 64 MiB per sync round */
    uint32_t batch_delay_us;     /* default 0: sync at the end of a loop pass */
    uint32_t round_interval_us;  /* default 20000: after a busy round (16+
                                    requests) the next starts this long
                                    after it began; after a small one, at
                                    once */
    uint32_t commit_group_max;   /* default 256 COMMITs (or 32 MiB of
                                    manifests) per sync round */
    uint64_t pack_max_bytes;     /* container rotation, default 4 GiB */
    enum star_placement placement;
    /* default true: every PUT is hashed on arrival and refused (ECORRUPT)
     * when its bytes do not match its id. false only for a star whose one
     * client is its own process (the in-process star of a local copy): the
     * ids were computed from the same bytes in memory. Every later read of
     * a chunk and the whole-file digest at COMMIT still check the bytes, so
     * a wrong id fails the COMMIT (ENOENT, retryable) and is dropped.
     * star_listen() refuses (ORBIT_EINVAL) a star configured so. */
    bool verify_puts;
    /* zstd level of the PACKED frames the star offers (clients then pack
     * small requests, and it packs its replies to clients that offer them
     * too); default 0: WIRE_PACK_LEVEL; < 0: PACKED frames are refused. */
    int pack_level;
    /* default 7 days: a staging file nothing wrote to for this long (a
     * transfer abandoned before its COMMIT) is removed, when the star
     * starts and then hourly; its chunks are sent again if ever needed.
     * 0: staging files are kept until committed. */
    uint32_t staging_ttl_s;
    bool quiet; /* no stderr lines (tests) */
    star_state_cb on_state;
    void *on_state_arg;
};

/* Counters, as HEALTH reports them. */
struct star_stats {
    uint64_t bytes_received;  /* raw chunk bytes stored */
    uint64_t chunks_received; /* chunks newly stored */
    uint64_t files_committed;
    uint64_t commits_in_place; /* same bytes already there: only mode and
                                  times set (files_committed counts them) */
    uint64_t commits_trusted;  /* of those, vouched for by the file's record
                                  (its fstat unchanged): not read at all */
    uint64_t errors_total;
    uint64_t errors_io;
    uint64_t errors_proto;
    uint64_t errors_auth;
    uint64_t sync_rounds;        /* grouped PUT syncs performed */
    uint64_t put_syncs;          /* fdatasync/syncfs calls they needed */
    uint64_t commit_groups;      /* grouped COMMIT syncs performed */
    uint64_t rounds;             /* flushes: PUTs, COMMITs or both at once */
    uint64_t containers_removed; /* reclaimed after their chunks moved */
    uint64_t reads_paused;       /* a client's replies were piling up */
    uint64_t packed_in;          /* PACKED frames received and unpacked */
    uint64_t packed_out;         /* PACKED frames of replies sent */
    uint64_t staging_expired;    /* abandoned staging files removed */
    uint64_t index_fresh;        /* chunk locations in the fresh index (its log
                                    and table), not yet merged into LMDB */
    uint64_t index_merges;       /* merges of the fresh index into LMDB */
    /* Where the loop thread's time went, in microseconds (the star logs
     * them when it stops): PUTs taken (decompressed, verified, written),
     * the rounds' syncs of that data and their LMDB index commits; COMMIT
     * groups assembled (chunks placed, whole file read and hashed), their
     * syncs (files, then directories), renames, and file records. */
    uint64_t us_put, us_put_sync, us_index;
    uint64_t us_assemble, us_commit_sync, us_rename, us_record;
    uint32_t connections;
};

/* Fill c with the defaults; root and token stay NULL. */
void star_config_init(struct star_config *c);

/* Raise this process's soft limit on open files to its hard limit: a star
 * holds an fd per connection and per staging file of a sync round (up to
 * batch_max_chunks). Returns the new soft limit, or 0 if it is unknown. */
unsigned long star_raise_nofile(void);

/* Open ROOT/.orbit (created if missing) and its index; state REGISTERED. */
int star_new(const struct star_config *cfg, struct star **out);

/*
 * Drain (if not yet shut down), stop the loop thread if the star owns one,
 * close everything. NULL is a no-op. Never call it from an on_state
 * callback of the same star.
 */
void star_free(struct star *s);

/* Listen on "HOST:PORT" (IPv4 or [IPv6]); port 0 picks a free one. */
int star_listen(struct star *s, const char *addr);

/* The port star_listen() bound (0 before). */
uint16_t star_port(const struct star *s);

/* Serve a connected stream socket (e.g. one end of a socketpair). */
int star_adopt_fd(struct star *s, int fd);

/* REGISTERED -> SCHEDULED. ORBIT_ESTATE from any other state. */
int star_schedule(struct star *s);

/*
 * Begin draining: close the listener, refuse new work, let in-flight
 * requests finish and their replies flush, then close every connection
 * (forcibly after drain_timeout_ms) and enter SHUTDOWN. With its own thread
 * the call waits for SHUTDOWN; with a caller's base it returns at once and
 * SHUTDOWN is reported through on_state. Draining twice is harmless.
 */
int star_drain(struct star *s);

enum star_state star_get_state(const struct star *s);
const char *star_state_name(enum star_state st);

/* A snapshot of the counters. */
void star_get_stats(struct star *s, struct star_stats *out);

/*
 * Invariant checker for tests: connection bookkeeping, bounded queues, and
 * the chunk index (every container location reads back verified). 0 or
 * ORBIT_ECORRUPT. Reads every container record: not for production paths.
 */
int star_check(struct star *s);

#endif
