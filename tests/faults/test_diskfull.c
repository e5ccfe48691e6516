/*
 * Destination full, end to end: orbit-star's root is a tmpfs of 8 MiB and
 * `orbit copy` sends it a tree three times larger (3 files of 3 MiB, 256 of
 * 64 KiB), paced by --bwlimit so the copy runs on well after the disk is
 * full. Asserted: the files that do not fit are dead letters with the reason
 * destination_full (--json events and `orbit dlq list`), every other file
 * arrives intact, exit 3, no partial or temporary file is visible at the
 * destination, the star's disk_critical advisory reaches GET
 * /api/bulletins?severity=error of the copy's --api server while it runs.
 * Then the tmpfs grows to 64 MiB and `orbit dlq retry` completes the job
 * (exit 0): the trees are identical.
 *
 * Needs root (mount); skipped, saying so, where mounting is not permitted.
 */
#include <dirent.h>
#include <jansson.h>
#include <sys/mount.h>
#include <sys/statvfs.h>

#include "faults_util.h"

#define ORBIT_BIN      ORBIT_BIN_DIR "/cli/orbit"
#define ORBIT_STAR_BIN ORBIT_BIN_DIR "/cli/orbit-star"
#define BIG_FILES      3
#define BIG_SIZE       (3u << 20)
#define SMALL_FILES    256
#define SMALL_SIZE     (64u << 10)
#define COPY_DEADLINE  120000 /* ms */

struct df_run {
    char box[200];
    char src[256], root[256], state[256], token[256];
    char star_err[256], json[256], copy_err[256], out[256];
    bool mounted;
    pid_t star_pid, copy_pid;
    json_t *dead; /* dest path -> reason */
    char job_id[64];
    /* figures */
    unsigned files, arrived, dead_files;
    uint64_t src_bytes, arrived_bytes;
};

static struct df_run R;

static void
df_cleanup(void)
{
    pid_t *const pids[] = {&R.copy_pid, &R.star_pid};
    fu_stop_all(pids, 2);
    if (R.mounted && umount2(R.root, MNT_DETACH) != 0)
        cr_log_warn("umount %s: %s", R.root, strerror(errno));
    R.mounted = false;
    json_decref(R.dead);
    R.dead = NULL;
    fu_rmrf(R.box);
}

/* ---- setup ---- */

static void
df_paths(struct df_run *r)
{
    fu_mkdtemp(r->box, sizeof r->box, "diskfull");
    snprintf(r->src, sizeof r->src, "%s/src", r->box);
    snprintf(r->root, sizeof r->root, "%s/root", r->box);
    snprintf(r->state, sizeof r->state, "%s/state", r->box);
    snprintf(r->token, sizeof r->token, "%s/token", r->box);
    snprintf(r->star_err, sizeof r->star_err, "%s/star.log", r->box);
    snprintf(r->json, sizeof r->json, "%s/copy.json", r->box);
    snprintf(r->copy_err, sizeof r->copy_err, "%s/copy.log", r->box);
    snprintf(r->out, sizeof r->out, "%s/cmd.out", r->box);
}

/* The star's root: a tmpfs of size (mount options), or a skip. */
static void
df_mount(struct df_run *r, const char *size)
{
    char opts[64];
    snprintf(opts, sizeof opts, "size=%s,mode=0755", size);
    cr_assert_eq(mkdir(r->root, 0755), 0);
    if (mount("orbit-diskfull", r->root, "tmpfs", MS_NOSUID | MS_NODEV, opts) !=
        0) {
        int e = errno;
        char why[512];
        snprintf(why, sizeof why,
                 "cannot mount a tmpfs of %s at %s: %s (this test needs root "
                 "with CAP_SYS_ADMIN; it did not run)",
                 size, r->root, strerror(e));
        df_cleanup();
        /* ctest reports the test as skipped on this line. */
        fprintf(stderr, "diskfull: SKIPPED: %s\n", why);
        cr_skip_test("%s", why);
    }
    r->mounted = true;
}

