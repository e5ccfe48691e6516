/*
 * orbit_verify.c - `orbit verify SRC DST`: compare two local trees by
 * SHA-256 digest, entry by entry, and list every difference (a star:// DST
 * is orbit_verify_star.c).
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "orbit/chunk_id.h"
#include "orbit/error.h"
#include "orbit_cli.h"

struct verify_ctx {
    const char *src;
    const char *dst;
    unsigned long files;
    unsigned long diffs;
    bool quiet;
};

static void
report(struct verify_ctx *v, const char *what, const char *rel)
{
    v->diffs++;
    if (!v->quiet)
        printf("%-10s %s\n", what, rel);
}

static int
compare_links(const char *a, const char *b)
{
    char ta[PATH_MAX], tb[PATH_MAX];
    ssize_t na = readlink(a, ta, sizeof ta - 1);
    ssize_t nb = readlink(b, tb, sizeof tb - 1);
    if (na < 0 || nb < 0 || na != nb)
        return 1;
    return memcmp(ta, tb, (size_t)na) != 0;
}

static int
compare_files(const char *a, const char *b)
{
    struct chunk_id da, db;
    if (chunk_id_file(a, &da) != 0 || chunk_id_file(b, &db) != 0)
        return 1;
    return !chunk_id_equal(&da, &db);
}

static void walk_dir(struct verify_ctx *v, const char *rel);

static void
compare_entry(struct verify_ctx *v, const char *rel)
{
    char a[PATH_MAX], b[PATH_MAX];
    snprintf(a, sizeof a, "%s/%s", v->src, rel);
    snprintf(b, sizeof b, "%s/%s", v->dst, rel);
    struct stat sa, sb;
    if (lstat(a, &sa) != 0)
        return;
    if (lstat(b, &sb) != 0) {
        report(v, "missing", rel);
        return;
    }
    if ((sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT)) {
        report(v, "type", rel);
        return;
    }
    if (S_ISDIR(sa.st_mode)) {
        walk_dir(v, rel);
        return;
    }
    v->files++;
    if (S_ISLNK(sa.st_mode) && compare_links(a, b))
        report(v, "link", rel);
    else if (S_ISREG(sa.st_mode) &&
             (sa.st_size != sb.st_size || compare_files(a, b)))
        report(v, "content", rel);
}

/* Entries of DST/rel that SRC/rel lacks. */
static void
find_extra(struct verify_ctx *v, const char *rel)
{
    char b[PATH_MAX];
    snprintf(b, sizeof b, "%s/%s", v->dst, rel);
    DIR *d = opendir(b);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            (rel[0] == '\0' && !strcmp(e->d_name, ".orbit")))
            continue;
        char sub[PATH_MAX], a[PATH_MAX];
        snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
        struct stat st;
        if (snprintf(a, sizeof a, "%s/%s", v->src, sub) >= (int)sizeof a)
            continue;
        if (lstat(a, &st) != 0)
            report(v, "extra", sub);
    }
    closedir(d);
}

int
cli_each_entry(const char *root, const char *rel,
               void (*fn)(void *arg, const char *sub), void *arg)
{
    char a[PATH_MAX];
    snprintf(a, sizeof a, "%s/%s", root, rel);
    DIR *d = opendir(a);
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char sub[PATH_MAX];
        if (snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "",
                     e->d_name) < (int)sizeof sub)
            fn(arg, sub);
    }
    closedir(d);
    return 0;
}

static void
compare_cb(void *arg, const char *sub)
{
    compare_entry(arg, sub);
}

static void
walk_dir(struct verify_ctx *v, const char *rel)
{
    if (cli_each_entry(v->src, rel, compare_cb, v) < 0) {
        report(v, "unreadable", rel[0] ? rel : ".");
        return;
    }
    find_extra(v, rel);
}

int
cli_cmd_verify(const struct cli_opts *o)
{
    if (o->nsources != 2) {
        fprintf(stderr, "orbit: usage: orbit verify SRC DST\n");
        return ORBIT_EXIT_USAGE;
    }
    if (strncmp(o->sources[0], "star://", 7) == 0) {
        fprintf(stderr, "orbit: verify compares a local SRC with a local or "
                        "star:// DST\n");
        return ORBIT_EXIT_USAGE;
    }
    if (strncmp(o->sources[1], "star://", 7) == 0)
        return cli_verify_star(o);
    struct verify_ctx v = {
        .src = o->sources[0], .dst = o->sources[1], .quiet = o->quiet};
    struct stat st;
    if (stat(v.src, &st) != 0 || !S_ISDIR(st.st_mode) ||
        stat(v.dst, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "orbit: verify needs two directories\n");
        return ORBIT_EXIT_USAGE;
    }
    walk_dir(&v, "");
    if (!o->quiet)
        printf("verify: %lu entries compared, %lu differences\n", v.files,
               v.diffs);
    return v.diffs ? ORBIT_EXIT_PARTIAL : ORBIT_EXIT_OK;
}
