#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orbit/error.h"
#include "orbit/metrics.h"

#include "audit_check.h"

static struct metrics_registry *reg;

static void
setup(void)
{
    cr_assert_eq(metrics_registry_new(0, &reg), 0);
}

static void
teardown(void)
{
    cr_assert_eq(metrics_registry_check(reg), 0);
    metrics_registry_free(reg);
    reg = NULL;
}

TestSuite(metrics, .init = setup, .fini = teardown);

Test(metrics, name_rules)
{
    cr_assert(metrics_name_valid("orbit_bytes_total"));
    cr_assert(metrics_name_valid(":ns:rate5m"));
    cr_assert(metrics_name_valid("_x9"));
    cr_assert_not(metrics_name_valid(""));
    cr_assert_not(metrics_name_valid("9lives"));
    cr_assert_not(metrics_name_valid("a-b"));
    cr_assert_not(metrics_name_valid("a b"));
    cr_assert_not(metrics_name_valid("é"));
    cr_assert_not(metrics_name_valid(NULL));
    cr_assert(metrics_label_name_valid("star"));
    cr_assert(metrics_label_name_valid("_x"));
    cr_assert_not(metrics_label_name_valid("__reserved"));
    cr_assert_not(metrics_label_name_valid("a:b"));
    cr_assert_not(metrics_label_name_valid("1a"));
    char longname[METRICS_MAX_NAME + 2];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    cr_assert_not(metrics_name_valid(longname));
}

Test(metrics, lookup_returns_the_same_handle)
{
    struct metrics_counter *a, *b, *c;
    const struct metrics_label l1[] = {{"star", "alpha"}};
    const struct metrics_label l2[] = {{"star", "beta"}};
    cr_assert_eq(metrics_counter_get(reg, "sent_total", "Sent.", l1, 1, &a), 0);
    cr_assert_eq(metrics_counter_get(reg, "sent_total", NULL, l1, 1, &b), 0);
    cr_assert_eq(metrics_counter_get(reg, "sent_total", NULL, l2, 1, &c), 0);
    cr_assert_eq(a, b);
    cr_assert_neq(a, c);
    metrics_counter_add(a, 5);
    metrics_counter_inc(b);
    cr_assert_eq(metrics_counter_value(a), 6);
    cr_assert_eq(metrics_counter_value(c), 0);
}

Test(metrics, lookup_must_agree_with_the_family)
{
    struct metrics_counter *c;
    struct metrics_gauge *g;
    struct metrics_histogram *h;
    const struct metrics_label l1[] = {{"star", "a"}};
    const struct metrics_label other[] = {{"host", "a"}};
    const struct metrics_label dup[] = {{"a", "1"}, {"a", "2"}};
    const struct metrics_label le[] = {{"le", "1"}};
    const struct metrics_label bad[] = {{"__x", "1"}};
    const double b1[] = {1, 2}, b2[] = {1, 3}, unsorted[] = {2, 1};
    const double inf[] = {1, INFINITY};

    cr_assert_eq(metrics_counter_get(reg, "x_total", "", l1, 1, &c), 0);
    cr_assert_eq(metrics_gauge_get(reg, "x_total", "", l1, 1, &g), ORBIT_EINVAL,
                 "other type");
    cr_assert_eq(metrics_counter_get(reg, "x_total", "", other, 1, &c),
                 ORBIT_EINVAL, "other label names");
    cr_assert_eq(metrics_counter_get(reg, "x_total", "", NULL, 0, &c),
                 ORBIT_EINVAL, "other label count");
    cr_assert_eq(metrics_counter_get(reg, "y", "", dup, 2, &c), ORBIT_EINVAL);
    cr_assert_eq(metrics_counter_get(reg, "y", "", bad, 1, &c), ORBIT_EINVAL);
    const struct metrics_label latin1[] = {{"path", "caf\xe9"}};
    cr_assert_eq(metrics_counter_get(reg, "y", "", latin1, 1, &c),
                 ORBIT_EINVAL);
    cr_assert_eq(metrics_counter_get(reg, "y", "\xff", NULL, 0, &c),
                 ORBIT_EINVAL);
    cr_assert_eq(metrics_counter_get(reg, "bad name", "", NULL, 0, &c),
                 ORBIT_EINVAL);
    cr_assert_eq(metrics_counter_get(reg, "orbit_metrics_dropped_series_total",
                                     "", NULL, 0, &c),
                 ORBIT_EINVAL);

    cr_assert_eq(metrics_histogram_get(reg, "h", "", NULL, 0, NULL, 0, &h),
                 ORBIT_EINVAL, "first lookup needs bounds");
    cr_assert_eq(metrics_histogram_get(reg, "h", "", NULL, 0, unsorted, 2, &h),
                 ORBIT_EINVAL);
    cr_assert_eq(metrics_histogram_get(reg, "h", "", NULL, 0, inf, 2, &h),
                 ORBIT_EINVAL);
    cr_assert_eq(metrics_histogram_get(reg, "h", "", le, 1, b1, 2, &h),
                 ORBIT_EINVAL, "le is reserved");
    cr_assert_eq(metrics_histogram_get(reg, "h", "", NULL, 0, b1, 2, &h), 0);
    struct metrics_histogram *h2;
    cr_assert_eq(metrics_histogram_get(reg, "h", "", NULL, 0, NULL, 0, &h2), 0);
    cr_assert_eq(h, h2);
    cr_assert_eq(metrics_histogram_get(reg, "h", "", NULL, 0, b2, 2, &h2),
                 ORBIT_EINVAL, "other bounds");

    const struct metrics_label nine[9] = {{"a", "1"}, {"b", "1"}, {"c", "1"},
                                          {"d", "1"}, {"e", "1"}, {"f", "1"},
                                          {"g", "1"}, {"h", "1"}, {"i", "1"}};
    cr_assert_eq(metrics_counter_get(reg, "z", "", nine, 9, &c), ORBIT_ETOOBIG);
}

