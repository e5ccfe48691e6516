/*
 * `orbit copy` to a local destination, end to end: a generated tree arrives
 * identical (contents, modes, mtimes, symlinks, empty files and
 * directories), `orbit verify` agrees and then catches a corrupted byte;
 * SRC versus SRC/, several sources, a single file; deduplication across
 * runs.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "e2e_util.h"

static struct e2e *const t = &e2e_current;

TestSuite(cli_copy, .init = e2e_suite_init, .fini = e2e_suite_fini,
          .timeout = 120);

/* SRC with a trailing slash: its contents land directly in DST. */
static const char *
slash(const char *dir, char *buf)
{
    snprintf(buf, E2E_PATH, "%s/", dir);
    return buf;
}

static void
flip_byte(const char *path, off_t at)
{
    int fd = open(path, O_RDWR);
    cr_assert_geq(fd, 0);
    unsigned char c;
    cr_assert_eq(pread(fd, &c, 1, at), 1);
    c ^= 0x5a;
    cr_assert_eq(pwrite(fd, &c, 1, at), 1);
    close(fd);
}

Test(cli_copy, generated_tree_arrives_identical_and_verify_agrees)
{
    struct e2e_tree tree;
    e2e_make_tree(t->src, 300, 6u << 20, &tree);
    struct e2e_proc p;
    char s[E2E_PATH];
    int code = E2E_ORBIT_RUN(t, &p, "copy", slash(t->src, s), t->dst);
    cr_assert_eq(code, 0, "orbit copy exit %d\nstdout:\n%s\nstderr:\n%s", code,
                 p.out, p.err);
    struct e2e_report r = e2e_report(p.out);
    cr_assert(r.found, "no report in:\n%s", p.out);
    cr_expect_eq(r.files_dead, 0);
    cr_expect_eq(r.files_seen, tree.files + tree.dirs + tree.links,
                 "seen %llu, tree has %u files, %u dirs, %u links",
                 (unsigned long long)r.files_seen, tree.files, tree.dirs,
                 tree.links);
    cr_expect_geq(r.bytes_read, tree.bytes - tree.bytes / 100);
    /* the duplicate file's chunks travel once */
    cr_expect_leq(r.bytes_sent, tree.bytes - 600000 + tree.bytes / 50,
                  "the duplicate's chunks were sent twice:\n%s", p.out);
    e2e_proc_free(&p);

    cr_assert_eq(e2e_compare_trees(t->src, t->dst, E2E_CMP_NO_EXTRA, NULL), 0,
                 "the copied tree differs from the source (see the log)");

    code = E2E_ORBIT_RUN(t, &p, "verify", t->src, t->dst);
    cr_assert_eq(code, 0, "verify on an identical tree: exit %d\n%s", code,
                 p.out);
    e2e_proc_free(&p);

    char big[E2E_PATH * 2];
    snprintf(big, sizeof big, "%s/%s", t->dst, tree.big);
    flip_byte(big, (off_t)(3u << 20) + 12345);
    code = E2E_ORBIT_RUN(t, &p, "verify", t->src, t->dst);
    cr_assert_eq(code, 3, "verify after corrupting one byte: exit %d\n%s", code,
                 p.out);
    cr_assert_not_null(strstr(p.out, tree.big), "verify does not name %s:\n%s",
                       tree.big, p.out);
    e2e_proc_free(&p);
}

/* cp -a and rsync -a keep directory times; a directory's time is set after
 * its entries are written. */
Test(cli_copy, directory_mtimes_are_preserved)
{
    struct e2e_tree tree;
    e2e_make_tree(t->src, 40, 100000, &tree);
    char s[E2E_PATH];
    E2E_ORBIT_OK(t, "copy", slash(t->src, s), t->dst);
    cr_expect_eq(e2e_compare_trees(t->src, t->dst, E2E_CMP_DIR_MTIME, NULL), 0,
                 "directory mtimes differ (see the log)");
}

static void
small_tree(const char *root, uint64_t seed)
{
    char p[E2E_PATH * 2];
    e2e_mkdir(root, 0755);
    snprintf(p, sizeof p, "%s/one.txt", root);
    e2e_write_file(p, 1000, seed, 0644, 1500000000);
    snprintf(p, sizeof p, "%s/sub", root);
    e2e_mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/sub/two.bin", root);
    e2e_write_file(p, 70000, seed + 1, 0600, 1500000100);
}

