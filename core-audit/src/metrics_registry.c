/*
 * metrics_registry.c - families, series lookup with a cardinality cap, and
 * the lock-free value updates.
 */
#include "metrics_internal.h"

#include "audit_check.h"

#include "orbit/error.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double
metrics_bits_to_double(uint64_t bits)
{
    double v;
    memcpy(&v, &bits, sizeof v);
    return v;
}

uint64_t
metrics_double_to_bits(double v)
{
    uint64_t bits;
    memcpy(&bits, &v, sizeof bits);
    return bits;
}

static void
atomic_add_double(_Atomic uint64_t *cell, double delta)
{
    uint64_t old = atomic_load_explicit(cell, memory_order_relaxed);
    uint64_t upd;
    do {
        upd = metrics_double_to_bits(metrics_bits_to_double(old) + delta);
    } while (!atomic_compare_exchange_weak_explicit(
        cell, &old, upd, memory_order_relaxed, memory_order_relaxed));
}

/* ---- names ---- */

static bool
name_chars_ok(const char *name, bool colon)
{
    const size_t n = strlen(name);
    if (n == 0 || n > METRICS_MAX_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        const char c = name[i];
        const bool alpha =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        const bool digit = c >= '0' && c <= '9';
        if (!(alpha || (colon && c == ':') || (i > 0 && digit)))
            return false;
    }
    return true;
}

bool
metrics_name_valid(const char *name)
{
    return name && name_chars_ok(name, true);
}

bool
metrics_label_name_valid(const char *name)
{
    return name && name_chars_ok(name, false) && strncmp(name, "__", 2) != 0;
}

/* ---- registry ---- */

int
metrics_registry_new(size_t max_series, struct metrics_registry **out)
{
    if (!out)
        return ORBIT_EINVAL;
    struct metrics_registry *reg = calloc(1, sizeof *reg);
    if (!reg)
        return ORBIT_ENOMEM;
    pthread_mutex_init(&reg->mu, NULL);
    reg->max_series = max_series ? max_series : METRICS_DEFAULT_SERIES;
    reg->families_tail = &reg->families;
    *out = reg;
    return 0;
}

static void
series_free(struct metrics_series *s, size_t n_labels)
{
    for (size_t i = 0; i < n_labels; i++)
        free(s->values[i]);
    free(s->hist);
    free(s);
}

static void
family_free(struct metrics_family *f)
{
    struct metrics_series *s = f->series;
    while (s) {
        struct metrics_series *next = s->next;
        series_free(s, f->n_labels);
        s = next;
    }
    for (size_t i = 0; i < f->n_labels; i++)
        free(f->label_names[i]);
    free(f->bounds);
    free(f->name);
    free(f->help);
    free(f);
}

void
metrics_registry_free(struct metrics_registry *reg)
{
    if (!reg)
        return;
    struct metrics_family *f = reg->families;
    while (f) {
        struct metrics_family *next = f->next;
        family_free(f);
        f = next;
    }
    pthread_mutex_destroy(&reg->mu);
    free(reg);
}

