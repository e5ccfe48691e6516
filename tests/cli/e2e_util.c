#include "e2e_util.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/capability.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- workspace ---- */

static void
fmt_path(char *buf, const char *a, const char *b)
{
    int n = snprintf(buf, E2E_PATH, "%s/%s", a, b);
    cr_assert(n > 0 && n < E2E_PATH, "path too long: %s/%s", a, b);
}

void
e2e_setup(struct e2e *t)
{
    memset(t, 0, sizeof *t);
    snprintf(t->dir, sizeof t->dir, "/tmp/orbit-e2e-XXXXXX");
    cr_assert_not_null(mkdtemp(t->dir), "mkdtemp: %s", strerror(errno));
    fmt_path(t->src, t->dir, "src");
    fmt_path(t->dst, t->dir, "dst");
    fmt_path(t->state, t->dir, "state");
    snprintf(t->src_slash, sizeof t->src_slash, "%s/", t->src);
    e2e_mkdir(t->src, 0755);
    cr_assert_eq(access(E2E_ORBIT, X_OK), 0,
                 "%s missing: build the orbit target first", E2E_ORBIT);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        return rmdir(path) == 0 ? 0 : (chmod(path, 0700), rmdir(path), 0);
    unlink(path);
    return 0;
}

static int
unlock_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag == FTW_D || flag == FTW_DNR)
        chmod(path, (st->st_mode & 07777) | 0700);
    return 0;
}

static void
track(struct e2e *t, pid_t pid)
{
    for (unsigned i = 0; i < 8; i++) {
        if (t->live[i] <= 0 || kill(t->live[i], 0) != 0) {
            t->live[i] = pid;
            return;
        }
    }
}

