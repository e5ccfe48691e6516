/*
 * `orbit copy` to a networked `orbit-star` on 127.0.0.1, end to end: the
 * tree lands under ROOT/PATH intact, the star drains on SIGTERM; a wrong
 * token, a missing token and a closed port end with exit 1 and a message
 * that says what went wrong; `orbit verify` against the star finds every
 * difference made behind its back.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "e2e_util.h"

static struct e2e *const t = &e2e_current;

TestSuite(cli_star, .init = e2e_suite_init, .fini = e2e_suite_fini,
          .timeout = 120);

static void
star_url(char *buf, size_t cap, uint16_t port, const char *path)
{
    snprintf(buf, cap, "star://127.0.0.1:%u/%s", port, path);
}

Test(cli_star, copy_lands_under_the_star_root)
{
    struct e2e_tree tree;
    e2e_make_tree(t->src, 120, 3u << 20, &tree);
    struct e2e_star star = {0};
    e2e_star_start(t, &star, 0);
    char url[128], under[E2E_PATH * 2];
    star_url(url, sizeof url, star.port, "sub/dir");
    struct e2e_proc p;
    int code = E2E_ORBIT_RUN(t, &p, "copy", "--token-file", star.token_file,
                             t->src_slash, url);
    cr_assert_eq(code, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", code, p.out,
                 p.err);
    struct e2e_report r = e2e_report(p.out);
    cr_assert(r.found, "%s", p.out);
    cr_expect_eq(r.files_dead, 0);
    e2e_proc_free(&p);
    snprintf(under, sizeof under, "%s/sub/dir", star.root);
    cr_assert_eq(e2e_compare_trees(t->src, under, E2E_CMP_NO_EXTRA, NULL), 0,
                 "the tree under the star's root differs");
    code = E2E_ORBIT_RUN(t, &p, "verify", t->src, under);
    cr_expect_eq(code, 0, "verify: exit %d\n%s", code, p.out);
    e2e_proc_free(&p);
    /* a sync of the unchanged tree over the network sends nothing */
    code = E2E_ORBIT_RUN(t, &p, "sync", "--token-file", star.token_file,
                         t->src_slash, url);
    cr_assert_eq(code, 0, "exit %d\n%s", code, p.err);
    r = e2e_report(p.out);
    cr_assert(r.found, "%s", p.out);
    cr_expect_eq(r.bytes_sent, 0, "%s", p.out);
    e2e_proc_free(&p);
    e2e_star_stop(&star);
}

/* verify SRC star://...: the star hashes what it holds, orbit the source,
 * and a changed byte, a deleted file and files added at the star are each
 * named (exit 3); a missing token and a missing PATH are clear too. */
Test(cli_star, verify_against_a_star_names_every_difference)
{
    struct e2e_tree tree;
    e2e_make_tree(t->src, 60, 1u << 20, &tree);
    struct e2e_star star = {0};
    e2e_star_start(t, &star, 0);
    char url[128], under[E2E_PATH * 2], path[E2E_PATH * 3];
    star_url(url, sizeof url, star.port, "v");
    struct e2e_proc p;
    int code = E2E_ORBIT_RUN(t, &p, "copy", "--token-file", star.token_file,
                             t->src_slash, url);
    cr_assert_eq(code, 0, "copy: exit %d\n%s", code, p.err);
    e2e_proc_free(&p);
    code = E2E_ORBIT_RUN(t, &p, "verify", "--token-file", star.token_file,
                         t->src, url);
    cr_assert_eq(code, 0, "verify: exit %d\n%s\n%s", code, p.out, p.err);
    cr_assert(strstr(p.out, " 0 differences"), "%s", p.out);
    e2e_proc_free(&p);

    /* one byte of the big file, a deleted duplicate, an added tree */
    snprintf(under, sizeof under, "%s/v", star.root);
    snprintf(path, sizeof path, "%s/%s", under, tree.big);
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    fseek(f, 12345, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 12345, SEEK_SET);
    fputc(c ^ 0x20, f);
    fclose(f);
    snprintf(path, sizeof path, "%s/%s", under, tree.dup_b);
    cr_assert_eq(unlink(path), 0);
    snprintf(path, sizeof path, "%s/added", under);
    e2e_mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/added/inside.txt", under);
    e2e_write_bytes(path, "x", 1);
    code = E2E_ORBIT_RUN(t, &p, "verify", "--token-file", star.token_file,
                         t->src, url);
    cr_assert_eq(code, 3, "verify: exit %d\n%s\n%s", code, p.out, p.err);
    char line[256];
    snprintf(line, sizeof line, "content    %s\n", tree.big);
    cr_expect(strstr(p.out, line), "no '%s' in:\n%s", line, p.out);
    snprintf(line, sizeof line, "missing    %s\n", tree.dup_b);
    cr_expect(strstr(p.out, line), "no '%s' in:\n%s", line, p.out);
    cr_expect(strstr(p.out, "extra      added\n"), "%s", p.out);
    cr_expect_null(
        strstr(p.out, "added/inside.txt"),
        "an extra directory's entries are not listed one by one:\n%s", p.out);
    cr_expect(strstr(p.out, " 3 differences"), "%s", p.out);
    e2e_proc_free(&p);

    /* no token: exit 1 and why; a PATH the star does not have: all missing */
    code = E2E_ORBIT_RUN(t, &p, "verify", t->src, url);
    cr_expect_eq(code, 1, "exit %d\n%s", code, p.err);
    cr_expect(strstr(p.err, "needs a token"), "%s", p.err);
    e2e_proc_free(&p);
    star_url(url, sizeof url, star.port, "nothing-here");
    code = E2E_ORBIT_RUN(t, &p, "verify", "--token-file", star.token_file,
                         t->src, url);
    cr_expect_eq(code, 3, "exit %d\n%s", code, p.err);
    e2e_proc_free(&p);
    e2e_star_stop(&star);
}