/* Entries of dir, sorted, comma-separated, without .orbit. */
static void
listing(const char *dir, char *buf, size_t cap)
{
    char cmd[E2E_PATH * 2];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | grep -vx .orbit | paste -sd,", dir);
    FILE *f = popen(cmd, "r");
    cr_assert_not_null(f);
    buf[0] = '\0';
    if (!fgets(buf, (int)cap, f))
        buf[0] = '\0';
    buf[strcspn(buf, "\n")] = '\0';
    pclose(f);
}

Test(cli_copy, source_without_slash_creates_its_basename)
{
    char a[E2E_PATH], d[E2E_PATH], got[E2E_PATH * 2], ls[256];
    small_tree(e2e_path(t, a, "src/alpha"), 1);
    e2e_path(t, d, "out");
    E2E_ORBIT_OK(t, "copy", a, d);
    listing(d, ls, sizeof ls);
    cr_assert_str_eq(ls, "alpha");
    snprintf(got, sizeof got, "%s/alpha", d);
    cr_assert_eq(e2e_compare_trees(a, got, E2E_CMP_NO_EXTRA, NULL), 0);
}

Test(cli_copy, source_with_slash_copies_its_contents)
{
    char a[E2E_PATH], d[E2E_PATH], s[E2E_PATH], ls[256];
    small_tree(e2e_path(t, a, "src/alpha"), 2);
    e2e_path(t, d, "out");
    E2E_ORBIT_OK(t, "copy", slash(a, s), d);
    listing(d, ls, sizeof ls);
    cr_assert_str_eq(ls, "one.txt,sub");
    cr_assert_eq(e2e_compare_trees(a, d, E2E_CMP_NO_EXTRA, NULL), 0);
}

Test(cli_copy, several_sources_and_a_single_file)
{
    char a[E2E_PATH], b[E2E_PATH], f[E2E_PATH], d[E2E_PATH], s[E2E_PATH];
    char ls[256], got[E2E_PATH * 2];
    small_tree(e2e_path(t, a, "src/alpha"), 3);
    small_tree(e2e_path(t, b, "src/beta"), 4);
    e2e_path(t, f, "src/lone.bin");
    e2e_write_file(f, 123457, 5, 0640, 1400000000);
    e2e_path(t, d, "out");
    /* beta/ lands its contents in DST next to alpha and lone.bin */
    E2E_ORBIT_OK(t, "copy", a, slash(b, s), f, d);
    listing(d, ls, sizeof ls);
    cr_assert_str_eq(ls, "alpha,lone.bin,one.txt,sub");
    snprintf(got, sizeof got, "%s/alpha", d);
    cr_assert_eq(e2e_compare_trees(a, got, E2E_CMP_NO_EXTRA, NULL), 0);
    cr_assert_eq(e2e_compare_trees(b, d, 0, NULL), 0);

    /* a single file as the only source */
    char d2[E2E_PATH];
    e2e_path(t, d2, "out2");
    E2E_ORBIT_OK(t, "copy", f, d2);
    listing(d2, ls, sizeof ls);
    cr_assert_str_eq(ls, "lone.bin");
    snprintf(got, sizeof got, "%s/lone.bin", d2);
    size_t n1 = 0, n2 = 0;
    uint8_t *x = e2e_read_all(f, &n1), *y = e2e_read_all(got, &n2);
    cr_assert_eq(n1, n2);
    cr_assert_eq(memcmp(x, y, n1), 0, "lone.bin differs");
    free(x);
    free(y);
    struct stat sa, sb;
    cr_assert_eq(stat(f, &sa), 0);
    cr_assert_eq(stat(got, &sb), 0);
    cr_expect_eq(sa.st_mode & 07777, sb.st_mode & 07777);
    cr_expect_eq(sa.st_mtim.tv_sec, sb.st_mtim.tv_sec);
}

/* A destination that already holds a file's chunks is not sent them
 * again, whatever the file is called. */
