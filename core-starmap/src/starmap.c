#include "orbit/starmap.h"

#include "orbit/error.h"
#include "starmap_alloc.h"
#include "pak_internal.h"
#include "starmap_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define ENTRY_VERSION 1
#define DEFAULT_MAP   ((uint64_t)64 << 20)

/* ---- value encoding ---------------------------------------------------- */

void
starmap_container_key(uint32_t container, uint8_t key[4])
{
    for (int i = 0; i < 4; i++)
        key[i] = (uint8_t)(container >> (24 - 8 * i));
}

uint32_t
starmap_container_from_key(const uint8_t key[4])
{
    return (uint32_t)key[0] << 24 | (uint32_t)key[1] << 16 |
           (uint32_t)key[2] << 8 | key[3];
}

void
starmap_refmap_key(uint32_t container, uint8_t key[REFMAP_ID_LEN])
{
    memset(key, 0, REFMAP_ID_LEN);
    memcpy(key, "pack", 4);
    starmap_container_key(container, key + 4);
}

int
starmap_entry_encode(const struct starmap_entry *e, uint8_t *buf, size_t cap,
                     size_t *len)
{
    size_t n = 16;
    if (e->nlocs > STARMAP_MAX_LOCS || cap < STARMAP_ENTRY_MAX)
        return ORBIT_EINVAL;
    buf[0] = ENTRY_VERSION;
    buf[1] = (uint8_t)e->nlocs;
    starmap_le_put(buf + 2, 0, 6);
    starmap_le_put(buf + 8, e->refs, 8);
    for (size_t i = 0; i < e->nlocs; i++) {
        const struct starmap_loc *l = &e->locs[i];
        buf[n++] = (uint8_t)l->kind;
        if (l->kind == STARMAP_LOC_PACK) {
            starmap_le_put(buf + n, l->container, 4);
            starmap_le_put(buf + n + 4, l->offset, 8);
            starmap_le_put(buf + n + 12, l->length, 4);
            n += 16;
            continue;
        }
        size_t plen = strnlen(l->path, STARMAP_PATH_MAX);
        if (l->kind != STARMAP_LOC_FILE || plen == 0 ||
            plen >= STARMAP_PATH_MAX)
            return ORBIT_EINVAL;
        starmap_le_put(buf + n, l->offset, 8);
        starmap_le_put(buf + n + 8, l->length, 4);
        starmap_le_put(buf + n + 12, plen, 2);
        memcpy(buf + n + 14, l->path, plen);
        n += 14 + plen;
    }
    *len = n;
    return 0;
}

static int
decode_loc(const uint8_t *p, size_t len, size_t *n, struct starmap_loc *l)
{
    if (*n + 1 > len)
        return ORBIT_ECORRUPT;
    l->kind = (enum starmap_loc_kind)p[(*n)++];
    if (l->kind == STARMAP_LOC_PACK) {
        if (*n + 16 > len)
            return ORBIT_ECORRUPT;
        l->container = (uint32_t)starmap_le_get(p + *n, 4);
        l->offset = starmap_le_get(p + *n + 4, 8);
        l->length = (uint32_t)starmap_le_get(p + *n + 12, 4);
        l->path[0] = '\0';
        *n += 16;
        return 0;
    }
    if (l->kind != STARMAP_LOC_FILE || *n + 14 > len)
        return ORBIT_ECORRUPT;
    l->container = 0;
    l->offset = starmap_le_get(p + *n, 8);
    l->length = (uint32_t)starmap_le_get(p + *n + 8, 4);
    size_t plen = (size_t)starmap_le_get(p + *n + 12, 2);
    *n += 14;
    if (plen == 0 || plen >= STARMAP_PATH_MAX || *n + plen > len ||
        memchr(p + *n, '\0', plen))
        return ORBIT_ECORRUPT;
    memcpy(l->path, p + *n, plen);
    l->path[plen] = '\0';
    *n += plen;
    return 0;
}