static struct metrics_family *
family_find(const struct metrics_registry *reg, const char *name)
{
    for (struct metrics_family *f = reg->families; f; f = f->next)
        if (strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

int
metrics_dropped_series(struct metrics_registry *reg, const char *name,
                       uint64_t *out)
{
    if (!reg || !name || !out)
        return ORBIT_EINVAL;
    pthread_mutex_lock(&reg->mu);
    const struct metrics_family *f = family_find(reg, name);
    if (f)
        *out = atomic_load(&f->dropped);
    pthread_mutex_unlock(&reg->mu);
    return f ? 0 : ORBIT_ENOENT;
}

/* What a lookup asks for, checked before the registry is touched. */
struct lookup {
    const char *name;
    const char *help;
    enum metrics_kind kind;
    const struct metrics_label *labels;
    size_t n_labels;
    const double *bounds;
    size_t n_bounds;
};

static int
check_bounds(const double *bounds, size_t n)
{
    if (n == 0)
        return 0;
    if (!bounds)
        return ORBIT_EINVAL;
    if (n > METRICS_MAX_BUCKETS)
        return ORBIT_ETOOBIG;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
            return ORBIT_EINVAL;
    return 0;
}

static int
check_lookup(const struct lookup *q)
{
    if (!q->name || (q->n_labels && !q->labels))
        return ORBIT_EINVAL;
    if (strlen(q->name) > METRICS_MAX_NAME ||
        (q->help && strlen(q->help) > METRICS_MAX_HELP))
        return ORBIT_ETOOBIG;
    if (!metrics_name_valid(q->name) ||
        (q->help && !prov_utf8_valid(q->help)) ||
        strcmp(q->name, METRICS_DROPPED_FAMILY) == 0)
        return ORBIT_EINVAL;
    if (q->n_labels > METRICS_MAX_LABELS)
        return ORBIT_ETOOBIG;
    for (size_t i = 0; i < q->n_labels; i++) {
        const struct metrics_label *l = &q->labels[i];
        if (!metrics_label_name_valid(l->name) || !l->value ||
            (q->kind == METRICS_HISTOGRAM && strcmp(l->name, "le") == 0))
            return ORBIT_EINVAL;
        if (strlen(l->value) > METRICS_MAX_LABEL_VALUE)
            return ORBIT_ETOOBIG;
        if (!prov_utf8_valid(l->value))
            return ORBIT_EINVAL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(q->labels[j].name, l->name) == 0)
                return ORBIT_EINVAL;
    }
    if (q->kind == METRICS_HISTOGRAM)
        return check_bounds(q->bounds, q->n_bounds);
    return 0;
}

/* Whether an existing family is the one q asks for. */
static bool
family_matches(const struct metrics_family *f, const struct lookup *q)
{
    if (f->kind != q->kind || f->n_labels != q->n_labels)
        return false;
    for (size_t i = 0; i < q->n_labels; i++)
        if (strcmp(f->label_names[i], q->labels[i].name) != 0)
            return false;
    if (q->kind != METRICS_HISTOGRAM || q->n_bounds == 0)
        return true;
    return f->n_bounds == q->n_bounds &&
           memcmp(f->bounds, q->bounds, q->n_bounds * sizeof(double)) == 0;
}

static int
family_new(struct metrics_registry *reg, const struct lookup *q,
           struct metrics_family **out)
{
    if (q->kind == METRICS_HISTOGRAM && q->n_bounds == 0)
        return ORBIT_EINVAL;
    struct metrics_family *f = calloc(1, sizeof *f);
    if (!f)
        return ORBIT_ENOMEM;
    f->kind = q->kind;
    f->series_tail = &f->series;
    f->name = strdup(q->name);
    f->help = strdup(q->help ? q->help : "");
    bool ok = f->name && f->help;
    for (size_t i = 0; i < q->n_labels && ok; i++) {
        f->label_names[i] = strdup(q->labels[i].name);
        ok = f->label_names[i] != NULL;
        f->n_labels = i + 1;
    }
    if (ok && q->n_bounds) {
        f->bounds = malloc(q->n_bounds * sizeof(double));
        ok = f->bounds != NULL;
        if (ok)
            memcpy(f->bounds, q->bounds, q->n_bounds * sizeof(double));
        f->n_bounds = q->n_bounds;
    }
    if (!ok) {
        family_free(f);
        return ORBIT_ENOMEM;
    }
    *reg->families_tail = f;
    reg->families_tail = &f->next;
    *out = f;
    return 0;
}

static struct metrics_series *
series_find(const struct metrics_family *f, const struct metrics_label *labels)
{
    for (struct metrics_series *s = f->series; s; s = s->next) {
        size_t i = 0;
        while (i < f->n_labels && strcmp(s->values[i], labels[i].value) == 0)
            i++;
        if (i == f->n_labels)
            return s;
    }
    return NULL;
}

static int
series_new(struct metrics_family *f, const struct lookup *q,
           struct metrics_series **out)
{
    struct metrics_series *s = calloc(1, sizeof *s);
    if (!s)
        return ORBIT_ENOMEM;
    bool ok = true;
    for (size_t i = 0; i < f->n_labels && ok; i++)
        ok = (s->values[i] = strdup(q->labels[i].value)) != NULL;
    if (ok && f->kind == METRICS_HISTOGRAM) {
        const size_t n = f->n_bounds + 1;
        s->hist = calloc(1, sizeof *s->hist + n * sizeof s->hist->counts[0]);
        ok = s->hist != NULL;
        if (ok) {
            s->hist->bounds = f->bounds;
            s->hist->n_bounds = f->n_bounds;
        }
    }
    if (!ok) {
        series_free(s, f->n_labels);
        return ORBIT_ENOMEM;
    }
    s->gauge.is_int = f->kind == METRICS_GAUGE_I64;
    *f->series_tail = s;
    f->series_tail = &s->next;
    f->n_series++;
    *out = s;
    return 0;
}

static int
lookup_locked(struct metrics_registry *reg, const struct lookup *q,
              struct metrics_series **out)
{
    struct metrics_family *f = family_find(reg, q->name);
    int rc = 0;
    if (!f)
        rc = family_new(reg, q, &f);
    else if (!family_matches(f, q))
        rc = ORBIT_EINVAL;
    if (rc < 0)
        return rc;
    *out = series_find(f, q->labels);
    if (*out)
        return 0;
    if (f->n_series >= reg->max_series) {
        atomic_fetch_add(&f->dropped, 1);
        return ORBIT_EFULL;
    }
    return series_new(f, q, out);
}

static int
lookup(struct metrics_registry *reg, const struct lookup *q,
       struct metrics_series **out)
{
    if (!reg || !out)
        return ORBIT_EINVAL;
    const int rc = check_lookup(q);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&reg->mu);
    const int ret = lookup_locked(reg, q, out);
    pthread_mutex_unlock(&reg->mu);
    return ret;
}

