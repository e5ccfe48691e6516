/*
 * The star's chunk store: LMDB index, append-only containers, staging files.
 * See star_store.h for the layout and the two-phase write contract.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orbit/error.h"
#include "orbit/wire_path.h"
#include "star_store.h"
#include "wire_internal.h"

#define STAGE_CACHE    64
#define PACK_MAGIC     "ORBIT-STARPACK\0\1"
#define PACK_MAGIC_LEN 16
#define REC_MAGIC      0x4f535052u /* "OSPR" */
#define REC_HDR_LEN    44          /* magic, raw_len, id, checksum */
#define MAP_SIZE       ((size_t)64 << 30)
#define VAL_MAX        (1 + 4 + 8 + 2 + WIRE_MAX_PATH)

struct stage_fd {
    char name[65];
    int fd;
    bool dirty;
    uint64_t used;
};

struct star_store {
    int rootfd;
    int orbitfd;
    int packsfd;
    int stagingfd;
    MDB_env *env;
    MDB_dbi dbi;
    int pack_fd;
    uint32_t pack_no;
    uint64_t pack_size;
    uint64_t pack_max;
    bool pack_dirty;
    bool packs_dir_dirty;
    bool staging_dir_dirty;
    uint64_t tick;
    struct stage_fd stage[STAGE_CACHE];
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
mdb_to_orbit(int rc)
{
    if (rc == MDB_MAP_FULL)
        return ORBIT_ENOSPC;
    if (rc > 0)
        return orbit_err_from_errno(rc);
    return ORBIT_EDB;
}

static int
errno_rc(void)
{
    return orbit_err_from_errno(errno);
}

static uint32_t
fnv1a(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
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

static int
open_env(struct star_store *st, const char *root)
{
    char path[4200];
    int n = snprintf(path, sizeof path, "%s/.orbit/starmap", root);
    if (n < 0 || (size_t)n >= sizeof path)
        return ORBIT_EINVAL;
    int rc = mdb_env_create(&st->env);
    if (rc == 0)
        rc = mdb_env_set_mapsize(st->env, MAP_SIZE);
    if (rc == 0)
        rc = mdb_env_open(st->env, path, MDB_NOTLS, 0600);
    if (rc != 0)
        return mdb_to_orbit(rc);
    MDB_txn *txn = NULL;
    rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc == 0)
        rc = mdb_dbi_open(txn, NULL, 0, &st->dbi);
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else if (txn)
        mdb_txn_abort(txn);
    return rc ? mdb_to_orbit(rc) : 0;
}

static void
pack_name(uint32_t no, char name[32])
{
    snprintf(name, 32, "star_%06u.pack", no);
}

/* Open container no for appending, writing its header when new. */
static int
pack_open(struct star_store *st, uint32_t no)
{
    char name[32];
    pack_name(no, name);
    int fd = openat(st->packsfd, name, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return errno_rc();
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int rc = errno_rc();
        close(fd);
        return rc;
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (size < PACK_MAGIC_LEN) {
        if (pwrite(fd, PACK_MAGIC, PACK_MAGIC_LEN, 0) != PACK_MAGIC_LEN) {
            int rc = errno ? errno_rc() : ORBIT_EIO;
            close(fd);
            return rc;
        }
        size = PACK_MAGIC_LEN;
        st->packs_dir_dirty = true;
        st->pack_dirty = true;
    }
    if (st->pack_fd >= 0)
        close(st->pack_fd);
    st->pack_fd = fd;
    st->pack_no = no;
    st->pack_size = size;
    return 0;
}

/* Resume the highest-numbered container, or start container 1. */
static int
pack_resume(struct star_store *st)
{
    int dfd = dup(st->packsfd);
    if (dfd < 0)
        return errno_rc();
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return errno_rc();
    }
    uint32_t best = 1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        unsigned no = 0;
        char tail[8] = {0};
        if (sscanf(e->d_name, "star_%u.%5s", &no, tail) == 2 &&
            strcmp(tail, "pack") == 0 && no > best)
            best = no;
    }
    closedir(d);
    return pack_open(st, best);
}

