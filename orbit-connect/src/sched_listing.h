/*
 * sched_listing.h - a destination's listing for `orbit sync`, kept in two
 * unlinked temporary files (fixed-size records, and their paths) that are
 * mapped once the listing is complete: lookups are binary searches in the
 * star's component order, and the only memory that grows with the number
 * of entries is one "seen" bit each. Mapped pages are clean and dropped
 * every few thousand lookups, so a million-entry destination costs about
 * 125 KiB of heap, not a hundred bytes an entry.
 * Private to orbit-connect; one thread.
 */
#ifndef ORBIT_SCHED_LISTING_H
#define ORBIT_SCHED_LISTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orbit/wire.h"

struct sched_listing;

/* One entry; path points into the mapping (valid until the listing is
 * freed). */
struct sched_listed {
    const char *path;
    uint64_t size;
    int64_t mtime_sec;
    uint32_t mtime_nsec;
    uint8_t ftype;
    size_t idx; /* for sched_listing_mark_seen() */
};

int sched_listing_new(struct sched_listing **out);
void sched_listing_free(struct sched_listing *l); /* NULL is a no-op */

/* Append an entry (before sched_listing_seal()). Entries normally arrive
 * in component order, as LIST pages them; any other order is sorted at
 * the seal. */
int sched_listing_add(struct sched_listing *l, const struct wire_list_entry *w);

/* The listing is complete: map it. */
int sched_listing_seal(struct sched_listing *l);

size_t sched_listing_count(const struct sched_listing *l);

/* The entry at path, if listed (sealed listings only). */
bool sched_listing_find(struct sched_listing *l, const char *path,
                        struct sched_listed *out);

/* The i-th entry in component order, i < count. */
void sched_listing_get(struct sched_listing *l, size_t i,
                       struct sched_listed *out);

void sched_listing_mark_seen(struct sched_listing *l, size_t idx);
bool sched_listing_seen(const struct sched_listing *l, size_t idx);

#endif
