/*
 * The rendered exposition text checked line by line against the text format
 * rules, by a checker that knows nothing of the renderer.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orbit/error.h"
#include "orbit/metrics.h"

#define NAME_RE  "[a-zA-Z_:][a-zA-Z0-9_:]*"
#define LNAME_RE "[a-zA-Z_][a-zA-Z0-9_]*"
#define LVAL_RE  "\"([^\"\\\\\n]|\\\\[\\\\\"n])*\""
#define LABEL_RE LNAME_RE "=" LVAL_RE
#define VALUE_RE                                                               \
    "([-+]?[0-9]+(\\.[0-9]*)?([eE][-+]?[0-9]+)?|[-+]?\\.[0-9]+([eE][-+]?[0-9]" \
    "+"                                                                        \
    ")?|[-+]Inf|NaN)"

static const char sample_re[] =
    "^(" NAME_RE ")(\\{(" LABEL_RE "(," LABEL_RE ")*)?\\})? " VALUE_RE "$";
static const char help_re[] = "^# HELP (" NAME_RE ") .*$";
static const char type_re[] =
    "^# TYPE (" NAME_RE ") (counter|gauge|histogram|summary|untyped)$";

#define MAX_FAMILIES 64

struct checker {
    regex_t sample, help, type;
    char families[MAX_FAMILIES][256]; /* every family seen, in order */
    size_t n_families;
    char cur[256];     /* the family whose block is open */
    char cur_type[16]; /* its TYPE, "" until given */
    bool cur_has_samples;
    /* histogram series state */
    char series[1024];
    double last_le;
    double last_count;
    double inf_count;
    bool saw_inf;
    char why[256];
};

static bool
fail(struct checker *c, size_t line, const char *why)
{
    snprintf(c->why, sizeof c->why, "line %zu: %s", line, why);
    return false;
}

static void
copy_match(char *dst, size_t cap, const char *line, const regmatch_t *m)
{
    size_t n = (size_t)(m->rm_eo - m->rm_so);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, line + m->rm_so, n);
    dst[n] = '\0';
}

/* Switch to family name; false if it was seen before (not grouped). */
static bool
enter_family(struct checker *c, const char *name)
{
    if (strcmp(c->cur, name) == 0)
        return true;
    for (size_t i = 0; i < c->n_families; i++)
        if (strcmp(c->families[i], name) == 0)
            return false;
    cr_assert_lt(c->n_families, MAX_FAMILIES);
    snprintf(c->families[c->n_families++], 256, "%s", name);
    snprintf(c->cur, sizeof c->cur, "%s", name);
    c->cur_type[0] = '\0';
    c->cur_has_samples = false;
    c->series[0] = '\0';
    return true;
}

static bool
has_suffix(const char *s, const char *base, const char *suffix)
{
    const size_t n = strlen(base);
    return strncmp(s, base, n) == 0 && strcmp(s + n, suffix) == 0;
}

/* The label text without its le="..." pair, and the le value. */
static bool
split_le(const char *labels, char *rest, size_t cap, double *le)
{
    const char *p = strstr(labels, "le=\"");
    while (p && p != labels && p[-1] != ',')
        p = strstr(p + 1, "le=\"");
    if (!p)
        return false;
    const char *end = strchr(p + 4, '"');
    char val[64];
    snprintf(val, sizeof val, "%.*s", (int)(end - p - 4), p + 4);
    if (strcmp(val, "+Inf") == 0)
        *le = INFINITY;
    else
        *le = strtod(val, NULL);
    if (p == labels) /* first pair: drop the comma after it */
        snprintf(rest, cap, "%s", end[1] == ',' ? end + 2 : end + 1);
    else /* drop the comma before it */
        snprintf(rest, cap, "%.*s%s", (int)(p - labels - 1), labels, end + 1);
    return true;
}

static double
parse_value(const char *v)
{
    if (strcmp(v, "+Inf") == 0)
        return INFINITY;
    if (strcmp(v, "-Inf") == 0)
        return -INFINITY;
    return strtod(v, NULL);
}

static bool
check_histogram_sample(struct checker *c, size_t ln, const char *name,
                       const char *labels, double value)
{
    if (has_suffix(name, c->cur, "_bucket")) {
        char rest[1024];
        double le;
        if (!split_le(labels, rest, sizeof rest, &le))
            return fail(c, ln, "bucket without le");
        if (strcmp(rest, c->series) != 0 || c->saw_inf) {
            snprintf(c->series, sizeof c->series, "%s", rest);
            c->last_le = -INFINITY;
            c->last_count = 0;
            c->saw_inf = false;
        }
        if (!(le > c->last_le))
            return fail(c, ln, "le not increasing");
        if (value < c->last_count)
            return fail(c, ln, "buckets not cumulative");
        c->last_le = le;
        c->last_count = value;
        if (isinf(le)) {
            c->saw_inf = true;
            c->inf_count = value;
        }
        return true;
    }
    if (has_suffix(name, c->cur, "_count")) {
        if (!c->saw_inf || strcmp(labels, c->series) != 0)
            return fail(c, ln, "_count without a +Inf bucket before it");
        if (value != c->inf_count)
            return fail(c, ln, "+Inf bucket differs from _count");
        return true;
    }
    if (has_suffix(name, c->cur, "_sum"))
        return true;
    return fail(c, ln, "histogram sample with a bad suffix");
}

