/*
 * Resuming end to end: a 64 MiB copy slowed by --bwlimit is cut midway by
 * SIGKILL (of the star, or of orbit itself); rerunning the same command
 * completes it, the file is identical, and what the destination already
 * acknowledged is not sent again. A star that restarts while orbit runs
 * is reconnected to.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "e2e_util.h"

static struct e2e *const t = &e2e_current;

TestSuite(cli_resume, .init = e2e_suite_init, .fini = e2e_suite_fini,
          .timeout = 120);

#define BIG     ((size_t)64 << 20)
#define CUT_AT  ((uint64_t)24 << 20) /* stored at the destination */
#define BWLIMIT "16M"

static void
make_big(void)
{
    char f[E2E_PATH * 2];
    snprintf(f, sizeof f, "%s/big.bin", t->src);
    e2e_write_file(f, BIG, 2024, 0644, 1500000000);
}

static void
check_big(const char *dir)
{
    char a[E2E_PATH * 2];
    snprintf(a, sizeof a, "%s/big.bin", dir);
    cr_assert_eq(e2e_compare_trees(t->src, dir, E2E_CMP_NO_EXTRA, NULL), 0,
                 "%s differs from the source", a);
}

/* Wait until `dir` holds at least `bytes` on disk while `p` still runs. */
static void
wait_stored(const char *dir, uint64_t bytes, const struct e2e_proc *p)
{
    for (int i = 0; i < 3000; i++) {
        uint64_t du = e2e_disk_usage(dir);
        if (du >= bytes) {
            cr_log_info("cut with %llu bytes stored", (unsigned long long)du);
            return;
        }
        cr_assert_eq(kill(p->pid, 0), 0, "orbit ended before the cut");
        usleep(10 * 1000);
    }
    cr_assert_fail("%s never held %llu bytes", dir, (unsigned long long)bytes);
}

/* After a cut, dir shows no half-written file: nothing but .orbit. */
static void
nothing_half_written(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return; /* not even created */
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        cr_expect(!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
                      !strcmp(e->d_name, ".orbit"),
                  "'%s' visible in %s after the cut", e->d_name, dir);
    closedir(d);
}

/* The rerun: exit 0, and not much more than what was missing was sent. */
static void
check_resumed(struct e2e_proc *p, const char *dir)
{
    cr_assert_eq(p->code, 0, "rerun: exit %d\nstdout:\n%s\nstderr:\n%s",
                 p->code, p->out, p->err);
    struct e2e_report r = e2e_report(p->out);
    cr_assert(r.found, "%s", p->out);
    cr_log_info("rerun: %llu bytes sent, %llu deduplicated",
                (unsigned long long)r.bytes_sent,
                (unsigned long long)r.bytes_dedup);
    cr_expect_lt(r.bytes_sent, BIG - CUT_AT + (8u << 20),
                 "the rerun sent %llu of %zu bytes although %llu were "
                 "stored before the cut:\n%s",
                 (unsigned long long)r.bytes_sent, BIG,
                 (unsigned long long)CUT_AT, p->out);
    cr_expect_geq(r.bytes_dedup, CUT_AT - (8u << 20), "%s", p->out);
    check_big(dir);
}

/* A copy of big.bin to a star, running, and cut when the star holds
 * CUT_AT bytes: the star is SIGKILLed. */
struct star_run {
    struct e2e_star star;
    char url[128];
    char under[E2E_PATH * 2]; /* where the file lands */
    const char *argv[9];
    struct e2e_proc p;
};

static void
star_run_cut(struct star_run *r)
{
    make_big();
    memset(r, 0, sizeof *r);
    e2e_star_start(t, &r->star, 0);
    snprintf(r->url, sizeof r->url, "star://127.0.0.1:%u/r", r->star.port);
    snprintf(r->under, sizeof r->under, "%s/r", r->star.root);
    const char *v[] = {"orbit",      "copy",         "--bwlimit",
                       BWLIMIT,      "--token-file", r->star.token_file,
                       t->src_slash, r->url,         NULL};
    memcpy(r->argv, v, sizeof v);
    e2e_spawn(t, &r->p, r->argv);
    wait_stored(r->star.root, CUT_AT, &r->p);
    e2e_star_kill(&r->star);
    nothing_half_written(r->under);
}

