/*
 * Kill loops: a paced copy to an orbit-star is cut by SIGKILL at a delay
 * drawn from the seed, of the star (odd seeds) or of orbit (even seeds).
 * Right after the cut no partial file is visible at the destination: every
 * regular file there is identical to its source. The killed process is
 * started again (the star on the same root and port) and the same command,
 * unpaced, completes the tree. The same for `orbit serve`: SIGKILLed while
 * its job runs, started again on the same state directory, it resumes the
 * job to completion.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <dirent.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "e2e_util.h"

static struct e2e *const t = &e2e_current;

TestSuite(cli_kills, .init = e2e_suite_init, .fini = e2e_suite_fini,
          .timeout = 120);

#define SEEDS   6
#define BWLIMIT "8M"

static long
cut_delay_ms(unsigned seed)
{
    return 100 + (long)((seed * 137u) % 900u);
}

/* The source: a few hundred small files, the tree's 3 MiB file, and two
 * more files of 2 to 4 MiB whose contents depend on the seed. */
static void
make_source(unsigned seed)
{
    char x[E2E_PATH * 2];
    snprintf(x, sizeof x, "%s/extra", t->src);
    if (!e2e_exists(x)) {
        struct e2e_tree tree;
        e2e_make_tree(t->src, 300, 3u << 20, &tree);
        e2e_put(t->src, "extra", E2E_DIR, 0, 0755);
    }
    e2e_put(t->src, "extra/x1.bin", (2u << 20) + seed * 131071u, 9000 + seed,
            0644);
    e2e_put(t->src, "extra/x2.bin", (4u << 20) - seed * 65521u, 9100 + seed,
            0600);
}

/* Every regular file under dst/rel is identical to src/rel; returns how
 * many were checked. A top-level .orbit is skipped. */
static unsigned
visible_files_whole(const char *src, const char *dst, const char *rel)
{
    char dpath[E2E_PATH * 2], spath[E2E_PATH * 2];
    snprintf(dpath, sizeof dpath, "%s%s%s", dst, rel[0] ? "/" : "", rel);
    DIR *d = opendir(dpath);
    if (!d)
        return 0;
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (!rel[0] && !strcmp(e->d_name, ".orbit"))
            continue;
        char sub[E2E_PATH];
        snprintf(sub, sizeof sub, "%s%s%s", rel, rel[0] ? "/" : "", e->d_name);
        snprintf(dpath, sizeof dpath, "%s/%s", dst, sub);
        snprintf(spath, sizeof spath, "%s/%s", src, sub);
        struct stat st;
        if (lstat(dpath, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            n += visible_files_whole(src, dst, sub);
            continue;
        }
        if (!S_ISREG(st.st_mode))
            continue;
        n++;
        struct stat ss;
        cr_assert(lstat(spath, &ss) == 0 && S_ISREG(ss.st_mode),
                  "'%s' visible at the destination has no source file", sub);
        size_t na = 0, nb = 0;
        uint8_t *a = e2e_read_all(spath, &na);
        uint8_t *b = e2e_read_all(dpath, &nb);
        cr_assert(na == nb && memcmp(a, b, na) == 0,
                  "'%s' visible after the cut is partial: %zu of %zu "
                  "bytes, or other bytes",
                  sub, nb, na);
        free(a);
        free(b);
    }
    closedir(d);
    return n;
}

static bool
still_running(pid_t pid)
{
    int status;
    return waitpid(pid, &status, WNOHANG) == 0;
}

/* One seed against a star of its own (root star-SEED). */
static void
star_seed(unsigned seed)
{
    struct e2e_star s;
    memset(&s, 0, sizeof s);
    s.starts = seed * 10; /* star logs of their own: star{seed}{n}.log */
    e2e_path(t, s.root, "star-%u", seed);
    e2e_path(t, s.token_file, "star.token");
    e2e_mkdir(s.root, 0755);
    const char tok[] = E2E_TOKEN "\n";
    e2e_write_bytes(s.token_file, tok, sizeof tok - 1);
    e2e_star_start(t, &s, 0);
    make_source(seed);

    char url[128], under[E2E_PATH * 2];
    snprintf(url, sizeof url, "star://127.0.0.1:%u/d", s.port);
    snprintf(under, sizeof under, "%s/d", s.root);
    const char *paced[] = {
        "orbit",      "copy",       "--bwlimit", BWLIMIT, "--token-file",
        s.token_file, t->src_slash, url,         NULL};
    struct e2e_proc p;
    e2e_spawn(t, &p, paced);
    long delay = cut_delay_ms(seed);
    e2e_nap_ms(delay);
    cr_assert(still_running(p.pid), "seed %u: orbit ended before the cut",
              seed);
    bool star_killed = seed % 2 == 1;
    if (star_killed) {
        e2e_star_kill(&s);
    } else {
        kill(p.pid, SIGKILL);
        e2e_wait(&p, 30);
        cr_assert_eq(p.code, 128 + SIGKILL);
    }
    unsigned whole = visible_files_whole(t->src, under, "");
    cr_log_info("seed %u: %s killed after %ld ms, %u whole files visible", seed,
                star_killed ? "orbit-star" : "orbit", delay, whole);
    if (star_killed) {
        /* The first run has no star now: interrupt it, as a user would. */
        kill(p.pid, SIGINT);
        e2e_wait(&p, 30);
        cr_expect(p.code == 1, "seed %u: orbit interrupted: exit %d\n%s", seed,
                  p.code, p.err);
        e2e_star_start(t, &s, s.port);
    }
    e2e_proc_free(&p);

    const char *rerun[] = {
        "orbit", "copy", "--token-file", s.token_file, t->src_slash, url, NULL};
    e2e_spawn(t, &p, rerun);
    e2e_wait(&p, 60);
    cr_assert_eq(p.code, 0, "seed %u: rerun exit %d\nstdout:\n%s\nstderr:\n%s",
                 seed, p.code, p.out, p.err);
    e2e_proc_free(&p);
    cr_assert_eq(e2e_compare_trees(t->src, under, E2E_CMP_NO_EXTRA, NULL), 0,
                 "seed %u: the destination differs from the source", seed);
    e2e_star_stop(&s);
}