static bool
check_sample(struct checker *c, size_t ln, const char *line)
{
    regmatch_t m[4];
    if (regexec(&c->sample, line, 4, m, 0) != 0)
        return fail(c, ln, "not `name{labels} value`");
    char name[256], labels[1024] = "";
    copy_match(name, sizeof name, line, &m[1]);
    if (m[3].rm_so >= 0)
        copy_match(labels, sizeof labels, line, &m[3]);
    const double value = parse_value(strrchr(line, ' ') + 1);
    const bool hist = strcmp(c->cur_type, "histogram") == 0;
    if (hist && strncmp(name, c->cur, strlen(c->cur)) == 0 &&
        strcmp(name, c->cur) != 0) {
        c->cur_has_samples = true;
        return check_histogram_sample(c, ln, name, labels, value);
    }
    if (hist || !enter_family(c, name))
        return fail(c, ln, "family not grouped");
    if (strcmp(c->cur_type, "counter") == 0 && !(value >= 0))
        return fail(c, ln, "negative counter");
    c->cur_has_samples = true;
    return true;
}

static bool
check_comment(struct checker *c, size_t ln, const char *line)
{
    regmatch_t m[3];
    char name[256];
    const bool is_type = strncmp(line, "# TYPE ", 7) == 0;
    if (strncmp(line, "# HELP ", 7) != 0 && !is_type)
        return true; /* other comments are allowed */
    if (regexec(is_type ? &c->type : &c->help, line, 3, m, 0) != 0)
        return fail(c, ln, "bad HELP or TYPE line");
    copy_match(name, sizeof name, line, &m[1]);
    if (!enter_family(c, name))
        return fail(c, ln, "family not grouped");
    if (is_type) {
        if (c->cur_type[0] || c->cur_has_samples)
            return fail(c, ln, "TYPE twice or after samples");
        copy_match(c->cur_type, sizeof c->cur_type, line, &m[2]);
    }
    return true;
}

/* Whether text follows the exposition format; c->why says where not. */
static bool
check_exposition(struct checker *c, const char *text)
{
    memset(c, 0, sizeof *c);
    cr_assert_eq(regcomp(&c->sample, sample_re, REG_EXTENDED), 0);
    cr_assert_eq(regcomp(&c->help, help_re, REG_EXTENDED), 0);
    cr_assert_eq(regcomp(&c->type, type_re, REG_EXTENDED), 0);
    bool ok = text[0] == '\0' || text[strlen(text) - 1] == '\n';
    if (!ok)
        fail(c, 0, "text does not end with a newline");
    char *copy = strdup(text), *save = NULL;
    size_t ln = 0;
    for (char *line = strtok_r(copy, "\n", &save); line && ok;
         line = strtok_r(NULL, "\n", &save)) {
        ln++;
        ok = line[0] == '#' ? check_comment(c, ln, line)
                            : check_sample(c, ln, line);
    }
    free(copy);
    regfree(&c->sample);
    regfree(&c->help);
    regfree(&c->type);
    return ok;
}

