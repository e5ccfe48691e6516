#include "orbit/chunk_codec.h"
#include "orbit/error.h"
#include "starmap_alloc.h"
#include "orbit/starmap.h"
#include "starmap_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define GC_STEP 64

/* ---- garbage collection ---------------------------------------------------
 */

/* Still reclaimable in the durable index: listed in gc, absent from packs. */
static bool
still_reclaimable(struct starmap *sm, MDB_txn *txn, uint32_t container)
{
    uint8_t key[4];
    starmap_container_key(container, key);
    MDB_val k = {4, key}, v;
    return mdb_get(txn, sm->gc, &k, &v) == 0 &&
           mdb_get(txn, sm->packs, &k, &v) == MDB_NOTFOUND;
}

static int
clear_gc_list(struct starmap *sm, const uint32_t *done, size_t n)
{
    MDB_txn *txn = NULL;
    pthread_rwlock_rdlock(&sm->resize);
    int mrc = mdb_txn_begin(sm->env, NULL, 0, &txn);
    for (size_t i = 0; i < n && mrc == 0; i++) {
        uint8_t key[4];
        starmap_container_key(done[i], key);
        MDB_val k = {4, key};
        mrc = mdb_del(txn, sm->gc, &k, NULL);
        if (mrc == MDB_NOTFOUND)
            mrc = 0;
    }
    if (mrc == 0)
        mrc = mdb_txn_commit(txn);
    else if (txn)
        mdb_txn_abort(txn);
    pthread_rwlock_unlock(&sm->resize);
    return starmap_mdb_err(sm, mrc, "clear reclaim list");
}

/* Delete what one refmap_collect() handed out; keep what must wait. */
static int
gc_step(struct starmap *sm, struct pak_pool *pool, uint32_t *done,
        size_t *ndone, uint32_t *kept, size_t *nkept)
{
    uint8_t ids[GC_STEP][REFMAP_ID_LEN];
    size_t n = 0;
    int rc = refmap_collect(sm->rm, ids, GC_STEP, &n);
    MDB_txn *txn = NULL;
    if (rc != 0 || n == 0)
        return rc ? rc : ORBIT_ENOENT;
    rc = starmap_read_begin(sm, &txn);
    for (size_t i = 0; i < n && rc == 0; i++) {
        uint32_t c = starmap_container_from_key(ids[i] + 4);
        if (!still_reclaimable(sm, txn, c))
            continue; /* live again: the index will say so */
        starmap_hook(sm, "gc-before-remove");
        rc = pak_pool_remove(pool, c);
        if (rc == 0) {
            done[(*ndone)++] = c;
        } else {
            kept[(*nkept)++] = c;
            if (rc == ORBIT_ESTATE)
                rc = 0; /* the active container: later */
            else
                starmap_set_err(sm, "%s", pak_pool_errmsg(pool));
        }
    }
    if (txn)
        starmap_read_end(sm, txn);
    return rc;
}

int
starmap_gc(struct starmap *sm, struct pak_pool *pool, size_t *removed)
{
    size_t cap = GC_STEP, ndone = 0, nkept = 0;
    if (!sm || !pool)
        return ORBIT_EINVAL;
    pthread_mutex_lock(&sm->wlock);
    cap += refmap_pending(sm->rm); /* nothing new while we hold wlock */
    uint32_t *done = starmap_malloc(cap * sizeof *done);
    uint32_t *kept = starmap_malloc(cap * sizeof *kept);
    int rc = done && kept ? 0 : ORBIT_ENOMEM;
    while (rc == 0 && ndone + nkept + GC_STEP <= cap)
        rc = gc_step(sm, pool, done, &ndone, kept, &nkept);
    if (rc == ORBIT_ENOENT)
        rc = 0;
    starmap_hook(sm, "gc-after-remove");
    int rc2 = ndone ? clear_gc_list(sm, done, ndone) : 0;
    for (size_t i = 0; i < nkept; i++) /* still listed: hand back to GC */
        starmap_track(sm, kept[i], false);
    refmap_confirm_wal_synced(sm->rm, refmap_seq(sm->rm));
    pthread_mutex_unlock(&sm->wlock);
    free(done);
    free(kept);
    if (removed)
        *removed = ndone;
    return rc ? rc : rc2;
}

