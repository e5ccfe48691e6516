/*
 * orbit/star_control.h - a star registering with a control plane
 * (`orbit serve`): a heartbeat POSTed to CONTROL/api/stars at start and
 * every interval, carrying the star's name, listen address, lifecycle
 * state, disk total/used, counters and advisory names (docs/api.md).
 *
 * The heartbeat runs on the star's event loop (a timer and libevent's
 * asynchronous HTTP client), so it never blocks serving; at most one
 * request is in flight, and a beat due while one is still out is skipped.
 * A control plane that cannot be reached (or refuses the heartbeat) is
 * logged once per outage, and once when it answers again, never fatal.
 *
 * Threads: the star must run on the caller's event base (star_config.base
 * set); every function here is called on that loop's thread.
 * Ownership: the config's strings are copied; the star is borrowed and
 * must outlive the control client.
 * Errors: ORBIT_EINVAL (no star, a star with its own thread, a URL that is
 * not http://HOST[:PORT][/PATH], an interval out of range), ORBIT_ENOMEM.
 */
#ifndef ORBIT_STAR_CONTROL_H
#define ORBIT_STAR_CONTROL_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct star;
struct star_control;

#define STAR_CONTROL_INTERVAL_MS     5000u
#define STAR_CONTROL_INTERVAL_MIN_MS 1000u
#define STAR_CONTROL_INTERVAL_MAX_MS 3600000u

struct star_control_config {
    const char *url;      /* http://HOST[:PORT]; port default 7071 */
    const char *address;  /* the address clients reach the star at */
    const char *token;    /* bearer token for the API; NULL: none */
    uint32_t interval_ms; /* 0: STAR_CONTROL_INTERVAL_MS */
    bool quiet;           /* no stderr lines */
};

/* Starts heartbeating: the first one is sent on the loop's next pass. */
int star_control_new(struct star *s, struct event_base *base,
                     const struct star_control_config *cfg,
                     struct star_control **out);
/* Sends a heartbeat on the loop's next pass (a lifecycle change). */
void star_control_beat(struct star_control *c);
/* Stops; a request in flight is dropped. NULL is a no-op. */
void star_control_free(struct star_control *c);

#endif
