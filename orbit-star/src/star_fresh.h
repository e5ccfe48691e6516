/*
 * star_fresh.h - the star's fresh index: chunk locations made durable by
 * an append-only log (ROOT/.orbit/index.log) and held in a hash table,
 * merged into the LMDB index (core-starmap) in key order once many have
 * gathered.
 *
 * Why: chunk ids are random keys, so indexing a sync round's chunks
 * straight into the B-tree dirties about one leaf page per chunk, and
 * every round rewrites pages the last one wrote: a copy of 155,000 chunks
 * in 470 rounds wrote about 600 MB of index pages for a 28 MiB index.
 * Appended to the log, a round costs one sequential write, made durable by
 * the round's own sync (one syncfs covers it); merged in key order, each
 * leaf page is written about once per merge.
 *
 * Only FILE locations (chunks in staging or committed files) pass through
 * here; container locations go straight to LMDB, whose GC counts them.
 *
 * Threads: append, publish and merge run on one thread at a time (the
 * round's syncer; open and close on the owner, nothing else running);
 * have, lookup and drop from any thread (the loop), under a mutex.
 *
 * Crash: open replays the log (every record up to the first torn or
 * corrupt one), merges it and empties it. A record whose chunk bytes never
 * became durable names bytes that do not verify, and the first read drops
 * it like any stale location. A drop made while a merge runs can be undone
 * by that merge; the next read that finds the location stale drops it
 * again.
 */
#ifndef ORBIT_STAR_FRESH_H
#define ORBIT_STAR_FRESH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "star_store.h"

/* A merge is due from this many entries, or this many bytes of paths. */
#define FRESH_MERGE_ENTRIES 32768
#define FRESH_MERGE_PATHS   ((size_t)4 << 20)
/* Entries per LMDB transaction of a merge (each durable on its own; LMDB
 * keeps the most pages a transaction dirtied allocated). */
#define FRESH_MERGE_TXN 2048

struct starmap;
struct star_fresh;

/* Open (creating it) the log "index.log" in dirfd, replay what it holds
 * into sm and empty it; when that merge fails (a full disk), the table
 * serves the replayed entries and the log keeps them until a later merge.
 * A log whose header is not ours is emptied. */
int star_fresh_open(int dirfd, struct starmap *sm, struct star_fresh **out);
/* Merge what is left (when it can) and free; NULL is a no-op. */
int star_fresh_close(struct star_fresh *f);
/* The log's fd: the round's sync makes the appended records durable. */
int star_fresh_fd(const struct star_fresh *f);

/* Write a record for each FILE location among the n at the log's end (the
 * others are skipped); a failed write leaves the log as it was. Not
 * visible before star_fresh_publish(). */
int star_fresh_append(struct star_fresh *f, const uint8_t *const *ids,
                      const struct star_loc *const *locs, size_t n);
/* After the sync that made them durable: the same n make visible. */
int star_fresh_publish(struct star_fresh *f, const uint8_t *const *ids,
                       const struct star_loc *const *locs, size_t n);
/* Whether a merge is due. */
bool star_fresh_due(struct star_fresh *f);
/* Every entry into LMDB in key order, FRESH_MERGE_TXN per transaction,
 * then the table and the log emptied. On failure both stay as they were
 * (what was committed is in LMDB too) and the next try waits for another
 * eighth of FRESH_MERGE_ENTRIES. */
int star_fresh_merge(struct star_fresh *f);

/* Set have[i] for each of the n ids the table holds (others untouched). */
void star_fresh_have(struct star_fresh *f, const uint8_t *ids, size_t n,
                     bool *have);
/* Up to max locations of id from the table; returns how many. */
size_t star_fresh_lookup(struct star_fresh *f, const uint8_t id[WIRE_ID_LEN],
                         struct star_loc *locs, size_t max);
/* Forget the location loc of id; whether it was held. */
bool star_fresh_drop(struct star_fresh *f, const uint8_t id[WIRE_ID_LEN],
                     const struct star_loc *loc);
/* Entries held; merges done so far. */
size_t star_fresh_count(struct star_fresh *f);
uint64_t star_fresh_merges(struct star_fresh *f);

#endif
