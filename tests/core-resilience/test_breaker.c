#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "orbit/breaker.h"
#include "orbit/error.h"

#define BR_OK(b) cr_assert_eq(breaker_check(b), 0, "invariant broken")

struct transitions {
    enum breaker_state from[4096];
    enum breaker_state to[4096];
    size_t n;
    int broken_chain;
};

static void
record_change(enum breaker_state old_state, enum breaker_state new_state,
              void *ctx)
{
    struct transitions *t = ctx;
    if (t->n > 0 && t->to[t->n - 1] != old_state)
        t->broken_chain = 1;
    if (old_state == new_state)
        t->broken_chain = 1;
    if (t->n < 4096) {
        t->from[t->n] = old_state;
        t->to[t->n] = new_state;
        t->n++;
    }
}

static struct breaker *
br_make(uint32_t threshold, uint64_t cooldown, uint32_t probes,
        struct transitions *t)
{
    struct breaker_config cfg = {threshold, cooldown, probes,
                                 t ? record_change : NULL, t};
    struct breaker *b = NULL;
    cr_assert_eq(breaker_new(&cfg, &b), 0);
    BR_OK(b);
    return b;
}

static void
fail(struct breaker *b, uint64_t now)
{
    breaker_record_failure(b, now);
    BR_OK(b);
}

static void
succeed(struct breaker *b, uint64_t now)
{
    breaker_record_success(b, now);
    BR_OK(b);
}

static bool
allow(struct breaker *b, uint64_t now)
{
    bool ok = breaker_allow(b, now);
    BR_OK(b);
    return ok;
}

static void
trip(struct breaker *b, uint32_t threshold, uint64_t now)
{
    for (uint32_t i = 0; i < threshold; i++)
        fail(b, now);
    cr_assert_eq(breaker_state(b), BREAKER_OPEN);
}

Test(breaker, defaults)
{
    struct breaker_config cfg;
    breaker_config_default(&cfg);
    cr_assert_eq(cfg.failure_threshold, 5);
    cr_assert_eq(cfg.cooldown_ms, 30000);
    cr_assert_eq(cfg.half_open_probes, 1);
    cr_assert_null(cfg.on_change);
    struct breaker *b = NULL;
    cr_assert_eq(breaker_new(NULL, &b), 0);
    cr_assert_eq(breaker_state(b), BREAKER_CLOSED);
    cr_assert(allow(b, 0));
    breaker_free(b);
    breaker_free(NULL);
}

Test(breaker, bad_config_refused)
{
    struct breaker_config cfg;
    struct breaker *b = (void *)1;
    breaker_config_default(&cfg);
    cfg.failure_threshold = 0;
    cr_assert_eq(breaker_new(&cfg, &b), ORBIT_EINVAL);
    cr_assert_null(b);
    breaker_config_default(&cfg);
    cfg.half_open_probes = 0;
    cr_assert_eq(breaker_new(&cfg, &b), ORBIT_EINVAL);
    cr_assert_eq(breaker_new(NULL, NULL), ORBIT_EINVAL);
    cr_assert_not(breaker_allow(NULL, 0));
}

Test(breaker, opens_exactly_at_threshold)
{
    struct transitions t = {0};
    struct breaker *b = br_make(5, 30000, 1, &t);
    for (int i = 0; i < 4; i++)
        fail(b, 100);
    cr_assert_eq(breaker_state(b), BREAKER_CLOSED);
    cr_assert_eq(breaker_failures(b), 4);
    cr_assert(allow(b, 100));
    cr_assert_eq(t.n, 0);
    fail(b, 100);
    cr_assert_eq(breaker_state(b), BREAKER_OPEN);
    cr_assert_not(allow(b, 100));
    cr_assert_eq(t.n, 1);
    cr_assert_eq(t.from[0], BREAKER_CLOSED);
    cr_assert_eq(t.to[0], BREAKER_OPEN);
    cr_assert_eq(breaker_trips(b), 1);
    breaker_free(b);
}

Test(breaker, success_resets_consecutive_failures)
{
    struct breaker *b = br_make(5, 30000, 1, NULL);
    for (int i = 0; i < 4; i++)
        fail(b, 0);
    succeed(b, 0);
    cr_assert_eq(breaker_failures(b), 0);
    for (int i = 0; i < 4; i++)
        fail(b, 0);
    cr_assert_eq(breaker_state(b), BREAKER_CLOSED);
    breaker_free(b);
}

