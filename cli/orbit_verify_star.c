/*
 * orbit_verify_star.c - `orbit verify SRC star://HOST[:PORT]/PATH`: list
 * PATH at the star with digests (the star reads and hashes every regular
 * file), hash SRC here, and list every difference, as the local verify
 * does. The listing is held in a hash table (about 100 bytes an entry).
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "orbit/chunk_id.h"
#include "orbit/error.h"
#include "orbit/sched.h"
#include "orbit/wire_auth.h"
#include "orbit/wire_sync.h"
#include "orbit_cli.h"

/* A page may hash up to 64 MiB at the star, or one larger file whole. */
#define VERIFY_TIMEOUT_MS (10u * 60u * 1000u)

struct listed {
    struct listed *next;
    uint64_t size;
    uint8_t ftype;
    bool has_digest;
    bool seen;
    bool walked; /* a directory whose SRC entries were compared */
    uint8_t digest[WIRE_DIGEST_LEN];
    char rel[]; /* the path below PATH */
};

struct remote {
    const char *src;
    struct listed **buckets;
    size_t nbuckets, n;
    unsigned long files, diffs;
    bool quiet;
};

static size_t
hash_rel(const char *s)
{
    size_t h = 1469598103934665603u; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211u;
    return h;
}

static struct listed *
find(const struct remote *r, const char *rel)
{
    for (struct listed *e = r->buckets[hash_rel(rel) % r->nbuckets]; e;
         e = e->next)
        if (strcmp(e->rel, rel) == 0)
            return e;
    return NULL;
}

static int
add(struct remote *r, const struct wire_list_entry *w, size_t skip)
{
    if (w->path_len <= skip)
        return 0; /* PATH itself */
    size_t len = w->path_len - skip;
    struct listed *e = calloc(1, sizeof *e + len + 1);
    if (!e)
        return ORBIT_ENOMEM;
    memcpy(e->rel, w->path + skip, len);
    e->ftype = w->ftype;
    e->size = w->size;
    e->has_digest = w->has_digest;
    memcpy(e->digest, w->digest, sizeof e->digest);
    size_t b = hash_rel(e->rel) % r->nbuckets;
    e->next = r->buckets[b];
    r->buckets[b] = e;
    r->n++;
    return 0;
}

/* Every entry under prefix, with digests. A missing PATH lists nothing. */
static int
list_all(struct wire_sync *ws, const char *prefix, struct remote *r)
{
    char cursor[WIRE_MAX_PATH + 1] = "";
    size_t skip = prefix[0] ? strlen(prefix) + 1 : 0;
    for (;;) {
        struct wire_msg q, reply;
        memset(&q, 0, sizeof q);
        q.type = WIRE_LIST;
        q.u.list.path = prefix;
        q.u.list.path_len = strlen(prefix);
        q.u.list.cursor = cursor;
        q.u.list.cursor_len = strlen(cursor);
        q.u.list.flags = WIRE_LIST_DIGESTS;
        int rc = wire_sync_request(ws, &q, &reply);
        if (rc == ORBIT_ENOENT && cursor[0] == '\0')
            return 0;
        if (rc != 0)
            return rc;
        const struct wire_list_reply *lr = &reply.u.list_reply;
        size_t pos = 0;
        struct wire_list_entry e;
        while (wire_list_next(lr, &pos, &e) == 0)
            if ((rc = add(r, &e, skip)) != 0)
                return rc;
        if (lr->next_cursor_len == 0)
            return 0;
        if (lr->next_cursor_len > WIRE_MAX_PATH)
            return ORBIT_EPROTO;
        memcpy(cursor, lr->next_cursor, lr->next_cursor_len);
        cursor[lr->next_cursor_len] = '\0';
    }
}

static void
differ(struct remote *r, const char *what, const char *rel)
{
    r->diffs++;
    if (!r->quiet)
        printf("%-10s %s\n", what, rel);
}

static uint8_t
ftype_of(mode_t m)
{
    return S_ISREG(m)   ? WIRE_FT_REGULAR
           : S_ISLNK(m) ? WIRE_FT_SYMLINK
           : S_ISDIR(m) ? WIRE_FT_DIRECTORY
                        : 0;
}

static void walk_src(struct remote *r, const char *rel);

/* One source entry against the listing (symlink targets are not listed:
 * a symlink is compared by type). */
