#include "orbit/health.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "orbit/error.h"
#include "res_alloc.h"
#include "res_lock.h"

#define HEALTH_RING_MAX (1u << 20)

struct hm_sample {
    uint64_t at_ms;
    uint64_t a; /* used bytes | bytes moved | ops */
    uint64_t b; /* total bytes | interval ms | errors */
};

struct hm_ring {
    struct hm_sample *s;
    size_t cap;
    size_t head; /* oldest */
    size_t len;
};

struct health_monitor {
    struct health_config cfg;
    struct hm_ring disk;
    struct hm_ring xfer;
    struct hm_ring ops;
    pthread_mutex_t mu;
};

static const char *const hm_advisory_names[] = {
    "disk_critical",  "disk_warning",    "disk_exhaustion_predicted",
    "throughput_low", "error_rate_high",
};

void
health_config_default(struct health_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->disk_warning = 0.85;
    cfg->disk_critical = 0.95;
    cfg->exhaustion_horizon_ms = 3600000;
    cfg->disk_ring = 32;
    cfg->min_regression_samples = 3;
    cfg->throughput_floor_bps = 65536;
    cfg->window_ms = 60000;
    cfg->rate_ring = 256;
    cfg->error_rate = 0.1;
    cfg->error_min_ops = 20;
}

static bool
hm_config_valid(const struct health_config *c)
{
    return c->disk_warning > 0.0 && c->disk_warning <= c->disk_critical &&
           c->disk_critical <= 1.0 && c->disk_ring >= 2 &&
           c->disk_ring <= HEALTH_RING_MAX && c->min_regression_samples >= 2 &&
           c->min_regression_samples <= c->disk_ring && c->window_ms > 0 &&
           c->rate_ring > 0 && c->rate_ring <= HEALTH_RING_MAX &&
           c->error_rate >= 0.0 && c->error_rate < 1.0 && c->error_min_ops > 0;
}

static int
hm_ring_init(struct hm_ring *r, size_t cap)
{
    r->s = res_calloc(cap, sizeof *r->s);
    r->cap = cap;
    r->head = 0;
    r->len = 0;
    return r->s ? ORBIT_OK : ORBIT_ENOMEM;
}

static void
hm_ring_push(struct hm_ring *r, const struct hm_sample *s)
{
    if (r->len == r->cap) {
        r->head = (r->head + 1) % r->cap;
        r->len--;
    }
    r->s[(r->head + r->len) % r->cap] = *s;
    r->len++;
}

static const struct hm_sample *
hm_ring_at(const struct hm_ring *r, size_t i)
{
    return &r->s[(r->head + i) % r->cap];
}

int
health_new(const struct health_config *cfg, struct health_monitor **out)
{
    struct health_monitor *h;
    int rc;

    if (!out)
        return ORBIT_EINVAL;
    *out = NULL;
    h = res_calloc(1, sizeof *h);
    if (!h)
        return ORBIT_ENOMEM;
    if (cfg)
        h->cfg = *cfg;
    else
        health_config_default(&h->cfg);
    rc = hm_config_valid(&h->cfg) ? ORBIT_OK : ORBIT_EINVAL;
    if (rc == ORBIT_OK)
        rc = hm_ring_init(&h->disk, h->cfg.disk_ring);
    if (rc == ORBIT_OK)
        rc = hm_ring_init(&h->xfer, h->cfg.rate_ring);
    if (rc == ORBIT_OK)
        rc = hm_ring_init(&h->ops, h->cfg.rate_ring);
    if (rc == ORBIT_OK && pthread_mutex_init(&h->mu, NULL) != 0)
        rc = ORBIT_ENOMEM;
    if (rc < 0) {
        free(h->disk.s);
        free(h->xfer.s);
        free(h->ops.s);
        free(h);
        return rc;
    }
    *out = h;
    return ORBIT_OK;
}

void
health_free(struct health_monitor *h)
{
    if (!h)
        return;
    free(h->disk.s);
    free(h->xfer.s);
    free(h->ops.s);
    pthread_mutex_destroy(&h->mu);
    free(h);
}

int
health_record_disk(struct health_monitor *h, uint64_t at_ms,
                   uint64_t used_bytes, uint64_t total_bytes)
{
    const struct hm_sample s = {at_ms, used_bytes, total_bytes};

    if (!h || total_bytes == 0 || used_bytes > total_bytes)
        return ORBIT_EINVAL;
    res_lock(&h->mu);
    if (h->disk.len > 0 && hm_ring_at(&h->disk, h->disk.len - 1)->at_ms > at_ms)
        h->disk.len = 0; /* the clock stepped back: restart the trend */
    hm_ring_push(&h->disk, &s);
    res_unlock(&h->mu);
    return ORBIT_OK;
}

