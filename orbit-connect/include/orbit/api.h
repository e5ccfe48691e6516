/*
 * orbit/api.h - the control-plane HTTP API (libevent evhttp, JSON through
 * jansson).
 *
 *   GET /healthz                 liveness
 *   GET /api/bulletins           ?severity=&source=&category=&job_id=
 *                                &since=&limit=
 *   GET /api/jobs                every job of the journal, with live
 *                                counters for running ones
 *   GET /api/jobs/{id}           one job: progress, bytes, dead letters
 *   GET /api/stars               every star a provider reports
 *   GET /metrics                 Prometheus text format (core-audit)
 *   POST /api/jobs               submit a job (when a submit_job provider
 *                                is set): 202 with its id
 *   POST /api/bulletins          post a bulletin (when accept_bulletins is
 *                                set, e.g. a star's advisory): 201
 *   DELETE /api/jobs/{id}        cancel a job (when a cancel_job provider
 *                                is set): 202, 404 unknown, 409 finished
 *   POST /api/stars              a star's heartbeat (when a star_heartbeat
 *                                provider is set): 202
 *
 * Unknown paths answer 404, other methods 405 (with Allow), bad query
 * values 400, all with a JSON body {"error": "...", "detail": "..."}. The
 * server binds 127.0.0.1 by default; it refuses to bind any address that
 * is not loopback without a bearer token, and with a token every request
 * must carry "Authorization: Bearer <token>" (compared in constant time)
 * or gets 401. Header size, body size and a timeout are bounded.
 *
 * Threads: every callback runs on the event base's thread, and the server
 * reads the journal and the providers from it. If another thread uses the
 * journal (the scheduler), give lock/unlock hooks: they bracket every
 * journal access. The bulletin board is thread-safe on its own.
 *
 * Ownership: the config's journal, board, registry and provider contexts
 * are borrowed and must outlive the server; the token is copied.
 * Errors: ORBIT_EINVAL (bad argument), ORBIT_EAUTH (non-loopback address
 * without a token), ORBIT_ECONNECT (address unusable or in use),
 * ORBIT_ESTATE (bound twice), ORBIT_ENOMEM. api_query_parse():
 * ORBIT_EFORMAT (bad percent escape, NUL byte, empty key), ORBIT_ETOOBIG
 * (input over API_QUERY_MAX_LEN or more than API_QUERY_MAX_PARAMS pairs),
 * ORBIT_EEXIST (a repeated key).
 */
#ifndef ORBIT_API_H
#define ORBIT_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct journal;
struct bulletin_board;
struct metrics_registry;
struct api_server;

#define API_DEFAULT_PORT        7071u
#define API_QUERY_MAX_LEN       4096u
#define API_QUERY_MAX_PARAMS    32u
#define API_MAX_HEADERS_SIZE    8192
#define API_MAX_BODY_SIZE       65536
#define API_TIMEOUT_S           30
#define API_BULLETINS_LIMIT     100u /* default limit= */
#define API_BULLETINS_LIMIT_MAX 1000u
#define API_DEAD_LETTERS_MAX    1000u /* listed per job */
#define API_SOURCES_MAX         64u   /* sources of a submitted job */
#define API_JOB_ID_MAX          64u   /* id a submit provider returns */
#define API_STAR_NAME_MAX       128u  /* name, address, state of a star */
#define API_STARS_MAX           256u  /* stars a registry keeps */
#define API_STAR_LOST_BEATS     3u    /* heartbeats missed: lost */

/* A star's advisories, as bits (the wire protocol's order). */
enum api_advisory {
    API_ADV_DISK_WARNING = 1u << 0,
    API_ADV_DISK_CRITICAL = 1u << 1,
    API_ADV_DISK_EXHAUSTION = 1u << 2,
    API_ADV_THROUGHPUT_LOW = 1u << 3,
    API_ADV_ERROR_RATE_HIGH = 1u << 4,
};
#define API_ADV_COUNT 5u

/* Live counters of a running job, from the scheduler. */
struct api_job_live {
    uint64_t files_seen;
    uint64_t files_done;
    uint64_t files_skipped;
    uint64_t files_failed;
    uint64_t bytes_total;
    uint64_t bytes_done;
    uint64_t bytes_sent;
    uint64_t bytes_dedup;
    uint64_t retries;
    bool walk_done;
};

/* A job submitted with POST /api/jobs; strings borrowed for the call. */
struct api_job_request {
    const char *kind; /* "copy" or "sync" */
    const char *const *sources;
    size_t nsources; /* 1 .. API_SOURCES_MAX */
    const char *destination;
    const char *options; /* JSON text of the "options" object, or "{}" */
};

/* One star as the scheduler or `orbit serve` sees it; strings borrowed for
 * the call. */
struct api_star_info {
    const char *name;
    const char *address;         /* host:port or "local" */
    const char *lifecycle_state; /* "connecting", "ready", "draining", ... */
    const char *circuit_state;   /* "closed", "open", "half-open" */
    const char *health;          /* "ok", "warning", "critical", ... */
    uint64_t last_seen_ms;       /* 0: never */
    uint64_t inflight_objects;
    uint64_t inflight_bytes;
    unsigned advisories; /* API_ADV_* bits */
    uint64_t disk_total; /* bytes; 0: unknown */
    uint64_t disk_used;
};

/* A heartbeat a star posts to POST /api/stars; strings borrowed for the
 * call, each 1 .. API_STAR_NAME_MAX bytes. */
