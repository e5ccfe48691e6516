/*
 * sched_walk.c - depth-first streaming walk of the sources. Memory is one
 * open directory stream per level of depth, never the whole tree.
 */
#include "sched_walk.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orbit/error.h"
#include "orbit/journal.h"
#include "orbit/wire.h"
#include "sched_internal.h"

int
sched_walk_init(struct sched_walk *w, const struct sched_config *cfg)
{
    memset(w, 0, sizeof *w);
    w->cfg = cfg;
    return 0;
}

void
sched_walk_release(struct sched_walk *w)
{
    sched_walk_flush(w);
    while (w->depth > 0)
        closedir(w->dirs[--w->depth]);
}

static bool
glob_match(const char *pat, const char *rel)
{
    const char *base = strrchr(rel, '/');
    base = base ? base + 1 : rel;
    if (strchr(pat, '/'))
        return fnmatch(pat[0] == '/' ? pat + 1 : pat, rel, FNM_PATHNAME) == 0;
    return fnmatch(pat, base, 0) == 0;
}

/* Excluded paths are not sent and, for directories, not descended. */
static bool
excluded(const struct sched_config *cfg, const char *rel, bool is_dir)
{
    if (rel[0] == '\0')
        return false;
    for (size_t i = 0; i < cfg->nexcludes; i++)
        if (glob_match(cfg->excludes[i], rel))
            return true;
    if (cfg->nincludes == 0 || is_dir)
        return false; /* directories are walked to find included files */
    for (size_t i = 0; i < cfg->nincludes; i++)
        if (glob_match(cfg->includes[i], rel))
            return false;
    return true;
}

static int
join(char *buf, size_t cap, const char *a, const char *b)
{
    int n;
    if (a[0] == '\0')
        n = snprintf(buf, cap, "%s", b);
    else if (b[0] == '\0')
        n = snprintf(buf, cap, "%s", a);
    else
        n = snprintf(buf, cap, "%s/%s", a, b);
    return (n < 0 || (size_t)n >= cap) ? ORBIT_EPATH : 0;
}

static int
file_from_stat(struct sched_walk *w, const struct stat *st,
               struct sched_file **out)
{
    const struct sched_source *src = &w->cfg->sources[w->src];
    char path[PATH_MAX], rel[PATH_MAX];
    if (join(path, sizeof path, src->path, w->rel) != 0 ||
        join(rel, sizeof rel, src->dest_name, w->rel) != 0)
        return ORBIT_EPATH;
    struct sched_file *f = calloc(1, sizeof *f);
    if (!f || !(f->rel = strdup(rel)) || !(f->src_path = strdup(path))) {
        if (f)
            free(f->rel);
        free(f);
        return ORBIT_ENOMEM;
    }
    f->mode = st->st_mode & 07777;
    f->mtime_sec = st->st_mtim.tv_sec;
    f->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
    if (S_ISREG(st->st_mode)) {
        f->ftype = WIRE_FT_REGULAR;
        f->size = (uint64_t)st->st_size;
    } else if (S_ISDIR(st->st_mode)) {
        f->ftype = WIRE_FT_DIRECTORY;
    } else {
        f->ftype = WIRE_FT_SYMLINK;
    }
    *out = f;
    return 0;
}

static int
read_link(struct sched_file *f)
{
    char buf[PATH_MAX];
    ssize_t n = readlink(f->src_path, buf, sizeof buf - 1);
    if (n < 0)
        return orbit_err_from_errno(errno);
    buf[n] = '\0';
    f->target = strdup(buf);
    return f->target ? 0 : ORBIT_ENOMEM;
}

/* Produce the entry at w->rel; descend into it when it is a directory. */
static int
visit(struct sched_walk *w, struct sched_file **out, char *msg, size_t cap)
{
    const struct sched_source *src = &w->cfg->sources[w->src];
    char path[PATH_MAX];
    struct stat st;
    if (join(path, sizeof path, src->path, w->rel) != 0) {
        snprintf(msg, cap, "path too long: %s/%s", src->path, w->rel);
        return ORBIT_EPATH;
    }
    if (lstat(path, &st) != 0) {
        int rc = orbit_err_from_errno(errno);
        snprintf(msg, cap, "cannot stat %s: %s", path, strerror(errno));
        file_from_stat(w, &(struct stat){.st_mode = S_IFREG}, out);
        return rc;
    }
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode) && !S_ISLNK(st.st_mode))
        return ORBIT_EAGAIN; /* devices, fifos, sockets: not transferred */
    if (excluded(w->cfg, w->rel, S_ISDIR(st.st_mode)))
        return ORBIT_EAGAIN;
    int rc = file_from_stat(w, &st, out);
    if (rc == 0 && S_ISLNK(st.st_mode) && (rc = read_link(*out)) != 0)
        snprintf(msg, cap, "cannot read link %s: %s", path, orbit_strerror(rc));
    if (rc != 0 || !S_ISDIR(st.st_mode))
        return rc;
    if (w->depth == SCHED_WALK_DEPTH) {
        snprintf(msg, cap, "%s: deeper than %d levels", path, SCHED_WALK_DEPTH);
        return ORBIT_EPATH;
    }
    DIR *d = opendir(path);
    if (!d) {
        rc = orbit_err_from_errno(errno);
        snprintf(msg, cap, "cannot read directory %s: %s", path,
                 strerror(errno));
        return rc;
    }
    w->dirs[w->depth] = d;
    w->lens[w->depth] = strlen(w->rel);
    w->depth++;
    return 0;
}

