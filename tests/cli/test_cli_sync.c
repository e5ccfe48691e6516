/*
 * `orbit sync` end to end: unchanged files are skipped without being read
 * or sent (report and --json agree), a 4 KiB change in an 8 MiB file costs
 * a small fraction of it, --delete removes what SRC lacks (and only with
 * --delete), --dry-run changes nothing.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "e2e_util.h"

static struct e2e *const t = &e2e_current;

TestSuite(cli_sync, .init = e2e_suite_init, .fini = e2e_suite_fini,
          .timeout = 120);

static struct e2e_report
sync_report(struct e2e_proc *p, const char *opt)
{
    int code = opt ? E2E_ORBIT_RUN(t, p, "sync", opt, t->src_slash, t->dst)
                   : E2E_ORBIT_RUN(t, p, "sync", t->src_slash, t->dst);
    cr_assert_eq(code, 0, "orbit sync exit %d\nstdout:\n%s\nstderr:\n%s", code,
                 p->out, p->err);
    struct e2e_report r = e2e_report(p->out);
    cr_assert(r.found, "no report in:\n%s", p->out);
    return r;
}

/* Counts of --json events by type, for regular files of the tree
 * (paths ending in .dat, .bin) and for everything. */
struct json_counts {
    unsigned lines;
    unsigned skipped_files, started_files, completed_files;
    unsigned skipped_links, started_links;
    uint64_t bytes;
};

static bool
is_file_path(const char *p)
{
    size_t n = strlen(p);
    return n > 4 && (!strcmp(p + n - 4, ".dat") || !strcmp(p + n - 4, ".bin"));
}

static void
count_event(struct json_counts *c, json_t *ev)
{
    const char *type = json_string_value(json_object_get(ev, "event_type"));
    const char *path = json_string_value(json_object_get(ev, "dest_path"));
    cr_assert_not_null(type, "an event without event_type");
    if (strncmp(type, "job_", 4) == 0)
        return; /* the job's own events: no path, totals not per file */
    cr_assert_not_null(path, "a %s event without dest_path", type);
    json_t *bytes = json_object_get(ev, "bytes");
    if (bytes)
        c->bytes += (uint64_t)json_integer_value(bytes);
    bool file = is_file_path(path), link = strncmp(path, "links/", 6) == 0;
    if (!strcmp(type, "file_skipped")) {
        c->skipped_files += file;
        c->skipped_links += link;
    } else if (!strcmp(type, "file_started")) {
        c->started_files += file;
        c->started_links += link;
    } else if (!strcmp(type, "file_completed")) {
        c->completed_files += file;
    }
}

static struct json_counts
parse_ndjson(const char *out)
{
    struct json_counts c = {0};
    const char *line = out;
    while (*line) {
        const char *nl = strchr(line, '\n');
        cr_assert_not_null(nl, "output does not end with a newline");
        json_error_t err;
        json_t *ev = json_loadb(line, (size_t)(nl - line), 0, &err);
        cr_assert_not_null(ev, "line %u is not JSON (%s): %.*s", c.lines + 1,
                           err.text, (int)(nl - line), line);
        cr_assert(json_is_object(ev));
        count_event(&c, ev);
        json_decref(ev);
        c.lines++;
        line = nl + 1;
    }
    return c;
}

