#include "orbit/pak_pool.h"

#include "orbit/error.h"
#include "starmap_alloc.h"
#include "pak_internal.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME_FMT "container_%06u.orbitpak"

struct cached_reader {
    uint32_t container;
    uint64_t last_use;
    struct pak_reader *r;
};

struct pak_pool {
    pthread_mutex_t lock;
    char dir[PATH_MAX];
    char err[PAK_ERRMSG_LEN];
    struct pak_pool_opts o;
    struct pak_writer *w;
    uint32_t active;
    uint64_t tick;
    struct cached_reader *cache; /* o.max_open_readers slots */
};

void
pak_pool_opts_default(struct pak_pool_opts *o)
{
    o->rotate_size = PAK_POOL_DEFAULT_ROTATE;
    o->sync.mode = PAK_SYNC_EXPLICIT;
    o->sync.every_bytes = 0;
    o->max_open_readers = 8;
}

static int
parse_name(const char *name, uint32_t *n)
{
    unsigned v = 0;
    int end = 0;
    if (strlen(name) != strlen("container_000000.orbitpak"))
        return -1;
    if (sscanf(name, "container_%6u.orbitpak%n", &v, &end) != 1 ||
        end != (int)strlen(name))
        return -1;
    *n = v;
    return 0;
}

int
pak_pool_path(const struct pak_pool *p, uint32_t container, char *buf,
              size_t cap)
{
    if (!p || !buf || container > PAK_POOL_MAX_CONTAINER)
        return ORBIT_EINVAL;
    int n = snprintf(buf, cap, "%s/" NAME_FMT, p->dir, container);
    return n < 0 || (size_t)n >= cap ? ORBIT_ETOOBIG : 0;
}

int
pak_mkdir_p(const char *dir)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp)
        return ORBIT_ETOOBIG;
    for (char *s = tmp + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return orbit_err_from_errno(errno);
        *s = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return orbit_err_from_errno(errno);
    struct stat st;
    if (stat(tmp, &st) != 0)
        return orbit_err_from_errno(errno);
    return S_ISDIR(st.st_mode) ? 0 : ORBIT_ENOTDIR;
}

/* Containers in the directory: the highest number and, into out, the list. */
static int
scan_dir(const struct pak_pool *p, uint32_t *out, size_t max, size_t *n,
         uint32_t *highest)
{
    DIR *d = opendir(p->dir);
    if (!d)
        return orbit_err_from_errno(errno);
    struct dirent *e;
    *n = 0;
    *highest = 0;
    while ((e = readdir(d)) != NULL) {
        uint32_t c;
        if (parse_name(e->d_name, &c) != 0)
            continue;
        if (*n < max)
            out[*n] = c;
        (*n)++;
        if (c > *highest)
            *highest = c;
    }
    closedir(d);
    return 0;
}

static int
open_writer(struct pak_pool *p, uint32_t container)
{
    char path[PATH_MAX];
    if (container > PAK_POOL_MAX_CONTAINER)
        return ORBIT_EFULL;
    int rc = pak_pool_path(p, container, path, sizeof path);
    if (rc == 0)
        rc = pak_writer_open(path, &p->o.sync, &p->w);
    if (rc != 0) {
        pak_set_err(p->err, path, 0, "open for append: %s", orbit_strerror(rc));
        return rc;
    }
    p->active = container;
    return 0;
}