int
star_store_open(int rootfd, const char *root, uint64_t pack_max,
                struct star_store **out)
{
    struct star_store *st = calloc(1, sizeof *st);
    if (!st)
        return ORBIT_ENOMEM;
    st->rootfd = rootfd;
    st->orbitfd = st->packsfd = st->stagingfd = st->pack_fd = -1;
    st->pack_max = pack_max ? pack_max : (uint64_t)4 << 30;
    for (size_t i = 0; i < STAGE_CACHE; i++)
        st->stage[i].fd = -1;
    int rc = open_subdir(rootfd, ".orbit", &st->orbitfd);
    int tmp = -1;
    if (rc == 0)
        rc = open_subdir(st->orbitfd, "starmap", &tmp);
    if (tmp >= 0)
        close(tmp);
    if (rc == 0)
        rc = open_subdir(st->orbitfd, "packs", &st->packsfd);
    if (rc == 0)
        rc = open_subdir(st->orbitfd, "staging", &st->stagingfd);
    if (rc == 0)
        rc = open_env(st, root);
    if (rc == 0)
        rc = pack_resume(st);
    if (rc == 0)
        rc = fsync(st->orbitfd) == 0 ? 0 : errno_rc();
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
    if (st->env)
        mdb_env_close(st->env);
    int fds[] = {st->pack_fd, st->stagingfd, st->packsfd, st->orbitfd};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(st);
}

/* ---- index values ---- */

static size_t
loc_encode(const struct star_loc *loc, uint8_t *v)
{
    v[0] = loc->kind;
    wire_be32_put(v + 1, loc->raw_len);
    wire_be64_put(v + 5, loc->offset);
    if (loc->kind == STAR_LOC_PACK) {
        wire_be32_put(v + 13, loc->pack);
        return 17;
    }
    size_t n = strlen(loc->path);
    wire_be16_put(v + 13, (uint16_t)n);
    memcpy(v + 15, loc->path, n);
    return 15 + n;
}

static int
loc_decode(const uint8_t *v, size_t len, struct star_loc *loc)
{
    if (len < 17)
        return ORBIT_ECORRUPT;
    loc->kind = v[0];
    loc->raw_len = wire_be32_get(v + 1);
    loc->offset = wire_be64_get(v + 5);
    loc->path[0] = 0;
    loc->pack = 0;
    if (loc->kind == STAR_LOC_PACK && len == 17) {
        loc->pack = wire_be32_get(v + 13);
        return 0;
    }
    if (loc->kind != STAR_LOC_FILE)
        return ORBIT_ECORRUPT;
    size_t n = wire_be16_get(v + 13);
    if (n == 0 || n > WIRE_MAX_PATH || len != 15 + n)
        return ORBIT_ECORRUPT;
    memcpy(loc->path, v + 15, n);
    loc->path[n] = 0;
    return 0;
}

