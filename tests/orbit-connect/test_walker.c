#include <criterion/criterion.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "connect_test.h"
#include "orbit/error.h"
#include "orbit/walker.h"

#define MAXSEEN 64

struct seen {
    char path[MAXSEEN][256];
    enum walker_type type[MAXSEEN];
    uint64_t size[MAXSEEN];
    char target[MAXSEEN][64];
    size_t n;
};

static char *root;

static void
make_tree(void)
{
    root = connect_test_tmpdir("walk");
    connect_test_write(root, "a.txt", 10);
    connect_test_mkdir(root, "b");
    connect_test_write(root, "b/c.txt", 20);
    connect_test_mkdir(root, "b/d");
    connect_test_write(root, "b/d/e.bin", 5);
    connect_test_mkdir(root, "empty");
    connect_test_write(root, "d", 1); /* a file named like the dir */
    char p[512];
    snprintf(p, sizeof p, "%s/link", root);
    cr_assert_eq(symlink("a.txt", p), 0);
}

static void
drop_tree(void)
{
    connect_test_rmtree(root);
    free(root);
}

static int
find(const struct seen *s, const char *path)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->path[i], path) == 0)
            return (int)i;
    return -1;
}

static void
walk_all(const char *r, const struct walker_opts *o, struct seen *s)
{
    struct walker *w;
    struct walker_entry e;
    int rc;
    memset(s, 0, sizeof *s);
    cr_assert_eq(walker_new(r, o, &w), 0);
    while ((rc = walker_next(w, &e)) == 0) {
        cr_assert_lt(s->n, MAXSEEN);
        cr_assert_neq(e.path[0], '\0');
        snprintf(s->path[s->n], sizeof s->path[0], "%s", e.path);
        s->type[s->n] = e.type;
        s->size[s->n] = e.size;
        if (e.link_target)
            snprintf(s->target[s->n], sizeof s->target[0], "%s", e.link_target);
        s->n++;
    }
    cr_assert_eq(rc, ORBIT_ENOENT);
    cr_assert_eq(walker_next(w, &e), ORBIT_ENOENT, "stays at the end");
    cr_assert_eq(walker_depth(w), 0);
    walker_free(w);
}

TestSuite(walker, .init = make_tree, .fini = drop_tree);

Test(walker, whole_tree_parents_first)
{
    struct seen s;
    walk_all(root, NULL, &s);
    cr_assert_eq(s.n, 8);
    int a = find(&s, "a.txt"), b = find(&s, "b"), c = find(&s, "b/c.txt");
    int d = find(&s, "b/d"), e = find(&s, "b/d/e.bin");
    int l = find(&s, "link"), em = find(&s, "empty"), f = find(&s, "d");
    cr_assert(a >= 0 && b >= 0 && c >= 0 && d >= 0 && e >= 0 && l >= 0 &&
              em >= 0 && f >= 0);
    cr_assert_lt(b, c);
    cr_assert_lt(b, d);
    cr_assert_lt(d, e);
    cr_assert_eq(s.type[a], WALKER_FILE);
    cr_assert_eq(s.size[a], 10);
    cr_assert_eq(s.size[c], 20);
    cr_assert_eq(s.type[d], WALKER_DIR);
    cr_assert_eq(s.type[l], WALKER_SYMLINK);
    cr_assert_str_eq(s.target[l], "a.txt");
    cr_assert_eq(s.type[em], WALKER_DIR);
}

Test(walker, entry_fields_and_stats)
{
    struct walker *w;
    struct walker_entry e;
    cr_assert_eq(walker_new(root, NULL, &w), 0);
    while (walker_next(w, &e) == 0) {
        if (strcmp(e.path, "b/c.txt") != 0)
            continue;
        struct stat st;
        char p[512];
        snprintf(p, sizeof p, "%s/b/c.txt", root);
        cr_assert_eq(stat(p, &st), 0);
        cr_assert_eq(e.mode, st.st_mode);
        cr_assert_eq(e.ino, st.st_ino);
        cr_assert_eq(e.mtime_ns,
                     st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec);
        cr_assert_null(e.link_target);
    }
    struct walker_stats st;
    walker_get_stats(w, &st);
    cr_assert_eq(st.files, 4);
    cr_assert_eq(st.dirs, 3);
    cr_assert_eq(st.symlinks, 1);
    cr_assert_eq(st.bytes, 36);
    cr_assert_eq(st.errors, 0);
    walker_free(w);
}