static int
hm_record(struct health_monitor *h, struct hm_ring *r,
          const struct hm_sample *s)
{
    res_lock(&h->mu);
    hm_ring_push(r, s);
    res_unlock(&h->mu);
    return ORBIT_OK;
}

int
health_record_transfer(struct health_monitor *h, uint64_t at_ms, uint64_t bytes,
                       uint64_t interval_ms)
{
    const struct hm_sample s = {at_ms, bytes, interval_ms};

    if (!h || interval_ms == 0)
        return ORBIT_EINVAL;
    return hm_record(h, &h->xfer, &s);
}

int
health_record_ops(struct health_monitor *h, uint64_t at_ms, uint64_t ops,
                  uint64_t errors)
{
    const struct hm_sample s = {at_ms, ops, errors};

    if (!h || errors > ops)
        return ORBIT_EINVAL;
    return hm_record(h, &h->ops, &s);
}

static bool
hm_in_window(const struct health_monitor *h, uint64_t at, uint64_t now)
{
    return at >= now || now - at <= h->cfg.window_ms;
}

/* Sums a and b of the ring's samples inside the window; false if none. */
static bool
hm_window_sums(const struct health_monitor *h, const struct hm_ring *r,
               uint64_t now, double *sum_a, double *sum_b)
{
    size_t n = 0;

    *sum_a = 0.0;
    *sum_b = 0.0;
    for (size_t i = 0; i < r->len; i++) {
        const struct hm_sample *s = hm_ring_at(r, i);
        if (!hm_in_window(h, s->at_ms, now))
            continue;
        *sum_a += (double)s->a;
        *sum_b += (double)s->b;
        n++;
    }
    return n > 0;
}

/* Least-squares slope (bytes/ms) and the time, relative to now, at which the
 * fitted line reaches total. Returns false without a growing trend. */
static bool
hm_predict_full(const struct health_monitor *h, uint64_t now, double *ms_left)
{
    const struct hm_ring *r = &h->disk;
    const struct hm_sample *first, *last;
    double n = (double)r->len, mx = 0, my = 0, sxx = 0, sxy = 0, slope;

    if (r->len < h->cfg.min_regression_samples)
        return false;
    first = hm_ring_at(r, 0);
    last = hm_ring_at(r, r->len - 1);
    for (size_t i = 0; i < r->len; i++) {
        mx += (double)(hm_ring_at(r, i)->at_ms - first->at_ms) / n;
        my += (double)hm_ring_at(r, i)->a / n;
    }
    for (size_t i = 0; i < r->len; i++) {
        double dx = (double)(hm_ring_at(r, i)->at_ms - first->at_ms) - mx;
        sxx += dx * dx;
        sxy += dx * ((double)hm_ring_at(r, i)->a - my);
    }
    if (!(sxx > 0.0) || !(sxy > 0.0))
        return false;
    slope = sxy / sxx;
    *ms_left = mx + ((double)last->b - my) / slope -
               ((double)now - (double)first->at_ms);
    return isfinite(*ms_left);
}

static unsigned
hm_eval_disk(const struct health_monitor *h, uint64_t now,
             struct health_report *rep)
{
    const struct hm_sample *last;
    double left = 0.0;
    unsigned adv = 0;

    if (h->disk.len == 0)
        return 0;
    last = hm_ring_at(&h->disk, h->disk.len - 1);
    rep->disk_used_fraction = (double)last->a / (double)last->b;
    if (rep->disk_used_fraction >= h->cfg.disk_critical)
        adv |= HEALTH_DISK_CRITICAL;
    else if (rep->disk_used_fraction >= h->cfg.disk_warning)
        adv |= HEALTH_DISK_WARNING;
    if (hm_predict_full(h, now, &left)) {
        if (left <= 0.0)
            rep->ms_to_full = 0;
        else if (left < 0x1p64)
            rep->ms_to_full = (uint64_t)left;
        if (rep->ms_to_full <= h->cfg.exhaustion_horizon_ms)
            adv |= HEALTH_DISK_EXHAUSTION_PREDICTED;
    }
    return adv;
}

static unsigned
hm_eval_rates(const struct health_monitor *h, uint64_t now,
              struct health_report *rep)
{
    double bytes, ms, ops, errors;
    unsigned adv = 0;