Test(metrics, cardinality_cap)
{
    struct metrics_registry *r;
    cr_assert_eq(metrics_registry_new(3, &r), 0);
    struct metrics_counter *c;
    char v[16];
    for (int i = 0; i < 3; i++) {
        snprintf(v, sizeof v, "s%d", i);
        const struct metrics_label l[] = {{"star", v}};
        cr_assert_eq(metrics_counter_get(r, "req_total", "", l, 1, &c), 0);
    }
    for (int i = 3; i < 8; i++) {
        snprintf(v, sizeof v, "s%d", i);
        const struct metrics_label l[] = {{"star", v}};
        cr_assert_eq(metrics_counter_get(r, "req_total", "", l, 1, &c),
                     ORBIT_EFULL);
    }
    /* Existing series are still found at the cap. */
    const struct metrics_label l0[] = {{"star", "s0"}};
    cr_assert_eq(metrics_counter_get(r, "req_total", "", l0, 1, &c), 0);
    uint64_t dropped = 0;
    cr_assert_eq(metrics_dropped_series(r, "req_total", &dropped), 0);
    cr_assert_eq(dropped, 5);
    cr_assert_eq(metrics_dropped_series(r, "nope", &dropped), ORBIT_ENOENT);
    cr_assert_eq(metrics_registry_check(r), 0);

    /* The cap is per family. */
    struct metrics_gauge *g;
    cr_assert_eq(metrics_gauge_get(r, "other", "", l0, 1, &g), 0);

    char *text = NULL;
    cr_assert_eq(metrics_render_alloc(r, &text, NULL), 0);
    cr_assert_not_null(strstr(
        text, "orbit_metrics_dropped_series_total{family=\"req_total\"} 5\n"));
    free(text);
    metrics_registry_free(r);
}

Test(metrics, gauges)
{
    struct metrics_gauge *d, *i;
    cr_assert_eq(metrics_gauge_get(reg, "temp", "", NULL, 0, &d), 0);
    cr_assert_eq(metrics_gauge_get_i64(reg, "inflight", "", NULL, 0, &i), 0);
    metrics_gauge_set(d, 2.5);
    metrics_gauge_add(d, -1.25);
    cr_assert_float_eq(metrics_gauge_value(d), 1.25, 1e-12);
    metrics_gauge_add_i64(d, 2);
    cr_assert_float_eq(metrics_gauge_value(d), 3.25, 1e-12);

    const int64_t big = (1LL << 60) + 1; /* not exact as a double */
    metrics_gauge_set_i64(i, big);
    metrics_gauge_add_i64(i, -2);
    cr_assert_eq(metrics_gauge_value_i64(i), big - 2);
    metrics_gauge_set(i, 7.6);
    cr_assert_eq(metrics_gauge_value_i64(i), 8);
    metrics_gauge_add(i, -10.0);
    cr_assert_eq(metrics_gauge_value_i64(i), -2);
    cr_assert_float_eq(metrics_gauge_value(i), -2.0, 1e-12);
    struct metrics_gauge *other;
    cr_assert_eq(metrics_gauge_get(reg, "inflight", "", NULL, 0, &other),
                 ORBIT_EINVAL, "kind is part of the family");
}