/* ---- compaction and re-indexing -------------------------------------------
 */

struct bufs {
    uint8_t *raw, *stored;
    size_t raw_cap, stored_cap;
};

/* Read and verify a record, growing the buffers to its lengths. */
static int
read_record(struct pak_pool *pool, const struct pak_loc *loc, struct bufs *b,
            struct pak_record_info *info)
{
    int rc = starmap_grow_bytes(&b->raw, &b->raw_cap, 1);
    if (rc == 0)
        rc = starmap_grow_bytes(&b->stored, &b->stored_cap, 1);
    if (rc == 0)
        rc = pak_pool_read_stored(pool, loc, b->raw, b->raw_cap, b->stored,
                                  b->stored_cap, info);
    if (rc != ORBIT_EFULL || info->raw_len > CHUNK_CODEC_MAX_RAW)
        return rc;
    rc = starmap_grow_bytes(&b->raw, &b->raw_cap, info->raw_len);
    if (rc == 0)
        rc = starmap_grow_bytes(&b->stored, &b->stored_cap, info->stored_len);
    if (rc == 0)
        rc = pak_pool_read_stored(pool, loc, b->raw, b->raw_cap, b->stored,
                                  b->stored_cap, info);
    return rc;
}

/* Whether the index names (container, offset) for id. */
static int
indexed_at(struct starmap *sm, const struct pak_record_info *info,
           uint32_t container, bool *at)
{
    struct starmap_entry *e = starmap_malloc(sizeof *e);
    if (!e)
        return ORBIT_ENOMEM;
    *at = false;
    int rc = starmap_lookup(sm, &info->id, e);
    for (size_t i = 0; rc == 0 && i < e->nlocs; i++)
        if (e->locs[i].kind == STARMAP_LOC_PACK &&
            e->locs[i].container == container &&
            e->locs[i].offset == info->offset)
            *at = true;
    free(e);
    return rc == ORBIT_ENOENT ? 0 : rc;
}

typedef int (*record_fn)(struct starmap *sm, struct pak_pool *pool,
                         uint32_t container, const struct pak_record_info *,
                         struct bufs *, struct starmap_batch *, uint64_t *);

/* Scan a container and call fn for each whole record; a torn or damaged
 * tail ends the walk (records the scanner cannot reach stay as they are). */
static int
walk_container(struct starmap *sm, struct pak_pool *pool, uint32_t container,
               record_fn fn, struct starmap_batch *b, uint64_t *count)
{
    char path[PATH_MAX];
    struct pak_scanner *s = NULL;
    struct pak_record_info info;
    struct bufs bufs = {0};
    int rc = pak_pool_path(pool, container, path, sizeof path);
    if (rc == 0)
        rc = pak_scanner_open(path, false, &s);
    while (rc == 0 && (rc = pak_scanner_next(s, &info)) == 0)
        rc = fn(sm, pool, container, &info, &bufs, b, count);
    if (rc == ORBIT_ENOENT || rc == ORBIT_ETRUNC || rc == ORBIT_EFORMAT ||
        rc == ORBIT_ECORRUPT)
        rc = 0;
    else if (rc != 0 && s)
        starmap_set_err(sm, "%s", pak_scanner_errmsg(s));
    pak_scanner_free(s);
    free(bufs.raw);
    free(bufs.stored);
    return rc;
}

