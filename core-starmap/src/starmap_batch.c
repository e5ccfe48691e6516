#include "orbit/error.h"
#include "starmap_alloc.h"
#include "orbit/starmap.h"
#include "starmap_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

enum op_kind { OP_ADD, OP_DROP, OP_REF, OP_FORGET, OP_FILE_PUT, OP_FILE_DROP };

struct batch_op {
    enum op_kind kind;
    struct chunk_id id;
    int64_t delta;
    enum starmap_loc_kind loc_kind;
    uint32_t container;
    uint64_t offset;
    uint32_t length;
    char *path;   /* FILE locations */
    uint8_t *fkv; /* file records: key, then (OP_FILE_PUT) the value */
    size_t fklen;
};

struct starmap_batch {
    struct batch_op *ops;
    size_t n, cap;
};

/* A container whose live count a commit changed. */
struct touched {
    uint32_t container;
    bool was_live;
    bool now_live;
};

struct apply_ctx {
    struct starmap *sm;
    MDB_txn *txn;
    struct touched *t;
    size_t nt, tcap;
};

void
starmap_loc_pack(struct starmap_loc *loc, const struct pak_loc *pl,
                 uint32_t stored_len)
{
    memset(loc, 0, offsetof(struct starmap_loc, path) + 1);
    loc->kind = STARMAP_LOC_PACK;
    loc->container = pl->container;
    loc->offset = pl->offset;
    loc->length = stored_len;
}

int
starmap_loc_file(struct starmap_loc *loc, const char *path, uint64_t offset,
                 uint32_t length)
{
    if (!loc || !path)
        return ORBIT_EINVAL;
    size_t n = strnlen(path, STARMAP_PATH_MAX);
    if (n == 0)
        return ORBIT_EINVAL;
    if (n >= STARMAP_PATH_MAX)
        return ORBIT_ETOOBIG;
    loc->kind = STARMAP_LOC_FILE;
    loc->container = 0;
    loc->offset = offset;
    loc->length = length;
    memcpy(loc->path, path, n + 1);
    return 0;
}

int
starmap_batch_new(struct starmap_batch **out)
{
    if (!out)
        return ORBIT_EINVAL;
    *out = starmap_calloc(1, sizeof **out);
    return *out ? 0 : ORBIT_ENOMEM;
}

void
starmap_batch_clear(struct starmap_batch *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->n; i++) {
        free(b->ops[i].path);
        free(b->ops[i].fkv);
    }
    b->n = 0;
}

void
starmap_batch_free(struct starmap_batch *b)
{
    if (!b)
        return;
    starmap_batch_clear(b);
    free(b->ops);
    free(b);
}

size_t
starmap_batch_len(const struct starmap_batch *b)
{
    return b ? b->n : 0;
}

/* The next op slot (not yet counted: the caller bumps b->n when done). */
static int
push_op(struct starmap_batch *b, enum op_kind kind, struct batch_op **out)
{
    if (b->n == STARMAP_BATCH_MAX_OPS)
        return ORBIT_EFULL;
    struct batch_op *ops = starmap_grow(b->ops, &b->cap, b->n + 1, sizeof *ops);
    if (!ops)
        return ORBIT_ENOMEM;
    b->ops = ops;
    struct batch_op *op = &b->ops[b->n];
    memset(op, 0, sizeof *op);
    op->kind = kind;
    *out = op;
    return 0;
}

static int
push(struct starmap_batch *b, enum op_kind kind, const struct chunk_id *id,
     struct batch_op **out)
{
    if (!b || !id)
        return ORBIT_EINVAL;
    int rc = push_op(b, kind, out);
    if (rc == 0)
        (*out)->id = *id;
    return rc;
}

