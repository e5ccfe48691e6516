/*
 * orbit/pak_pool.h - a directory of containers, container_NNNNNN.orbitpak,
 * appended to one at a time and rotated at a size limit.
 *
 * The pool appends to the highest-numbered container (resuming it after a
 * restart, a torn tail cut off) and starts the next number when a record
 * would take the active container past rotate_size (a record larger than
 * the limit still goes alone into a fresh container). Numbers are never
 * reused. Reads go through a small cache of open readers; every read is
 * verified against the chunk id (see pak.h).
 *
 * Space is reclaimed only through pak_pool_remove(), which the starmap's
 * garbage collection calls once the index transaction that dropped the last
 * reference to a container is durable (starmap.h). The active container is
 * never removed (ORBIT_ESTATE).
 *
 * Ownership: pak_pool_open() / pak_pool_free() (NULL no-op); free does not
 * sync (call pak_pool_sync() first). Errors as in pak.h, plus ORBIT_ESTATE,
 * ORBIT_ENOTDIR and ORBIT_EFULL (container numbers exhausted).
 * pak_pool_errmsg() is the message of the pool's latest failure, naming the
 * container and the offset.
 * Thread-safety: every function is thread-safe (one mutex per pool; reads
 * and appends are serialized).
 */
#ifndef ORBIT_PAK_POOL_H
#define ORBIT_PAK_POOL_H

#include "orbit/pak.h"

#include <stddef.h>
#include <stdint.h>

#define PAK_POOL_DEFAULT_ROTATE ((uint64_t)4 << 30)
#define PAK_POOL_MAX_CONTAINER  999999u

struct pak_pool_opts {
    uint64_t rotate_size;        /* default PAK_POOL_DEFAULT_ROTATE */
    struct pak_sync_policy sync; /* default PAK_SYNC_EXPLICIT */
    size_t max_open_readers;     /* default 8 */
};

/* Where a record lives in the pool. */
struct pak_loc {
    uint32_t container;
    uint64_t offset;
};

struct pak_pool;

void pak_pool_opts_default(struct pak_pool_opts *o);

/* Open (creating it if missing) the pool directory dir; o NULL: defaults. */
int pak_pool_open(const char *dir, const struct pak_pool_opts *o,
                  struct pak_pool **out);
void pak_pool_free(struct pak_pool *p);

/* Append an encoded chunk (pak_writer_append) to the active container. */
int pak_pool_append(struct pak_pool *p, const struct chunk_id *id,
                    uint8_t codec, size_t raw_len, const void *stored,
                    size_t stored_len, struct pak_loc *loc);
/* Make everything appended so far durable. */
int pak_pool_sync(struct pak_pool *p);
/* Close the active container (synced) and start the next one. */
int pak_pool_rotate(struct pak_pool *p);

/* Read, decode and verify the record at loc (pak_reader_read). */
int pak_pool_read(struct pak_pool *p, const struct pak_loc *loc,
                  const struct chunk_id *expect, void *dst, size_t dst_cap,
                  struct pak_record_info *info);
/*
 * Like pak_pool_read, and also copy the record's stored bytes into
 * stored[0, stored_cap) (for compaction: re-append without re-encoding).
 */
int pak_pool_read_stored(struct pak_pool *p, const struct pak_loc *loc,
                         void *dst, size_t dst_cap, void *stored,
                         size_t stored_cap, struct pak_record_info *info);

/* Delete container n (ORBIT_ESTATE for the active one; a missing one is
 * not an error). */
int pak_pool_remove(struct pak_pool *p, uint32_t container);

/* The container appends go to. */
uint32_t pak_pool_active(struct pak_pool *p);
/* Containers present, ascending, up to max; *n is how many there are. */
int pak_pool_list(struct pak_pool *p, uint32_t *out, size_t max, size_t *n);
/* Path of container n into buf[0, cap). */
int pak_pool_path(const struct pak_pool *p, uint32_t container, char *buf,
                  size_t cap);
const char *pak_pool_errmsg(const struct pak_pool *p);

#endif
