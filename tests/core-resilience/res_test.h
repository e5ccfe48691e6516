/* Helpers shared by the core-resilience tests: a hand-driven clock. */
#ifndef ORBIT_RES_TEST_H
#define ORBIT_RES_TEST_H

#include <stdatomic.h>
#include <stdint.h>

struct fake_clock {
    _Atomic uint64_t now;
};

static inline uint64_t
fake_clock_read(void *ctx)
{
    return atomic_load(&((struct fake_clock *)ctx)->now);
}

static inline void
fake_clock_set(struct fake_clock *c, uint64_t t)
{
    atomic_store(&c->now, t);
}

#endif
