#include "orbit/orbit_clock.h"

#include <time.h>

static uint64_t
clock_read_ms(clockid_t id)
{
    struct timespec ts;

    if (clock_gettime(id, &ts) != 0 || ts.tv_sec < 0)
        return 0;
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)(ts.tv_nsec / 1000000);
}

uint64_t
orbit_clock_monotonic_ms(void *ctx)
{
    (void)ctx;
    return clock_read_ms(CLOCK_MONOTONIC);
}

uint64_t
orbit_clock_realtime_ms(void *ctx)
{
    (void)ctx;
    return clock_read_ms(CLOCK_REALTIME);
}
