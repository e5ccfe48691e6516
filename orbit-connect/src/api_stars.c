/*
 * api_stars.c - the control plane's side of its stars and jobs' ends:
 * DELETE /api/jobs/{id}, POST /api/stars (a star's heartbeat), and the
 * star registry `orbit serve` keeps from those heartbeats.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "orbit/bulletin.h"
#include "orbit/error.h"
#include "orbit/orbit_clock.h"

#define API_INTERVAL_MIN_MS 1000u
#define API_INTERVAL_MAX_MS 3600000u

static const char *const api_adv_names[API_ADV_COUNT] = {
    "disk_warning", "disk_critical", "disk_exhaustion_predicted",
    "throughput_low", "error_rate_high"};

const char *
api_advisory_name(unsigned bit)
{
    for (unsigned i = 0; i < API_ADV_COUNT; i++)
        if (bit == 1u << i)
            return api_adv_names[i];
    return NULL;
}

int
api_advisory_parse(const char *name, unsigned *bit)
{
    for (unsigned i = 0; name && i < API_ADV_COUNT; i++) {
        if (strcmp(name, api_adv_names[i]) == 0) {
            *bit = 1u << i;
            return 0;
        }
    }
    return ORBIT_EINVAL;
}

/* ---- DELETE /api/jobs/{id} ------------------------------------------------
 */

bool
api_can_cancel(const struct api_server *s)
{
    return s->cfg.providers.cancel_job != NULL;
}

void
api_delete_job(struct api_server *s, struct evhttp_request *req,
               const struct api_query *q, const char *id)
{
    if (!api_query_only(req, q, NULL) || !api_job_id_ok(req, id))
        return;
    const struct api_providers *p = &s->cfg.providers;
    int rc = p->cancel_job(p->arg, id);
    if (rc == 0) {
        char href[API_JOB_ID_MAX + 16];
        snprintf(href, sizeof href, "/api/jobs/%s", id);
        api_reply_json(req, 202,
                       json_pack("{s:o, s:s, s:o}", "id", api_json_str(id),
                                 "state", "canceling", "href",
                                 api_json_str(href)));
    } else if (rc == ORBIT_ENOENT) {
        api_reply_error(req, 404, "no such job", id);
    } else if (rc == ORBIT_ESTATE) {
        api_reply_error(req, 409, "job not running",
                        "only a queued or running job can be canceled");
    } else {
        api_reply_error(req, 500, "cancel failed", orbit_strerror(rc));
    }
}

/* ---- POST /api/stars --------------------------------------------------------
 */

bool
api_can_post_star(const struct api_server *s)
{
    return s->cfg.providers.star_heartbeat != NULL;
}

static const char *const api_heartbeat_fields[] = {"name",
                                                   "address",
                                                   "state",
                                                   "interval_ms",
                                                   "disk_total",
                                                   "disk_used",
                                                   "bytes_received",
                                                   "chunks_received",
                                                   "files_committed",
                                                   "errors_total",
                                                   "connections",
                                                   "advisories",
                                                   NULL};

/* A string field of 1 .. API_STAR_NAME_MAX bytes without NUL or control
 * characters, or NULL. */
static const char *
api_hb_str(json_t *body, const char *key)
{
    json_t *v = json_object_get(body, key);
    const char *s = json_string_value(v);
    size_t n = s ? json_string_length(v) : 0;
    if (!s || n == 0 || n > API_STAR_NAME_MAX || strlen(s) != n)
        return NULL;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return NULL;
    return s;
}

