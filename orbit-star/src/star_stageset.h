/*
 * star_stageset.h - the set of staging files that exist, by the SHA-256 of
 * their path (their name in hex): an open-addressing hash set, so that a
 * commit in place can skip unlinking a staging file that is not there.
 * Private to orbit-star; one thread.
 */
#ifndef ORBIT_STAR_STAGESET_H
#define ORBIT_STAR_STAGESET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STAGESET_KEY 32

struct stage_set {
    uint8_t (*keys)[STAGESET_KEY];
    uint8_t *used;
    size_t cap; /* a power of two, or 0 */
    size_t n;
};

/* Add k (a no-op if present): 0 or ORBIT_ENOMEM (the set unchanged). */
int stage_set_add(struct stage_set *ss, const uint8_t k[STAGESET_KEY]);
void stage_set_remove(struct stage_set *ss, const uint8_t k[STAGESET_KEY]);
bool stage_set_has(const struct stage_set *ss, const uint8_t k[STAGESET_KEY]);
void stage_set_free(struct stage_set *ss); /* empties it */

#endif