    if (hm_window_sums(h, &h->xfer, now, &bytes, &ms)) {
        rep->throughput_bps = bytes * 1000.0 / ms;
        if (rep->throughput_bps < (double)h->cfg.throughput_floor_bps)
            adv |= HEALTH_THROUGHPUT_LOW;
    }
    if (hm_window_sums(h, &h->ops, now, &ops, &errors) &&
        ops >= (double)h->cfg.error_min_ops) {
        rep->error_fraction = errors / ops;
        if (rep->error_fraction > h->cfg.error_rate)
            adv |= HEALTH_ERROR_RATE_HIGH;
    }
    return adv;
}

unsigned
health_evaluate(const struct health_monitor *h, uint64_t now_ms,
                struct health_report *out)
{
    struct health_report rep = {
        0, HEALTH_STATUS_HEALTHY, -1.0, UINT64_MAX, -1.0, -1.0};

    if (!h)
        return HEALTH_HEALTHY;
    res_lock(&h->mu);
    rep.advisories = hm_eval_disk(h, now_ms, &rep);
    rep.advisories |= hm_eval_rates(h, now_ms, &rep);
    res_unlock(&h->mu);
    rep.status = health_status_of(rep.advisories);
    if (out)
        *out = rep;
    return rep.advisories;
}

enum health_status
health_status_of(unsigned advisories)
{
    if (advisories & (HEALTH_DISK_CRITICAL | HEALTH_DISK_EXHAUSTION_PREDICTED))
        return HEALTH_STATUS_UNHEALTHY;
    return advisories ? HEALTH_STATUS_DEGRADED : HEALTH_STATUS_HEALTHY;
}

const char *
health_status_str(enum health_status status)
{
    switch (status) {
    case HEALTH_STATUS_HEALTHY:
        return "healthy";
    case HEALTH_STATUS_DEGRADED:
        return "degraded";
    case HEALTH_STATUS_UNHEALTHY:
        return "unhealthy";
    }
    return "unknown";
}

const char *
health_advisory_str(unsigned advisory)
{
    if (advisory == HEALTH_HEALTHY)
        return "healthy";
    for (unsigned i = 0; i < 5; i++)
        if (advisory == 1u << i)
            return hm_advisory_names[i];
    return "unknown";
}

int
health_advisory_parse(const char *name, unsigned *out)
{
    if (!name || !out)
        return ORBIT_EINVAL;
    if (strcmp(name, "healthy") == 0) {
        *out = HEALTH_HEALTHY;
        return ORBIT_OK;
    }
    for (unsigned i = 0; i < 5; i++) {
        if (strcmp(name, hm_advisory_names[i]) == 0) {
            *out = 1u << i;
            return ORBIT_OK;
        }
    }
    return ORBIT_EINVAL;
}

static int
hm_ring_check(const struct hm_ring *r, size_t cap)
{
    if (!r->s || r->cap != cap || r->len > r->cap || r->head >= r->cap)
        return ORBIT_ECORRUPT;
    return ORBIT_OK;
}

static int
hm_disk_check(const struct hm_ring *r)
{
    for (size_t i = 0; i < r->len; i++) {
        const struct hm_sample *s = hm_ring_at(r, i);
        if (s->b == 0 || s->a > s->b ||
            (i > 0 && hm_ring_at(r, i - 1)->at_ms > s->at_ms))
            return ORBIT_ECORRUPT;
    }
    return ORBIT_OK;
}

static int
hm_rates_check(const struct hm_ring *xfer, const struct hm_ring *ops)
{
    for (size_t i = 0; i < xfer->len; i++)
        if (hm_ring_at(xfer, i)->b == 0)
            return ORBIT_ECORRUPT;
    for (size_t i = 0; i < ops->len; i++)
        if (hm_ring_at(ops, i)->b > hm_ring_at(ops, i)->a)
            return ORBIT_ECORRUPT;
    return ORBIT_OK;
}

int
health_check(const struct health_monitor *h)
{
    int rc;

    if (!h || !hm_config_valid(&h->cfg))
        return ORBIT_ECORRUPT;
    res_lock(&h->mu);
    rc = hm_ring_check(&h->disk, h->cfg.disk_ring);
    if (rc == ORBIT_OK)
        rc = hm_ring_check(&h->xfer, h->cfg.rate_ring);
    if (rc == ORBIT_OK)
        rc = hm_ring_check(&h->ops, h->cfg.rate_ring);
    if (rc == ORBIT_OK)
        rc = hm_disk_check(&h->disk);
    if (rc == ORBIT_OK)
        rc = hm_rates_check(&h->xfer, &h->ops);
    res_unlock(&h->mu);
    return rc;
}
