/*
 * api_routes.c - the HTTP API's endpoints.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "orbit/bulletin.h"
#include "orbit/error.h"
#include "orbit/journal.h"
#include "orbit/metrics.h"
#include "orbit/orbit_clock.h"

void
api_get_healthz(struct api_server *s, struct evhttp_request *req,
                const struct api_query *q)
{
    if (!api_query_only(req, q, NULL))
        return;
    uint64_t up = orbit_clock_monotonic_ms(NULL) - s->started_ms;
    api_reply_json(
        req, 200,
        json_pack("{s:s, s:o}", "status", "ok", "uptime_ms", api_json_u64(up)));
}

/* ---- bulletins --------------------------------------------------------------
 */

/* A decimal uint64 without sign, spaces or overflow. */
static bool
api_parse_u64(const char *s, uint64_t *out)
{
    uint64_t v = 0;
    if (!*s)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

/* "job", "star", "job:NAME", "star:NAME" or a bare NAME. */
static bool
api_parse_source(const char *v, struct bulletin_filter *f, char *name,
                 size_t cap)
{
    const char *colon = strchr(v, ':');
    char kind[8];
    size_t klen = colon ? (size_t)(colon - v) : strlen(v);
    enum bulletin_source src;
    if (klen < sizeof kind) {
        memcpy(kind, v, klen);
        kind[klen] = '\0';
        if (bulletin_source_parse(kind, &src) == 0) {
            f->any_source = false;
            f->source = src;
            if (!colon)
                return true;
            v = colon + 1;
            if (!*v)
                return false;
        }
    }
    if (strlen(v) >= cap)
        return false;
    strcpy(name, v);
    f->source_name = name;
    return true;
}

/* Fills f from the query, or answers 400 and returns false. */
static bool
api_bulletin_filter(struct evhttp_request *req, const struct api_query *q,
                    struct bulletin_filter *f, char *name, size_t cap)
{
    const char *v;
    bulletin_filter_init(f);
    f->limit = API_BULLETINS_LIMIT;
    if ((v = api_query_get(q, "severity")) && *v &&
        bulletin_severity_parse(v, &f->min_severity) != 0) {
        api_reply_error(req, 400, "bad severity",
                        "expected info, warning or error");
        return false;
    }
    if ((v = api_query_get(q, "source")) && *v &&
        !api_parse_source(v, f, name, cap)) {
        api_reply_error(req, 400, "bad source",
                        "expected job, star, job:NAME, star:NAME or NAME");
        return false;
    }
    if ((v = api_query_get(q, "since")) && *v &&
        !api_parse_u64(v, &f->since_id)) {
        api_reply_error(req, 400, "bad since", "expected a bulletin id");
        return false;
    }
    uint64_t limit;
    if ((v = api_query_get(q, "limit")) && *v &&
        (!api_parse_u64(v, &limit) || limit == 0 ||
         limit > API_BULLETINS_LIMIT_MAX)) {
        api_reply_error(req, 400, "bad limit", "expected 1 to 1000");
        return false;
    }
    if (v && *v)
        f->limit = (size_t)limit;
    if ((v = api_query_get(q, "category")) && *v)
        f->category = v;
    if ((v = api_query_get(q, "job_id")) && *v)
        f->job_id = v;
    return true;
}

static const char *const api_bulletin_params[] = {
    "severity", "source", "category", "job_id", "since", "limit", NULL};

void
api_get_bulletins(struct api_server *s, struct evhttp_request *req,
                  const struct api_query *q)
{
    struct bulletin_filter f;
    char name[BULLETIN_NAME_MAX + 1];
    struct bulletin *list = NULL;
    size_t n = 0;
    if (!api_query_only(req, q, api_bulletin_params) ||
        !api_bulletin_filter(req, q, &f, name, sizeof name))
        return;
    if (s->cfg.bulletins &&
        bulletin_query(s->cfg.bulletins, &f, &list, &n) != 0) {
        api_reply_error(req, 500, "internal error", "out of memory");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, bulletin_to_json(&list[i]));
    bulletin_list_free(list, n);
    uint64_t last = s->cfg.bulletins ? bulletin_last_id(s->cfg.bulletins) : 0;
    api_reply_json(req, 200,
                   json_pack("{s:o, s:I, s:o}", "bulletins", arr, "count",
                             (json_int_t)n, "last_id", api_json_u64(last)));
}

/* ---- jobs -------------------------------------------------------------------
 */

static void
api_lock(const struct api_server *s)
{
    if (s->cfg.lock)
        s->cfg.lock(s->cfg.lock_arg);
}

static void
api_unlock(const struct api_server *s)
{
    if (s->cfg.unlock)
        s->cfg.unlock(s->cfg.lock_arg);
}

static json_t *
api_live_json(const struct api_server *s, const char *id)
{
    struct api_job_live live;
    const struct api_providers *p = &s->cfg.providers;
    memset(&live, 0, sizeof live);
    if (!p->job_live || p->job_live(p->arg, id, &live) != 0)
        return json_null();
    return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:b}",
                     "files_seen", api_json_u64(live.files_seen), "files_done",
                     api_json_u64(live.files_done), "files_skipped",
                     api_json_u64(live.files_skipped), "files_failed",
                     api_json_u64(live.files_failed), "bytes_total",
                     api_json_u64(live.bytes_total), "bytes_done",
                     api_json_u64(live.bytes_done), "bytes_sent",
                     api_json_u64(live.bytes_sent), "bytes_dedup",
                     api_json_u64(live.bytes_dedup), "retries",
                     api_json_u64(live.retries), "walk_done", live.walk_done);
}

