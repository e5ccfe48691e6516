#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "orbit/error.h"
#include "orbit/health.h"

#define HM_OK(h) cr_assert_eq(health_check(h), 0, "invariant broken")
#define MIN      60000ull
#define GB       1000000000ull

static struct health_monitor *
hm_make(const struct health_config *cfg)
{
    struct health_monitor *h = NULL;
    cr_assert_eq(health_new(cfg, &h), 0);
    HM_OK(h);
    return h;
}

static void
disk(struct health_monitor *h, uint64_t at, uint64_t used, uint64_t total)
{
    cr_assert_eq(health_record_disk(h, at, used, total), 0);
    HM_OK(h);
}

static void
xfer(struct health_monitor *h, uint64_t at, uint64_t bytes, uint64_t ms)
{
    cr_assert_eq(health_record_transfer(h, at, bytes, ms), 0);
    HM_OK(h);
}

static void
ops(struct health_monitor *h, uint64_t at, uint64_t n, uint64_t errors)
{
    cr_assert_eq(health_record_ops(h, at, n, errors), 0);
    HM_OK(h);
}

Test(health, defaults)
{
    struct health_config c;
    health_config_default(&c);
    cr_assert_float_eq(c.disk_warning, 0.85, 1e-12);
    cr_assert_float_eq(c.disk_critical, 0.95, 1e-12);
    cr_assert_eq(c.exhaustion_horizon_ms, 3600000);
    cr_assert_eq(c.min_regression_samples, 3);
    cr_assert_float_eq(c.error_rate, 0.1, 1e-12);
    cr_assert_eq(c.error_min_ops, 20);
}

Test(health, no_samples_is_healthy)
{
    struct health_monitor *h = hm_make(NULL);
    struct health_report r;
    cr_assert_eq(health_evaluate(h, 1000, &r), HEALTH_HEALTHY);
    cr_assert_eq(r.status, HEALTH_STATUS_HEALTHY);
    cr_assert_float_eq(r.disk_used_fraction, -1.0, 1e-12);
    cr_assert_eq(r.ms_to_full, UINT64_MAX);
    cr_assert_float_eq(r.throughput_bps, -1.0, 1e-12);
    cr_assert_float_eq(r.error_fraction, -1.0, 1e-12);
    cr_assert_eq(health_evaluate(h, 0, NULL), HEALTH_HEALTHY);
    health_free(h);
    health_free(NULL);
}

Test(health, disk_warning_threshold_is_inclusive)
{
    struct health_monitor *h = hm_make(NULL);
    disk(h, 0, 8499, 10000);
    cr_assert_eq(health_evaluate(h, 0, NULL), HEALTH_HEALTHY);
    disk(h, 0, 8500, 10000);
    struct health_report r;
    cr_assert_eq(health_evaluate(h, 0, &r), HEALTH_DISK_WARNING);
    cr_assert_eq(r.status, HEALTH_STATUS_DEGRADED);
    cr_assert_float_eq(r.disk_used_fraction, 0.85, 1e-12);
    health_free(h);
}

Test(health, disk_critical_threshold_replaces_warning)
{
    struct health_monitor *h = hm_make(NULL);
    disk(h, 0, 9499, 10000);
    cr_assert_eq(health_evaluate(h, 0, NULL), HEALTH_DISK_WARNING);
    disk(h, 0, 9500, 10000);
    struct health_report r;
    cr_assert_eq(health_evaluate(h, 0, &r), HEALTH_DISK_CRITICAL);
    cr_assert_eq(r.status, HEALTH_STATUS_UNHEALTHY);
    disk(h, 0, 10000, 10000);
    cr_assert_eq(health_evaluate(h, 0, NULL), HEALTH_DISK_CRITICAL);
    health_free(h);
}

Test(health, latest_disk_sample_wins)
{
    struct health_monitor *h = hm_make(NULL);
    disk(h, 0, 9600, 10000);
    disk(h, MIN, 1000, 10000); /* space freed */
    cr_assert_eq(health_evaluate(h, MIN, NULL) & HEALTH_DISK_CRITICAL, 0);
    health_free(h);
}

