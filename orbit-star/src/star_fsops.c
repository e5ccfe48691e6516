/*
 * LIST (a paged walk of a subtree, .orbit skipped), DELETE (a file, symlink
 * or directory beneath ROOT) and HEALTH (disk figures, counters, state).
 * A LIST that asks for digests reads every file it lists: it runs on a
 * thread of its own (one such LIST at a time, the others queued), so the
 * loop goes on answering every other request meanwhile.
 */
#include <dirent.h>
#include <event2/event.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "orbit/error.h"
#include "orbit/health.h"
#include "orbit/wire_path.h"
#include "star_internal.h"
#include "star_alloc.h"

#define LIST_DEFAULT   1000
#define LIST_MAX_DEPTH 128
#define LIST_BUDGET    ((size_t)WIRE_MAX_PAYLOAD - ((size_t)64 << 10))
#define ENTRY_FIXED    64 /* encoded bytes of an entry besides its path */
/* With WIRE_LIST_DIGESTS a page ends after the file that takes the bytes
 * hashed for it past this, so the LISTs queued behind it wait briefly. */
#define LIST_HASH_BUDGET ((uint64_t)64 << 20)
/* Digest LISTs queued at once (each holds a directory fd); more are
 * refused with EAGAIN, retryable. */
#define LIST_JOBS_MAX 64

struct lister {
    bool digests; /* WIRE_LIST_DIGESTS */
    uint8_t *buf; /* digests: WIRE_MAX_CHUNK bytes to read through */
    const _Atomic bool *stop; /* digests: the star is going */
    uint64_t hashed;          /* bytes read for this page's digests */
    const char *cursor;       /* "" for none */
    uint32_t max;
    struct wire_list_entry *entries;
    uint32_t n;
    size_t bytes;
    bool full;
    int rc;
};

static bool
is_ancestor(const char *dir, const char *path)
{
    size_t n = strlen(dir);
    return strncmp(dir, path, n) == 0 && path[n] == '/';
}

static int
name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted names of the directory fd (closed by the call). */
static int
read_names(int fd, char ***out, size_t *out_n)
{
    DIR *d = fdopendir(fd);
    if (!d) {
        close(fd);
        return orbit_err_from_errno(errno);
    }
    rewinddir(d); /* fd may be a dup sharing a used offset */
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **grown = star_realloc(names, cap * sizeof *names);
            if (!grown) {
                rc = ORBIT_ENOMEM;
                break;
            }
            names = grown;
        }
        if (!(names[n] = star_strdup(e->d_name))) {
            rc = ORBIT_ENOMEM;
            break;
        }
        n++;
    }
    closedir(d);
    if (n > 1)
        qsort(names, n, sizeof *names, name_cmp);
    *out = names;
    *out_n = n;
    return rc;
}

static void
free_names(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static uint8_t
ftype_of(mode_t m)
{
    if (S_ISREG(m))
        return WIRE_FT_REGULAR;
    if (S_ISLNK(m))
        return WIRE_FT_SYMLINK;
    if (S_ISDIR(m))
        return WIRE_FT_DIRECTORY;
    return 0;
}

/* The SHA-256 of the regular file name in dirfd, if it is still the file
 * st describes and can be read whole. */
static bool
digest_of(struct lister *l, int dirfd, const char *name, const struct stat *st,
          uint8_t d[WIRE_DIGEST_LEN])
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat now;
    bool ok = fd >= 0 && fstat(fd, &now) == 0 && now.st_ino == st->st_ino &&
              now.st_dev == st->st_dev && S_ISREG(now.st_mode) &&
              star_copy_hashed(l->buf, fd, -1, (uint64_t)now.st_size, l->stop,
                               d) == 0;
    if (fd >= 0)
        close(fd);
    l->hashed += (uint64_t)st->st_size;
    if (l->hashed >= LIST_HASH_BUDGET)
        l->full = true; /* the page ends with this entry */
    return ok;
}

