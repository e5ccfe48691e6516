/*
 * orbit/penalty_box.h - exponential backoff per item key.
 *
 * A transient failure of an item (a file path or a hex chunk id) is reported
 * with penalty_box_penalize(); the item is then ineligible until its delay
 * has passed. The n-th penalty of a key waits
 *     min(initial_delay_ms * factor^(n-1), max_delay_ms)
 * and the penalty that would exceed max_penalties reports the key as
 * exhausted: the caller moves the item to the dead-letter queue and clears
 * it. A success clears the key; the next penalty starts again from
 * initial_delay_ms.
 *
 * Time: penalize reads the configured clock (CLOCK_MONOTONIC by default);
 * queries take the caller's now_ms from the same clock. Eligibility is
 * now_ms >= eligible_at, so a clock that steps backwards can only delay an
 * item, never release it early. Delays and deadlines saturate at UINT64_MAX.
 *
 * Ownership: the box copies keys; penalty_box_free releases everything.
 * Bounded: at most max_keys keys; penalizing a new key beyond that fails with
 * ORBIT_EFULL (entries leave through penalty_box_clear).
 * Errors: ORBIT_EINVAL (NULL or empty key, bad config), ORBIT_ETOOBIG (key
 * longer than PENALTY_BOX_KEY_MAX), ORBIT_EFULL, ORBIT_ENOMEM, ORBIT_ENOENT
 * (unknown key).
 * Thread-safety: every function is thread-safe (one mutex per box); the
 * clock must be callable from any thread that penalizes.
 */
#ifndef ORBIT_PENALTY_BOX_H
#define ORBIT_PENALTY_BOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "orbit/orbit_clock.h"

#define PENALTY_BOX_KEY_MAX 4096u

struct penalty_box;

struct penalty_box_config {
    uint64_t initial_delay_ms; /* default 1000 */
    uint64_t max_delay_ms;     /* default 60000; >= initial_delay_ms */
    double factor;             /* default 2.0; finite, >= 1.0 */
    uint32_t max_penalties;    /* default 5; 0 = first failure exhausts */
    size_t max_keys;           /* default 1000000; >= 1 */
    orbit_clock_fn now_ms;     /* NULL = orbit_clock_monotonic_ms */
    void *clock_ctx;
};

/* What one penalty did to its key. */
struct penalty_info {
    uint32_t penalties;      /* penalties of the key, this one included */
    uint64_t delay_ms;       /* the wait imposed (0 when exhausted) */
    uint64_t eligible_at_ms; /* UINT64_MAX when exhausted */
    bool exhausted;          /* penalties > max_penalties: give up */
};

void penalty_box_config_default(struct penalty_box_config *cfg);

/* cfg NULL means the defaults. */
int penalty_box_new(const struct penalty_box_config *cfg,
                    struct penalty_box **out);
void penalty_box_free(struct penalty_box *pb);

/* Records one failure of key at the clock's now; info may be NULL. An
 * exhausted key stays ineligible until cleared. */
int penalty_box_penalize(struct penalty_box *pb, const char *key,
                         struct penalty_info *info);

/* True for unknown keys and keys whose delay has passed at now_ms. */
bool penalty_box_is_eligible(const struct penalty_box *pb, const char *key,
                             uint64_t now_ms);

/* When key becomes eligible (UINT64_MAX if exhausted); ORBIT_ENOENT if the
 * key carries no penalty. */
int penalty_box_next_eligible_at(const struct penalty_box *pb, const char *key,
                                 uint64_t *out_ms);

/* Forgets key (success, or handed to the dead-letter queue). */
int penalty_box_clear(struct penalty_box *pb, const char *key);

/* Penalties recorded for key; 0 for unknown keys. */
uint32_t penalty_box_penalties(const struct penalty_box *pb, const char *key);

/* Number of keys currently held. */
size_t penalty_box_count(const struct penalty_box *pb);

/* The delay of the n-th penalty (n >= 1) under cfg, capped at max. */
uint64_t penalty_box_delay_for(const struct penalty_box_config *cfg,
                               uint32_t n);

/* Reads the box's clock. */
uint64_t penalty_box_now(const struct penalty_box *pb);

/* Invariant checker: 0, or ORBIT_ECORRUPT if any entry is inconsistent. */
int penalty_box_check(const struct penalty_box *pb);

#endif