/* The star's tuning options reach it: sync rounds not spaced at all and
 * no periodic disk sampling, and a copy still arrives whole. */
Test(cli_star, tuning_options_are_taken)
{
    e2e_make_tree(t->src, 40, 1u << 20, &(struct e2e_tree){0});
    struct e2e_star star = {
        .extra = {"--round-interval", "0", "--health-interval", "0"}};
    e2e_star_start(t, &star, 0);
    size_t n = 0;
    char *log = (char *)e2e_read_all(star.log, &n);
    cr_assert(strstr(log, "busy rounds spaced 0 ms, disk checked every 0 s"),
              "%s", log);
    free(log);
    char url[128], under[E2E_PATH * 2];
    star_url(url, sizeof url, star.port, "tuned");
    struct e2e_proc p;
    int code = E2E_ORBIT_RUN(t, &p, "copy", "--token-file", star.token_file,
                             t->src_slash, url);
    cr_assert_eq(code, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", code, p.out,
                 p.err);
    e2e_proc_free(&p);
    snprintf(under, sizeof under, "%s/tuned", star.root);
    cr_assert_eq(e2e_compare_trees(t->src, under, E2E_CMP_NO_EXTRA, NULL), 0);
    e2e_star_stop(&star);
}

Test(cli_star, wrong_token_is_refused_with_a_clear_message)
{
    e2e_make_tree(t->src, 10, 1000, &(struct e2e_tree){0});
    struct e2e_star star = {0};
    e2e_star_start(t, &star, 0);
    char bad[E2E_PATH], url[128], under[E2E_PATH * 2];
    e2e_path(t, bad, "wrong.token");
    e2e_write_bytes(bad, "not-the-token\n", 14);
    star_url(url, sizeof url, star.port, "w");
    struct e2e_proc p;
    int code =
        E2E_ORBIT_RUN(t, &p, "copy", "--token-file", bad, t->src_slash, url);
    cr_assert_eq(code, 1, "exit %d\n%s", code, p.err);
    cr_expect_not_null(strstr(p.err, "authentication"),
                       "the message does not say authentication failed:\n%s",
                       p.err);
    cr_expect_not_null(strstr(p.err, url), "the message does not name %s:\n%s",
                       url, p.err);
    e2e_proc_free(&p);
    snprintf(under, sizeof under, "%s/w", star.root);
    cr_expect_not(e2e_exists(under), "a refused client wrote to the star");

    /* no token at all */
    code = E2E_ORBIT_RUN(t, &p, "copy", t->src_slash, url);
    cr_assert_eq(code, 1, "exit %d\n%s", code, p.err);
    cr_expect_not_null(strstr(p.err, "token"), "%s", p.err);
    e2e_proc_free(&p);
    /* the right token from ORBIT_TOKEN */
    t->token_env = E2E_TOKEN;
    E2E_ORBIT_OK(t, "copy", t->src_slash, url);
    cr_assert_eq(e2e_compare_trees(t->src, under, E2E_CMP_NO_EXTRA, NULL), 0);
    e2e_star_stop(&star);
}

Test(cli_star, unreachable_star_exits_one_promptly)
{
    e2e_make_tree(t->src, 5, 1000, &(struct e2e_tree){0});
    char tok[E2E_PATH], url[128];
    e2e_path(t, tok, "any.token");
    e2e_write_bytes(tok, "some-token\n", 11);
    star_url(url, sizeof url, e2e_free_port(), "x");
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    struct e2e_proc p;
    int code =
        E2E_ORBIT_RUN(t, &p, "copy", "--token-file", tok, t->src_slash, url);
    clock_gettime(CLOCK_MONOTONIC, &b);
    cr_assert_eq(code, 1, "exit %d\n%s", code, p.err);
    cr_expect_not_null(strstr(p.err, "cannot reach"), "%s", p.err);
    cr_expect_lt(b.tv_sec - a.tv_sec, 20, "took %ld s to give up",
                 (long)(b.tv_sec - a.tv_sec));
    e2e_proc_free(&p);
}

/* A star SIGKILLed mid-copy that never comes back: with --reconnect-wait 1
 * the file waits for it one second, spends its retry, and ends as a dead
 * letter naming the star (exit 3) in seconds, not after the default 20;
 * the small file finished before the cut stays done. */