static void
check_entry(struct remote *r, const char *rel)
{
    char a[PATH_MAX];
    if (snprintf(a, sizeof a, "%s/%s", r->src, rel) >= (int)sizeof a)
        return;
    struct stat st;
    uint8_t ft = lstat(a, &st) == 0 ? ftype_of(st.st_mode) : 0;
    if (ft == 0)
        return; /* gone meanwhile, or a kind orbit does not send */
    struct listed *e = find(r, rel);
    if (!e) {
        differ(r, "missing", rel);
        return;
    }
    e->seen = true;
    if (e->ftype != ft) {
        differ(r, "type", rel);
        return;
    }
    if (ft == WIRE_FT_DIRECTORY) {
        e->walked = true;
        walk_src(r, rel);
        return;
    }
    r->files++;
    if (ft != WIRE_FT_REGULAR)
        return;
    struct chunk_id d;
    if (e->size != (uint64_t)st.st_size)
        differ(r, "content", rel);
    else if (!e->has_digest)
        differ(r, "unreadable", rel); /* at the star */
    else if (chunk_id_file(a, &d) != 0)
        differ(r, "unreadable", rel); /* here */
    else if (memcmp(d.b, e->digest, sizeof d.b) != 0)
        differ(r, "content", rel);
}

static void
check_cb(void *arg, const char *sub)
{
    check_entry(arg, sub);
}

static void
walk_src(struct remote *r, const char *rel)
{
    if (cli_each_entry(r->src, rel, check_cb, r) < 0)
        differ(r, "unreadable", rel[0] ? rel : ".");
}

static int
cmp_rel(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Whether e sits in a listed directory that was not walked (extra, or of
 * another type in SRC): only that directory is reported, as locally. */
static bool
inside_extra(const struct remote *r, const struct listed *e)
{
    const char *slash = strrchr(e->rel, '/');
    if (!slash)
        return false;
    char parent[PATH_MAX];
    size_t n = (size_t)(slash - e->rel);
    if (n >= sizeof parent)
        return false;
    memcpy(parent, e->rel, n);
    parent[n] = '\0';
    const struct listed *p = find(r, parent);
    return p && !p->walked;
}

/* What the star holds that SRC lacks, in path order. */
static void
report_extra(struct remote *r)
{
    char **extra = calloc(r->n ? r->n : 1, sizeof *extra);
    if (!extra) {
        differ(r, "extra", "(out of memory listing them)");
        return;
    }
    size_t n = 0;
    for (size_t b = 0; b < r->nbuckets; b++)
        for (struct listed *e = r->buckets[b]; e; e = e->next)
            if (!e->seen && !inside_extra(r, e))
                extra[n++] = e->rel;
    qsort(extra, n, sizeof *extra, cmp_rel);
    for (size_t i = 0; i < n; i++)
        differ(r, "extra", extra[i]);
    free(extra);
}

static void
remote_free(struct remote *r)
{
    for (size_t b = 0; b < r->nbuckets; b++)
        for (struct listed *e = r->buckets[b], *next; e; e = next) {
            next = e->next;
            free(e);
        }
    free(r->buckets);
}

int
cli_verify_star(const struct cli_opts *o)
{
    const char *url = o->sources[1];
    struct sched_dest_config dc;
    char host[256];
    memset(&dc, 0, sizeof dc);
    if (cli_parse_star_url(url, &dc, host, sizeof host) != 0) {
        fprintf(stderr,
                "orbit: bad destination %s (expected "
                "star://HOST[:PORT]/PATH)\n",
                url);
        return ORBIT_EXIT_USAGE;
    }
    struct stat st;
    if (stat(o->sources[0], &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "orbit: verify: %s is not a directory\n",
                o->sources[0]);
        return ORBIT_EXIT_USAGE;
    }
    uint8_t token[WIRE_TOKEN_MAX];
    size_t token_len = 0;
    if (cli_load_token(o, token, sizeof token, &token_len) != 0)
        return ORBIT_EXIT_FATAL;
    struct wire_sync *ws = NULL;
    int rc = wire_sync_connect(host, dc.port, token, token_len, "orbit-verify",
                               VERIFY_TIMEOUT_MS, &ws);
    explicit_bzero(token, sizeof token);
    struct remote r = {.src = o->sources[0], .quiet = o->quiet};
    r.nbuckets = 65536;
    r.buckets = calloc(r.nbuckets, sizeof *r.buckets);
    if (rc == 0 && !r.buckets)
        rc = ORBIT_ENOMEM;
    if (rc == 0)
        rc = list_all(ws, dc.prefix, &r);
    wire_sync_free(ws);
    if (rc != 0) {
        fprintf(stderr, "orbit: verify: cannot list %s: %s\n", url,
                orbit_strerror(rc));
        remote_free(&r);
        return ORBIT_EXIT_FATAL;
    }
    walk_src(&r, "");
    report_extra(&r);
    if (!o->quiet)
        printf("verify: %lu entries compared, %lu differences\n", r.files,
               r.diffs);
    remote_free(&r);
    return r.diffs ? ORBIT_EXIT_PARTIAL : ORBIT_EXIT_OK;
}
