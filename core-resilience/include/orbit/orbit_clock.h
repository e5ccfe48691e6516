/*
 * orbit/orbit_clock.h - the injectable millisecond clock used by
 * core-resilience.
 *
 * Every module that reads time takes an orbit_clock_fn and an opaque context
 * in its config struct, so tests and the scheduler can drive time by hand.
 * A NULL function means the module's default: orbit_clock_monotonic_ms for
 * durations (penalty delays), orbit_clock_realtime_ms where wall time is
 * recorded (dead-letter failure times).
 *
 * Ownership: the context belongs to the caller and must outlive every object
 * configured with it. Errors: none; a clock that cannot be read returns 0.
 * Thread-safety: both clocks here are thread-safe; an injected clock must be
 * as thread-safe as the object it is given to.
 */
#ifndef ORBIT_CLOCK_H
#define ORBIT_CLOCK_H

#include <stdint.h>

typedef uint64_t (*orbit_clock_fn)(void *ctx);

/* Milliseconds of CLOCK_MONOTONIC; ctx is ignored. */
uint64_t orbit_clock_monotonic_ms(void *ctx);

/* Milliseconds since the Unix epoch (CLOCK_REALTIME); ctx is ignored. */
uint64_t orbit_clock_realtime_ms(void *ctx);

#endif