/* A file record op: the key of path, then r encoded (puts only). */
static int
push_file(struct starmap_batch *b, enum op_kind kind, const char *path,
          const struct starmap_file_rec *r)
{
    uint8_t key[STARMAP_FILE_KEY_MAX];
    size_t klen = 0;
    if (!b)
        return ORBIT_EINVAL;
    int rc = starmap_file_key(path, key, &klen);
    struct batch_op *op = NULL;
    if (rc == 0)
        rc = push_op(b, kind, &op);
    if (rc != 0)
        return rc;
    op->fkv = starmap_malloc(klen + (r ? STARMAP_FILE_REC_LEN : 0));
    if (!op->fkv)
        return ORBIT_ENOMEM;
    memcpy(op->fkv, key, klen);
    op->fklen = klen;
    if (r)
        starmap_file_rec_encode(r, op->fkv + klen);
    b->n++;
    return 0;
}

int
starmap_batch_file_put(struct starmap_batch *b, const char *path,
                       const struct starmap_file_rec *r)
{
    return r ? push_file(b, OP_FILE_PUT, path, r) : ORBIT_EINVAL;
}

int
starmap_batch_file_drop(struct starmap_batch *b, const char *path)
{
    return push_file(b, OP_FILE_DROP, path, NULL);
}

static int
push_loc(struct starmap_batch *b, enum op_kind kind, const struct chunk_id *id,
         const struct starmap_loc *loc)
{
    struct batch_op *op;
    if (!loc ||
        (loc->kind != STARMAP_LOC_PACK && loc->kind != STARMAP_LOC_FILE))
        return ORBIT_EINVAL;
    int rc = push(b, kind, id, &op);
    if (rc != 0)
        return rc;
    op->loc_kind = loc->kind;
    op->container = loc->container;
    op->offset = loc->offset;
    op->length = loc->length;
    if (loc->kind == STARMAP_LOC_FILE) {
        size_t n = strnlen(loc->path, STARMAP_PATH_MAX);
        if (n == 0 || n >= STARMAP_PATH_MAX)
            return ORBIT_EINVAL;
        op->path = starmap_malloc(n + 1);
        if (!op->path)
            return ORBIT_ENOMEM;
        memcpy(op->path, loc->path, n + 1);
    }
    b->n++;
    return 0;
}

int
starmap_batch_add_loc(struct starmap_batch *b, const struct chunk_id *id,
                      const struct starmap_loc *loc)
{
    return push_loc(b, OP_ADD, id, loc);
}

int
starmap_batch_drop_loc(struct starmap_batch *b, const struct chunk_id *id,
                       const struct starmap_loc *loc)
{
    return push_loc(b, OP_DROP, id, loc);
}

int
starmap_batch_ref(struct starmap_batch *b, const struct chunk_id *id,
                  int64_t delta)
{
    struct batch_op *op;
    int rc = push(b, OP_REF, id, &op);
    if (rc == 0) {
        op->delta = delta;
        b->n++;
    }
    return rc;
}

int
starmap_batch_forget(struct starmap_batch *b, const struct chunk_id *id)
{
    struct batch_op *op;
    int rc = push(b, OP_FORGET, id, &op);
    if (rc == 0)
        b->n++;
    return rc;
}

/* ---- applying a batch inside one write transaction -------------------------
 */

static int
mark_touched(struct apply_ctx *a, uint32_t container, bool was_live,
             bool now_live)
{
    for (size_t i = 0; i < a->nt; i++)
        if (a->t[i].container == container) {
            a->t[i].now_live = now_live;
            return 0;
        }
    struct touched *t = starmap_grow(a->t, &a->tcap, a->nt + 1, sizeof *t);
    if (!t)
        return ORBIT_ENOMEM;
    a->t = t;
    a->t[a->nt++] = (struct touched){container, was_live, now_live};
    return 0;
}