Test(walker, single_file_root)
{
    char p[512];
    snprintf(p, sizeof p, "%s/b/c.txt", root);
    struct seen s;
    walk_all(p, NULL, &s);
    cr_assert_eq(s.n, 1);
    cr_assert_str_eq(s.path[0], "c.txt");
    cr_assert_eq(s.size[0], 20);
    const char *ex[] = {"*.txt"};
    struct walker_opts o;
    walker_opts_init(&o);
    o.excludes = ex;
    o.nexcludes = 1;
    walk_all(p, &o, &s);
    cr_assert_eq(s.n, 0);
}

Test(walker, excludes_basename_path_and_dirs)
{
    struct walker_opts o;
    struct seen s;
    walker_opts_init(&o);
    const char *ex1[] = {"*.bin"};
    o.excludes = ex1;
    o.nexcludes = 1;
    walk_all(root, &o, &s);
    cr_assert_eq(s.n, 7);
    cr_assert_lt(find(&s, "b/d/e.bin"), 0);

    /* An excluded directory is not descended. */
    const char *ex2[] = {"b/d"};
    o.excludes = ex2;
    walk_all(root, &o, &s);
    cr_assert_eq(s.n, 6);
    cr_assert_lt(find(&s, "b/d"), 0);
    cr_assert_lt(find(&s, "b/d/e.bin"), 0);

    /* A trailing '/' only matches directories: the file "d" stays. */
    const char *ex3[] = {"d/"};
    o.excludes = ex3;
    walk_all(root, &o, &s);
    cr_assert_eq(s.n, 6);
    cr_assert_geq(find(&s, "d"), 0);
    cr_assert_lt(find(&s, "b/d"), 0);

    /* Leading '/' anchors at the root. */
    const char *ex4[] = {"/d"};
    o.excludes = ex4;
    walk_all(root, &o, &s);
    cr_assert_eq(s.n, 7);
    cr_assert_lt(find(&s, "d"), 0);
    cr_assert_geq(find(&s, "b/d"), 0);
}

Test(walker, includes_and_exclude_wins)
{
    struct walker_opts o;
    struct seen s;
    walker_opts_init(&o);
    const char *in1[] = {"*.txt"};
    o.includes = in1;
    o.nincludes = 1;
    walk_all(root, &o, &s);
    cr_assert_eq(s.n, 2);
    cr_assert_geq(find(&s, "a.txt"), 0);
    cr_assert_geq(find(&s, "b/c.txt"), 0);

    /* A directory include takes its whole subtree. */
    const char *in2[] = {"b"};
    o.includes = in2;
    walk_all(root, &o, &s);
    cr_assert_eq(s.n, 4);
    cr_assert_geq(find(&s, "b/d/e.bin"), 0);

    const char *ex[] = {"c.txt"};
    o.excludes = ex;
    o.nexcludes = 1;
    walk_all(root, &o, &s);
    cr_assert_eq(s.n, 3);
    cr_assert_lt(find(&s, "b/c.txt"), 0);

    const char *in3[] = {"**/*.bin"};
    o.includes = in3;
    o.nexcludes = 0;
    walk_all(root, &o, &s);
    cr_assert_eq(s.n, 1);
    cr_assert_str_eq(s.path[0], "b/d/e.bin");
}

static int errs_seen;
static char err_path[256];
static int err_code;

static void
on_err(void *arg, const char *path, int err)
{
    (void)arg;
    errs_seen++;
    snprintf(err_path, sizeof err_path, "%s", path);
    err_code = err;
}

Test(walker, depth_limit_is_an_entry_error)
{
    struct walker_opts o;
    walker_opts_init(&o);
    o.max_depth = 2; /* root and b: b/d cannot be entered */
    struct walker *w;
    struct walker_entry e;
    cr_assert_eq(walker_new(root, &o, &w), 0);
    int rc, errors = 0, ok = 0;
    while ((rc = walker_next(w, &e)) != ORBIT_ENOENT) {
        if (rc == 0) {
            ok++;
            continue;
        }
        errors++;
        cr_assert_eq(rc, ORBIT_ETOOBIG);
        cr_assert_str_eq(e.path, "b/d");
    }
    cr_assert_eq(errors, 1);
    cr_assert_eq(ok, 7); /* b/d itself is produced, its contents are not */
    walker_free(w);

    /* With a callback the walk reports and goes on by itself. */
    o.on_error = on_err;
    errs_seen = 0;
    struct seen s;
    walk_all(root, &o, &s);
    cr_assert_eq(errs_seen, 1);
    cr_assert_str_eq(err_path, "b/d");
    cr_assert_eq(err_code, ORBIT_ETOOBIG);
    cr_assert_eq(s.n, 7);
}