int
starmap_entry_decode(const void *buf, size_t len, struct starmap_entry *e)
{
    const uint8_t *p = buf;
    if (len < 16 || p[0] != ENTRY_VERSION || p[1] > STARMAP_MAX_LOCS)
        return ORBIT_ECORRUPT;
    e->nlocs = p[1];
    e->refs = starmap_le_get(p + 8, 8);
    size_t n = 16;
    for (size_t i = 0; i < e->nlocs; i++) {
        int rc = decode_loc(p, len, &n, &e->locs[i]);
        if (rc != 0)
            return rc;
    }
    return n == len ? 0 : ORBIT_ECORRUPT;
}

/* ---- errors, hooks, transactions ----------------------------------------- */

void
starmap_set_err(struct starmap *sm, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&sm->errlock);
    va_start(ap, fmt);
    vsnprintf(sm->err, sizeof sm->err, fmt, ap);
    va_end(ap);
    pthread_mutex_unlock(&sm->errlock);
}

int
starmap_mdb_err(struct starmap *sm, int mrc, const char *what)
{
    if (mrc == 0)
        return 0;
    if (mrc == MDB_NOTFOUND)
        return ORBIT_ENOENT;
    starmap_set_err(sm, "starmap: %s: %s", what, mdb_strerror(mrc));
    if (mrc == ENOMEM)
        return ORBIT_ENOMEM;
    if (mrc == ENOSPC)
        return ORBIT_ENOSPC;
    if (mrc == EIO)
        return ORBIT_EIO;
    if (mrc == EACCES || mrc == EPERM)
        return ORBIT_EPERM;
    return ORBIT_EDB;
}

const char *
starmap_errmsg(const struct starmap *sm)
{
    return sm ? sm->err : "no starmap";
}

void
starmap_set_hook(struct starmap *sm, starmap_hook_fn fn, void *arg)
{
    sm->hook = fn;
    sm->hook_arg = arg;
}

void
starmap_hook(struct starmap *sm, const char *point)
{
    if (sm->hook)
        sm->hook(point, sm->hook_arg);
}

/* Begin a txn; another process growing the map is picked up. */
static int
txn_begin(struct starmap *sm, unsigned flags, MDB_txn **txn)
{
    int mrc = mdb_txn_begin(sm->env, NULL, flags, txn);
    if (mrc == MDB_MAP_RESIZED) {
        mrc = mdb_env_set_mapsize(sm->env, 0);
        if (mrc == 0)
            mrc = mdb_txn_begin(sm->env, NULL, flags, txn);
    }
    return starmap_mdb_err(sm, mrc, "begin transaction");
}

int
starmap_read_begin(struct starmap *sm, MDB_txn **txn)
{
    pthread_rwlock_rdlock(&sm->resize);
    int rc = txn_begin(sm, MDB_RDONLY, txn);
    if (rc != 0)
        pthread_rwlock_unlock(&sm->resize);
    return rc;
}

void
starmap_read_end(struct starmap *sm, MDB_txn *txn)
{
    mdb_txn_abort(txn);
    pthread_rwlock_unlock(&sm->resize);
}

int
starmap_get_entry(struct starmap *sm, MDB_txn *txn, const struct chunk_id *id,
                  struct starmap_entry *e)
{
    MDB_val k = {CHUNK_ID_LEN, (void *)id->b}, v;
    int mrc = mdb_get(txn, sm->chunks, &k, &v);
    if (mrc != 0)
        return starmap_mdb_err(sm, mrc, "get chunk");
    int rc = starmap_entry_decode(v.mv_data, v.mv_size, e);
    if (rc != 0) {
        char hex[CHUNK_ID_HEX_LEN + 1];
        chunk_id_to_hex(id, hex);
        starmap_set_err(sm, "starmap: chunk %s: malformed index value", hex);
    }
    return rc;
}

/* ---- open / close ----------------------------------------------------------
 */

void
starmap_opts_default(struct starmap_opts *o)
{
    o->initial_map_size = DEFAULT_MAP;
    o->max_containers = (size_t)1 << 20;
}

