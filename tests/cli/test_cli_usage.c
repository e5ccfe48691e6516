/*
 * The command lines of `orbit` and `orbit-star`: bad usage exits 2 with a
 * message naming what is wrong, --help exits 0 and documents the exit
 * codes, --version prints the version.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "e2e_util.h"

static struct e2e *const t = &e2e_current;

TestSuite(cli_usage, .init = e2e_suite_init, .fini = e2e_suite_fini,
          .timeout = 120);

/* Run argv (NULL-terminated), expect `code`, and `needle` on stderr (or
 * on stdout when want_out). */
static void
expect_run(const char *const *argv, int code, const char *needle, bool want_out)
{
    struct e2e_proc p;
    e2e_spawn(t, &p, argv);
    e2e_wait(&p, 30);
    char cmd[512] = "";
    for (size_t i = 1; argv[i]; i++) {
        strncat(cmd, argv[i], sizeof cmd - strlen(cmd) - 2);
        strcat(cmd, " ");
    }
    cr_expect_eq(p.code, code, "`%s`: exit %d, want %d\nstderr:\n%s", cmd,
                 p.code, code, p.err);
    const char *where = want_out ? p.out : p.err;
    cr_expect_not_null(strstr(where, needle), "`%s`: '%s' not on std%s:\n%s",
                       cmd, needle, want_out ? "out" : "err", where);
    e2e_proc_free(&p);
}

#define RUN(code, needle, ...)                                                 \
    expect_run((const char *const[]){"orbit", __VA_ARGS__, NULL}, (code),      \
               (needle), false)

Test(cli_usage, bad_usage_exits_two_and_says_why)
{
    const char *s = t->src, *d = t->dst;
    expect_run((const char *const[]){"orbit", NULL}, 2, "usage", false);
    RUN(2, "--bogus", "copy", "--bogus", s, d);
    RUN(2, "frobnicate", "frobnicate");
    RUN(2, "usage", "copy", s);
    RUN(2, "usage", "sync", s, d, "third");
    RUN(2, "--jobs", "copy", "--jobs", "0", s, d);
    RUN(2, "--chunk-size", "copy", "--chunk-size", "3000", s, d);
    RUN(2, "--compress", "copy", "--compress", "lz4", s, d);
    RUN(2, "--bwlimit", "copy", "--bwlimit", "10X", s, d);
    RUN(2, "--reconnect-wait", "copy", "--reconnect-wait", "86401", s, d);
    RUN(2, "--retries", "copy", s, d, "--retries");
    RUN(2, "--delete", "copy", "--delete", s, d);
    RUN(2, "usage", "verify", s);
    RUN(2, "usage", "dlq");
    RUN(2, "list, retry or purge", "dlq", "frob");
    RUN(2, "--job", "dlq", "retry");
    RUN(2, "not a job id", "dlq", "list", "--job", "xyz");
    cr_expect_not(e2e_exists(d), "a refused command created DST");
}

/* A destination URL that cannot be parsed is a command-line mistake. */
Test(cli_usage, malformed_star_url_is_bad_usage)
{
    RUN(2, "star://", "copy", "--token-file", "/dev/null", t->src,
        "star://127.0.0.1:99999/x");
    RUN(2, "star://", "copy", "--token-file", "/dev/null", t->src, "star://");
}

Test(cli_usage, missing_source_is_fatal_and_named)
{
    char missing[E2E_PATH];
    e2e_path(t, missing, "no-such-dir");
    RUN(1, missing, "copy", missing, t->dst);
}

