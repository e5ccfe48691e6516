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
    const struct prov_read_opts *opts;
    struct prov_read_stats *st;
    prov_event_cb cb;
    void *arg;
};

static void
report(struct read_ctx *rc, const char *reason)
{
    rc->st->malformed++;
    if (rc->opts->on_malformed)
        rc->opts->on_malformed(rc->st->lines, reason, rc->opts->malformed_arg);
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

int
prov_read_file(const char *path, const struct prov_read_opts *opts,
               prov_event_cb cb, void *arg, struct prov_read_stats *stats)
{
    static const struct prov_read_opts no_opts;
    struct prov_read_stats local;
    if (!path)
        return ORBIT_EINVAL;
    struct read_ctx rc = {opts ? opts : &no_opts, stats ? stats : &local, cb,
                          arg};
    memset(rc.st, 0, sizeof *rc.st);
    struct line l = {0};
    l.max = rc.opts->max_line ? rc.opts->max_line : PROV_DEFAULT_MAX_LINE;
    FILE *fp = fopen(path, "re");
    if (!fp)
        return orbit_err_from_errno(errno);
    int ret = 0;
    l.buf = malloc(l.max + 1);
    if (!l.buf)
        ret = ORBIT_ENOMEM;
    while (ret == 0) {
        const int n = read_line(fp, &l);
        if (n <= 0) {
            ret = n;
            break;
        }
        rc.st->lines++;
        ret = handle_line(&rc, &l);
    }
    free(l.buf);
    fclose(fp);
    return ret;
}