Test(health, linear_growth_predicts_exhaustion)
{
    struct health_monitor *h = hm_make(NULL);
    /* 50% used, +1 GB/min on 100 GB: full 50 min after the first sample */
    for (uint64_t m = 0; m <= 10; m++)
        disk(h, m * MIN, 50 * GB + m * GB, 100 * GB);
    struct health_report r;
    unsigned adv = health_evaluate(h, 10 * MIN, &r);
    cr_assert_eq(adv, HEALTH_DISK_EXHAUSTION_PREDICTED);
    cr_assert_eq(r.status, HEALTH_STATUS_UNHEALTHY);
    cr_assert_leq(r.ms_to_full > 40 * MIN ? r.ms_to_full - 40 * MIN
                                          : 40 * MIN - r.ms_to_full,
                  1000, "ms_to_full %lu", (unsigned long)r.ms_to_full);
    health_free(h);
}

Test(health, exhaustion_horizon_boundary)
{
    struct health_monitor *h = hm_make(NULL);
    /* 1 GB per minute, 70 GB free at t=2 min: full at 72 min */
    disk(h, 0, 28 * GB, 100 * GB);
    disk(h, MIN, 29 * GB, 100 * GB);
    disk(h, 2 * MIN, 30 * GB, 100 * GB);
    struct health_report r;
    cr_assert_eq(health_evaluate(h, 2 * MIN, &r), HEALTH_HEALTHY);
    cr_assert_eq(r.ms_to_full, 70 * MIN);
    cr_assert_eq(health_evaluate(h, 12 * MIN - 1, NULL), HEALTH_HEALTHY);
    cr_assert_eq(health_evaluate(h, 12 * MIN, NULL),
                 HEALTH_DISK_EXHAUSTION_PREDICTED, "exactly one hour ahead");
    /* past the predicted point: 0 left, still predicted */
    cr_assert_eq(health_evaluate(h, 100 * MIN, &r),
                 HEALTH_DISK_EXHAUSTION_PREDICTED);
    cr_assert_eq(r.ms_to_full, 0);
    health_free(h);
}

Test(health, too_few_or_degenerate_samples_predict_nothing)
{
    struct health_monitor *h = hm_make(NULL);
    disk(h, 0, 10 * GB, 100 * GB);
    disk(h, MIN, 60 * GB, 100 * GB);
    struct health_report r;
    cr_assert_eq(health_evaluate(h, MIN, &r), HEALTH_HEALTHY, "two samples");
    cr_assert_eq(r.ms_to_full, UINT64_MAX);
    health_free(h);
    h = hm_make(NULL);
    for (int i = 0; i < 5; i++)
        disk(h, MIN, (uint64_t)(10 + 10 * i) * GB, 100 * GB);
    cr_assert_eq(health_evaluate(h, MIN, &r) & HEALTH_DISK_EXHAUSTION_PREDICTED,
                 0, "all at one instant: no slope");
    health_free(h);
}

Test(health, flat_or_shrinking_usage_predicts_nothing)
{
    struct health_monitor *h = hm_make(NULL);
    for (uint64_t m = 0; m < 5; m++)
        disk(h, m * MIN, 80 * GB, 100 * GB);
    struct health_report r;
    cr_assert_eq(health_evaluate(h, 5 * MIN, &r), HEALTH_HEALTHY);
    cr_assert_eq(r.ms_to_full, UINT64_MAX);
    for (uint64_t m = 5; m < 10; m++)
        disk(h, m * MIN, (80 - m) * GB, 100 * GB);
    cr_assert_eq(health_evaluate(h, 10 * MIN, &r), HEALTH_HEALTHY);
    health_free(h);
}

Test(health, bounded_ring_forgets_old_trend)
{
    struct health_config c;
    health_config_default(&c);
    c.disk_ring = 4;
    struct health_monitor *h = hm_make(&c);
    for (uint64_t m = 0; m < 4; m++)
        disk(h, m * MIN, (40 + 5 * m) * GB, 100 * GB);
    cr_assert_eq(health_evaluate(h, 4 * MIN, NULL),
                 HEALTH_DISK_EXHAUSTION_PREDICTED);
    for (uint64_t m = 4; m < 8; m++)
        disk(h, m * MIN, 55 * GB, 100 * GB);
    cr_assert_eq(health_evaluate(h, 8 * MIN, NULL), HEALTH_HEALTHY);
    health_free(h);
}

