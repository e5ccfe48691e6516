/*
 * walker.c - the depth-first tree walk.
 *
 * State: a stack of frames (one open DIR per level, the length of its
 * relative path in the shared path buffer, whether it lies under an
 * include match), and a "descend" flag set when the entry just produced is
 * a directory to enter: it is opened on the next call, because the caller
 * still holds the entry's path until then.
 */
#include "orbit/walker.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orbit/error.h"
#include "walker_internal.h"

#define WALKER_PATH_CAP 4096u

struct walker_frame {
    DIR *dir;
    size_t plen;   /* length of this directory's relative path */
    bool included; /* under a directory that matched an include */
};

struct walker {
    struct walker_opts opts;
    char **incl; /* copies of the patterns */
    char **excl;
    struct walker_frame *frames;
    size_t depth;
    size_t cap;
    char *path;   /* WALKER_PATH_CAP bytes */
    char *target; /* WALKER_PATH_CAP bytes */
    /* A root that is not a directory: produced once, by base name. */
    bool single;
    bool single_done;
    struct stat root_st;
    int root_fd; /* the parent of a single file, else -1 */
    dev_t root_dev;
    bool descend; /* open path[name_off..] on the next call */
    size_t name_off;
    bool desc_included;
    struct walker_stats stats;
    size_t mem;
    size_t mem_peak;
};

__attribute__((weak)) void *
walker_calloc(size_t n, size_t size)
{
    return calloc(n, size);
}

__attribute__((weak)) void *
walker_realloc(void *p, size_t size)
{
    return realloc(p, size);
}

static void *
walker_alloc(struct walker *w, void *old, size_t old_size, size_t size)
{
    void *p = walker_realloc(old, size);
    if (!p)
        return NULL;
    w->mem = w->mem - old_size + size;
    if (w->mem > w->mem_peak)
        w->mem_peak = w->mem;
    return p;
}

void
walker_opts_init(struct walker_opts *opts)
{
    memset(opts, 0, sizeof *opts);
    opts->max_depth = WALKER_DEPTH_DEFAULT;
}

static char **
walker_copy_patterns(struct walker *w, const char *const *pats, size_t n)
{
    if (n == 0)
        return NULL;
    char **out = walker_alloc(w, NULL, 0, n * sizeof *out);
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        size_t len = pats[i] ? strlen(pats[i]) + 1 : 1;
        out[i] = walker_alloc(w, NULL, 0, len);
        if (!out[i]) {
            while (i-- > 0)
                free(out[i]);
            free(out);
            return NULL;
        }
        memcpy(out[i], pats[i] ? pats[i] : "", len);
    }
    return out;
}

static void
walker_free_patterns(char **pats, size_t n)
{
    for (size_t i = 0; pats && i < n; i++)
        free(pats[i]);
    free(pats);
}

void
walker_free(struct walker *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->depth; i++)
        closedir(w->frames[i].dir);
    if (w->root_fd >= 0)
        close(w->root_fd);
    walker_free_patterns(w->incl, w->opts.nincludes);
    walker_free_patterns(w->excl, w->opts.nexcludes);
    free(w->frames);
    free(w->path);
    free(w->target);
    free(w);
}

static int
walker_push(struct walker *w, int fd, size_t plen, bool included)
{
    if (w->depth == w->cap) {
        size_t ncap = w->cap ? w->cap * 2 : 16;
        if (ncap > w->opts.max_depth)
            ncap = w->opts.max_depth;
        struct walker_frame *f =
            walker_alloc(w, w->frames, w->cap * sizeof *f, ncap * sizeof *f);
        if (!f) {
            close(fd);
            return ORBIT_ENOMEM;
        }
        w->frames = f;
        w->cap = ncap;
    }
    DIR *d = fdopendir(fd);
    if (!d) {
        int err = orbit_err_from_errno(errno);
        close(fd);
        return err;
    }
    w->frames[w->depth++] = (struct walker_frame){d, plen, included};
    return 0;
}

static void
walker_pop(struct walker *w)
{
assert_depth:
    if (w->depth == 0)
        return;
    closedir(w->frames[--w->depth].dir);
    (void)&&assert_depth;
}

static bool
walker_any(char **pats, size_t n, const char *rel, bool is_dir)
{
    for (size_t i = 0; i < n; i++)
        if (walker_rule_matches(pats[i], rel, is_dir))
            return true;
    return false;
}

