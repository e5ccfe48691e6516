/*
 * star_store.h - the star's chunk store beneath ROOT/.orbit, on core-starmap:
 *
 *   starmap/    the LMDB index: chunk id -> up to four locations
 *   packs/      container_NNNNNN.orbitpak (pak_pool), for chunks without a
 *               usable placement hint; stored as received (zstd or raw)
 *   staging/<hex sha256(path)>  a file's bytes at their final offsets, for
 *               chunks that arrive with a hint; renamed into place on COMMIT
 *
 * A FILE location (path, offset) is resolved through the staging file of
 * path first and the committed file at path second, so a commit needs no
 * index rewrite for hinted chunks. Every read is verified against the id;
 * a location whose bytes no longer match is dropped (the entry with it when
 * it was the last).
 *
 * Writes are two-phase: star_store_put_*() write the bytes (not yet
 * durable) and fill a location; a sync plan makes every written byte
 * durable (one fdatasync per file touched and the directory of files
 * created, or one syncfs for many); star_store_index_log() records their
 * locations before that sync (container locations in one LMDB
 * transaction, file locations in the fresh index's log, star_fresh.h) and
 * star_store_index_publish() makes them visible after it.
 * Private to orbit-star; used from the star's loop thread, except
 * star_sync_plan_run() and star_store_index_*(), which the round's sync
 * thread runs while the loop goes on taking PUTs (the index has a batch of
 * its own, core-starmap and the fresh table are thread-safe).
 */
#ifndef ORBIT_STAR_STORE_H
#define ORBIT_STAR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orbit/wire.h"

#define STAR_MAX_LOCS 4

/* From this many files in one sync round on, one syncfs() replaces an
 * fsync of each: the same durability for a fraction of the calls. */
#define STAR_SYNCFS_MIN 8

enum star_loc_kind {
    STAR_LOC_PACK = 1,
    STAR_LOC_FILE = 2,
};

struct star_loc {
    uint8_t kind;
    uint32_t length; /* PACK: stored length; FILE: raw length */
    uint64_t offset; /* PACK: record offset; FILE: offset in the file */
    uint32_t pack;   /* PACK: container number */
    char path[WIRE_MAX_PATH + 1]; /* FILE: path relative to ROOT */
};

struct star_store;

/* rootfd: an O_DIRECTORY fd of ROOT (borrowed, must outlive the store);
 * root: its path; pack_max: container rotation size (0: default). */
int star_store_open(int rootfd, const char *root, uint64_t pack_max,
                    struct star_store **out);
void star_store_close(struct star_store *st);

/* Whether the index holds id (no verification). */
int star_store_has(struct star_store *st, const uint8_t id[WIRE_ID_LEN],
                   bool *out);

/* Set bit i of missing (zeroed by the caller) for each id the index lacks. */
int star_store_have(struct star_store *st, const uint8_t *ids, uint32_t n,
                    uint8_t *missing);

/* The recorded locations of id (up to STAR_MAX_LOCS); ORBIT_ENOENT if none. */
int star_store_lookup(struct star_store *st, const uint8_t id[WIRE_ID_LEN],
                      struct star_loc *locs, size_t *n);

/*
 * Read chunk id (raw_len bytes into buf, WIRE_MAX_CHUNK of room) from any
 * of its locations, verified. Locations that fail verification are dropped;
 * ORBIT_ENOENT when none is left.
 */
int star_store_read(struct star_store *st, const uint8_t id[WIRE_ID_LEN],
                    uint32_t raw_len, uint8_t *buf);

/* Append a chunk, as stored on the wire (codec RAW or ZSTD), to the
 * active container. */
int star_store_put_pack(struct star_store *st, const uint8_t id[WIRE_ID_LEN],
                        uint8_t codec, uint32_t raw_len, const uint8_t *stored,
                        uint32_t stored_len, struct star_loc *out);

/* Write raw bytes into the staging file of path (checked) at offset. */
int star_store_put_file(struct star_store *st, const char *path,
                        uint64_t offset, const uint8_t *raw, uint32_t len,
                        struct star_loc *out);

/*
 * Making every byte written since the last plan durable, in two steps, so
 * the syncs run on another thread while the loop writes more:
 * star_store_sync_plan() syncs the containers (rarely written) on the spot
 * and describes the staging files' syncs (one syncfs of their file system
 * for many, else an fdatasync of each on a duplicated fd, and the staging
 * directory's fsync when a file was created), clearing the store's marks:
 * later writes belong to the next plan.
 * star_sync_plan_run() does only those system calls, from any thread;
 * star_sync_plan_free() closes the fds the plan owns.
 */
struct star_sync_plan {
    int rc;   /* a failure met while planning: the run returns it */
    int fsfd; /* >= 0: syncfs it (not owned) */
    int *fds; /* fdatasync each (owned) */
    size_t nfds;
    int dirfd; /* >= 0: fsync it (not owned) */
    int logfd; /* >= 0: the fresh index's log, fdatasync it (not owned) */
};
void star_store_sync_plan(struct star_store *st, struct star_sync_plan *p);
int star_sync_plan_run(struct star_sync_plan *p);
void star_sync_plan_free(struct star_sync_plan *p);

