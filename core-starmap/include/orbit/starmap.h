/*
 * orbit/starmap.h - the star's chunk index, in LMDB (ROOT/.orbit/starmap):
 * chunk id -> reference count and locations (a record in a pool container,
 * or a byte range of a committed file), plus per-container live counts and
 * the list of containers waiting to be reclaimed.
 *
 * Writes go through a batch: record any number of operations, then
 * starmap_batch_commit() applies them all in one LMDB write transaction (all
 * or nothing). The map grows on demand (MDB_MAP_FULL: double, replay the
 * batch). Lookups (HAVE for many ids at once) use one read transaction.
 *
 * Garbage collection is gated on durability: when a commit drops the last
 * live record of a container, the container is listed as reclaimable in the
 * same transaction and handed to core-resilience's ref-count map only after
 * mdb_txn_commit() has returned 0 (the environment is opened with full
 * sync, so that commit is on disk). starmap_gc() then deletes the files and
 * clears the list. A crash at any point leaves the index pointing only at
 * bytes that exist: a container is deleted after the index stopped naming
 * it, never before. Before committing a batch that points at new pool
 * records, sync the pool (pak_pool_sync()) so the records are durable first.
 *
 * Ownership: starmap_open() / starmap_close() (NULL no-op); batches are the
 * caller's (starmap_batch_new() / starmap_batch_free()); ids and paths
 * passed in are copied. Entries returned by lookup are filled into the
 * caller's struct.
 * Errors: ORBIT_EINVAL, ORBIT_ENOMEM, ORBIT_ENOENT (no such chunk),
 * ORBIT_EDB (LMDB failure; starmap_errmsg() keeps LMDB's message),
 * ORBIT_ECORRUPT (a malformed index value), ORBIT_EFULL (a batch over its
 * operation limit), ORBIT_ETOOBIG (path too long), ORBIT_ESTATE (compacting
 * the active container), plus the pool's codes from GC and compaction.
 * Thread-safety: a starmap is thread-safe (lookups run concurrently; writes,
 * GC and compaction are serialized); a batch is used by one thread.
 */
#ifndef ORBIT_STARMAP_H
#define ORBIT_STARMAP_H

#include "orbit/chunk_id.h"
#include "orbit/pak_pool.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STARMAP_MAX_LOCS      4    /* locations kept per chunk */
#define STARMAP_PATH_MAX      4096 /* including the NUL */
#define STARMAP_BATCH_MAX_OPS ((size_t)1 << 20)

enum starmap_loc_kind {
    STARMAP_LOC_PACK = 1, /* a record in a pool container */
    STARMAP_LOC_FILE = 2, /* a byte range of a committed file under ROOT */
};

struct starmap_loc {
    enum starmap_loc_kind kind;
    uint32_t container; /* PACK */
    uint64_t offset;    /* PACK: record offset; FILE: offset in the file */
    uint32_t length;    /* PACK: stored length; FILE: raw length */
    char path[STARMAP_PATH_MAX]; /* FILE: path relative to ROOT */
};

struct starmap_entry {
    uint64_t refs; /* committed files referencing the chunk */
    size_t nlocs;
    struct starmap_loc locs[STARMAP_MAX_LOCS];
};

struct starmap_opts {
    uint64_t initial_map_size; /* default 64 MiB */
    size_t max_containers;     /* containers tracked by GC; default 1<<20 */
};

struct starmap;
struct starmap_batch;

void starmap_opts_default(struct starmap_opts *o);

/* Open (creating it if missing) the index in directory dir. */
int starmap_open(const char *dir, const struct starmap_opts *o,
                 struct starmap **out);
void starmap_close(struct starmap *sm);
/* LMDB's message for the latest ORBIT_EDB failure (or another detail). */
const char *starmap_errmsg(const struct starmap *sm);

/* Set a location helper: a pool record, or a file range. */
void starmap_loc_pack(struct starmap_loc *loc, const struct pak_loc *pl,
                      uint32_t stored_len);
int starmap_loc_file(struct starmap_loc *loc, const char *path, uint64_t offset,
                     uint32_t length);

int starmap_batch_new(struct starmap_batch **out);
void starmap_batch_free(struct starmap_batch *b);
/* Forget the recorded operations (reuse the batch). */
void starmap_batch_clear(struct starmap_batch *b);
size_t starmap_batch_len(const struct starmap_batch *b);

/* Add a location (creating the entry with 0 refs if missing). A location
 * already present is not added twice; past STARMAP_MAX_LOCS it is skipped. */
int starmap_batch_add_loc(struct starmap_batch *b, const struct chunk_id *id,
                          const struct starmap_loc *loc);
/* Remove a location (matched by container+offset, or path+offset); a
 * missing one is ignored. */
int starmap_batch_drop_loc(struct starmap_batch *b, const struct chunk_id *id,
                           const struct starmap_loc *loc);
/* refs += delta; the commit fails (ORBIT_ENOENT, ORBIT_EINVAL) if the chunk
 * is unknown or refs would go below zero. */
int starmap_batch_ref(struct starmap_batch *b, const struct chunk_id *id,
                      int64_t delta);