/* Live records of container += dr, bytes += db; returns an LMDB code. */
static int
pack_adjust(struct apply_ctx *a, uint32_t container, int64_t dr, int64_t db)
{
    uint8_t key[4], val[16];
    uint64_t rec = 0, bytes = 0;
    starmap_container_key(container, key);
    MDB_val k = {4, key}, v;
    int mrc = mdb_get(a->txn, a->sm->packs, &k, &v);
    if (mrc == 0 && v.mv_size == 16) {
        memcpy(val, v.mv_data, 16);
        for (int i = 0; i < 8; i++) {
            rec |= (uint64_t)val[i] << (8 * i);
            bytes |= (uint64_t)val[8 + i] << (8 * i);
        }
    } else if (mrc != MDB_NOTFOUND) {
        return mrc ? mrc : MDB_CORRUPTED;
    }
    if ((dr < 0 && rec < (uint64_t)-dr) || (db < 0 && bytes < (uint64_t)-db))
        return MDB_CORRUPTED;
    uint64_t nrec = rec + (uint64_t)dr, nbytes = bytes + (uint64_t)db;
    for (int i = 0; i < 8; i++) {
        val[i] = (uint8_t)(nrec >> (8 * i));
        val[8 + i] = (uint8_t)(nbytes >> (8 * i));
    }
    v = (MDB_val){16, val};
    mrc = nrec ? mdb_put(a->txn, a->sm->packs, &k, &v, 0)
               : mdb_del(a->txn, a->sm->packs, &k, NULL);
    if (mrc != 0)
        return mrc;
    int rc = mark_touched(a, container, rec > 0, nrec > 0);
    return rc == 0 ? 0 : ENOMEM;
}

static bool
loc_matches(const struct starmap_loc *l, const struct batch_op *op)
{
    if (l->kind != op->loc_kind || l->offset != op->offset)
        return false;
    if (l->kind == STARMAP_LOC_PACK)
        return l->container == op->container;
    return strcmp(l->path, op->path) == 0;
}

static int
put_entry(struct apply_ctx *a, const struct chunk_id *id,
          const struct starmap_entry *e)
{
    size_t len = 0;
    if (starmap_entry_encode(e, a->sm->scratch, sizeof a->sm->scratch, &len))
        return EINVAL;
    MDB_val k = {CHUNK_ID_LEN, (void *)id->b}, v = {len, a->sm->scratch};
    return mdb_put(a->txn, a->sm->chunks, &k, &v, 0);
}

/* The entry of op's chunk: LMDB code; *found false if missing. */
static int
get_entry(struct apply_ctx *a, const struct chunk_id *id,
          struct starmap_entry *e, bool *found)
{
    MDB_val k = {CHUNK_ID_LEN, (void *)id->b}, v;
    int mrc = mdb_get(a->txn, a->sm->chunks, &k, &v);
    *found = mrc == 0;
    if (mrc == MDB_NOTFOUND) {
        e->refs = 0;
        e->nlocs = 0;
        return 0;
    }
    if (mrc != 0)
        return mrc;
    return starmap_entry_decode(v.mv_data, v.mv_size, e) ? MDB_CORRUPTED : 0;
}

static int
apply_add(struct apply_ctx *a, const struct batch_op *op,
          struct starmap_entry *e)
{
    bool found;
    int mrc = get_entry(a, &op->id, e, &found);
    if (mrc != 0)
        return mrc;
    for (size_t i = 0; i < e->nlocs; i++)
        if (loc_matches(&e->locs[i], op))
            return 0;
    if (e->nlocs == STARMAP_MAX_LOCS)
        return 0; /* enough copies known */
    struct starmap_loc *l = &e->locs[e->nlocs++];
    l->kind = op->loc_kind;
    l->container = op->container;
    l->offset = op->offset;
    l->length = op->length;
    l->path[0] = '\0';
    if (op->path)
        memcpy(l->path, op->path, strlen(op->path) + 1);
    mrc = put_entry(a, &op->id, e);
    if (mrc == 0 && op->loc_kind == STARMAP_LOC_PACK)
        mrc = pack_adjust(a, op->container, 1, op->length);
    return mrc;
}

