/*
 * metrics_render.c - the registry in the Prometheus text exposition format.
 */
#include "metrics_internal.h"

#include "orbit/error.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growable text buffer bounded by METRICS_MAX_RENDER; errors stick. */
struct rbuf {
    char *p;
    size_t len;
    size_t cap;
    int err;
};

static bool
rbuf_reserve(struct rbuf *b, size_t extra)
{
    if (b->err)
        return false;
    if (b->len + extra + 1 > METRICS_MAX_RENDER) {
        b->err = ORBIT_ETOOBIG;
        return false;
    }
    if (b->len + extra + 1 <= b->cap)
        return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->err = ORBIT_ENOMEM;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

static void
rbuf_put(struct rbuf *b, const char *s, size_t n)
{
    if (!rbuf_reserve(b, n))
        return;
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void
rbuf_str(struct rbuf *b, const char *s)
{
    rbuf_put(b, s, strlen(s));
}

/* s with '\\' and '\n' escaped, and '"' too when quoted (label values). */
static void
rbuf_escaped(struct rbuf *b, const char *s, bool quoted)
{
    for (; *s; s++) {
        if (*s == '\\')
            rbuf_put(b, "\\\\", 2);
        else if (*s == '\n')
            rbuf_put(b, "\\n", 2);
        else if (quoted && *s == '"')
            rbuf_put(b, "\\\"", 2);
        else
            rbuf_put(b, s, 1);
    }
}

/* A double as Prometheus reads it, in the shortest form that round-trips. */
static void
fmt_double(double v, char *tmp, size_t cap)
{
    if (isnan(v))
        snprintf(tmp, cap, "NaN");
    else if (isinf(v))
        snprintf(tmp, cap, "%s", v > 0 ? "+Inf" : "-Inf");
    else if (snprintf(tmp, cap, "%.15g", v) > 0 && strtod(tmp, NULL) != v)
        snprintf(tmp, cap, "%.17g", v);
}

static void
rbuf_double(struct rbuf *b, double v)
{
    char tmp[40];
    fmt_double(v, tmp, sizeof tmp);
    rbuf_str(b, tmp);
}

static void
rbuf_u64(struct rbuf *b, uint64_t v)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%" PRIu64, v);
    rbuf_str(b, tmp);
}

static void
rbuf_i64(struct rbuf *b, int64_t v)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%" PRId64, v);
    rbuf_str(b, tmp);
}

static void
render_header(struct rbuf *b, const char *name, const char *help,
              const char *type)
{
    rbuf_str(b, "# HELP ");
    rbuf_str(b, name);
    rbuf_str(b, " ");
    rbuf_escaped(b, help, false);
    rbuf_str(b, "\n# TYPE ");
    rbuf_str(b, name);
    rbuf_str(b, " ");
    rbuf_str(b, type);
    rbuf_str(b, "\n");
}

/*
 * "name{a="x",b="y"} " with le appended when not NULL; no braces when there
 * is no label at all.
 */
static void
render_sample_head(struct rbuf *b, const struct metrics_family *f,
                   const struct metrics_series *s, const char *suffix,
                   const char *le)
{
    rbuf_str(b, f->name);
    rbuf_str(b, suffix);
    if (f->n_labels || le) {
        rbuf_str(b, "{");
        for (size_t i = 0; i < f->n_labels; i++) {
            if (i)
                rbuf_str(b, ",");
            rbuf_str(b, f->label_names[i]);
            rbuf_str(b, "=\"");
            rbuf_escaped(b, s->values[i], true);
            rbuf_str(b, "\"");
        }
        if (le) {
            rbuf_str(b, f->n_labels ? ",le=\"" : "le=\"");
            rbuf_str(b, le);
            rbuf_str(b, "\"");
        }
        rbuf_str(b, "}");
    }
    rbuf_str(b, " ");
}

static void
render_histogram(struct rbuf *b, const struct metrics_family *f,
                 const struct metrics_series *s)
{
    struct metrics_histogram *h = s->hist;
    uint64_t cum = 0;
    char le[40];
    for (size_t i = 0; i <= h->n_bounds; i++) {
        cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
        fmt_double(i < h->n_bounds ? h->bounds[i] : INFINITY, le, sizeof le);
        render_sample_head(b, f, s, "_bucket", le);
        rbuf_u64(b, cum);
        rbuf_str(b, "\n");
    }
    render_sample_head(b, f, s, "_sum", NULL);
    rbuf_double(b, metrics_histogram_sum(h));
    rbuf_str(b, "\n");
    render_sample_head(b, f, s, "_count", NULL);
    rbuf_u64(b, cum);
    rbuf_str(b, "\n");
}

static void
render_family(struct rbuf *b, const struct metrics_family *f)
{
    static const char *const types[] = {
        [METRICS_COUNTER] = "counter",
        [METRICS_GAUGE] = "gauge",
        [METRICS_GAUGE_I64] = "gauge",
        [METRICS_HISTOGRAM] = "histogram",
    };
    render_header(b, f->name, f->help, types[f->kind]);
    for (const struct metrics_series *s = f->series; s; s = s->next) {
        if (f->kind == METRICS_HISTOGRAM) {
            render_histogram(b, f, s);
            continue;
        }
        render_sample_head(b, f, s, "", NULL);
        if (f->kind == METRICS_COUNTER)
            rbuf_u64(b, metrics_counter_value(&s->counter));
        else if (f->kind == METRICS_GAUGE_I64)
            rbuf_i64(b, metrics_gauge_value_i64(&s->gauge));
        else
            rbuf_double(b, metrics_gauge_value(&s->gauge));
        rbuf_str(b, "\n");
    }
}

static void
render_dropped(struct rbuf *b, const struct metrics_registry *reg)
{
    render_header(b, METRICS_DROPPED_FAMILY,
                  "Series refused by a metric family's cardinality cap.",
                  "counter");
    for (const struct metrics_family *f = reg->families; f; f = f->next) {
        const uint64_t n = atomic_load_explicit(
            &((struct metrics_family *)f)->dropped, memory_order_relaxed);
        if (n == 0)
            continue;
        rbuf_str(b, METRICS_DROPPED_FAMILY "{family=\"");
        rbuf_escaped(b, f->name, true);
        rbuf_str(b, "\"} ");
        rbuf_u64(b, n);
        rbuf_str(b, "\n");
    }
}

static int
render(struct metrics_registry *reg, struct rbuf *b)
{
    pthread_mutex_lock(&reg->mu);
    for (const struct metrics_family *f = reg->families; f; f = f->next)
        render_family(b, f);
    render_dropped(b, reg);
    pthread_mutex_unlock(&reg->mu);
    return b->err;
}

int
metrics_render_alloc(struct metrics_registry *reg, char **out, size_t *len)
{
    if (!reg || !out)
        return ORBIT_EINVAL;
    struct rbuf b = {0};
    const int rc = render(reg, &b);
    if (rc < 0) {
        free(b.p);
        return rc;
    }
    *out = b.p;
    if (len)
        *len = b.len;
    return 0;
}

int
metrics_render(struct metrics_registry *reg, char *buf, size_t cap, size_t *len)
{
    if (!reg || !buf || !len)
        return ORBIT_EINVAL;
    char *text = NULL;
    size_t n = 0;
    const int rc = metrics_render_alloc(reg, &text, &n);
    if (rc < 0)
        return rc;
    *len = n;
    const int ret = n + 1 > cap ? ORBIT_EFULL : 0;
    if (ret == 0)
        memcpy(buf, text, n + 1);
    free(text);
    return ret;
}