Test(cli_usage, help_documents_the_exit_codes)
{
    const char *const forms[][3] = {
        {"orbit", "--help", NULL}, {"orbit", "-h", NULL}, {"orbit", "help"}};
    for (size_t i = 0; i < 3; i++) {
        struct e2e_proc p;
        e2e_spawn(t, &p, forms[i]);
        e2e_wait(&p, 30);
        cr_expect_eq(p.code, 0, "%s: exit %d", forms[i][1], p.code);
        const char *ex = strstr(p.out, "exit codes");
        cr_assert_not_null(ex, "%s does not mention exit codes:\n%s",
                           forms[i][1], p.out);
        static const char *const codes[] = {"0 ", "1 ", "2 ", "3 "};
        for (size_t k = 0; k < 4; k++)
            cr_expect_not_null(strstr(ex, codes[k]),
                               "exit code %.1s undocumented in %s", codes[k],
                               forms[i][1]);
        cr_expect_not_null(strstr(p.out, "copy"));
        cr_expect_not_null(strstr(p.out, "sync"));
        cr_expect_not_null(strstr(p.out, "--delete"));
        e2e_proc_free(&p);
    }
}

static void
expect_version(const char *bin, const char *flag, const char *name)
{
    struct e2e_proc p;
    const char *const argv[] = {bin, flag, NULL};
    e2e_spawn(t, &p, argv);
    e2e_wait(&p, 30);
    cr_expect_eq(p.code, 0, "%s %s: exit %d", name, flag, p.code);
    size_t n = strlen(name);
    cr_expect(strncmp(p.out, name, n) == 0 && p.out[n] == ' ' &&
                  isdigit((unsigned char)p.out[n + 1]) &&
                  strchr(p.out + n, '.') != NULL,
              "%s %s printed '%s'", name, flag, p.out);
    e2e_proc_free(&p);
}

Test(cli_usage, version)
{
    expect_version("orbit", "--version", "orbit");
    expect_version("orbit", "-V", "orbit");
    expect_version(E2E_STAR, "--version", "orbit-star");
}

#define STAR(code, needle, want_out, ...)                                      \
    expect_run((const char *const[]){E2E_STAR, __VA_ARGS__, NULL}, (code),     \
               (needle), (want_out))

Test(cli_usage, orbit_star_command_line)
{
    char tok[E2E_PATH], missing[E2E_PATH];
    e2e_path(t, tok, "t.token");
    e2e_write_bytes(tok, "token-123\n", 10);
    e2e_path(t, missing, "no-root");
    STAR(0, "--root", true, "--help");
    STAR(2, "--bogus", false, "--bogus");
    STAR(2, "--root", false, "--token-file", tok);
    STAR(2, "--placement", false, "--root", t->src, "--token-file", tok,
         "--placement", "nowhere");
    STAR(0, "--round-interval", true, "--help");
    STAR(0, "--health-interval", true, "--help");
    STAR(2, "0 to 1000 milliseconds", false, "--root", t->src, "--token-file",
         tok, "--round-interval", "5000");
    STAR(2, "0 to 3600 seconds", false, "--root", t->src, "--token-file", tok,
         "--health-interval", "soon");
    STAR(2, "1 to 3600 seconds", false, "--root", t->src, "--token-file", tok,
         "--control-interval", "0");
    STAR(0, "--staging-ttl", true, "--help");
    STAR(2, "0 to 87600 hours", false, "--root", t->src, "--token-file", tok,
         "--staging-ttl", "-1");
    STAR(1, missing, false, "--root", missing, "--token-file", tok, "--listen",
         "127.0.0.1:0");
}

/* `orbit demo` copies, edits, syncs and verifies a sample tree in
 * ./demo-out and says so. */
Test(cli_usage, demo_runs_end_to_end)
{
    t->cwd = t->dir;
    struct e2e_proc p;
    e2e_spawn(t, &p, (const char *const[]){E2E_ORBIT, "demo", NULL});
    e2e_wait(&p, 90);
    cr_assert_eq(p.code, 0, "orbit demo: exit %d\nstdout:\n%s\nstderr:\n%s",
                 p.code, p.out, p.err);
    cr_expect_not_null(strstr(p.out, "orbit sync: done"), "%s", p.out);
    cr_expect_not_null(strstr(p.out, "0 differences"), "%s", p.out);
    e2e_proc_free(&p);
    char src[E2E_PATH], dst[E2E_PATH];
    e2e_path(t, src, "demo-out/source");
    e2e_path(t, dst, "demo-out/destination");
    cr_assert_eq(e2e_compare_trees(src, dst, E2E_CMP_NO_EXTRA, NULL), 0);
}