/* ---- counters ---- */

int
metrics_counter_get(struct metrics_registry *reg, const char *name,
                    const char *help, const struct metrics_label *labels,
                    size_t n_labels, struct metrics_counter **out)
{
    const struct lookup q = {name, help, METRICS_COUNTER, labels, n_labels,
                             NULL, 0};
    struct metrics_series *s = NULL;
    const int rc = out ? lookup(reg, &q, &s) : ORBIT_EINVAL;
    if (rc == 0)
        *out = &s->counter;
    return rc;
}

void
metrics_counter_add(struct metrics_counter *c, uint64_t n)
{
    atomic_fetch_add_explicit(&c->v, n, memory_order_relaxed);
}

void
metrics_counter_inc(struct metrics_counter *c)
{
    atomic_fetch_add_explicit(&c->v, 1, memory_order_relaxed);
}

uint64_t
metrics_counter_value(const struct metrics_counter *c)
{
    return atomic_load_explicit(&((struct metrics_counter *)c)->v,
                                memory_order_relaxed);
}

/* ---- gauges ---- */

static int
gauge_get(struct metrics_registry *reg, const struct lookup *q,
          struct metrics_gauge **out)
{
    struct metrics_series *s = NULL;
    const int rc = out ? lookup(reg, q, &s) : ORBIT_EINVAL;
    if (rc == 0)
        *out = &s->gauge;
    return rc;
}

int
metrics_gauge_get(struct metrics_registry *reg, const char *name,
                  const char *help, const struct metrics_label *labels,
                  size_t n_labels, struct metrics_gauge **out)
{
    const struct lookup q = {name, help, METRICS_GAUGE, labels, n_labels,
                             NULL, 0};
    return gauge_get(reg, &q, out);
}