int
pak_pool_open(const char *dir, const struct pak_pool_opts *o,
              struct pak_pool **out)
{
    if (!dir || !out)
        return ORBIT_EINVAL;
    *out = NULL;
    struct pak_pool *p = starmap_calloc(1, sizeof *p);
    if (!p)
        return ORBIT_ENOMEM;
    pak_pool_opts_default(&p->o);
    if (o)
        p->o = *o;
    if (p->o.rotate_size == 0)
        p->o.rotate_size = PAK_POOL_DEFAULT_ROTATE;
    if (p->o.max_open_readers == 0)
        p->o.max_open_readers = 1;
    pthread_mutex_init(&p->lock, NULL);
    int rc = snprintf(p->dir, sizeof p->dir, "%s", dir) >= (int)sizeof p->dir
                 ? ORBIT_ETOOBIG
                 : 0;
    p->cache = starmap_calloc(p->o.max_open_readers, sizeof *p->cache);
    if (rc == 0 && !p->cache)
        rc = ORBIT_ENOMEM;
    if (rc == 0)
        rc = pak_mkdir_p(p->dir);
    size_t n = 0;
    uint32_t highest = 0, dummy;
    if (rc == 0)
        rc = scan_dir(p, &dummy, 0, &n, &highest);
    if (rc == 0) {
        /* Resume the newest container; a damaged one (or one whose file
         * header never reached the disk) stays as it is and appends go to
         * a fresh one. */
        rc = open_writer(p, highest ? highest : 1);
        if (rc == ORBIT_ECORRUPT || rc == ORBIT_EFORMAT ||
            rc == ORBIT_EVERSION || rc == ORBIT_ETRUNC)
            rc = open_writer(p, highest + 1);
    }
    if (rc != 0) {
        pak_pool_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

static void
drop_cached(struct pak_pool *p, uint32_t container)
{
    for (size_t i = 0; i < p->o.max_open_readers; i++) {
        struct cached_reader *c = &p->cache[i];
        if (c->r && c->container == container) {
            pak_reader_free(c->r);
            c->r = NULL;
        }
    }
}

void
pak_pool_free(struct pak_pool *p)
{
    if (!p)
        return;
    for (size_t i = 0; p->cache && i < p->o.max_open_readers; i++)
        pak_reader_free(p->cache[i].r);
    free(p->cache);
    pak_writer_free(p->w);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

static int
rotate_locked(struct pak_pool *p)
{
    int rc = pak_writer_sync(p->w);
    if (rc != 0) {
        snprintf(p->err, sizeof p->err, "%s", pak_writer_errmsg(p->w));
        return rc;
    }
    pak_writer_free(p->w);
    p->w = NULL;
    return open_writer(p, p->active + 1);
}

int
pak_pool_rotate(struct pak_pool *p)
{
    if (!p)
        return ORBIT_EINVAL;
    pthread_mutex_lock(&p->lock);
    int rc = p->w ? rotate_locked(p) : open_writer(p, p->active + 1);
    pthread_mutex_unlock(&p->lock);
    return rc;
}

int
pak_pool_append(struct pak_pool *p, const struct chunk_id *id, uint8_t codec,
                size_t raw_len, const void *stored, size_t stored_len,
                struct pak_loc *loc)
{
    if (!p || !id || !loc)
        return ORBIT_EINVAL;
    pthread_mutex_lock(&p->lock);
    int rc = 0;
    if (!p->w) /* a failed rotation left no writer: try again */
        rc = open_writer(p, p->active + 1);
    if (rc == 0 && pak_writer_records(p->w) > 0 &&
        pak_writer_size(p->w) + PAK_REC_HEADER_LEN + stored_len >
            p->o.rotate_size)
        rc = rotate_locked(p);
    if (rc == 0) {
        rc = pak_writer_append(p->w, id, codec, raw_len, stored, stored_len,
                               &loc->offset);
        if (rc != 0)
            snprintf(p->err, sizeof p->err, "%s", pak_writer_errmsg(p->w));
        loc->container = p->active;
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

int
pak_pool_sync(struct pak_pool *p)
{
    if (!p)
        return ORBIT_EINVAL;
    pthread_mutex_lock(&p->lock);
    int rc = p->w ? pak_writer_sync(p->w) : 0;
    if (rc != 0)
        snprintf(p->err, sizeof p->err, "%s", pak_writer_errmsg(p->w));
    pthread_mutex_unlock(&p->lock);
    return rc;
}

/* The cached reader of container, opening it (evicting the LRU) if needed. */
static int
reader_for(struct pak_pool *p, uint32_t container, struct pak_reader **out)
{
    struct cached_reader *victim = &p->cache[0];
    for (size_t i = 0; i < p->o.max_open_readers; i++) {
        struct cached_reader *c = &p->cache[i];
        if (c->r && c->container == container) {
            c->last_use = ++p->tick;
            *out = c->r;
            return 0;
        }
        if (!c->r || (victim->r && c->last_use < victim->last_use))
            victim = c;
    }
    char path[PATH_MAX];
    int rc = pak_pool_path(p, container, path, sizeof path);
    if (rc == 0)
        rc = pak_reader_open(path, out);
    if (rc != 0) {
        pak_set_err(p->err, path, 0, "open for reading: %s",
                    orbit_strerror(rc));
        return rc;
    }
    pak_reader_free(victim->r);
    *victim = (struct cached_reader){container, ++p->tick, *out};
    return 0;
}

static int
read_locked(struct pak_pool *p, const struct pak_loc *loc,
            const struct chunk_id *expect, void *dst, size_t dst_cap,
            struct pak_record_info *info, struct pak_reader **r)
{
    int rc = reader_for(p, loc->container, r);
    if (rc != 0)
        return rc;
    rc = pak_reader_read(*r, loc->offset, expect, dst, dst_cap, info);
    if (rc != 0)
        snprintf(p->err, sizeof p->err, "%s", pak_reader_errmsg(*r));
    return rc;
}

int
pak_pool_read(struct pak_pool *p, const struct pak_loc *loc,
              const struct chunk_id *expect, void *dst, size_t dst_cap,
              struct pak_record_info *info)
{
    struct pak_reader *r;
    if (!p || !loc)
        return ORBIT_EINVAL;
    pthread_mutex_lock(&p->lock);
    int rc = read_locked(p, loc, expect, dst, dst_cap, info, &r);
    pthread_mutex_unlock(&p->lock);
    return rc;
}

int
pak_pool_read_stored(struct pak_pool *p, const struct pak_loc *loc, void *dst,
                     size_t dst_cap, void *stored, size_t stored_cap,
                     struct pak_record_info *info)
{
    struct pak_reader *r;
    if (!p || !loc || !info || !stored)
        return ORBIT_EINVAL;
    pthread_mutex_lock(&p->lock);
    int rc = read_locked(p, loc, NULL, dst, dst_cap, info, &r);
    if (rc == 0 && stored_cap < info->stored_len)
        rc = ORBIT_EFULL;
    if (rc == 0)
        memcpy(stored, pak_reader_stored(r), info->stored_len);
    pthread_mutex_unlock(&p->lock);
    return rc;
}

int
pak_pool_remove(struct pak_pool *p, uint32_t container)
{
    char path[PATH_MAX];
    if (!p)
        return ORBIT_EINVAL;
    pthread_mutex_lock(&p->lock);
    int rc = container == p->active ? ORBIT_ESTATE : 0;
    if (rc == 0)
        rc = pak_pool_path(p, container, path, sizeof path);
    if (rc == 0) {
        drop_cached(p, container);
        if (unlink(path) != 0 && errno != ENOENT)
            rc = orbit_err_from_errno(errno);
        else
            rc = pak_sync_parent_dir(path);
        if (rc != 0)
            pak_set_err(p->err, path, 0, "remove: %s", orbit_strerror(rc));
    }
    pthread_mutex_unlock(&p->lock);
    return rc;
}

uint32_t
pak_pool_active(struct pak_pool *p)
{
    pthread_mutex_lock(&p->lock);
    uint32_t a = p->active;
    pthread_mutex_unlock(&p->lock);
    return a;
}

static int
cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int
pak_pool_list(struct pak_pool *p, uint32_t *out, size_t max, size_t *n)
{
    uint32_t highest;
    if (!p || !n || (!out && max))
        return ORBIT_EINVAL;
    pthread_mutex_lock(&p->lock);
    int rc = scan_dir(p, out, max, n, &highest);
    pthread_mutex_unlock(&p->lock);
    if (rc == 0 && out)
        qsort(out, *n < max ? *n : max, sizeof *out, cmp_u32);
    return rc;
}

const char *
pak_pool_errmsg(const struct pak_pool *p)
{
    return p ? p->err : "no container pool";
}