static void
df_make_tree(struct df_run *r)
{
    char p[512];
    uint8_t *buf = malloc(BIG_SIZE);
    cr_assert_not_null(buf);
    cr_assert_eq(mkdir(r->src, 0755), 0);
    for (unsigned i = 0; i < BIG_FILES; i++) {
        snprintf(p, sizeof p, "%s/big%u.bin", r->src, i);
        fu_fill(buf, BIG_SIZE, 0xb16u + i);
        fu_write_file(p, buf, BIG_SIZE);
        r->src_bytes += BIG_SIZE;
    }
    snprintf(p, sizeof p, "%s/small", r->src);
    cr_assert_eq(mkdir(p, 0755), 0);
    for (unsigned i = 0; i < SMALL_FILES; i++) {
        snprintf(p, sizeof p, "%s/small/s%03u.bin", r->src, i);
        fu_fill(buf, SMALL_SIZE, 0x5aa11u + i);
        fu_write_file(p, buf, SMALL_SIZE);
        r->src_bytes += SMALL_SIZE;
    }
    free(buf);
    fu_write_file(r->token, "destination-full-token\n", 23);
    cr_assert_eq(chmod(r->token, 0600), 0);
}

/* A number following key in the file at path, polled for up to 10 s. */
static long
df_wait_number(const char *path, const char *key)
{
    uint64_t end = fu_now_ms() + 10000;
    while (fu_now_ms() < end) {
        char *log = fu_slurp(path, NULL);
        const char *p = log ? strstr(log, key) : NULL;
        long v = p ? strtol(p + strlen(key), NULL, 10) : 0;
        free(log);
        if (v > 0 && v < 65536)
            return v;
        usleep(20 * 1000);
    }
    return 0;
}

static uint16_t
df_star_start(struct df_run *r)
{
    char *argv[] = {ORBIT_STAR_BIN,        "--root", r->root,
                    "--token-file",        r->token, "--listen",
                    (char *)"127.0.0.1:0", NULL};
    r->star_pid = fu_spawn(argv, NULL, r->star_err);
    long port = df_wait_number(r->star_err, "(port ");
    cr_assert_gt(port, 0, "orbit-star did not report its port");
    return (uint16_t)port;
}

/* ---- the API ---- */

/* GET path on 127.0.0.1:port; the body (malloc'd) or NULL. */
static char *
df_http_get(uint16_t port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return NULL;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    char *resp = NULL;
    size_t len = 0, cap = 0;
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        send(fd, req, (size_t)n, MSG_NOSIGNAL) != n)
        goto out;
    for (;;) {
        if (len + 4097 > cap) {
            cap = cap ? cap * 2 : 65536;
            char *nr = realloc(resp, cap);
            cr_assert_not_null(nr);
            resp = nr;
        }
        ssize_t got = recv(fd, resp + len, cap - len - 1, 0);
        if (got <= 0)
            break;
        len += (size_t)got;
    }
out:
    close(fd);
    if (!resp)
        return NULL;
    resp[len] = 0;
    char *body = strstr(resp, "\r\n\r\n");
    char *copy = body && strstr(resp, " 200 ") ? strdup(body + 4) : NULL;
    free(resp);
    return copy;
}

/* Whether the bulletins (JSON body) hold the disk_critical advisory. */
static bool
df_has_disk_critical(const char *body, char *msg, size_t cap)
{
    json_t *doc = json_loads(body, 0, NULL);
    json_t *list = json_object_get(doc, "bulletins");
    bool found = false;
    for (size_t i = 0; !found && i < json_array_size(list); i++) {
        json_t *b = json_array_get(list, i);
        const char *sev = json_string_value(json_object_get(b, "severity"));
        const char *cat = json_string_value(json_object_get(b, "category"));
        const char *m = json_string_value(json_object_get(b, "message"));
        found = sev && !strcmp(sev, "error") &&
                ((cat && !strcmp(cat, "disk_critical")) ||
                 (m && strstr(m, "disk_critical")));
        if (found)
            snprintf(msg, cap, "[%s] %s", cat ? cat : "", m ? m : "");
    }
    json_decref(doc);
    return found;
}