/* Quantiles from Prometheus' interpolation, worked by hand. */
Test(metrics, histogram_quantiles_known_data)
{
    const double bounds[] = {1, 2, 4, 8};
    struct metrics_histogram *h;
    double q;
    cr_assert_eq(metrics_histogram_get(reg, "lat", "", NULL, 0, bounds, 4, &h),
                 0);
    cr_assert_eq(metrics_histogram_quantile(h, 0.5, &q), ORBIT_ENOENT);
    for (int i = 0; i < 10; i++)
        metrics_histogram_observe(h, 0.5); /* (0,1]: 10 */
    for (int i = 0; i < 20; i++)
        metrics_histogram_observe(h, 2.0); /* (1,2]: 20, le is inclusive */
    for (int i = 0; i < 30; i++)
        metrics_histogram_observe(h, 3.0); /* (2,4]: 30 */
    for (int i = 0; i < 40; i++)
        metrics_histogram_observe(h, 5.0); /* (4,8]: 40 */
    metrics_histogram_observe(h, NAN);     /* ignored */
    cr_assert_eq(metrics_histogram_count(h), 100);
    cr_assert_float_eq(metrics_histogram_sum(h), 5 + 40 + 90 + 200, 1e-9);

    cr_assert_eq(metrics_histogram_quantile(h, 0.5, &q), 0);
    cr_assert_float_eq(q, 2.0 + 2.0 * 20.0 / 30.0, 1e-9);
    cr_assert_eq(metrics_histogram_quantile(h, 0.95, &q), 0);
    cr_assert_float_eq(q, 7.5, 1e-9);
    cr_assert_eq(metrics_histogram_quantile(h, 0.99, &q), 0);
    cr_assert_float_eq(q, 7.9, 1e-9);
    cr_assert_eq(metrics_histogram_quantile(h, 0.05, &q), 0);
    cr_assert_float_eq(q, 0.5, 1e-9);
    cr_assert_eq(metrics_histogram_quantile(h, 0.0, &q), 0);
    cr_assert_float_eq(q, 0.0, 1e-9);
    cr_assert_eq(metrics_histogram_quantile(h, 1.0, &q), 0);
    cr_assert_float_eq(q, 8.0, 1e-9);
    cr_assert_eq(metrics_histogram_quantile(h, 1.5, &q), ORBIT_EINVAL);
    cr_assert_eq(metrics_histogram_quantile(h, NAN, &q), ORBIT_EINVAL);

    /* Everything above the last bound: the answer is that bound. */
    for (int i = 0; i < 1000; i++)
        metrics_histogram_observe(h, 100.0);
    cr_assert_eq(metrics_histogram_quantile(h, 0.99, &q), 0);
    cr_assert_float_eq(q, 8.0, 1e-9);
}

Test(metrics, histogram_quantiles_uniform)
{
    double bounds[10];
    for (int i = 0; i < 10; i++)
        bounds[i] = 100.0 * (i + 1);
    struct metrics_histogram *h;
    cr_assert_eq(
        metrics_histogram_get(reg, "size", "", NULL, 0, bounds, 10, &h), 0);
    for (int v = 1; v <= 1000; v++)
        metrics_histogram_observe(h, v);
    double p50, p95, p99;
    cr_assert_eq(metrics_histogram_quantile(h, 0.50, &p50), 0);
    cr_assert_eq(metrics_histogram_quantile(h, 0.95, &p95), 0);
    cr_assert_eq(metrics_histogram_quantile(h, 0.99, &p99), 0);
    cr_assert_float_eq(p50, 500.0, 1e-9);
    cr_assert_float_eq(p95, 950.0, 1e-9);
    cr_assert_float_eq(p99, 990.0, 1e-9);
}