Test(walker, bad_arguments)
{
    struct walker *w = NULL;
    char p[512];
    snprintf(p, sizeof p, "%s/none", root);
    cr_assert_eq(walker_new(p, NULL, &w), ORBIT_ENOENT);
    cr_assert_eq(walker_new(NULL, NULL, &w), ORBIT_EINVAL);
    cr_assert_eq(walker_new("", NULL, &w), ORBIT_EINVAL);
    struct walker_opts o;
    walker_opts_init(&o);
    o.max_depth = WALKER_DEPTH_MAX + 1;
    cr_assert_eq(walker_new(root, &o, &w), ORBIT_EINVAL);
    walker_opts_init(&o);
    o.nexcludes = 1;
    cr_assert_eq(walker_new(root, &o, &w), ORBIT_EINVAL);
    cr_assert_null(w);
    walker_free(NULL);
}

Test(walker_glob, agrees_with_fnmatch_without_double_star)
{
    const char *pats[] = {"*.c", "a?c",   "[a-c]x", "[!a]x", "*",
                          "a/*", "a/*/c", "\\*",    "x[",    "[]]",
                          "*/",  "a*b*c", "[^b]*",  "",      "?"};
    const char *strs[] = {"main.c", "abc", "bx",   "ax", "a/b",
                          "a/b/c",  "*",   "x[",   "]",  "",
                          "aXbYc",  "zzz", "a/bc", ".c", "b"};
    for (size_t i = 0; i < sizeof pats / sizeof *pats; i++)
        for (size_t k = 0; k < sizeof strs / sizeof *strs; k++) {
            bool want = fnmatch(pats[i], strs[k], FNM_PATHNAME) == 0;
            cr_assert_eq(walker_glob_match(pats[i], strs[k]), want,
                         "pattern '%s' on '%s'", pats[i], strs[k]);
        }
}

Test(walker_glob, double_star)
{
    cr_assert(walker_glob_match("**/*.h", "include/orbit/x.h"));
    cr_assert(walker_glob_match("**/*.h", "x.h"));
    cr_assert(walker_glob_match("a/**/b", "a/b"));
    cr_assert(walker_glob_match("a/**/b", "a/x/y/b"));
    cr_assert_not(walker_glob_match("a/**/b", "a/x/y/c"));
    cr_assert(walker_glob_match("a/**", "a/x/y"));
    cr_assert_not(walker_glob_match("a/*", "a/x/y"));
    /* Backtracking is bounded: a hostile pattern ends, false. */
    char s[200];
    memset(s, 'a', sizeof s - 1);
    s[sizeof s - 1] = '\0';
    cr_assert_not(walker_glob_match("**a**a**a**a**a**a**a**a**b", s));
}

Test(walker_glob, rules)
{
    cr_assert(walker_rule_matches("*.txt", "deep/dir/x.txt", false));
    cr_assert_not(walker_rule_matches("dir/*.txt", "deep/dir/x.txt", false));
    cr_assert(walker_rule_matches("deep/dir/*.txt", "deep/dir/x.txt", false));
    cr_assert(walker_rule_matches("/deep", "deep", true));
    cr_assert(walker_rule_matches("build/", "x/build", true));
    cr_assert_not(walker_rule_matches("build/", "x/build", false));
    cr_assert_not(walker_rule_matches("/", "x", true));
    cr_assert_not(walker_rule_matches("", "x", true));
}

/* 200,000 files: the walker's own memory must not grow with the count. */
Test(walker_big, bounded_memory)
{
    char *big = connect_test_fast_tmpdir("walkbig");
    char p[512];
    const int ndirs = 200, per = 1000;
    for (int d = 0; d < ndirs; d++) {
        /* Nest every tenth directory to give the walk some depth. */
        if (d % 10 == 0)
            snprintf(p, sizeof p, "%s/d%03d", big, d);
        else
            snprintf(p, sizeof p, "%s/d%03d/s%03d", big, d - d % 10, d);
        cr_assert_eq(mkdir(p, 0755), 0, "%s", p);
        size_t len = strlen(p);
        for (int f = 0; f < per; f++) {
            snprintf(p + len, sizeof p - len, "/file%04d", f);
            int fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
            cr_assert_geq(fd, 0);
            close(fd);
        }
    }
#ifndef __SANITIZE_ADDRESS__
    size_t heap0 = mallinfo2().uordblks;
    size_t heap_max = 0;
#endif
    struct walker *w;
    struct walker_entry e;
    cr_assert_eq(walker_new(big, NULL, &w), 0);
    size_t files = 0, maxdepth = 0;
    while (walker_next(w, &e) == 0) {
        if (e.type == WALKER_FILE)
            files++;
        if (walker_depth(w) > maxdepth)
            maxdepth = walker_depth(w);
#ifndef __SANITIZE_ADDRESS__
        if (files % 1000 == 0) {
            size_t h = mallinfo2().uordblks;
            if (h > heap_max)
                heap_max = h;
        }
#endif
    }
    cr_assert_eq(files, (size_t)ndirs * per);
    cr_assert_leq(maxdepth, 3);
    cr_assert_lt(walker_mem_peak(w), 16 * 1024, "peak %zu", walker_mem_peak(w));
#ifndef __SANITIZE_ADDRESS__
    /* DIR streams included: a few open levels, never the tree. */
    cr_assert_lt(heap_max > heap0 ? heap_max - heap0 : 0, 1024 * 1024);
#endif
    walker_free(w);
    connect_test_rmtree(big);
    free(big);
}