/* ---- the copy ---- */

struct df_copy {
    int code;
    uint64_t ms, critical_ms; /* critical_ms: 0 if never seen */
    unsigned polls;
    char critical[512];
};

static void
df_copy(struct df_run *r, uint16_t star_port, struct df_copy *c)
{
    char src[300], dst[64];
    snprintf(src, sizeof src, "%s/", r->src);
    snprintf(dst, sizeof dst, "star://127.0.0.1:%u/copy", star_port);
    char *argv[] = {ORBIT_BIN,      "copy",      src,           dst,
                    "--token-file", r->token,    "--state-dir", r->state,
                    "--json",       "--api",     "127.0.0.1:0", "--bwlimit",
                    "2M",           "--retries", "3",           NULL};
    uint64_t t0 = fu_now_ms();
    r->copy_pid = fu_spawn_to(argv, NULL, r->json, r->copy_err);
    long api = df_wait_number(r->copy_err, "API on http://127.0.0.1:");
    cr_assert_gt(api, 0, "orbit copy did not report its API port");
    int st = -1;
    while ((st = fu_wait(r->copy_pid, 250)) == -1) {
        cr_assert_lt(fu_now_ms() - t0, COPY_DEADLINE, "orbit copy hangs");
        if (c->critical_ms)
            continue;
        char *body = df_http_get((uint16_t)api,
                                 "/api/bulletins?severity=error&limit=1000");
        c->polls++;
        if (body && df_has_disk_critical(body, c->critical, sizeof c->critical))
            c->critical_ms = fu_now_ms() - t0;
        free(body);
    }
    r->copy_pid = 0;
    c->ms = fu_now_ms() - t0;
    cr_assert(WIFEXITED(st), "orbit copy died: status %d", st);
    c->code = WEXITSTATUS(st);
}

/* Dead letters (path -> reason) and the job id from the --json events. */
static void
df_read_events(struct df_run *r)
{
    json_decref(r->dead);
    r->dead = json_object();
    FILE *f = fopen(r->json, "r");
    cr_assert_not_null(f, "no --json output");
    char line[8192];
    while (fgets(line, sizeof line, f)) {
        json_t *ev = json_loads(line, 0, NULL);
        const char *type = json_string_value(json_object_get(ev, "event_type"));
        const char *path = json_string_value(json_object_get(ev, "dest_path"));
        const char *job = json_string_value(json_object_get(ev, "job_id"));
        const char *why = json_string_value(
            json_object_get(json_object_get(ev, "context"), "reason"));
        if (job && !r->job_id[0])
            snprintf(r->job_id, sizeof r->job_id, "%s", job);
        if (type && path && strstr(type, "dead_letter"))
            json_object_set_new(r->dead, path, json_string(why ? why : "?"));
        json_decref(ev);
    }
    fclose(f);
    cr_assert(r->job_id[0], "no job id in the --json events");
}

/* ---- checking the destination ---- */

static bool
df_same_file(const char *a, const char *b)
{
    size_t la = 0, lb = 0;
    char *x = fu_slurp(a, &la), *y = fu_slurp(b, &lb);
    bool same = x && y && la == lb && memcmp(x, y, la) == 0;
    free(x);
    free(y);
    return same;
}

/*
 * Below root (outside the top-level .orbit): no temporary file, and every
 * entry exists in the source with the same type; every file is identical.
 */