Test(cli_star, a_lost_star_is_waited_for_reconnect_wait_seconds)
{
    e2e_put(t->src, "small.txt", 5000, 1, 0644);
    e2e_put(t->src, "big.bin", 10u << 20, 2, 0644);
    struct e2e_star star = {0};
    e2e_star_start(t, &star, 0);
    char url[128];
    star_url(url, sizeof url, star.port, "d");
    const char *argv[] = {"orbit",
                          "copy",
                          "--bwlimit",
                          "1M",
                          "--reconnect-wait",
                          "1",
                          "--retries",
                          "1",
                          "--token-file",
                          star.token_file,
                          t->src_slash,
                          url,
                          NULL};
    struct e2e_proc p;
    e2e_spawn(t, &p, argv);
    e2e_nap_ms(1500); /* the 10 MB file is on its way at 1 MB/s */
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    e2e_star_kill(&star);
    e2e_wait(&p, 60);
    clock_gettime(CLOCK_MONOTONIC, &b);
    cr_assert_eq(p.code, 3, "exit %d\nstdout:\n%s\nstderr:\n%s", p.code, p.out,
                 p.err);
    struct e2e_report r = e2e_report(p.out);
    cr_assert(r.found, "%s", p.out);
    cr_expect_eq(r.files_dead, 1, "%s", p.out);
    cr_expect_not_null(strstr(p.out, "big.bin"), "%s", p.out);
    cr_expect_lt(b.tv_sec - a.tv_sec, 15, "took %ld s after the star died",
                 (long)(b.tv_sec - a.tv_sec));
    e2e_proc_free(&p);
}

Test(cli_star, sync_delete_over_the_network)
{
    struct e2e_tree tree;
    e2e_make_tree(t->src, 30, 200000, &tree);
    struct e2e_star star = {0};
    e2e_star_start(t, &star, 0);
    char url[128], under[E2E_PATH * 2], x[E2E_PATH * 3];
    star_url(url, sizeof url, star.port, "mirror");
    snprintf(under, sizeof under, "%s/mirror", star.root);
    E2E_ORBIT_OK(t, "sync", "--token-file", star.token_file, t->src_slash, url);
    e2e_put(under, "extra.txt", 10, 1, 0644);
    e2e_put(under, "olddir", E2E_DIR, 0, 0755);
    e2e_put(under, "olddir/y", 10, 2, 0644);
    snprintf(x, sizeof x, "%s/%s", t->src, tree.dup_b);
    cr_assert_eq(unlink(x), 0);
    E2E_ORBIT_OK(t, "sync", "--delete", "--token-file", star.token_file,
                 t->src_slash, url);
    cr_assert_eq(e2e_compare_trees(t->src, under, E2E_CMP_NO_EXTRA, NULL), 0,
                 "sync --delete over star:// left the trees different");
    e2e_star_stop(&star);
}

/* A symlink the star holds cannot lead a later copy outside its root: a
 * directory of the same name is refused by copy, replaced by sync, and
 * nothing lands where the link points. */
Test(cli_star, a_symlink_at_the_star_does_not_lead_outside_its_root)
{
    char s1[E2E_PATH], s2[E2E_PATH], out[E2E_PATH], link[E2E_PATH * 2];
    char sl[E2E_PATH], url[128], under[E2E_PATH * 2];
    e2e_mkdir(e2e_path(t, s1, "one"), 0755);
    e2e_mkdir(e2e_path(t, s2, "two"), 0755);
    e2e_mkdir(e2e_path(t, out, "outside"), 0755);
    snprintf(link, sizeof link, "%s/x", s1);
    cr_assert_eq(symlink(out, link), 0);
    e2e_put(s2, "x", E2E_DIR, 0, 0755);
    e2e_put(s2, "x/planted.txt", 100, 1, 0644);
    struct e2e_star star = {0};
    e2e_star_start(t, &star, 0);
    star_url(url, sizeof url, star.port, "area");
    snprintf(sl, sizeof sl, "%s/", s1);
    E2E_ORBIT_OK(t, "copy", "--token-file", star.token_file, sl, url);
    snprintf(sl, sizeof sl, "%s/", s2);
    struct e2e_proc p;
    int code =
        E2E_ORBIT_RUN(t, &p, "copy", "--token-file", star.token_file, sl, url);
    cr_expect(code == 0 || code == 3, "exit %d\n%s", code, p.err);
    e2e_proc_free(&p);
    snprintf(link, sizeof link, "%s/planted.txt", out);
    cr_assert_not(e2e_exists(link), "a copy wrote through the star's symlink");
    E2E_ORBIT_OK(t, "sync", "--token-file", star.token_file, sl, url);
    cr_assert_not(e2e_exists(link), "a sync wrote through the star's symlink");
    snprintf(under, sizeof under, "%s/area", star.root);
    cr_assert_eq(e2e_compare_trees(s2, under, E2E_CMP_NO_EXTRA, NULL), 0);
    e2e_star_stop(&star);
}
