/*
 * The star's chunk store: core-starmap's index and container pool, plus
 * staging files. See star_store.h for the layout and the two-phase writes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orbit/error.h"
#include "orbit/pak_pool.h"
#include "orbit/starmap.h"
#include "orbit/wire_path.h"
#include "star_store.h"
#include "star_alloc.h"
#include "star_fresh.h"
#include "star_stageset.h"

#define STAGE_CACHE 64
/* Queued file-record ops are committed from this many on, or once the
 * oldest has waited this long (checked at the end of each commit group). */
#define FILES_PENDING_MAX 4096
#define FILES_PENDING_MS  1000
#define STORE_TRIM_MS     1000 /* index mappings dropped at least this often */
/* and sooner when the process maps more than this of files (a sync's HAVEs
 * and in-place commits touch tens of MiB of index pages a second) */
#define STORE_TRIM_RSS ((uint64_t)24 << 20)

_Static_assert(sizeof(struct chunk_id) == WIRE_ID_LEN, "packed chunk ids");

struct stage_fd {
    char name[65];
    int fd;
    bool dirty;
    uint64_t used;
};

struct star_store {
    int rootfd;
    int orbitfd;
    int lockfd;
    int stagingfd;
    struct starmap *sm;
    struct star_fresh *fresh; /* FILE locations not yet merged into sm */
    bool log_on_staging_fs;   /* a syncfs of staging covers its log */
    struct pak_pool *pool;
    struct starmap_batch *batch;
    struct starmap_batch *index_batch; /* star_store_index()'s own */
    struct starmap_batch *files;       /* queued file-record ops */
    struct stage_set files_paths;      /* SHA-256 of their paths */
    uint64_t files_since_ms; /* first flush check since queued, or 0 */
    uint64_t trimmed_ms;     /* last starmap_trim() */
    int statmfd;             /* /proc/self/statm, -1 without /proc */
    int files_err;           /* latest failed records commit */
    bool pool_dirty;
    bool staging_dir_dirty;
    /* The staging files that exist, when known (read at open, kept up to
     * date by every creation and removal); unknown: assume any may. */
    struct stage_set staged;
    bool staged_known;
    uint64_t tick;
    struct stage_fd stage[STAGE_CACHE];
    /* Staging files pushed out of the cache with unsynced writes: kept open
     * until the round's sync covers them (one syncfs for many) */
    int *unsynced;
    size_t nunsynced, unsynced_cap;
    uint64_t put_syncs; /* fdatasync/fsync/syncfs calls for PUT data */
};

int
star_sha256(const uint8_t *data, size_t len, uint8_t out[32])
{
    unsigned int n = 0;
    if (!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) || n != 32)
        return ORBIT_ECRYPTO;
    return 0;
}

static int
errno_rc(void)
{
    return orbit_err_from_errno(errno);
}

static int
open_subdir(int dirfd, const char *name, int *out)
{
    if (mkdirat(dirfd, name, 0700) != 0 && errno != EEXIST)
        return errno_rc();
    int fd =
        openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno_rc();
    *out = fd;
    return 0;
}