static void
emit(struct lister *l, int dirfd, const char *name, const char *path,
     const struct stat *st)
{
    size_t plen = strlen(path);
    if (l->n >= l->max || l->bytes + plen + ENTRY_FIXED > LIST_BUDGET) {
        l->full = true;
        return;
    }
    char *copy = star_strdup(path);
    if (!copy) {
        l->rc = ORBIT_ENOMEM;
        return;
    }
    struct wire_list_entry *e = &l->entries[l->n++];
    memset(e, 0, sizeof *e);
    e->path = copy;
    e->path_len = plen;
    e->ftype = ftype_of(st->st_mode);
    e->size = e->ftype == WIRE_FT_DIRECTORY ? 0 : (uint64_t)st->st_size;
    e->mode = (uint32_t)(st->st_mode & 07777);
    e->mtime_sec = st->st_mtim.tv_sec;
    e->mtime_nsec = (uint32_t)st->st_mtim.tv_nsec;
    l->bytes += plen + ENTRY_FIXED;
    if (l->digests && e->ftype == WIRE_FT_REGULAR)
        e->has_digest = digest_of(l, dirfd, name, st, e->digest);
}

static void walk(struct lister *l, int dirfd, const char *prefix,
                 unsigned depth);

/* Visit one entry of a directory: emit it and descend as the cursor says. */
static void
visit(struct lister *l, int dirfd, const char *prefix, const char *name,
      unsigned depth)
{
    char path[WIRE_MAX_PATH + 1];
    int n = snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "/" : "",
                     name);
    if (n < 0 || (size_t)n >= sizeof path)
        return;
    /* Before the cursor: skip, unless the cursor lies below (or is) it. */
    int cmp = l->cursor[0] ? wire_path_cmp(path, l->cursor) : 1;
    if (cmp < 0 && !is_ancestor(path, l->cursor))
        return;
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
        ftype_of(st.st_mode) == 0)
        return;
    if (cmp > 0)
        emit(l, dirfd, name, path, &st);
    if (l->full || l->rc < 0 || !S_ISDIR(st.st_mode) || depth >= LIST_MAX_DEPTH)
        return;
    int fd =
        openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0)
        walk(l, fd, path, depth + 1);
}

/* Walk the directory fd (closed by the call) whose path is prefix. */
static void
walk(struct lister *l, int dirfd, const char *prefix, unsigned depth)
{
    int keep = dup(dirfd);
    char **names = NULL;
    size_t n = 0;
    int rc = read_names(dirfd, &names, &n);
    if (rc < 0 || keep < 0) {
        l->rc = rc < 0 ? rc : orbit_err_from_errno(errno);
        free_names(names, n);
        if (keep >= 0)
            close(keep);
        return;
    }
    for (size_t i = 0; i < n && !l->full && l->rc == 0; i++) {
        if (depth == 0 && strcmp(names[i], WIRE_PATH_RESERVED) == 0)
            continue;
        visit(l, keep, prefix, names[i], depth);
    }
    free_names(names, n);
    close(keep);
}

static void
send_listing(struct star_conn *c, uint32_t rid, struct lister *l)
{
    const char *next = l->full && l->n > 0 ? l->entries[l->n - 1].path : "";
    struct wire_msg r;
    memset(&r, 0, sizeof r);
    r.type = WIRE_LIST_REPLY;
    r.request_id = rid;
    r.u.list_reply.next_cursor = next;
    r.u.list_reply.next_cursor_len = strlen(next);
    r.u.list_reply.n = l->n;
    r.u.list_reply.entries = l->entries;
    int rc = star_send(c, &r);
    if (rc < 0)
        star_send_error(c, rid, rc, WIRE_NO_ITEM, "LIST reply: %s",
                        orbit_strerror(rc));
}

static int
list_open(struct star_conn *c, const struct wire_list *q, int *fd)
{
    char err[256];
    if (q->path_len == 0) {
        *fd = dup(c->star->rootfd);
        return *fd < 0 ? orbit_err_from_errno(errno) : 0;
    }
    if (wire_path_check(q->path, q->path_len, err, sizeof err) < 0)
        return ORBIT_EPATH;
    return wire_path_open_beneath(c->star->rootfd, q->path,
                                  O_RDONLY | O_DIRECTORY, 0, fd);
}

static void
free_entries(struct lister *l)
{
    for (uint32_t i = 0; i < l->n; i++)
        free((void *)l->entries[i].path);
    free(l->entries);
    l->entries = NULL;
    l->n = 0;
}

