#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "orbit/backpressure.h"
#include "orbit/error.h"

#define BP_OK(g) cr_assert_eq(backpressure_check(g), 0, "invariant broken")

static struct backpressure_guard *
bp_make(uint64_t objs, uint64_t bytes, double low)
{
    struct backpressure_config cfg = {objs, bytes, low};
    struct backpressure_guard *g = NULL;
    cr_assert_eq(backpressure_guard_new(&cfg, &g), 0);
    BP_OK(g);
    return g;
}

static void
bp_expect(struct backpressure_guard *g, uint64_t objs, uint64_t bytes)
{
    struct backpressure_stats s;
    BP_OK(g);
    backpressure_stats(g, &s);
    cr_assert_eq(s.objects, objs, "objects %lu", (unsigned long)s.objects);
    cr_assert_eq(s.bytes, bytes, "bytes %lu", (unsigned long)s.bytes);
}

Test(backpressure, defaults)
{
    struct backpressure_config cfg;
    backpressure_config_default(&cfg);
    cr_assert_eq(cfg.max_objects, 10000);
    cr_assert_eq(cfg.max_bytes, 1ull << 30);
    cr_assert_float_eq(cfg.low_fraction, 0.5, 1e-12);
    struct backpressure_guard *g = NULL;
    cr_assert_eq(backpressure_guard_new(NULL, &g), 0);
    struct backpressure_config got;
    backpressure_limits(g, &got);
    cr_assert_eq(got.max_objects, 10000);
    BP_OK(g);
    backpressure_guard_free(g);
    backpressure_guard_free(NULL);
}

Test(backpressure, bad_config_refused)
{
    struct backpressure_guard *g = (void *)1;
    struct backpressure_config c = {0, 10, 0.5};
    cr_assert_eq(backpressure_guard_new(&c, &g), ORBIT_EINVAL);
    cr_assert_null(g);
    c = (struct backpressure_config){10, 0, 0.5};
    cr_assert_eq(backpressure_guard_new(&c, &g), ORBIT_EINVAL);
    c = (struct backpressure_config){10, 10, 1.0};
    cr_assert_eq(backpressure_guard_new(&c, &g), ORBIT_EINVAL);
    c = (struct backpressure_config){10, 10, -0.1};
    cr_assert_eq(backpressure_guard_new(&c, &g), ORBIT_EINVAL);
    c = (struct backpressure_config){10, 10, NAN};
    cr_assert_eq(backpressure_guard_new(&c, &g), ORBIT_EINVAL);
    cr_assert_eq(backpressure_guard_new(NULL, NULL), ORBIT_EINVAL);
}

Test(backpressure, acquire_and_release_round_trip)
{
    struct backpressure_guard *g = bp_make(10, 1000, 0.5);
    cr_assert(backpressure_try_acquire(g, 2, 300));
    bp_expect(g, 2, 300);
    cr_assert(backpressure_try_acquire(g, 1, 100));
    bp_expect(g, 3, 400);
    cr_assert_eq(backpressure_release(g, 2, 300), 0);
    bp_expect(g, 1, 100);
    cr_assert_eq(backpressure_release(g, 1, 100), 0);
    bp_expect(g, 0, 0);
    backpressure_guard_free(g);
}

Test(backpressure, object_limit_is_inclusive)
{
    struct backpressure_guard *g = bp_make(5, 1000, 0.5);
    for (int i = 0; i < 5; i++)
        cr_assert(backpressure_try_acquire(g, 1, 1), "object %d", i);
    cr_assert_not(backpressure_try_acquire(g, 1, 1));
    bp_expect(g, 5, 5);
    cr_assert_eq(backpressure_release(g, 1, 1), 0);
    cr_assert(backpressure_try_acquire(g, 1, 1));
    backpressure_guard_free(g);
}