Test(cli_sync, unchanged_files_are_skipped_and_nothing_is_sent)
{
    struct e2e_tree tree;
    e2e_make_tree(t->src, 60, 1u << 20, &tree);
    struct e2e_proc p;
    struct e2e_report r = sync_report(&p, NULL);
    cr_assert_eq(r.files_unchanged, 0);
    /* the duplicate's chunks may be found already there */
    cr_assert_geq(r.bytes_sent + r.bytes_dedup, tree.bytes - tree.bytes / 20,
                  "%s", p.out);
    cr_assert_geq(r.bytes_sent, tree.bytes - 600000 - tree.bytes / 20, "%s",
                  p.out);
    e2e_proc_free(&p);
    cr_assert_eq(e2e_compare_trees(t->src, t->dst, E2E_CMP_NO_EXTRA, NULL), 0);

    r = sync_report(&p, NULL);
    cr_expect_eq(r.bytes_sent, 0, "an unchanged tree sent bytes:\n%s", p.out);
    cr_expect_eq(r.bytes_read, 0, "unchanged files were read:\n%s", p.out);
    cr_expect_geq(r.files_unchanged, tree.files,
                  "fewer unchanged than the %u regular files:\n%s", tree.files,
                  p.out);
    cr_expect_eq(r.files_unchanged, tree.files + tree.links,
                 "symlinks are not reported unchanged (%u files, %u links):"
                 "\n%s",
                 tree.files, tree.links, p.out);
    e2e_proc_free(&p);

    int code = E2E_ORBIT_RUN(t, &p, "sync", "--json", t->src_slash, t->dst);
    cr_assert_eq(code, 0, "exit %d\n%s", code, p.err);
    struct json_counts c = parse_ndjson(p.out);
    cr_expect_eq(c.skipped_files, tree.files, "file_skipped events: %u of %u",
                 c.skipped_files, tree.files);
    cr_expect_eq(c.started_files, 0);
    cr_expect_eq(c.completed_files, 0);
    cr_expect_eq(c.bytes, 0, "--json events count %llu bytes sent",
                 (unsigned long long)c.bytes);
    cr_expect_eq(c.skipped_links, tree.links,
                 "unchanged symlinks are sent again (%u of %u skipped)",
                 c.skipped_links, tree.links);
    e2e_proc_free(&p);
    cr_assert_eq(e2e_compare_trees(t->src, t->dst, E2E_CMP_NO_EXTRA, NULL), 0);
}

/*
 * Every mtime changed, no byte: the small files are kept by their digest
 * alone ("kept in place"), nothing is sent, the times are the source's,
 * and the report counts every frame on its wire line.
 */
Test(cli_sync, a_touched_tree_is_kept_in_place_by_digest)
{
    struct e2e_tree tree;
    e2e_make_tree(t->src, 40, 600u << 10, &tree);
    struct e2e_proc p;
    struct e2e_report r = sync_report(&p, NULL);
    e2e_proc_free(&p);
    char cmd[4200];
    snprintf(cmd, sizeof cmd,
             "find '%s' -type f -exec touch -h -d @1500000000 {} +", t->src);
    cr_assert_eq(system(cmd), 0);
    r = sync_report(&p, NULL);
    cr_assert(r.found, "%s", p.out);
    cr_expect_gt(r.files_kept, 0, "nothing kept in place:\n%s", p.out);
    cr_expect_leq(r.files_kept, tree.files);
    cr_expect_eq(r.bytes_sent, 0, "a touched tree sent bytes:\n%s", p.out);
    cr_expect_not_null(strstr(p.out, "\n  wire: "), "no wire line:\n%s", p.out);
    e2e_proc_free(&p);
    cr_assert_eq(e2e_compare_trees(t->src, t->dst, E2E_CMP_NO_EXTRA, NULL), 0,
                 "times or bytes differ after the sync");
}

Test(cli_sync, a_small_change_in_a_big_file_sends_a_small_fraction)
{
    enum { SIZE = 8 << 20, CHANGE = 4096 };
    char f[E2E_PATH * 2];
    snprintf(f, sizeof f, "%s/big.bin", t->src);
    e2e_write_file(f, SIZE, 42, 0644, 1500000000);
    struct e2e_proc p;
    struct e2e_report r = sync_report(&p, NULL);
    cr_assert_geq(r.bytes_sent, SIZE - SIZE / 100);
    e2e_proc_free(&p);

    uint8_t patch[CHANGE];
    e2e_fill(patch, sizeof patch, 4242);
    int fd = open(f, O_WRONLY);
    cr_assert_geq(fd, 0);
    cr_assert_eq(pwrite(fd, patch, sizeof patch, SIZE / 2 - 1000),
                 (ssize_t)sizeof patch);
    close(fd);
    e2e_set_mtime(f, 1500000100, 0, false);

    r = sync_report(&p, NULL);
    cr_expect_gt(r.bytes_sent, 0, "the change was not sent:\n%s", p.out);
    cr_expect_lt(r.bytes_sent, SIZE / 10,
                 "a 4 KiB change cost %llu of %d bytes:\n%s",
                 (unsigned long long)r.bytes_sent, SIZE, p.out);
    cr_expect_geq(r.bytes_dedup, SIZE - SIZE / 10, "%s", p.out);
    e2e_proc_free(&p);
    cr_assert_eq(e2e_compare_trees(t->src, t->dst, E2E_CMP_NO_EXTRA, NULL), 0);
}