static void
reply_listing(struct star_conn *c, uint32_t rid, struct lister *l,
              const char *path)
{
    if (l->rc < 0)
        star_send_error(c, rid, l->rc, WIRE_NO_ITEM, "LIST %s: %s", path,
                        orbit_strerror(l->rc));
    else
        send_listing(c, rid, l);
}

/* A LIST with digests, between the loop and the lister thread. */
struct star_list_job {
    struct star_list_job *next;
    struct star_conn *conn; /* a reference, and one pending reply */
    uint32_t rid;
    int fd; /* the listed directory; the walk closes it */
    char *path;
    char *cursor;
    struct lister l;
};

static void
list_job_free(struct star_list_job *j)
{
    free_entries(&j->l);
    if (j->fd >= 0)
        close(j->fd);
    free(j->path);
    free(j->cursor);
    free(j);
}

/* On the lister thread: touches only the job, ROOT's files, the star's
 * list buffer (one job runs at a time) and the stop flag. A queued job
 * holds its strings and fd only; its entries exist while it runs. */
static void
list_job_run(void *arg)
{
    struct star_list_job *j = arg;
    int fd = j->fd;
    j->fd = -1;
    j->l.entries = star_calloc(j->l.max, sizeof *j->l.entries);
    if (!j->l.entries) {
        close(fd);
        j->l.rc = ORBIT_ENOMEM;
        return;
    }
    walk(&j->l, fd, j->path, j->path[0] ? 1 : 0);
}

static void list_job_done(void *arg);

/* Hand the head of the queue to the lister thread. Only the head is ever
 * posted, so the thread is free; were it not, the job runs here. */
static void
start_head(struct star *s)
{
    if (star_syncer_post(s->lister, list_job_run, s->list_jobs) != 0) {
        list_job_run(s->list_jobs);
        list_job_done(s);
    }
}

/* On the loop: answer the job at the head of the queue, start the next. */
static void
list_job_done(void *arg)
{
    struct star *s = arg;
    struct star_list_job *j = s->list_jobs;
    if (!j)
        return;
    s->list_jobs = j->next;
    if (!s->list_jobs)
        s->list_jobs_tail = NULL;
    if (!s->list_stop)
        reply_listing(j->conn, j->rid, &j->l, j->path);
    star_conn_done(j->conn);
    list_job_free(j);
    s->nlist_jobs--;
    if (s->list_jobs && !s->list_stop)
        start_head(s);
}

int
star_lister_init(struct star *s)
{
    s->list_buf = star_malloc(WIRE_MAX_CHUNK);
    if (!s->list_buf)
        return ORBIT_ENOMEM;
    return star_syncer_new(s->base, "orbit-list", list_job_done, s, &s->lister);
}

void
star_lister_release(struct star *s)
{
    s->list_stop = true;
    star_syncer_free(s->lister); /* the running job ends at its next read */
    s->lister = NULL;
    while (s->list_jobs) {
        struct star_list_job *j = s->list_jobs;
        s->list_jobs = j->next;
        star_conn_done(j->conn);
        list_job_free(j);
    }
    s->list_jobs_tail = NULL;
    s->nlist_jobs = 0;
    free(s->list_buf);
    s->list_buf = NULL;
}

/* Queue a digest LIST of the directory fd (taken); started at once when
 * none is running. */
static int
queue_list_job(struct star_conn *c, uint32_t rid, int fd,
               const struct wire_list *q, uint32_t max)
{
    struct star *s = c->star;
    if (s->nlist_jobs >= LIST_JOBS_MAX) {
        close(fd);
        return ORBIT_EAGAIN;
    }
    struct star_list_job *j = star_calloc(1, sizeof *j);
    if (!j) {
        close(fd);
        return ORBIT_ENOMEM;
    }
    j->fd = fd;
    j->rid = rid;
    j->path = star_strdup(q->path);
    j->cursor = star_strdup(q->cursor);
    j->l.digests = true;
    j->l.stop = &s->list_stop;
    j->l.max = max;
    j->l.buf = s->list_buf;
    if (!j->path || !j->cursor) {
        list_job_free(j);
        return ORBIT_ENOMEM;
    }
    j->l.cursor = j->cursor;
    s->nlist_jobs++;
    j->conn = c;
    c->refs++;
    c->pending++;
    bool idle = !s->list_jobs;
    if (s->list_jobs_tail)
        s->list_jobs_tail->next = j;
    else
        s->list_jobs = j;
    s->list_jobs_tail = j;
    if (idle)
        start_head(s);
    return 0;
}