static int
apply_drop(struct apply_ctx *a, const struct batch_op *op,
           struct starmap_entry *e)
{
    bool found;
    int mrc = get_entry(a, &op->id, e, &found);
    if (mrc != 0 || !found)
        return mrc;
    for (size_t i = 0; i < e->nlocs; i++) {
        if (!loc_matches(&e->locs[i], op))
            continue;
        uint32_t len = e->locs[i].length;
        e->locs[i] = e->locs[e->nlocs - 1];
        e->nlocs--;
        mrc = put_entry(a, &op->id, e);
        if (mrc == 0 && op->loc_kind == STARMAP_LOC_PACK)
            mrc = pack_adjust(a, op->container, -1, -(int64_t)len);
        return mrc;
    }
    return 0;
}

static int
apply_forget(struct apply_ctx *a, const struct batch_op *op,
             struct starmap_entry *e)
{
    bool found;
    int mrc = get_entry(a, &op->id, e, &found);
    if (mrc != 0 || !found)
        return mrc;
    for (size_t i = 0; i < e->nlocs && mrc == 0; i++)
        if (e->locs[i].kind == STARMAP_LOC_PACK)
            mrc = pack_adjust(a, e->locs[i].container, -1,
                              -(int64_t)e->locs[i].length);
    MDB_val k = {CHUNK_ID_LEN, (void *)op->id.b};
    return mrc ? mrc : mdb_del(a->txn, a->sm->chunks, &k, NULL);
}

/* Returns an LMDB code, or a negative ORBIT_E* code for a refused op. */
static int
apply_ref(struct apply_ctx *a, const struct batch_op *op,
          struct starmap_entry *e)
{
    bool found;
    int mrc = get_entry(a, &op->id, e, &found);
    if (mrc != 0)
        return mrc;
    if (!found)
        return ORBIT_ENOENT;
    if (op->delta < 0 && e->refs < (uint64_t)-op->delta)
        return ORBIT_EINVAL;
    e->refs += (uint64_t)op->delta;
    return put_entry(a, &op->id, e);
}

static int
apply_file(struct apply_ctx *a, const struct batch_op *op)
{
    MDB_val k = {op->fklen, op->fkv};
    if (op->kind == OP_FILE_DROP) {
        int mrc = mdb_del(a->txn, a->sm->files, &k, NULL);
        return mrc == MDB_NOTFOUND ? 0 : mrc;
    }
    MDB_val v = {STARMAP_FILE_REC_LEN, op->fkv + op->fklen};
    return mdb_put(a->txn, a->sm->files, &k, &v, 0);
}

/* After all ops: the reclaim list follows the final live counts. */
static int
update_gc_list(struct apply_ctx *a)
{
    for (size_t i = 0; i < a->nt; i++) {
        uint8_t key[4], one = 1;
        starmap_container_key(a->t[i].container, key);
        MDB_val k = {4, key}, v = {1, &one};
        int mrc = a->t[i].now_live ? mdb_del(a->txn, a->sm->gc, &k, NULL)
                                   : mdb_put(a->txn, a->sm->gc, &k, &v, 0);
        if (mrc != 0 && mrc != MDB_NOTFOUND)
            return mrc;
    }
    return 0;
}

static int
apply_all(struct apply_ctx *a, const struct starmap_batch *b, size_t *failed)
{
    struct starmap_entry *e = starmap_malloc(sizeof *e);
    int rc = e ? 0 : ENOMEM;
    for (size_t i = 0; i < b->n && rc == 0; i++) {
        const struct batch_op *op = &b->ops[i];
        switch (op->kind) {
        case OP_ADD:
            rc = apply_add(a, op, e);
            break;
        case OP_DROP:
            rc = apply_drop(a, op, e);
            break;
        case OP_REF:
            rc = apply_ref(a, op, e);
            break;
        case OP_FORGET:
            rc = apply_forget(a, op, e);
            break;
        case OP_FILE_PUT:
        case OP_FILE_DROP:
            rc = apply_file(a, op);
            break;
        }
        *failed = i;
    }
    if (rc == 0) {
        *failed = b->n;
        rc = update_gc_list(a);
    }
    free(e);
    return rc;
}

