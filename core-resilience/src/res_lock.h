/*
 * res_lock.h - private mutex helpers for core-resilience. Read-only entry
 * points take const objects yet must lock, so the lock is taken through a
 * const pointer to a mutex that is never itself const (always heap objects).
 */
#ifndef ORBIT_RES_LOCK_H
#define ORBIT_RES_LOCK_H

#include <assert.h>
#include <pthread.h>
#include <stdint.h>

static inline void
res_lock(const pthread_mutex_t *mu)
{
    int rc = pthread_mutex_lock((pthread_mutex_t *)mu);
    assert(rc == 0);
    (void)rc;
}

static inline void
res_unlock(const pthread_mutex_t *mu)
{
    int rc = pthread_mutex_unlock((pthread_mutex_t *)mu);
    assert(rc == 0);
    (void)rc;
}

/* a + b, saturating at UINT64_MAX instead of wrapping. */
static inline uint64_t
res_sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

#endif
