/*
 * orbit/breaker.h - a circuit breaker per destination.
 *
 *   closed    requests flow; consecutive failures are counted and a success
 *             resets the count. failure_threshold (5) in a row: open.
 *   open      nothing flows. The first breaker_allow at least cooldown_ms
 *             (30 s) after opening moves to half-open.
 *   half-open up to half_open_probes (1) requests are let through as
 *             probes; a probe success closes the breaker, a probe failure
 *             opens it again (with a fresh cool-down). Probe slots that
 *             stay unreported for cooldown_ms are handed out again, so a
 *             lost probe cannot wedge the breaker.
 *
 * Every request breaker_allow lets through must be reported with
 * breaker_record_success or breaker_record_failure. Reports that arrive
 * while open (requests admitted before the breaker opened) are ignored.
 *
 * Time: now_ms from one monotonic clock of the caller's choosing. If now
 * goes backwards, elapsed time counts as zero: the breaker stays open
 * longer, never shorter.
 *
 * Callback: on_change(old, new, ctx) runs on every transition, on the
 * calling thread, while the breaker's lock is held, so transitions are
 * reported in order; it must not call back into the same breaker.
 * Ownership: ctx belongs to the caller. Errors: ORBIT_EINVAL (bad config or
 * argument), ORBIT_ENOMEM.
 * Thread-safety: every function is thread-safe (one mutex per breaker).
 */
#ifndef ORBIT_BREAKER_H
#define ORBIT_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

enum breaker_state {
    BREAKER_CLOSED = 0,
    BREAKER_OPEN,
    BREAKER_HALF_OPEN,
};

typedef void (*breaker_change_fn)(enum breaker_state old_state,
                                  enum breaker_state new_state, void *ctx);

struct breaker_config {
    uint32_t failure_threshold;  /* default 5; >= 1 */
    uint64_t cooldown_ms;        /* default 30000 */
    uint32_t half_open_probes;   /* default 1; >= 1 */
    breaker_change_fn on_change; /* may be NULL */
    void *ctx;
};

struct breaker;

void breaker_config_default(struct breaker_config *cfg);

/* cfg NULL means the defaults. */
int breaker_new(const struct breaker_config *cfg, struct breaker **out);
void breaker_free(struct breaker *b);

/* Whether one request may go now; in half-open, true takes a probe slot. */
bool breaker_allow(struct breaker *b, uint64_t now_ms);
void breaker_record_success(struct breaker *b, uint64_t now_ms);
void breaker_record_failure(struct breaker *b, uint64_t now_ms);

enum breaker_state breaker_state(const struct breaker *b);
/* Consecutive failures counted while closed. */
uint32_t breaker_failures(const struct breaker *b);
/* Number of transitions into open since creation. */
uint64_t breaker_trips(const struct breaker *b);

/* "closed", "open", "half_open"; "unknown" otherwise. */
const char *breaker_state_str(enum breaker_state state);
int breaker_state_parse(const char *name, enum breaker_state *out);

/* Invariant checker: 0 or ORBIT_ECORRUPT. */
int breaker_check(const struct breaker *b);

#endif