void
star_handle_list(struct star_conn *c, const struct wire_msg *m)
{
    const struct wire_list *q = &m->u.list;
    struct lister l;
    memset(&l, 0, sizeof l);
    l.cursor = q->cursor;
    l.max = q->max_entries ? q->max_entries : LIST_DEFAULT;
    if (l.max > WIRE_MAX_LIST)
        l.max = WIRE_MAX_LIST;
    if (q->cursor_len > 0 &&
        wire_path_check(q->cursor, q->cursor_len, NULL, 0) < 0) {
        star_send_error(c, m->request_id, ORBIT_EPROTO, WIRE_NO_ITEM,
                        "LIST: cursor not from this star");
        return;
    }
    int fd = -1;
    int rc = list_open(c, q, &fd);
    if (rc == 0 && (q->flags & WIRE_LIST_DIGESTS))
        rc = queue_list_job(c, m->request_id, fd, q, l.max);
    else if (rc == 0 && !(l.entries = star_calloc(l.max, sizeof *l.entries))) {
        close(fd);
        rc = ORBIT_ENOMEM;
    }
    if (rc == ORBIT_EAGAIN) {
        star_send_error(c, m->request_id, rc, WIRE_NO_ITEM,
                        "LIST %s: %d listings with digests already queued; "
                        "retry later",
                        q->path, LIST_JOBS_MAX);
        return;
    }
    if (rc < 0) {
        star_send_error(c, m->request_id, rc, WIRE_NO_ITEM, "LIST %s: %s",
                        q->path, orbit_strerror(rc));
        return;
    }
    if (!l.entries)
        return; /* queued */
    walk(&l, fd, q->path, q->path_len ? 1 : 0);
    reply_listing(c, m->request_id, &l, q->path);
    free_entries(&l);
}

/* ---- DELETE ---- */

static int
remove_tree(int dirfd, const char *name, unsigned depth)
{
    if (depth > LIST_MAX_DEPTH)
        return ORBIT_ETOOBIG;
    int fd =
        openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return orbit_err_from_errno(errno);
    int keep = dup(fd);
    char **names = NULL;
    size_t n = 0;
    int rc =
        keep < 0 ? orbit_err_from_errno(errno) : read_names(fd, &names, &n);
    if (keep < 0)
        close(fd);
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct stat st;
        if (fstatat(keep, names[i], &st, AT_SYMLINK_NOFOLLOW) != 0)
            rc = orbit_err_from_errno(errno);
        else if (S_ISDIR(st.st_mode))
            rc = remove_tree(keep, names[i], depth + 1);
        else if (unlinkat(keep, names[i], 0) != 0)
            rc = orbit_err_from_errno(errno);
    }
    free_names(names, n);
    if (keep >= 0)
        close(keep);
    if (rc == 0 && unlinkat(dirfd, name, AT_REMOVEDIR) != 0)
        rc = orbit_err_from_errno(errno);
    return rc;
}

static int
delete_at(int pfd, const char *base, bool recursive, bool *existed)
{
    struct stat st;
    if (fstatat(pfd, base, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT)
            return 0;
        return orbit_err_from_errno(errno);
    }
    *existed = true;
    if (!S_ISDIR(st.st_mode))
        return unlinkat(pfd, base, 0) == 0 ? 0 : orbit_err_from_errno(errno);
    if (unlinkat(pfd, base, AT_REMOVEDIR) == 0)
        return 0;
    if ((errno == ENOTEMPTY || errno == EEXIST) && recursive)
        return remove_tree(pfd, base, 0);
    return errno == ENOTEMPTY || errno == EEXIST ? ORBIT_EISDIR
                                                 : orbit_err_from_errno(errno);
}