static int
move_record(struct starmap *sm, struct pak_pool *pool, uint32_t container,
            const struct pak_record_info *info, struct bufs *bufs,
            struct starmap_batch *b, uint64_t *moved)
{
    bool at;
    struct pak_loc old = {container, info->offset}, nl;
    struct starmap_loc *l = starmap_malloc(sizeof *l);
    int rc = l ? indexed_at(sm, info, container, &at) : ORBIT_ENOMEM;
    if (rc != 0 || !at)
        goto out;
    struct pak_record_info got;
    starmap_loc_pack(l, &old, info->stored_len);
    rc = read_record(pool, &old, bufs, &got);
    if (rc == ORBIT_ECORRUPT || rc == ORBIT_ECODEC) {
        rc = starmap_batch_drop_loc(b, &info->id, l); /* bad bytes: drop */
        goto out;
    }
    if (rc == 0)
        rc = pak_pool_append(pool, &got.id, got.codec, got.raw_len,
                             bufs->stored, got.stored_len, &nl);
    if (rc == 0)
        rc = starmap_batch_drop_loc(b, &info->id, l);
    if (rc == 0) {
        starmap_loc_pack(l, &nl, got.stored_len);
        rc = starmap_batch_add_loc(b, &info->id, l);
    }
    if (rc == 0)
        (*moved)++;
out:
    free(l);
    return rc;
}

static int
sync_and_commit(struct starmap *sm, struct pak_pool *pool,
                struct starmap_batch *b)
{
    /* The copies must be durable before the index points at them. */
    int rc = pak_pool_sync(pool);
    if (rc != 0) {
        starmap_set_err(sm, "%s", pak_pool_errmsg(pool));
        return rc;
    }
    return starmap_batch_len(b) ? starmap_batch_commit(sm, b, NULL) : 0;
}

int
starmap_compact(struct starmap *sm, struct pak_pool *pool, uint32_t container,
                uint64_t *moved)
{
    struct starmap_batch *b = NULL;
    uint64_t n = 0;
    if (!sm || !pool)
        return ORBIT_EINVAL;
    if (container == pak_pool_active(pool))
        return ORBIT_ESTATE;
    int rc = starmap_batch_new(&b);
    if (rc == 0)
        rc = walk_container(sm, pool, container, move_record, b, &n);
    if (rc == 0)
        rc = sync_and_commit(sm, pool, b);
    starmap_batch_free(b);
    if (moved)
        *moved = rc == 0 ? n : 0;
    return rc;
}

static int
add_record(struct starmap *sm, struct pak_pool *pool, uint32_t container,
           const struct pak_record_info *info, struct bufs *bufs,
           struct starmap_batch *b, uint64_t *added)
{
    bool at;
    struct pak_loc pl = {container, info->offset};
    struct pak_record_info got;
    int rc = indexed_at(sm, info, container, &at);
    if (rc != 0 || at)
        return rc;
    rc = read_record(pool, &pl, bufs, &got);
    if (rc == ORBIT_ECORRUPT || rc == ORBIT_ECODEC)
        return 0; /* never index bytes that do not match their id */
    struct starmap_loc *l = starmap_malloc(sizeof *l);
    if (rc == 0 && !l)
        rc = ORBIT_ENOMEM;
    if (rc == 0) {
        starmap_loc_pack(l, &pl, info->stored_len);
        rc = starmap_batch_add_loc(b, &info->id, l);
    }
    free(l);
    if (rc == 0)
        (*added)++;
    return rc;
}

int
starmap_index_container(struct starmap *sm, struct pak_pool *pool,
                        uint32_t container, uint64_t *added)
{
    struct starmap_batch *b = NULL;
    uint64_t n = 0;
    if (!sm || !pool)
        return ORBIT_EINVAL;
    int rc = starmap_batch_new(&b);
    if (rc == 0)
        rc = walk_container(sm, pool, container, add_record, b, &n);
    if (rc == 0)
        rc = sync_and_commit(sm, pool, b);
    starmap_batch_free(b);
    if (added)
        *added = rc == 0 ? n : 0;
    return rc;
}