Test(backpressure, byte_limit_is_inclusive)
{
    struct backpressure_guard *g = bp_make(100, 1000, 0.5);
    cr_assert(backpressure_try_acquire(g, 1, 999));
    cr_assert(backpressure_try_acquire(g, 1, 1));
    cr_assert_not(backpressure_try_acquire(g, 1, 1));
    cr_assert(backpressure_try_acquire(g, 1, 0), "zero bytes still fit");
    bp_expect(g, 3, 1000);
    backpressure_guard_free(g);
}

Test(backpressure, refusal_reserves_nothing)
{
    struct backpressure_guard *g = bp_make(10, 100, 0.5);
    cr_assert(backpressure_try_acquire(g, 1, 90));
    cr_assert_not(backpressure_try_acquire(g, 2, 20)); /* objects fit */
    bp_expect(g, 1, 90);
    cr_assert(backpressure_try_acquire(g, 9, 10));
    cr_assert_not(backpressure_try_acquire(g, 1, 0)); /* bytes fit */
    bp_expect(g, 10, 100);
    struct backpressure_stats s;
    backpressure_stats(g, &s);
    cr_assert_eq(s.admitted, 2);
    cr_assert_eq(s.rejected, 2);
    backpressure_guard_free(g);
}

Test(backpressure, oversize_item_admitted_only_when_empty)
{
    struct backpressure_guard *g = bp_make(10, 1000, 0.5);
    cr_assert(backpressure_try_acquire(g, 1, 10));
    cr_assert_not(backpressure_try_acquire(g, 1, 5000), "not empty");
    cr_assert_eq(backpressure_release(g, 1, 10), 0);
    cr_assert(backpressure_try_acquire(g, 1, 5000), "empty: must go");
    bp_expect(g, 1, 5000);
    cr_assert_not(backpressure_try_acquire(g, 1, 1));
    cr_assert_not(backpressure_try_acquire(g, 1, 0));
    cr_assert(backpressure_should_pause(g));
    cr_assert_eq(backpressure_release(g, 1, 5000), 0);
    bp_expect(g, 0, 0);
    cr_assert(backpressure_try_acquire(g, 1, 1));
    struct backpressure_stats s;
    backpressure_stats(g, &s);
    cr_assert_eq(s.peak_bytes, 5000);
    backpressure_guard_free(g);
}

Test(backpressure, oversize_batch_of_objects_admitted_when_empty)
{
    struct backpressure_guard *g = bp_make(10, 1000, 0.5);
    cr_assert(backpressure_try_acquire(g, 25, 100));
    bp_expect(g, 25, 100);
    cr_assert_not(backpressure_try_acquire(g, 1, 1));
    cr_assert_eq(backpressure_release(g, 25, 100), 0);
    bp_expect(g, 0, 0);
    backpressure_guard_free(g);
}

Test(backpressure, maximal_amounts_do_not_wrap)
{
    struct backpressure_guard *g = bp_make(UINT64_MAX, UINT64_MAX, 0.5);
    cr_assert(backpressure_try_acquire(g, UINT64_MAX, UINT64_MAX));
    cr_assert_not(backpressure_try_acquire(g, 1, 1));
    cr_assert_eq(backpressure_release(g, UINT64_MAX, UINT64_MAX), 0);
    cr_assert(backpressure_try_acquire(g, UINT64_MAX - 1, 1));
    cr_assert(backpressure_try_acquire(g, 1, UINT64_MAX - 1));
    cr_assert_not(backpressure_try_acquire(g, 1, 0));
    backpressure_guard_free(g);
}

Test(backpressure, over_release_clamps_and_reports)
{
    struct backpressure_guard *g = bp_make(10, 1000, 0.5);
    cr_assert(backpressure_try_acquire(g, 2, 200));
    cr_assert_eq(backpressure_release(g, 1, 500), ORBIT_EINVAL);
    bp_expect(g, 1, 0); /* objects released, bytes clamped at zero */
    cr_assert_eq(backpressure_release(g, 3, 0), ORBIT_EINVAL);
    bp_expect(g, 0, 0);
    cr_assert_eq(backpressure_release(g, 0, 0), 0);
    struct backpressure_stats s;
    backpressure_stats(g, &s);
    cr_assert_eq(s.over_release, 2);
    cr_assert(backpressure_try_acquire(g, 10, 1000), "full limit usable");
    cr_assert_eq(backpressure_release(NULL, 1, 1), ORBIT_EINVAL);
    backpressure_guard_free(g);
}

