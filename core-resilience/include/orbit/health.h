/*
 * orbit/health.h - health advisories for one destination from samples the
 * caller feeds in.
 *
 * Samples: disk usage (used/total bytes at a time), transfer volume (bytes
 * over an interval) and operations (ops and errors over an interval). Each
 * kind lives in its own bounded ring; the oldest sample falls out.
 * health_evaluate(now) turns them into a bitmask of advisories:
 *
 *   disk_critical            latest used/total >= disk_critical (0.95)
 *   disk_warning             latest used/total >= disk_warning (0.85) and
 *                            not critical (the two never come together)
 *   disk_exhaustion_predicted  the least-squares line through the disk ring
 *                            reaches the total within exhaustion_horizon_ms
 *                            (1 h) of now; needs min_regression_samples (3)
 *                            spread over time and a growing trend
 *   throughput_low           transfer samples in the last window_ms (60 s)
 *                            average below throughput_floor_bps (64 KiB/s);
 *                            no samples in the window means idle, not slow
 *   error_rate_high          errors/ops over window_ms above error_rate
 *                            (0.1), once at least error_min_ops (20) ops
 *
 * Windows cover at most rate_ring samples of each kind: feed samples at a
 * pace that fits (one per second by default fits a 60 s window).
 *
 * No bit set means healthy. Status: unhealthy when disk_critical or
 * disk_exhaustion_predicted is set, degraded for any other advisory,
 * healthy otherwise.
 *
 * Time: every sample carries its own time and evaluate takes now, all in
 * milliseconds from one monotonic clock of the caller's choosing. A disk
 * sample older than the previous one means the clock stepped back: the disk
 * ring restarts from that sample, since a regression across the step would
 * be meaningless. Samples stamped after now count as current.
 *
 * Ownership: the monitor owns its rings. Errors: ORBIT_EINVAL (bad config,
 * total of 0, used > total, errors > ops), ORBIT_ENOMEM.
 * Thread-safety: every function is thread-safe (one mutex per monitor).
 */
#ifndef ORBIT_HEALTH_H
#define ORBIT_HEALTH_H

#include <stddef.h>
#include <stdint.h>

enum health_advisory {
    HEALTH_DISK_CRITICAL = 1u << 0,
    HEALTH_DISK_WARNING = 1u << 1,
    HEALTH_DISK_EXHAUSTION_PREDICTED = 1u << 2,
    HEALTH_THROUGHPUT_LOW = 1u << 3,
    HEALTH_ERROR_RATE_HIGH = 1u << 4,
};
#define HEALTH_HEALTHY      0u
#define HEALTH_ADVISORY_ALL 0x1Fu

enum health_status {
    HEALTH_STATUS_HEALTHY = 0,
    HEALTH_STATUS_DEGRADED,
    HEALTH_STATUS_UNHEALTHY,
};

struct health_config {
    double disk_warning;            /* default 0.85; 0 < warning <= critical */
    double disk_critical;           /* default 0.95; critical <= 1 */
    uint64_t exhaustion_horizon_ms; /* default 3600000 */
    size_t disk_ring;               /* default 32 samples; >= 2 */
    size_t min_regression_samples;  /* default 3; 2 .. disk_ring */
    uint64_t throughput_floor_bps;  /* default 65536; 0 disables */
    uint64_t window_ms;             /* default 60000; >= 1 */
    size_t rate_ring;               /* default 256 samples per kind; >= 1 */
    double error_rate;              /* default 0.1; 0 <= rate < 1 */
    uint64_t error_min_ops;         /* default 20; >= 1 */
};

struct health_report {
    unsigned advisories; /* HEALTH_* bits */
    enum health_status status;
    double disk_used_fraction; /* latest sample; -1 if none */
    uint64_t ms_to_full;       /* predicted; UINT64_MAX if not growing */
    double throughput_bps;     /* over the window; -1 if idle */
    double error_fraction;     /* over the window; -1 if too few ops */
};

struct health_monitor;

void health_config_default(struct health_config *cfg);

/* cfg NULL means the defaults. */
int health_new(const struct health_config *cfg, struct health_monitor **out);
void health_free(struct health_monitor *h);

int health_record_disk(struct health_monitor *h, uint64_t at_ms,
                       uint64_t used_bytes, uint64_t total_bytes);
/* bytes moved during the interval_ms that ended at at_ms. */
int health_record_transfer(struct health_monitor *h, uint64_t at_ms,
                           uint64_t bytes, uint64_t interval_ms);
/* ops finished (errors of them failed) up to at_ms. */
int health_record_ops(struct health_monitor *h, uint64_t at_ms, uint64_t ops,
                      uint64_t errors);

/* Fills *out (may be NULL) and returns the advisory bits. */
unsigned health_evaluate(const struct health_monitor *h, uint64_t now_ms,
                         struct health_report *out);

enum health_status health_status_of(unsigned advisories);
const char *health_status_str(enum health_status status);
/* Name of one advisory bit ("disk_critical"), "healthy" for 0, "unknown"
 * for anything else. */
const char *health_advisory_str(unsigned advisory);
/* Inverse of health_advisory_str for single bits and "healthy". */
int health_advisory_parse(const char *name, unsigned *out);

/* Invariant checker: 0 or ORBIT_ECORRUPT. */
int health_check(const struct health_monitor *h);

#endif
