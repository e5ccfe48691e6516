#include "orbit/breaker.h"

#include <stdlib.h>
#include <string.h>

#include "orbit/error.h"
#include "res_alloc.h"
#include "res_lock.h"

struct breaker {
    struct breaker_config cfg;
    enum breaker_state state;
    uint32_t failures;   /* consecutive, while closed */
    uint32_t probes_out; /* admitted, unreported, while half-open */
    uint64_t since_ms;   /* when the current state (or probe round) began */
    uint64_t trips;
    pthread_mutex_t mu;
};

static const char *const breaker_names[] = {
    [BREAKER_CLOSED] = "closed",
    [BREAKER_OPEN] = "open",
    [BREAKER_HALF_OPEN] = "half_open",
};

void
breaker_config_default(struct breaker_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->failure_threshold = 5;
    cfg->cooldown_ms = 30000;
    cfg->half_open_probes = 1;
}

int
breaker_new(const struct breaker_config *cfg, struct breaker **out)
{
    struct breaker *b;

    if (!out)
        return ORBIT_EINVAL;
    *out = NULL;
    b = res_calloc(1, sizeof *b);
    if (!b)
        return ORBIT_ENOMEM;
    if (cfg)
        b->cfg = *cfg;
    else
        breaker_config_default(&b->cfg);
    if (b->cfg.failure_threshold == 0 || b->cfg.half_open_probes == 0) {
        free(b);
        return ORBIT_EINVAL;
    }
    if (pthread_mutex_init(&b->mu, NULL) != 0) {
        free(b);
        return ORBIT_ENOMEM;
    }
    b->state = BREAKER_CLOSED;
    *out = b;
    return ORBIT_OK;
}

void
breaker_free(struct breaker *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->mu);
    free(b);
}

static void
breaker_move(struct breaker *b, enum breaker_state to, uint64_t now)
{
    enum breaker_state from = b->state;

    b->state = to;
    b->since_ms = now;
    b->failures = 0;
    b->probes_out = 0;
    if (to == BREAKER_OPEN)
        b->trips++;
    if (b->cfg.on_change && from != to)
        b->cfg.on_change(from, to, b->cfg.ctx);
}

static bool
breaker_elapsed(const struct breaker *b, uint64_t now)
{
    return now >= b->since_ms && now - b->since_ms >= b->cfg.cooldown_ms;
}

static bool
breaker_allow_locked(struct breaker *b, uint64_t now)
{
    switch (b->state) {
    case BREAKER_CLOSED:
        return true;
    case BREAKER_OPEN:
        if (!breaker_elapsed(b, now))
            return false;
        breaker_move(b, BREAKER_HALF_OPEN, now);
        break;
    case BREAKER_HALF_OPEN:
        if (b->probes_out >= b->cfg.half_open_probes &&
            breaker_elapsed(b, now)) {
            b->probes_out = 0; /* probes lost: hand the slots out again */
            b->since_ms = now;
        }
        break;
    }
    if (b->probes_out >= b->cfg.half_open_probes)
        return false;
    b->probes_out++;
    return true;
}

bool
breaker_allow(struct breaker *b, uint64_t now_ms)
{
    bool ok;

    if (!b)
        return false;
    res_lock(&b->mu);
    ok = breaker_allow_locked(b, now_ms);
    res_unlock(&b->mu);
    return ok;
}

void
breaker_record_success(struct breaker *b, uint64_t now_ms)
{
    if (!b)
        return;
    res_lock(&b->mu);
    if (b->state == BREAKER_CLOSED)
        b->failures = 0;
    else if (b->state == BREAKER_HALF_OPEN)
        breaker_move(b, BREAKER_CLOSED, now_ms);
    res_unlock(&b->mu);
}

void
breaker_record_failure(struct breaker *b, uint64_t now_ms)
{
    if (!b)
        return;
    res_lock(&b->mu);
    if (b->state == BREAKER_CLOSED) {
        if (b->failures < UINT32_MAX)
            b->failures++;
        if (b->failures >= b->cfg.failure_threshold)
            breaker_move(b, BREAKER_OPEN, now_ms);
    } else if (b->state == BREAKER_HALF_OPEN) {
        breaker_move(b, BREAKER_OPEN, now_ms);
    }
    res_unlock(&b->mu);
}

/* A consistent copy of the counters, taken under the lock. */
struct breaker_view {
    enum breaker_state state;
    uint32_t failures;
    uint64_t trips;
};

static struct breaker_view
breaker_view(const struct breaker *b)
{
    struct breaker_view v = {BREAKER_CLOSED, 0, 0};

    if (!b)
        return v;
    res_lock(&b->mu);
    v.state = b->state;
    v.failures = b->failures;
    v.trips = b->trips;
    res_unlock(&b->mu);
    return v;
}

enum breaker_state
breaker_state(const struct breaker *b)
{
    return breaker_view(b).state;
}

uint32_t
breaker_failures(const struct breaker *b)
{
    return breaker_view(b).failures;
}

uint64_t
breaker_trips(const struct breaker *b)
{
    return breaker_view(b).trips;
}

const char *
breaker_state_str(enum breaker_state state)
{
    if ((unsigned)state > BREAKER_HALF_OPEN)
        return "unknown";
    return breaker_names[state];
}

int
breaker_state_parse(const char *name, enum breaker_state *out)
{
    if (!name || !out)
        return ORBIT_EINVAL;
    for (unsigned i = 0; i <= BREAKER_HALF_OPEN; i++) {
        if (strcmp(name, breaker_names[i]) == 0) {
            *out = (enum breaker_state)i;
            return ORBIT_OK;
        }
    }
    return ORBIT_EINVAL;
}

int
breaker_check(const struct breaker *b)
{
    int rc = ORBIT_OK;

    if (!b || b->cfg.failure_threshold == 0 || b->cfg.half_open_probes == 0)
        return ORBIT_ECORRUPT;
    res_lock(&b->mu);
    switch (b->state) {
    case BREAKER_CLOSED:
        if (b->failures >= b->cfg.failure_threshold || b->probes_out != 0)
            rc = ORBIT_ECORRUPT;
        break;
    case BREAKER_OPEN:
        if (b->failures != 0 || b->probes_out != 0 || b->trips == 0)
            rc = ORBIT_ECORRUPT;
        break;
    case BREAKER_HALF_OPEN:
        if (b->failures != 0 || b->probes_out > b->cfg.half_open_probes ||
            b->trips == 0)
            rc = ORBIT_ECORRUPT;
        break;
    default:
        rc = ORBIT_ECORRUPT;
    }
    res_unlock(&b->mu);
    return rc;
}
