#include "orbit/penalty_box.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "orbit/error.h"
#include "res_alloc.h"
#include "res_lock.h"
#include "res_map.h"

struct pb_entry {
    uint32_t penalties;
    uint64_t penalized_at_ms;
    uint64_t delay_ms;
    uint64_t eligible_at_ms;
};

struct penalty_box {
    struct penalty_box_config cfg;
    struct res_map *map;
    pthread_mutex_t mu;
};

void
penalty_box_config_default(struct penalty_box_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->initial_delay_ms = 1000;
    cfg->max_delay_ms = 60000;
    cfg->factor = 2.0;
    cfg->max_penalties = 5;
    cfg->max_keys = 1000000;
}

static bool
pb_config_valid(const struct penalty_box_config *cfg)
{
    return cfg->max_delay_ms >= cfg->initial_delay_ms && cfg->max_keys > 0 &&
           isfinite(cfg->factor) && cfg->factor >= 1.0;
}

/* factor^e by squaring, giving up (returning INFINITY) once past limit so
 * huge exponents cost O(log e) and never overflow. */
static double
pb_pow_capped(double factor, uint32_t e, double limit)
{
    double result = 1.0;
    double base = factor;

    while (e > 0) {
        if (e & 1u) {
            result *= base;
            if (result > limit)
                return INFINITY;
        }
        e >>= 1;
        if (e > 0) {
            base *= base;
            if (base > limit)
                return INFINITY;
        }
    }
    return result;
}

uint64_t
penalty_box_delay_for(const struct penalty_box_config *cfg, uint32_t n)
{
    double limit, mult, delay;

    if (cfg->initial_delay_ms == 0)
        return 0;
    if (n <= 1)
        return cfg->initial_delay_ms;
    limit = (double)cfg->max_delay_ms / (double)cfg->initial_delay_ms;
    mult = pb_pow_capped(cfg->factor, n - 1, limit);
    delay = mult * (double)cfg->initial_delay_ms;
    if (!(delay < (double)cfg->max_delay_ms))
        return cfg->max_delay_ms;
    return (uint64_t)delay;
}

int
penalty_box_new(const struct penalty_box_config *cfg, struct penalty_box **out)
{
    struct penalty_box *pb = NULL;
    int rc;

    if (!out)
        return ORBIT_EINVAL;
    *out = NULL;
    pb = res_calloc(1, sizeof *pb);
    if (!pb)
        return ORBIT_ENOMEM;
    if (cfg)
        pb->cfg = *cfg;
    else
        penalty_box_config_default(&pb->cfg);
    if (!pb_config_valid(&pb->cfg)) {
        free(pb);
        return ORBIT_EINVAL;
    }
    if (!pb->cfg.now_ms)
        pb->cfg.now_ms = orbit_clock_monotonic_ms;
    rc = res_map_new(pb->cfg.max_keys, &pb->map);
    if (rc < 0 || pthread_mutex_init(&pb->mu, NULL) != 0) {
        res_map_free(pb->map, NULL);
        free(pb);
        return rc < 0 ? rc : ORBIT_ENOMEM;
    }
    *out = pb;
    return ORBIT_OK;
}

void
penalty_box_free(struct penalty_box *pb)
{
    if (!pb)
        return;
    res_map_free(pb->map, free);
    pthread_mutex_destroy(&pb->mu);
    free(pb);
}

/* Validates the box and the key, and measures the key. */
static int
pb_key_len(const struct penalty_box *pb, const char *key, size_t *len)
{
    if (!pb || !key || key[0] == '\0')
        return ORBIT_EINVAL;
    *len = strnlen(key, PENALTY_BOX_KEY_MAX + 1);
    return *len > PENALTY_BOX_KEY_MAX ? ORBIT_ETOOBIG : ORBIT_OK;
}

static int
pb_lookup_or_add(struct penalty_box *pb, const char *key, size_t len,
                 struct pb_entry **out)
{
    struct pb_entry *e = res_map_get(pb->map, key, len);
    int rc;

    if (e) {
        *out = e;
        return ORBIT_OK;
    }
    e = res_calloc(1, sizeof *e);
    if (!e)
        return ORBIT_ENOMEM;
    rc = res_map_insert(pb->map, key, len, e);
    if (rc < 0) {
        free(e);
        return rc;
    }
    *out = e;
    return ORBIT_OK;
}

static void
pb_apply(const struct penalty_box *pb, struct pb_entry *e, uint64_t now)
{
    if (e->penalties < UINT32_MAX)
        e->penalties++;
    e->penalized_at_ms = now;
    if (e->penalties > pb->cfg.max_penalties) {
        e->delay_ms = 0;
        e->eligible_at_ms = UINT64_MAX;
        return;
    }
    e->delay_ms = penalty_box_delay_for(&pb->cfg, e->penalties);
    e->eligible_at_ms = res_sat_add(now, e->delay_ms);
}

