/*
 * prov_reader.c - streaming reader of a JSON Lines provenance log.
 */
#include "orbit/provenance.h"

#include "orbit/error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct line {
    char *buf;
    size_t max; /* bytes kept; buf holds max + 1 */
    size_t len;
    bool terminated; /* ended by '\n' rather than EOF */
    bool too_long;
    bool has_nul;
};

/* The next line into l: 1 if one was read, 0 at end of file, or an error. */
static int
read_line(FILE *fp, struct line *l)
{
    l->len = 0;
    l->terminated = l->too_long = l->has_nul = false;
    bool any = false;
    int c;
    while ((c = getc_unlocked(fp)) != EOF) {
        any = true;
        if (c == '\n') {
            l->terminated = true;
            break;
        }
        if (c == '\0')
            l->has_nul = true;
        if (l->len < l->max)
            l->buf[l->len++] = (char)c;
        else
            l->too_long = true;
    }
    if (ferror(fp))
        return orbit_err_from_errno(errno);
    l->buf[l->len] = '\0';
    return any ? 1 : 0;
}

static bool
is_blank(const struct line *l)
{
    for (size_t i = 0; i < l->len; i++)
        if (!strchr(" \t\r", l->buf[i]))
            return false;
    return !l->too_long;
}

bool
prov_filter_match(const struct prov_filter *filter, const struct prov_event *ev)
{
    if (!filter)
        return true;
    const int64_t ts = prov_event_ts(ev);
    if (filter->has_since && ts < filter->since_us)
        return false;
    if (filter->has_until && ts >= filter->until_us)
        return false;
    if (filter->types && !(filter->types & (1u << prov_event_type(ev))))
        return false;
    if (filter->job_id) {
        const char *job = prov_event_get(ev, PROV_F_JOB_ID);
        if (!job || strcmp(job, filter->job_id) != 0)
            return false;
    }
    return true;
}

struct read_ctx {
    const char *path;
    const struct prov_read_opts *opts;
    struct prov_read_stats *st;
    prov_event_cb cb;
    void *arg;
    uint64_t line_no; /* in the current file */
};

static void
report(struct read_ctx *rc, const char *reason)
{
    rc->st->malformed++;
    if (rc->opts->on_malformed)
        rc->opts->on_malformed(rc->path, rc->line_no, reason,
                               rc->opts->malformed_arg);
}

/* Handle one line: 0 to go on, or the value that ends the read. */
static int
handle_line(struct read_ctx *rc, const struct line *l)
{
    if (l->too_long) {
        report(rc, "line longer than the reader's limit");
        return 0;
    }
    if (l->has_nul) {
        report(rc, "NUL byte in line");
        return 0;
    }
    if (is_blank(l))
        return 0;
    struct prov_event *ev = NULL;
    const int err = prov_event_from_json(l->buf, l->len, &ev);
    if (err == ORBIT_EFORMAT) {
        /* No newline and no valid event: a write cut short by a crash. */
        if (!l->terminated)
            rc->st->torn_tail = true;
        else
            report(rc, "not a valid JSON event");
        return 0;
    }
    if (err < 0)
        return err;
    rc->st->events++;
    int ret = 0;
    if (prov_filter_match(rc->opts->filter, ev)) {
        rc->st->matched++;
        ret = rc->cb ? rc->cb(ev, rc->arg) : 0;
    }
    prov_event_free(ev);
    return ret;
}

/* Stream one file into rc's stats (which it adds to). */
static int
read_one(struct read_ctx *rc, struct line *l, bool *missing)
{
    FILE *fp = fopen(rc->path, "re");
    *missing = !fp && errno == ENOENT;
    if (!fp)
        return orbit_err_from_errno(errno);
    rc->line_no = 0;
    int ret = 0;
    while (ret == 0) {
        const int n = read_line(fp, l);
        if (n <= 0) {
            ret = n;
            break;
        }
        rc->line_no++;
        rc->st->lines++;
        ret = handle_line(rc, l);
    }
    fclose(fp);
    return ret;
}

/* Read paths[0..n) in order; missing files are skipped when skip_missing. */
static int
read_files(const char *const *paths, size_t n, bool skip_missing,
           const struct prov_read_opts *opts, prov_event_cb cb, void *arg,
           struct prov_read_stats *stats)
{
    static const struct prov_read_opts no_opts;
    struct prov_read_stats local;
    struct read_ctx rc = {
        NULL, opts ? opts : &no_opts, stats ? stats : &local, cb, arg, 0};
    memset(rc.st, 0, sizeof *rc.st);
    struct line l = {0};
    l.max = rc.opts->max_line ? rc.opts->max_line : PROV_DEFAULT_MAX_LINE;
    l.buf = malloc(l.max + 1);
    if (!l.buf)
        return ORBIT_ENOMEM;
    int ret = 0;
    size_t found = 0;
    for (size_t i = 0; i < n && ret == 0; i++) {
        bool missing = false;
        rc.path = paths[i];
        ret = read_one(&rc, &l, &missing);
        if (missing && skip_missing)
            ret = 0;
        else
            found++;
    }
    free(l.buf);
    return ret == 0 && found == 0 ? ORBIT_ENOENT : ret;
}

int
prov_read_file(const char *path, const struct prov_read_opts *opts,
               prov_event_cb cb, void *arg, struct prov_read_stats *stats)
{
    if (!path)
        return ORBIT_EINVAL;
    return read_files(&path, 1, false, opts, cb, arg, stats);
}

int
prov_read_rotated(const char *path, uint32_t max_files,
                  const struct prov_read_opts *opts, prov_event_cb cb,
                  void *arg, struct prov_read_stats *stats)
{
    if (!path || max_files > 100000)
        return ORBIT_EINVAL;
    const size_t n = max_files ? max_files : 1;
    const size_t cap = strlen(path) + 16;
    char **paths = calloc(n, sizeof *paths);
    int rc = paths ? 0 : ORBIT_ENOMEM;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const size_t suffix = n - 1 - i; /* oldest first */
        paths[i] = malloc(cap);
        if (!paths[i])
            rc = ORBIT_ENOMEM;
        else if (suffix == 0)
            snprintf(paths[i], cap, "%s", path);
        else
            snprintf(paths[i], cap, "%s.%zu", path, suffix);
    }
    if (rc == 0)
        rc = read_files((const char *const *)paths, n, true, opts, cb, arg,
                        stats);
    for (size_t i = 0; paths && i < n; i++)
        free(paths[i]);
    free(paths);
    return rc;
}