/* One star per root: a second one would interleave container appends. */
static int
lock_root(struct star_store *st)
{
    st->lockfd = openat(st->orbitfd, "lock",
                        O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (st->lockfd < 0)
        return errno_rc();
    if (flock(st->lockfd, LOCK_EX | LOCK_NB) != 0)
        return errno == EWOULDBLOCK ? ORBIT_EAGAIN : errno_rc();
    return 0;
}

static int
open_starmap(struct star_store *st, const char *root, uint64_t pack_max)
{
    char path[4200];
    int n = snprintf(path, sizeof path, "%s/.orbit/packs", root);
    if (n < 0 || (size_t)n >= sizeof path)
        return ORBIT_EINVAL;
    struct pak_pool_opts po;
    pak_pool_opts_default(&po);
    if (pack_max)
        po.rotate_size = pack_max;
    int rc = pak_pool_open(path, &po, &st->pool);
    if (rc < 0)
        return rc;
    snprintf(path, sizeof path, "%s/.orbit/starmap", root);
    rc = starmap_open(path, NULL, &st->sm);
    if (rc == 0)
        rc = starmap_batch_new(&st->batch);
    if (rc == 0)
        rc = starmap_batch_new(&st->index_batch);
    if (rc == 0)
        rc = starmap_batch_new(&st->files);
    if (rc == 0)
        rc = star_fresh_open(st->orbitfd, st->sm, &st->fresh);
    struct stat a, b;
    st->log_on_staging_fs =
        rc == 0 && fstat(star_fresh_fd(st->fresh), &a) == 0 &&
        fstat(st->stagingfd, &b) == 0 && a.st_dev == b.st_dev;
    return rc;
}

static void load_staged(struct star_store *st);
static void close_unsynced(struct star_store *st);
static void forget_name(struct star_store *st, const char name[65]);

int
star_store_open(int rootfd, const char *root, uint64_t pack_max,
                struct star_store **out)
{
    struct star_store *st = star_calloc(1, sizeof *st);
    if (!st)
        return ORBIT_ENOMEM;
    st->rootfd = rootfd;
    st->orbitfd = st->stagingfd = st->lockfd = -1;
    st->statmfd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    for (size_t i = 0; i < STAGE_CACHE; i++)
        st->stage[i].fd = -1;
    int rc = open_subdir(rootfd, ".orbit", &st->orbitfd);
    if (rc == 0)
        rc = lock_root(st);
    if (rc == 0)
        rc = open_subdir(st->orbitfd, "staging", &st->stagingfd);
    if (rc == 0)
        load_staged(st);
    if (rc == 0)
        rc = open_starmap(st, root, pack_max); /* after staging: its log */
    if (rc == 0 && fsync(st->orbitfd) != 0)
        rc = errno_rc();
    if (rc < 0) {
        star_store_close(st);
        return rc;
    }
    *out = st;
    return 0;
}

void
star_store_close(struct star_store *st)
{
    if (!st)
        return;
    for (size_t i = 0; i < STAGE_CACHE; i++)
        if (st->stage[i].fd >= 0)
            close(st->stage[i].fd);
    close_unsynced(st);
    free(st->unsynced);
    if (st->sm && st->files)
        star_store_files_commit(st);
    starmap_batch_free(st->files);
    stage_set_free(&st->files_paths);
    stage_set_free(&st->staged);
    starmap_batch_free(st->batch);
    starmap_batch_free(st->index_batch);
    star_fresh_close(st->fresh);
    starmap_close(st->sm);
    if (st->pool)
        pak_pool_sync(st->pool);
    pak_pool_free(st->pool);
    if (st->stagingfd >= 0)
        close(st->stagingfd);
    if (st->orbitfd >= 0)
        close(st->orbitfd);
    if (st->lockfd >= 0)
        close(st->lockfd);
    if (st->statmfd >= 0)
        close(st->statmfd);
    free(st);
}

/* ---- the index ---- */

static void
to_cid(const uint8_t *id, struct chunk_id *out)
{
    memcpy(out->b, id, CHUNK_ID_LEN);
}

static int
to_smloc(const struct star_loc *l, struct starmap_loc *out)
{
    if (l->kind == STAR_LOC_PACK) {
        struct pak_loc pl = {l->pack, l->offset};
        starmap_loc_pack(out, &pl, l->length);
        return 0;
    }
    return starmap_loc_file(out, l->path, l->offset, l->length);
}

static void
from_smloc(const struct starmap_loc *l, struct star_loc *out)
{
    out->kind = l->kind == STARMAP_LOC_PACK ? STAR_LOC_PACK : STAR_LOC_FILE;
    out->length = l->length;
    out->offset = l->offset;
    out->pack = l->container;
    out->path[0] = 0;
    if (l->kind == STARMAP_LOC_FILE)
        snprintf(out->path, sizeof out->path, "%s", l->path);
}

int
star_store_have(struct star_store *st, const uint8_t *ids, uint32_t n,
                uint8_t *missing)
{
    if (n == 0)
        return 0;
    struct chunk_id *cids = star_calloc(n, sizeof *cids);
    bool *have = star_calloc(2 * (size_t)n, sizeof *have);
    int rc = cids && have ? 0 : ORBIT_ENOMEM;
    /* The fresh table first: an entry merged meanwhile is in LMDB by the
     * time its read transaction starts. */
    uint32_t k = 0;
    if (rc == 0) {
        star_fresh_have(st->fresh, ids, n, have);
        for (uint32_t i = 0; i < n; i++)
            if (!have[i])
                memcpy(cids[k++].b, ids + (size_t)i * WIRE_ID_LEN, WIRE_ID_LEN);
    }
    bool *had = have + n; /* LMDB's answers for the k asked */
    if (rc == 0 && k > 0)
        rc = starmap_have(st->sm, cids, k, had);
    for (uint32_t i = 0, j = 0; rc == 0 && i < n; i++)
        if (!have[i] && !had[j++])
            wire_bitmap_set(missing, i);
    free(cids);
    free(have);
    return rc;
}

int
star_store_has(struct star_store *st, const uint8_t id[WIRE_ID_LEN], bool *out)
{
    uint8_t missing = 0;
    int rc = star_store_have(st, id, 1, &missing);
    if (rc == 0)
        *out = !(missing & 1);
    return rc;
}

static bool
same_loc(const struct star_loc *a, const struct star_loc *b)
{
    return a->kind == b->kind && a->offset == b->offset &&
           (a->kind == STAR_LOC_PACK ? a->pack == b->pack
                                     : strcmp(a->path, b->path) == 0);
}

/* The fresh table's locations of id first (*nfresh of them), then LMDB's
 * (those not already listed). */
static int
lookup_split(struct star_store *st, const uint8_t id[WIRE_ID_LEN],
             struct star_loc *locs, size_t *n, size_t *nfresh)
{
    *nfresh = *n = star_fresh_lookup(st->fresh, id, locs, STAR_MAX_LOCS);
    struct chunk_id cid;
    to_cid(id, &cid);
    struct starmap_entry *e = star_malloc(sizeof *e);
    if (!e)
        return ORBIT_ENOMEM;
    int rc = starmap_lookup(st->sm, &cid, e);
    for (size_t i = 0; rc == 0 && i < e->nlocs && *n < STAR_MAX_LOCS; i++) {
        from_smloc(&e->locs[i], &locs[*n]);
        bool dup = false;
        for (size_t j = 0; j < *nfresh && !dup; j++)
            dup = same_loc(&locs[j], &locs[*n]);
        *n += !dup;
    }
    free(e);
    return rc == ORBIT_ENOENT && *n > 0 ? 0 : rc;
}

int
star_store_lookup(struct star_store *st, const uint8_t id[WIRE_ID_LEN],
                  struct star_loc *locs, size_t *n)
{
    size_t nfresh;
    return lookup_split(st, id, locs, n, &nfresh);
}

int
star_store_index_log(struct star_store *st, const uint8_t *const *ids,
                     const struct star_loc *const *locs, size_t n)
{
    if (n == 0)
        return 0;
    struct starmap_batch *b = st->index_batch;
    starmap_batch_clear(b);
    struct starmap_loc sl;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (locs[i]->kind != STAR_LOC_PACK)
            continue;
        struct chunk_id cid;
        to_cid(ids[i], &cid);
        to_smloc(locs[i], &sl);
        rc = starmap_batch_add_loc(b, &cid, &sl);
    }
    if (rc == 0 && starmap_batch_len(b) > 0)
        rc = starmap_batch_commit(st->sm, b, NULL);
    starmap_batch_clear(b);
    if (rc == 0)
        rc = star_fresh_append(st->fresh, ids, locs, n);
    return rc;
}

