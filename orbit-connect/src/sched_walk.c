/*
 * sched_walk.c - depth-first streaming walk of the sources. Memory is one
 * open directory stream per level of depth, never the whole tree.
 */
#include "sched_walk.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orbit/error.h"
#include "orbit/journal.h"
#include "orbit/walker.h"
#include "orbit/wire.h"
#include "sched_internal.h"

struct walk_err {
    int err;
    char *path;
    struct walk_err *next;
};

static void
on_walk_error(void *arg, const char *path, int err)
{
    struct sched_walk *w = arg;
    struct walk_err *e = calloc(1, sizeof *e);
    if (!e || !(e->path = strdup(path))) {
        free(e);
        w->lost_errors++;
        return;
    }
    e->err = err;
    e->next = w->errors;
    w->errors = e;
}

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
    walker_free(w->walker);
    w->walker = NULL;
    while (w->errors) {
        struct walk_err *e = w->errors;
        w->errors = e->next;
        free(e->path);
        free(e);
    }
}

static int
join(char *buf, size_t cap, const char *a, const char *b)
{
    int n;
    if (a[0] == '\0')
        n = snprintf(buf, cap, "%s", b);
    else if (b[0] == '\0')
        n = snprintf(buf, cap, "%s", a);
    else /* "src/" + "x" is "src/x", not "src//x" */
        n = snprintf(buf, cap, "%s%s%s", a, a[strlen(a) - 1] == '/' ? "" : "/",
                     b);
    return (n < 0 || (size_t)n >= cap) ? ORBIT_EPATH : 0;
}

/* A new file for the entry at rel (source-relative) of the current source. */
static int
file_new(struct sched_walk *w, const char *rel, struct sched_file **out)
{
    const struct sched_source *src = &w->cfg->sources[w->src];
    char path[PATH_MAX], drel[PATH_MAX];
    *out = NULL;
    if (join(path, sizeof path, src->path, rel) != 0 ||
        join(drel, sizeof drel, src->dest_name, rel) != 0)
        return ORBIT_EPATH;
    struct sched_file *f = calloc(1, sizeof *f);
    if (!f || !(f->rel = strdup(drel)) || !(f->src_path = strdup(path))) {
        if (f)
            free(f->rel);
        free(f);
        return ORBIT_ENOMEM;
    }
    *out = f;
    return 0;
}

static void
set_meta(struct sched_file *f, uint8_t ftype, uint64_t size, uint32_t mode,
         int64_t mtime_ns)
{
    f->ftype = ftype;
    f->size = ftype == WIRE_FT_REGULAR ? size : 0;
    f->mode = mode & 07777;
    f->mtime_sec = mtime_ns / 1000000000LL;
    f->mtime_nsec = (uint32_t)(mtime_ns % 1000000000LL);
}

static void
drop(struct sched_file *f)
{
    if (!f)
        return;
    free(f->rel);
    free(f->src_path);
    free(f->target);
    free(f);
}

static bool
wanted(const struct sched_config *cfg, const struct sched_file *f)
{
    if (!cfg->only_paths)
        return true;
    /* A path itself, everything below it (a directory that could not be
     * read is retried with its subtree), and its parents (so that they
     * exist with the right modes). */
    size_t rl = strlen(f->rel);
    for (size_t i = 0; i < cfg->nonly_paths; i++) {
        const char *p = cfg->only_paths[i];
        size_t pl = strlen(p);
        if (strcmp(p, f->rel) == 0 ||
            (rl > pl && strncmp(f->rel, p, pl) == 0 && f->rel[pl] == '/') ||
            (pl > rl && f->ftype == WIRE_FT_DIRECTORY &&
             strncmp(p, f->rel, rl) == 0 && p[rl] == '/'))
            return true;
    }
    return false;
}

/* The root of a source: a single entry (file or link), or a directory to
 * walk, itself sent when it takes a name under the destination. */
