/*
 * The fresh index: a log of durable chunk locations, a hash table of them,
 * and their merge into LMDB in key order. See star_fresh.h.
 *
 * Log: an 8-byte header, then records of
 *   crc32c u32 (of the rest) | path length u16 | length u32 | offset u64 |
 *   id [32] | path
 * in the wire's byte order, written at the log's end by one pwrite per
 * round.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orbit/error.h"
#include "orbit/starmap.h"
#include "orbit/wire.h"
#include "star_alloc.h"
#include "star_fresh.h"
#include "wire_internal.h"

#define LOG_NAME  "index.log"
#define LOG_MAGIC "ORBITIX1"
#define LOG_HDR   8
#define REC_HDR   50
/* A slot's path field: empty, a removed entry, else an offset in paths. */
#define SLOT_EMPTY 0
#define SLOT_DEAD  UINT32_MAX
#define TABLE_MIN  1024
/* Past these (merges failing) appends are refused: memory stays bounded. */
#define FRESH_HARD_ENTRIES (4 * (size_t)FRESH_MERGE_ENTRIES)
#define FRESH_HARD_PATHS   (4 * FRESH_MERGE_PATHS)

struct slot {
    uint8_t id[WIRE_ID_LEN];
    uint64_t offset;
    uint32_t length;
    uint32_t path;
};

struct star_fresh {
    int fd;
    uint64_t end;   /* where the next record goes */
    bool end_dirty; /* bytes past end to truncate first */
    struct starmap *sm;
    pthread_mutex_t mu;
    struct slot *slots;
    size_t cap, live, dead;
    char *paths; /* NUL-terminated; offset 0 unused */
    size_t plen, pcap;
    uint32_t last_path; /* the latest interned: runs of one path share it */
    size_t retry_at;    /* after a failed merge: not due before this many */
    int merge_err;
    uint64_t merges;
};

/* ---- memory ----
 * The table, its paths and a merge's sorted copy are mapped and unmapped
 * whole: from malloc, memory freed by the syncer thread after a merge
 * stayed in its arena (glibc raises its mmap threshold to the size of a
 * freed block), and the star's RSS grew by the table's peak for good. */

static void *
big_alloc(size_t size)
{
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p; /* zeroed */
}

static void
big_free(void *p, size_t size)
{
    if (p)
        munmap(p, size);
}

/* ---- the table (callers hold mu) ---- */

static size_t
home(const struct star_fresh *f, const uint8_t *id)
{
    uint64_t h;
    memcpy(&h, id, sizeof h);
    return (size_t)h & (f->cap - 1);
}

static bool
same(const struct star_fresh *f, const struct slot *s, const uint8_t *id,
     uint64_t offset, const char *path)
{
    return s->path != SLOT_EMPTY && s->path != SLOT_DEAD &&
           s->offset == offset && memcmp(s->id, id, WIRE_ID_LEN) == 0 &&
           strcmp(f->paths + s->path, path) == 0;
}

/* The live slots holding id, one by one along its probe run: first_of(),
 * then next_of() the last one; SIZE_MAX when none is left. */
static size_t
find_from(const struct star_fresh *f, const uint8_t *id, size_t i)
{
    for (; f->slots[i].path != SLOT_EMPTY; i = (i + 1) & (f->cap - 1))
        if (f->slots[i].path != SLOT_DEAD &&
            memcmp(f->slots[i].id, id, WIRE_ID_LEN) == 0)
            return i;
    return SIZE_MAX;
}

static size_t
first_of(const struct star_fresh *f, const uint8_t *id)
{
    return f->live ? find_from(f, id, home(f, id)) : SIZE_MAX;
}

static size_t
next_of(const struct star_fresh *f, const uint8_t *id, size_t i)
{
    return find_from(f, id, (i + 1) & (f->cap - 1));
}

/* Rehash the live slots into a table at most half full (it grows at three
 * quarters). */