static json_t *
api_options_json(const char *text)
{
    json_t *o = json_loads(text ? text : "{}", JSON_DECODE_ANY, NULL);
    return o ? o : api_json_str(text);
}

/* Progress in [0, 1] by bytes, null before anything is known. */
static json_t *
api_progress(const struct journal_counters *c, const json_t *live)
{
    uint64_t done = c->bytes_done, total = c->bytes_total;
    if (json_is_object(live)) {
        done =
            (uint64_t)json_integer_value(json_object_get(live, "bytes_done"));
        total =
            (uint64_t)json_integer_value(json_object_get(live, "bytes_total"));
    }
    if (total == 0)
        return json_null();
    return json_real(done >= total ? 1.0 : (double)done / (double)total);
}

static json_t *
api_job_json(const struct api_server *s, const struct journal_job *jb)
{
    json_t *srcs = json_array();
    for (size_t i = 0; i < jb->nsources; i++)
        json_array_append_new(srcs, api_json_str(jb->sources[i]));
    const struct journal_counters *c = &jb->counters;
    json_t *live = api_live_json(s, jb->id);
    json_t *progress = api_progress(c, live);
    return json_pack(
        "{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, "
        "s:o, s:o, s:o, s:b, s:o}",
        "id", jb->id, "kind", journal_kind_str(jb->kind), "state",
        journal_state_str(jb->state), "sources", srcs, "destination",
        api_json_str(jb->destination), "options", api_options_json(jb->options),
        "created_ms", api_json_u64(jb->created_ms), "updated_ms",
        api_json_u64(jb->updated_ms), "files_total",
        api_json_u64(c->files_total), "files_done", api_json_u64(c->files_done),
        "bytes_total", api_json_u64(c->bytes_total), "bytes_done",
        api_json_u64(c->bytes_done), "bytes_sent", api_json_u64(c->bytes_sent),
        "bytes_dedup", api_json_u64(c->bytes_dedup), "dead_letters",
        api_json_u64(jb->dead_letters), "progress", progress, "running",
        json_is_object(live), "live", live);
}

void
api_get_jobs(struct api_server *s, struct evhttp_request *req,
             const struct api_query *q)
{
    struct journal_job *jobs = NULL;
    size_t n = 0;
    if (!api_query_only(req, q, NULL))
        return;
    int rc = 0;
    if (s->cfg.journal) {
        api_lock(s);
        rc = journal_job_list(s->cfg.journal, &jobs, &n);
        api_unlock(s);
    }
    if (rc != 0) {
        api_reply_error(req, 500, "journal error", orbit_strerror(rc));
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, api_job_json(s, &jobs[i]));
    journal_jobs_free(jobs, n);
    api_reply_json(
        req, 200, json_pack("{s:o, s:I}", "jobs", arr, "count", (json_int_t)n));
}

static json_t *
api_dead_json(const struct dlq_entry *e)
{
    return json_pack(
        "{s:o, s:s, s:s, s:i, s:o, s:I, s:o, s:o, s:o, s:o}", "key",
        api_json_str(e->key), "reason", dlq_reason_str(e->reason), "error",
        orbit_errname(e->error_code), "error_code", e->error_code, "message",
        api_json_str(e->last_error), "attempts", (json_int_t)e->attempts,
        "first_failure_ms", api_json_u64(e->first_failure_ms),
        "last_failure_ms", api_json_u64(e->last_failure_ms), "source_path",
        api_json_str(e->source_path), "dest_path", api_json_str(e->dest_path));
}

