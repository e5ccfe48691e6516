/*
 * What the job journal gives the command line, end to end: `orbit dlq
 * list` shows a run's dead letters, `orbit dlq retry --job ID` sends them
 * once their cause is fixed and forgets them, `orbit status` shows the
 * job; a rerun after SIGKILL does not read again the files the journal
 * records as done.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "e2e_util.h"

static struct e2e *const t = &e2e_current;

TestSuite(cli_journal, .init = e2e_suite_init, .fini = e2e_suite_fini,
          .timeout = 120);

/* The job id from the report's "orbit dlq retry --job ID" line. */
static void
job_id_of(const char *out, char id[32])
{
    const char *p = strstr(out, "--job ");
    cr_assert_not_null(p, "no job id in the report:\n%s", out);
    cr_assert_eq(sscanf(p, "--job %31s", id), 1);
}

static void
run_expect(int code, const char *needle, const char *const *argv)
{
    struct e2e_proc p;
    e2e_spawn(t, &p, argv);
    e2e_wait(&p, 60);
    cr_assert_eq(p.code, code, "`%s %s`: exit %d\nstdout:\n%s\nstderr:\n%s",
                 argv[1], argv[2] ? argv[2] : "", p.code, p.out, p.err);
    if (needle)
        cr_expect_not_null(strstr(p.out, needle), "`%s %s`: '%s' not in:\n%s",
                           argv[1], argv[2] ? argv[2] : "", needle, p.out);
    e2e_proc_free(&p);
}

Test(cli_journal, dlq_list_then_retry_once_the_cause_is_fixed)
{
    struct e2e_tree tree;
    e2e_make_tree(t->src, 20, 100000, &tree);
    e2e_add_unreadable(t);
    char p1[E2E_PATH * 2];
    struct e2e_proc p;
    int code = E2E_ORBIT_RUN(t, &p, "copy", t->src_slash, t->dst);
    cr_assert_eq(code, 3, "exit %d\n%s\n%s", code, p.out, p.err);
    char id[32];
    job_id_of(p.out, id);
    e2e_proc_free(&p);

    run_expect(0, "bad/secret.bin",
               (const char *const[]){"orbit", "dlq", "list", NULL});
    run_expect(
        0, "bad/locked",
        (const char *const[]){"orbit", "dlq", "list", "--job", id, NULL});
    run_expect(0, id, (const char *const[]){"orbit", "status", NULL});
    run_expect(0, "partial",
               (const char *const[]){"orbit", "status", id, NULL});

    /* fix the cause, retry */
    snprintf(p1, sizeof p1, "%s/bad/secret.bin", t->src);
    cr_assert_eq(chmod(p1, 0644), 0);
    snprintf(p1, sizeof p1, "%s/bad/locked", t->src);
    cr_assert_eq(chmod(p1, 0755), 0);
    run_expect(
        0, NULL,
        (const char *const[]){"orbit", "dlq", "retry", "--job", id, NULL});
    run_expect(
        0, "no dead letters",
        (const char *const[]){"orbit", "dlq", "list", "--job", id, NULL});
    /* a dead-lettered directory's retry brings its whole subtree */
    cr_assert_eq(e2e_compare_trees(t->src, t->dst, E2E_CMP_NO_EXTRA, NULL), 0,
                 "after dlq retry the tree still differs");
}

/* Milliseconds on the monotonic clock. */
static long
now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum { NFILES = 96, FSIZE = 512 << 10, SETTLE_MS = 1500 };

/* Poll DST until NFILES / 4 files have been in place for SETTLE_MS (the
 * journal records finished files at least once a second); returns how many
 * have. */
static unsigned
wait_settled(const struct e2e_proc *p)
{
    long seen[NFILES] = {0};
    char f[E2E_PATH * 2];
    for (int i = 0; i < 3000; i++) {
        usleep(10 * 1000);
        cr_assert_eq(kill(p->pid, 0), 0, "orbit ended before the cut");
        unsigned settled = 0;
        long now = now_ms();
        for (unsigned k = 0; k < NFILES; k++) {
            snprintf(f, sizeof f, "%s/f%02u.bin", t->dst, k);
            if (!seen[k] && e2e_exists(f))
                seen[k] = now;
            settled += seen[k] && now - seen[k] >= SETTLE_MS;
        }
        if (settled >= NFILES / 4)
            return settled;
    }
    cr_assert_fail("files never settled at the destination");
    return 0;
}

/* 96 files of 512 KiB under --bwlimit, SIGKILL once a quarter of them have
 * been in place long enough to be journaled, rerun: those are neither read
 * nor sent again. */
Test(cli_journal, rerun_after_sigkill_skips_files_already_done)
{
    char f[E2E_PATH * 2];
    for (unsigned i = 0; i < NFILES; i++) {
        snprintf(f, sizeof f, "%s/f%02u.bin", t->src, i);
        e2e_write_file(f, FSIZE, 300 + i, 0644, 1500000000);
    }
    const char *argv[] = {"orbit",      "copy", "--bwlimit", "12M",
                          t->src_slash, t->dst, NULL};
    struct e2e_proc p;
    e2e_spawn(t, &p, argv);
    unsigned settled = wait_settled(&p);
    kill(p.pid, SIGKILL);
    e2e_wait(&p, 30);
    e2e_proc_free(&p);
    cr_log_info("cut with %u files settled", settled);

    e2e_spawn(t, &p, argv);
    e2e_wait(&p, 60);
    cr_assert_eq(p.code, 0, "rerun: exit %d\n%s\n%s", p.code, p.out, p.err);
    struct e2e_report r = e2e_report(p.out);
    cr_assert(r.found, "%s", p.out);
    cr_expect_geq(r.files_unchanged, settled,
                  "%u files were done, the rerun skipped %llu:\n%s", settled,
                  (unsigned long long)r.files_unchanged, p.out);
    cr_expect_leq(r.bytes_read, (uint64_t)(NFILES - settled) * FSIZE,
                  "the rerun read files already done:\n%s", p.out);
    e2e_proc_free(&p);
    cr_assert_eq(e2e_compare_trees(t->src, t->dst, E2E_CMP_NO_EXTRA, NULL), 0);
    run_expect(0, "completed", (const char *const[]){"orbit", "status", NULL});
}
