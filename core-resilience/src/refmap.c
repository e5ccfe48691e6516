#include "orbit/refmap.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "orbit/error.h"
#include "res_alloc.h"
#include "res_lock.h"
#include "res_map.h"

struct rm_entry {
    uint8_t id[REFMAP_ID_LEN];
    uint64_t count;
    uint64_t zero_seq;     /* valid while count == 0 */
    struct rm_entry *prev; /* pending list, in zero_seq order */
    struct rm_entry *next;
};

struct refmap {
    struct res_map *map;
    struct rm_entry *pending_head; /* oldest zero */
    struct rm_entry *pending_tail;
    size_t pending;
    uint64_t seq;
    uint64_t synced;
    pthread_mutex_t mu;
};

int
refmap_new(size_t max_entries, struct refmap **out)
{
    struct refmap *rm;
    int rc;

    if (!out)
        return ORBIT_EINVAL;
    *out = NULL;
    if (max_entries == 0)
        return ORBIT_EINVAL;
    rm = res_calloc(1, sizeof *rm);
    if (!rm)
        return ORBIT_ENOMEM;
    rc = res_map_new(max_entries, &rm->map);
    if (rc == ORBIT_OK && pthread_mutex_init(&rm->mu, NULL) != 0)
        rc = ORBIT_ENOMEM;
    if (rc < 0) {
        res_map_free(rm->map, NULL);
        free(rm);
        return rc;
    }
    *out = rm;
    return ORBIT_OK;
}

void
refmap_free(struct refmap *rm)
{
    if (!rm)
        return;
    res_map_free(rm->map, free);
    pthread_mutex_destroy(&rm->mu);
    free(rm);
}

static void
rm_pending_append(struct refmap *rm, struct rm_entry *e)
{
    e->next = NULL;
    e->prev = rm->pending_tail;
    if (rm->pending_tail)
        rm->pending_tail->next = e;
    else
        rm->pending_head = e;
    rm->pending_tail = e;
    rm->pending++;
}

static void
rm_pending_unlink(struct refmap *rm, struct rm_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        rm->pending_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        rm->pending_tail = e->prev;
    e->prev = e->next = NULL;
    rm->pending--;
}

static int
rm_incref_locked(struct refmap *rm, const uint8_t *id, uint64_t *count)
{
    struct rm_entry *e = res_map_get(rm->map, id, REFMAP_ID_LEN);
    int rc;

    if (!e) {
        e = res_calloc(1, sizeof *e);
        if (!e)
            return ORBIT_ENOMEM;
        memcpy(e->id, id, REFMAP_ID_LEN);
        rc = res_map_insert(rm->map, e->id, REFMAP_ID_LEN, e);
        if (rc < 0) {
            free(e);
            return rc;
        }
    } else if (e->count == UINT64_MAX) {
        return ORBIT_ETOOBIG;
    } else if (e->count == 0) {
        rm_pending_unlink(rm, e);
    }
    e->count++;
    rm->seq++;
    *count = e->count;
    return ORBIT_OK;
}

static int
rm_decref_locked(struct refmap *rm, const uint8_t *id, uint64_t *count)
{
    struct rm_entry *e = res_map_get(rm->map, id, REFMAP_ID_LEN);

    if (!e)
        return ORBIT_ENOENT;
    if (e->count == 0)
        return ORBIT_EINVAL;
    e->count--;
    rm->seq++;
    if (e->count == 0) {
        e->zero_seq = rm->seq;
        rm_pending_append(rm, e);
    }
    *count = e->count;
    return ORBIT_OK;
}

typedef int (*rm_op_fn)(struct refmap *, const uint8_t *, uint64_t *);

static int
rm_apply(struct refmap *rm, const uint8_t *id, uint64_t *out_count, rm_op_fn op)
{
    uint64_t count = 0;
    int rc;

    if (!rm || !id)
        return ORBIT_EINVAL;
    res_lock(&rm->mu);
    rc = op(rm, id, &count);
    res_unlock(&rm->mu);
    if (rc == ORBIT_OK && out_count)
        *out_count = count;
    return rc;
}

int
refmap_incref(struct refmap *rm, const uint8_t id[REFMAP_ID_LEN],
              uint64_t *out_count)
{
    return rm_apply(rm, id, out_count, rm_incref_locked);
}

int
refmap_decref(struct refmap *rm, const uint8_t id[REFMAP_ID_LEN],
              uint64_t *out_count)
{
    return rm_apply(rm, id, out_count, rm_decref_locked);
}