Test(backpressure, should_pause_exactly_at_high_mark)
{
    struct backpressure_guard *g = bp_make(4, 1000, 0.5);
    cr_assert(backpressure_try_acquire(g, 3, 999));
    cr_assert_not(backpressure_should_pause(g));
    cr_assert(backpressure_try_acquire(g, 1, 0));
    cr_assert(backpressure_should_pause(g), "objects at limit");
    cr_assert_eq(backpressure_release(g, 1, 0), 0);
    cr_assert(backpressure_try_acquire(g, 0, 1));
    cr_assert(backpressure_should_pause(g), "bytes at limit");
    backpressure_guard_free(g);
}

Test(backpressure, can_resume_needs_both_at_low_mark)
{
    struct backpressure_guard *g = bp_make(10, 1000, 0.5);
    cr_assert(backpressure_try_acquire(g, 5, 500));
    cr_assert(backpressure_can_resume(g), "exactly at low on both");
    cr_assert(backpressure_try_acquire(g, 1, 0));
    cr_assert_not(backpressure_can_resume(g), "objects above low");
    cr_assert_eq(backpressure_release(g, 1, 0), 0);
    cr_assert(backpressure_try_acquire(g, 0, 1));
    cr_assert_not(backpressure_can_resume(g), "bytes above low");
    backpressure_guard_free(g);
}

Test(backpressure, latch_has_hysteresis)
{
    struct backpressure_guard *g = bp_make(10, 1000, 0.5);
    cr_assert_not(backpressure_paused(g));
    cr_assert(backpressure_try_acquire(g, 9, 0));
    cr_assert_not(backpressure_paused(g), "below high");
    cr_assert(backpressure_try_acquire(g, 1, 0));
    cr_assert(backpressure_paused(g), "at high");
    cr_assert_eq(backpressure_release(g, 3, 0), 0);
    cr_assert(backpressure_paused(g), "between marks stays paused");
    cr_assert_eq(backpressure_release(g, 1, 0), 0);
    cr_assert(backpressure_paused(g), "6 > low 5");
    cr_assert_eq(backpressure_release(g, 1, 0), 0);
    cr_assert_not(backpressure_paused(g), "at low resumes");
    cr_assert(backpressure_try_acquire(g, 4, 0));
    cr_assert_not(backpressure_paused(g), "between marks stays running");
    BP_OK(g);
    backpressure_guard_free(g);
}

Test(backpressure, zero_low_fraction_resumes_only_when_empty)
{
    struct backpressure_guard *g = bp_make(4, 100, 0.0);
    cr_assert(backpressure_try_acquire(g, 4, 4));
    cr_assert(backpressure_paused(g));
    cr_assert_eq(backpressure_release(g, 3, 3), 0);
    cr_assert(backpressure_paused(g));
    cr_assert_eq(backpressure_release(g, 1, 1), 0);
    cr_assert_not(backpressure_paused(g));
    backpressure_guard_free(g);
}

Test(backpressure, tiny_limits_keep_low_below_high)
{
    struct backpressure_guard *g = bp_make(1, 1, 0.999);
    cr_assert(backpressure_try_acquire(g, 1, 1));
    cr_assert(backpressure_should_pause(g));
    cr_assert_not(backpressure_can_resume(g));
    cr_assert_eq(backpressure_release(g, 1, 1), 0);
    cr_assert(backpressure_can_resume(g));
    BP_OK(g);
    backpressure_guard_free(g);
}

/* --- concurrent stress ------------------------------------------------- */

#define STRESS_OBJS  64
#define STRESS_BYTES 50000