void
e2e_teardown(struct e2e *t)
{
    for (unsigned i = 0; i < 8; i++) {
        if (t->live[i] > 0 && waitpid(t->live[i], NULL, WNOHANG) == 0) {
            kill(t->live[i], SIGKILL);
            waitpid(t->live[i], NULL, 0);
        }
        t->live[i] = 0;
    }
    if (!t->dir[0])
        return;
    /* Directories a test made unreadable would stop the removal. */
    nftw(t->dir, unlock_entry, 16, FTW_PHYS);
    nftw(t->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    t->dir[0] = '\0';
}

struct e2e e2e_current;

void
e2e_suite_init(void)
{
    e2e_setup(&e2e_current);
}

void
e2e_suite_fini(void)
{
    e2e_teardown(&e2e_current);
}

const char *
e2e_path(const struct e2e *t, char *buf, const char *fmt, ...)
{
    char rel[E2E_PATH];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(rel, sizeof rel, fmt, ap);
    va_end(ap);
    cr_assert(n >= 0 && n < (int)sizeof rel);
    fmt_path(buf, t->dir, rel);
    return buf;
}

/* ---- processes ---- */

static void
child_env(const struct e2e *t)
{
    setenv("ORBIT_STATE_DIR", t->state, 1);
    setenv("ORBIT_RETRY_INITIAL_MS", "50", 1);
    if (t->token_env)
        setenv("ORBIT_TOKEN", t->token_env, 1);
    else
        unsetenv("ORBIT_TOKEN");
}

/* Root without the capabilities that bypass file modes: out of the
 * bounding set (execve would give them back otherwise) and of the
 * effective, permitted and inheritable sets. */
static int
drop_dac(void)
{
    static const int caps[] = {CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH};
    struct __user_cap_header_struct h = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct d[2];
    if (syscall(SYS_capget, &h, d) != 0)
        return -1;
    for (size_t i = 0; i < 2; i++) {
        if (prctl(PR_CAPBSET_DROP, caps[i], 0, 0, 0) != 0)
            return -1;
        uint32_t bit = 1u << caps[i];
        d[0].effective &= ~bit;
        d[0].permitted &= ~bit;
        d[0].inheritable &= ~bit;
    }
    return (int)syscall(SYS_capset, &h, d);
}

static void
child_exec(const struct e2e *t, const struct e2e_proc *p,
           const char *const *argv)
{
    int out = open(p->out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(p->err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int in = open("/dev/null", O_RDONLY);
    if (out < 0 || err < 0 || in < 0)
        _exit(126);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    child_env(t);
    if (t->cwd && chdir(t->cwd) != 0)
        _exit(124);
    if (t->no_dac && drop_dac() != 0) {
        fprintf(stderr,
                "e2e: cannot drop CAP_DAC_OVERRIDE and "
                "CAP_DAC_READ_SEARCH: %s\n",
                strerror(errno));
        _exit(125);
    }
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    execv(argv[0][0] == '/' ? argv[0] : E2E_ORBIT, (char *const *)argv);
    _exit(127);
}

void
e2e_spawn(struct e2e *t, struct e2e_proc *p, const char *const *argv)
{
    memset(p, 0, sizeof *p);
    unsigned n = t->nruns++;
    e2e_path(t, p->out_path, "run%u.out", n);
    e2e_path(t, p->err_path, "run%u.err", n);
    fflush(NULL);
    p->pid = fork();
    cr_assert_geq(p->pid, 0, "fork: %s", strerror(errno));
    if (p->pid == 0)
        child_exec(t, p, argv);
    track(t, p->pid);
}

int
e2e_orbit_pty(struct e2e *t, const char *const *argv, char **out)
{
    int master = -1;
    fflush(NULL);
    pid_t pid = forkpty(&master, NULL, NULL, NULL);
    cr_assert_geq(pid, 0, "forkpty: %s", strerror(errno));
    if (pid == 0) {
        child_env(t);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        execv(E2E_ORBIT, (char *const *)argv);
        _exit(127);
    }
    track(t, pid);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    cr_assert_not_null(buf);
    for (int waited = 0; waited < 60000;) {
        struct pollfd pfd = {master, POLLIN, 0};
        int r = poll(&pfd, 1, 100);
        if (r == 0) {
            waited += 100;
            continue;
        }
        ssize_t got = read(master, buf + n, cap - n);
        if (got <= 0)
            break; /* EIO once the child has closed the terminal */
        n += (size_t)got;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            cr_assert_not_null(buf);
        }
    }
    buf[n] = '\0';
    close(master);
    struct e2e_proc p = {.pid = pid};
    e2e_wait(&p, 10);
    e2e_proc_free(&p);
    *out = buf;
    return p.code;
}

static char *
slurp_text(const char *path)
{
    if (!path[0])
        return strdup(""); /* nothing captured (a pty run) */
    size_t len = 0;
    uint8_t *b = e2e_read_all(path, &len);
    return (char *)b;
}

void
e2e_wait(struct e2e_proc *p, int timeout_s)
{
    int status = 0;
    struct timespec nap = {0, 20 * 1000 * 1000};
    long waited_ms = 0;
    pid_t r;
    while ((r = waitpid(p->pid, &status, WNOHANG)) == 0) {
        if (waited_ms >= (long)timeout_s * 1000) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &status, 0);
            char *err = slurp_text(p->err_path);
            cr_log_error("stderr of the killed process:\n%s", err);
            free(err);
            cr_assert_fail("process %d still running after %d s: killed",
                           (int)p->pid, timeout_s);
        }
        nanosleep(&nap, NULL);
        waited_ms += 20;
    }
    cr_assert_eq(r, p->pid, "waitpid: %s", strerror(errno));
    p->code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    p->pid = 0;
    free(p->out);
    free(p->err);
    p->out = slurp_text(p->out_path);
    p->err = slurp_text(p->err_path);
}

void
e2e_proc_free(struct e2e_proc *p)
{
    if (p->pid > 0) {
        kill(p->pid, SIGKILL);
        waitpid(p->pid, NULL, 0);
        p->pid = 0;
    }
    free(p->out);
    free(p->err);
    p->out = p->err = NULL;
}

static int
orbit_v(struct e2e *t, struct e2e_proc *p, va_list ap)
{
    const char *argv[64];
    size_t n = 0;
    argv[n++] = "orbit";
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL) {
        cr_assert_lt(n, 63);
        argv[n++] = a;
    }
    argv[n] = NULL;
    e2e_spawn(t, p, argv);
    e2e_wait(p, 60);
    return p->code;
}