static int
walker_open_root(struct walker *w, const char *root)
{
    if (stat(root, &w->root_st) != 0)
        return orbit_err_from_errno(errno);
    w->root_dev = w->root_st.st_dev;
    if (!S_ISDIR(w->root_st.st_mode)) {
        /* A single file: keep its base name as the path. */
        const char *base = strrchr(root, '/');
        base = base ? base + 1 : root;
        if (!*base || strlen(base) >= WALKER_PATH_CAP)
            return ORBIT_EINVAL;
        strcpy(w->path, base);
        w->single = true;
        return 0;
    }
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return orbit_err_from_errno(errno);
    return walker_push(w, fd, 0, false);
}

int
walker_new(const char *root, const struct walker_opts *opts,
           struct walker **out)
{
    struct walker_opts defaults;
    struct walker *w = NULL;
    int rc = ORBIT_ENOMEM;
    if (!root || !*root || !out)
        return ORBIT_EINVAL;
    *out = NULL;
    if (!opts) {
        walker_opts_init(&defaults);
        opts = &defaults;
    }
    if (opts->max_depth > WALKER_DEPTH_MAX ||
        (opts->nincludes && !opts->includes) ||
        (opts->nexcludes && !opts->excludes))
        return ORBIT_EINVAL;
    w = walker_calloc(1, sizeof *w);
    if (!w)
        return ORBIT_ENOMEM;
    w->root_fd = -1;
    w->mem = w->mem_peak = sizeof *w;
    w->opts = *opts;
    if (!w->opts.max_depth)
        w->opts.max_depth = WALKER_DEPTH_DEFAULT;
    w->opts.includes = w->opts.excludes = NULL;
    w->incl = walker_copy_patterns(w, opts->includes, opts->nincludes);
    w->excl = walker_copy_patterns(w, opts->excludes, opts->nexcludes);
    w->path = walker_alloc(w, NULL, 0, WALKER_PATH_CAP);
    w->target = walker_alloc(w, NULL, 0, WALKER_PATH_CAP);
    if ((opts->nincludes && !w->incl) || (opts->nexcludes && !w->excl) ||
        !w->path || !w->target)
        goto out;
    w->path[0] = '\0';
    rc = walker_open_root(w, root);
out:
    if (rc != 0) {
        if (!w->incl)
            w->opts.nincludes = 0;
        if (!w->excl)
            w->opts.nexcludes = 0;
        walker_free(w);
        return rc;
    }
    *out = w;
    return 0;
}

static enum walker_type
walker_type_of(mode_t mode)
{
    if (S_ISREG(mode))
        return WALKER_FILE;
    if (S_ISDIR(mode))
        return WALKER_DIR;
    if (S_ISLNK(mode))
        return WALKER_SYMLINK;
    return WALKER_OTHER;
}

static void
walker_fill(struct walker *w, const struct stat *st, struct walker_entry *e)
{
    e->path = w->path;
    e->type = walker_type_of(st->st_mode);
    e->size = S_ISDIR(st->st_mode) ? 0 : (uint64_t)st->st_size;
    e->mode = (uint32_t)st->st_mode;
    e->mtime_ns =
        (int64_t)st->st_mtim.tv_sec * 1000000000 + (int64_t)st->st_mtim.tv_nsec;
    e->dev = (uint64_t)st->st_dev;
    e->ino = (uint64_t)st->st_ino;
    e->link_target = e->type == WALKER_SYMLINK ? w->target : NULL;
    switch (e->type) {
    case WALKER_FILE:
        w->stats.files++;
        w->stats.bytes += e->size;
        break;
    case WALKER_DIR:
        w->stats.dirs++;
        break;
    case WALKER_SYMLINK:
        w->stats.symlinks++;
        break;
    default:
        w->stats.others++;
        break;
    }
}

