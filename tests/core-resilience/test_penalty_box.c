#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "orbit/error.h"
#include "orbit/penalty_box.h"
#include "res_test.h"

#define PB_OK(pb) cr_assert_eq(penalty_box_check(pb), 0, "invariant broken")

static struct fake_clock clk;

static struct penalty_box *
pb_make(struct penalty_box_config *cfg)
{
    struct penalty_box_config def;
    struct penalty_box *pb = NULL;

    if (!cfg) {
        penalty_box_config_default(&def);
        cfg = &def;
    }
    cfg->now_ms = fake_clock_read;
    cfg->clock_ctx = &clk;
    cr_assert_eq(penalty_box_new(cfg, &pb), 0);
    PB_OK(pb);
    return pb;
}

static struct penalty_info
pb_hit(struct penalty_box *pb, const char *key)
{
    struct penalty_info info;

    memset(&info, 0xAB, sizeof info);
    cr_assert_eq(penalty_box_penalize(pb, key, &info), 0);
    PB_OK(pb);
    return info;
}

Test(penalty_box, defaults_match_architecture)
{
    struct penalty_box_config cfg;
    penalty_box_config_default(&cfg);
    cr_assert_eq(cfg.initial_delay_ms, 1000);
    cr_assert_eq(cfg.max_delay_ms, 60000);
    cr_assert_float_eq(cfg.factor, 2.0, 1e-12);
    cr_assert_eq(cfg.max_penalties, 5);
    cr_assert_null(cfg.now_ms);
}

Test(penalty_box, first_penalty_waits_initial_delay)
{
    fake_clock_set(&clk, 5000);
    struct penalty_box *pb = pb_make(NULL);
    struct penalty_info i = pb_hit(pb, "a/b.txt");
    cr_assert_eq(i.penalties, 1);
    cr_assert_eq(i.delay_ms, 1000);
    cr_assert_eq(i.eligible_at_ms, 6000);
    cr_assert_not(i.exhausted);
    uint64_t at = 0;
    cr_assert_eq(penalty_box_next_eligible_at(pb, "a/b.txt", &at), 0);
    cr_assert_eq(at, 6000);
    cr_assert_eq(penalty_box_penalties(pb, "a/b.txt"), 1);
    cr_assert_eq(penalty_box_count(pb), 1);
    penalty_box_free(pb);
}

Test(penalty_box, eligibility_boundary_is_exact)
{
    fake_clock_set(&clk, 100);
    struct penalty_box *pb = pb_make(NULL);
    pb_hit(pb, "k");
    cr_assert_not(penalty_box_is_eligible(pb, "k", 100));
    cr_assert_not(penalty_box_is_eligible(pb, "k", 1099));
    cr_assert(penalty_box_is_eligible(pb, "k", 1100));
    cr_assert(penalty_box_is_eligible(pb, "k", UINT64_MAX));
    penalty_box_free(pb);
}

Test(penalty_box, doubling_then_exhaustion_after_max_penalties)
{
    fake_clock_set(&clk, 0);
    struct penalty_box *pb = pb_make(NULL);
    const uint64_t want[] = {1000, 2000, 4000, 8000, 16000};
    for (unsigned n = 0; n < 5; n++) {
        struct penalty_info i = pb_hit(pb, "chunk");
        cr_assert_eq(i.penalties, n + 1);
        cr_assert_eq(i.delay_ms, want[n], "penalty %u", n + 1);
        cr_assert_not(i.exhausted, "penalty %u", n + 1);
    }
    struct penalty_info i = pb_hit(pb, "chunk");
    cr_assert(i.exhausted);
    cr_assert_eq(i.penalties, 6);
    cr_assert_eq(i.eligible_at_ms, UINT64_MAX);
    cr_assert_eq(i.delay_ms, 0);
    penalty_box_free(pb);
}

Test(penalty_box, exhausted_key_is_never_eligible_until_cleared)
{
    struct penalty_box_config cfg;
    penalty_box_config_default(&cfg);
    cfg.max_penalties = 1;
    fake_clock_set(&clk, 0);
    struct penalty_box *pb = pb_make(&cfg);
    cr_assert_not(pb_hit(pb, "x").exhausted);
    cr_assert(pb_hit(pb, "x").exhausted);
    cr_assert_not(penalty_box_is_eligible(pb, "x", UINT64_MAX));
    uint64_t at = 0;
    cr_assert_eq(penalty_box_next_eligible_at(pb, "x", &at), 0);
    cr_assert_eq(at, UINT64_MAX);
    /* further penalties stay exhausted */
    cr_assert(pb_hit(pb, "x").exhausted);
    cr_assert_eq(penalty_box_clear(pb, "x"), 0);
    PB_OK(pb);
    cr_assert(penalty_box_is_eligible(pb, "x", 0));
    penalty_box_free(pb);
}

