/*
 * `orbit serve`, the long-running control plane, end to end on 127.0.0.1:
 * a job submitted with `orbit copy --via` runs to completion and its fate
 * reaches GET /api/jobs/{id} and /api/bulletins; a job that is running when
 * the control plane stops is resumed, from the journal, when it starts
 * again.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "e2e_util.h"

static struct e2e *const t = &e2e_current;

TestSuite(cli_serve, .init = e2e_suite_init, .fini = e2e_suite_fini,
          .timeout = 120);

/* GET path from 127.0.0.1:port; the body (malloc'd) or NULL. */

static void
submitted_id(const char *out, char *id)
{
    const char *p = strstr(out, "submitted job ");
    cr_assert_not_null(p, "no job id in:\n%s", out);
    cr_assert_eq(sscanf(p, "submitted job %16s", id), 1);
}

Test(cli_serve, a_submitted_copy_runs_and_reports)
{
    struct e2e_tree tree;
    e2e_make_tree(t->src, 60, 1u << 20, &tree);
    uint16_t port = e2e_free_port();
    struct e2e_proc serve;
    e2e_serve_start(t, &serve, port);
    char via[64];
    snprintf(via, sizeof via, "http://127.0.0.1:%u", port);
    struct e2e_proc p;
    /* tuning options travel with the job (an unknown one is refused) */
    int code = E2E_ORBIT_RUN(t, &p, "copy", "--via", via, "--reconnect-wait",
                             "5", "--retries", "2", t->src_slash, t->dst);
    cr_assert_eq(code, 0, "exit %d\n%s\n%s", code, p.out, p.err);
    char id[17];
    submitted_id(p.out, id);
    e2e_proc_free(&p);
    free(e2e_wait_job(t, port, id, "completed", 60));
    cr_assert_eq(e2e_compare_trees(t->src, t->dst, 0, NULL), 0);
    /* the control plane hears of the end when it reaps the job's process */
    char *b = NULL;
    for (int i = 0; i < 100 && !(b && strstr(b, "ended: completed")); i++) {
        free(b);
        e2e_nap_ms(50);
        b = e2e_http_get(port, "/api/bulletins?category=job");
    }
    bool ended = b && strstr(b, "ended: completed");
    free(b);
    cr_assert(ended, "no bulletin says the job ended");
    /* a job the control plane refuses is bad usage */
    code = E2E_ORBIT_RUN(t, &p, "sync", "--via", via, t->src_slash, t->dst,
                         "--prioritize", "nonsense");
    cr_assert_neq(code, 0, "%s", p.out);
    e2e_proc_free(&p);
    kill(serve.pid, SIGTERM);
    e2e_wait(&serve, 30);
    cr_assert_eq(serve.code, 0, "%s", serve.err);
    e2e_proc_free(&serve);
}

Test(cli_serve, a_running_job_resumes_after_a_restart)
{
    char big[E2E_PATH * 2];
    e2e_path(t, big, "src/big.bin");
    e2e_write_file(big, 24u << 20, 5, 0644, 1600000000);
    uint16_t port = e2e_free_port();
    struct e2e_proc serve;
    e2e_serve_start(t, &serve, port);
    char via[64];
    snprintf(via, sizeof via, "http://127.0.0.1:%u", port);
    struct e2e_proc p;
    /* 4 MiB/s: about six seconds, long enough to stop the control plane */
    int code = E2E_ORBIT_RUN(t, &p, "copy", "--via", via, "--bwlimit", "4M",
                             t->src_slash, t->dst);
    cr_assert_eq(code, 0, "%s\n%s", p.out, p.err);
    char id[17];
    submitted_id(p.out, id);
    e2e_proc_free(&p);
    e2e_nap_ms(1500);
    kill(serve.pid, SIGTERM);
    e2e_wait(&serve, 30);
    e2e_proc_free(&serve);
    e2e_nap_ms(500); /* the job's process ends with its control plane */
    code = E2E_ORBIT_RUN(t, &p, "status", id);
    cr_assert_eq(code, 0);
    cr_assert(strstr(p.out, "running") != NULL,
              "a job stopped with the control plane stays resumable:\n%s",
              p.out);
    e2e_proc_free(&p);
    e2e_serve_start(t, &serve, port);
    free(e2e_wait_job(t, port, id, "completed", 60));
    cr_assert_eq(e2e_compare_trees(t->src, t->dst, 0, NULL), 0);
    kill(serve.pid, SIGTERM);
    e2e_wait(&serve, 30);
    e2e_proc_free(&serve);
}