void
star_handle_delete(struct star_conn *c, const struct wire_msg *m)
{
    struct star *s = c->star;
    const struct wire_delete *q = &m->u.del;
    char err[256];
    if (wire_path_check(q->path, q->path_len, err, sizeof err) < 0) {
        star_log(s, "refused DELETE path from %s: %s", c->peer, err);
        star_send_error(c, m->request_id, ORBIT_EPATH, WIRE_NO_ITEM, "%s", err);
        return;
    }
    char parent[WIRE_MAX_PATH + 1];
    const char *slash = strrchr(q->path, '/');
    const char *base = slash ? slash + 1 : q->path;
    size_t plen = slash ? (size_t)(slash - q->path) : 0;
    memcpy(parent, q->path, plen);
    parent[plen] = 0;
    int pfd = -1;
    int rc =
        plen ? wire_path_open_beneath(s->rootfd, parent, O_RDONLY | O_DIRECTORY,
                                      0, &pfd)
             : ((pfd = dup(s->rootfd)) < 0 ? orbit_err_from_errno(errno) : 0);
    bool existed = false;
    if (rc == 0)
        rc = delete_at(pfd, base, q->flags & WIRE_DELETE_RECURSIVE, &existed);
    if (rc == 0 && existed && fsync(pfd) != 0)
        rc = orbit_err_from_errno(errno);
    if (pfd >= 0)
        close(pfd);
    if (rc == ORBIT_ENOENT || rc == ORBIT_ENOTDIR) {
        rc = 0; /* a missing parent: nothing to delete */
        existed = false;
    }
    if (rc < 0) {
        star_send_error(c, m->request_id, rc, WIRE_NO_ITEM, "DELETE %s: %s%s",
                        q->path, orbit_strerror(rc),
                        rc == ORBIT_EISDIR ? " (directory not empty; set the "
                                             "recursive flag)"
                                           : "");
        return;
    }
    /* Its record goes with the next commit group (a stale one could never
     * vouch for a new file: that has another ctime). */
    if (existed)
        star_store_file_drop(s->store, q->path);
    struct wire_msg r;
    memset(&r, 0, sizeof r);
    r.type = WIRE_DELETE_OK;
    r.request_id = m->request_id;
    r.u.delete_ok.existed = existed;
    star_send(c, &r);
}

/* ---- HEALTH ---- */

static uint32_t
advisories_of(unsigned h)
{
    uint32_t a = 0;
    if (h & HEALTH_DISK_WARNING)
        a |= WIRE_ADV_DISK_WARNING;
    if (h & HEALTH_DISK_CRITICAL)
        a |= WIRE_ADV_DISK_CRITICAL;
    if (h & HEALTH_DISK_EXHAUSTION_PREDICTED)
        a |= WIRE_ADV_DISK_EXHAUSTION;
    if (h & HEALTH_THROUGHPUT_LOW)
        a |= WIRE_ADV_THROUGHPUT_LOW;
    if (h & HEALTH_ERROR_RATE_HIGH)
        a |= WIRE_ADV_ERROR_RATE_HIGH;
    return a;
}