Test(cli_copy, chunks_already_at_the_destination_are_not_sent_again)
{
    enum { SIZE = 4 << 20 };
    char a[E2E_PATH], b[E2E_PATH], sa[E2E_PATH], sb[E2E_PATH];
    e2e_path(t, a, "src/a");
    e2e_path(t, b, "src/b");
    e2e_mkdir(a, 0755);
    e2e_mkdir(b, 0755);
    char f[E2E_PATH * 2];
    snprintf(f, sizeof f, "%s/original.bin", a);
    e2e_write_file(f, SIZE, 99, 0644, 1500000000);
    snprintf(f, sizeof f, "%s/renamed.bin", b);
    e2e_write_file(f, SIZE, 99, 0644, 1500000000);
    struct e2e_proc p;
    int code = E2E_ORBIT_RUN(t, &p, "copy", slash(a, sa), t->dst);
    cr_assert_eq(code, 0, "exit %d\n%s", code, p.err);
    struct e2e_report r = e2e_report(p.out);
    cr_assert(r.found, "%s", p.out);
    cr_expect_geq(r.bytes_sent, SIZE - SIZE / 50);
    e2e_proc_free(&p);

    code = E2E_ORBIT_RUN(t, &p, "copy", slash(b, sb), t->dst);
    cr_assert_eq(code, 0, "exit %d\n%s", code, p.err);
    r = e2e_report(p.out);
    cr_assert(r.found, "%s", p.out);
    cr_expect_lt(r.bytes_sent, SIZE / 100,
                 "a file whose chunks DST holds cost %llu bytes:\n%s",
                 (unsigned long long)r.bytes_sent, p.out);
    cr_expect_geq(r.bytes_dedup, SIZE - SIZE / 100, "%s", p.out);
    e2e_proc_free(&p);
    snprintf(f, sizeof f, "%s/renamed.bin", t->dst);
    size_t n = 0;
    uint8_t *got = e2e_read_all(f, &n);
    uint8_t *want = malloc(SIZE);
    e2e_fill(want, SIZE, 99);
    cr_assert_eq(n, (size_t)SIZE);
    cr_assert_eq(memcmp(got, want, SIZE), 0);
    free(got);
    free(want);
}

/* A read-only directory (0555) still receives its entries: its mode is set
 * once they are in, as cp -a and rsync -a do. Run with file modes in force
 * (as root: without CAP_DAC_*), as any user would. */
Test(cli_copy, read_only_directories_keep_their_contents)
{
    e2e_put(t->src, "ro", E2E_DIR, 0, 0755);
    e2e_put(t->src, "ro/inner", E2E_DIR, 0, 0755);
    e2e_put(t->src, "ro/a.txt", 5000, 1, 0444);
    e2e_put(t->src, "ro/inner/b.txt", 7000, 2, 0644);
    char p[E2E_PATH * 2];
    snprintf(p, sizeof p, "%s/ro/inner", t->src);
    cr_assert_eq(chmod(p, 0555), 0);
    snprintf(p, sizeof p, "%s/ro", t->src);
    cr_assert_eq(chmod(p, 0555), 0);
    t->no_dac = geteuid() == 0;
    struct e2e_proc pr;
    int code = E2E_ORBIT_RUN(t, &pr, "copy", t->src_slash, t->dst);
    cr_expect_eq(code, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", code, pr.out,
                 pr.err);
    e2e_proc_free(&pr);
    cr_assert_eq(e2e_compare_trees(t->src, t->dst, E2E_CMP_NO_EXTRA, NULL), 0,
                 "a read-only directory lost its contents");
}

/* --compress zstd sends compressible chunks compressed; --bwlimit holds
 * the rate down (a lower bound on the time, which load cannot break). */