/* An optional non-negative integer field (0 when absent): false if bad. */
static bool
api_hb_u64(json_t *body, const char *key, uint64_t *out)
{
    json_t *v = json_object_get(body, key);
    *out = 0;
    if (!v)
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

static bool
api_hb_advisories(json_t *body, unsigned *out)
{
    json_t *arr = json_object_get(body, "advisories");
    size_t i;
    json_t *v;
    *out = 0;
    if (!arr)
        return true;
    if (!json_is_array(arr) || json_array_size(arr) > API_ADV_COUNT)
        return false;
    json_array_foreach(arr, i, v)
    {
        unsigned bit;
        if (api_advisory_parse(json_string_value(v), &bit) != 0)
            return false;
        *out |= bit;
    }
    return true;
}

/* Fills hb from body, or names the bad field in *bad. */
static bool
api_heartbeat_from_body(json_t *body, struct api_star_heartbeat *hb,
                        const char **bad)
{
    static const char *const nums[] = {
        "interval_ms",     "disk_total",      "disk_used",    "bytes_received",
        "chunks_received", "files_committed", "errors_total", "connections"};
    uint64_t *slots[] = {&hb->interval_ms,     &hb->disk_total,
                         &hb->disk_used,       &hb->bytes_received,
                         &hb->chunks_received, &hb->files_committed,
                         &hb->errors_total,    &hb->connections};
    hb->name = api_hb_str(body, *bad = "name");
    hb->address = hb->name ? api_hb_str(body, *bad = "address") : NULL;
    hb->state = hb->address ? api_hb_str(body, *bad = "state") : NULL;
    if (!hb->state)
        return false;
    for (size_t i = 0; i < sizeof nums / sizeof *nums; i++)
        if (!api_hb_u64(body, *bad = nums[i], slots[i]))
            return false;
    *bad = "interval_ms";
    if (hb->interval_ms < API_INTERVAL_MIN_MS ||
        hb->interval_ms > API_INTERVAL_MAX_MS)
        return false;
    *bad = "disk_used";
    if (hb->disk_used > hb->disk_total)
        return false;
    *bad = "advisories";
    return api_hb_advisories(body, &hb->advisories);
}

void
api_post_star(struct api_server *s, struct evhttp_request *req,
              const struct api_query *q)
{
    struct api_star_heartbeat hb;
    const char *bad = NULL;
    if (!api_query_only(req, q, NULL))
        return;
    json_t *body = api_body_object(req);
    if (!body || !api_body_only(req, body, api_heartbeat_fields)) {
        json_decref(body);
        return;
    }
    memset(&hb, 0, sizeof hb);
    if (!api_heartbeat_from_body(body, &hb, &bad)) {
        api_reply_error(req, 400, "bad field", bad);
        json_decref(body);
        return;
    }
    const struct api_providers *p = &s->cfg.providers;
    int rc = p->star_heartbeat(p->arg, &hb);
    if (rc == 0)
        api_reply_json(req, 202,
                       json_pack("{s:o, s:o}", "name", api_json_str(hb.name),
                                 "interval_ms", api_json_u64(hb.interval_ms)));
    else if (rc == ORBIT_EFULL)
        api_reply_error(req, 503, "too many stars", orbit_strerror(rc));
    else
        api_reply_error(req, rc == ORBIT_EINVAL ? 400 : 500,
                        "heartbeat refused", orbit_strerror(rc));
    json_decref(body);
}

/* ---- the registry -----------------------------------------------------------
 */

struct api_star_entry {
    char name[API_STAR_NAME_MAX + 1];
    char address[API_STAR_NAME_MAX + 1];
    char state[API_STAR_NAME_MAX + 1];
    uint64_t interval_ms;
    uint64_t seen_mono_ms;
    uint64_t seen_wall_ms;
    uint64_t disk_total, disk_used;
    unsigned advisories;
    bool lost;
};

struct api_star_registry {
    struct bulletin_board *board;
    struct api_star_entry *stars;
    size_t n, cap;
};

int
api_star_registry_new(struct bulletin_board *board, size_t capacity,
                      struct api_star_registry **out)
{
    if (!out || capacity == 0 || capacity > API_STARS_MAX * 64)
        return ORBIT_EINVAL;
    struct api_star_registry *r = api_calloc(1, sizeof *r);
    if (!r)
        return ORBIT_ENOMEM;
    r->stars = api_calloc(capacity, sizeof *r->stars);
    if (!r->stars) {
        free(r);
        return ORBIT_ENOMEM;
    }
    r->board = board;
    r->cap = capacity;
    *out = r;
    return 0;
}

void
api_star_registry_free(struct api_star_registry *r)
{
    if (!r)
        return;
    free(r->stars);
    free(r);
}

size_t
api_star_registry_count(const struct api_star_registry *r)
{
    return r ? r->n : 0;
}

static void
api_star_post(struct api_star_registry *r, const struct api_star_entry *e,
              enum bulletin_severity sev, const char *category, const char *msg)
{
    if (!r->board)
        return;
    struct bulletin_post p = {
        .severity = sev,
        .source = BULLETIN_SOURCE_STAR,
        .source_name = e->name,
        .category = category,
        .message = msg,
    };
    bulletin_post(r->board, &p, NULL);
}

static double
api_disk_pct(const struct api_star_entry *e)
{
    return e->disk_total ? 100.0 * (double)e->disk_used / (double)e->disk_total
                         : 0.0;
}

/* A bulletin for every advisory in now that was not in before. */
static void
api_star_advise(struct api_star_registry *r, const struct api_star_entry *e,
                unsigned before)
{
    char msg[512];
    unsigned fresh = e->advisories & ~before;
    for (unsigned i = 0; i < API_ADV_COUNT; i++) {
        unsigned bit = 1u << i;
        if (!(fresh & bit))
            continue;
        snprintf(msg, sizeof msg, "star %s (%s): %s; disk %.1f%% used", e->name,
                 e->address, api_adv_names[i], api_disk_pct(e));
        bool grave = bit & (API_ADV_DISK_CRITICAL | API_ADV_DISK_EXHAUSTION);
        api_star_post(r, e, grave ? BULLETIN_ERROR : BULLETIN_WARNING,
                      api_adv_names[i], msg);
    }
    if (before && !e->advisories) {
        snprintf(msg, sizeof msg, "star %s (%s): healthy again", e->name,
                 e->address);
        api_star_post(r, e, BULLETIN_INFO, "health", msg);
    }
}

static struct api_star_entry *
api_star_find(struct api_star_registry *r, const char *name)
{
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->stars[i].name, name) == 0)
            return &r->stars[i];
    return NULL;
}

