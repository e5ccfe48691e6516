/*
 * Allocation-failure paths of the journal, walker, prioritizers, bulletin
 * board and HTTP API: strong definitions of their allocation seams fail the
 * Nth allocation. Each scenario runs with N = 0, 1, 2, ... until it
 * completes without an injected failure; every run must succeed or report
 * ORBIT_ENOMEM and leak nothing (the sanitizer build checks leaks at exit).
 * Allocations inside LMDB, libevent and jansson are theirs, not seamed.
 */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "connect_test.h"
#include "orbit/api.h"
#include "orbit/bulletin.h"
#include "orbit/error.h"
#include "orbit/journal.h"
#include "orbit/prio.h"
#include "orbit/walker.h"

/* Test-process state only: each Criterion test runs in its own process. */
static long fail_at = -1;
static long alloc_calls;

static bool
should_fail(void)
{
    return fail_at >= 0 && alloc_calls++ == fail_at;
}

#define SEAM(prefix)                                                           \
    void *prefix##_malloc(size_t size);                                        \
    void *prefix##_calloc(size_t n, size_t size);                              \
    void *prefix##_malloc(size_t size)                                         \
    {                                                                          \
        return should_fail() ? NULL : malloc(size);                            \
    }                                                                          \
    void *prefix##_calloc(size_t n, size_t size)                               \
    {                                                                          \
        return should_fail() ? NULL : calloc(n, size);                         \
    }

SEAM(journal)
SEAM(walker)
SEAM(prio)
SEAM(bulletin)
SEAM(api)

void *journal_realloc(void *p, size_t size);
void *walker_realloc(void *p, size_t size);

void *
journal_realloc(void *p, size_t size)
{
    return should_fail() ? NULL : realloc(p, size);
}

void *
walker_realloc(void *p, size_t size)
{
    return should_fail() ? NULL : realloc(p, size);
}

static void
sweep(const char *what, int (*scenario)(void))
{
    for (long n = 0; n < 20000; n++) {
        fail_at = n;
        alloc_calls = 0;
        int rc = scenario();
        long made = alloc_calls;
        fail_at = -1;
        cr_assert(rc == 0 || rc == ORBIT_ENOMEM, "%s: failing alloc %ld: %s",
                  what, n, orbit_strerror(rc));
        cr_assert(n > 0 || rc == ORBIT_ENOMEM, "%s: seam not used", what);
        if (n >= made) {
            cr_assert_eq(rc, 0, "%s: no failure injected", what);
            return;
        }
    }
    cr_assert_fail("%s: too many allocations", what);
}

static int
journal_scenario(void)
{
    char *dir = connect_test_tmpdir("jalloc");
    struct journal *j = NULL;
    const char *srcs[] = {"/a", "/b"};
    struct journal_spec spec = {JOURNAL_KIND_SYNC, srcs, 2, "/dst", NULL};
    char id[JOURNAL_ID_LEN + 1];
    struct journal_file f = {.size = 1, .state = JOURNAL_FILE_DONE};
    struct dlq_failure d = {.key = "k", .reason = DLQ_PERMANENT_ERROR};
    struct journal_job *jobs = NULL, job;
    struct dlq_entry *dead = NULL;
    size_t n = 0, nd = 0;
    int rc = journal_open(dir, &j);
    if (rc == 0)
        rc = journal_job_create(j, &spec, id);
    if (rc == 0)
        rc = journal_batch_begin(j);
    for (int i = 0; rc == 0 && i < 3; i++) {
        char p[16];
        snprintf(p, sizeof p, "f%d", i);
        rc = journal_file_put(j, id, p, &f);
    }
    if (rc == 0)
        rc = journal_batch_commit(j);
    d.job_id = id;
    if (rc == 0)
        rc = journal_dead_add(j, &d);
    if (rc == 0)
        rc = journal_dead_list(j, id, &dead, &nd);
    dlq_entries_free(dead, nd);
    if (rc == 0)
        rc = journal_job_list(j, &jobs, &n);
    journal_jobs_free(jobs, n);
    if (rc == 0 && (rc = journal_job_get(j, id, &job)) == 0)
        journal_job_release(&job);
    if (rc == 0)
        rc = journal_job_set_state(j, id, JOURNAL_JOB_COMPLETED);
    if (rc == 0)
        rc = journal_job_delete(j, id);
    journal_close(j);
    connect_test_rmtree(dir);
    free(dir);
    return rc;
}

