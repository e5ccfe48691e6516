/*
 * audit_check.h - invariant checkers for core-audit's objects. Tests call
 * them after every mutation; they return 0 or ORBIT_ECORRUPT.
 */
#ifndef ORBIT_AUDIT_CHECK_H
#define ORBIT_AUDIT_CHECK_H

#include "orbit/metrics.h"
#include "orbit/provenance.h"

/* Fields bounded, valid UTF-8, context keys unique and non-empty. */
int prov_event_check(const struct prov_event *ev);

/* Names valid and unique, bounds increasing, series lists and caps sound. */
int metrics_registry_check(struct metrics_registry *reg);

#endif