int
star_store_index_publish(struct star_store *st, const uint8_t *const *ids,
                         const struct star_loc *const *locs, size_t n)
{
    int rc = star_fresh_publish(st->fresh, ids, locs, n);
    /* A failed merge is not these chunks' failure: they are durable in the
     * log; the merge is tried again later. */
    if (rc == 0 && star_fresh_due(st->fresh))
        star_fresh_merge(st->fresh);
    return rc;
}

void
star_store_fresh_stats(struct star_store *st, uint64_t *entries,
                       uint64_t *merges)
{
    *entries = star_fresh_count(st->fresh);
    *merges = star_fresh_merges(st->fresh);
}

/* ---- file records ---- */

static void staging_key(const char *path, uint8_t h[32]);

int
star_store_file_get(struct star_store *st, const char *path,
                    struct starmap_file_rec *out)
{
    uint8_t h[32];
    staging_key(path, h);
    if (stage_set_has(&st->files_paths, h))
        star_store_files_commit(st); /* an op of path is queued: apply it */
    return starmap_file_get(st->sm, path, out);
}

/* Note that path has a queued op (committing now if it cannot be noted). */
static int
files_queued(struct star_store *st, const char *path)
{
    uint8_t h[32];
    staging_key(path, h);
    if (stage_set_add(&st->files_paths, h) < 0)
        return star_store_files_commit(st);
    return starmap_batch_len(st->files) >= FILES_PENDING_MAX
               ? star_store_files_commit(st)
               : 0;
}

int
star_store_file_put(struct star_store *st, const char *path,
                    const struct starmap_file_rec *r)
{
    int rc = starmap_batch_file_put(st->files, path, r);
    return rc == 0 ? files_queued(st, path) : rc;
}