/* Mount points are produced but not entered with one_filesystem. */
Test(walker_fs, one_filesystem_stops_at_mounts)
{
    struct stat root_st, st;
    char mount[64] = "";
    cr_assert_eq(stat("/dev", &root_st), 0);
    const char *cands[] = {"shm", "pts", "mqueue", "hugepages"};
    for (size_t i = 0; i < 4 && !mount[0]; i++) {
        char p[64];
        snprintf(p, sizeof p, "/dev/%s", cands[i]);
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode) &&
            st.st_dev != root_st.st_dev)
            snprintf(mount, sizeof mount, "%s", cands[i]);
    }
    if (!mount[0])
        cr_skip_test("no mount point under /dev");
    struct walker_opts o;
    walker_opts_init(&o);
    o.one_filesystem = true;
    o.on_error = on_err;
    struct walker *w;
    struct walker_entry e;
    cr_assert_eq(walker_new("/dev", &o, &w), 0);
    bool seen = false;
    size_t mlen = strlen(mount);
    while (walker_next(w, &e) == 0) {
        if (strcmp(e.path, mount) == 0) {
            seen = true;
            cr_assert_eq(e.type, WALKER_DIR);
        }
        cr_assert(strncmp(e.path, mount, mlen) != 0 || e.path[mlen] != '/',
                  "entered the mount: %s", e.path);
    }
    cr_assert(seen, "mount point %s produced", mount);
    walker_free(w);
}

/* Removes a chain of depth directories named name below dirfd. */
static void
rm_chain(int dirfd, const char *name, int depth)
{
    if (depth == 0)
        return;
    int sub = openat(dirfd, name, O_RDONLY | O_DIRECTORY);
    cr_assert_geq(sub, 0);
    rm_chain(sub, name, depth - 1);
    close(sub);
    cr_assert_eq(unlinkat(dirfd, name, AT_REMOVEDIR), 0);
}

/* A path longer than the walker's buffer is an entry error; the walk goes
 * on with the rest of the tree. */
Test(walker_long, path_too_long_is_an_entry_error)
{
    char *r = connect_test_tmpdir("walklong");
    char name[201];
    memset(name, 'n', 200);
    name[200] = '\0';
    int fd = open(r, O_RDONLY | O_DIRECTORY);
    cr_assert_geq(fd, 0);
    for (int i = 0; i < 22; i++) { /* 22 * 201 bytes > 4096 */
        cr_assert_eq(mkdirat(fd, name, 0755), 0);
        int next = openat(fd, name, O_RDONLY | O_DIRECTORY);
        cr_assert_geq(next, 0);
        close(fd);
        fd = next;
    }
    close(fd);
    connect_test_write(r, "after", 1);
    struct walker *w;
    struct walker_entry e;
    cr_assert_eq(walker_new(r, NULL, &w), 0);
    int rc, errors = 0;
    size_t dirs = 0;
    bool after = false;
    while ((rc = walker_next(w, &e)) != ORBIT_ENOENT) {
        if (rc == ORBIT_ETOOBIG) {
            errors++;
            cr_assert_lt(strlen(e.path), 4096);
            continue;
        }
        cr_assert_eq(rc, 0);
        dirs += e.type == WALKER_DIR;
        after |= strcmp(e.path, "after") == 0;
    }
    cr_assert_eq(errors, 1);
    cr_assert_eq(dirs, 20); /* 20 * 201 - 1 fits, the 21st does not */
    cr_assert(after);
    walker_free(w);
    fd = open(r, O_RDONLY | O_DIRECTORY);
    cr_assert_geq(fd, 0);
    rm_chain(fd, name, 22);
    cr_assert_eq(unlinkat(fd, "after", 0), 0);
    close(fd);
    cr_assert_eq(rmdir(r), 0);
    free(r);
}
