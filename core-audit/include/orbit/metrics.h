/*
 * orbit/metrics.h - a metrics registry (counters, gauges, histograms) and its
 * rendering in the Prometheus text exposition format (version 0.0.4).
 *
 * A metric family has a name, a HELP text, a type and a fixed list of label
 * names; each distinct list of label values is one series. Look a series up
 * once (metrics_counter_get() and friends), keep the handle, and update it on
 * the hot path: an update is a few atomic operations, no lock, no allocation.
 *
 *     struct metrics_counter *sent;
 *     const struct metrics_label l[] = {{"star", "alpha"}};
 *     metrics_counter_get(reg, "orbit_chunks_sent_total", "Chunks sent.",
 *                         l, 1, &sent);
 *     ...
 *     metrics_counter_add(sent, 1);
 *
 * The first lookup of a name registers the family (its type, HELP and label
 * names); later lookups must agree on type and label names (ORBIT_EINVAL
 * otherwise) and their HELP is ignored. A family holds at most max_series
 * series: a lookup of one more fails with ORBIT_EFULL and counts in the
 * family's dropped-series counter, exposed as
 * orbit_metrics_dropped_series_total{family="<name>"}.
 *
 * Ownership: the registry owns every handle; handles stay valid until
 * metrics_registry_free(). Label and HELP strings are copied. The caller
 * frees the string of metrics_render_alloc() with free().
 *
 * Errors: ORBIT_EINVAL (bad name, label name, bucket list, HELP or label
 * value that is not UTF-8, or a lookup that disagrees with the registered
 * family), ORBIT_ETOOBIG (a name, HELP or label
 * value past its METRICS_MAX_* bound, too many labels or buckets),
 * ORBIT_EFULL (series cap reached; render buffer too small), ORBIT_ENOENT
 * (quantile of an empty histogram), ORBIT_ENOMEM.
 *
 * Thread-safety: everything is thread-safe. Updates and value reads use
 * atomics only; lookups, registration and rendering take the registry mutex.
 * A render taken while updates run sees each value at some instant; a
 * histogram's buckets, +Inf bucket and _count always agree with each other.
 */
#ifndef ORBIT_METRICS_H
#define ORBIT_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_MAX_NAME        200         /* metric and label name bytes */
#define METRICS_MAX_HELP        1024        /* HELP text bytes */
#define METRICS_MAX_LABELS      8           /* label names per family */
#define METRICS_MAX_LABEL_VALUE 1024        /* label value bytes */
#define METRICS_MAX_BUCKETS     64          /* finite histogram bounds */
#define METRICS_DEFAULT_SERIES  1000        /* series per family by default */
#define METRICS_MAX_RENDER      (64u << 20) /* rendered text bytes */

struct metrics_registry;
struct metrics_counter;
struct metrics_gauge;
struct metrics_histogram;

struct metrics_label {
    const char *name;
    const char *value;
};

/* A registry capping each family at max_series series (0: the default). */
int metrics_registry_new(size_t max_series, struct metrics_registry **out);

/* Free the registry and every handle it gave out; NULL is a no-op. */
void metrics_registry_free(struct metrics_registry *reg);

/* Whether name matches [a-zA-Z_:][a-zA-Z0-9_:]* (and its length bound). */
bool metrics_name_valid(const char *name);

/* Whether name matches [a-zA-Z_][a-zA-Z0-9_]* and does not start with "__". */
bool metrics_label_name_valid(const char *name);

/* Series dropped so far from family name by its cardinality cap. */
int metrics_dropped_series(struct metrics_registry *reg, const char *name,
                           uint64_t *out);

/* ---- counters: monotonically increasing uint64 ---- */

int metrics_counter_get(struct metrics_registry *reg, const char *name,
                        const char *help, const struct metrics_label *labels,
                        size_t n_labels, struct metrics_counter **out);
void metrics_counter_add(struct metrics_counter *c, uint64_t n);
void metrics_counter_inc(struct metrics_counter *c);
uint64_t metrics_counter_value(const struct metrics_counter *c);

/* ---- gauges: a value that goes up and down ---- */

/* A gauge holding a double. */
int metrics_gauge_get(struct metrics_registry *reg, const char *name,
                      const char *help, const struct metrics_label *labels,
                      size_t n_labels, struct metrics_gauge **out);
/* A gauge holding an int64 (exact beyond 2^53, rendered as an integer). */
int metrics_gauge_get_i64(struct metrics_registry *reg, const char *name,
                          const char *help, const struct metrics_label *labels,
                          size_t n_labels, struct metrics_gauge **out);
/* Either kind accepts either call; an int64 gauge rounds doubles. */
void metrics_gauge_set(struct metrics_gauge *g, double v);
void metrics_gauge_add(struct metrics_gauge *g, double delta);
void metrics_gauge_set_i64(struct metrics_gauge *g, int64_t v);
void metrics_gauge_add_i64(struct metrics_gauge *g, int64_t delta);
double metrics_gauge_value(const struct metrics_gauge *g);
int64_t metrics_gauge_value_i64(const struct metrics_gauge *g);

/* ---- histograms: observations counted in fixed buckets ---- */

/*
 * bounds: strictly increasing finite upper bounds (le), 1 to
 * METRICS_MAX_BUCKETS of them; +Inf is implicit. The first lookup fixes the
 * bounds; later ones may pass bounds = NULL, n_bounds = 0, or the same list.
 * The label name "le" is reserved.
 */
int metrics_histogram_get(struct metrics_registry *reg, const char *name,
                          const char *help, const struct metrics_label *labels,
                          size_t n_labels, const double *bounds,
                          size_t n_bounds, struct metrics_histogram **out);
/* Count v in the first bucket with v <= le (NaN is ignored). */
void metrics_histogram_observe(struct metrics_histogram *h, double v);
uint64_t metrics_histogram_count(const struct metrics_histogram *h);
double metrics_histogram_sum(const struct metrics_histogram *h);

/*
 * Estimate the q-quantile (0 <= q <= 1) by linear interpolation inside the
 * bucket holding rank q * count, the way Prometheus' histogram_quantile()
 * does: the lowest bucket starts at 0 (or at its bound if that is <= 0), and
 * a rank in the +Inf bucket answers the highest finite bound.
 */
int metrics_histogram_quantile(const struct metrics_histogram *h, double q,
                               double *out);

/* ---- exposition ---- */

/*
 * Render every family, in registration order, into buf (NUL-terminated).
 * *len receives the text length without the NUL; ORBIT_EFULL if cap is too
 * small, with *len set to the length needed.
 */
int metrics_render(struct metrics_registry *reg, char *buf, size_t cap,
                   size_t *len);

/* Render into a malloc'd string; len may be NULL. */
int metrics_render_alloc(struct metrics_registry *reg, char **out, size_t *len);

#endif