int
star_store_file_drop(struct star_store *st, const char *path)
{
    int rc = starmap_batch_file_drop(st->files, path);
    return rc == 0 ? files_queued(st, path) : rc;
}

int
star_store_files_commit(struct star_store *st)
{
    if (starmap_batch_len(st->files) == 0)
        return 0;
    int rc = starmap_batch_commit(st->sm, st->files, NULL);
    starmap_batch_clear(st->files);
    stage_set_free(&st->files_paths);
    st->files_since_ms = 0;
    if (rc < 0)
        st->files_err = rc;
    return rc;
}

int
star_store_files_flush(struct star_store *st, uint64_t now_ms)
{
    if (starmap_batch_len(st->files) == 0)
        return 0;
    if (st->files_since_ms == 0)
        st->files_since_ms = now_ms;
    if (now_ms - st->files_since_ms < FILES_PENDING_MS)
        return 0;
    return star_store_files_commit(st);
}

/* This process's resident file-backed pages (the index's mapping, the
 * program and its libraries), in bytes; 0 when unknown. */
static uint64_t
mapped_rss(const struct star_store *st)
{
    char buf[128];
    ssize_t n =
        st->statmfd >= 0 ? pread(st->statmfd, buf, sizeof buf - 1, 0) : -1;
    if (n <= 0)
        return 0;
    buf[n] = 0;
    unsigned long long size = 0, resident = 0, shared = 0;
    if (sscanf(buf, "%llu %llu %llu", &size, &resident, &shared) != 3)
        return 0;
    return (uint64_t)shared * (uint64_t)sysconf(_SC_PAGESIZE);
}

bool
star_store_trim(struct star_store *st, uint64_t now_ms)
{
    if (now_ms - st->trimmed_ms < STORE_TRIM_MS &&
        mapped_rss(st) < STORE_TRIM_RSS)
        return false;
    st->trimmed_ms = now_ms;
    starmap_trim(st->sm, NULL); /* only RSS is at stake: errors ignored */
    return true;
}

int
star_store_files_error(struct star_store *st)
{
    int rc = st->files_err;
    st->files_err = 0;
    return rc;
}

const char *
star_store_errmsg(const struct star_store *st)
{
    return starmap_errmsg(st->sm);
}

/* ---- staging files ---- */

/* The SHA-256 of path: the staging file's name, in binary. */
static void
staging_key(const char *path, uint8_t h[32])
{
    if (star_sha256((const uint8_t *)path, strlen(path), h) < 0)
        memset(h, 0, 32);
}

static void
staging_hex(const uint8_t h[32], char name[65])
{
    struct chunk_id id;
    memcpy(id.b, h, CHUNK_ID_LEN);
    chunk_id_to_hex(&id, name);
}

void
star_store_staging_name(const char *path, char name[65])
{
    uint8_t h[32];
    staging_key(path, h);
    staging_hex(h, name);
}

/* A staging name back to its key; false for any other name. */
static bool
staging_unhex(const char *name, uint8_t h[32])
{
    struct chunk_id id;
    if (chunk_id_from_hex(name, strlen(name), &id) != 0)
        return false;
    memcpy(h, id.b, CHUNK_ID_LEN);
    return true;
}

static void
staged_add(struct star_store *st, const uint8_t h[32])
{
    if (st->staged_known && stage_set_add(&st->staged, h) < 0) {
        st->staged_known = false; /* out of memory: assume any may exist */
        stage_set_free(&st->staged);
    }
}