int
api_star_registry_heartbeat(struct api_star_registry *r,
                            const struct api_star_heartbeat *hb,
                            uint64_t now_ms)
{
    if (!r || !hb || !hb->name || !hb->address || !hb->state ||
        strlen(hb->name) > API_STAR_NAME_MAX ||
        strlen(hb->address) > API_STAR_NAME_MAX ||
        strlen(hb->state) > API_STAR_NAME_MAX || hb->interval_ms == 0)
        return ORBIT_EINVAL;
    struct api_star_entry *e = api_star_find(r, hb->name);
    bool fresh = e == NULL, back = e && e->lost;
    if (fresh && r->n == r->cap)
        return ORBIT_EFULL;
    if (fresh) {
        e = &r->stars[r->n++];
        memset(e, 0, sizeof *e);
        snprintf(e->name, sizeof e->name, "%s", hb->name);
    }
    unsigned before = e->advisories;
    snprintf(e->address, sizeof e->address, "%s", hb->address);
    snprintf(e->state, sizeof e->state, "%s", hb->state);
    e->interval_ms = hb->interval_ms;
    e->seen_mono_ms = now_ms;
    e->seen_wall_ms = orbit_clock_realtime_ms(NULL);
    e->disk_total = hb->disk_total;
    e->disk_used = hb->disk_used;
    e->advisories = hb->advisories & ((1u << API_ADV_COUNT) - 1);
    e->lost = false;
    char msg[512];
    if (fresh || back) {
        if (back)
            snprintf(msg, sizeof msg, "star %s (%s) is back", e->name,
                     e->address);
        else
            snprintf(msg, sizeof msg, "star %s registered from %s (%s)",
                     e->name, e->address, e->state);
        api_star_post(r, e, BULLETIN_INFO, back ? "star_back" : "star", msg);
    }
    api_star_advise(r, e, before);
    return 0;
}

size_t
api_star_registry_sweep(struct api_star_registry *r, uint64_t now_ms)
{
    size_t lost = 0;
    for (size_t i = 0; r && i < r->n; i++) {
        struct api_star_entry *e = &r->stars[i];
        uint64_t quiet =
            now_ms > e->seen_mono_ms ? now_ms - e->seen_mono_ms : 0;
        if (e->lost || quiet <= API_STAR_LOST_BEATS * e->interval_ms)
            continue;
        e->lost = true;
        lost++;
        char msg[512];
        snprintf(msg, sizeof msg,
                 "star %s (%s) is lost: no heartbeat for %llu ms", e->name,
                 e->address, (unsigned long long)quiet);
        api_star_post(r, e, BULLETIN_WARNING, "star_lost", msg);
    }
    return lost;
}

static const char *
api_health_word(unsigned adv)
{
    if (adv & (API_ADV_DISK_CRITICAL | API_ADV_DISK_EXHAUSTION))
        return "critical";
    return adv ? "warning" : "ok";
}

void
api_star_registry_each(const struct api_star_registry *r, api_star_emit_fn emit,
                       void *ctx)
{
    for (size_t i = 0; r && i < r->n; i++) {
        const struct api_star_entry *e = &r->stars[i];
        struct api_star_info info = {
            .name = e->name,
            .address = e->address,
            .lifecycle_state = e->lost ? "lost" : e->state,
            .health = e->lost ? "unknown" : api_health_word(e->advisories),
            .last_seen_ms = e->seen_wall_ms,
            .advisories = e->advisories,
            .disk_total = e->disk_total,
            .disk_used = e->disk_used,
        };
        emit(ctx, &info);
    }
}