int
metrics_gauge_get_i64(struct metrics_registry *reg, const char *name,
                      const char *help, const struct metrics_label *labels,
                      size_t n_labels, struct metrics_gauge **out)
{
    const struct lookup q = {name, help, METRICS_GAUGE_I64, labels, n_labels,
                             NULL, 0};
    return gauge_get(reg, &q, out);
}

/* The int64 nearest v, saturating; NaN is 0. */
static int64_t
to_i64(double v)
{
    if (isnan(v))
        return 0;
    if (v >= 9223372036854775807.0)
        return INT64_MAX;
    if (v <= -9223372036854775808.0)
        return INT64_MIN;
    return (int64_t)llround(v);
}

void
metrics_gauge_set(struct metrics_gauge *g, double v)
{
    const uint64_t bits =
        g->is_int ? (uint64_t)to_i64(v) : metrics_double_to_bits(v);
    atomic_store_explicit(&g->bits, bits, memory_order_relaxed);
}

void
metrics_gauge_add(struct metrics_gauge *g, double delta)
{
    if (g->is_int)
        metrics_gauge_add_i64(g, to_i64(delta));
    else
        atomic_add_double(&g->bits, delta);
}

void
metrics_gauge_set_i64(struct metrics_gauge *g, int64_t v)
{
    if (g->is_int)
        atomic_store_explicit(&g->bits, (uint64_t)v, memory_order_relaxed);
    else
        metrics_gauge_set(g, (double)v);
}

void
metrics_gauge_add_i64(struct metrics_gauge *g, int64_t delta)
{
    /* Unsigned wrap-around gives two's complement addition without UB. */
    if (g->is_int)
        atomic_fetch_add_explicit(&g->bits, (uint64_t)delta,
                                  memory_order_relaxed);
    else
        atomic_add_double(&g->bits, (double)delta);
}

static uint64_t
gauge_bits(const struct metrics_gauge *g)
{
    return atomic_load_explicit(&((struct metrics_gauge *)g)->bits,
                                memory_order_relaxed);
}

double
metrics_gauge_value(const struct metrics_gauge *g)
{
    const uint64_t bits = gauge_bits(g);
    return g->is_int ? (double)(int64_t)bits : metrics_bits_to_double(bits);
}

int64_t
metrics_gauge_value_i64(const struct metrics_gauge *g)
{
    const uint64_t bits = gauge_bits(g);
    return g->is_int ? (int64_t)bits : to_i64(metrics_bits_to_double(bits));
}

/* ---- histograms ---- */

int
metrics_histogram_get(struct metrics_registry *reg, const char *name,
                      const char *help, const struct metrics_label *labels,
                      size_t n_labels, const double *bounds, size_t n_bounds,
                      struct metrics_histogram **out)
{
    const struct lookup q = {name,     help,   METRICS_HISTOGRAM, labels,
                             n_labels, bounds, n_bounds};
    struct metrics_series *s = NULL;
    const int rc = out ? lookup(reg, &q, &s) : ORBIT_EINVAL;
    if (rc == 0)
        *out = s->hist;
    return rc;
}

void
metrics_histogram_observe(struct metrics_histogram *h, double v)
{
    if (isnan(v))
        return;
    size_t lo = 0, hi = h->n_bounds; /* first bound >= v, or n_bounds */
    while (lo < hi) {
        const size_t mid = lo + (hi - lo) / 2;
        if (h->bounds[mid] < v)
            lo = mid + 1;
        else
            hi = mid;
    }
    atomic_fetch_add_explicit(&h->counts[lo], 1, memory_order_relaxed);
    atomic_add_double(&h->sum_bits, v);
}

uint64_t
metrics_histogram_count(const struct metrics_histogram *h)
{
    uint64_t total = 0;
    for (size_t i = 0; i <= h->n_bounds; i++)
        total += atomic_load_explicit(
            &((struct metrics_histogram *)h)->counts[i], memory_order_relaxed);
    return total;
}