Test(connect_alloc, journal)
{
    sweep("journal", journal_scenario);
}

static char *tree;

static int
walker_scenario(void)
{
    const char *ex[] = {"*.tmp"}, *in[] = {"d*", "*.txt"};
    struct walker_opts o;
    struct walker *w = NULL;
    struct walker_entry e;
    walker_opts_init(&o);
    o.excludes = ex;
    o.nexcludes = 1;
    o.includes = in;
    o.nincludes = 2;
    int rc = walker_new(tree, &o, &w), r;
    while (rc == 0 && (r = walker_next(w, &e)) != ORBIT_ENOENT)
        if (r != 0)
            rc = r;
    walker_free(w);
    return rc;
}

Test(connect_alloc, walker)
{
    tree = connect_test_tmpdir("walloc");
    char rel[64] = "d";
    connect_test_mkdir(tree, rel);
    /* Deeper than the first frame array, so it has to grow. */
    for (int i = 0; i < 20; i++) {
        strcat(rel, "/d");
        connect_test_mkdir(tree, rel);
    }
    connect_test_write(tree, "a.txt", 3);
    connect_test_write(tree, "b.tmp", 3);
    sweep("walker", walker_scenario);
    connect_test_rmtree(tree);
    free(tree);
}

static int
prio_scenario(void)
{
    struct prio_chain *c = NULL;
    struct prio_window *w = NULL;
    const char *tiers[] = {"*.json", "docs/"};
    struct prio_item it = {"a.json", 1, 0, 0, NULL}, out;
    int rc = prio_chain_parse("tier,smallest,oldest", &c);
    if (rc == 0)
        rc = prio_chain_set_tiers(c, tiers, 2);
    if (rc == 0)
        rc = prio_window_new(c, 4, &w);
    if (rc == 0)
        rc = prio_window_push(w, &it);
    if (rc == 0)
        rc = prio_window_pop(w, &out);
    prio_window_free(w);
    prio_chain_free(c);
    return rc;
}

Test(connect_alloc, prio)
{
    sweep("prio", prio_scenario);
}

static int
bulletin_scenario(void)
{
    struct bulletin_board *b = NULL;
    struct bulletin_post p = {
        BULLETIN_ERROR,     BULLETIN_SOURCE_STAR, "alpha", "health",
        "0123456789abcdef", "disk full",          0};
    struct bulletin *list = NULL;
    size_t n = 0;
    int rc = bulletin_board_new(2, &b);
    for (int i = 0; rc == 0 && i < 3; i++)
        rc = bulletin_post(b, &p, NULL);
    if (rc == 0)
        rc = bulletin_recent(b, 2, &list, &n);
    bulletin_list_free(list, n);
    if (rc == 0 && bulletin_check(b) != 0)
        rc = ORBIT_ECORRUPT;
    bulletin_board_free(b);
    return rc;
}

Test(connect_alloc, bulletin)
{
    sweep("bulletin", bulletin_scenario);
}

static int
api_scenario(void)
{
    struct api_query q;
    const char *qs = "severity=error&limit=5";
    int rc = api_query_parse(qs, strlen(qs), &q);
    api_query_release(&q);
    if (rc != 0)
        return rc;
    struct event_base *base = event_base_new();
    struct api_server *s = NULL;
    struct api_config cfg;
    api_config_init(&cfg);
    cfg.token = "a-token-for-the-test";
    rc = base ? api_server_new(base, &cfg, &s) : ORBIT_EIO;
    api_server_free(s);
    if (base)
        event_base_free(base);
    return rc;
}

Test(connect_alloc, api)
{
    sweep("api", api_scenario);
}