Test(metrics_format, checker_rejects_bad_text)
{
    struct checker c;
    const char *bad[] = {
        "x 1",                                /* no final newline */
        "9x 1\n",                             /* bad name */
        "x{a=\"1\"} \n",                      /* no value */
        "x{a=1} 1\n",                         /* unquoted */
        "x{a=\"a\\t\"} 1\n",                  /* bad escape */
        "x{__a-b=\"1\"} 1\n",                 /* bad label name */
        "x 1\ny 2\nx 3\n",                    /* not grouped */
        "# TYPE x counter\nx -1\n",           /* negative counter */
        "# TYPE x counter\n# TYPE x gauge\n", /* TYPE twice */
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\n"
        "h_bucket{le=\"2\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_count 2\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\n"
        "h_bucket{le=\"+Inf\"} 2\nh_count 3\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_count 1\n",
        "# TYPE h histogram\nh_bucket{le=\"2\"} 1\n"
        "h_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_not(check_exposition(&c, bad[i]), "accepted: %s", bad[i]);
    cr_assert(check_exposition(&c, "# HELP x Some help.\n# TYPE x gauge\n"
                                   "x{a=\"q\\\"\\\\\\n\"} -1.5e-3\nx NaN\n"),
              "%s", c.why);
}

static void
build_registry(struct metrics_registry *reg)
{
    struct metrics_counter *c;
    struct metrics_gauge *g;
    struct metrics_histogram *h;
    const struct metrics_label a[] = {{"star", "alpha"}, {"dir", "out"}};
    const struct metrics_label b[] = {{"star", "be\"ta\\\nx"}, {"dir", "in"}};
    const double bounds[] = {0.005, 0.01, 0.1, 1, 10};

    cr_assert_eq(metrics_counter_get(reg, "orbit_bytes_total",
                                     "Bytes moved.\nPer star \\ direction.", a,
                                     2, &c),
                 0);
    metrics_counter_add(c, 1ULL << 40);
    cr_assert_eq(metrics_counter_get(reg, "orbit_bytes_total", NULL, b, 2, &c),
                 0);
    metrics_counter_add(c, 7);
    cr_assert_eq(
        metrics_gauge_get(reg, "orbit_disk_used_ratio", "Disk.", NULL, 0, &g),
        0);
    metrics_gauge_set(g, 0.8512);
    cr_assert_eq(metrics_gauge_get(reg, "orbit:weird", "", a, 2, &g), 0);
    metrics_gauge_set(g, -INFINITY);
    cr_assert_eq(
        metrics_gauge_get_i64(reg, "orbit_inflight", "In flight.", a, 1, &g),
        0);
    metrics_gauge_set_i64(g, -42);
    cr_assert_eq(metrics_histogram_get(reg, "orbit_put_seconds", "PUT time.", a,
                                       2, bounds, 5, &h),
                 0);
    for (int i = 0; i < 100; i++)
        metrics_histogram_observe(h, i * 0.013);
    cr_assert_eq(metrics_histogram_get(reg, "orbit_put_seconds", NULL, b, 2,
                                       NULL, 0, &h),
                 0);
    metrics_histogram_observe(h, 42);
    cr_assert_eq(metrics_histogram_get(reg, "orbit_empty_seconds", "", NULL, 0,
                                       bounds, 5, &h),
                 0);
    cr_assert_eq(
        metrics_counter_get(reg, "orbit_plain_total", "Plain.", NULL, 0, &c),
        0);
}

Test(metrics_format, rendered_text_follows_the_format)
{
    struct metrics_registry *reg;
    cr_assert_eq(metrics_registry_new(2, &reg), 0);
    build_registry(reg);
    struct metrics_counter *c;
    char *text = NULL;
    size_t len = 0;
    cr_assert_eq(metrics_render_alloc(reg, &text, &len), 0);
    struct checker chk;
    cr_assert(check_exposition(&chk, text), "%s\n%s", chk.why, text);
    cr_assert_eq(chk.n_families, 8);
    metrics_registry_free(reg);
    free(text);

    /* The same with many series, through a full cap. */
    cr_assert_eq(metrics_registry_new(4, &reg), 0);
    build_registry(reg);
    for (int i = 0; i < 10; i++) {
        char v[16];
        snprintf(v, sizeof v, "%d", i);
        const struct metrics_label l[] = {{"n", v}};
        (void)metrics_counter_get(reg, "orbit_many_total", "", l, 1, &c);
    }
    cr_assert_eq(metrics_render_alloc(reg, &text, &len), 0);
    cr_assert(check_exposition(&chk, text), "%s\n%s", chk.why, text);
    cr_assert_not_null(strstr(
        text,
        "orbit_metrics_dropped_series_total{family=\"orbit_many_total\"} 6\n"));
    free(text);
    metrics_registry_free(reg);
}

Test(metrics_format, exact_text)
{
    struct metrics_registry *reg;
    cr_assert_eq(metrics_registry_new(0, &reg), 0);
    struct metrics_counter *c;
    struct metrics_histogram *h;
    const struct metrics_label l[] = {{"star", "a\"b\\c\nd"}};
    const double bounds[] = {0.1, 1};
    cr_assert_eq(metrics_counter_get(reg, "chunks_total",
                                     "Chunks\nsent \\ acked.", l, 1, &c),
                 0);
    metrics_counter_add(c, 3);
    cr_assert_eq(metrics_histogram_get(reg, "rtt_seconds", "RTT.", NULL, 0,
                                       bounds, 2, &h),
                 0);
    metrics_histogram_observe(h, 0.05);
    metrics_histogram_observe(h, 0.1);
    metrics_histogram_observe(h, 0.5);
    metrics_histogram_observe(h, 3);
    char *text = NULL;
    cr_assert_eq(metrics_render_alloc(reg, &text, NULL), 0);
    const char *want =
        "# HELP chunks_total Chunks\\nsent \\\\ acked.\n"
        "# TYPE chunks_total counter\n"
        "chunks_total{star=\"a\\\"b\\\\c\\nd\"} 3\n"
        "# HELP rtt_seconds RTT.\n"
        "# TYPE rtt_seconds histogram\n"
        "rtt_seconds_bucket{le=\"0.1\"} 2\n"
        "rtt_seconds_bucket{le=\"1\"} 3\n"
        "rtt_seconds_bucket{le=\"+Inf\"} 4\n"
        "rtt_seconds_sum 3.65\n"
        "rtt_seconds_count 4\n"
        "# HELP orbit_metrics_dropped_series_total Series refused by a metric "
        "family's cardinality cap.\n"
        "# TYPE orbit_metrics_dropped_series_total counter\n";
    cr_assert_str_eq(text, want);
    free(text);
    metrics_registry_free(reg);
}