Test(health, disk_clock_step_back_restarts_trend)
{
    struct health_monitor *h = hm_make(NULL);
    for (uint64_t m = 10; m < 14; m++)
        disk(h, m * MIN, (40 + 5 * m) * GB, 200 * GB);
    cr_assert_eq(health_evaluate(h, 14 * MIN, NULL),
                 HEALTH_DISK_EXHAUSTION_PREDICTED);
    disk(h, 2 * MIN, 105 * GB, 200 * GB); /* clock went back */
    cr_assert_eq(health_evaluate(h, 2 * MIN, NULL), HEALTH_HEALTHY);
    disk(h, 3 * MIN, 105 * GB, 200 * GB);
    cr_assert_eq(health_evaluate(h, 3 * MIN, NULL), HEALTH_HEALTHY);
    health_free(h);
}

Test(health, throughput_floor_is_strict)
{
    struct health_monitor *h = hm_make(NULL);
    xfer(h, 1000, 65535, 1000);
    struct health_report r;
    cr_assert_eq(health_evaluate(h, 1000, &r), HEALTH_THROUGHPUT_LOW);
    cr_assert_float_eq(r.throughput_bps, 65535.0, 1e-6);
    cr_assert_eq(r.status, HEALTH_STATUS_DEGRADED);
    xfer(h, 2000, 65537, 1000); /* average exactly 65536 B/s */
    cr_assert_eq(health_evaluate(h, 2000, &r), HEALTH_HEALTHY);
    cr_assert_float_eq(r.throughput_bps, 65536.0, 1e-6);
    health_free(h);
}

Test(health, idle_is_not_slow_and_window_edge_is_inclusive)
{
    struct health_monitor *h = hm_make(NULL);
    xfer(h, 0, 10, 1000);
    cr_assert_eq(health_evaluate(h, 60000, NULL), HEALTH_THROUGHPUT_LOW,
                 "age exactly window_ms counts");
    struct health_report r;
    cr_assert_eq(health_evaluate(h, 60001, &r), HEALTH_HEALTHY, "idle");
    cr_assert_float_eq(r.throughput_bps, -1.0, 1e-12);
    /* a sample stamped after now (clock stepped back) counts as current */
    cr_assert_eq(health_evaluate(h, 0, NULL), HEALTH_THROUGHPUT_LOW);
    health_free(h);
}

Test(health, zero_floor_disables_throughput_advisory)
{
    struct health_config c;
    health_config_default(&c);
    c.throughput_floor_bps = 0;
    struct health_monitor *h = hm_make(&c);
    xfer(h, 0, 0, 5000);
    cr_assert_eq(health_evaluate(h, 0, NULL), HEALTH_HEALTHY);
    health_free(h);
}

Test(health, error_rate_needs_minimum_ops)
{
    struct health_monitor *h = hm_make(NULL);
    ops(h, 0, 1, 1);
    struct health_report r;
    cr_assert_eq(health_evaluate(h, 0, &r), HEALTH_HEALTHY, "1 of 1");
    cr_assert_float_eq(r.error_fraction, -1.0, 1e-12);
    ops(h, 0, 18, 0); /* 19 ops */
    cr_assert_eq(health_evaluate(h, 0, NULL), HEALTH_HEALTHY);
    ops(h, 0, 1, 1); /* 20 ops, 2 errors: exactly 10% */
    cr_assert_eq(health_evaluate(h, 0, &r), HEALTH_HEALTHY, "not above");
    cr_assert_float_eq(r.error_fraction, 0.1, 1e-12);
    ops(h, 0, 1, 1); /* 21 ops, 3 errors */
    cr_assert_eq(health_evaluate(h, 0, &r), HEALTH_ERROR_RATE_HIGH);
    cr_assert_eq(r.status, HEALTH_STATUS_DEGRADED);
    health_free(h);
}