int
e2e_orbit(struct e2e *t, struct e2e_proc *p, ...)
{
    va_list ap;
    va_start(ap, p);
    int code = orbit_v(t, p, ap);
    va_end(ap);
    return code;
}

void
e2e_orbit_ok(struct e2e *t, ...)
{
    struct e2e_proc p;
    va_list ap;
    va_start(ap, t);
    int code = orbit_v(t, &p, ap);
    va_end(ap);
    cr_assert_eq(code, 0, "orbit exit %d\nstdout:\n%s\nstderr:\n%s", code,
                 p.out, p.err);
    e2e_proc_free(&p);
}

/* ---- files ---- */

void
e2e_fill(uint8_t *buf, size_t len, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
    for (size_t i = 0; i < len; i++) {
        if ((i & 7) == 0) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        buf[i] = (uint8_t)(x >> ((i & 7) * 8));
    }
}

void
e2e_write_bytes(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0, "create %s: %s", path, strerror(errno));
    const uint8_t *p = data;
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        cr_assert_gt(w, 0, "write %s: %s", path, strerror(errno));
        p += w;
        len -= (size_t)w;
    }
    cr_assert_eq(close(fd), 0);
}

void
e2e_write_file(const char *path, size_t size, uint64_t seed, mode_t mode,
               time_t mtime)
{
    uint8_t *buf = malloc(size ? size : 1);
    cr_assert_not_null(buf);
    e2e_fill(buf, size, seed);
    e2e_write_bytes(path, buf, size);
    free(buf);
    cr_assert_eq(chmod(path, mode), 0);
    if (mtime)
        e2e_set_mtime(path, mtime, (long)(seed % 1000000) * 1000, false);
}

void
e2e_mkdir(const char *path, mode_t mode)
{
    cr_assert_eq(mkdir(path, mode), 0, "mkdir %s: %s", path, strerror(errno));
    cr_assert_eq(chmod(path, mode), 0);
}

void
e2e_put(const char *root, const char *rel, size_t size, uint64_t seed,
        mode_t mode)
{
    char p[E2E_PATH * 2];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    if (size == E2E_DIR)
        e2e_mkdir(p, mode);
    else
        e2e_write_file(p, size, seed, mode, 1500000000);
}

void
e2e_set_mtime(const char *path, time_t sec, long nsec, bool nofollow)
{
    struct timespec ts[2] = {{sec, nsec}, {sec, nsec}};
    cr_assert_eq(
        utimensat(AT_FDCWD, path, ts, nofollow ? AT_SYMLINK_NOFOLLOW : 0), 0,
        "utimensat %s: %s", path, strerror(errno));
}

uint8_t *
e2e_read_all(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap + 1);
    cr_assert_not_null(buf);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
            cr_assert_not_null(buf);
        }
        ssize_t r = read(fd, buf + n, cap - n);
        cr_assert_geq(r, 0, "read %s: %s", path, strerror(errno));
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    buf[n] = '\0';
    *len = n;
    return buf;
}

bool
e2e_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

static uint64_t du_total;

static int
du_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)path;
    (void)ftw;
    if (flag == FTW_F)
        du_total += (uint64_t)st->st_blocks * 512;
    return 0;
}

uint64_t
e2e_disk_usage(const char *dir)
{
    du_total = 0;
    nftw(dir, du_entry, 16, FTW_PHYS);
    return du_total;
}

/* ---- the generated tree ---- */

#define TREE_EPOCH 1600000000

struct tree_gen {
    char root[E2E_PATH];
    char dirs[64][128];
    unsigned ndirs;
    struct e2e_tree *t;
};

static void
gen_dir(struct tree_gen *g, const char *rel, mode_t mode)
{
    char p[E2E_PATH];
    fmt_path(p, g->root, rel);
    e2e_mkdir(p, mode);
    cr_assert_lt(g->ndirs, 64);
    snprintf(g->dirs[g->ndirs++], sizeof g->dirs[0], "%s", rel);
    g->t->dirs++;
}

