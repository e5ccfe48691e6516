/*
 * Source faults: the source tree changes under a running copy. A 32 MiB
 * file is read first (--jobs 1 --prioritize largest) and, paced by
 * --bwlimit, stays open in orbit's reader for a few seconds: its reader
 * holds at most 24 MiB of unsent chunks and waits for the rest. The test
 * watches the reader's position in /proc/PID/fdinfo and changes the source
 * while the file is open mid-read: it deletes a file or a directory walked
 * but not yet read, truncates the file being read, or rewrites part of it
 * (same size). A vanished entry is a dead letter `source_missing`, exit 3;
 * a file changed during its read is read again and arrives with its final
 * content, or is a dead letter saying it changed; never a mix of old and
 * new bytes; the rest of the job completes.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e_util.h"

static struct e2e *const t = &e2e_current;

TestSuite(cli_source, .init = e2e_suite_init, .fini = e2e_suite_fini,
          .timeout = 120);

#define BIG     ((size_t)32 << 20)
#define MIB     ((size_t)1 << 20)
#define BWLIMIT "12M"

/* big.bin, a few small files, later/victim.dat, and gone/ with four
 * files (one a level deeper). */
static void
make_source(void)
{
    e2e_put(t->src, "big.bin", BIG, 31, 0644);
    e2e_put(t->src, "a.txt", 3000, 1, 0644);
    e2e_put(t->src, "b.txt", 70000, 2, 0600);
    e2e_put(t->src, "later", E2E_DIR, 0, 0755);
    e2e_put(t->src, "later/keep.dat", 50000, 3, 0644);
    e2e_put(t->src, "later/victim.dat", 60000, 4, 0644);
    e2e_put(t->src, "gone", E2E_DIR, 0, 0755);
    e2e_put(t->src, "gone/g1.dat", 40000, 5, 0644);
    e2e_put(t->src, "gone/g2.dat", 41000, 6, 0644);
    e2e_put(t->src, "gone/g3.dat", 0, 7, 0644);
    e2e_put(t->src, "gone/deeper", E2E_DIR, 0, 0755);
    e2e_put(t->src, "gone/deeper/g4.dat", 42000, 8, 0644);
}

/* The offset of pid's open descriptor of path, or -1 when it has none. */
static long long
read_pos(pid_t pid, const char *path)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    long long pos = -1;
    struct dirent *e;
    while (pos < 0 && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char link[300], target[E2E_PATH * 2];
        snprintf(link, sizeof link, "%s/%s", dir, e->d_name);
        ssize_t n = readlink(link, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        if (strcmp(target, path) != 0)
            continue;
        snprintf(link, sizeof link, "/proc/%d/fdinfo/%s", (int)pid, e->d_name);
        FILE *f = fopen(link, "r");
        if (!f)
            continue;
        long long v;
        if (fscanf(f, "pos: %lld", &v) == 1)
            pos = v;
        fclose(f);
    }
    closedir(d);
    return pos;
}

/* Start the paced copy and return once its reader is inside big.bin, at
 * least 4 MiB in and well short of its end. */
static void
start_mid_read(struct e2e_proc *p, char *big)
{
    static const char *argv[] = {
        "orbit", "copy", "--jobs", "1", "--prioritize", "largest", "--bwlimit",
        BWLIMIT, NULL,   NULL,     NULL};
    argv[8] = t->src_slash;
    argv[9] = t->dst;
    snprintf(big, E2E_PATH * 2, "%s/big.bin", t->src);
    e2e_spawn(t, p, argv);
    for (int i = 0; i < 10000; i++) {
        long long pos = read_pos(p->pid, big);
        if (pos >= (long long)(4 * MIB)) {
            cr_assert_lt(pos, (long long)(BIG - 4 * MIB),
                         "the reader is already at %lld of big.bin", pos);
            cr_log_info("big.bin open in the reader at offset %lld", pos);
            return;
        }
        int status;
        cr_assert_eq(waitpid(p->pid, &status, WNOHANG), 0,
                     "orbit ended before reading big.bin");
        usleep(1000);
    }
    cr_assert_fail("orbit never read into big.bin");
}

/* The change happened while big.bin was still open in the reader. */
static void
still_reading(const struct e2e_proc *p, const char *big)
{
    long long pos = read_pos(p->pid, big);
    cr_assert_geq(pos, 0, "big.bin closed before the change was done");
    cr_log_info("after the change the reader is at offset %lld", pos);
}