Test(cli_resume, star_killed_midway_then_rerun_sends_only_the_rest)
{
    struct star_run *r = calloc(1, sizeof *r);
    star_run_cut(r);
    usleep(300 * 1000);
    kill(r->p.pid, SIGINT);
    e2e_wait(&r->p, 30);
    cr_expect_eq(r->p.code, 1, "orbit interrupted: exit %d\n%s", r->p.code,
                 r->p.err);
    cr_expect_not_null(strstr(r->p.err, "rerun"), "%s", r->p.err);
    e2e_proc_free(&r->p);

    e2e_star_start(t, &r->star, r->star.port);
    e2e_spawn(t, &r->p, r->argv);
    e2e_wait(&r->p, 60);
    check_resumed(&r->p, r->under);
    e2e_proc_free(&r->p);
    e2e_star_stop(&r->star);
    free(r);
}

Test(cli_resume, orbit_killed_midway_then_rerun_sends_only_the_rest)
{
    make_big();
    const char *argv[] = {"orbit",      "copy", "--bwlimit", BWLIMIT,
                          t->src_slash, t->dst, NULL};
    struct e2e_proc p;
    e2e_spawn(t, &p, argv);
    wait_stored(t->dst, CUT_AT, &p);
    kill(p.pid, SIGKILL);
    e2e_wait(&p, 30);
    cr_assert_eq(p.code, 128 + SIGKILL);
    nothing_half_written(t->dst);
    e2e_proc_free(&p);

    e2e_spawn(t, &p, argv);
    e2e_wait(&p, 60);
    check_resumed(&p, t->dst);
    e2e_proc_free(&p);
}

Test(cli_resume, orbit_reconnects_to_a_restarted_star)
{
    struct star_run *r = calloc(1, sizeof *r);
    star_run_cut(r);
    e2e_star_start(t, &r->star, r->star.port);
    e2e_wait(&r->p, 60);
    cr_assert_eq(r->p.code, 0, "exit %d\nstdout:\n%s\nstderr:\n%s", r->p.code,
                 r->p.out, r->p.err);
    struct e2e_report rep = e2e_report(r->p.out);
    cr_assert(rep.found, "%s", r->p.out);
    cr_expect_lt(rep.bytes_sent, BIG + (8u << 20),
                 "sent %llu bytes for a %zu-byte file:\n%s",
                 (unsigned long long)rep.bytes_sent, BIG, r->p.out);
    e2e_proc_free(&r->p);
    check_big(r->under);
    e2e_star_stop(&r->star);
    free(r);
}

/* A star lost for good mid-run: the job does not wait for it forever. Its
 * files run out of retries (ORBIT_RETRY_INITIAL_MS=50, 5 retries) and the
 * run ends, exit 1 or 3, well within the breaker's first half-open probe
 * and its failure. */
Test(cli_resume, a_star_lost_for_good_ends_the_run)
{
    struct star_run *r = calloc(1, sizeof *r);
    star_run_cut(r);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    long waited = 0;
    while (kill(r->p.pid, 0) == 0 && waited < 40000) {
        int status;
        if (waitpid(r->p.pid, &status, WNOHANG) == r->p.pid) {
            r->p.code = WIFEXITED(status) ? WEXITSTATUS(status)
                                          : 128 + WTERMSIG(status);
            r->p.pid = 0;
            break;
        }
        usleep(50 * 1000);
        waited += 50;
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    bool ended = r->p.pid == 0;
    if (!ended) {
        kill(r->p.pid, SIGKILL);
        e2e_wait(&r->p, 10);
    }
    cr_expect(ended,
              "orbit still waiting %ld s after its star died; "
              "stderr:\n%s",
              (long)(b.tv_sec - a.tv_sec), r->p.err);
    cr_expect(!ended || r->p.code == 1 || r->p.code == 3, "exit %d", r->p.code);
    e2e_proc_free(&r->p);
    free(r);
}