static int
open_dbs(struct starmap *sm)
{
    MDB_txn *txn = NULL;
    int mrc = mdb_txn_begin(sm->env, NULL, 0, &txn);
    if (mrc == 0)
        mrc = mdb_dbi_open(txn, "chunks", MDB_CREATE, &sm->chunks);
    if (mrc == 0)
        mrc = mdb_dbi_open(txn, "packs", MDB_CREATE, &sm->packs);
    if (mrc == 0)
        mrc = mdb_dbi_open(txn, "gc", MDB_CREATE, &sm->gc);
    if (mrc == 0)
        mrc = mdb_dbi_open(txn, "files", MDB_CREATE, &sm->files);
    if (mrc == 0) {
        mrc = mdb_txn_commit(txn);
        txn = NULL;
    }
    if (txn)
        mdb_txn_abort(txn);
    return starmap_mdb_err(sm, mrc, "open databases");
}

/* Tell the GC what the durable index says: live and reclaimable containers. */
static int
load_containers(struct starmap *sm, MDB_dbi dbi, bool live)
{
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    int rc = starmap_read_begin(sm, &txn);
    if (rc != 0)
        return rc;
    int mrc = mdb_cursor_open(txn, dbi, &cur);
    while (mrc == 0 && (mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        if (k.mv_size != 4) {
            mrc = MDB_CORRUPTED;
            break;
        }
        rc = starmap_track(sm, starmap_container_from_key(k.mv_data), live);
        if (rc != 0)
            break;
    }
    if (cur)
        mdb_cursor_close(cur);
    starmap_read_end(sm, txn);
    if (rc == 0 && mrc != MDB_NOTFOUND)
        rc = starmap_mdb_err(sm, mrc, "load containers");
    return rc;
}

static int
open_env(struct starmap *sm, const char *dir)
{
    int rc = pak_mkdir_p(dir);
    if (rc != 0) {
        starmap_set_err(sm, "starmap: %s: %s", dir, orbit_strerror(rc));
        return rc;
    }
    int mrc = mdb_env_create(&sm->env);
    if (mrc == 0)
        mrc = mdb_env_set_maxdbs(sm->env, STARMAP_MAXDBS);
    if (mrc == 0)
        mrc = mdb_env_set_mapsize(sm->env, (size_t)sm->mapsize);
    /* No MDB_NOSYNC / MDB_NOMETASYNC: a returned commit is durable, which
     * is what the GC gate relies on. */
    if (mrc == 0)
        mrc = mdb_env_open(sm->env, dir, MDB_NOTLS, 0644);
    if (mrc == 0) {
        MDB_envinfo info;
        mdb_env_info(sm->env, &info);
        if ((uint64_t)info.me_mapsize > sm->mapsize)
            sm->mapsize = (uint64_t)info.me_mapsize;
    }
    return starmap_mdb_err(sm, mrc, "open environment");
}

int
starmap_open(const char *dir, const struct starmap_opts *o,
             struct starmap **out)
{
    struct starmap_opts def;
    if (!dir || !out)
        return ORBIT_EINVAL;
    *out = NULL;
    starmap_opts_default(&def);
    if (!o)
        o = &def;
    struct starmap *sm = starmap_calloc(1, sizeof *sm);
    if (!sm)
        return ORBIT_ENOMEM;
    /* Writer-preferring: a steady stream of HAVE lookups must not starve
     * the map growth that waits for every reader to leave. */
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&sm->resize, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&sm->wlock, NULL);
    pthread_mutex_init(&sm->errlock, NULL);
    sm->mapsize = o->initial_map_size ? o->initial_map_size : DEFAULT_MAP;
    int rc = refmap_new(o->max_containers ? o->max_containers : 1, &sm->rm);
    if (rc == 0)
        rc = open_env(sm, dir);
    if (rc == 0)
        rc = open_dbs(sm);
    if (rc == 0)
        rc = load_containers(sm, sm->packs, true);
    if (rc == 0)
        rc = load_containers(sm, sm->gc, false);
    if (rc == 0)
        rc = refmap_confirm_wal_synced(sm->rm, refmap_seq(sm->rm));
    if (rc != 0) {
        starmap_close(sm);
        return rc;
    }
    *out = sm;
    return 0;
}