int
refmap_get(const struct refmap *rm, const uint8_t id[REFMAP_ID_LEN],
           uint64_t *out_count)
{
    const struct rm_entry *e;

    if (!rm || !id || !out_count)
        return ORBIT_EINVAL;
    res_lock(&rm->mu);
    e = res_map_get(rm->map, id, REFMAP_ID_LEN);
    if (e)
        *out_count = e->count;
    res_unlock(&rm->mu);
    return e ? ORBIT_OK : ORBIT_ENOENT;
}

struct rm_view {
    uint64_t seq;
    uint64_t synced;
    size_t count;
    size_t pending;
};

static struct rm_view
rm_view(const struct refmap *rm)
{
    struct rm_view v = {0, 0, 0, 0};

    if (!rm)
        return v;
    res_lock(&rm->mu);
    v.seq = rm->seq;
    v.synced = rm->synced;
    v.count = res_map_count(rm->map);
    v.pending = rm->pending;
    res_unlock(&rm->mu);
    return v;
}

uint64_t
refmap_seq(const struct refmap *rm)
{
    return rm_view(rm).seq;
}

uint64_t
refmap_synced_seq(const struct refmap *rm)
{
    return rm_view(rm).synced;
}

size_t
refmap_count(const struct refmap *rm)
{
    return rm_view(rm).count;
}

size_t
refmap_pending(const struct refmap *rm)
{
    return rm_view(rm).pending;
}

int
refmap_confirm_wal_synced(struct refmap *rm, uint64_t seq)
{
    int rc = ORBIT_OK;

    if (!rm)
        return ORBIT_EINVAL;
    res_lock(&rm->mu);
    if (seq > rm->seq)
        rc = ORBIT_EINVAL;
    else if (seq > rm->synced)
        rm->synced = seq;
    res_unlock(&rm->mu);
    return rc;
}

int
refmap_collect(struct refmap *rm, uint8_t (*out)[REFMAP_ID_LEN], size_t max,
               size_t *n_out)
{
    size_t n = 0;

    if (!rm || !n_out || (!out && max > 0))
        return ORBIT_EINVAL;
    res_lock(&rm->mu);
    while (n < max && rm->pending_head &&
           rm->pending_head->zero_seq <= rm->synced) {
        struct rm_entry *e = rm->pending_head;
        rm_pending_unlink(rm, e);
        memcpy(out[n++], e->id, REFMAP_ID_LEN);
        res_map_remove(rm->map, e->id, REFMAP_ID_LEN);
        free(e);
    }
    res_unlock(&rm->mu);
    *n_out = n;
    return ORBIT_OK;
}

struct rm_check_ctx {
    size_t zeros;
    uint64_t seq;
};

static int
rm_check_entry(const void *key, size_t len, void *val, void *ctx)
{
    const struct rm_entry *e = val;
    struct rm_check_ctx *c = ctx;

    if (len != REFMAP_ID_LEN || memcmp(key, e->id, REFMAP_ID_LEN) != 0)
        return ORBIT_ECORRUPT;
    if (e->count == 0) {
        c->zeros++;
        if (e->zero_seq == 0 || e->zero_seq > c->seq)
            return ORBIT_ECORRUPT;
    } else if (e->prev || e->next) {
        return ORBIT_ECORRUPT;
    }
    return ORBIT_OK;
}

/* The pending list: linked both ways, in zero_seq order, all at zero and all
 * present in the map. */
static int
rm_check_pending(const struct refmap *rm)
{
    const struct rm_entry *prev = NULL;
    size_t n = 0;

    for (const struct rm_entry *e = rm->pending_head; e; e = e->next) {
        if (e->prev != prev || e->count != 0 ||
            (prev && prev->zero_seq >= e->zero_seq) ||
            res_map_get(rm->map, e->id, REFMAP_ID_LEN) != e)
            return ORBIT_ECORRUPT;
        prev = e;
        if (++n > rm->pending)
            return ORBIT_ECORRUPT;
    }
    return prev == rm->pending_tail && n == rm->pending ? ORBIT_OK
                                                        : ORBIT_ECORRUPT;
}

int
refmap_check(const struct refmap *rm)
{
    struct rm_check_ctx c = {0, 0};
    int rc;

    if (!rm || !rm->map)
        return ORBIT_ECORRUPT;
    res_lock(&rm->mu);
    c.seq = rm->seq;
    rc = rm->synced <= rm->seq ? res_map_check(rm->map) : ORBIT_ECORRUPT;
    if (rc == ORBIT_OK)
        rc = res_map_foreach(rm->map, rm_check_entry, &c);
    if (rc == ORBIT_OK && c.zeros != rm->pending)
        rc = ORBIT_ECORRUPT;
    if (rc == ORBIT_OK)
        rc = rm_check_pending(rm);
    res_unlock(&rm->mu);
    return rc;
}