static int
start_source(struct sched_walk *w, struct sched_file **out, char *msg,
             size_t cap)
{
    const struct sched_source *src = &w->cfg->sources[w->src];
    struct stat st;
    if (lstat(src->path, &st) != 0) {
        int rc = orbit_err_from_errno(errno);
        snprintf(msg, cap, "cannot read source %s: %s", src->path,
                 strerror(errno));
        if (file_new(w, "", out) == 0)
            set_meta(*out, WIRE_FT_REGULAR, 0, 0, 0);
        return *out ? rc : ORBIT_ENOMEM;
    }
    if (!S_ISDIR(st.st_mode)) {
        int rc = file_new(w, "", out);
        if (rc != 0)
            return rc;
        int64_t ns = st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
        set_meta(*out, S_ISLNK(st.st_mode) ? WIRE_FT_SYMLINK : WIRE_FT_REGULAR,
                 (uint64_t)st.st_size, st.st_mode, ns);
        return 0;
    }
    struct walker_opts o;
    walker_opts_init(&o);
    o.includes = w->cfg->includes;
    o.nincludes = w->cfg->nincludes;
    o.excludes = w->cfg->excludes;
    o.nexcludes = w->cfg->nexcludes;
    o.on_error = on_walk_error;
    o.arg = w;
    int rc = walker_new(src->path, &o, &w->walker);
    if (rc != 0) {
        snprintf(msg, cap, "cannot walk %s: %s", src->path, orbit_strerror(rc));
        return rc;
    }
    if (src->dest_name[0] == '\0')
        return ORBIT_EAGAIN; /* its contents go straight into DST */
    rc = file_new(w, "", out);
    if (rc == 0) {
        int64_t ns = st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec;
        set_meta(*out, WIRE_FT_DIRECTORY, 0, st.st_mode, ns);
    }
    return rc;
}

static int
next_error(struct sched_walk *w, struct sched_file **out, char *msg, size_t cap)
{
    struct walk_err *e = w->errors;
    w->errors = e->next;
    int rc = file_new(w, e->path, out);
    if (rc == 0) {
        set_meta(*out, WIRE_FT_REGULAR, 0, 0, 0);
        snprintf(msg, cap, "cannot read %s: %s", (*out)->src_path,
                 orbit_strerror(e->err));
        rc = e->err;
    }
    free(e->path);
    free(e);
    return rc;
}

static int
entry_file(struct sched_walk *w, const struct walker_entry *e,
           struct sched_file **out)
{
    static const uint8_t types[] = {
        [WALKER_FILE] = WIRE_FT_REGULAR,
        [WALKER_DIR] = WIRE_FT_DIRECTORY,
        [WALKER_SYMLINK] = WIRE_FT_SYMLINK,
    };
    if (e->type == WALKER_OTHER)
        return ORBIT_EAGAIN; /* fifos, sockets, devices are not sent */
    int rc = file_new(w, e->path, out);
    if (rc != 0)
        return rc;
    set_meta(*out, types[e->type], e->size, e->mode, e->mtime_ns);
    if (e->type == WALKER_SYMLINK &&
        !((*out)->target = strdup(e->link_target ? e->link_target : "")))
        return ORBIT_ENOMEM;
    return 0;
}

int
sched_walk_next(struct sched_walk *w, struct sched_file **out, char *msg,
                size_t msgcap)
{
    *out = NULL;
    msg[0] = '\0';
    while (w->src < w->cfg->nsources) {
        int rc;
        struct sched_file *f = NULL;
        if (w->errors) {
            rc = next_error(w, &f, msg, msgcap);
        } else if (!w->src_started) {
            w->src_started = true;
            rc = start_source(w, &f, msg, msgcap);
        } else if (!w->walker) {
            rc = ORBIT_ENOENT;
        } else {
            struct walker_entry e;
            rc = walker_next(w->walker, &e);
            if (rc == 0)
                rc = entry_file(w, &e, &f);
            else if (rc != ORBIT_ENOENT)
                continue; /* reported through on_walk_error */
        }
        if (rc == ORBIT_ENOENT) {
            walker_free(w->walker);
            w->walker = NULL;
            w->src++;
            w->src_started = false;
            continue;
        }
        if (rc == ORBIT_EAGAIN || (f && rc == 0 && !wanted(w->cfg, f))) {
            drop(f);
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
