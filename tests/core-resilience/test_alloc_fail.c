/*
 * Allocation-failure paths: this file links strong definitions of the
 * library's allocation seam (res_alloc.h) that fail the Nth allocation. Each
 * scenario is run with N = 0, 1, 2, ... until it completes without an
 * injected failure; every run must either succeed or report ORBIT_ENOMEM,
 * leave the object passing its invariant checker, and leak nothing (the
 * sanitizer build checks leaks at exit).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "orbit/backpressure.h"
#include "orbit/breaker.h"
#include "orbit/dlq.h"
#include "orbit/error.h"
#include "orbit/health.h"
#include "orbit/penalty_box.h"
#include "orbit/refmap.h"
#include "res_alloc.h"

/* Test-process state only: each Criterion test runs in its own process. */
static long fail_at = -1;
static long alloc_calls;

static int
alloc_should_fail(void)
{
    return fail_at >= 0 && alloc_calls++ == fail_at;
}

void *
res_malloc(size_t size)
{
    if (fail_at >= 0 && alloc_should_fail())
        return NULL;
    return malloc(size);
}

void *
res_calloc(size_t n, size_t size)
{
    if (fail_at >= 0 && alloc_should_fail())
        return NULL;
    return calloc(n, size);
}

static void
sweep(const char *what, int (*scenario)(void))
{
    for (long n = 0; n < 100000; n++) {
        fail_at = n;
        alloc_calls = 0;
        int rc = scenario();
        long made = alloc_calls;
        fail_at = -1;
        cr_assert(rc == 0 || rc == ORBIT_ENOMEM, "%s: failing alloc %ld: %d",
                  what, n, rc);
        if (n >= made) {
            cr_assert_eq(rc, 0, "%s: no failure injected", what);
            cr_assert_gt(n, 0, "%s: scenario allocates nothing", what);
            return;
        }
    }
    cr_assert_fail("%s: never completed", what);
}

static int
penalty_box_scenario(void)
{
    struct penalty_box *pb = NULL;
    char key[16];
    int rc = penalty_box_new(NULL, &pb);
    for (int i = 0; rc == 0 && i < 40; i++) {
        snprintf(key, sizeof key, "k%d", i);
        rc = penalty_box_penalize(pb, key, NULL);
        if (rc == 0 && i % 3 == 0)
            rc = penalty_box_clear(pb, key);
    }
    if (pb)
        cr_assert_eq(penalty_box_check(pb), 0);
    penalty_box_free(pb);
    return rc;
}

Test(alloc_fail, penalty_box)
{
    sweep("penalty_box", penalty_box_scenario);
}

static int
dlq_scenario(void)
{
    struct dlq_config cfg;
    struct dlq *q = NULL;
    struct dlq_entry *e = NULL;
    size_t n = 0;
    dlq_config_default(&cfg);
    cfg.capacity = 70; /* past the initial ring, then evicting */
    int rc = dlq_new(&cfg, &q);
    for (int i = 0; rc == 0 && i < 75; i++) {
        struct dlq_failure f = {.key = "k",
                                .job_id = i % 2 ? "a" : "b",
                                .last_error = "boom",
                                .source_path = "/s",
                                .dest_path = "d",
                                .last_failure_ms = 5};
        rc = dlq_push(q, &f);
    }
    if (rc == 0) {
        rc = dlq_query_job(q, "a", &e, &n);
        dlq_entries_free(e, n);
    }
    if (rc == 0) {
        size_t before = dlq_count(q);
        rc = dlq_drain(q, &e, &n);
        cr_assert_eq(rc == 0 ? 0 : dlq_count(q), rc == 0 ? 0 : before,
                     "a failed drain leaves the queue as it was");
        dlq_entries_free(e, n);
    }
    if (q)
        cr_assert_eq(dlq_check(q), 0);
    dlq_free(q);
    return rc;
}

Test(alloc_fail, dlq)
{
    sweep("dlq", dlq_scenario);
}

static int
backpressure_scenario(void)
{
    struct backpressure_registry *reg = NULL;
    struct backpressure_guard *g = NULL;
    char name[16];
    int rc = backpressure_registry_new(NULL, 64, &reg);
    for (int i = 0; rc == 0 && i < 20; i++) {
        snprintf(name, sizeof name, "star-%d", i);
        rc = backpressure_registry_get(reg, name, &g);
    }
    if (reg)
        cr_assert_eq(backpressure_registry_check(reg), 0);
    backpressure_registry_free(reg);
    return rc;
}

Test(alloc_fail, backpressure_registry)
{
    sweep("backpressure", backpressure_scenario);
}

static int
refmap_scenario(void)
{
    struct refmap *rm = NULL;
    uint8_t id[REFMAP_ID_LEN] = {0}, out[8][REFMAP_ID_LEN];
    size_t n;
    int rc = refmap_new(1000, &rm);
    for (uint8_t i = 0; rc == 0 && i < 30; i++) {
        id[0] = i;
        rc = refmap_incref(rm, id, NULL);
        if (rc == 0 && i % 2)
            rc = refmap_decref(rm, id, NULL);
    }
    if (rc == 0)
        rc = refmap_confirm_wal_synced(rm, refmap_seq(rm));
    if (rc == 0)
        rc = refmap_collect(rm, out, 8, &n);
    if (rm)
        cr_assert_eq(refmap_check(rm), 0);
    refmap_free(rm);
    return rc;
}

Test(alloc_fail, refmap)
{
    sweep("refmap", refmap_scenario);
}

static int
health_breaker_scenario(void)
{
    struct health_monitor *h = NULL;
    struct breaker *b = NULL;
    int rc = health_new(NULL, &h);
    if (rc == 0)
        rc = health_record_disk(h, 1, 1, 2);
    if (rc == 0)
        rc = breaker_new(NULL, &b);
    if (h)
        cr_assert_eq(health_check(h), 0);
    health_free(h);
    breaker_free(b);
    return rc;
}

Test(alloc_fail, health_and_breaker)
{
    sweep("health+breaker", health_breaker_scenario);
}