static void
gen_file(struct tree_gen *g, const char *rel, size_t size, uint64_t seed,
         mode_t mode)
{
    char p[E2E_PATH];
    fmt_path(p, g->root, rel);
    e2e_write_file(p, size, seed, mode, (time_t)(TREE_EPOCH + seed * 37));
    g->t->files++;
    g->t->bytes += size;
}

static void
gen_link(struct tree_gen *g, const char *rel, const char *target)
{
    char p[E2E_PATH];
    fmt_path(p, g->root, rel);
    cr_assert_eq(symlink(target, p), 0, "symlink %s: %s", p, strerror(errno));
    e2e_set_mtime(p, TREE_EPOCH - 1000, 0, true);
    g->t->links++;
}

void
e2e_make_tree(const char *root, unsigned nfiles, size_t big_size,
              struct e2e_tree *out)
{
    static const mode_t modes[] = {0644, 0600, 0755, 0640, 0444};
    struct tree_gen *g = calloc(1, sizeof *g);
    cr_assert_not_null(g);
    memset(out, 0, sizeof *out);
    g->t = out;
    snprintf(g->root, sizeof g->root, "%s", root);
    char rel[128];
    for (unsigned d = 0; d < 4; d++) {
        snprintf(rel, sizeof rel, "d%u", d);
        gen_dir(g, rel, d % 2 ? 0750 : 0755);
        for (unsigned s = 0; s < 3; s++) {
            snprintf(rel, sizeof rel, "d%u/s%u", d, s);
            gen_dir(g, rel, 0755);
            snprintf(rel, sizeof rel, "d%u/s%u/deep", d, s);
            gen_dir(g, rel, 0700);
        }
    }
    for (unsigned i = 0; i < nfiles; i++) {
        unsigned d = i % 4, s = (i / 4) % 4;
        if (s == 3)
            snprintf(rel, sizeof rel, "d%u/f%03u.dat", d, i);
        else if (i % 3 == 0)
            snprintf(rel, sizeof rel, "d%u/s%u/deep/f%03u.dat", d, s, i);
        else
            snprintf(rel, sizeof rel, "d%u/s%u/f%03u.dat", d, s, i);
        size_t size = i % 9 == 0 ? 0 : (size_t)(i * 7919u) % 40000 + 1;
        gen_file(g, rel, size, 1000 + i, modes[i % 5]);
    }
    snprintf(out->empty_dir, sizeof out->empty_dir, "empty");
    gen_dir(g, out->empty_dir, 0755);
    gen_dir(g, "big", 0755);
    snprintf(out->big, sizeof out->big, "big/blob.bin");
    gen_file(g, out->big, big_size, 7, 0644);
    gen_dir(g, "dup", 0755);
    snprintf(out->dup_a, sizeof out->dup_a, "dup/a.bin");
    snprintf(out->dup_b, sizeof out->dup_b, "dup/copy-of-a.bin");
    gen_file(g, out->dup_a, 600000, 77, 0644);
    gen_file(g, out->dup_b, 600000, 77, 0600);
    gen_dir(g, "links", 0755);
    snprintf(out->link, sizeof out->link, "links/to-file");
    gen_link(g, out->link, "../d0/s1/f005.dat");
    gen_link(g, "links/dangling", "no/such/target");
    gen_link(g, "links/to-dir", "../d1");
    /* Directory times last: creating their entries moved them. */
    for (unsigned i = 0; i < g->ndirs; i++) {
        char p[E2E_PATH];
        fmt_path(p, g->root, g->dirs[i]);
        e2e_set_mtime(p, TREE_EPOCH - 5000 - i, 0, false);
    }
    free(g);
}

void
e2e_add_unreadable(struct e2e *t)
{
    e2e_put(t->src, "bad", E2E_DIR, 0, 0755);
    e2e_put(t->src, "bad/ok.txt", 20000, 11, 0644);
    e2e_put(t->src, "bad/locked", E2E_DIR, 0, 0755);
    e2e_put(t->src, "bad/locked/inside.txt", 100, 12, 0644);
    e2e_put(t->src, "bad/secret.bin", 300000, 13, 0000);
    char p[E2E_PATH * 2];
    snprintf(p, sizeof p, "%s/bad/locked", t->src);
    cr_assert_eq(chmod(p, 0000), 0);
    t->no_dac = geteuid() == 0;
}