Test(health, error_rate_forgets_old_window)
{
    struct health_monitor *h = hm_make(NULL);
    ops(h, 0, 50, 50);
    cr_assert_eq(health_evaluate(h, 1000, NULL), HEALTH_ERROR_RATE_HIGH);
    ops(h, 70000, 50, 0);
    cr_assert_eq(health_evaluate(h, 70000, NULL), HEALTH_HEALTHY);
    health_free(h);
}

Test(health, several_advisories_at_once)
{
    struct health_monitor *h = hm_make(NULL);
    disk(h, 0, 96, 100);
    xfer(h, 0, 1, 1000);
    ops(h, 0, 100, 60);
    struct health_report r;
    unsigned adv = health_evaluate(h, 0, &r);
    cr_assert_eq(adv, HEALTH_DISK_CRITICAL | HEALTH_THROUGHPUT_LOW |
                          HEALTH_ERROR_RATE_HIGH);
    cr_assert_eq(r.advisories, adv);
    cr_assert_eq(r.status, HEALTH_STATUS_UNHEALTHY);
    health_free(h);
}

Test(health, status_aggregation)
{
    cr_assert_eq(health_status_of(0), HEALTH_STATUS_HEALTHY);
    cr_assert_eq(health_status_of(HEALTH_DISK_WARNING), HEALTH_STATUS_DEGRADED);
    cr_assert_eq(health_status_of(HEALTH_THROUGHPUT_LOW),
                 HEALTH_STATUS_DEGRADED);
    cr_assert_eq(health_status_of(HEALTH_ERROR_RATE_HIGH),
                 HEALTH_STATUS_DEGRADED);
    cr_assert_eq(health_status_of(HEALTH_DISK_CRITICAL),
                 HEALTH_STATUS_UNHEALTHY);
    cr_assert_eq(health_status_of(HEALTH_DISK_EXHAUSTION_PREDICTED),
                 HEALTH_STATUS_UNHEALTHY);
    cr_assert_eq(health_status_of(HEALTH_DISK_WARNING |
                                  HEALTH_DISK_EXHAUSTION_PREDICTED),
                 HEALTH_STATUS_UNHEALTHY);
    cr_assert_str_eq(health_status_str(HEALTH_STATUS_HEALTHY), "healthy");
    cr_assert_str_eq(health_status_str(HEALTH_STATUS_DEGRADED), "degraded");
    cr_assert_str_eq(health_status_str(HEALTH_STATUS_UNHEALTHY), "unhealthy");
    cr_assert_str_eq(health_status_str((enum health_status)9), "unknown");
}

Test(health, advisory_names_round_trip)
{
    const struct {
        unsigned bit;
        const char *name;
    } t[] = {{HEALTH_HEALTHY, "healthy"},
             {HEALTH_DISK_CRITICAL, "disk_critical"},
             {HEALTH_DISK_WARNING, "disk_warning"},
             {HEALTH_DISK_EXHAUSTION_PREDICTED, "disk_exhaustion_predicted"},
             {HEALTH_THROUGHPUT_LOW, "throughput_low"},
             {HEALTH_ERROR_RATE_HIGH, "error_rate_high"}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        unsigned back = 0xFF;
        cr_assert_str_eq(health_advisory_str(t[i].bit), t[i].name);
        cr_assert_eq(health_advisory_parse(t[i].name, &back), 0);
        cr_assert_eq(back, t[i].bit);
    }
    unsigned out;
    cr_assert_str_eq(
        health_advisory_str(HEALTH_DISK_CRITICAL | HEALTH_DISK_WARNING),
        "unknown");
    cr_assert_str_eq(health_advisory_str(1u << 5), "unknown");
    cr_assert_eq(health_advisory_parse("disk", &out), ORBIT_EINVAL);
    cr_assert_eq(health_advisory_parse(NULL, &out), ORBIT_EINVAL);
}