Test(penalty_box, zero_max_penalties_exhausts_on_first_failure)
{
    struct penalty_box_config cfg;
    penalty_box_config_default(&cfg);
    cfg.max_penalties = 0;
    struct penalty_box *pb = pb_make(&cfg);
    struct penalty_info i = pb_hit(pb, "x");
    cr_assert(i.exhausted);
    cr_assert_eq(i.penalties, 1);
    penalty_box_free(pb);
}

Test(penalty_box, unknown_key_is_eligible_and_has_no_deadline)
{
    struct penalty_box *pb = pb_make(NULL);
    uint64_t at = 42;
    cr_assert(penalty_box_is_eligible(pb, "never", 0));
    cr_assert_eq(penalty_box_next_eligible_at(pb, "never", &at), ORBIT_ENOENT);
    cr_assert_eq(at, 42);
    cr_assert_eq(penalty_box_penalties(pb, "never"), 0);
    cr_assert_eq(penalty_box_clear(pb, "never"), ORBIT_ENOENT);
    cr_assert_eq(penalty_box_count(pb), 0);
    penalty_box_free(pb);
}

Test(penalty_box, clear_then_penalize_restarts_from_initial)
{
    fake_clock_set(&clk, 0);
    struct penalty_box *pb = pb_make(NULL);
    pb_hit(pb, "f");
    pb_hit(pb, "f");
    cr_assert_eq(pb_hit(pb, "f").delay_ms, 4000);
    cr_assert_eq(penalty_box_clear(pb, "f"), 0);
    PB_OK(pb);
    cr_assert_eq(penalty_box_penalties(pb, "f"), 0);
    cr_assert_eq(penalty_box_count(pb), 0);
    struct penalty_info i = pb_hit(pb, "f");
    cr_assert_eq(i.penalties, 1);
    cr_assert_eq(i.delay_ms, 1000);
    penalty_box_free(pb);
}

Test(penalty_box, delay_caps_at_max)
{
    struct penalty_box_config cfg;
    penalty_box_config_default(&cfg);
    cfg.max_penalties = 100;
    fake_clock_set(&clk, 0);
    struct penalty_box *pb = pb_make(&cfg);
    uint64_t prev = 0;
    for (unsigned n = 1; n <= 100; n++) {
        struct penalty_info i = pb_hit(pb, "k");
        cr_assert_leq(i.delay_ms, 60000);
        cr_assert_geq(i.delay_ms, prev, "delays never shrink");
        prev = i.delay_ms;
        if (n == 6)
            cr_assert_eq(i.delay_ms, 32000);
        if (n >= 7)
            cr_assert_eq(i.delay_ms, 60000, "penalty %u", n);
    }
    penalty_box_free(pb);
}

Test(penalty_box, factor_power_never_overflows)
{
    struct penalty_box_config cfg;
    penalty_box_config_default(&cfg);
    cr_assert_eq(penalty_box_delay_for(&cfg, UINT32_MAX), 60000);
    cr_assert_eq(penalty_box_delay_for(&cfg, 64), 60000);
    cr_assert_eq(penalty_box_delay_for(&cfg, 0), 1000);
    cfg.factor = 1e300;
    cr_assert_eq(penalty_box_delay_for(&cfg, 2), 60000);
    cr_assert_eq(penalty_box_delay_for(&cfg, 3), 60000);
    cfg.factor = 1.0;
    cr_assert_eq(penalty_box_delay_for(&cfg, UINT32_MAX), 1000);
    cfg.factor = 2.0;
    cfg.max_delay_ms = UINT64_MAX;
    cr_assert_eq(penalty_box_delay_for(&cfg, 11), 1024000);
    cr_assert_eq(penalty_box_delay_for(&cfg, 200), UINT64_MAX);
    cfg.initial_delay_ms = 0;
    cr_assert_eq(penalty_box_delay_for(&cfg, 50), 0);
}