/* ---- comparing trees ---- */

struct cmp {
    const char *src;
    const char *dst;
    int flags;
    const char *skip;
    unsigned diffs;
};

static void
diff(struct cmp *c, const char *rel, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->diffs < 40 && !(c->flags & E2E_CMP_QUIET))
        cr_log_error("tree difference at '%s': %s", rel, msg);
    c->diffs++;
}

static bool
same_content(const char *a, const char *b)
{
    int fa = open(a, O_RDONLY), fb = open(b, O_RDONLY);
    bool same = fa >= 0 && fb >= 0;
    static uint8_t ba[1 << 16], bb[1 << 16];
    while (same) {
        ssize_t na = read(fa, ba, sizeof ba);
        ssize_t nb = read(fb, bb, sizeof bb);
        if (na != nb || na < 0 || memcmp(ba, bb, (size_t)na) != 0)
            same = false;
        if (na <= 0)
            break;
    }
    if (fa >= 0)
        close(fa);
    if (fb >= 0)
        close(fb);
    return same;
}

static void cmp_dir(struct cmp *c, const char *rel);

static void
cmp_entry(struct cmp *c, const char *rel)
{
    char a[E2E_PATH * 2], b[E2E_PATH * 2];
    snprintf(a, sizeof a, "%s/%s", c->src, rel);
    snprintf(b, sizeof b, "%s/%s", c->dst, rel);
    struct stat sa, sb;
    cr_assert_eq(lstat(a, &sa), 0);
    if (lstat(b, &sb) != 0) {
        diff(c, rel, "missing at the destination");
        return;
    }
    if ((sa.st_mode & S_IFMT) != (sb.st_mode & S_IFMT)) {
        diff(c, rel, "type %o became %o", sa.st_mode & S_IFMT,
             sb.st_mode & S_IFMT);
        return;
    }
    if (S_ISLNK(sa.st_mode)) {
        char ta[E2E_PATH] = "", tb[E2E_PATH] = "";
        if (readlink(a, ta, sizeof ta - 1) < 0 ||
            readlink(b, tb, sizeof tb - 1) < 0 || strcmp(ta, tb) != 0)
            diff(c, rel, "symlink target '%s' became '%s'", ta, tb);
        return;
    }
    if ((sa.st_mode & 07777) != (sb.st_mode & 07777))
        diff(c, rel, "mode %04o became %04o", sa.st_mode & 07777,
             sb.st_mode & 07777);
    bool dir = S_ISDIR(sa.st_mode);
    if ((!dir || (c->flags & E2E_CMP_DIR_MTIME)) &&
        sa.st_mtim.tv_sec != sb.st_mtim.tv_sec)
        diff(c, rel, "mtime %lld became %lld", (long long)sa.st_mtim.tv_sec,
             (long long)sb.st_mtim.tv_sec);
    if (dir) {
        cmp_dir(c, rel);
        return;
    }
    if (sa.st_size != sb.st_size)
        diff(c, rel, "size %lld became %lld", (long long)sa.st_size,
             (long long)sb.st_size);
    else if (!same_content(a, b))
        diff(c, rel, "contents differ");
}

static void
cmp_extra(struct cmp *c, const char *rel)
{
    char a[E2E_PATH * 2], b[E2E_PATH * 2];
    snprintf(b, sizeof b, "%s/%s", c->dst, rel);
    DIR *d = opendir(b);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            (rel[0] == '\0' && !strcmp(e->d_name, ".orbit")))
            continue;
        snprintf(a, sizeof a, "%s/%s%s%s", c->src, rel, rel[0] ? "/" : "",
                 e->d_name);
        if (!e2e_exists(a))
            diff(c, e->d_name, "extra entry at the destination (in '%s')", rel);
    }
    closedir(d);
}