static void
df_check_visible(struct df_run *r, const char *rel)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s%s%s", r->root, rel[0] ? "/" : "", rel);
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s: %s", dir, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            (!rel[0] && !strcmp(e->d_name, ".orbit")))
            continue;
        char sub[1024], full[1300], src[1300];
        snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
        snprintf(full, sizeof full, "%s/%s", r->root, sub);
        cr_assert_null(strstr(e->d_name, ".orbit-tmp."),
                       "a temporary file is visible: %s", sub);
        cr_assert(!strncmp(sub, "copy", 4) && (!sub[4] || sub[4] == '/'),
                  "the root holds %s, outside the copy", sub);
        snprintf(src, sizeof src, "%s%s", r->src, sub + 4);
        struct stat st, ss;
        cr_assert_eq(lstat(full, &st), 0);
        cr_assert_eq(lstat(src, &ss), 0, "%s is not in the source", sub);
        cr_assert_eq(st.st_mode & S_IFMT, ss.st_mode & S_IFMT,
                     "%s has another type than its source", sub);
        if (S_ISDIR(st.st_mode)) {
            df_check_visible(r, sub);
        } else {
            cr_assert(S_ISREG(st.st_mode), "%s: unexpected type", sub);
            cr_assert(df_same_file(src, full),
                      "%s is visible but not identical to its source "
                      "(%lld bytes, source %lld)",
                      sub, (long long)st.st_size, (long long)ss.st_size);
        }
    }
    closedir(d);
}

/* Every source entry arrived, or (allow_dead) is a destination_full dead
 * letter and absent. */
static void
df_check_source(struct df_run *r, const char *rel, bool allow_dead)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s%s%s", r->src, rel[0] ? "/" : "", rel);
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char sub[1024], dst[1300], src[1300];
        snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
        snprintf(src, sizeof src, "%s/%s", r->src, sub);
        snprintf(dst, sizeof dst, "%s/copy/%s", r->root, sub);
        struct stat ss, st;
        cr_assert_eq(lstat(src, &ss), 0);
        bool present = lstat(dst, &st) == 0;
        const char *why = json_string_value(json_object_get(r->dead, sub));
        if (S_ISREG(ss.st_mode))
            r->files++;
        if (!present) {
            cr_assert(allow_dead && why, "%s is missing and not a dead letter",
                      sub);
            cr_assert_str_eq(why, "destination_full",
                             "%s is a dead letter for %s", sub, why);
            if (S_ISREG(ss.st_mode))
                r->dead_files++;
            continue;
        }
        cr_assert(!why, "%s arrived yet was reported dead (%s)", sub, why);
        if (S_ISDIR(ss.st_mode)) {
            df_check_source(r, sub, allow_dead);
        } else if (S_ISREG(ss.st_mode)) {
            /* df_check_visible compared the bytes */
            r->arrived++;
            r->arrived_bytes += (uint64_t)ss.st_size;
        }
    }
    closedir(d);
}

static void
df_check(struct df_run *r, bool allow_dead)
{
    r->files = r->arrived = r->dead_files = 0;
    r->arrived_bytes = 0;
    df_check_visible(r, "");
    df_check_source(r, "", allow_dead);
}

/* Run `orbit ARGS...` to its end; its exit code, stdout in r->out. */
static int
df_orbit(struct df_run *r, char *const argv[])
{
    pid_t pid = fu_spawn_to(argv, NULL, r->out, r->copy_err);
    int st = fu_wait(pid, COPY_DEADLINE);
    if (st == -1) {
        kill(pid, SIGKILL);
        fu_wait(pid, 5000);
        cr_assert_fail("orbit %s hangs", argv[1]);
    }
    cr_assert(WIFEXITED(st), "orbit %s died: status %d", argv[1], st);
    return WEXITSTATUS(st);
}

/* `orbit dlq list`: how many destination_full entries, and no other. */
static unsigned
df_dlq_list(struct df_run *r)
{
    char *argv[] = {ORBIT_BIN, "dlq",         "list",   "--job",
                    r->job_id, "--state-dir", r->state, NULL};
    cr_assert_eq(df_orbit(r, argv), 0);
    char *out = fu_slurp(r->out, NULL);
    cr_assert_not_null(out);
    unsigned full = 0, lines = 0;
    for (char *l = strtok(out, "\n"); l; l = strtok(NULL, "\n")) {
        if (strncmp(l, r->job_id, strlen(r->job_id)) != 0)
            continue;
        lines++;
        if (strstr(l, " destination_full "))
            full++;
        else
            cr_assert_fail("a dead letter for another reason: %s", l);
    }
    free(out);
    cr_assert_eq(full, lines);
    return full;
}