/* fdatasync/fsync/syncfs calls made so far for PUT data (staging files,
 * containers excluded). */
uint64_t star_store_put_syncs(const struct star_store *st);

/* Record n (id, location) pairs: before the sync plan runs, log (the
 * plan's run makes the log durable); after it, publish (visible to
 * lookups from then on; merges the fresh index into LMDB when due). */
int star_store_index_log(struct star_store *st, const uint8_t *const *ids,
                         const struct star_loc *const *locs, size_t n);
int star_store_index_publish(struct star_store *st, const uint8_t *const *ids,
                             const struct star_loc *const *locs, size_t n);
/* Entries in the fresh index (not yet merged into LMDB); its merges. */
void star_store_fresh_stats(struct star_store *st, uint64_t *entries,
                            uint64_t *merges);

/*
 * After the durable commit of path (its chunk refs, WIRE_ID_LEN + u32
 * records as in a decoded COMMIT, starting at offset 0): point every chunk
 * that lives in a container at the file instead and drop the container
 * reference, in one transaction; containers left without a live record
 * are deleted once that transaction is durable. *removed counts them.
 */
int star_store_moved(struct star_store *st, const char *path,
                     const struct wire_commit *c, size_t *removed);

/*
 * File records (core-starmap's "files" database): what was last committed
 * at a path, with the fstat of the file right after. A record is a cache: a
 * lost op leaves a missing or stale record, which only costs a read.
 *
 * put and drop queue an op (applied in order); star_store_files_commit()
 * applies every queued op in one transaction and forgets them whatever the
 * outcome. Queued ops are committed on their own once there are a few
 * thousand, by star_store_files_flush() once the oldest has waited a
 * second, before a get of a path that has one, and at close: one LMDB
 * commit for many commit groups. get: 0, ORBIT_ENOENT, or another error
 * (treat as none). files_error: the latest failed commit (0 if none since
 * the last call).
 */
struct starmap_file_rec;
int star_store_file_get(struct star_store *st, const char *path,
                        struct starmap_file_rec *out);
int star_store_file_put(struct star_store *st, const char *path,
                        const struct starmap_file_rec *r);
int star_store_file_drop(struct star_store *st, const char *path);
int star_store_files_commit(struct star_store *st);
int star_store_files_flush(struct star_store *st, uint64_t now_ms);
int star_store_files_error(struct star_store *st);
/* Once a second, or sooner when the process maps more than 24 MiB of files:
 * drop the index's page mappings (starmap_trim), so the star's RSS does not
 * grow with the size of its index. True when it dropped them. */
bool star_store_trim(struct star_store *st, uint64_t now_ms);
/* The index's message for its latest failure. */
const char *star_store_errmsg(const struct star_store *st);

/* Invariant checker: the fd cache is consistent and core-starmap's check
 * passes (every container location reads back verified). 0 or
 * ORBIT_ECORRUPT. */
int star_store_check(struct star_store *st);

/* Hand over the cached fd of path's staging file, its acknowledged writes
 * already durable (the cache forgets it; the caller's commit syncs what it
 * writes), or -1 when none is cached (or it held unsynced writes: then the
 * next sync plan syncs and closes it). */
int star_store_staging_take(struct star_store *st, const char *path);

/* The staging directory fd (borrowed) and the staging name of path (65
 * bytes with the NUL). */
int star_store_staging_dir(struct star_store *st);

/* Remove the staging files last written before cutoff (seconds since the
 * epoch) that no cached fd holds: transfers abandoned before their COMMIT.
 * Index entries naming their chunks stay until a read finds them stale.
 * *files and *bytes count what was removed. */
int star_store_expire_staging(struct star_store *st, int64_t cutoff,
                              uint64_t *files, uint64_t *bytes);
void star_store_staging_name(const char *path, char name[65]);
/*
 * The store knows which staging files exist (it reads the directory at open
 * and hears of every creation and removal): made tells it of path's, gone
 * of the one called name (renamed away); remove unlinks path's staging file
 * (and forgets its fd) unless the store knows there is none. Nothing is
 * assumed absent when the store cannot know.
 */
void star_store_staging_made(struct star_store *st, const char *path);
void star_store_staging_gone(struct star_store *st, const char name[65]);
void star_store_staging_remove(struct star_store *st, const char *path);

/* Whole-buffer pread/pwrite (EINTR retried); a short read is
 * ORBIT_ETRUNC. */
int star_pread_all(int fd, uint8_t *p, size_t n, uint64_t off);
int star_pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off);

/* SHA-256 of data. */
int star_sha256(const uint8_t *data, size_t len, uint8_t out[32]);

#endif
