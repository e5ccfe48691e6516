/*
 * metrics_internal.h - the registry's data, shared by the registry and the
 * renderer. Families and series are only ever appended (under the registry
 * mutex) and freed with the registry, so handles never dangle.
 */
#ifndef ORBIT_METRICS_INTERNAL_H
#define ORBIT_METRICS_INTERNAL_H

#include "orbit/metrics.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#define METRICS_DROPPED_FAMILY "orbit_metrics_dropped_series_total"

enum metrics_kind {
    METRICS_COUNTER,
    METRICS_GAUGE,
    METRICS_GAUGE_I64,
    METRICS_HISTOGRAM,
};

struct metrics_counter {
    _Atomic uint64_t v;
};

struct metrics_gauge {
    _Atomic uint64_t bits; /* a double's bits, or an int64 */
    bool is_int;
};

struct metrics_histogram {
    const double *bounds; /* the family's; n_bounds finite upper bounds */
    size_t n_bounds;
    _Atomic uint64_t sum_bits; /* a double's bits */
    _Atomic uint64_t counts[]; /* per bucket, not cumulative; +Inf last */
};

struct metrics_series {
    struct metrics_series *next;
    char *values[METRICS_MAX_LABELS];
    struct metrics_counter counter;
    struct metrics_gauge gauge;
    struct metrics_histogram *hist;
};

struct metrics_family {
    struct metrics_family *next;
    char *name;
    char *help;
    enum metrics_kind kind;
    size_t n_labels;
    char *label_names[METRICS_MAX_LABELS];
    size_t n_bounds;
    double *bounds;
    size_t n_series;
    struct metrics_series *series;
    struct metrics_series **series_tail;
    _Atomic uint64_t dropped;
};

struct metrics_registry {
    pthread_mutex_t mu;
    size_t max_series;
    struct metrics_family *families;
    struct metrics_family **families_tail;
};

double metrics_bits_to_double(uint64_t bits);
uint64_t metrics_double_to_bits(double v);

#endif