Test(cli_kills, star_killed_at_seeded_moments)
{
    for (unsigned seed = 1; seed <= SEEDS; seed += 2)
        star_seed(seed);
}

Test(cli_kills, orbit_killed_at_seeded_moments)
{
    for (unsigned seed = 2; seed <= SEEDS; seed += 2)
        star_seed(seed);
}

/* ---- orbit serve ---- */

/* The job processes of `orbit serve` pid (its children), at most cap. */
static size_t
serve_children(pid_t pid, pid_t *out, size_t cap)
{
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    DIR *d = opendir(dir);
    cr_assert_not_null(d, "%s", dir);
    size_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[128];
        snprintf(path, sizeof path, "%s/%s/children", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        int c;
        while (n < cap && fscanf(f, "%d", &c) == 1)
            out[n++] = (pid_t)c;
        fclose(f);
    }
    closedir(d);
    return n;
}

/* Submit the paced copy, let it run, SIGKILL `orbit serve`, and check
 * nothing partial is visible; *jobs gets the job processes it left. */
static void
serve_cut(uint16_t port, char *id, pid_t *jobs, size_t *njobs)
{
    struct e2e_proc serve;
    e2e_serve_start(t, &serve, port);
    char via[64];
    snprintf(via, sizeof via, "http://127.0.0.1:%u", port);
    struct e2e_proc p;
    int code = E2E_ORBIT_RUN(t, &p, "copy", "--via", via, "--bwlimit", "4M",
                             t->src_slash, t->dst);
    cr_assert_eq(code, 0, "%s\n%s", p.out, p.err);
    const char *at = strstr(p.out, "submitted job ");
    cr_assert_not_null(at, "no job id in:\n%s", p.out);
    cr_assert_eq(sscanf(at, "submitted job %16s", id), 1);
    e2e_proc_free(&p);
    free(e2e_wait_job(t, port, id, "running", 20));
    e2e_nap_ms(cut_delay_ms(7));
    *njobs = serve_children(serve.pid, jobs, 4);
    cr_assert_geq(*njobs, 1, "orbit serve runs no job process");
    kill(serve.pid, SIGKILL);
    e2e_wait(&serve, 30);
    cr_assert_eq(serve.code, 128 + SIGKILL);
    e2e_proc_free(&serve);
    unsigned whole = visible_files_whole(t->src, t->dst, "");
    cr_log_info("serve killed: %u whole files visible", whole);
}

static void
serve_resumes(uint16_t port, const char *id)
{
    struct e2e_proc serve;
    e2e_serve_start(t, &serve, port);
    free(e2e_wait_job(t, port, id, "completed", 60));
    cr_assert_eq(e2e_compare_trees(t->src, t->dst, E2E_CMP_NO_EXTRA, NULL), 0,
                 "the resumed job's destination differs from the source");
    kill(serve.pid, SIGTERM);
    e2e_wait(&serve, 30);
    cr_expect_eq(serve.code, 0, "%s", serve.err);
    e2e_proc_free(&serve);
}

/* SIGKILLed, `orbit serve` leaves its job process to stop by itself
 * (PR_SET_PDEATHSIG gives it SIGTERM; it records the job resumable). Once
 * that process is gone a new `orbit serve` resumes the job. */
Test(cli_kills, serve_killed_mid_job_resumes_it_on_restart)
{
    make_source(7);
    uint16_t port = e2e_free_port();
    char id[17];
    pid_t jobs[4];
    size_t njobs = 0;
    serve_cut(port, id, jobs, &njobs);
    for (size_t i = 0; i < njobs; i++) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/%d", (int)jobs[i]);
        int ms = 0;
        while (e2e_exists(proc) && ms < 20000) {
            e2e_nap_ms(10);
            ms += 10;
        }
        cr_assert_not(e2e_exists(proc),
                      "job process %d still there after "
                      "its control plane died",
                      (int)jobs[i]);
        cr_log_info("the job process %d ended %d ms after the kill",
                    (int)jobs[i], ms);
    }
    serve_resumes(port, id);
}

/* `orbit serve` started again at once, while the job process of the
 * killed one is still stopping and holds the destination: the new job
 * process waits for the destination instead of failing (once gap 7). */
Test(cli_kills, serve_restarted_at_once_resumes_the_job)
{
    make_source(7);
    uint16_t port = e2e_free_port();
    char id[17];
    pid_t jobs[4];
    size_t njobs = 0;
    serve_cut(port, id, jobs, &njobs);
    serve_resumes(port, id);
}
