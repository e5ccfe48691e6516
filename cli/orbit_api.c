/*
 * orbit_api.c - `--api ADDR:PORT` on copy and sync: the control-plane HTTP
 * API served on the job's own event loop, fed by the scheduler's counters,
 * its destinations and the bulletin board it posts to.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orbit/api.h"
#include "orbit/error.h"
#include "orbit/sched.h"
#include "orbit/wire.h"
#include "orbit_cli.h"

int
cli_parse_hostport(const char *spec, char *host, size_t hostcap, uint16_t *port)
{
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || (size_t)(colon - spec) >= hostcap)
        return ORBIT_EINVAL;
    const char *h = spec;
    size_t hl = (size_t)(colon - spec);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    char *end = NULL;
    long p = strtol(colon + 1, &end, 10);
    if (*end != '\0' || end == colon + 1 || p < 0 || p > 65535)
        return ORBIT_EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (uint16_t)p;
    return 0;
}

static int
job_live(void *arg, const char *job_id, struct api_job_live *out)
{
    struct cli_api *a = arg;
    if (!a->sched || strcmp(job_id, a->job_id) != 0)
        return ORBIT_ENOENT;
    struct sched_stats st;
    sched_get_stats(a->sched, &st);
    *out = (struct api_job_live){
        .files_seen = st.files_seen,
        .files_done = st.files_done,
        .files_skipped = st.files_skipped,
        .files_failed = st.files_failed,
        .bytes_total = st.bytes_total,
        .bytes_done = st.bytes_done,
        .bytes_sent = st.bytes_sent,
        .bytes_dedup = st.bytes_dedup,
        .retries = st.retries,
        .walk_done = st.walk_done,
    };
    return 0;
}

struct star_emit {
    api_star_emit_fn emit;
    void *ctx;
};

static const char *
health_word(uint32_t adv)
{
    if (adv & (WIRE_ADV_DISK_CRITICAL | WIRE_ADV_DISK_EXHAUSTION))
        return "critical";
    return adv ? "warning" : "ok";
}

static void
one_star(void *ctx, const struct sched_star_view *v)
{
    struct star_emit *e = ctx;
    struct api_star_info info = {
        .name = v->name,
        .address = v->address,
        .lifecycle_state = v->state,
        .circuit_state = v->circuit,
        .health = health_word(v->advisories),
        .last_seen_ms = v->last_seen_ms,
        .inflight_objects = v->inflight_objects,
        .inflight_bytes = v->inflight_bytes,
    };
    e->emit(e->ctx, &info);
}

static void
stars(void *arg, api_star_emit_fn emit, void *ctx)
{
    struct cli_api *a = arg;
    struct star_emit e = {emit, ctx};
    if (a->sched)
        sched_star_each(a->sched, one_star, &e);
}

static void
journal_lock(void *arg)
{
    struct cli_api *a = arg;
    if (a->sched)
        sched_journal_flush(a->sched);
}

static void
journal_unlock(void *arg)
{
    (void)arg;
}

int
cli_api_serve(struct event_base *base, struct api_config *cfg, const char *spec,
              bool announce, struct api_server **out)
{
    char host[256];
    uint16_t port = 0;
    *out = NULL;
    if (cli_parse_hostport(spec, host, sizeof host, &port) != 0) {
        fprintf(stderr, "orbit: --api wants ADDR:PORT, not '%s'\n", spec);
        return ORBIT_EINVAL;
    }
    cfg->token = getenv("ORBIT_API_TOKEN");
    int rc = api_server_new(base, cfg, out);
    if (rc == 0)
        rc = api_server_bind(*out, host, port);
    if (rc != 0) {
        fprintf(stderr, "orbit: cannot serve the API on %s: %s%s\n", spec,
                orbit_strerror(rc),
                api_addr_is_loopback(host)
                    ? ""
                    : " (off loopback it needs ORBIT_API_TOKEN)");
        api_server_free(*out);
        *out = NULL;
        return rc;
    }
    if (announce)
        fprintf(stderr, "orbit: API on http://%s:%u/\n", host,
                (unsigned)api_server_port(*out));
    return 0;
}

int
cli_api_start(struct cli_api *a, struct event_base *base)
{
    struct api_config cfg;
    api_config_init(&cfg);
    cfg.journal = a->journal;
    cfg.bulletins = a->bulletins;
    cfg.metrics = a->metrics;
    cfg.providers.job_live = job_live;
    cfg.providers.stars = stars;
    cfg.providers.arg = a;
    cfg.lock = journal_lock;
    cfg.unlock = journal_unlock;
    cfg.lock_arg = a;
    return cli_api_serve(base, &cfg, a->spec, !a->quiet, &a->server);
}

void
cli_api_stop(struct cli_api *a)
{
    api_server_free(a->server);
    a->server = NULL;
}