Test(breaker, threshold_one_opens_on_first_failure)
{
    struct breaker *b = br_make(1, 10, 1, NULL);
    fail(b, 0);
    cr_assert_eq(breaker_state(b), BREAKER_OPEN);
    breaker_free(b);
}

Test(breaker, cooldown_boundary_is_exact)
{
    struct transitions t = {0};
    struct breaker *b = br_make(5, 30000, 1, &t);
    trip(b, 5, 1000);
    cr_assert_not(allow(b, 30999));
    cr_assert_eq(breaker_state(b), BREAKER_OPEN);
    cr_assert(allow(b, 31000), "cool-down over: probe");
    cr_assert_eq(breaker_state(b), BREAKER_HALF_OPEN);
    cr_assert_eq(t.n, 2);
    cr_assert_eq(t.to[1], BREAKER_HALF_OPEN);
    breaker_free(b);
}

Test(breaker, half_open_admits_one_probe)
{
    struct breaker *b = br_make(5, 100, 1, NULL);
    trip(b, 5, 0);
    cr_assert(allow(b, 100));
    cr_assert_not(allow(b, 100));
    cr_assert_not(allow(b, 150));
    breaker_free(b);
}

Test(breaker, probe_success_closes)
{
    struct transitions t = {0};
    struct breaker *b = br_make(3, 100, 1, &t);
    trip(b, 3, 0);
    cr_assert(allow(b, 100));
    succeed(b, 120);
    cr_assert_eq(breaker_state(b), BREAKER_CLOSED);
    cr_assert_eq(breaker_failures(b), 0);
    cr_assert(allow(b, 121));
    cr_assert_eq(t.n, 3);
    cr_assert_eq(t.from[2], BREAKER_HALF_OPEN);
    cr_assert_eq(t.to[2], BREAKER_CLOSED);
    /* a fresh count of failures is needed to open again */
    fail(b, 130);
    fail(b, 130);
    cr_assert_eq(breaker_state(b), BREAKER_CLOSED);
    breaker_free(b);
}

Test(breaker, probe_failure_reopens_with_fresh_cooldown)
{
    struct breaker *b = br_make(3, 100, 1, NULL);
    trip(b, 3, 0);
    cr_assert(allow(b, 100));
    fail(b, 150);
    cr_assert_eq(breaker_state(b), BREAKER_OPEN);
    cr_assert_eq(breaker_trips(b), 2);
    cr_assert_not(allow(b, 200), "old deadline no longer applies");
    cr_assert_not(allow(b, 249));
    cr_assert(allow(b, 250));
    breaker_free(b);
}

Test(breaker, bounded_number_of_probes)
{
    struct breaker *b = br_make(2, 10, 3, NULL);
    trip(b, 2, 0);
    cr_assert(allow(b, 10));
    cr_assert(allow(b, 10));
    cr_assert(allow(b, 10));
    cr_assert_not(allow(b, 10));
    succeed(b, 11); /* the first success closes */
    cr_assert_eq(breaker_state(b), BREAKER_CLOSED);
    breaker_free(b);
}

Test(breaker, reports_while_open_are_ignored)
{
    struct breaker *b = br_make(2, 100, 1, NULL);
    trip(b, 2, 0);
    succeed(b, 10);
    cr_assert_eq(breaker_state(b), BREAKER_OPEN);
    fail(b, 90); /* late failure: does not push the deadline */
    cr_assert_eq(breaker_trips(b), 1);
    cr_assert(allow(b, 100));
    breaker_free(b);
}

Test(breaker, lost_probe_slot_is_handed_out_again)
{
    struct breaker *b = br_make(2, 100, 1, NULL);
    trip(b, 2, 0);
    cr_assert(allow(b, 100)); /* probe never reported */
    cr_assert_not(allow(b, 199));
    cr_assert(allow(b, 200), "a cool-down later the slot is free again");
    cr_assert_not(allow(b, 200));
    cr_assert_eq(breaker_state(b), BREAKER_HALF_OPEN);
    breaker_free(b);
}

