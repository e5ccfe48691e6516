#include "orbit/backpressure.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "orbit/error.h"
#include "res_alloc.h"
#include "res_lock.h"
#include "res_map.h"

/* A counter this high can only come from a wrap: the check refuses it. */
#define BP_WRAP_SUSPECT (UINT64_MAX / 2)

struct backpressure_guard {
    struct backpressure_config cfg;
    uint64_t low_objects;
    uint64_t low_bytes;
    _Atomic uint64_t objects;
    _Atomic uint64_t bytes;
    _Atomic uint64_t peak_objects;
    _Atomic uint64_t peak_bytes;
    _Atomic uint64_t admitted;
    _Atomic uint64_t rejected;
    _Atomic uint64_t over_release;
    atomic_bool paused;
};

struct backpressure_registry {
    struct backpressure_config cfg;
    struct res_map *guards;
    pthread_mutex_t mu;
};

void
backpressure_config_default(struct backpressure_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_objects = 10000;
    cfg->max_bytes = 1024ull * 1024 * 1024;
    cfg->low_fraction = 0.5;
}

static bool
bp_config_valid(const struct backpressure_config *cfg)
{
    return cfg->max_objects > 0 && cfg->max_bytes > 0 &&
           isfinite(cfg->low_fraction) && cfg->low_fraction >= 0.0 &&
           cfg->low_fraction < 1.0;
}

static uint64_t
bp_low_mark(uint64_t limit, double fraction)
{
    double low = (double)limit * fraction;

    /* limit * fraction < limit, but the double may round up to it. */
    if (!(low < (double)limit))
        return limit - 1;
    return (uint64_t)low;
}

int
backpressure_guard_new(const struct backpressure_config *cfg,
                       struct backpressure_guard **out)
{
    struct backpressure_config c;
    struct backpressure_guard *g;

    if (!out)
        return ORBIT_EINVAL;
    *out = NULL;
    if (cfg)
        c = *cfg;
    else
        backpressure_config_default(&c);
    if (!bp_config_valid(&c))
        return ORBIT_EINVAL;
    g = res_calloc(1, sizeof *g);
    if (!g)
        return ORBIT_ENOMEM;
    g->cfg = c;
    g->low_objects = bp_low_mark(c.max_objects, c.low_fraction);
    g->low_bytes = bp_low_mark(c.max_bytes, c.low_fraction);
    atomic_init(&g->objects, 0);
    atomic_init(&g->bytes, 0);
    atomic_init(&g->peak_objects, 0);
    atomic_init(&g->peak_bytes, 0);
    atomic_init(&g->admitted, 0);
    atomic_init(&g->rejected, 0);
    atomic_init(&g->over_release, 0);
    atomic_init(&g->paused, false);
    *out = g;
    return ORBIT_OK;
}

void
backpressure_guard_free(struct backpressure_guard *g)
{
    free(g);
}

/* Adds n to ctr if the result stays within limit, or if ctr is zero (the
 * oversize rule). Returns the new value through *now. */
static bool
bp_reserve(_Atomic uint64_t *ctr, uint64_t n, uint64_t limit, uint64_t *now)
{
    uint64_t cur = atomic_load(ctr);

    do {
        bool fits = cur <= limit && n <= limit - cur;
        if (!fits && cur != 0)
            return false;
    } while (!atomic_compare_exchange_weak(ctr, &cur, cur + n));
    *now = cur + n;
    return true;
}

/* Subtracts up to n from ctr, never below zero; false if n exceeded it. */
static bool
bp_unreserve(_Atomic uint64_t *ctr, uint64_t n)
{
    uint64_t cur = atomic_load(ctr);
    uint64_t take;

    do {
        take = n < cur ? n : cur;
    } while (!atomic_compare_exchange_weak(ctr, &cur, cur - take));
    return take == n;
}