struct stress {
    struct backpressure_guard *g;
    atomic_bool stop;
    atomic_int violations;
    unsigned seed;
    int oversize;
};

static void *
stress_worker(void *arg)
{
    struct stress *st = arg;
    unsigned seed = st->seed;
    uint64_t held_o[8], held_b[8];
    int n = 0;
    for (int it = 0; it < 40000; it++) {
        seed = seed * 1103515245u + 12345u;
        uint64_t o = 1 + (seed >> 16) % 3, b = 1 + (seed >> 8) % 4000;
        if (st->oversize && (seed >> 4) % 97 == 0)
            b = STRESS_BYTES * 3;
        if (n < 8 && backpressure_try_acquire(st->g, o, b)) {
            held_o[n] = o;
            held_b[n++] = b;
        } else if (n > 0) {
            n--;
            if (backpressure_release(st->g, held_o[n], held_b[n]) != 0)
                atomic_fetch_add(&st->violations, 1);
        }
    }
    while (n > 0) {
        n--;
        if (backpressure_release(st->g, held_o[n], held_b[n]) != 0)
            atomic_fetch_add(&st->violations, 1);
    }
    return NULL;
}

static void *
stress_sampler(void *arg)
{
    struct stress *st = arg;
    struct backpressure_stats s;
    while (!atomic_load(&st->stop)) {
        backpressure_stats(st->g, &s);
        /* unsigned counters: a negative value would show as a huge one */
        if (s.objects > STRESS_OBJS)
            atomic_fetch_add(&st->violations, 1);
        if (s.bytes > STRESS_BYTES && !st->oversize)
            atomic_fetch_add(&st->violations, 1);
        if (s.bytes > 3 * STRESS_BYTES)
            atomic_fetch_add(&st->violations, 1);
        (void)backpressure_paused(st->g);
    }
    return NULL;
}