static int
grow_map(struct starmap *sm)
{
    pthread_rwlock_wrlock(&sm->resize);
    uint64_t next = sm->mapsize * 2;
    int mrc = mdb_env_set_mapsize(sm->env, (size_t)next);
    if (mrc == 0)
        sm->mapsize = next;
    pthread_rwlock_unlock(&sm->resize);
    return starmap_mdb_err(sm, mrc, "grow map");
}

/* One attempt: 0, MDB_MAP_FULL (grow and retry), or a failure. */
static int
try_commit(struct apply_ctx *a, const struct starmap_batch *b, size_t *failed)
{
    struct starmap *sm = a->sm;
    pthread_rwlock_rdlock(&sm->resize);
    int rc = mdb_txn_begin(sm->env, NULL, 0, &a->txn);
    if (rc != 0) {
        pthread_rwlock_unlock(&sm->resize);
        return starmap_mdb_err(sm, rc, "begin write");
    }
    a->nt = 0;
    rc = apply_all(a, b, failed);
    if (rc == 0) {
        starmap_hook(sm, "batch-applied");
        rc = mdb_txn_commit(a->txn);
    } else {
        mdb_txn_abort(a->txn);
    }
    a->txn = NULL;
    pthread_rwlock_unlock(&sm->resize);
    /* ORBIT_E* codes are small negatives; LMDB's are below -30000. */
    if (rc == 0 || rc == MDB_MAP_FULL || (rc < 0 && rc > MDB_KEYEXIST))
        return rc;
    return starmap_mdb_err(sm, rc, "commit batch");
}

/* The commit is durable: now the GC may learn which containers emptied. */
static int
publish(struct apply_ctx *a)
{
    int rc = 0;
    for (size_t i = 0; i < a->nt && rc == 0; i++)
        rc = starmap_track(a->sm, a->t[i].container, a->t[i].now_live);
    if (rc == 0)
        rc = refmap_confirm_wal_synced(a->sm->rm, refmap_seq(a->sm->rm));
    if (rc != 0)
        starmap_set_err(a->sm, "starmap: GC bookkeeping: %s",
                        orbit_strerror(rc));
    return rc;
}

int
starmap_batch_commit(struct starmap *sm, const struct starmap_batch *b,
                     size_t *failed_op)
{
    size_t failed = 0;
    if (!sm || !b)
        return ORBIT_EINVAL;
    struct apply_ctx a = {.sm = sm};
    pthread_mutex_lock(&sm->wlock);
    int rc;
    while ((rc = try_commit(&a, b, &failed)) == MDB_MAP_FULL)
        if ((rc = grow_map(sm)) != 0)
            break;
    if (rc == 0) {
        starmap_hook(sm, "batch-committed");
        rc = publish(&a);
    } else if (failed < b->n && rc > MDB_KEYEXIST && b->ops[failed].fkv) {
        starmap_set_err(sm, "starmap: batch operation %zu (file record): %s",
                        failed, orbit_strerror(rc));
    } else if (failed < b->n && rc > MDB_KEYEXIST) {
        char hex[CHUNK_ID_HEX_LEN + 1];
        chunk_id_to_hex(&b->ops[failed].id, hex);
        starmap_set_err(sm, "starmap: batch operation %zu (chunk %s): %s",
                        failed, hex, orbit_strerror(rc));
    }
    pthread_mutex_unlock(&sm->wlock);
    free(a.t);
    if (failed_op)
        *failed_op = failed;
    return rc;
}
