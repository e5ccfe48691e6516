/*
 * orbit/backpressure.h - dual-threshold flow control: how much may be in
 * flight to one destination, counted in objects AND bytes.
 *
 * A guard admits work while both counters stay within their limits
 * (default 10,000 objects and 1 GiB). backpressure_try_acquire never blocks:
 * it either reserves both amounts or reserves nothing. It reserves objects
 * first and backs them out if the bytes do not fit, so under contention a
 * request may be refused while another is being backed out; a refusal is
 * only ever a "try again", never an overrun.
 *
 * Oversize rule: a single request larger than a limit (one chunk bigger than
 * max_bytes, or a batch of more than max_objects) is admitted when that
 * counter is zero, because otherwise it could never go and the transfer would
 * deadlock; while it is held the counter stands above its limit and nothing
 * else is admitted on that counter.
 *
 * Watermarks give hysteresis so the scheduler does not flap: the high mark
 * is the limit itself, the low mark low_fraction of it (default 50%).
 * backpressure_should_pause is true at or above the high mark on either
 * counter; backpressure_can_resume only once both are at or below the low
 * mark. backpressure_paused keeps that latch inside the guard.
 *
 * Releasing more than is held clamps the counter at zero and returns
 * ORBIT_EINVAL, so a caller bug never wraps the counters.
 *
 * The registry maps destination names to guards (get-or-create), all made
 * from one config; it owns them and frees them with itself.
 *
 * Ownership: guards from backpressure_guard_new belong to the caller; guards
 * from a registry to the registry, valid until backpressure_registry_free.
 * Errors: ORBIT_EINVAL (bad config or argument, over-release), ORBIT_ENOMEM,
 * ORBIT_EFULL (registry at max_guards), ORBIT_ETOOBIG (name too long),
 * ORBIT_ENOENT (registry lookup without create).
 * Thread-safety: guard operations are lock-free (C11 atomics) and may be
 * called from any thread; registry operations take the registry's mutex.
 */
#ifndef ORBIT_BACKPRESSURE_H
#define ORBIT_BACKPRESSURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BACKPRESSURE_NAME_MAX 1024u

struct backpressure_config {
    uint64_t max_objects; /* default 10000; >= 1 */
    uint64_t max_bytes;   /* default 1 GiB; >= 1 */
    double low_fraction;  /* default 0.5; 0 <= low_fraction < 1 */
};

struct backpressure_stats {
    uint64_t objects; /* in flight now */
    uint64_t bytes;
    uint64_t peak_objects; /* highest ever observed */
    uint64_t peak_bytes;
    uint64_t admitted;     /* successful try_acquire calls */
    uint64_t rejected;     /* refused try_acquire calls */
    uint64_t over_release; /* release calls that asked for more than held */
};

struct backpressure_guard;
struct backpressure_registry;

void backpressure_config_default(struct backpressure_config *cfg);

/* cfg NULL means the defaults. */
int backpressure_guard_new(const struct backpressure_config *cfg,
                           struct backpressure_guard **out);
void backpressure_guard_free(struct backpressure_guard *g);

/* Reserves objects and bytes, or nothing; true when reserved. */
bool backpressure_try_acquire(struct backpressure_guard *g, uint64_t objects,
                              uint64_t bytes);

/* Returns a reservation; ORBIT_EINVAL (after clamping at zero) if either
 * amount exceeds what is held. */
int backpressure_release(struct backpressure_guard *g, uint64_t objects,
                         uint64_t bytes);

/* Either counter at or above its limit. */
bool backpressure_should_pause(const struct backpressure_guard *g);
/* Both counters at or below their low watermark. */
bool backpressure_can_resume(const struct backpressure_guard *g);
/* The latched pause state: set by should_pause, cleared by can_resume. */
bool backpressure_paused(struct backpressure_guard *g);

void backpressure_stats(const struct backpressure_guard *g,
                        struct backpressure_stats *out);
void backpressure_limits(const struct backpressure_guard *g,
                         struct backpressure_config *out);

/* Invariant checker (exact when no other thread is mid-call): 0 or
 * ORBIT_ECORRUPT. */
int backpressure_check(const struct backpressure_guard *g);

/* cfg NULL means the defaults; max_guards >= 1. */
int backpressure_registry_new(const struct backpressure_config *cfg,
                              size_t max_guards,
                              struct backpressure_registry **out);
void backpressure_registry_free(struct backpressure_registry *reg);

/* The guard of name, created on first use. */
int backpressure_registry_get(struct backpressure_registry *reg,
                              const char *name,
                              struct backpressure_guard **out);
/* The guard of name if it exists; ORBIT_ENOENT otherwise. */
int backpressure_registry_find(struct backpressure_registry *reg,
                               const char *name,
                               struct backpressure_guard **out);
size_t backpressure_registry_count(struct backpressure_registry *reg);

/* Registry invariant checker: every guard checks, count within bound. */
int backpressure_registry_check(struct backpressure_registry *reg);

#endif