static void
run_stress(int oversize)
{
    struct stress st = {.g = bp_make(STRESS_OBJS, STRESS_BYTES, 0.5),
                        .oversize = oversize};
    pthread_t w[4], sampler;
    struct stress per[4];
    atomic_init(&st.stop, false);
    atomic_init(&st.violations, 0);
    cr_assert_eq(pthread_create(&sampler, NULL, stress_sampler, &st), 0);
    for (int i = 0; i < 4; i++) {
        per[i] = st;
        per[i].seed = 17u * (unsigned)i + 1;
        atomic_init(&per[i].violations, 0);
        cr_assert_eq(pthread_create(&w[i], NULL, stress_worker, &per[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(w[i], NULL);
    atomic_store(&st.stop, true);
    pthread_join(sampler, NULL);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(atomic_load(&per[i].violations), 0, "bad release");
    cr_assert_eq(atomic_load(&st.violations), 0, "limit broken");
    bp_expect(st.g, 0, 0);
    struct backpressure_stats s;
    backpressure_stats(st.g, &s);
    cr_assert_leq(s.peak_objects, STRESS_OBJS);
    cr_assert_leq(s.peak_bytes, oversize ? 3 * STRESS_BYTES : STRESS_BYTES);
    cr_assert_gt(s.admitted, 1000);
    cr_assert_eq(s.over_release, 0);
    cr_assert_not(backpressure_paused(st.g));
    backpressure_guard_free(st.g);
}

Test(backpressure, concurrent_stress_returns_to_zero)
{
    run_stress(0);
}

Test(backpressure, concurrent_stress_with_oversize_items)
{
    run_stress(1);
}

/* --- registry ---------------------------------------------------------- */

Test(backpressure, registry_get_or_create)
{
    struct backpressure_config cfg = {7, 700, 0.25};
    struct backpressure_registry *reg = NULL;
    struct backpressure_guard *a = NULL, *a2 = NULL, *b = NULL, *f = NULL;
    cr_assert_eq(backpressure_registry_new(&cfg, 8, &reg), 0);
    cr_assert_eq(backpressure_registry_find(reg, "star-a", &f), ORBIT_ENOENT);
    cr_assert_null(f);
    cr_assert_eq(backpressure_registry_get(reg, "star-a", &a), 0);
    cr_assert_eq(backpressure_registry_get(reg, "star-a", &a2), 0);
    cr_assert_eq(a, a2);
    cr_assert_eq(backpressure_registry_get(reg, "star-b", &b), 0);
    cr_assert_neq(a, b);
    cr_assert_eq(backpressure_registry_find(reg, "star-b", &f), 0);
    cr_assert_eq(f, b);
    cr_assert_eq(backpressure_registry_count(reg), 2);
    struct backpressure_config got;
    backpressure_limits(a, &got);
    cr_assert_eq(got.max_objects, 7);
    cr_assert_eq(got.max_bytes, 700);
    cr_assert(backpressure_try_acquire(a, 7, 1));
    cr_assert(backpressure_try_acquire(b, 7, 1), "guards are independent");
    cr_assert_eq(backpressure_registry_check(reg), 0);
    backpressure_registry_free(reg);
    backpressure_registry_free(NULL);
}

Test(backpressure, registry_is_bounded_and_checks_names)
{
    struct backpressure_registry *reg = NULL;
    struct backpressure_guard *g = NULL;
    char name[BACKPRESSURE_NAME_MAX + 2];
    cr_assert_eq(backpressure_registry_new(NULL, 2, &reg), 0);
    cr_assert_eq(backpressure_registry_get(reg, "a", &g), 0);
    cr_assert_eq(backpressure_registry_get(reg, "b", &g), 0);
    cr_assert_eq(backpressure_registry_get(reg, "c", &g), ORBIT_EFULL);
    cr_assert_null(g);
    cr_assert_eq(backpressure_registry_get(reg, "a", &g), 0, "known works");
    cr_assert_eq(backpressure_registry_get(reg, "", &g), ORBIT_EINVAL);
    cr_assert_eq(backpressure_registry_get(reg, NULL, &g), ORBIT_EINVAL);
    memset(name, 'n', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    cr_assert_eq(backpressure_registry_get(reg, name, &g), ORBIT_ETOOBIG);
    cr_assert_eq(backpressure_registry_count(reg), 2);
    cr_assert_eq(backpressure_registry_check(reg), 0);
    backpressure_registry_free(reg);
    struct backpressure_config bad = {0, 1, 0.5};
    cr_assert_eq(backpressure_registry_new(&bad, 2, &reg), ORBIT_EINVAL);
    cr_assert_eq(backpressure_registry_new(NULL, 0, &reg), ORBIT_EINVAL);
}

struct reg_worker {
    struct backpressure_registry *reg;
    struct backpressure_guard *seen[32];
};

static void *
reg_worker_run(void *arg)
{
    struct reg_worker *w = arg;
    char name[16];
    for (int round = 0; round < 50; round++) {
        for (int i = 0; i < 32; i++) {
            snprintf(name, sizeof name, "star-%d", i);
            if (backpressure_registry_get(w->reg, name, &w->seen[i]) != 0)
                return (void *)1;
            if (backpressure_try_acquire(w->seen[i], 1, 10))
                backpressure_release(w->seen[i], 1, 10);
        }
    }
    return NULL;
}

Test(backpressure, registry_concurrent_get_creates_once)
{
    struct backpressure_registry *reg = NULL;
    cr_assert_eq(backpressure_registry_new(NULL, 64, &reg), 0);
    pthread_t t[4];
    struct reg_worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i].reg = reg;
        cr_assert_eq(pthread_create(&t[i], NULL, reg_worker_run, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        cr_assert_null(rv);
    }
    cr_assert_eq(backpressure_registry_count(reg), 32);
    for (int i = 0; i < 32; i++)
        for (int k = 1; k < 4; k++)
            cr_assert_eq(w[0].seen[i], w[k].seen[i], "one guard per name");
    cr_assert_eq(backpressure_registry_check(reg), 0);
    backpressure_registry_free(reg);
}