static bool
at_dst(const char *rel)
{
    char p[E2E_PATH * 2];
    snprintf(p, sizeof p, "%s/%s", t->dst, rel);
    return e2e_exists(p);
}

Test(cli_sync, delete_removes_extraneous_entries_only_when_asked)
{
    e2e_put(t->src, "keep.txt", 5000, 1, 0644);
    e2e_put(t->src, "dir", E2E_DIR, 0, 0755);
    e2e_put(t->src, "dir/keep2.txt", 7000, 2, 0644);
    e2e_put(t->src, "gone.txt", 3000, 3, 0644);
    struct e2e_proc p;
    sync_report(&p, NULL);
    e2e_proc_free(&p);
    e2e_put(t->dst, "extra.txt", 100, 4, 0644);
    e2e_put(t->dst, "olddir", E2E_DIR, 0, 0755);
    e2e_put(t->dst, "olddir/x", E2E_DIR, 0, 0755);
    e2e_put(t->dst, "olddir/x/y.txt", 100, 5, 0644);
    e2e_put(t->dst, "dir/extra2.txt", 100, 6, 0644);
    char gone[E2E_PATH * 2];
    snprintf(gone, sizeof gone, "%s/gone.txt", t->src);
    cr_assert_eq(unlink(gone), 0);

    sync_report(&p, NULL);
    e2e_proc_free(&p);
    cr_assert(at_dst("extra.txt") && at_dst("olddir/x/y.txt") &&
                  at_dst("dir/extra2.txt") && at_dst("gone.txt"),
              "sync without --delete removed something");

    struct e2e_report r = sync_report(&p, "--delete");
    cr_expect_not(at_dst("extra.txt"));
    cr_expect_not(at_dst("olddir"), "an extraneous directory stayed");
    cr_expect_not(at_dst("dir/extra2.txt"));
    cr_expect_not(at_dst("gone.txt"));
    cr_expect_not_null(strstr(p.out, "deleted"),
                       "the report does not say "
                       "what was deleted:\n%s",
                       p.out);
    cr_expect_eq(r.bytes_sent, 0);
    e2e_proc_free(&p);
    cr_assert_eq(e2e_compare_trees(t->src, t->dst, E2E_CMP_NO_EXTRA, NULL), 0);
}

Test(cli_sync, dry_run_changes_nothing)
{
    struct e2e_tree tree;
    e2e_make_tree(t->src, 30, 300000, &tree);
    struct e2e_proc p;
    int code = E2E_ORBIT_RUN(t, &p, "sync", "--dry-run", t->src_slash, t->dst);
    cr_assert_eq(code, 0, "exit %d\n%s", code, p.err);
    cr_expect_not_null(strstr(p.out, "would send"), "%s", p.out);
    cr_expect_not_null(strstr(p.out, tree.big), "%s", p.out);
    e2e_proc_free(&p);
    cr_assert_not(at_dst("big") || at_dst(tree.big) || at_dst("d0"),
                  "--dry-run wrote to the destination");

    sync_report(&p, NULL);
    e2e_proc_free(&p);
    /* now change a file, add an extraneous one, and dry-run again */
    char f[E2E_PATH * 2];
    snprintf(f, sizeof f, "%s/%s", t->src, tree.big);
    e2e_write_file(f, 300000, 555, 0644, 1500000200);
    e2e_put(t->dst, "extra.txt", 100, 4, 0644);
    code = E2E_ORBIT_RUN(t, &p, "sync", "--dry-run", "--delete", t->src_slash,
                         t->dst);
    cr_assert_eq(code, 0, "exit %d\n%s", code, p.err);
    cr_expect_not_null(strstr(p.out, "would delete"), "%s", p.out);
    e2e_proc_free(&p);
    cr_assert(at_dst("extra.txt"), "--dry-run --delete deleted");
    char d[E2E_PATH * 2];
    snprintf(d, sizeof d, "%s/%s", t->dst, tree.big);
    size_t n = 0;
    uint8_t *got = e2e_read_all(d, &n);
    uint8_t want[300000];
    e2e_fill(want, sizeof want, 7);
    cr_assert_eq(n, sizeof want);
    cr_assert_eq(memcmp(got, want, n), 0, "--dry-run changed %s", tree.big);
    free(got);
}