Test(penalty_box, huge_delay_saturates_deadline)
{
    struct penalty_box_config cfg;
    penalty_box_config_default(&cfg);
    cfg.initial_delay_ms = UINT64_MAX / 2;
    cfg.max_delay_ms = UINT64_MAX;
    fake_clock_set(&clk, UINT64_MAX - 10);
    struct penalty_box *pb = pb_make(&cfg);
    struct penalty_info i = pb_hit(pb, "k");
    cr_assert_not(i.exhausted);
    cr_assert_eq(i.delay_ms, UINT64_MAX / 2);
    cr_assert_eq(i.eligible_at_ms, UINT64_MAX);
    i = pb_hit(pb, "k");
    cr_assert_eq(i.delay_ms, UINT64_MAX);
    cr_assert_eq(i.eligible_at_ms, UINT64_MAX);
    penalty_box_free(pb);
}

Test(penalty_box, clock_going_backwards_never_releases_early)
{
    fake_clock_set(&clk, 10000);
    struct penalty_box *pb = pb_make(NULL);
    pb_hit(pb, "k");
    cr_assert_not(penalty_box_is_eligible(pb, "k", 5000));
    cr_assert_not(penalty_box_is_eligible(pb, "k", 0));
    /* a penalty taken after the step measures from the new now */
    fake_clock_set(&clk, 3000);
    struct penalty_info i = pb_hit(pb, "k");
    cr_assert_eq(i.delay_ms, 2000);
    cr_assert_eq(i.eligible_at_ms, 5000);
    cr_assert(penalty_box_is_eligible(pb, "k", 5000));
    penalty_box_free(pb);
}

Test(penalty_box, keys_are_independent)
{
    fake_clock_set(&clk, 0);
    struct penalty_box *pb = pb_make(NULL);
    pb_hit(pb, "a");
    pb_hit(pb, "a");
    cr_assert_eq(pb_hit(pb, "b").delay_ms, 1000);
    cr_assert_eq(penalty_box_penalties(pb, "a"), 2);
    cr_assert_eq(penalty_box_penalties(pb, "b"), 1);
    cr_assert_eq(penalty_box_clear(pb, "a"), 0);
    PB_OK(pb);
    cr_assert_eq(penalty_box_penalties(pb, "b"), 1);
    /* a prefix is another key */
    cr_assert_eq(penalty_box_penalties(pb, "bb"), 0);
    penalty_box_free(pb);
}

Test(penalty_box, bounded_key_count)
{
    struct penalty_box_config cfg;
    penalty_box_config_default(&cfg);
    cfg.max_keys = 3;
    struct penalty_box *pb = pb_make(&cfg);
    pb_hit(pb, "1");
    pb_hit(pb, "2");
    pb_hit(pb, "3");
    cr_assert_eq(penalty_box_penalize(pb, "4", NULL), ORBIT_EFULL);
    PB_OK(pb);
    cr_assert_eq(penalty_box_penalties(pb, "4"), 0);
    pb_hit(pb, "2"); /* known keys still take penalties */
    cr_assert_eq(penalty_box_clear(pb, "1"), 0);
    cr_assert_eq(penalty_box_penalize(pb, "4", NULL), 0);
    PB_OK(pb);
    cr_assert_eq(penalty_box_count(pb), 3);
    penalty_box_free(pb);
}

Test(penalty_box, rejects_bad_keys)
{
    struct penalty_box *pb = pb_make(NULL);
    char big[PENALTY_BOX_KEY_MAX + 2];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    cr_assert_eq(penalty_box_penalize(pb, NULL, NULL), ORBIT_EINVAL);
    cr_assert_eq(penalty_box_penalize(pb, "", NULL), ORBIT_EINVAL);
    cr_assert_eq(penalty_box_penalize(pb, big, NULL), ORBIT_ETOOBIG);
    big[PENALTY_BOX_KEY_MAX] = '\0'; /* exactly the maximum is fine */
    cr_assert_eq(penalty_box_penalize(pb, big, NULL), 0);
    cr_assert_eq(penalty_box_clear(pb, ""), ORBIT_EINVAL);
    cr_assert_eq(penalty_box_penalize(NULL, "k", NULL), ORBIT_EINVAL);
    PB_OK(pb);
    cr_assert_eq(penalty_box_count(pb), 1);
    penalty_box_free(pb);
}