static int
rehash(struct star_fresh *f)
{
    size_t cap = TABLE_MIN;
    while ((f->live + 1) * 2 > cap)
        cap *= 2;
    struct slot *ns = big_alloc(cap * sizeof *ns);
    if (!ns)
        return ORBIT_ENOMEM;
    for (size_t i = 0; i < f->cap; i++) {
        const struct slot *s = &f->slots[i];
        if (s->path == SLOT_EMPTY || s->path == SLOT_DEAD)
            continue;
        uint64_t h;
        memcpy(&h, s->id, sizeof h);
        size_t j = (size_t)h & (cap - 1);
        while (ns[j].path != SLOT_EMPTY)
            j = (j + 1) & (cap - 1);
        ns[j] = *s;
    }
    big_free(f->slots, f->cap * sizeof *f->slots);
    f->slots = ns;
    f->cap = cap;
    f->dead = 0;
    return 0;
}

/* The offset of path in paths, appended unless it is the latest. */
static int
intern(struct star_fresh *f, const char *path, uint32_t *out)
{
    if (f->last_path && strcmp(f->paths + f->last_path, path) == 0) {
        *out = f->last_path;
        return 0;
    }
    size_t n = strlen(path) + 1;
    if (f->plen == 0)
        f->plen = 1;
    if (f->plen + n > f->pcap) {
        size_t cap = f->pcap ? f->pcap : 65536;
        while (f->plen + n > cap)
            cap *= 2;
        char *p = f->paths ? mremap(f->paths, f->pcap, cap, MREMAP_MAYMOVE)
                           : big_alloc(cap);
        if (!p || p == MAP_FAILED)
            return ORBIT_ENOMEM;
        f->paths = p;
        f->pcap = cap;
    }
    memcpy(f->paths + f->plen, path, n);
    *out = f->last_path = (uint32_t)f->plen;
    f->plen += n;
    return 0;
}

/* The locations this index holds: in a file (a path the star accepted,
 * never empty). */
static bool
held_here(const struct star_loc *l)
{
    return l->kind == STAR_LOC_FILE && l->path[0] != 0;
}

static int
table_put(struct star_fresh *f, const uint8_t *id, uint64_t offset,
          uint32_t length, const char *path)
{
    if ((f->live + f->dead + 1) * 4 > f->cap * 3) {
        int rc = rehash(f);
        if (rc < 0)
            return rc;
    }
    size_t i = home(f, id);
    for (; f->slots[i].path != SLOT_EMPTY; i = (i + 1) & (f->cap - 1))
        if (same(f, &f->slots[i], id, offset, path))
            return 0;
    uint32_t p;
    int rc = intern(f, path, &p);
    if (rc < 0)
        return rc;
    struct slot *s = &f->slots[i];
    memcpy(s->id, id, WIRE_ID_LEN);
    s->offset = offset;
    s->length = length;
    s->path = p;
    f->live++;
    return 0;
}

static void
table_reset(struct star_fresh *f)
{
    big_free(f->slots, f->cap * sizeof *f->slots);
    big_free(f->paths, f->pcap);
    f->slots = NULL;
    f->paths = NULL;
    f->cap = f->live = f->dead = 0;
    f->plen = f->pcap = 0;
    f->last_path = 0;
}

/* ---- the log ---- */

static int
errno_rc(void)
{
    return orbit_err_from_errno(errno);
}

/* Parse one record at p (avail bytes); its size, or 0 if it is torn,
 * corrupt or not a FILE location we could have written. */
static size_t
parse_record(const uint8_t *p, size_t avail, uint64_t *offset, uint32_t *length,
             const uint8_t **id, const char **path)
{
    if (avail < REC_HDR)
        return 0;
    size_t plen = wire_be16_get(p + 4);
    if (plen == 0 || plen > WIRE_MAX_PATH || avail < REC_HDR + plen)
        return 0;
    if (wire_be32_get(p) != wire_crc32c(p + 4, REC_HDR - 4 + plen))
        return 0;
    *length = wire_be32_get(p + 6);
    if (memchr(p + REC_HDR, 0, plen) || *length == 0 ||
        *length > WIRE_MAX_CHUNK)
        return 0;
    *offset = wire_be64_get(p + 10);
    *id = p + 18;
    *path = (const char *)p + REC_HDR;
    return REC_HDR + plen;
}