uint32_t
star_health_sample(struct star *s, uint64_t *total, uint64_t *used)
{
    struct statvfs vfs;
    uint64_t now = star_now_ms();
    *total = *used = 0;
    if (fstatvfs(s->rootfd, &vfs) == 0) {
        *total = (uint64_t)vfs.f_blocks * vfs.f_frsize;
        *used = (uint64_t)(vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize;
        if (*total > 0)
            health_record_disk(s->health, now, *used, *total);
    }
    return advisories_of(health_evaluate(s->health, now, NULL));
}

void
star_handle_health(struct star_conn *c, const struct wire_msg *m)
{
    struct star *s = c->star;
    struct wire_msg r;
    memset(&r, 0, sizeof r);
    r.type = WIRE_HEALTH_REPLY;
    r.request_id = m->request_id;
    struct wire_health_reply *h = &r.u.health;
    h->advisories = star_health_sample(s, &h->disk_total, &h->disk_used);
    h->bytes_received = s->stats.bytes_received;
    h->chunks_received = s->stats.chunks_received;
    h->errors_total = s->stats.errors_total;
    h->errors_io = s->stats.errors_io;
    h->errors_proto = s->stats.errors_proto;
    h->errors_auth = s->stats.errors_auth;
    h->uptime_sec = (star_now_ms() - s->started_ms) / 1000;
    h->connections = s->nconns;
    h->state = s->state == STAR_REGISTERED ? WIRE_STATE_STARTING
               : s->state == STAR_SCHEDULED
                   ? (h->advisories ? WIRE_STATE_DEGRADED : WIRE_STATE_READY)
               : s->state == STAR_DRAINING ? WIRE_STATE_DRAINING
                                           : WIRE_STATE_STOPPING;
    star_send(c, &r);
}

static const char *const adv_names[] = {"disk_warning", "disk_critical",
                                        "disk_exhaustion_predicted",
                                        "throughput_low", "error_rate_high"};

/* Periodically: sample the disk, and tell every client when the
 * advisories change. */
static void
health_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct star *s = arg;
    uint64_t total = 0, used = 0;
    uint32_t adv = star_health_sample(s, &total, &used);
    if (adv == s->last_advisories)
        return;
    s->last_advisories = adv;
    char msg[256];
    int n = snprintf(msg, sizeof msg, "star %s: disk %.1f%% used; %s", s->name,
                     total ? 100.0 * (double)used / (double)total : 0.0,
                     adv ? "advisories:" : "healthy again");
    for (size_t i = 0; i < 5 && n > 0 && (size_t)n < sizeof msg; i++)
        if (adv & (1u << i))
            n += snprintf(msg + n, sizeof msg - (size_t)n, " %s", adv_names[i]);
    star_log(s, "%s", msg);
    struct wire_msg b;
    memset(&b, 0, sizeof b);
    b.type = WIRE_BULLETIN;
    b.u.bulletin.severity =
        adv & (WIRE_ADV_DISK_CRITICAL | WIRE_ADV_DISK_EXHAUSTION)
            ? WIRE_SEV_ERROR
        : adv ? WIRE_SEV_WARNING
              : WIRE_SEV_INFO;
    b.u.bulletin.advisories = adv;
    b.u.bulletin.category = "health";
    b.u.bulletin.category_len = 6;
    b.u.bulletin.message = msg;
    b.u.bulletin.message_len = strlen(msg);
    for (struct star_conn *c = s->conns; c; c = c->next)
        if (c->phase == CONN_READY && !c->closing)
            star_send(c, &b);
}

/* cb(s) every ms milliseconds on the star's loop, through *ev. */
static int
every(struct star *s, struct event **ev, uint64_t ms, event_callback_fn cb)
{
    *ev = event_new(s->base, -1, EV_PERSIST, cb, s);
    if (!*ev)
        return ORBIT_ENOMEM;
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return event_add(*ev, &tv) == 0 ? 0 : ORBIT_ENOMEM;
}

int
star_health_start(struct star *s)
{
    if (s->cfg.health_interval_ms == 0)
        return 0;
    return every(s, &s->health_timer, s->cfg.health_interval_ms, health_tick);
}

/* ---- abandoned staging files ---- */

#define EXPIRE_EVERY_S 3600

static void
expire_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct star *s = arg;
    int64_t cutoff = (int64_t)time(NULL) - (int64_t)s->cfg.staging_ttl_s;
    uint64_t files = 0, bytes = 0;
    int rc = star_store_expire_staging(s->store, cutoff, &files, &bytes);
    s->stats.staging_expired += files;
    if (files > 0)
        star_log(s,
                 "removed %llu staging file(s), %.1f MiB, untouched for %.1f "
                 "h or more (transfers never committed)",
                 (unsigned long long)files, (double)bytes / 1048576.0,
                 s->cfg.staging_ttl_s / 3600.0);
    if (rc < 0)
        star_log(s, "removing abandoned staging files: %s", orbit_strerror(rc));
}

int
star_expire_start(struct star *s)
{
    if (s->cfg.staging_ttl_s == 0)
        return 0;
    expire_tick(-1, 0, s); /* before the first client */
    return every(s, &s->expire_timer, EXPIRE_EVERY_S * 1000u, expire_tick);
}