Test(health, invalid_samples_and_config_refused)
{
    struct health_monitor *h = hm_make(NULL);
    cr_assert_eq(health_record_disk(h, 0, 1, 0), ORBIT_EINVAL);
    cr_assert_eq(health_record_disk(h, 0, 11, 10), ORBIT_EINVAL);
    cr_assert_eq(health_record_transfer(h, 0, 100, 0), ORBIT_EINVAL);
    cr_assert_eq(health_record_ops(h, 0, 3, 4), ORBIT_EINVAL);
    cr_assert_eq(health_record_ops(NULL, 0, 3, 1), ORBIT_EINVAL);
    HM_OK(h);
    cr_assert_eq(health_evaluate(h, 0, NULL), HEALTH_HEALTHY);
    health_free(h);

    struct health_config c;
    struct health_monitor *bad = (void *)1;
    health_config_default(&c);
    c.disk_warning = 0.97;
    cr_assert_eq(health_new(&c, &bad), ORBIT_EINVAL);
    cr_assert_null(bad);
    health_config_default(&c);
    c.disk_critical = 1.5;
    cr_assert_eq(health_new(&c, &bad), ORBIT_EINVAL);
    health_config_default(&c);
    c.min_regression_samples = c.disk_ring + 1;
    cr_assert_eq(health_new(&c, &bad), ORBIT_EINVAL);
    health_config_default(&c);
    c.window_ms = 0;
    cr_assert_eq(health_new(&c, &bad), ORBIT_EINVAL);
    health_config_default(&c);
    c.error_rate = 1.0;
    cr_assert_eq(health_new(&c, &bad), ORBIT_EINVAL);
    health_config_default(&c);
    c.error_min_ops = 0;
    cr_assert_eq(health_new(&c, &bad), ORBIT_EINVAL);
}

Test(health, huge_values_do_not_overflow)
{
    struct health_monitor *h = hm_make(NULL);
    disk(h, UINT64_MAX - 2 * MIN, UINT64_MAX / 2, UINT64_MAX);
    disk(h, UINT64_MAX - MIN, UINT64_MAX / 2 + 1000, UINT64_MAX);
    disk(h, UINT64_MAX, UINT64_MAX / 2 + 2000, UINT64_MAX);
    xfer(h, UINT64_MAX, UINT64_MAX, 1);
    ops(h, UINT64_MAX, UINT64_MAX, 0);
    struct health_report r;
    cr_assert_eq(health_evaluate(h, UINT64_MAX, &r), HEALTH_HEALTHY);
    cr_assert_gt(r.ms_to_full, 3600000);
    health_free(h);
}

static void *
hm_feeder(void *arg)
{
    struct health_monitor *h = arg;
    for (uint64_t i = 0; i < 3000; i++) {
        if (health_record_disk(h, i, i % 100, 100) != 0 ||
            health_record_transfer(h, i, 1 << 20, 10) != 0 ||
            health_record_ops(h, i, 10, i % 3) != 0)
            return (void *)1;
        (void)health_evaluate(h, i, NULL);
    }
    return NULL;
}

Test(health, concurrent_feed_and_evaluate)
{
    struct health_monitor *h = hm_make(NULL);
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, hm_feeder, h), 0);
    for (int i = 0; i < 3; i++) {
        void *rv;
        pthread_join(t[i], &rv);
        cr_assert_null(rv);
    }
    HM_OK(h);
    struct health_report r;
    health_evaluate(h, 3000, &r);
    cr_assert_eq(r.advisories & HEALTH_THROUGHPUT_LOW, 0);
    cr_assert_gt(r.error_fraction, 0.0);
    health_free(h);
}

Test(health, rate_ring_bounds_the_window)
{
    struct health_config c;
    health_config_default(&c);
    c.rate_ring = 4;
    struct health_monitor *h = hm_make(&c);
    ops(h, 0, 100, 100); /* falls out after four newer samples */
    for (int i = 0; i < 3; i++)
        ops(h, 1, 10, 0);
    cr_assert_eq(health_evaluate(h, 1, NULL), HEALTH_ERROR_RATE_HIGH);
    ops(h, 1, 10, 0);
    struct health_report r;
    cr_assert_eq(health_evaluate(h, 1, &r), HEALTH_HEALTHY);
    cr_assert_float_eq(r.error_fraction, 0.0, 1e-12);
    health_free(h);
}
