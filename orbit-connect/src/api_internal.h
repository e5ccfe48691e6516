/*
 * api_internal.h - what the HTTP API's server core shares with its
 * endpoint handlers.
 */
#ifndef ORBIT_API_INTERNAL_H
#define ORBIT_API_INTERNAL_H

#include <event2/http.h>
#include <jansson.h>
#include <stdint.h>

#include "orbit/api.h"

struct api_server {
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *sock;
    struct api_config cfg;
    char *token;
    uint16_t port;
    uint64_t started_ms;
};

/* The allocation seam of the HTTP API: every allocation it makes goes through
 * these (memory is released with free()). The definitions are weak and call
 * the C library, so a test can link strong ones that fail the Nth call. */
void *api_malloc(size_t size);
void *api_calloc(size_t n, size_t size);

/* Sends body (consumed) with status code as application/json. */
void api_reply_json(struct evhttp_request *req, int code, json_t *body);
/* Sends {"error": error, "detail": detail} with status code. */
void api_reply_error(struct evhttp_request *req, int code, const char *error,
                     const char *detail);

/* A JSON string of s even if s is not UTF-8 (bad bytes become '?'). */
json_t *api_json_str(const char *s);
/* A JSON integer, clamped to the int64 range. */
json_t *api_json_u64(uint64_t v);

/* Endpoint handlers: q is the parsed query. */
void api_get_healthz(struct api_server *s, struct evhttp_request *req,
                     const struct api_query *q);
void api_get_bulletins(struct api_server *s, struct evhttp_request *req,
                       const struct api_query *q);
void api_get_jobs(struct api_server *s, struct evhttp_request *req,
                  const struct api_query *q);
void api_get_job(struct api_server *s, struct evhttp_request *req,
                 const struct api_query *q, const char *id);
void api_get_stars(struct api_server *s, struct evhttp_request *req,
                   const struct api_query *q);
void api_get_metrics(struct api_server *s, struct evhttp_request *req,
                     const struct api_query *q);

/* Writes: POST /api/jobs and POST /api/bulletins, and whether the server
 * is configured to serve them (405 otherwise). */
void api_post_job(struct api_server *s, struct evhttp_request *req,
                  const struct api_query *q);
void api_post_bulletin(struct api_server *s, struct evhttp_request *req,
                       const struct api_query *q);
bool api_can_submit(const struct api_server *s);
bool api_can_post_bulletin(const struct api_server *s);

/* DELETE /api/jobs/{id} (cancel_job) and POST /api/stars (a star's
 * heartbeat), and whether their providers are set. */
void api_delete_job(struct api_server *s, struct evhttp_request *req,
                    const struct api_query *q, const char *id);
void api_post_star(struct api_server *s, struct evhttp_request *req,
                   const struct api_query *q);
bool api_can_cancel(const struct api_server *s);
bool api_can_post_star(const struct api_server *s);

/* The request body as a JSON object (owned), or 400 and NULL. */
json_t *api_body_object(struct evhttp_request *req);
/* 400 and false when body has a field not in allowed (NULL-terminated). */
bool api_body_only(struct evhttp_request *req, json_t *body,
                   const char *const *allowed);

/* 400 and false when id is not a job id. */
bool api_job_id_ok(struct evhttp_request *req, const char *id);

/* 400 and false when q has a key not in allowed (NULL-terminated). */
bool api_query_only(struct evhttp_request *req, const struct api_query *q,
                    const char *const *allowed);

#endif
