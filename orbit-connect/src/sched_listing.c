/*
 * A destination's listing on disk: see sched_listing.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "orbit/error.h"
#include "orbit/wire_path.h"
#include "sched_listing.h"

/* Lookups between two drops of the mapped pages. */
#define TRIM_EVERY 4096

struct rec {
    uint64_t path_off;
    uint64_t size;
    int64_t mtime_sec;
    uint32_t mtime_nsec;
    uint32_t path_len;
    uint8_t ftype;
    uint8_t pad[7];
};

struct sched_listing {
    FILE *recs, *paths; /* while adding */
    uint64_t paths_len;
    size_t n;
    bool sorted; /* so far, every entry came after the one before */
    bool sealed;
    struct rec *r; /* the mapped records, n of them */
    char *p;       /* the mapped paths, NUL-terminated */
    size_t rlen, plen;
    uint8_t *seen;
    unsigned touches;
    char prev[WIRE_MAX_PATH + 1];
};

int
sched_listing_new(struct sched_listing **out)
{
    *out = NULL;
    struct sched_listing *l = calloc(1, sizeof *l);
    if (!l)
        return ORBIT_ENOMEM;
    l->sorted = true;
    l->recs = tmpfile();
    l->paths = l->recs ? tmpfile() : NULL;
    if (!l->paths) {
        int rc = orbit_err_from_errno(errno);
        sched_listing_free(l);
        return rc;
    }
    *out = l;
    return 0;
}

void
sched_listing_free(struct sched_listing *l)
{
    if (!l)
        return;
    if (l->recs)
        fclose(l->recs);
    if (l->paths)
        fclose(l->paths);
    if (l->r)
        munmap(l->r, l->rlen);
    if (l->p)
        munmap(l->p, l->plen);
    free(l->seen);
    free(l);
}

int
sched_listing_add(struct sched_listing *l, const struct wire_list_entry *w)
{
    if (l->sealed || w->path_len > WIRE_MAX_PATH ||
        memchr(w->path, '\0', w->path_len))
        return ORBIT_EINVAL;
    struct rec r = {
        .path_off = l->paths_len,
        .size = w->size,
        .mtime_sec = w->mtime_sec,
        .mtime_nsec = w->mtime_nsec,
        .path_len = (uint32_t)w->path_len,
        .ftype = w->ftype,
    };
    if (fwrite(&r, sizeof r, 1, l->recs) != 1 ||
        fwrite(w->path, 1, w->path_len, l->paths) != w->path_len ||
        fputc('\0', l->paths) == EOF)
        return orbit_err_from_errno(errno ? errno : EIO);
    char cur[WIRE_MAX_PATH + 1];
    memcpy(cur, w->path, w->path_len);
    cur[w->path_len] = '\0';
    if (l->n > 0 && wire_path_cmp(l->prev, cur) >= 0)
        l->sorted = false;
    memcpy(l->prev, cur, w->path_len + 1);
    l->paths_len += w->path_len + 1;
    l->n++;
    return 0;
}

static int
rec_cmp(const void *a, const void *b, void *arg)
{
    const char *p = arg;
    return wire_path_cmp(p + ((const struct rec *)a)->path_off,
                         p + ((const struct rec *)b)->path_off);
}

/* Map len bytes of f; writable (private) when sorting needs it. */
static int
map_file(FILE *f, size_t len, bool writable, void **out)
{
    *out = NULL;
    if (len == 0)
        return 0;
    int prot = PROT_READ | (writable ? PROT_WRITE : 0);
    void *m = mmap(NULL, len, prot, MAP_PRIVATE, fileno(f), 0);
    if (m == MAP_FAILED)
        return orbit_err_from_errno(errno);
    *out = m;
    return 0;
}

int
sched_listing_seal(struct sched_listing *l)
{
    if (l->sealed)
        return 0;
    if (fflush(l->recs) != 0 || fflush(l->paths) != 0 || ferror(l->recs) ||
        ferror(l->paths))
        return orbit_err_from_errno(errno ? errno : EIO);
    l->rlen = l->n * sizeof(struct rec);
    l->plen = (size_t)l->paths_len;
    void *r = NULL, *p = NULL;
    int rc = map_file(l->recs, l->rlen, !l->sorted, &r);
    if (rc == 0)
        rc = map_file(l->paths, l->plen, false, &p);
    l->r = r;
    l->p = p;
    l->seen = calloc(l->n / 8 + 1, 1);
    if (rc == 0 && !l->seen)
        rc = ORBIT_ENOMEM;
    if (rc != 0)
        return rc;
    /* The files stay alive as long as they are mapped. */
    fclose(l->recs);
    fclose(l->paths);
    l->recs = l->paths = NULL;
    if (!l->sorted && l->n > 1) /* in private pages: never dropped below */
        qsort_r(l->r, l->n, sizeof *l->r, rec_cmp, l->p);
    l->sealed = true;
    return 0;
}

size_t
sched_listing_count(const struct sched_listing *l)
{
    return l->sealed ? l->n : 0;
}

/* Drop the mapped pages now and then: they are clean copies of the files
 * (unless sorting wrote the records), read again on the next use. */
static void
touch(struct sched_listing *l)
{
    if (++l->touches < TRIM_EVERY)
        return;
    l->touches = 0;
    if (l->r && l->sorted)
        madvise(l->r, l->rlen, MADV_DONTNEED);
    if (l->p)
        madvise(l->p, l->plen, MADV_DONTNEED);
}

static void
fill(const struct sched_listing *l, size_t i, struct sched_listed *out)
{
    const struct rec *r = &l->r[i];
    *out = (struct sched_listed){
        .path = l->p + r->path_off,
        .size = r->size,
        .mtime_sec = r->mtime_sec,
        .mtime_nsec = r->mtime_nsec,
        .ftype = r->ftype,
        .idx = i,
    };
}

bool
sched_listing_find(struct sched_listing *l, const char *path,
                   struct sched_listed *out)
{
    if (!l || !l->sealed)
        return false;
    touch(l);
    size_t lo = 0, hi = l->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = wire_path_cmp(path, l->p + l->r[mid].path_off);
        if (c == 0) {
            fill(l, mid, out);
            return true;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return false;
}

void
sched_listing_get(struct sched_listing *l, size_t i, struct sched_listed *out)
{
    touch(l);
    fill(l, i, out);
}

void
sched_listing_mark_seen(struct sched_listing *l, size_t idx)
{
    if (l && l->sealed && idx < l->n)
        l->seen[idx / 8] |= (uint8_t)(1u << (idx % 8));
}

bool
sched_listing_seen(const struct sched_listing *l, size_t idx)
{
    return l && l->sealed && idx < l->n &&
           (l->seen[idx / 8] & (1u << (idx % 8)));
}