/* The job's record, file counts and dead letters, under the lock. */
static int
api_job_load(struct api_server *s, const char *id, struct journal_job *jb,
             uint64_t counts[3], struct dlq_entry **dead, size_t *ndead)
{
    api_lock(s);
    int rc = journal_job_get(s->cfg.journal, id, jb);
    if (rc == 0)
        rc = journal_file_count(s->cfg.journal, id, counts);
    if (rc == 0)
        rc = journal_dead_list(s->cfg.journal, id, dead, ndead);
    api_unlock(s);
    if (rc != 0)
        journal_job_release(jb);
    return rc;
}

bool
api_job_id_ok(struct evhttp_request *req, const char *id)
{
    if (journal_id_valid(id))
        return true;
    api_reply_error(req, 400, "bad job id",
                    "expected 16 lowercase hex characters");
    return false;
}

void
api_get_job(struct api_server *s, struct evhttp_request *req,
            const struct api_query *q, const char *id)
{
    struct journal_job jb;
    uint64_t counts[3];
    struct dlq_entry *dead = NULL;
    size_t ndead = 0;
    if (!api_query_only(req, q, NULL) || !api_job_id_ok(req, id))
        return;
    int rc = s->cfg.journal ? api_job_load(s, id, &jb, counts, &dead, &ndead)
                            : ORBIT_ENOENT;
    if (rc != 0) {
        api_reply_error(req, rc == ORBIT_ENOENT ? 404 : 500,
                        rc == ORBIT_ENOENT ? "no such job" : "journal error",
                        rc == ORBIT_ENOENT ? id : orbit_strerror(rc));
        return;
    }
    json_t *j = api_job_json(s, &jb);
    json_t *arr = json_array();
    for (size_t i = 0; i < ndead && i < API_DEAD_LETTERS_MAX; i++)
        json_array_append_new(arr, api_dead_json(&dead[i]));
    json_object_set_new(j, "dead_letter_entries", arr);
    json_object_set_new(
        j, "files",
        json_pack("{s:o, s:o, s:o}", "pending",
                  api_json_u64(counts[JOURNAL_FILE_PENDING]), "done",
                  api_json_u64(counts[JOURNAL_FILE_DONE]), "dead",
                  api_json_u64(counts[JOURNAL_FILE_DEAD])));
    dlq_entries_free(dead, ndead);
    journal_job_release(&jb);
    api_reply_json(req, 200, j);
}

/* ---- stars and metrics ------------------------------------------------------
 */

static json_t *
api_advisories_json(unsigned adv)
{
    json_t *arr = json_array();
    for (unsigned i = 0; i < API_ADV_COUNT; i++)
        if (adv & (1u << i))
            json_array_append_new(arr, json_string(api_advisory_name(1u << i)));
    return arr;
}

static json_t *
api_str_or_null(const char *s)
{
    return s ? api_json_str(s) : json_null();
}

static void
api_star_emit(void *ctx, const struct api_star_info *st)
{
    json_t *arr = ctx;
    if (!st)
        return;
    json_array_append_new(
        arr,
        json_pack(
            "{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "name",
            api_json_str(st->name), "address", api_json_str(st->address),
            "state", api_json_str(st->lifecycle_state), "circuit",
            api_str_or_null(st->circuit_state), "health",
            api_json_str(st->health), "advisories",
            api_advisories_json(st->advisories), "last_seen_ms",
            st->last_seen_ms ? api_json_u64(st->last_seen_ms) : json_null(),
            "inflight_objects", api_json_u64(st->inflight_objects),
            "inflight_bytes", api_json_u64(st->inflight_bytes), "disk_total",
            api_json_u64(st->disk_total), "disk_used",
            api_json_u64(st->disk_used)));
}

void
api_get_stars(struct api_server *s, struct evhttp_request *req,
              const struct api_query *q)
{
    if (!api_query_only(req, q, NULL))
        return;
    json_t *arr = json_array();
    const struct api_providers *p = &s->cfg.providers;
    if (p->stars && arr)
        p->stars(p->arg, api_star_emit, arr);
    api_reply_json(req, 200,
                   json_pack("{s:I, s:o}", "count",
                             (json_int_t)json_array_size(arr), "stars", arr));
}

void
api_get_metrics(struct api_server *s, struct evhttp_request *req,
                const struct api_query *q)
{
    char *text = NULL;
    size_t len = 0;
    if (!api_query_only(req, q, NULL))
        return;
    if (s->cfg.metrics &&
        metrics_render_alloc(s->cfg.metrics, &text, &len) != 0) {
        api_reply_error(req, 500, "metrics error", "rendering failed");
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    struct evbuffer *buf = evbuffer_new();
    if (buf && text)
        evbuffer_add(buf, text, len);
    free(text);
    evhttp_send_reply(req, 200, "OK", buf);
    if (buf)
        evbuffer_free(buf);
}
