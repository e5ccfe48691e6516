/*
 * A hash set of 32-byte keys (SHA-256 digests, so their first bytes are the
 * hash): linear probing, at most half full, deletion by backward shift.
 */
#include <stdlib.h>
#include <string.h>

#include "orbit/error.h"
#include "star_alloc.h"
#include "star_stageset.h"

static size_t
home(const uint8_t k[STAGESET_KEY], size_t cap)
{
    uint64_t h = 0;
    memcpy(&h, k, sizeof h);
    return (size_t)h & (cap - 1);
}

/* The slot holding k, or the empty slot where it would go. */
static size_t
probe(const struct stage_set *ss, const uint8_t k[STAGESET_KEY], bool *found)
{
    size_t i = home(k, ss->cap);
    while (ss->used[i] && memcmp(ss->keys[i], k, STAGESET_KEY) != 0)
        i = (i + 1) & (ss->cap - 1);
    *found = ss->used[i] != 0;
    return i;
}

static void
put_at(struct stage_set *ss, size_t i, const uint8_t k[STAGESET_KEY])
{
    memcpy(ss->keys[i], k, STAGESET_KEY);
    ss->used[i] = 1;
}

static int
grow(struct stage_set *ss)
{
    size_t cap = ss->cap ? ss->cap * 2 : 64;
    struct stage_set next = {star_calloc(cap, STAGESET_KEY),
                             star_calloc(cap, 1), cap, ss->n};
    if (!next.keys || !next.used) {
        stage_set_free(&next);
        return ORBIT_ENOMEM;
    }
    for (size_t i = 0; i < ss->cap; i++) {
        bool found = false;
        if (ss->used[i])
            put_at(&next, probe(&next, ss->keys[i], &found), ss->keys[i]);
    }
    stage_set_free(ss);
    *ss = next;
    return 0;
}

int
stage_set_add(struct stage_set *ss, const uint8_t k[STAGESET_KEY])
{
    if ((ss->n + 1) * 2 > ss->cap && grow(ss) < 0)
        return ORBIT_ENOMEM;
    bool found = false;
    size_t i = probe(ss, k, &found);
    if (!found) {
        put_at(ss, i, k);
        ss->n++;
    }
    return 0;
}

/* Whether slot j's key may move back to hole i (its home is not in (i, j]). */
static bool
may_fill(const struct stage_set *ss, size_t i, size_t j)
{
    size_t h = home(ss->keys[j], ss->cap);
    return i <= j ? h <= i || h > j : h <= i && h > j;
}

void
stage_set_remove(struct stage_set *ss, const uint8_t k[STAGESET_KEY])
{
    bool found = false;
    if (ss->cap == 0)
        return;
    size_t i = probe(ss, k, &found);
    if (!found)
        return;
    ss->used[i] = 0;
    ss->n--;
    for (size_t j = (i + 1) & (ss->cap - 1); ss->used[j];
         j = (j + 1) & (ss->cap - 1)) {
        if (!may_fill(ss, i, j))
            continue;
        put_at(ss, i, ss->keys[j]);
        ss->used[j] = 0;
        i = j;
    }
}

bool
stage_set_has(const struct stage_set *ss, const uint8_t k[STAGESET_KEY])
{
    bool found = false;
    if (ss->cap > 0)
        probe(ss, k, &found);
    return found;
}

void
stage_set_free(struct stage_set *ss)
{
    free(ss->keys);
    free(ss->used);
    memset(ss, 0, sizeof *ss);
}