Test(cli_copy, compress_and_bwlimit)
{
    enum { SIZE = 6 << 20 };
    char *text = malloc(SIZE);
    cr_assert_not_null(text);
    for (size_t i = 0; i < SIZE; i++)
        text[i] = "orbit moves trees of files\n"[i % 27];
    char f[E2E_PATH * 2];
    snprintf(f, sizeof f, "%s/text.txt", t->src);
    e2e_write_bytes(f, text, SIZE);
    free(text);
    struct e2e_proc p;
    int code = E2E_ORBIT_RUN(t, &p, "copy", "--compress", "zstd", t->src_slash,
                             t->dst);
    cr_assert_eq(code, 0, "exit %d\n%s", code, p.err);
    struct e2e_report r = e2e_report(p.out);
    cr_assert(r.found, "%s", p.out);
    cr_expect_lt(r.bytes_sent, r.bytes_chunks / 10,
                 "compressible chunks were not compressed:\n%s", p.out);
    e2e_proc_free(&p);
    cr_assert_eq(e2e_compare_trees(t->src, t->dst, E2E_CMP_NO_EXTRA, NULL), 0);

    e2e_put(t->src, "random.bin", 3u << 20, 5, 0644);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    E2E_ORBIT_OK(t, "copy", "--bwlimit", "1M", t->src_slash, t->dst);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double secs =
        (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    /* 3 MiB of new bytes at 1 MiB/s, less a burst of a fifth of a second */
    cr_expect_geq(secs, 2.5, "--bwlimit 1M sent 3 MiB in %.2f s", secs);
    cr_assert_eq(e2e_compare_trees(t->src, t->dst, E2E_CMP_NO_EXTRA, NULL), 0);
}

/* `orbit copy . DST` (here SRC/.) copies the directory's contents, as
 * SRC/ does, and as rsync -a does. */
Test(cli_copy, dot_as_source_copies_the_contents)
{
    char dot[E2E_PATH + 4];
    small_tree(e2e_path(t, dot, "src/alpha"), 6);
    char a[E2E_PATH];
    snprintf(a, sizeof a, "%s", dot);
    snprintf(dot, sizeof dot, "%s/.", a);
    struct e2e_proc p;
    int code = E2E_ORBIT_RUN(t, &p, "copy", dot, t->dst);
    cr_expect_eq(code, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", code, p.out,
                 p.err);
    e2e_proc_free(&p);
    cr_assert_eq(e2e_compare_trees(a, t->dst, E2E_CMP_NO_EXTRA, NULL), 0,
                 "copy SRC/. did not copy SRC's contents");
}

/* On a terminal a progress line (bytes, files, rate, ETA, dead letters)
 * is redrawn with \r; with stdout not a terminal there is none. */
Test(cli_copy, progress_line_only_on_a_terminal)
{
    e2e_put(t->src, "slow.bin", 3u << 20, 8, 0644);
    const char *argv[] = {"orbit",      "copy", "--bwlimit", "2M",
                          t->src_slash, t->dst, NULL};
    char *tty = NULL;
    int code = e2e_orbit_pty(t, argv, &tty);
    cr_expect_eq(code, 0, "exit %d on a terminal:\n%s", code, tty);
    cr_expect_not_null(strchr(tty, '\r'), "no progress line:\n%s", tty);
    cr_expect_not_null(strstr(tty, "ETA"), "no ETA:\n%s", tty);
    cr_expect_not_null(strstr(tty, "files"), "%s", tty);
    cr_expect_not_null(strstr(tty, "orbit copy: done"), "no report:\n%s", tty);
    free(tty);
    char d2[E2E_PATH];
    struct e2e_proc p;
    code =
        E2E_ORBIT_RUN(t, &p, "copy", t->src_slash, e2e_path(t, d2, "second"));
    cr_assert_eq(code, 0, "exit %d\n%s", code, p.err);
    cr_expect_null(strchr(p.out, '\r'), "a progress line on a file:\n%s",
                   p.out);
    e2e_proc_free(&p);
}

/* -q prints nothing on success; -v prints a line per file sent. */
Test(cli_copy, quiet_and_verbose)
{
    char src[E2E_PATH], d1[E2E_PATH], d2[E2E_PATH], s[E2E_PATH];
    small_tree(e2e_path(t, src, "src/q"), 9);
    struct e2e_proc p;
    int code = E2E_ORBIT_RUN(t, &p, "copy", "-q", slash(src, s),
                             e2e_path(t, d1, "quiet"));
    cr_assert_eq(code, 0, "exit %d\n%s", code, p.err);
    cr_expect_str_empty(p.out, "-q printed:\n%s", p.out);
    cr_expect_str_empty(p.err, "-q printed:\n%s", p.err);
    e2e_proc_free(&p);
    code = E2E_ORBIT_RUN(t, &p, "copy", "-v", slash(src, s),
                         e2e_path(t, d2, "verbose"));
    cr_assert_eq(code, 0, "exit %d\n%s", code, p.err);
    cr_expect_not_null(strstr(p.out, "sent one.txt\n"), "%s", p.out);
    cr_expect_not_null(strstr(p.out, "sent sub/two.bin\n"), "%s", p.out);
    e2e_proc_free(&p);
    cr_assert_eq(e2e_compare_trees(src, d2, E2E_CMP_NO_EXTRA, NULL), 0);
}