/* Remove the entry and all its locations. */
int starmap_batch_forget(struct starmap_batch *b, const struct chunk_id *id);

/*
 * Apply every operation in one durable transaction. On failure nothing is
 * applied and *failed_op (may be NULL) is the index of the operation that
 * failed (or the batch length if the commit itself failed). The batch is
 * left as it was either way.
 */
int starmap_batch_commit(struct starmap *sm, const struct starmap_batch *b,
                         size_t *failed_op);

/* have[i] = whether ids[i] is indexed, for i < n, in one read txn. */
int starmap_have(struct starmap *sm, const struct chunk_id *ids, size_t n,
                 bool *have);
/* The entry of id; ORBIT_ENOENT if none. */
int starmap_lookup(struct starmap *sm, const struct chunk_id *id,
                   struct starmap_entry *out);
/* Live records and stored bytes the index has in a container. */
int starmap_container_live(struct starmap *sm, uint32_t container,
                           uint64_t *records, uint64_t *bytes);
/* Chunks in the index. */
int starmap_count(struct starmap *sm, uint64_t *chunks);

/*
 * Drop this process's page mappings of the index file (madvise
 * MADV_DONTNEED on its shared mapping): the pages stay in the page cache and
 * are mapped again when next read, so nothing read changes, but the
 * process's RSS stops counting every index page it ever touched. A long-lived
 * reader of a big index (a star) calls it now and then. *trimmed (may be
 * NULL): bytes of mapping covered.
 */
int starmap_trim(struct starmap *sm, size_t *trimmed);

/*
 * File records: what the star last committed at a path (its digest, size,
 * mtime, ctime, inode and device, as fstat saw them right after the
 * commit), in the "files" database of the same environment. They let a
 * later commit of the same bytes trust the file at the path without reading
 * it, as long as its fstat still matches exactly. A record is a cache: a
 * stale or missing one only costs a read.
 *
 * Key: 'P' then the path bytes for paths up to STARMAP_FILE_KEY_RAW_MAX
 * bytes (LMDB keys are at most 511 bytes), else 'H' then the SHA-256 of the
 * path. Value (88 bytes, little-endian): version u8 (1), 7 zero bytes,
 * digest[32], size u64, mtime sec i64, mtime nsec u32, ctime sec i64, ctime
 * nsec u32, st_ino u64, st_dev u64.
 */
#define STARMAP_FILE_PATH_MAX    4096 /* bytes, excluding the NUL */
#define STARMAP_FILE_KEY_RAW_MAX 480  /* longer paths are keyed by a hash */

struct starmap_file_rec {
    uint8_t digest[32]; /* SHA-256 of the whole file */
    uint64_t size;
    int64_t mtime_sec;
    uint32_t mtime_nsec;
    int64_t ctime_sec;
    uint32_t ctime_nsec;
    uint64_t ino;
    uint64_t dev;
};

/* Set (insert or overwrite) the record of path; applied by the commit. */
int starmap_batch_file_put(struct starmap_batch *b, const char *path,
                           const struct starmap_file_rec *r);
/* Remove the record of path (a missing one is ignored). */
int starmap_batch_file_drop(struct starmap_batch *b, const char *path);
/* The record of path: 0, ORBIT_ENOENT (none), ORBIT_ECORRUPT (a malformed
 * stored value; starmap_errmsg() says which), ORBIT_EINVAL, ORBIT_ETOOBIG. */
int starmap_file_get(struct starmap *sm, const char *path,
                     struct starmap_file_rec *out);
/* Records in the index. */
int starmap_file_count(struct starmap *sm, uint64_t *records);

/*
 * Delete the containers whose last reference was dropped by a durable
 * commit; *removed (may be NULL) counts them. The active container is kept
 * until it is not active any more. Call it when no pool append is waiting
 * for the batch that indexes it (e.g. from the thread that appends and
 * commits, between batches): a record appended to a container just before
 * the pool rotated away from it is not known to the index until its batch
 * commits, so the GC cannot see that the container is about to be live
 * again.
 */
int starmap_gc(struct starmap *sm, struct pak_pool *pool, size_t *removed);
/* Containers waiting for starmap_gc(). */
size_t starmap_gc_pending(struct starmap *sm);

/*
 * Rewrite the live records of container into the pool's active container,
 * point the index at the copies (one durable commit, after a pool sync),
 * so that the old container becomes reclaimable; *moved counts records.
 * Call starmap_gc() afterwards to delete it.
 */
int starmap_compact(struct starmap *sm, struct pak_pool *pool,
                    uint32_t container, uint64_t *moved);

/*
 * Index every record of a container that the index does not know yet (after
 * a crash between a pool append and its index commit, or to rebuild a lost
 * index); records are verified first. *added counts them.
 */
int starmap_index_container(struct starmap *sm, struct pak_pool *pool,
                            uint32_t container, uint64_t *added);

/*
 * Invariant checker: every value decodes (file records included), container
 * live counts equal the pack locations that name them, and reclaimable
 * containers have none;
 * with pool, every pack location also reads back verified. 0 or
 * ORBIT_ECORRUPT (details in starmap_errmsg()).
 */
int starmap_check(struct starmap *sm, struct pak_pool *pool);

#endif