/* Set w->rel to the next name in the deepest open directory. */
static int
advance(struct sched_walk *w)
{
    while (w->depth > 0) {
        DIR *d = w->dirs[w->depth - 1];
        size_t len = w->lens[w->depth - 1];
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            closedir(d);
            w->depth--;
            continue;
        }
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        size_t nlen = strlen(e->d_name);
        size_t sep = len > 0 ? 1 : 0;
        if (len + sep + nlen >= sizeof w->rel)
            continue; /* cannot be named: lstat would fail on it anyway */
        if (sep)
            w->rel[len] = '/';
        memcpy(w->rel + len + sep, e->d_name, nlen + 1);
        return 0;
    }
    return ORBIT_ENOENT;
}

static bool
wanted(const struct sched_config *cfg, const struct sched_file *f)
{
    if (!cfg->only_paths)
        return true;
    for (size_t i = 0; i < cfg->nonly_paths; i++)
        if (strcmp(cfg->only_paths[i], f->rel) == 0)
            return true;
    return false;
}

int
sched_walk_next(struct sched_walk *w, struct sched_file **out, char *msg,
                size_t msgcap)
{
    *out = NULL;
    msg[0] = '\0';
    while (w->src < w->cfg->nsources) {
        if (!w->src_started) {
            w->src_started = true;
            w->rel[0] = '\0';
        } else if (advance(w) != 0) {
            w->src++;
            w->src_started = false;
            continue;
        }
        struct sched_file *f = NULL;
        int rc = visit(w, &f, msg, msgcap);
        if (rc == ORBIT_EAGAIN) {
            continue;
        }
        if (f && f->rel[0] == '\0' && f->ftype == WIRE_FT_DIRECTORY) {
            /* The destination root itself: nothing to commit. */
            free(f->rel);
            free(f->src_path);
            free(f);
            if (rc == 0)
                continue;
            f = NULL;
        }
        if (rc == 0 && f && !wanted(w->cfg, f)) {
            free(f->rel);
            free(f->src_path);
            free(f->target);
            free(f);
            continue;
        }
        *out = f;
        return rc;
    }
    return ORBIT_ENOENT;
}

static int64_t
mtime_ns(const struct sched_file *f)
{
    return f->mtime_sec * 1000000000LL + (int64_t)f->mtime_nsec;
}

bool
sched_walk_is_done(struct sched_walk *w, const struct sched_file *f)
{
    struct journal *j = w->cfg->journal;
    return j && journal_file_is_done(j, w->cfg->job_id, f->rel, f->size,
                                     mtime_ns(f));
}

/* Journal writes are grouped: one transaction per JOURNAL_BATCH_FILES files
 * or per tick, so marking 78,000 files done costs a few hundred commits. A
 * crash loses at most the open batch, whose files are then sent again (their
 * chunks are already at the star: only the manifests travel). */
static int
batch_open(struct sched_walk *w)
{
    if (w->batch_n > 0 || !w->cfg->journal)
        return 0;
    return journal_batch_begin(w->cfg->journal);
}

static void
batch_note(struct sched_walk *w)
{
    if (++w->batch_n >= JOURNAL_BATCH_FILES)
        sched_walk_flush(w);
}

void
sched_walk_flush(struct sched_walk *w)
{
    if (w->batch_n == 0)
        return;
    w->batch_n = 0;
    int rc = journal_batch_commit(w->cfg->journal);
    if (rc != 0)
        fprintf(stderr, "orbit: journal: cannot record progress: %s\n",
                orbit_strerror(rc));
}

void
sched_walk_mark_done(struct sched_walk *w, const struct sched_file *f)
{
    struct journal *j = w->cfg->journal;
    if (!j || batch_open(w) != 0)
        return;
    struct journal_file jf = {
        .size = f->size,
        .mtime_ns = mtime_ns(f),
        .state = JOURNAL_FILE_DONE,
        .has_digest = f->ftype == WIRE_FT_REGULAR,
        .bytes_sent = f->bytes_sent,
    };
    memcpy(jf.digest, f->digest, sizeof jf.digest);
    if (journal_file_put(j, w->cfg->job_id, f->rel, &jf) == 0)
        batch_note(w);
}

void
sched_walk_mark_dead(struct sched_walk *w, const struct dlq_failure *fl)
{
    struct journal *j = w->cfg->journal;
    if (!j || batch_open(w) != 0)
        return;
    if (journal_dead_add(j, fl) == 0)
        batch_note(w);
}