int
star_store_lookup(struct star_store *st, const uint8_t id[WIRE_ID_LEN],
                  struct star_loc *out)
{
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return mdb_to_orbit(rc);
    MDB_val k = {WIRE_ID_LEN, (void *)id}, v;
    rc = mdb_get(txn, st->dbi, &k, &v);
    int out_rc;
    if (rc == MDB_NOTFOUND)
        out_rc = ORBIT_ENOENT;
    else if (rc != 0)
        out_rc = mdb_to_orbit(rc);
    else
        out_rc = loc_decode(v.mv_data, v.mv_size, out);
    mdb_txn_abort(txn);
    return out_rc;
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

int
star_store_have(struct star_store *st, const uint8_t *ids, uint32_t n,
                uint8_t *missing)
{
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(st->env, NULL, MDB_RDONLY, &txn);
    if (rc != 0)
        return mdb_to_orbit(rc);
    for (uint32_t i = 0; i < n; i++) {
        MDB_val k = {WIRE_ID_LEN, (void *)(ids + (size_t)i * WIRE_ID_LEN)};
        MDB_val v;
        rc = mdb_get(txn, st->dbi, &k, &v);
        if (rc == MDB_NOTFOUND) {
            wire_bitmap_set(missing, i);
            rc = 0;
        } else if (rc != 0) {
            break;
        }
    }
    mdb_txn_abort(txn);
    return rc ? mdb_to_orbit(rc) : 0;
}

int
star_store_index(struct star_store *st, const uint8_t *const *ids,
                 const struct star_loc *const *locs, size_t n)
{
    if (n == 0)
        return 0;
    MDB_txn *txn = NULL;
    int rc = mdb_txn_begin(st->env, NULL, 0, &txn);
    if (rc != 0)
        return mdb_to_orbit(rc);
    uint8_t v[VAL_MAX];
    for (size_t i = 0; i < n && rc == 0; i++) {
        MDB_val k = {WIRE_ID_LEN, (void *)ids[i]};
        MDB_val val = {loc_encode(locs[i], v), v};
        rc = mdb_put(txn, st->dbi, &k, &val, 0);
    }
    if (rc != 0) {
        mdb_txn_abort(txn);
        return mdb_to_orbit(rc);
    }
    rc = mdb_txn_commit(txn);
    return rc ? mdb_to_orbit(rc) : 0;
}

/* Drop id's entry if it still records loc. */
static void
drop_entry(struct star_store *st, const uint8_t id[WIRE_ID_LEN],
           const struct star_loc *loc)
{
    uint8_t want[VAL_MAX];
    size_t wlen = loc_encode(loc, want);
    MDB_txn *txn = NULL;
    if (mdb_txn_begin(st->env, NULL, 0, &txn) != 0)
        return;
    MDB_val k = {WIRE_ID_LEN, (void *)id}, v;
    if (mdb_get(txn, st->dbi, &k, &v) == 0 && v.mv_size == wlen &&
        memcmp(v.mv_data, want, wlen) == 0 &&
        mdb_del(txn, st->dbi, &k, NULL) == 0) {
        mdb_txn_commit(txn);
        return;
    }
    mdb_txn_abort(txn);
}

/* ---- staging files ---- */

void
star_store_staging_name(const char *path, char name[65])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t h[32];
    if (star_sha256((const uint8_t *)path, strlen(path), h) < 0)
        memset(h, 0, sizeof h);
    for (size_t i = 0; i < 32; i++) {
        name[2 * i] = hex[h[i] >> 4];
        name[2 * i + 1] = hex[h[i] & 15];
    }
    name[64] = 0;
}

int
star_store_staging_dir(struct star_store *st)
{
    return st->stagingfd;
}

static int
stage_evict(struct stage_fd *e)
{
    int rc = 0;
    if (e->dirty && fdatasync(e->fd) != 0)
        rc = errno_rc();
    close(e->fd);
    e->fd = -1;
    e->dirty = false;
    e->name[0] = 0;
    return rc;
}

void
star_store_forget_staging(struct star_store *st, const char *path)
{
    char name[65];
    star_store_staging_name(path, name);
    for (size_t i = 0; i < STAGE_CACHE; i++)
        if (st->stage[i].fd >= 0 && strcmp(st->stage[i].name, name) == 0)
            stage_evict(&st->stage[i]);
}

/* The cached fd of a staging file; created only when create is set. */
static int
stage_get(struct star_store *st, const char *path, bool create,
          struct stage_fd **out)
{
    char name[65];
    star_store_staging_name(path, name);
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
    int fd = openat(st->stagingfd, name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT && create) {
        fd = openat(st->stagingfd, name,
                    O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd >= 0)
            st->staging_dir_dirty = true;
    }
    if (fd < 0)
        return errno_rc();
    int rc = victim->fd >= 0 ? stage_evict(victim) : 0;
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
    struct stage_fd *e = NULL;
    int rc = stage_get(st, path, true, &e);
    if (rc == 0)
        rc = star_pwrite_all(e->fd, raw, len, offset);
    if (rc < 0)
        return rc;
    e->dirty = true;
    out->kind = STAR_LOC_FILE;
    out->raw_len = len;
    out->offset = offset;
    out->pack = 0;
    memcpy(out->path, path, plen + 1);
    return 0;
}

/* ---- containers ---- */