/* Opens the directory produced by the previous call and pushes it. */
static int
walker_descend(struct walker *w)
{
    struct walker_frame *top = &w->frames[w->depth - 1];
    size_t plen = strlen(w->path);
    w->descend = false;
    if (w->depth >= w->opts.max_depth)
        return ORBIT_ETOOBIG;
    int fd = openat(dirfd(top->dir), w->path + w->name_off,
                    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return orbit_err_from_errno(errno);
    return walker_push(w, fd, plen, w->desc_included);
}

/* Appends name to the path of the top frame. */
static int
walker_set_name(struct walker *w, const char *name)
{
    const struct walker_frame *top = &w->frames[w->depth - 1];
    size_t off = top->plen ? top->plen + 1 : 0;
    size_t n = strlen(name);
    if (off + n >= WALKER_PATH_CAP) {
        /* Report what fits: the parent and the start of the name. */
        w->path[top->plen] = '\0';
        return ORBIT_ETOOBIG;
    }
    if (top->plen)
        w->path[top->plen] = '/';
    memcpy(w->path + off, name, n + 1);
    w->name_off = off;
    return 0;
}

/* Classifies the entry named at w->path: 1 to produce it, 0 to skip it,
 * or an error for it. */
static int
walker_consider(struct walker *w, const struct walker_frame *top,
                struct stat *st)
{
    const char *name = w->path + w->name_off;
    if (fstatat(dirfd(top->dir), name, st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) {
            w->stats.vanished++;
            if (w->opts.on_error)
                w->opts.on_error(w->opts.arg, w->path, ORBIT_ENOENT);
            return 0;
        }
        return orbit_err_from_errno(errno);
    }
    bool is_dir = S_ISDIR(st->st_mode);
    if (walker_any(w->excl, w->opts.nexcludes, w->path, is_dir)) {
        w->stats.excluded++;
        return 0;
    }
    bool included = top->included || w->opts.nincludes == 0 ||
                    walker_any(w->incl, w->opts.nincludes, w->path, is_dir);
    if (is_dir) {
        w->descend = !w->opts.one_filesystem || st->st_dev == w->root_dev;
        w->desc_included = top->included || (w->opts.nincludes && included);
    }
    if (!included) {
        if (!is_dir)
            w->stats.excluded++;
        return 0;
    }
    if (S_ISLNK(st->st_mode)) {
        ssize_t n =
            readlinkat(dirfd(top->dir), name, w->target, WALKER_PATH_CAP - 1);
        if (n < 0)
            return orbit_err_from_errno(errno);
        w->target[n] = '\0';
    }
    return 1;
}

static int
walker_single(struct walker *w, struct walker_entry *e)
{
    if (w->single_done)
        return ORBIT_ENOENT;
    w->single_done = true;
    bool is_dir = false;
    if (walker_any(w->excl, w->opts.nexcludes, w->path, is_dir) ||
        (w->opts.nincludes &&
         !walker_any(w->incl, w->opts.nincludes, w->path, is_dir))) {
        w->stats.excluded++;
        return ORBIT_ENOENT;
    }
    walker_fill(w, &w->root_st, e);
    return 0;
}

/* One step: 1 with an entry, 0 to go on, ORBIT_ENOENT at the end, or an
 * error for the entry now named by w->path. */
static int
walker_step(struct walker *w, struct walker_entry *e)
{
    if (w->descend) {
        int rc = walker_descend(w);
        if (rc != 0)
            return rc;
    }
    if (w->depth == 0)
        return ORBIT_ENOENT;
    struct walker_frame *top = &w->frames[w->depth - 1];
    errno = 0;
    struct dirent *de = readdir(top->dir);
    if (!de) {
        int err = errno;
        w->path[top->plen] = '\0';
        walker_pop(w);
        return err ? orbit_err_from_errno(err) : 0;
    }
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
        return 0;
    int rc = walker_set_name(w, de->d_name);
    if (rc != 0)
        return rc;
    struct stat st;
    rc = walker_consider(w, top, &st);
    if (rc <= 0)
        return rc;
    walker_fill(w, &st, e);
    return 1;
}

int
walker_next(struct walker *w, struct walker_entry *entry)
{
    if (!w || !entry)
        return ORBIT_EINVAL;
    memset(entry, 0, sizeof *entry);
    if (w->single)
        return walker_single(w, entry);
    for (;;) {
        int rc = walker_step(w, entry);
        if (rc == 1)
            return 0;
        if (rc == 0)
            continue;
        if (rc == ORBIT_ENOENT && w->depth == 0)
            return ORBIT_ENOENT;
        w->descend = false;
        if (rc == ORBIT_ENOENT) {
            /* A directory that vanished before it could be opened. */
            w->stats.vanished++;
            if (w->opts.on_error)
                w->opts.on_error(w->opts.arg, w->path, rc);
            continue;
        }
        w->stats.errors++;
        w->descend = false;
        if (w->opts.on_error) {
            w->opts.on_error(w->opts.arg, w->path, rc);
            continue;
        }
        entry->path = w->path;
        return rc;
    }
}

void
walker_get_stats(const struct walker *w, struct walker_stats *out)
{
    if (w && out)
        *out = w->stats;
}

size_t
walker_mem_current(const struct walker *w)
{
    return w ? w->mem : 0;
}

size_t
walker_mem_peak(const struct walker *w)
{
    return w ? w->mem_peak : 0;
}

size_t
walker_depth(const struct walker *w)
{
    return w ? w->depth : 0;
}