int
penalty_box_penalize(struct penalty_box *pb, const char *key,
                     struct penalty_info *info)
{
    struct pb_entry *e = NULL;
    size_t len = 0;
    uint64_t now;
    int rc;

    rc = pb_key_len(pb, key, &len);
    if (rc < 0)
        return rc;
    now = pb->cfg.now_ms(pb->cfg.clock_ctx);
    res_lock(&pb->mu);
    rc = pb_lookup_or_add(pb, key, len, &e);
    if (rc == ORBIT_OK) {
        pb_apply(pb, e, now);
        if (info) {
            info->penalties = e->penalties;
            info->delay_ms = e->delay_ms;
            info->eligible_at_ms = e->eligible_at_ms;
            info->exhausted = e->penalties > pb->cfg.max_penalties;
        }
    }
    res_unlock(&pb->mu);
    return rc;
}

/* Copies key's entry out under the lock; ORBIT_ENOENT if absent. */
static int
pb_snapshot(const struct penalty_box *pb, const char *key, struct pb_entry *out)
{
    const struct pb_entry *e;
    size_t len = 0;
    int rc;

    rc = pb_key_len(pb, key, &len);
    if (rc < 0)
        return rc;
    res_lock(&pb->mu);
    e = res_map_get(pb->map, key, len);
    if (e)
        *out = *e;
    res_unlock(&pb->mu);
    return e ? ORBIT_OK : ORBIT_ENOENT;
}

bool
penalty_box_is_eligible(const struct penalty_box *pb, const char *key,
                        uint64_t now_ms)
{
    struct pb_entry e;

    if (pb_snapshot(pb, key, &e) < 0)
        return true;
    return now_ms >= e.eligible_at_ms && e.eligible_at_ms != UINT64_MAX;
}

int
penalty_box_next_eligible_at(const struct penalty_box *pb, const char *key,
                             uint64_t *out_ms)
{
    struct pb_entry e;
    int rc;

    if (!out_ms)
        return ORBIT_EINVAL;
    rc = pb_snapshot(pb, key, &e);
    if (rc == ORBIT_OK)
        *out_ms = e.eligible_at_ms;
    return rc;
}

uint32_t
penalty_box_penalties(const struct penalty_box *pb, const char *key)
{
    struct pb_entry e;

    return pb_snapshot(pb, key, &e) == ORBIT_OK ? e.penalties : 0;
}

int
penalty_box_clear(struct penalty_box *pb, const char *key)
{
    struct pb_entry *e;
    size_t len = 0;
    int rc;

    rc = pb_key_len(pb, key, &len);
    if (rc < 0)
        return rc;
    res_lock(&pb->mu);
    e = res_map_remove(pb->map, key, len);
    res_unlock(&pb->mu);
    free(e);
    return e ? ORBIT_OK : ORBIT_ENOENT;
}

size_t
penalty_box_count(const struct penalty_box *pb)
{
    size_t n;

    if (!pb)
        return 0;
    res_lock(&pb->mu);
    n = res_map_count(pb->map);
    res_unlock(&pb->mu);
    return n;
}

uint64_t
penalty_box_now(const struct penalty_box *pb)
{
    if (!pb)
        return 0;
    return pb->cfg.now_ms(pb->cfg.clock_ctx);
}

static int
pb_check_entry(const void *key, size_t len, void *val, void *ctx)
{
    const struct penalty_box_config *cfg = ctx;
    const struct pb_entry *e = val;

    if (len == 0 || len > PENALTY_BOX_KEY_MAX ||
        memchr(key, '\0', len) != NULL || e->penalties == 0)
        return ORBIT_ECORRUPT;
    if (e->penalties > cfg->max_penalties)
        return e->eligible_at_ms == UINT64_MAX ? ORBIT_OK : ORBIT_ECORRUPT;
    if (e->delay_ms != penalty_box_delay_for(cfg, e->penalties) ||
        e->delay_ms > cfg->max_delay_ms ||
        e->eligible_at_ms != res_sat_add(e->penalized_at_ms, e->delay_ms))
        return ORBIT_ECORRUPT;
    return ORBIT_OK;
}

int
penalty_box_check(const struct penalty_box *pb)
{
    int rc;

    if (!pb || !pb->map || !pb_config_valid(&pb->cfg) || !pb->cfg.now_ms)
        return ORBIT_ECORRUPT;
    res_lock(&pb->mu);
    rc = res_map_check(pb->map);
    if (rc == ORBIT_OK)
        rc = res_map_foreach(pb->map, pb_check_entry, (void *)&pb->cfg);
    res_unlock(&pb->mu);
    return rc;
}