static void
cmp_dir(struct cmp *c, const char *rel)
{
    char a[E2E_PATH * 2];
    snprintf(a, sizeof a, "%s/%s", c->src, rel);
    DIR *d = opendir(a);
    cr_assert_not_null(d, "opendir %s: %s", a, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char sub[E2E_PATH];
        snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
        if (c->skip && strcmp(sub, c->skip) == 0)
            continue;
        cmp_entry(c, sub);
    }
    closedir(d);
    if (c->flags & E2E_CMP_NO_EXTRA)
        cmp_extra(c, rel);
}

unsigned
e2e_compare_trees(const char *src, const char *dst, int flags, const char *skip)
{
    struct cmp c = {src, dst, flags, skip, 0};
    struct stat st;
    cr_assert_eq(stat(dst, &st), 0, "%s does not exist", dst);
    cmp_dir(&c, "");
    return c.diffs;
}

/* ---- the report ---- */

static uint64_t
to_bytes(double v, const char *unit)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    for (unsigned i = 0; i < 5; i++) {
        if (strcmp(unit, units[i]) == 0) {
            while (i-- > 0)
                v *= 1024.0;
            return (uint64_t)v;
        }
    }
    cr_assert_fail("unknown unit '%s' in the report", unit);
    return 0;
}

struct e2e_report
e2e_report(const char *out)
{
    struct e2e_report r = {0};
    const char *f = out ? strstr(out, "  files: ") : NULL;
    const char *b = out ? strstr(out, "  bytes: ") : NULL;
    if (!f || !b)
        return r;
    unsigned long long fs, fu, fd, fseen;
    if (sscanf(f,
               "  files: %llu sent, %llu unchanged, %llu dead letters, "
               "%llu seen",
               &fs, &fu, &fd, &fseen) != 4)
        return r;
    double v[4];
    char u[4][8];
    if (sscanf(b,
               "  bytes: %lf %7s read, %lf %7s sent (%lf %7s of chunks), "
               "%lf %7s deduplicated",
               &v[0], u[0], &v[1], u[1], &v[2], u[2], &v[3], u[3]) != 8)
        return r;
    r.found = true;
    const char *k = strstr(f, " seen, ");
    const char *eol = strchr(f, '\n');
    unsigned long long kept = 0;
    if (k && (!eol || k < eol))
        sscanf(k, " seen, %llu kept in place", &kept);
    r.files_kept = kept;
    r.files_sent = fs;
    r.files_unchanged = fu;
    r.files_dead = fd;
    r.files_seen = fseen;
    r.bytes_read = to_bytes(v[0], u[0]);
    r.bytes_sent = to_bytes(v[1], u[1]);
    r.bytes_chunks = to_bytes(v[2], u[2]);
    r.bytes_dedup = to_bytes(v[3], u[3]);
    return r;
}

/* ---- orbit-star ---- */

uint16_t
e2e_free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(s, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t n = sizeof sa;
    cr_assert_eq(getsockname(s, (struct sockaddr *)&sa, &n), 0);
    close(s);
    return ntohs(sa.sin_port);
}

static void
star_prepare(struct e2e *t, struct e2e_star *s)
{
    if (s->root[0])
        return;
    e2e_path(t, s->root, "star-root");
    e2e_path(t, s->token_file, "star.token");
    e2e_mkdir(s->root, 0755);
    const char tok[] = E2E_TOKEN "\n";
    e2e_write_bytes(s->token_file, tok, sizeof tok - 1);
    cr_assert_eq(access(E2E_STAR, X_OK), 0,
                 "%s missing: build the orbit-star target first", E2E_STAR);
}

/* The port the star reports in "listening on ... (port N)". */
static uint16_t
star_port_from_log(const char *log)
{
    size_t len = 0;
    if (access(log, R_OK) != 0)
        return 0; /* not created yet */
    char *text = (char *)e2e_read_all(log, &len);
    const char *p = strstr(text, "(port ");
    unsigned port = 0;
    if (p && sscanf(p, "(port %u)", &port) != 1)
        port = 0;
    free(text);
    return (uint16_t)port;
}