struct api_star_heartbeat {
    const char *name;
    const char *address;  /* where the star listens, host:port */
    const char *state;    /* its lifecycle state: "scheduled", ... */
    uint64_t interval_ms; /* how often it posts; 1000 .. 3600000 */
    uint64_t disk_total;
    uint64_t disk_used;
    uint64_t bytes_received;
    uint64_t chunks_received;
    uint64_t files_committed;
    uint64_t errors_total;
    uint64_t connections;
    unsigned advisories; /* API_ADV_* bits */
};

typedef void (*api_star_emit_fn)(void *ctx, const struct api_star_info *s);

struct api_providers {
    /* Fills *out for a job that runs now: 0, or ORBIT_ENOENT if it does
     * not run. NULL: no live counters. */
    int (*job_live)(void *arg, const char *job_id, struct api_job_live *out);
    /* Calls emit once per star. NULL: no stars. */
    void (*stars)(void *arg, api_star_emit_fn emit, void *ctx);
    /* Starts (or queues) a job and writes its id (NUL-terminated, at most
     * API_JOB_ID_MAX bytes) to id_out: 0; ORBIT_EINVAL for a job it
     * refuses (400), ORBIT_EAGAIN or ORBIT_EFULL when busy (503), else
     * 500. NULL: POST /api/jobs answers 405. */
    int (*submit_job)(void *arg, const struct api_job_request *job,
                      char *id_out);
    /* Cancels a job: 0 (202) when it is canceled or being canceled,
     * ORBIT_ENOENT for an unknown job (404), ORBIT_ESTATE for one that
     * has finished (409), else 500. NULL: DELETE answers 405. */
    int (*cancel_job)(void *arg, const char *job_id);
    /* Takes a star's heartbeat: 0 (202); ORBIT_EFULL when no more stars
     * fit (503), ORBIT_EINVAL (400), else 500. NULL: POST /api/stars
     * answers 405. */
    int (*star_heartbeat)(void *arg, const struct api_star_heartbeat *hb);
    void *arg;
};

struct api_config {
    struct journal *journal;          /* NULL: no jobs */
    struct bulletin_board *bulletins; /* NULL: an empty feed */
    struct metrics_registry *metrics; /* NULL: an empty exposition */
    struct api_providers providers;
    void (*lock)(void *arg); /* around journal access; may be NULL */
    void (*unlock)(void *arg);
    void *lock_arg;
    bool accept_bulletins; /* POST /api/bulletins posts to the board */
    const char *token;     /* bearer token; NULL or "" for none */
    int timeout_s;         /* 0: API_TIMEOUT_S */
};

void api_config_init(struct api_config *cfg);

int api_server_new(struct event_base *base, const struct api_config *cfg,
                   struct api_server **out);
/* Closes the listener; requests in flight are dropped. NULL is a no-op. */
void api_server_free(struct api_server *s);

/* Binds addr (NULL: "127.0.0.1") and port (0: any free port). */
int api_server_bind(struct api_server *s, const char *addr, uint16_t port);
/* The port actually bound, 0 before api_server_bind(). */
uint16_t api_server_port(const struct api_server *s);
/* Whether every address addr resolves to is a loopback address. */
bool api_addr_is_loopback(const char *addr);

/* The name of one advisory bit ("disk_warning", "disk_critical",
 * "disk_exhaustion_predicted", "throughput_low", "error_rate_high"), NULL
 * for anything else; and the bit of a name: 0 or ORBIT_EINVAL. */
const char *api_advisory_name(unsigned bit);
int api_advisory_parse(const char *name, unsigned *bit);

/*
 * The star registry of a control plane: the stars that post heartbeats,
 * bounded at capacity. A star is known by its name. A star not heard of for
 * API_STAR_LOST_BEATS of its intervals is lost (a Warning bulletin,
 * category "star_lost"); one heard of again is back (Info, "star_back").
 * An advisory a star did not have before becomes a bulletin (category =
 * the advisory's name, source = the star; Error for disk_critical and
 * disk_exhaustion_predicted, Warning otherwise); all advisories cleared is
 * an Info ("health"). Times are the caller's monotonic milliseconds;
 * last_seen_ms in the listing is wall-clock time.
 * Not thread-safe: use it from one thread (the API's event loop). board
 * is borrowed (NULL: no bulletins).
 * Errors: ORBIT_EINVAL, ORBIT_EFULL (a new star past capacity),
 * ORBIT_ENOMEM.
 */
struct api_star_registry;
int api_star_registry_new(struct bulletin_board *board, size_t capacity,
                          struct api_star_registry **out);
void api_star_registry_free(struct api_star_registry *r);
int api_star_registry_heartbeat(struct api_star_registry *r,
                                const struct api_star_heartbeat *hb,
                                uint64_t now_ms);
/* Marks the stars whose heartbeats stopped as lost; how many became lost. */
size_t api_star_registry_sweep(struct api_star_registry *r, uint64_t now_ms);
/* Calls emit once per star, in the order they registered. */
void api_star_registry_each(const struct api_star_registry *r,
                            api_star_emit_fn emit, void *ctx);
size_t api_star_registry_count(const struct api_star_registry *r);

/* A parsed query string: decoded keys and values ('+' is a space, %XX a
 * byte), all pointing into one owned buffer. */
struct api_query_param {
    const char *key;
    const char *value; /* "" for "key" and "key=" */
};

struct api_query {
    struct api_query_param params[API_QUERY_MAX_PARAMS];
    size_t n;
    char *buf;
};

/* Parses len bytes of qs (without the '?'); empty pairs ("a=1&&b=2") are
 * skipped. On error q is left empty. Release with api_query_release(). */
int api_query_parse(const char *qs, size_t len, struct api_query *q);
void api_query_release(struct api_query *q);
/* The value of key, or NULL. */
const char *api_query_get(const struct api_query *q, const char *key);

#endif