Test(metrics, histogram_negative_first_bound)
{
    const double bounds[] = {-1, 0, 1};
    struct metrics_histogram *h;
    double q;
    cr_assert_eq(
        metrics_histogram_get(reg, "delta", "", NULL, 0, bounds, 3, &h), 0);
    metrics_histogram_observe(h, -5);
    metrics_histogram_observe(h, 0.5);
    cr_assert_eq(metrics_histogram_quantile(h, 0.25, &q), 0);
    cr_assert_float_eq(q, -1.0, 1e-9);
    cr_assert_eq(metrics_histogram_quantile(h, 1.0, &q), 0);
    cr_assert_float_eq(q, 1.0, 1e-9);
}

#define THREADS 8
#define ITERS   100000

struct handles {
    struct metrics_counter *c;
    struct metrics_gauge *gd;
    struct metrics_gauge *gi;
    struct metrics_histogram *h;
};

static void *
hammer(void *p)
{
    const struct handles *hs = p;
    for (int i = 0; i < ITERS; i++) {
        metrics_counter_add(hs->c, 3);
        metrics_gauge_add(hs->gd, 1.0);
        metrics_gauge_add_i64(hs->gi, i % 2 ? 5 : -3);
        metrics_histogram_observe(hs->h, (double)(i % 4));
    }
    return NULL;
}

struct lookup_arg {
    struct metrics_registry *reg;
    int id;
};

static void *
register_many(void *p)
{
    const struct lookup_arg *a = p;
    for (int i = 0; i < 200; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        const struct metrics_label l[] = {{"n", v}};
        struct metrics_counter *c;
        cr_assert_eq(metrics_counter_get(a->reg, "reg_total", "", l, 1, &c), 0);
        metrics_counter_inc(c);
    }
    return NULL;
}

Test(metrics, concurrent_updates_sum_exactly)
{
    struct handles hs;
    const double bounds[] = {0.5, 1.5, 2.5};
    cr_assert_eq(metrics_counter_get(reg, "ops_total", "", NULL, 0, &hs.c), 0);
    cr_assert_eq(metrics_gauge_get(reg, "level", "", NULL, 0, &hs.gd), 0);
    cr_assert_eq(metrics_gauge_get_i64(reg, "net", "", NULL, 0, &hs.gi), 0);
    cr_assert_eq(
        metrics_histogram_get(reg, "val", "", NULL, 0, bounds, 3, &hs.h), 0);
    pthread_t th[THREADS];
    struct lookup_arg la[2] = {{reg, 0}, {reg, 1}};
    pthread_t reg_th[2];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&th[i], NULL, hammer, &hs);
    for (int i = 0; i < 2; i++)
        pthread_create(&reg_th[i], NULL, register_many, &la[i]);
    /* Renders run alongside the updates. */
    for (int i = 0; i < 20; i++) {
        char *text = NULL;
        cr_assert_eq(metrics_render_alloc(reg, &text, NULL), 0);
        free(text);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++)
        pthread_join(reg_th[i], NULL);

    cr_assert_eq(metrics_counter_value(hs.c), 3ULL * THREADS * ITERS);
    cr_assert_float_eq(metrics_gauge_value(hs.gd), (double)THREADS * ITERS,
                       1e-6);
    cr_assert_eq(metrics_gauge_value_i64(hs.gi), (int64_t)THREADS * ITERS);
    cr_assert_eq(metrics_histogram_count(hs.h), (uint64_t)THREADS * ITERS);
    cr_assert_float_eq(metrics_histogram_sum(hs.h), 1.5 * THREADS * ITERS,
                       1e-6);
    for (int i = 0; i < 200; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        const struct metrics_label l[] = {{"n", v}};
        struct metrics_counter *c;
        cr_assert_eq(metrics_counter_get(reg, "reg_total", "", l, 1, &c), 0);
        cr_assert_eq(metrics_counter_value(c), 2);
    }
}

Test(metrics, render_into_caller_buffer)
{
    struct metrics_counter *c;
    cr_assert_eq(metrics_counter_get(reg, "a_total", "A.", NULL, 0, &c), 0);
    metrics_counter_add(c, 12);
    char small[8];
    size_t len = 0;
    cr_assert_eq(metrics_render(reg, small, sizeof small, &len), ORBIT_EFULL);
    cr_assert_gt(len, sizeof small);
    char *buf = malloc(len + 1);
    size_t len2 = 0;
    cr_assert_eq(metrics_render(reg, buf, len + 1, &len2), 0);
    cr_assert_eq(len2, len);
    cr_assert_eq(strlen(buf), len);
    cr_assert_not_null(strstr(buf, "\na_total 12\n"));
    free(buf);
}