void
e2e_star_start(struct e2e *t, struct e2e_star *s, uint16_t port)
{
    star_prepare(t, s);
    e2e_path(t, s->log, "star%u.log", s->starts++);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", port);
    fflush(NULL);
    s->pid = fork();
    cr_assert_geq(s->pid, 0);
    if (s->pid == 0) {
        int fd = open(s->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            _exit(126);
        dup2(fd, 2);
        dup2(fd, 1);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        const char *argv[16] = {"orbit-star", "--root", s->root,
                                "--listen",   addr,     "--token-file",
                                s->token_file};
        for (size_t i = 0; i < 6 && s->extra[i]; i++)
            argv[7 + i] = s->extra[i];
        execv(E2E_STAR, (char *const *)argv);
        _exit(127);
    }
    track(t, s->pid);
    for (int i = 0; i < 500; i++) {
        int status;
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            cr_assert_fail("orbit-star exited at start (status %d), see %s",
                           status, s->log);
        }
        s->port = star_port_from_log(s->log);
        if (s->port != 0) {
            cr_assert(port == 0 || s->port == port);
            return;
        }
        usleep(20 * 1000);
    }
    cr_assert_fail("orbit-star did not report a listening port in %s", s->log);
}

void
e2e_star_stop(struct e2e_star *s)
{
    if (s->pid <= 0)
        return;
    cr_assert_eq(kill(s->pid, SIGTERM), 0);
    int status = 0;
    for (int i = 0; i < 1000 && waitpid(s->pid, &status, WNOHANG) == 0; i++)
        usleep(10 * 1000);
    if (kill(s->pid, 0) == 0) {
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &status, 0);
        s->pid = 0;
        cr_assert_fail("orbit-star did not drain within 10 s of SIGTERM");
    }
    s->pid = 0;
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
              "orbit-star after SIGTERM: status %d", status);
}

void
e2e_star_kill(struct e2e_star *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGKILL);
    waitpid(s->pid, NULL, 0);
    s->pid = 0;
}

/* ---- HTTP and orbit serve ---- */

void
e2e_nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

char *
e2e_http_get(uint16_t port, const char *path)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return NULL;
    }
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Connection: close\r\n\r\n",
                     path);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    ssize_t r;
    while ((r = read(fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)r;
    close(fd);
    buf[len] = '\0';
    char *body = strstr(buf, "\r\n\r\n");
    char *out = body ? strdup(body + 4) : NULL;
    free(buf);
    return out;
}

void
e2e_serve_start(struct e2e *t, struct e2e_proc *p, uint16_t port)
{
    char api[64];
    snprintf(api, sizeof api, "127.0.0.1:%u", port);
    const char *argv[] = {E2E_ORBIT,     "serve",  "--api", api,
                          "--state-dir", t->state, NULL};
    e2e_spawn(t, p, argv);
    for (int i = 0; i < 250; i++) {
        char *b = e2e_http_get(port, "/healthz");
        if (b) {
            free(b);
            return;
        }
        e2e_nap_ms(20);
    }
    cr_assert_fail("orbit serve did not answer on %s", api);
}

char *
e2e_wait_job(const struct e2e *t, uint16_t port, const char *id,
             const char *want, int seconds)
{
    char path[128], needle[64];
    snprintf(path, sizeof path, "/api/jobs/%s", id);
    snprintf(needle, sizeof needle, "\"state\":\"%s\"", want);
    char *body = NULL;
    for (int i = 0; i < seconds * 20; i++) {
        free(body);
        body = e2e_http_get(port, path);
        if (body && strstr(body, needle))
            return body;
        if (body && (strstr(body, "\"state\":\"failed\"") ||
                     strstr(body, "\"state\":\"partial\"") ||
                     strstr(body, "\"state\":\"canceled\"")))
            break; /* ended otherwise: no use waiting */
        e2e_nap_ms(50);
    }
    char log[E2E_PATH * 2];
    snprintf(log, sizeof log, "%s/logs/%s.log", t->state, id);
    size_t n = 0;
    char *text = e2e_exists(log) ? (char *)e2e_read_all(log, &n) : NULL;
    cr_assert_fail("job %s never reached %s; last answer:\n%s\njob log:\n%s",
                   id, want, body ? body : "(none)", text ? text : "(none)");
    return NULL;
}