/* Read the staging directory into the set; left unknown on any failure. */
static void
load_staged(struct star_store *st)
{
    int fd = dup(st->stagingfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    rewinddir(d);
    st->staged_known = true;
    struct dirent *e;
    uint8_t h[32];
    errno = 0;
    while (st->staged_known && (e = readdir(d)) != NULL)
        if (staging_unhex(e->d_name, h))
            staged_add(st, h);
    if (errno != 0) {
        st->staged_known = false;
        stage_set_free(&st->staged);
    }
    closedir(d);
}

void
star_store_staging_made(struct star_store *st, const char *path)
{
    uint8_t h[32];
    staging_key(path, h);
    staged_add(st, h);
}

void
star_store_staging_gone(struct star_store *st, const char name[65])
{
    uint8_t h[32];
    if (staging_unhex(name, h))
        stage_set_remove(&st->staged, h);
}

void
star_store_staging_remove(struct star_store *st, const char *path)
{
    uint8_t h[32];
    char name[65];
    staging_key(path, h);
    if (st->staged_known && !stage_set_has(&st->staged, h))
        return; /* none: no fd cached either */
    staging_hex(h, name);
    forget_name(st, name);
    if (unlinkat(st->stagingfd, name, 0) == 0 || errno == ENOENT)
        stage_set_remove(&st->staged, h);
}

int
star_store_staging_dir(struct star_store *st)
{
    return st->stagingfd;
}

static bool
name_cached(const struct star_store *st, const char *name)
{
    for (size_t i = 0; i < STAGE_CACHE; i++)
        if (st->stage[i].fd >= 0 && strcmp(st->stage[i].name, name) == 0)
            return true;
    return false;
}

int
star_store_expire_staging(struct star_store *st, int64_t cutoff,
                          uint64_t *files, uint64_t *bytes)
{
    *files = *bytes = 0;
    int fd = dup(st->stagingfd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        int rc = errno_rc();
        if (fd >= 0)
            close(fd);
        return rc;
    }
    rewinddir(d);
    int rc = 0;
    struct dirent *e;
    uint8_t h[32];
    while ((e = readdir(d)) != NULL) {
        struct stat sb;
        if (!staging_unhex(e->d_name, h) ||
            fstatat(st->stagingfd, e->d_name, &sb, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(sb.st_mode) || sb.st_mtim.tv_sec >= cutoff ||
            name_cached(st, e->d_name))
            continue;
        if (unlinkat(st->stagingfd, e->d_name, 0) != 0) {
            if (errno != ENOENT)
                rc = errno_rc();
            continue;
        }
        stage_set_remove(&st->staged, h);
        (*files)++;
        *bytes += (uint64_t)sb.st_blocks * 512u;
    }
    closedir(d);
    return rc;
}

/* Keep fd for the next sync plan; 0, or -1 when out of memory. */
static int
defer_sync(struct star_store *st, int fd)
{
    if (st->nunsynced == st->unsynced_cap) {
        size_t cap = st->unsynced_cap ? 2 * st->unsynced_cap : 64;
        int *p = star_realloc(st->unsynced, cap * sizeof *p);
        if (!p)
            return -1;
        st->unsynced = p;
        st->unsynced_cap = cap;
    }
    st->unsynced[st->nunsynced++] = fd;
    return 0;
}

/* Drop a cache entry. Its unsynced writes are synced by the round that
 * acknowledges them, not one fdatasync per eviction. */
static int
stage_evict(struct star_store *st, struct stage_fd *e)
{
    int rc = 0;
    if (!e->dirty || defer_sync(st, e->fd) < 0) {
        st->put_syncs += e->dirty;
        if (e->dirty && fdatasync(e->fd) != 0)
            rc = errno_rc();
        close(e->fd);
    }
    e->fd = -1;
    e->dirty = false;
    e->name[0] = 0;
    return rc;
}

/* Drop the cached fd of the staging file called name, if any. */
static void
forget_name(struct star_store *st, const char name[65])
{
    for (size_t i = 0; i < STAGE_CACHE; i++)
        if (st->stage[i].fd >= 0 && strcmp(st->stage[i].name, name) == 0)
            stage_evict(st, &st->stage[i]);
}

int
star_store_staging_take(struct star_store *st, const char *path)
{
    char name[65];
    star_store_staging_name(path, name);
    for (size_t i = 0; i < STAGE_CACHE; i++) {
        struct stage_fd *e = &st->stage[i];
        if (e->fd >= 0 && strcmp(e->name, name) == 0) {
            if (e->dirty) { /* unacknowledged writes: synced as before */
                stage_evict(st, e);
                return -1;
            }
            int fd = e->fd;
            e->fd = -1;
            e->dirty = false;
            e->name[0] = 0;
            return fd;
        }
    }
    return -1;
}

/* The cached fd of a staging file; created only when create is set. */
static int
stage_get(struct star_store *st, const char *path, bool create,
          struct stage_fd **out)
{
    uint8_t h[32];
    char name[65];
    staging_key(path, h); /* one SHA-256 of the path gives both */
    staging_hex(h, name);
    struct stage_fd *victim = &st->stage[0];
    for (size_t i = 0; i < STAGE_CACHE; i++) {
        struct stage_fd *e = &st->stage[i];
        if (e->fd >= 0 && strcmp(e->name, name) == 0) {
            e->used = ++st->tick;
            *out = e;
            return 0;
        }
        if (e->fd < 0 || (victim->fd >= 0 && e->used < victim->used))
            victim = e;
    }
    /* When the set of staging files is known, a path not in it has none:
     * create it straight away instead of failing an open first. */
    bool none = st->staged_known && !stage_set_has(&st->staged, h);
    int fd = none
                 ? -1
                 : openat(st->stagingfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && (none || errno == ENOENT) && create) {
        fd = openat(st->stagingfd, name,
                    O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd >= 0)
            st->staging_dir_dirty = true;
        else if (errno == EEXIST && none) /* the set was wrong */
            fd = openat(st->stagingfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        if (fd >= 0)
            staged_add(st, h);
    } else if (fd < 0 && none) {
        errno = ENOENT; /* not created: there is none */
    }
    if (fd < 0)
        return errno_rc();
    int rc = victim->fd >= 0 ? stage_evict(st, victim) : 0;
    victim->fd = fd;
    memcpy(victim->name, name, sizeof name);
    victim->dirty = false;
    victim->used = ++st->tick;
    *out = victim;
    return rc;
}

int
star_pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
    while (n > 0) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return w < 0 ? errno_rc() : ORBIT_EIO;
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

int
star_pread_all(int fd, uint8_t *p, size_t n, uint64_t off)
{
    while (n > 0) {
        ssize_t r = pread(fd, p, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return errno_rc();
        if (r == 0)
            return ORBIT_ETRUNC;
        p += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

int
star_store_put_file(struct star_store *st, const char *path, uint64_t offset,
                    const uint8_t *raw, uint32_t len, struct star_loc *out)
{
    size_t plen = strlen(path);
    if (wire_path_check(path, plen, NULL, 0) < 0)
        return ORBIT_EPATH;
    if (plen >= STARMAP_PATH_MAX)
        return ORBIT_ETOOBIG;
    struct stage_fd *e = NULL;
    int rc = stage_get(st, path, true, &e);
    if (rc == 0)
        rc = star_pwrite_all(e->fd, raw, len, offset);
    if (rc < 0)
        return rc;
    e->dirty = true;
    out->kind = STAR_LOC_FILE;
    out->length = len;
    out->offset = offset;
    out->pack = 0;
    memcpy(out->path, path, plen + 1);
    return 0;
}

/* ---- containers ---- */

int
star_store_put_pack(struct star_store *st, const uint8_t id[WIRE_ID_LEN],
                    uint8_t codec, uint32_t raw_len, const uint8_t *stored,
                    uint32_t stored_len, struct star_loc *out)
{
    struct chunk_id cid;
    to_cid(id, &cid);
    struct pak_loc pl;
    int rc = pak_pool_append(st->pool, &cid, codec, raw_len, stored, stored_len,
                             &pl);
    if (rc < 0)
        return rc;
    st->pool_dirty = true;
    out->kind = STAR_LOC_PACK;
    out->length = stored_len;
    out->offset = pl.offset;
    out->pack = pl.container;
    out->path[0] = 0;
    return 0;
}

/* Close the evicted staging files once their sync is done (or failed). */
static void
close_unsynced(struct star_store *st)
{
    for (size_t i = 0; i < st->nunsynced; i++)
        close(st->unsynced[i]);
    st->nunsynced = 0;
}

/* Take fd into the plan (owned from now on); -1 when out of memory. */
static int
plan_take(struct star_sync_plan *p, size_t *cap, int fd)
{
    if (p->nfds == *cap) {
        size_t n = *cap ? 2 * *cap : 16;
        int *grown = star_realloc(p->fds, n * sizeof *grown);
        if (!grown)
            return -1;
        p->fds = grown;
        *cap = n;
    }
    p->fds[p->nfds++] = fd;
    return 0;
}

void
star_store_sync_plan(struct star_store *st, struct star_sync_plan *p)
{
    memset(p, 0, sizeof *p);
    p->fsfd = p->dirfd = p->logfd = -1;
    if (st->pool_dirty) {
        p->rc = pak_pool_sync(st->pool);
        st->pool_dirty = p->rc < 0;
    }
    size_t dirty = st->nunsynced;
    for (size_t i = 0; i < STAGE_CACHE; i++)
        dirty += st->stage[i].fd >= 0 && st->stage[i].dirty;
    size_t cap = 0;
    bool many = dirty >= STAR_SYNCFS_MIN;
    if (many) {
        /* Many small staging files: one syncfs costs less than one
         * fdatasync each, and covers the staging directory too. */
        p->fsfd = st->stagingfd;
        st->put_syncs++;
        close_unsynced(st);
    } else {
        for (size_t i = 0; i < st->nunsynced; i++) {
            if (plan_take(p, &cap, st->unsynced[i]) < 0) {
                close(st->unsynced[i]);
                p->rc = ORBIT_ENOMEM;
            }
        }
        st->nunsynced = 0;
    }
    for (size_t i = 0; i < STAGE_CACHE; i++) {
        struct stage_fd *e = &st->stage[i];
        if (e->fd < 0 || !e->dirty)
            continue;
        e->dirty = false;
        if (many)
            continue;
        int fd = dup(e->fd);
        if (fd < 0 || plan_take(p, &cap, fd) < 0) {
            if (fd >= 0)
                close(fd);
            p->rc = p->rc ? p->rc : ORBIT_ENOMEM;
        }
    }
    st->put_syncs += p->nfds;
    if (!many || !st->log_on_staging_fs)
        p->logfd = star_fresh_fd(st->fresh);
    if (!many && st->staging_dir_dirty) {
        p->dirfd = st->stagingfd;
        st->put_syncs++;
    }
    st->staging_dir_dirty = false;
}

int
star_sync_plan_run(struct star_sync_plan *p)
{
    int rc = p->rc;
    if (rc == 0 && p->fsfd >= 0 && syncfs(p->fsfd) != 0)
        rc = orbit_err_from_errno(errno);
    for (size_t i = 0; i < p->nfds && rc == 0; i++)
        if (fdatasync(p->fds[i]) != 0)
            rc = orbit_err_from_errno(errno);
    if (rc == 0 && p->dirfd >= 0 && fsync(p->dirfd) != 0)
        rc = orbit_err_from_errno(errno);
    if (rc == 0 && p->logfd >= 0 && fdatasync(p->logfd) != 0)
        rc = orbit_err_from_errno(errno);
    return rc;
}

void
star_sync_plan_free(struct star_sync_plan *p)
{
    for (size_t i = 0; i < p->nfds; i++)
        close(p->fds[i]);
    free(p->fds);
    p->fds = NULL;
    p->nfds = 0;
}

uint64_t
star_store_put_syncs(const struct star_store *st)
{
    return st->put_syncs;
}

/* ---- verified reads ---- */

static int
verify(const uint8_t id[WIRE_ID_LEN], const uint8_t *buf, uint32_t len)
{
    uint8_t h[32];
    int rc = star_sha256(buf, len, h);
    if (rc < 0)
        return rc;
    return memcmp(h, id, 32) == 0 ? 0 : ORBIT_ECORRUPT;
}

static int
read_pack(struct star_store *st, const uint8_t id[WIRE_ID_LEN],
          const struct star_loc *loc, uint32_t raw_len, uint8_t *buf)
{
    struct chunk_id cid;
    to_cid(id, &cid);
    struct pak_loc pl = {loc->pack, loc->offset};
    struct pak_record_info info;
    int rc = pak_pool_read(st->pool, &pl, &cid, buf, WIRE_MAX_CHUNK, &info);
    if (rc == 0 && info.raw_len != raw_len)
        rc = ORBIT_ECORRUPT;
    return rc;
}

static int
read_file(struct star_store *st, const uint8_t id[WIRE_ID_LEN],
          const struct star_loc *loc, uint8_t *buf)
{
    struct stage_fd *e = NULL;
    int rc = stage_get(st, loc->path, false, &e);
    if (rc == 0 && star_pread_all(e->fd, buf, loc->length, loc->offset) == 0 &&
        verify(id, buf, loc->length) == 0)
        return 0;
    int fd = -1;
    rc = wire_path_open_beneath(st->rootfd, loc->path, O_RDONLY | O_NOFOLLOW, 0,
                                &fd);
    if (rc < 0)
        return rc;
    rc = star_pread_all(fd, buf, loc->length, loc->offset);
    close(fd);
    if (rc == 0)
        rc = verify(id, buf, loc->length);
    return rc;
}

/* Whether rc says the bytes at a location are gone or wrong. */
static bool
is_stale(int rc)
{
    return rc == ORBIT_ECORRUPT || rc == ORBIT_ETRUNC || rc == ORBIT_ENOENT ||
           rc == ORBIT_EPATH || rc == ORBIT_EISDIR || rc == ORBIT_ENOTDIR ||
           rc == ORBIT_EFORMAT;
}

/* Drop the stale locations of id, the first nfresh from the fresh table,
 * the others from LMDB (the entry when none of its own is left). */
static void
drop_stale(struct star_store *st, const uint8_t id[WIRE_ID_LEN],
           const struct star_loc *locs, const bool *stale, size_t n,
           size_t nfresh)
{
    for (size_t i = 0; i < nfresh; i++)
        if (stale[i])
            star_fresh_drop(st->fresh, id, &locs[i]);
    if (n == nfresh)
        return;
    struct chunk_id cid;
    to_cid(id, &cid);
    struct starmap_loc *sl = star_malloc(sizeof *sl);
    if (!sl)
        return;
    size_t dropped = 0;
    starmap_batch_clear(st->batch);
    for (size_t i = nfresh; i < n; i++)
        if (stale[i] && to_smloc(&locs[i], sl) == 0 &&
            starmap_batch_drop_loc(st->batch, &cid, sl) == 0)
            dropped++;
    if (dropped == n - nfresh)
        starmap_batch_forget(st->batch, &cid);
    if (dropped > 0)
        starmap_batch_commit(st->sm, st->batch, NULL);
    starmap_batch_clear(st->batch);
    free(sl);
}

int
star_store_read(struct star_store *st, const uint8_t id[WIRE_ID_LEN],
                uint32_t raw_len, uint8_t *buf)
{
    struct star_loc *locs = star_malloc(STAR_MAX_LOCS * sizeof *locs);
    if (!locs)
        return ORBIT_ENOMEM;
    size_t n = 0, nfresh = 0;
    bool stale[STAR_MAX_LOCS] = {false};
    int rc = lookup_split(st, id, locs, &n, &nfresh);
    int hard = 0;
    bool ok = false;
    for (size_t i = 0; rc == 0 && i < n && !ok; i++) {
        int r = locs[i].kind == STAR_LOC_PACK
                    ? read_pack(st, id, &locs[i], raw_len, buf)
                : locs[i].length != raw_len ? ORBIT_ECORRUPT
                                            : read_file(st, id, &locs[i], buf);
        ok = r == 0;
        stale[i] = is_stale(r);
        if (r < 0 && !stale[i])
            hard = r;
    }
    if (rc == 0 && n > 0)
        drop_stale(st, id, locs, stale, n, nfresh);
    free(locs);
    if (rc < 0)
        return rc;
    return ok ? 0 : hard ? hard : ORBIT_ENOENT;
}

int
star_store_check(struct star_store *st)
{
    for (size_t i = 0; i < STAGE_CACHE; i++) {
        const struct stage_fd *e = &st->stage[i];
        if (e->fd < 0 && (e->dirty || e->name[0]))
            return ORBIT_ECORRUPT;
    }
    return starmap_check(st->sm, st->pool);
}

/* ---- after a commit: chunks move from containers to the file ---- */

static int
move_one(struct star_store *st, const struct wire_chunk_ref *ref,
         const char *path, uint64_t off, struct star_loc *locs)
{
    size_t n = 0;
    int rc = star_store_lookup(st, ref->id, locs, &n);
    if (rc < 0)
        return rc == ORBIT_ENOENT ? 0 : rc;
    bool packed = false;
    for (size_t i = 0; i < n; i++)
        packed |= locs[i].kind == STAR_LOC_PACK;
    if (!packed)
        return 0;
    struct chunk_id cid;
    to_cid(ref->id, &cid);
    struct starmap_loc sl;
    rc = starmap_loc_file(&sl, path, off, ref->raw_len);
    if (rc == 0)
        rc = starmap_batch_add_loc(st->batch, &cid, &sl);
    for (size_t i = 0; i < n && rc == 0; i++)
        if (locs[i].kind == STAR_LOC_PACK && to_smloc(&locs[i], &sl) == 0)
            rc = starmap_batch_drop_loc(st->batch, &cid, &sl);
    return rc;
}

int
star_store_moved(struct star_store *st, const char *path,
                 const struct wire_commit *c, size_t *removed)
{
    *removed = 0;
    struct star_loc *locs = star_malloc(STAR_MAX_LOCS * sizeof *locs);
    if (!locs)
        return ORBIT_ENOMEM;
    starmap_batch_clear(st->batch);
    uint64_t off = 0;
    int rc = 0;
    for (uint32_t i = 0; i < c->n && rc == 0; i++) {
        struct wire_chunk_ref ref;
        wire_commit_chunk(c, i, &ref);
        rc = move_one(st, &ref, path, off, locs);
        off += ref.raw_len;
    }
    free(locs);
    if (rc == 0 && starmap_batch_len(st->batch) > 0)
        rc = starmap_batch_commit(st->sm, st->batch, NULL);
    starmap_batch_clear(st->batch);
    if (rc == 0 && starmap_gc_pending(st->sm) > 0)
        rc = starmap_gc(st->sm, st->pool, removed);
    return rc;
}
