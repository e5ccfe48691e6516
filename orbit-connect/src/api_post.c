/*
 * api_post.c - the HTTP API's two writes: submitting a job and posting a
 * bulletin. Both take a JSON object body (at most API_MAX_BODY_SIZE bytes,
 * enforced by evhttp) and refuse unknown fields.
 */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_internal.h"
#include "orbit/bulletin.h"
#include "orbit/error.h"

json_t *
api_body_object(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = in ? evbuffer_get_length(in) : 0;
    const unsigned char *data = len ? evbuffer_pullup(in, -1) : NULL;
    json_error_t err;
    json_t *body =
        data ? json_loadb((const char *)data, len, JSON_REJECT_DUPLICATES, &err)
             : NULL;
    if (!json_is_object(body)) {
        api_reply_error(req, 400, "bad body",
                        body   ? "expected a JSON object"
                        : data ? err.text
                               : "expected a JSON object, got nothing");
        json_decref(body);
        return NULL;
    }
    return body;
}

bool
api_body_only(struct evhttp_request *req, json_t *body,
              const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        bool ok = false;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        if (!ok) {
            api_reply_error(req, 400, "unknown field", key);
            return false;
        }
    }
    return true;
}

/* A required (or optional) non-empty string field, or 400 and NULL. */
static const char *
api_body_str(struct evhttp_request *req, json_t *body, const char *key,
             bool required, bool *failed)
{
    json_t *v = json_object_get(body, key);
    if (!v && !required)
        return NULL;
    const char *s = json_string_value(v);
    if (!s || !*s || strlen(s) != json_string_length(v)) {
        api_reply_error(req, 400, "bad field", key);
        *failed = true;
        return NULL;
    }
    return s;
}

bool
api_can_submit(const struct api_server *s)
{
    return s->cfg.providers.submit_job != NULL;
}

bool
api_can_post_bulletin(const struct api_server *s)
{
    return s->cfg.bulletins && s->cfg.accept_bulletins;
}

static const char *const api_job_fields[] = {"kind", "sources", "destination",
                                             "options", NULL};

/* Fills job from body; answers 400 and returns false when it cannot. */
static bool
api_job_from_body(struct evhttp_request *req, json_t *body,
                  struct api_job_request *job, const char **srcs,
                  char **options)
{
    bool failed = false;
    json_t *arr = json_object_get(body, "sources");
    json_t *opts = json_object_get(body, "options");
    job->kind = api_body_str(req, body, "kind", true, &failed);
    if (!failed && strcmp(job->kind, "copy") != 0 &&
        strcmp(job->kind, "sync") != 0) {
        api_reply_error(req, 400, "bad field", "kind: copy or sync");
        return false;
    }
    if (!failed)
        job->destination =
            api_body_str(req, body, "destination", true, &failed);
    if (failed)
        return false;
    size_t n = json_array_size(arr);
    if (!json_is_array(arr) || n == 0 || n > API_SOURCES_MAX ||
        (opts && !json_is_object(opts))) {
        api_reply_error(req, 400, "bad field",
                        opts && !json_is_object(opts) ? "options" : "sources");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(arr, i);
        srcs[i] = json_string_value(v);
        if (!srcs[i] || !*srcs[i] || strlen(srcs[i]) != json_string_length(v)) {
            api_reply_error(req, 400, "bad field", "sources");
            return false;
        }
    }
    job->sources = srcs;
    job->nsources = n;
    *options = opts ? json_dumps(opts, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    job->options = *options ? *options : "{}";
    return true;
}

static void
api_reply_submitted(struct evhttp_request *req, int rc, const char *id)
{
    if (rc == 0) {
        char href[API_JOB_ID_MAX + 16];
        snprintf(href, sizeof href, "/api/jobs/%s", id);
        api_reply_json(req, 202,
                       json_pack("{s:o, s:o}", "id", api_json_str(id), "href",
                                 api_json_str(href)));
    } else if (rc == ORBIT_EINVAL) {
        api_reply_error(req, 400, "job refused", orbit_strerror(rc));
    } else if (rc == ORBIT_EAGAIN || rc == ORBIT_EFULL) {
        api_reply_error(req, 503, "busy", orbit_strerror(rc));
    } else {
        api_reply_error(req, 500, "submit failed", orbit_strerror(rc));
    }
}

void
api_post_job(struct api_server *s, struct evhttp_request *req,
             const struct api_query *q)
{
    struct api_job_request job;
    const char *srcs[API_SOURCES_MAX];
    char *options = NULL;
    char id[API_JOB_ID_MAX + 1] = "";
    if (!api_query_only(req, q, NULL))
        return;
    json_t *body = api_body_object(req);
    if (!body)
        return;
    memset(&job, 0, sizeof job);
    if (api_body_only(req, body, api_job_fields) &&
        api_job_from_body(req, body, &job, srcs, &options)) {
        const struct api_providers *p = &s->cfg.providers;
        int rc = p->submit_job(p->arg, &job, id);
        id[API_JOB_ID_MAX] = '\0';
        api_reply_submitted(req, rc, id);
    }
    free(options);
    json_decref(body);
}

static const char *const api_bulletin_fields[] = {
    "severity", "source", "source_name", "category", "job_id", "message", NULL};

void
api_post_bulletin(struct api_server *s, struct evhttp_request *req,
                  const struct api_query *q)
{
    struct bulletin_post p;
    bool failed = false;
    if (!api_query_only(req, q, NULL))
        return;
    json_t *body = api_body_object(req);
    if (!body || !api_body_only(req, body, api_bulletin_fields)) {
        json_decref(body);
        return;
    }
    memset(&p, 0, sizeof p);
    const char *sev = api_body_str(req, body, "severity", true, &failed);
    const char *src =
        failed ? NULL : api_body_str(req, body, "source", true, &failed);
    if (!failed && (bulletin_severity_parse(sev, &p.severity) != 0 ||
                    bulletin_source_parse(src, &p.source) != 0)) {
        api_reply_error(req, 400, "bad field", "severity or source");
        failed = true;
    }
    const char *names[] = {"source_name", "category", "message", "job_id"};
    const char *vals[4] = {NULL};
    for (size_t i = 0; i < 4 && !failed; i++)
        vals[i] = api_body_str(req, body, names[i], i < 3, &failed);
    if (!failed) {
        uint64_t id = 0;
        p.source_name = vals[0];
        p.category = vals[1];
        p.message = vals[2];
        p.job_id = vals[3];
        int rc = bulletin_post(s->cfg.bulletins, &p, &id);
        if (rc == 0)
            api_reply_json(req, 201,
                           json_pack("{s:o}", "id", api_json_u64(id)));
        else
            api_reply_error(req, rc == ORBIT_EINVAL ? 400 : 500,
                            "bulletin refused", orbit_strerror(rc));
    }
    json_decref(body);
}
