#include "orbit/error.h"
#include "starmap_alloc.h"
#include "orbit/starmap.h"
#include "starmap_internal.h"

#include <stdlib.h>
#include <string.h>

/* Live counts rebuilt from the chunk entries, one per container. */
struct tally {
    uint32_t container;
    uint64_t records, bytes;
};

struct check_ctx {
    struct starmap *sm;
    struct pak_pool *pool;
    MDB_txn *txn;
    struct tally *t;
    size_t n, cap;
    uint8_t *buf;
    size_t buf_cap;
};

static struct tally *
tally_of(struct check_ctx *c, uint32_t container)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->t[i].container == container)
            return &c->t[i];
    struct tally *t = starmap_grow(c->t, &c->cap, c->n + 1, sizeof *t);
    if (!t)
        return NULL;
    c->t = t;
    c->t[c->n] = (struct tally){container, 0, 0};
    return &c->t[c->n++];
}

static int
verify_loc(struct check_ctx *c, const struct chunk_id *id,
           const struct starmap_loc *l)
{
    struct pak_loc pl = {l->container, l->offset};
    struct pak_record_info info = {0};
    int rc = ORBIT_EFULL;
    for (int attempt = 0; attempt < 2 && rc == ORBIT_EFULL; attempt++) {
        rc = pak_pool_read(c->pool, &pl, id, c->buf, c->buf_cap, &info);
        if (rc == ORBIT_EFULL && info.raw_len > c->buf_cap &&
            starmap_grow_bytes(&c->buf, &c->buf_cap, info.raw_len))
            return ORBIT_ENOMEM;
    }
    if (rc == 0 && info.stored_len != l->length)
        rc = ORBIT_ECORRUPT;
    if (rc != 0)
        starmap_set_err(c->sm, "starmap check: %s", pak_pool_errmsg(c->pool));
    return rc == ORBIT_ENOMEM ? rc : (rc ? ORBIT_ECORRUPT : 0);
}

static int
check_entry(struct check_ctx *c, const MDB_val *k, const MDB_val *v)
{
    struct starmap_entry *e = starmap_malloc(sizeof *e);
    int rc = e ? 0 : ORBIT_ENOMEM;
    if (rc == 0 && (k->mv_size != CHUNK_ID_LEN ||
                    starmap_entry_decode(v->mv_data, v->mv_size, e) != 0)) {
        starmap_set_err(c->sm, "starmap check: malformed chunk entry");
        rc = ORBIT_ECORRUPT;
    }
    struct chunk_id id;
    if (rc == 0)
        memcpy(id.b, k->mv_data, CHUNK_ID_LEN);
    for (size_t i = 0; rc == 0 && i < e->nlocs; i++) {
        const struct starmap_loc *l = &e->locs[i];
        if (l->kind != STARMAP_LOC_PACK)
            continue;
        struct tally *t = tally_of(c, l->container);
        if (!t) {
            rc = ORBIT_ENOMEM;
            break;
        }
        t->records++;
        t->bytes += l->length;
        if (c->pool)
            rc = verify_loc(c, &id, l);
    }
    free(e);
    return rc;
}

static int
each(struct check_ctx *c, MDB_dbi dbi,
     int (*fn)(struct check_ctx *, const MDB_val *, const MDB_val *))
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = 0, mrc = mdb_cursor_open(c->txn, dbi, &cur);
    while (mrc == 0 && (mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0)
        if ((rc = fn(c, &k, &v)) != 0)
            break;
    if (cur)
        mdb_cursor_close(cur);
    if (rc == 0 && mrc != MDB_NOTFOUND)
        rc = starmap_mdb_err(c->sm, mrc, "check");
    return rc;
}

static int
check_pack(struct check_ctx *c, const MDB_val *k, const MDB_val *v)
{
    if (k->mv_size != 4 || v->mv_size != 16)
        return ORBIT_ECORRUPT;
    uint32_t cn = starmap_container_from_key(k->mv_data);
    const uint8_t *p = v->mv_data;
    uint64_t rec = 0, bytes = 0;
    for (int i = 0; i < 8; i++) {
        rec |= (uint64_t)p[i] << (8 * i);
        bytes |= (uint64_t)p[8 + i] << (8 * i);
    }
    struct tally *t = tally_of(c, cn);
    if (!t)
        return ORBIT_ENOMEM;
    if (t->records != rec || t->bytes != bytes || rec == 0) {
        starmap_set_err(c->sm,
                        "starmap check: container %u: %llu live records "
                        "listed, %llu found",
                        cn, (unsigned long long)rec,
                        (unsigned long long)t->records);
        return ORBIT_ECORRUPT;
    }
    t->records = UINT64_MAX; /* seen */
    return 0;
}

static int
check_gc(struct check_ctx *c, const MDB_val *k, const MDB_val *v)
{
    (void)v;
    if (k->mv_size != 4)
        return ORBIT_ECORRUPT;
    MDB_val pv;
    MDB_val kk = *k;
    if (mdb_get(c->txn, c->sm->packs, &kk, &pv) != MDB_NOTFOUND) {
        starmap_set_err(c->sm,
                        "starmap check: container %u is live and "
                        "listed for reclaim",
                        starmap_container_from_key(k->mv_data));
        return ORBIT_ECORRUPT;
    }
    return 0;
}

static int
check_file(struct check_ctx *c, const MDB_val *k, const MDB_val *v)
{
    struct starmap_file_rec r;
    if (starmap_file_key_valid(k->mv_data, k->mv_size) &&
        starmap_file_rec_decode(v->mv_data, v->mv_size, &r) == 0)
        return 0;
    starmap_set_err(c->sm, "starmap check: malformed file record");
    return ORBIT_ECORRUPT;
}

int
starmap_check(struct starmap *sm, struct pak_pool *pool)
{
    if (!sm)
        return ORBIT_EINVAL;
    struct check_ctx c = {.sm = sm, .pool = pool};
    int rc = starmap_read_begin(sm, &c.txn);
    if (rc != 0)
        return rc;
    rc = each(&c, sm->chunks, check_entry);
    if (rc == 0)
        rc = each(&c, sm->packs, check_pack);
    for (size_t i = 0; rc == 0 && i < c.n; i++)
        if (c.t[i].records != UINT64_MAX && c.t[i].records != 0) {
            starmap_set_err(sm,
                            "starmap check: container %u has records "
                            "but no live count",
                            c.t[i].container);
            rc = ORBIT_ECORRUPT;
        }
    if (rc == 0)
        rc = each(&c, sm->gc, check_gc);
    if (rc == 0)
        rc = each(&c, sm->files, check_file);
    starmap_read_end(sm, c.txn);
    free(c.t);
    free(c.buf);
    return rc;
}