static void
finish(struct e2e_proc *p)
{
    e2e_wait(p, 60);
    cr_log_info("exit %d\n%s", p->code, p->out);
}

/* The report's dead-letter line naming rel, or NULL. */
static const char *
dead_line(const char *out, const char *rel, char *line, size_t cap)
{
    const char *dl = strstr(out, "dead letters:\n");
    if (!dl)
        return NULL;
    for (const char *l = dl; (l = strchr(l, '\n')) != NULL;) {
        l++;
        const char *eol = strchr(l, '\n');
        size_t n = eol ? (size_t)(eol - l) : strlen(l);
        if (n >= cap)
            n = cap - 1;
        memcpy(line, l, n);
        line[n] = '\0';
        char pat[E2E_PATH];
        snprintf(pat, sizeof pat, " %s ", rel);
        if (strstr(line, pat))
            return line;
        if (!eol)
            break;
    }
    return NULL;
}

static void
expect_source_missing(const struct e2e_proc *p, const char *rel)
{
    char line[1024];
    const char *l = dead_line(p->out, rel, line, sizeof line);
    cr_expect_not_null(l, "%s is not among the dead letters:\n%s", rel, p->out);
    if (l)
        cr_expect_not_null(strstr(l, "source_missing"), "%s: %s", rel, l);
    char d[E2E_PATH * 2];
    snprintf(d, sizeof d, "%s/%s", t->dst, rel);
    cr_expect_not(e2e_exists(d), "%s appeared at the destination", rel);
}

Test(cli_source, a_file_deleted_after_the_walk_is_a_dead_letter)
{
    make_source();
    struct e2e_proc p;
    char big[E2E_PATH * 2], v[E2E_PATH * 2];
    start_mid_read(&p, big);
    snprintf(v, sizeof v, "%s/later/victim.dat", t->src);
    cr_assert_eq(unlink(v), 0);
    still_reading(&p, big);
    finish(&p);
    cr_assert_eq(p.code, 3, "exit %d (want 3)\n%s\n%s", p.code, p.out, p.err);
    struct e2e_report r = e2e_report(p.out);
    cr_assert(r.found, "%s", p.out);
    cr_expect_eq(r.files_dead, 1, "%s", p.out);
    expect_source_missing(&p, "later/victim.dat");
    cr_expect_not_null(strstr(p.err, "later/victim.dat"), "%s", p.err);
    /* everything else, as the source is now */
    cr_assert_eq(e2e_compare_trees(t->src, t->dst, E2E_CMP_NO_EXTRA, NULL), 0);
    e2e_proc_free(&p);
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    return flag == FTW_DP ? rmdir(path) : unlink(path);
}

/* Regular files under dir (recursively). */
static unsigned
count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return 0;
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[E2E_PATH * 2];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            n += count_files(p);
        else
            n++;
    }
    closedir(d);
    return n;
}