/* rsync -a replaces an entry whose type changed; so does sync. */
Test(cli_sync, an_entry_that_changed_type_is_replaced)
{
    e2e_put(t->src, "was-file", 1000, 1, 0644);
    e2e_put(t->src, "was-dir", E2E_DIR, 0, 0755);
    e2e_put(t->src, "was-dir/in.txt", 2000, 2, 0644);
    struct e2e_proc p;
    sync_report(&p, NULL);
    e2e_proc_free(&p);
    char a[E2E_PATH * 2];
    snprintf(a, sizeof a, "%s/was-file", t->src);
    cr_assert_eq(unlink(a), 0);
    e2e_put(t->src, "was-file", E2E_DIR, 0, 0755);
    e2e_put(t->src, "was-file/now-inside.txt", 3000, 3, 0644);
    snprintf(a, sizeof a, "%s/was-dir/in.txt", t->src);
    cr_assert_eq(unlink(a), 0);
    snprintf(a, sizeof a, "%s/was-dir", t->src);
    cr_assert_eq(rmdir(a), 0);
    e2e_put(t->src, "was-dir", 4000, 4, 0644);
    int code = E2E_ORBIT_RUN(t, &p, "sync", "--delete", t->src_slash, t->dst);
    cr_expect_eq(code, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", code, p.out,
                 p.err);
    e2e_proc_free(&p);
    cr_assert_eq(e2e_compare_trees(t->src, t->dst, E2E_CMP_NO_EXTRA, NULL), 0,
                 "entries that changed type were not replaced");
}

/* Same size and mtime: sync trusts them, --checksum looks at the bytes. */
Test(cli_sync, checksum_catches_what_size_and_mtime_miss)
{
    char f[E2E_PATH * 2];
    snprintf(f, sizeof f, "%s/same.txt", t->src);
    e2e_put(t->src, "same.txt", 5000, 1, 0644);
    e2e_set_mtime(f, 1500000000, 0, false);
    struct e2e_proc p;
    sync_report(&p, NULL);
    e2e_proc_free(&p);
    e2e_put(t->src, "same.txt", 5000, 2, 0644);
    e2e_set_mtime(f, 1500000000, 0, false); /* same size, same mtime */
    struct e2e_report r = sync_report(&p, NULL);
    cr_expect_eq(r.files_unchanged, 1, "%s", p.out);
    e2e_proc_free(&p);
    cr_assert_neq(e2e_compare_trees(t->src, t->dst, E2E_CMP_QUIET, NULL), 0,
                  "sync without --checksum read the file");
    r = sync_report(&p, "--checksum");
    cr_expect_gt(r.bytes_sent, 0, "%s", p.out);
    e2e_proc_free(&p);
    cr_assert_eq(e2e_compare_trees(t->src, t->dst, E2E_CMP_NO_EXTRA, NULL), 0,
                 "sync --checksum left a different file");
}

/* An excluded path is not the source's to delete: --delete leaves DST's
 * copy alone (as rsync does without --delete-excluded). */
Test(cli_sync, delete_spares_excluded_paths)
{
    e2e_put(t->src, "keep.c", 1000, 1, 0644);
    e2e_put(t->src, "build", E2E_DIR, 0, 0755);
    e2e_put(t->src, "build/out.o", 2000, 2, 0644);
    e2e_put(t->src, "notes.log", 3000, 3, 0644);
    struct e2e_proc p;
    sync_report(&p, NULL);
    e2e_proc_free(&p);
    int code = E2E_ORBIT_RUN(t, &p, "sync", "--delete", "--exclude", "*.log",
                             "--exclude", "build", t->src_slash, t->dst);
    cr_assert_eq(code, 0, "exit %d\n%s", code, p.err);
    e2e_proc_free(&p);
    cr_expect(at_dst("notes.log"), "sync --delete --exclude '*.log' "
                                   "deleted notes.log at DST");
    cr_expect(at_dst("build/out.o"), "sync --delete --exclude build "
                                     "deleted build/ at DST");
    cr_assert_eq(e2e_compare_trees(t->src, t->dst, E2E_CMP_NO_EXTRA, NULL), 0);
}