double
metrics_histogram_sum(const struct metrics_histogram *h)
{
    return metrics_bits_to_double(atomic_load_explicit(
        &((struct metrics_histogram *)h)->sum_bits, memory_order_relaxed));
}

int
metrics_histogram_quantile(const struct metrics_histogram *h, double q,
                           double *out)
{
    if (!h || !out || !(q >= 0.0 && q <= 1.0))
        return ORBIT_EINVAL;
    uint64_t cum[METRICS_MAX_BUCKETS + 1];
    uint64_t total = 0;
    for (size_t i = 0; i <= h->n_bounds; i++) {
        total += atomic_load_explicit(
            &((struct metrics_histogram *)h)->counts[i], memory_order_relaxed);
        cum[i] = total;
    }
    if (total == 0)
        return ORBIT_ENOENT;
    const double rank = q * (double)total;
    size_t b = 0; /* first non-empty prefix that reaches rank */
    while (b < h->n_bounds && (cum[b] == 0 || (double)cum[b] < rank))
        b++;
    if (b == h->n_bounds || (b == 0 && h->bounds[0] <= 0)) {
        *out = h->bounds[b == 0 ? 0 : h->n_bounds - 1];
        return 0;
    }
    const double lower = b == 0 ? 0.0 : h->bounds[b - 1];
    const double before = b == 0 ? 0.0 : (double)cum[b - 1];
    const double in_bucket = (double)cum[b] - before;
    *out = lower + (h->bounds[b] - lower) * ((rank - before) / in_bucket);
    return 0;
}

/* ---- invariants ---- */

static bool
series_sound(const struct metrics_family *f, const struct metrics_series *s)
{
    for (size_t i = 0; i < f->n_labels; i++)
        if (!s->values[i])
            return false;
    if (f->kind == METRICS_HISTOGRAM)
        return s->hist && s->hist->bounds == f->bounds &&
               s->hist->n_bounds == f->n_bounds;
    return !s->hist && s->gauge.is_int == (f->kind == METRICS_GAUGE_I64);
}

static bool
family_sound(const struct metrics_registry *reg, const struct metrics_family *f)
{
    bool ok = metrics_name_valid(f->name) && f->help &&
              f->n_labels <= METRICS_MAX_LABELS &&
              f->n_series <= reg->max_series && family_find(reg, f->name) == f;
    for (size_t i = 0; ok && i < f->n_labels; i++)
        ok = metrics_label_name_valid(f->label_names[i]);
    if (ok && f->kind == METRICS_HISTOGRAM)
        ok = f->n_bounds > 0 && check_bounds(f->bounds, f->n_bounds) == 0;
    size_t n = 0;
    struct metrics_series *const *tail = &f->series;
    for (struct metrics_series *s = f->series; ok && s; s = s->next) {
        struct metrics_label l[METRICS_MAX_LABELS];
        for (size_t i = 0; i < f->n_labels; i++)
            l[i] = (struct metrics_label){f->label_names[i], s->values[i]};
        ok = series_sound(f, s) && series_find(f, l) == s;
        tail = &s->next;
        n++;
    }
    return ok && n == f->n_series && f->series_tail == tail;
}

int
metrics_registry_check(struct metrics_registry *reg)
{
    if (!reg)
        return ORBIT_ECORRUPT;
    pthread_mutex_lock(&reg->mu);
    bool ok = reg->max_series > 0;
    struct metrics_family **tail = &reg->families;
    for (struct metrics_family *f = reg->families; ok && f; f = f->next) {
        ok = family_sound(reg, f);
        tail = &f->next;
    }
    ok = ok && reg->families_tail == tail;
    pthread_mutex_unlock(&reg->mu);
    return ok ? 0 : ORBIT_ECORRUPT;
}