Test(penalty_box, rejects_bad_config)
{
    struct penalty_box_config cfg;
    struct penalty_box *pb = (void *)1;
    penalty_box_config_default(&cfg);
    cfg.factor = 0.5;
    cr_assert_eq(penalty_box_new(&cfg, &pb), ORBIT_EINVAL);
    cr_assert_null(pb);
    cfg.factor = NAN;
    cr_assert_eq(penalty_box_new(&cfg, &pb), ORBIT_EINVAL);
    cfg.factor = INFINITY;
    cr_assert_eq(penalty_box_new(&cfg, &pb), ORBIT_EINVAL);
    penalty_box_config_default(&cfg);
    cfg.max_delay_ms = cfg.initial_delay_ms - 1;
    cr_assert_eq(penalty_box_new(&cfg, &pb), ORBIT_EINVAL);
    penalty_box_config_default(&cfg);
    cfg.max_keys = 0;
    cr_assert_eq(penalty_box_new(&cfg, &pb), ORBIT_EINVAL);
    cr_assert_eq(penalty_box_new(NULL, NULL), ORBIT_EINVAL);
    penalty_box_free(NULL);
}

Test(penalty_box, null_config_uses_defaults_and_monotonic_clock)
{
    struct penalty_box *pb = NULL;
    cr_assert_eq(penalty_box_new(NULL, &pb), 0);
    uint64_t t0 = penalty_box_now(pb);
    struct penalty_info i;
    cr_assert_eq(penalty_box_penalize(pb, "k", &i), 0);
    cr_assert_eq(i.delay_ms, 1000);
    cr_assert_geq(i.eligible_at_ms, t0 + 1000);
    cr_assert_geq(penalty_box_now(pb), t0);
    cr_assert_not(penalty_box_is_eligible(pb, "k", t0));
    PB_OK(pb);
    penalty_box_free(pb);
}

Test(penalty_box, many_keys_grow_and_shrink)
{
    struct penalty_box *pb = pb_make(NULL);
    char key[32];
    for (unsigned n = 0; n < 5000; n++) {
        snprintf(key, sizeof key, "file-%u", n);
        cr_assert_eq(penalty_box_penalize(pb, key, NULL), 0);
    }
    PB_OK(pb);
    cr_assert_eq(penalty_box_count(pb), 5000);
    for (unsigned n = 0; n < 5000; n += 2) {
        snprintf(key, sizeof key, "file-%u", n);
        cr_assert_eq(penalty_box_clear(pb, key), 0);
    }
    PB_OK(pb);
    cr_assert_eq(penalty_box_count(pb), 2500);
    cr_assert_eq(penalty_box_penalties(pb, "file-1"), 1);
    cr_assert_eq(penalty_box_penalties(pb, "file-2"), 0);
    penalty_box_free(pb);
}

struct pb_worker {
    struct penalty_box *pb;
    unsigned id;
};

static void *
pb_worker_run(void *arg)
{
    struct pb_worker *w = arg;
    char key[32];
    for (unsigned n = 0; n < 2000; n++) {
        snprintf(key, sizeof key, "%s-%u", n % 2 ? "shared" : "own", n % 16);
        if (n % 2 == 0)
            snprintf(key, sizeof key, "own-%u-%u", w->id, n % 16);
        if (penalty_box_penalize(w->pb, key, NULL) != 0)
            return (void *)1;
        (void)penalty_box_is_eligible(w->pb, key, n);
        if (n % 5 == 0)
            (void)penalty_box_clear(w->pb, key);
    }
    return NULL;
}

Test(penalty_box, concurrent_penalize_and_clear)
{
    struct penalty_box_config cfg;
    penalty_box_config_default(&cfg);
    cfg.max_penalties = UINT32_MAX;
    struct penalty_box *pb = pb_make(&cfg);
    pthread_t t[4];
    struct pb_worker w[4];
    for (unsigned i = 0; i < 4; i++) {
        w[i] = (struct pb_worker){pb, i};
        cr_assert_eq(pthread_create(&t[i], NULL, pb_worker_run, &w[i]), 0);
    }
    for (unsigned i = 0; i < 4; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        cr_assert_null(rv);
    }
    PB_OK(pb);
    cr_assert_leq(penalty_box_count(pb), 4 * 16 + 16);
    penalty_box_free(pb);
}