static double
df_used_pct(const char *root)
{
    struct statvfs v;
    cr_assert_eq(statvfs(root, &v), 0);
    return 100.0 * (double)(v.f_blocks - v.f_bfree) / (double)v.f_blocks;
}

TestSuite(diskfull, .fini = df_cleanup, .timeout = 300);

Test(diskfull, destination_full_then_retry)
{
    struct df_run *r = &R;
    memset(r, 0, sizeof *r);
    df_paths(r);
    df_mount(r, "8m");
    df_make_tree(r);
    uint16_t port = df_star_start(r);
    setenv("ORBIT_RETRY_INITIAL_MS", "50", 1);

    struct df_copy c = {0};
    df_copy(r, port, &c);
    char *log = fu_slurp(r->copy_err, NULL);
    cr_assert_eq(c.code, 3, "orbit copy exited %d, not 3: %s", c.code,
                 log ? log : "");
    free(log);
    double full_pct = df_used_pct(r->root);
    df_read_events(r);
    df_check(r, true);
    unsigned listed = df_dlq_list(r);
    cr_assert_gt(r->dead_files, 0, "nothing was dead-lettered");
    cr_assert_gt(r->arrived, 0, "nothing arrived");
    cr_assert_eq(r->arrived + r->dead_files, r->files);
    cr_assert_eq(listed, json_object_size(r->dead),
                 "orbit dlq list shows %u dead letters, --json %zu", listed,
                 json_object_size(r->dead));
    cr_assert_neq(c.critical_ms, 0,
                  "no disk_critical bulletin at GET /api/bulletins?severity="
                  "error in %u polls over the %llu ms of the copy",
                  c.polls, (unsigned long long)c.ms);
    fprintf(stderr,
            "diskfull: copy of %u files (%llu bytes) to an 8 MiB tmpfs: exit "
            "%d in %llu ms; %u arrived intact (%llu bytes), %u dead letters "
            "destination_full (%zu entries, %u in dlq list); disk %.1f%% "
            "used; disk_critical bulletin after %llu ms (%u polls): %s\n",
            r->files, (unsigned long long)r->src_bytes, c.code,
            (unsigned long long)c.ms, r->arrived,
            (unsigned long long)r->arrived_bytes, r->dead_files,
            json_object_size(r->dead), listed, full_pct,
            (unsigned long long)c.critical_ms, c.polls, c.critical);

    /* Free space, retry the dead letters. */
    cr_assert_eq(mount(NULL, r->root, NULL, MS_REMOUNT | MS_NOSUID | MS_NODEV,
                       "size=64m"),
                 0, "remount: %s", strerror(errno));
    char *argv[] = {
        ORBIT_BIN,      "dlq",    "retry",       "--job",  r->job_id,
        "--token-file", r->token, "--state-dir", r->state, NULL};
    uint64_t t0 = fu_now_ms();
    int code = df_orbit(r, argv);
    uint64_t retry_ms = fu_now_ms() - t0;
    log = fu_slurp(r->copy_err, NULL);
    cr_assert_eq(code, 0, "orbit dlq retry exited %d: %s", code,
                 log ? log : "");
    free(log);
    json_decref(r->dead);
    r->dead = json_object();
    df_check(r, false);
    cr_assert_eq(r->arrived, r->files);
    cr_assert_eq(df_dlq_list(r), 0);
    int sst = fu_stop(r->star_pid, 15000);
    r->star_pid = 0;
    cr_assert(WIFEXITED(sst) && WEXITSTATUS(sst) == 0,
              "the star did not drain cleanly: status %d", sst);
    fprintf(stderr,
            "diskfull: after a remount to 64 MiB, orbit dlq retry: exit 0 in "
            "%llu ms; %u of %u files identical (%llu bytes), disk %.1f%% "
            "used\n",
            (unsigned long long)retry_ms, r->arrived, r->files,
            (unsigned long long)r->arrived_bytes, df_used_pct(r->root));
}