Test(breaker, clock_going_backwards_keeps_it_open)
{
    struct breaker *b = br_make(2, 100, 1, NULL);
    trip(b, 2, 100000);
    cr_assert_not(allow(b, 50000));
    cr_assert_not(allow(b, 0));
    cr_assert_not(allow(b, 100099));
    cr_assert(allow(b, 100100));
    breaker_free(b);
}

Test(breaker, huge_cooldown_and_times_do_not_overflow)
{
    struct breaker *b = br_make(1, UINT64_MAX, 1, NULL);
    fail(b, 1);
    cr_assert_not(allow(b, UINT64_MAX), "elapsed is UINT64_MAX - 1");
    breaker_free(b);
    b = br_make(1, UINT64_MAX, 1, NULL);
    fail(b, 0);
    cr_assert(allow(b, UINT64_MAX));
    breaker_free(b);
    b = br_make(1, 10, 1, NULL);
    fail(b, UINT64_MAX - 5);
    cr_assert_not(allow(b, UINT64_MAX));
    breaker_free(b);
}

Test(breaker, zero_cooldown_half_opens_immediately)
{
    struct breaker *b = br_make(1, 0, 1, NULL);
    fail(b, 500);
    cr_assert(allow(b, 500));
    cr_assert_eq(breaker_state(b), BREAKER_HALF_OPEN);
    breaker_free(b);
}

Test(breaker, full_cycle_transitions_in_order)
{
    struct transitions t = {0};
    struct breaker *b = br_make(1, 10, 1, &t);
    fail(b, 0);     /* closed -> open */
    allow(b, 10);   /* open -> half-open */
    fail(b, 11);    /* half-open -> open */
    allow(b, 21);   /* open -> half-open */
    succeed(b, 22); /* half-open -> closed */
    const enum breaker_state want[] = {BREAKER_OPEN, BREAKER_HALF_OPEN,
                                       BREAKER_OPEN, BREAKER_HALF_OPEN,
                                       BREAKER_CLOSED};
    cr_assert_eq(t.n, 5);
    for (size_t i = 0; i < 5; i++)
        cr_assert_eq(t.to[i], want[i], "transition %zu", i);
    cr_assert_not(t.broken_chain);
    breaker_free(b);
}

Test(breaker, state_names_round_trip)
{
    const char *names[] = {"closed", "open", "half_open"};
    for (int s = 0; s < 3; s++) {
        enum breaker_state back;
        cr_assert_str_eq(breaker_state_str((enum breaker_state)s), names[s]);
        cr_assert_eq(breaker_state_parse(names[s], &back), 0);
        cr_assert_eq(back, s);
    }
    enum breaker_state out;
    cr_assert_str_eq(breaker_state_str((enum breaker_state)3), "unknown");
    cr_assert_eq(breaker_state_parse("half-open", &out), ORBIT_EINVAL);
    cr_assert_eq(breaker_state_parse(NULL, &out), ORBIT_EINVAL);
}

struct br_worker {
    struct breaker *b;
    unsigned seed;
    int bad;
};

static void *
br_worker_run(void *arg)
{
    struct br_worker *w = arg;
    for (uint64_t now = 0; now < 20000; now++) {
        w->seed = w->seed * 1103515245u + 12345u;
        if (!breaker_allow(w->b, now))
            continue;
        if ((w->seed >> 16) % 3 == 0)
            breaker_record_failure(w->b, now);
        else
            breaker_record_success(w->b, now);
        if (breaker_check(w->b) != 0)
            w->bad = 1;
    }
    return NULL;
}

Test(breaker, concurrent_use_keeps_transitions_consistent)
{
    static struct transitions t;
    memset(&t, 0, sizeof t);
    struct breaker *b = br_make(3, 50, 2, &t);
    pthread_t th[4];
    struct br_worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (struct br_worker){b, (unsigned)i + 1, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, br_worker_run, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        cr_assert_not(w[i].bad);
    }
    BR_OK(b);
    cr_assert_not(t.broken_chain, "callbacks out of order");
    cr_assert_gt(t.n, 0);
    if (t.n < 4096)
        cr_assert_eq(t.to[t.n - 1], breaker_state(b), "last callback = state");
    breaker_free(b);
}