Test(cli_source, a_directory_removed_during_the_copy_is_reported)
{
    make_source();
    struct e2e_proc p;
    char big[E2E_PATH * 2], g[E2E_PATH * 2];
    start_mid_read(&p, big);
    snprintf(g, sizeof g, "%s/gone", t->src);
    cr_assert_eq(nftw(g, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
    still_reading(&p, big);
    finish(&p);
    cr_assert_eq(p.code, 3, "exit %d (want 3)\n%s\n%s", p.code, p.out, p.err);
    struct e2e_report r = e2e_report(p.out);
    cr_assert(r.found, "%s", p.out);
    static const char *const gone[] = {"gone/g1.dat", "gone/g2.dat",
                                       "gone/g3.dat", "gone/deeper/g4.dat"};
    for (size_t i = 0; i < sizeof gone / sizeof *gone; i++)
        expect_source_missing(&p, gone[i]);
    cr_expect_geq(r.files_dead, 4, "%s", p.out);
    snprintf(g, sizeof g, "%s/gone", t->dst);
    cr_expect_eq(count_files(g), 0, "files under gone/ at the destination");
    /* the rest, as the source is now (an empty gone/ may remain) */
    cr_assert_eq(e2e_compare_trees(t->src, t->dst, 0, NULL), 0);
    e2e_proc_free(&p);
}

/* big.bin at the destination: its final source content, or absent and a
 * dead letter that says it changed. Never anything else. */
static void
big_final_or_dead(const struct e2e_proc *p)
{
    char a[E2E_PATH * 2], b[E2E_PATH * 2];
    snprintf(a, sizeof a, "%s/big.bin", t->src);
    snprintf(b, sizeof b, "%s/big.bin", t->dst);
    char line[1024];
    const char *dead = dead_line(p->out, "big.bin", line, sizeof line);
    if (dead) {
        cr_expect_eq(p->code, 3, "exit %d with a dead letter", p->code);
        cr_expect_not_null(strstr(dead, "changed"), "%s", dead);
        cr_assert_not(e2e_exists(b), "big.bin is a dead letter and present");
    } else {
        cr_assert_eq(p->code, 0, "exit %d\n%s\n%s", p->code, p->out, p->err);
        size_t na = 0, nb = 0;
        uint8_t *x = e2e_read_all(a, &na), *y = e2e_read_all(b, &nb);
        size_t diff = 0, first = (size_t)-1;
        for (size_t i = 0; i < na && i < nb; i++)
            if (x[i] != y[i]) {
                diff++;
                if (first == (size_t)-1)
                    first = i;
            }
        free(x);
        free(y);
        cr_assert(na == nb && diff == 0,
                  "big.bin at the destination is not its final content: "
                  "%zu bytes for %zu, %zu bytes differ from offset %zd\n%s",
                  nb, na, diff, (ssize_t)first, p->out);
        cr_expect_not_null(strstr(p->out, "retries:"),
                           "the change was not retried:\n%s", p->out);
    }
    cr_assert_eq(e2e_compare_trees(t->src, t->dst, E2E_CMP_NO_EXTRA,
                                   dead ? "big.bin" : NULL),
                 0);
}

Test(cli_source, a_file_truncated_while_read_arrives_truncated)
{
    make_source();
    struct e2e_proc p;
    char big[E2E_PATH * 2];
    start_mid_read(&p, big);
    /* below the reader's offset: its next read ends the file, so the
     * descriptor may close at once (no still_reading here) */
    cr_assert_eq(truncate(big, (off_t)(3 * MIB + 12345)), 0);
    finish(&p);
    big_final_or_dead(&p);
    e2e_proc_free(&p);
}

/* Overwrite 1 MiB at the head (already read) and 1 MiB at the tail (not
 * yet read): a copy mixing the two reads would hold old head, new tail. */
static void
rewrite_head_and_tail(const char *big)
{
    uint8_t *buf = malloc(MIB);
    cr_assert_not_null(buf);
    e2e_fill(buf, MIB, 4242);
    int fd = open(big, O_WRONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, buf, MIB, 0), (ssize_t)MIB);
    e2e_fill(buf, MIB, 4343);
    cr_assert_eq(pwrite(fd, buf, MIB, (off_t)(BIG - MIB)), (ssize_t)MIB);
    cr_assert_eq(close(fd), 0);
    free(buf);
}

Test(cli_source, a_file_rewritten_while_read_arrives_with_its_final_content)
{
    make_source();
    struct e2e_proc p;
    char big[E2E_PATH * 2];
    start_mid_read(&p, big);
    rewrite_head_and_tail(big);
    struct stat st;
    cr_assert_eq(stat(big, &st), 0);
    cr_assert_eq((size_t)st.st_size, BIG);
    still_reading(&p, big);
    finish(&p);
    big_final_or_dead(&p);
    e2e_proc_free(&p);
}

/* The same rewrite, then the file's mtime put back as it was (as
 * `cp -p`, `rsync -t` or an archive extraction leave it): size, mtime
 * and inode are those the reader saw at open; only the ctime moved, and
 * the reader compares it too (without it the copy ended exit 0, no retry,
 * with the old head and the new tail at the destination). */
Test(cli_source, a_rewrite_that_keeps_the_mtime_is_still_noticed)
{
    make_source();
    struct e2e_proc p;
    char big[E2E_PATH * 2];
    start_mid_read(&p, big);
    struct stat before;
    cr_assert_eq(stat(big, &before), 0);
    rewrite_head_and_tail(big);
    struct timespec ts[2] = {before.st_atim, before.st_mtim};
    cr_assert_eq(utimensat(AT_FDCWD, big, ts, 0), 0);
    still_reading(&p, big);
    finish(&p);
    big_final_or_dead(&p);
    e2e_proc_free(&p);
}