/* Put every valid record of the log into the table; *ours: whether the
 * log starts with our header. */
static int
replay(struct star_fresh *f, bool *ours)
{
    struct stat sb;
    *ours = false;
    if (fstat(f->fd, &sb) != 0)
        return errno_rc();
    if (sb.st_size < LOG_HDR)
        return 0;
    uint8_t *map =
        mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, f->fd, 0);
    if (map == MAP_FAILED)
        return errno_rc();
    int rc = 0;
    char *path = star_malloc(WIRE_MAX_PATH + 1);
    if (!path)
        rc = ORBIT_ENOMEM;
    *ours = memcmp(map, LOG_MAGIC, LOG_HDR) == 0;
    if (rc == 0 && *ours) {
        size_t at = LOG_HDR, total = (size_t)sb.st_size;
        for (;;) {
            uint64_t off;
            uint32_t len;
            const uint8_t *id;
            const char *p;
            size_t n = parse_record(map + at, total - at, &off, &len, &id, &p);
            if (n == 0)
                break;
            size_t plen = n - REC_HDR;
            memcpy(path, p, plen);
            path[plen] = 0;
            rc = table_put(f, id, off, len, path);
            if (rc < 0)
                break;
            at += n;
        }
        f->end = at;
    }
    free(path);
    munmap(map, (size_t)sb.st_size);
    return rc;
}

/* Empty the log down to its header, written anew unless ours. */
static int
log_reset(struct star_fresh *f, bool ours)
{
    if (ftruncate(f->fd, ours ? LOG_HDR : 0) != 0)
        return errno_rc();
    if (!ours) {
        int rc = star_pwrite_all(f->fd, (const uint8_t *)LOG_MAGIC, LOG_HDR, 0);
        if (rc < 0)
            return rc;
    }
    f->end = LOG_HDR;
    f->end_dirty = false;
    return 0;
}