static void
bp_raise_peak(_Atomic uint64_t *peak, uint64_t value)
{
    uint64_t cur = atomic_load(peak);

    while (cur < value && !atomic_compare_exchange_weak(peak, &cur, value))
        ;
}

bool
backpressure_try_acquire(struct backpressure_guard *g, uint64_t objects,
                         uint64_t bytes)
{
    uint64_t objs_now, bytes_now;

    if (!g)
        return false;
    if (!bp_reserve(&g->objects, objects, g->cfg.max_objects, &objs_now))
        goto refused;
    if (!bp_reserve(&g->bytes, bytes, g->cfg.max_bytes, &bytes_now)) {
        bool whole = bp_unreserve(&g->objects, objects);
        assert(whole);
        (void)whole;
        goto refused;
    }
    bp_raise_peak(&g->peak_objects, objs_now);
    bp_raise_peak(&g->peak_bytes, bytes_now);
    atomic_fetch_add(&g->admitted, 1);
    return true;
refused:
    atomic_fetch_add(&g->rejected, 1);
    return false;
}

int
backpressure_release(struct backpressure_guard *g, uint64_t objects,
                     uint64_t bytes)
{
    bool objs_ok, bytes_ok;

    if (!g)
        return ORBIT_EINVAL;
    objs_ok = bp_unreserve(&g->objects, objects);
    bytes_ok = bp_unreserve(&g->bytes, bytes);
    if (objs_ok && bytes_ok)
        return ORBIT_OK;
    atomic_fetch_add(&g->over_release, 1);
    return ORBIT_EINVAL;
}

bool
backpressure_should_pause(const struct backpressure_guard *g)
{
    if (!g)
        return false;
    return atomic_load(&g->objects) >= g->cfg.max_objects ||
           atomic_load(&g->bytes) >= g->cfg.max_bytes;
}

bool
backpressure_can_resume(const struct backpressure_guard *g)
{
    if (!g)
        return false;
    return atomic_load(&g->objects) <= g->low_objects &&
           atomic_load(&g->bytes) <= g->low_bytes;
}

bool
backpressure_paused(struct backpressure_guard *g)
{
    bool was;

    if (!g)
        return false;
    was = atomic_load(&g->paused);

    if (!was && backpressure_should_pause(g))
        atomic_compare_exchange_strong(&g->paused, &was, true);
    else if (was && backpressure_can_resume(g))
        atomic_compare_exchange_strong(&g->paused, &was, false);
    return atomic_load(&g->paused);
}

void
backpressure_stats(const struct backpressure_guard *g,
                   struct backpressure_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof *out);
    if (!g)
        return;
    out->objects = atomic_load(&g->objects);
    out->bytes = atomic_load(&g->bytes);
    out->peak_objects = atomic_load(&g->peak_objects);
    out->peak_bytes = atomic_load(&g->peak_bytes);
    out->admitted = atomic_load(&g->admitted);
    out->rejected = atomic_load(&g->rejected);
    out->over_release = atomic_load(&g->over_release);
}

void
backpressure_limits(const struct backpressure_guard *g,
                    struct backpressure_config *out)
{
    if (g && out)
        *out = g->cfg;
}

int
backpressure_check(const struct backpressure_guard *g)
{
    struct backpressure_stats s;

    if (!g || !bp_config_valid(&g->cfg) ||
        g->low_objects >= g->cfg.max_objects ||
        g->low_bytes >= g->cfg.max_bytes)
        return ORBIT_ECORRUPT;
    backpressure_stats(g, &s);
    if (s.objects > BP_WRAP_SUSPECT || s.bytes > BP_WRAP_SUSPECT ||
        s.objects > s.peak_objects || s.bytes > s.peak_bytes)
        return ORBIT_ECORRUPT;
    return ORBIT_OK;
}