void
starmap_close(struct starmap *sm)
{
    if (!sm)
        return;
    if (sm->env)
        mdb_env_close(sm->env);
    refmap_free(sm->rm);
    pthread_rwlock_destroy(&sm->resize);
    pthread_mutex_destroy(&sm->wlock);
    pthread_mutex_destroy(&sm->errlock);
    free(sm);
}

int
starmap_track(struct starmap *sm, uint32_t container, bool live)
{
    uint8_t key[REFMAP_ID_LEN];
    uint64_t count = 0;
    starmap_refmap_key(container, key);
    int rc = refmap_get(sm->rm, key, &count);
    if (rc != 0 && rc != ORBIT_ENOENT)
        return rc;
    bool known = rc == 0;
    if (live)
        return known && count > 0 ? 0 : refmap_incref(sm->rm, key, NULL);
    if (known && count == 0)
        return 0;
    rc = known ? 0 : refmap_incref(sm->rm, key, NULL);
    return rc == 0 ? refmap_decref(sm->rm, key, NULL) : rc;
}

/* ---- lookups
 * ----------------------------------------------------------------- */

int
starmap_have(struct starmap *sm, const struct chunk_id *ids, size_t n,
             bool *have)
{
    MDB_txn *txn = NULL;
    if (!sm || (n && (!ids || !have)))
        return ORBIT_EINVAL;
    int rc = starmap_read_begin(sm, &txn);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        MDB_val k = {CHUNK_ID_LEN, (void *)ids[i].b}, v;
        int mrc = mdb_get(txn, sm->chunks, &k, &v);
        have[i] = mrc == 0;
        if (mrc != 0 && mrc != MDB_NOTFOUND)
            rc = starmap_mdb_err(sm, mrc, "have");
    }
    starmap_read_end(sm, txn);
    return rc;
}

int
starmap_lookup(struct starmap *sm, const struct chunk_id *id,
               struct starmap_entry *out)
{
    MDB_txn *txn = NULL;
    if (!sm || !id || !out)
        return ORBIT_EINVAL;
    int rc = starmap_read_begin(sm, &txn);
    if (rc != 0)
        return rc;
    rc = starmap_get_entry(sm, txn, id, out);
    starmap_read_end(sm, txn);
    return rc;
}

int
starmap_container_live(struct starmap *sm, uint32_t container,
                       uint64_t *records, uint64_t *bytes)
{
    MDB_txn *txn = NULL;
    uint8_t key[4];
    if (!sm || !records || !bytes)
        return ORBIT_EINVAL;
    int rc = starmap_read_begin(sm, &txn);
    if (rc != 0)
        return rc;
    starmap_container_key(container, key);
    MDB_val k = {4, key}, v;
    int mrc = mdb_get(txn, sm->packs, &k, &v);
    *records = *bytes = 0;
    if (mrc == 0 && v.mv_size == 16) {
        *records = starmap_le_get(v.mv_data, 8);
        *bytes = starmap_le_get((const uint8_t *)v.mv_data + 8, 8);
    } else if (mrc == 0) {
        mrc = MDB_CORRUPTED;
    }
    if (mrc != MDB_NOTFOUND)
        rc = starmap_mdb_err(sm, mrc, "container live count");
    starmap_read_end(sm, txn);
    return rc;
}

int
starmap_dbi_count(struct starmap *sm, MDB_dbi dbi, uint64_t *n)
{
    MDB_txn *txn = NULL;
    MDB_stat st;
    if (!sm || !n)
        return ORBIT_EINVAL;
    int rc = starmap_read_begin(sm, &txn);
    if (rc != 0)
        return rc;
    rc = starmap_mdb_err(sm, mdb_stat(txn, dbi, &st), "stat");
    *n = rc == 0 ? (uint64_t)st.ms_entries : 0;
    starmap_read_end(sm, txn);
    return rc;
}

int
starmap_count(struct starmap *sm, uint64_t *chunks)
{
    return sm ? starmap_dbi_count(sm, sm->chunks, chunks) : ORBIT_EINVAL;
}

size_t
starmap_gc_pending(struct starmap *sm)
{
    return sm ? refmap_pending(sm->rm) : 0;
}
