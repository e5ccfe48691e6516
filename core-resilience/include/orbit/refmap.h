/*
 * orbit/refmap.h - reference counts of chunks by 32-byte SHA-256 id, with
 * garbage collection gated on the write-ahead log.
 *
 * A chunk whose count drops to zero is not freed at once: the transaction
 * that dropped the last reference may not be durable yet, and a crash would
 * leave the index pointing at reclaimed bytes. Every successful increment or
 * decrement takes the next sequence number (refmap_seq reports the latest);
 * a drop to zero remembers its number. Once the caller has made its log
 * durable up to some point it calls refmap_confirm_wal_synced with the
 * sequence number it read at that point, and refmap_collect hands out the
 * ids that reached zero at or before it and are still at zero. A chunk
 * referenced again before collection leaves the reclaimable set; collected
 * ids are forgotten.
 *
 * Ownership: the map copies ids; collect writes into the caller's array.
 * Errors: ORBIT_EINVAL (NULL argument; decrement of an id already at zero;
 * confirming a sequence number not yet issued), ORBIT_ENOENT (unknown id),
 * ORBIT_EFULL (max_entries ids tracked), ORBIT_ETOOBIG (count would
 * overflow), ORBIT_ENOMEM.
 * Thread-safety: every function is thread-safe (one mutex per map).
 */
#ifndef ORBIT_REFMAP_H
#define ORBIT_REFMAP_H

#include <stddef.h>
#include <stdint.h>

#define REFMAP_ID_LEN 32u

struct refmap;

/* max_entries >= 1 bounds the ids tracked, reclaimable ones included. */
int refmap_new(size_t max_entries, struct refmap **out);
void refmap_free(struct refmap *rm);

/* count + 1; an unknown id starts at 1. out_count may be NULL. */
int refmap_incref(struct refmap *rm, const uint8_t id[REFMAP_ID_LEN],
                  uint64_t *out_count);
/* count - 1; reaching zero makes id reclaimable at this sequence number. */
int refmap_decref(struct refmap *rm, const uint8_t id[REFMAP_ID_LEN],
                  uint64_t *out_count);
/* Current count of id (0 while reclaimable); ORBIT_ENOENT if unknown. */
int refmap_get(const struct refmap *rm, const uint8_t id[REFMAP_ID_LEN],
               uint64_t *out_count);

/* Sequence number of the latest successful incref/decref (0 before any). */
uint64_t refmap_seq(const struct refmap *rm);
/* Everything up to seq is durable. Going backwards is a no-op. */
int refmap_confirm_wal_synced(struct refmap *rm, uint64_t seq);
uint64_t refmap_synced_seq(const struct refmap *rm);

/* Moves up to max reclaimable ids whose zero is durable into out, oldest
 * first, and forgets them; *n_out says how many. */
int refmap_collect(struct refmap *rm, uint8_t (*out)[REFMAP_ID_LEN], size_t max,
                   size_t *n_out);

/* Ids tracked, and among them those at zero awaiting collection. */
size_t refmap_count(const struct refmap *rm);
size_t refmap_pending(const struct refmap *rm);

/* Invariant checker: 0 or ORBIT_ECORRUPT. */
int refmap_check(const struct refmap *rm);

#endif
