/*
 * audit_check.h - core-audit internals shared across its modules: UTF-8
 * validation and the invariant checkers tests call after every mutation
 * (they return 0 or ORBIT_ECORRUPT).
 */
#ifndef ORBIT_AUDIT_CHECK_H
#define ORBIT_AUDIT_CHECK_H

#include "orbit/metrics.h"
#include "orbit/provenance.h"

#include <stdbool.h>
#include <stddef.h>

/*
 * Length of the valid UTF-8 sequence starting at s (n bytes available), or 0
 * if none starts there. Shared by the provenance and metrics modules.
 */
size_t prov_utf8_seq_len(const unsigned char *s, size_t n);

/* Whether the NUL-terminated s is valid UTF-8. */
bool prov_utf8_valid(const char *s);

/* Fields bounded, valid UTF-8, context keys unique and non-empty. */
int prov_event_check(const struct prov_event *ev);

/* Names valid and unique, bounds increasing, series lists and caps sound. */
int metrics_registry_check(struct metrics_registry *reg);

#endif