int
star_store_put_pack(struct star_store *st, const uint8_t id[WIRE_ID_LEN],
                    const uint8_t *raw, uint32_t len, struct star_loc *out)
{
    if (st->pack_size + REC_HDR_LEN + len > st->pack_max &&
        st->pack_size > PACK_MAGIC_LEN) {
        if (st->pack_dirty && fdatasync(st->pack_fd) != 0)
            return errno_rc();
        st->pack_dirty = false;
        int rc = pack_open(st, st->pack_no + 1);
        if (rc < 0)
            return rc;
    }
    uint8_t hdr[REC_HDR_LEN];
    wire_be32_put(hdr, REC_MAGIC);
    wire_be32_put(hdr + 4, len);
    memcpy(hdr + 8, id, WIRE_ID_LEN);
    wire_be32_put(hdr + 40, fnv1a(hdr, 40));
    uint64_t at = st->pack_size;
    int rc = star_pwrite_all(st->pack_fd, hdr, sizeof hdr, at);
    if (rc == 0)
        rc = star_pwrite_all(st->pack_fd, raw, len, at + REC_HDR_LEN);
    if (rc < 0) {
        /* Leave no torn record behind for the next append to follow. */
        if (ftruncate(st->pack_fd, (off_t)at) != 0)
            st->pack_size = at; /* nothing more to do; offsets stay exact */
        return rc;
    }
    st->pack_size = at + REC_HDR_LEN + len;
    st->pack_dirty = true;
    out->kind = STAR_LOC_PACK;
    out->raw_len = len;
    out->offset = at + REC_HDR_LEN;
    out->pack = st->pack_no;
    out->path[0] = 0;
    return 0;
}

int
star_store_sync(struct star_store *st)
{
    int rc = 0;
    if (st->pack_dirty && fdatasync(st->pack_fd) != 0)
        rc = errno_rc();
    else
        st->pack_dirty = false;
    for (size_t i = 0; i < STAGE_CACHE && rc == 0; i++) {
        struct stage_fd *e = &st->stage[i];
        if (e->fd >= 0 && e->dirty) {
            if (fdatasync(e->fd) != 0)
                rc = errno_rc();
            else
                e->dirty = false;
        }
    }
    if (rc == 0 && st->packs_dir_dirty) {
        if (fsync(st->packsfd) != 0)
            rc = errno_rc();
        else
            st->packs_dir_dirty = false;
    }
    if (rc == 0 && st->staging_dir_dirty) {
        if (fsync(st->stagingfd) != 0)
            rc = errno_rc();
        else
            st->staging_dir_dirty = false;
    }
    return rc;
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
read_pack(struct star_store *st, const struct star_loc *loc, uint8_t *buf)
{
    char name[32];
    pack_name(loc->pack, name);
    int fd = openat(st->packsfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno_rc();
    int rc = star_pread_all(fd, buf, loc->raw_len, loc->offset);
    close(fd);
    return rc;
}

static int
read_file(struct star_store *st, const uint8_t id[WIRE_ID_LEN],
          const struct star_loc *loc, uint8_t *buf)
{
    struct stage_fd *e = NULL;
    int rc = stage_get(st, loc->path, false, &e);
    if (rc == 0) {
        rc = star_pread_all(e->fd, buf, loc->raw_len, loc->offset);
        if (rc == 0)
            rc = verify(id, buf, loc->raw_len);
        if (rc == 0)
            return 0;
    }
    int fd = -1;
    rc = wire_path_open_beneath(st->rootfd, loc->path, O_RDONLY | O_NOFOLLOW, 0,
                                &fd);
    if (rc < 0)
        return rc;
    rc = star_pread_all(fd, buf, loc->raw_len, loc->offset);
    close(fd);
    return rc;
}

int
star_store_read(struct star_store *st, const uint8_t id[WIRE_ID_LEN],
                const struct star_loc *loc, uint8_t *buf)
{
    int rc = loc->kind == STAR_LOC_PACK ? read_pack(st, loc, buf)
                                        : read_file(st, id, loc, buf);
    if (rc == 0)
        rc = verify(id, buf, loc->raw_len);
    if (rc == ORBIT_ECORRUPT || rc == ORBIT_ETRUNC || rc == ORBIT_ENOENT ||
        rc == ORBIT_EPATH || rc == ORBIT_EISDIR || rc == ORBIT_ENOTDIR) {
        drop_entry(st, id, loc);
        return ORBIT_ENOENT;
    }
    return rc;
}