int
backpressure_registry_new(const struct backpressure_config *cfg,
                          size_t max_guards, struct backpressure_registry **out)
{
    struct backpressure_registry *reg;
    int rc;

    if (!out)
        return ORBIT_EINVAL;
    *out = NULL;
    if (max_guards == 0)
        return ORBIT_EINVAL;
    reg = res_calloc(1, sizeof *reg);
    if (!reg)
        return ORBIT_ENOMEM;
    if (cfg)
        reg->cfg = *cfg;
    else
        backpressure_config_default(&reg->cfg);
    rc = bp_config_valid(&reg->cfg) ? ORBIT_OK : ORBIT_EINVAL;
    if (rc == ORBIT_OK)
        rc = res_map_new(max_guards, &reg->guards);
    if (rc == ORBIT_OK && pthread_mutex_init(&reg->mu, NULL) != 0)
        rc = ORBIT_ENOMEM;
    if (rc < 0) {
        res_map_free(reg->guards, NULL);
        free(reg);
        return rc;
    }
    *out = reg;
    return ORBIT_OK;
}

static void
bp_guard_free_cb(void *g)
{
    backpressure_guard_free(g);
}

void
backpressure_registry_free(struct backpressure_registry *reg)
{
    if (!reg)
        return;
    res_map_free(reg->guards, bp_guard_free_cb);
    pthread_mutex_destroy(&reg->mu);
    free(reg);
}

static int
bp_name_len(const char *name, size_t *len)
{
    if (!name || !name[0])
        return ORBIT_EINVAL;
    *len = strnlen(name, BACKPRESSURE_NAME_MAX + 1);
    return *len > BACKPRESSURE_NAME_MAX ? ORBIT_ETOOBIG : ORBIT_OK;
}

static int
bp_registry_lookup(struct backpressure_registry *reg, const char *name,
                   bool create, struct backpressure_guard **out)
{
    struct backpressure_guard *g = NULL;
    size_t len = 0;
    int rc;

    if (!reg || !out)
        return ORBIT_EINVAL;
    *out = NULL;
    rc = bp_name_len(name, &len);
    if (rc < 0)
        return rc;
    res_lock(&reg->mu);
    g = res_map_get(reg->guards, name, len);
    if (g)
        goto found;
    rc = create ? backpressure_guard_new(&reg->cfg, &g) : ORBIT_ENOENT;
    if (rc < 0)
        goto out;
    rc = res_map_insert(reg->guards, name, len, g);
    if (rc < 0) {
        backpressure_guard_free(g);
        goto out;
    }
found:
    *out = g;
out:
    res_unlock(&reg->mu);
    return rc;
}

int
backpressure_registry_get(struct backpressure_registry *reg, const char *name,
                          struct backpressure_guard **out)
{
    return bp_registry_lookup(reg, name, true, out);
}

int
backpressure_registry_find(struct backpressure_registry *reg, const char *name,
                           struct backpressure_guard **out)
{
    return bp_registry_lookup(reg, name, false, out);
}

size_t
backpressure_registry_count(struct backpressure_registry *reg)
{
    size_t n;

    if (!reg)
        return 0;
    res_lock(&reg->mu);
    n = res_map_count(reg->guards);
    res_unlock(&reg->mu);
    return n;
}

static int
bp_check_guard_cb(const void *key, size_t len, void *val, void *ctx)
{
    (void)key;
    (void)ctx;
    if (len == 0 || len > BACKPRESSURE_NAME_MAX)
        return ORBIT_ECORRUPT;
    return backpressure_check(val);
}

int
backpressure_registry_check(struct backpressure_registry *reg)
{
    int rc;

    if (!reg || !reg->guards || !bp_config_valid(&reg->cfg))
        return ORBIT_ECORRUPT;
    res_lock(&reg->mu);
    rc = res_map_check(reg->guards);
    if (rc == ORBIT_OK)
        rc = res_map_foreach(reg->guards, bp_check_guard_cb, NULL);
    res_unlock(&reg->mu);
    return rc;
}