int
star_fresh_open(int dirfd, struct starmap *sm, struct star_fresh **out)
{
    struct star_fresh *f = star_calloc(1, sizeof *f);
    if (!f)
        return ORBIT_ENOMEM;
    f->sm = sm;
    f->fd = -1;
    if (pthread_mutex_init(&f->mu, NULL) != 0) {
        free(f);
        return ORBIT_ENOMEM;
    }
    f->fd = openat(dirfd, LOG_NAME, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
                   0600);
    bool ours = false;
    int rc = f->fd >= 0 ? replay(f, &ours) : errno_rc();
    if (rc == 0 && f->live > 0 && star_fresh_merge(f) < 0) {
        /* No merge now (a full disk?): the table serves the replayed
         * entries, the log keeps them (what follows the last valid record
         * is cut before the next append), and a later merge takes them. */
        f->end_dirty = true;
        *out = f;
        return 0;
    }
    if (rc == 0)
        rc = log_reset(f, ours);
    if (rc < 0) {
        star_fresh_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

int
star_fresh_close(struct star_fresh *f)
{
    if (!f)
        return 0;
    int rc = 0;
    if (f->live > 0 && f->fd >= 0)
        rc = star_fresh_merge(f);
    if (f->fd >= 0)
        close(f->fd);
    table_reset(f);
    pthread_mutex_destroy(&f->mu);
    free(f);
    return rc;
}

int
star_fresh_fd(const struct star_fresh *f)
{
    return f->fd;
}

int
star_fresh_append(struct star_fresh *f, const uint8_t *const *ids,
                  const struct star_loc *const *locs, size_t n)
{
    pthread_mutex_lock(&f->mu);
    bool full = f->live >= FRESH_HARD_ENTRIES || f->plen >= FRESH_HARD_PATHS;
    pthread_mutex_unlock(&f->mu);
    if (full)
        return f->merge_err ? f->merge_err : ORBIT_EFULL;
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        if (held_here(locs[i]))
            bytes += REC_HDR + strlen(locs[i]->path);
    if (bytes == 0)
        return 0;
    uint8_t *buf = star_malloc(bytes);
    if (!buf)
        return ORBIT_ENOMEM;
    uint8_t *p = buf;
    for (size_t i = 0; i < n; i++) {
        const struct star_loc *l = locs[i];
        if (!held_here(l))
            continue;
        size_t plen = strlen(l->path);
        wire_be16_put(p + 4, (uint16_t)plen);
        wire_be32_put(p + 6, l->length);
        wire_be64_put(p + 10, l->offset);
        memcpy(p + 18, ids[i], WIRE_ID_LEN);
        memcpy(p + REC_HDR, l->path, plen);
        wire_be32_put(p, wire_crc32c(p + 4, REC_HDR - 4 + plen));
        p += REC_HDR + plen;
    }
    int rc = 0;
    if (f->end_dirty && ftruncate(f->fd, (off_t)f->end) != 0)
        rc = errno_rc();
    if (rc == 0) {
        f->end_dirty = false;
        rc = star_pwrite_all(f->fd, buf, bytes, f->end);
        if (rc == 0)
            f->end += bytes;
        else
            f->end_dirty = true; /* a torn record: cut before the next */
    }
    free(buf);
    return rc;
}

int
star_fresh_publish(struct star_fresh *f, const uint8_t *const *ids,
                   const struct star_loc *const *locs, size_t n)
{
    int rc = 0;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < n && rc == 0; i++)
        if (held_here(locs[i]))
            rc = table_put(f, ids[i], locs[i]->offset, locs[i]->length,
                           locs[i]->path);
    pthread_mutex_unlock(&f->mu);
    return rc;
}

bool
star_fresh_due(struct star_fresh *f)
{
    pthread_mutex_lock(&f->mu);
    bool due =
        (f->live >= FRESH_MERGE_ENTRIES || f->plen >= FRESH_MERGE_PATHS) &&
        f->live >= f->retry_at;
    pthread_mutex_unlock(&f->mu);
    return due;
}

static int
slot_cmp(const void *a, const void *b)
{
    const struct slot *x = a, *y = b;
    int c = memcmp(x->id, y->id, WIRE_ID_LEN);
    if (c != 0)
        return c;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The entries into LMDB, in key order, FRESH_MERGE_TXN per commit. */
static int
merge_sorted(struct star_fresh *f, const struct slot *v, size_t n)
{
    struct starmap_batch *b = NULL;
    struct starmap_loc *sl = star_malloc(sizeof *sl);
    int rc = sl ? starmap_batch_new(&b) : ORBIT_ENOMEM;
    for (size_t i = 0; i < n && rc == 0; i += FRESH_MERGE_TXN) {
        starmap_batch_clear(b);
        size_t end = i + FRESH_MERGE_TXN < n ? i + FRESH_MERGE_TXN : n;
        for (size_t j = i; j < end && rc == 0; j++) {
            struct chunk_id cid;
            memcpy(cid.b, v[j].id, WIRE_ID_LEN);
            rc = starmap_loc_file(sl, f->paths + v[j].path, v[j].offset,
                                  v[j].length);
            if (rc == 0)
                rc = starmap_batch_add_loc(b, &cid, sl);
        }
        if (rc == 0)
            rc = starmap_batch_commit(f->sm, b, NULL);
        /* Random keys: a transaction maps about one leaf page per entry;
         * without this a merge (most of all the one at close, after the
         * last round's trim) raised the star's peak RSS by 17 MiB. Only
         * RSS is at stake: an error is ignored. */
        starmap_trim(f->sm, NULL);
    }
    starmap_batch_free(b);
    free(sl);
    return rc;
}

int
star_fresh_merge(struct star_fresh *f)
{
    pthread_mutex_lock(&f->mu);
    size_t n = 0, vsize = f->live * sizeof(struct slot);
    struct slot *v = f->live ? big_alloc(vsize) : NULL;
    for (size_t i = 0; v && i < f->cap; i++)
        if (f->slots[i].path != SLOT_EMPTY && f->slots[i].path != SLOT_DEAD)
            v[n++] = f->slots[i];
    size_t live = f->live;
    pthread_mutex_unlock(&f->mu);
    int rc = live > 0 && !v ? ORBIT_ENOMEM : 0;
    if (rc == 0 && n > 0) {
        /* Paths are read without the lock: only this thread changes them. */
        qsort(v, n, sizeof *v, slot_cmp);
        rc = merge_sorted(f, v, n);
    }
    big_free(v, vsize);
    if (rc < 0) {
        f->merge_err = rc;
        f->retry_at = live + FRESH_MERGE_ENTRIES / 8;
        return rc;
    }
    pthread_mutex_lock(&f->mu);
    table_reset(f);
    f->merges += n > 0;
    pthread_mutex_unlock(&f->mu);
    f->merge_err = 0;
    f->retry_at = 0;
    /* Every entry is durable in LMDB now: the log can go. A failed
     * truncation only leaves records that a replay merges again. */
    if (ftruncate(f->fd, LOG_HDR) == 0)
        f->end_dirty = false;
    else
        f->end_dirty = true;
    f->end = LOG_HDR;
    return 0;
}

void
star_fresh_have(struct star_fresh *f, const uint8_t *ids, size_t n, bool *have)
{
    pthread_mutex_lock(&f->mu);
    for (size_t k = 0; f->live > 0 && k < n; k++)
        if (first_of(f, ids + k * WIRE_ID_LEN) != SIZE_MAX)
            have[k] = true;
    pthread_mutex_unlock(&f->mu);
}

size_t
star_fresh_lookup(struct star_fresh *f, const uint8_t id[WIRE_ID_LEN],
                  struct star_loc *locs, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&f->mu);
    for (size_t i = first_of(f, id); i != SIZE_MAX && n < max;
         i = next_of(f, id, i)) {
        const struct slot *s = &f->slots[i];
        struct star_loc *l = &locs[n++];
        memset(l, 0, offsetof(struct star_loc, path));
        l->kind = STAR_LOC_FILE;
        l->length = s->length;
        l->offset = s->offset;
        memcpy(l->path, f->paths + s->path, strlen(f->paths + s->path) + 1);
    }
    pthread_mutex_unlock(&f->mu);
    return n;
}

bool
star_fresh_drop(struct star_fresh *f, const uint8_t id[WIRE_ID_LEN],
                const struct star_loc *loc)
{
    if (loc->kind != STAR_LOC_FILE)
        return false;
    bool found = false;
    pthread_mutex_lock(&f->mu);
    for (size_t i = first_of(f, id); i != SIZE_MAX && !found;
         i = next_of(f, id, i)) {
        struct slot *s = &f->slots[i];
        found = same(f, s, id, loc->offset, loc->path);
        if (found) {
            s->path = SLOT_DEAD;
            f->live--;
            f->dead++;
        }
    }
    pthread_mutex_unlock(&f->mu);
    return found;
}

size_t
star_fresh_count(struct star_fresh *f)
{
    pthread_mutex_lock(&f->mu);
    size_t n = f->live;
    pthread_mutex_unlock(&f->mu);
    return n;
}

uint64_t
star_fresh_merges(struct star_fresh *f)
{
    pthread_mutex_lock(&f->mu);
    uint64_t n = f->merges;
    pthread_mutex_unlock(&f->mu);
    return n;
}
