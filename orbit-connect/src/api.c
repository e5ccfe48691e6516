/*
 * api.c - the HTTP API's server core: listener, limits, authentication,
 * routing, and the JSON reply helpers.
 */
#include "orbit/api.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/keyvalq_struct.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "api_internal.h"
#include "bulletin_internal.h"
#include "orbit/error.h"
#include "orbit/orbit_clock.h"

#define API_TOKEN_MAX 4096u

__attribute__((weak)) void *
api_malloc(size_t size)
{
    return malloc(size);
}

__attribute__((weak)) void *
api_calloc(size_t n, size_t size)
{
    return calloc(n, size);
}

void
api_config_init(struct api_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->timeout_s = API_TIMEOUT_S;
}

/* ---- replies ------------------------------------------------------------ */

void
api_reply_json(struct evhttp_request *req, int code, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        evhttp_send_error(req, HTTP_INTERNAL, "out of memory");
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Content-Type", "application/json; charset=utf-8");
    evhttp_add_header(h, "Cache-Control", "no-store");
    struct evbuffer *buf = evbuffer_new();
    if (buf) {
        evbuffer_add(buf, text, strlen(text));
        evbuffer_add(buf, "\n", 1);
    }
    free(text);
    const char *reason = code == 200   ? "OK"
                         : code == 201 ? "Created"
                         : code == 202 ? "Accepted"
                         : code == 400 ? "Bad Request"
                         : code == 401 ? "Unauthorized"
                         : code == 404 ? "Not Found"
                         : code == 405 ? "Method Not Allowed"
                         : code == 409 ? "Conflict"
                         : code == 500 ? "Internal Server Error"
                         : code == 503 ? "Service Unavailable"
                                       : "Error";
    evhttp_send_reply(req, code, reason, buf);
    if (buf)
        evbuffer_free(buf);
}

void
api_reply_error(struct evhttp_request *req, int code, const char *error,
                const char *detail)
{
    api_reply_json(req, code,
                   json_pack("{s:o, s:o}", "error", api_json_str(error),
                             "detail", api_json_str(detail ? detail : "")));
}

json_t *
api_json_str(const char *s)
{
    json_t *j = json_string(s ? s : "");
    if (j)
        return j;
    char *clean = bulletin_utf8_copy(s, SIZE_MAX - 1);
    j = clean ? json_string(clean) : NULL;
    free(clean);
    return j;
}

json_t *
api_json_u64(uint64_t v)
{
    return json_integer(v > INT64_MAX ? INT64_MAX : (json_int_t)v);
}

bool
api_query_only(struct evhttp_request *req, const struct api_query *q,
               const char *const *allowed)
{
    for (size_t i = 0; i < q->n; i++) {
        bool ok = false;
        for (size_t k = 0; allowed && allowed[k] && !ok; k++)
            ok = strcmp(q->params[i].key, allowed[k]) == 0;
        if (!ok) {
            api_reply_error(req, 400, "unknown parameter", q->params[i].key);
            return false;
        }
    }
    return true;
}

/* ---- authentication -------------------------------------------------------
 */

/* Compares digests, so neither the length nor the content of the token
 * leaks through timing. */
static bool
api_token_equal(const char *given, size_t glen, const char *token)
{
    unsigned char a[32], b[32];
    unsigned int na = 0, nb = 0;
    if (EVP_Digest(given, glen, a, &na, EVP_sha256(), NULL) != 1 ||
        EVP_Digest(token, strlen(token), b, &nb, EVP_sha256(), NULL) != 1)
        return false;
    return na == 32 && nb == 32 && CRYPTO_memcmp(a, b, 32) == 0;
}

static bool
api_authorized(const struct api_server *s, struct evhttp_request *req)
{
    if (!s->token)
        return true;
    const char *h = evhttp_find_header(evhttp_request_get_input_headers(req),
                                       "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return false;
    h += 7;
    while (*h == ' ')
        h++;
    size_t len = strlen(h);
    while (len && h[len - 1] == ' ')
        len--;
    return api_token_equal(h, len, s->token);
}

/* ---- routing ----------------------------------------------------------------
 */

typedef void (*api_handler_fn)(struct api_server *, struct evhttp_request *,
                               const struct api_query *);
typedef void (*api_item_fn)(struct api_server *, struct evhttp_request *,
                            const struct api_query *, const char *);

/* A route serves its path exactly, or (item) one more path segment; post
 * serves POST (del DELETE, on an item) when can_write says the server is
 * configured for it. */
struct api_route {
    const char *path;
    api_handler_fn fn;
    api_item_fn item;
    api_handler_fn post;
    api_item_fn del;
    bool (*can_write)(const struct api_server *);
};

static const struct api_route api_routes[] = {
    {"/healthz", api_get_healthz, NULL, NULL, NULL, NULL},
    {"/api/bulletins", api_get_bulletins, NULL, api_post_bulletin, NULL,
     api_can_post_bulletin},
    {"/api/jobs", api_get_jobs, NULL, api_post_job, NULL, api_can_submit},
    {"/api/jobs/", api_get_jobs, NULL, api_post_job, NULL, api_can_submit},
    {"/api/jobs/", NULL, api_get_job, NULL, api_delete_job, api_can_cancel},
    {"/api/stars", api_get_stars, NULL, api_post_star, NULL, api_can_post_star},
    {"/api/stars/", api_get_stars, NULL, api_post_star, NULL,
     api_can_post_star},
    {"/metrics", api_get_metrics, NULL, NULL, NULL, NULL},
};

/* The route serving path, with *item set to the last segment for an item
 * route; NULL when none does. */
static const struct api_route *
api_route_find(const char *path, const char **item)
{
    *item = NULL;
    for (size_t i = 0; i < sizeof api_routes / sizeof *api_routes; i++) {
        const struct api_route *r = &api_routes[i];
        size_t n = strlen(r->path);
        if (r->fn && strcmp(path, r->path) == 0)
            return r;
        if (r->item && strncmp(path, r->path, n) == 0 && path[n] &&
            !strchr(path + n, '/')) {
            *item = path + n;
            return r;
        }
    }
    return NULL;
}

static void
api_dispatch(struct api_server *s, struct evhttp_request *req, const char *path,
             const char *query)
{
    const char *item;
    const struct api_route *route = api_route_find(path, &item);
    if (!route) {
        api_reply_error(req, 404, "not found", path);
        return;
    }
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    bool post = route->post && route->can_write(s);
    bool del = route->del && route->can_write(s);
    if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD &&
        !(m == EVHTTP_REQ_POST && post) && !(m == EVHTTP_REQ_DELETE && del)) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                          post  ? "GET, HEAD, POST"
                          : del ? "GET, HEAD, DELETE"
                                : "GET, HEAD");
        api_reply_error(req, 405, "method not allowed",
                        post  ? "GET, HEAD and POST are served here"
                        : del ? "GET, HEAD and DELETE are served here"
                              : "only GET and HEAD are served here");
        return;
    }
    struct api_query q;
    int rc = api_query_parse(query, query ? strlen(query) : 0, &q);
    if (rc != 0) {
        api_reply_error(req, 400, "malformed query string", orbit_strerror(rc));
        return;
    }
    if (m == EVHTTP_REQ_POST)
        route->post(s, req, &q);
    else if (m == EVHTTP_REQ_DELETE)
        route->del(s, req, &q, item);
    else if (route->item)
        route->item(s, req, &q, item);
    else
        route->fn(s, req, &q);
    api_query_release(&q);
}

static void
api_handle(struct evhttp_request *req, void *arg)
{
    struct api_server *s = arg;
    if (!api_authorized(s, req)) {
        evhttp_add_header(evhttp_request_get_output_headers(req),
                          "WWW-Authenticate", "Bearer realm=\"orbit\"");
        api_reply_error(req, 401, "unauthorized",
                        "send Authorization: Bearer <token>");
        return;
    }
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (!path || !*path) {
        api_reply_error(req, 400, "bad request", "no path");
        return;
    }
    api_dispatch(s, req, path, evhttp_uri_get_query(uri));
}

/* ---- lifecycle
 * ---------------------------------------------------------------- */

int
api_server_new(struct event_base *base, const struct api_config *cfg,
               struct api_server **out)
{
    if (!base || !cfg || !out || cfg->timeout_s < 0 ||
        (!cfg->lock != !cfg->unlock))
        return ORBIT_EINVAL;
    if (cfg->token && strlen(cfg->token) > API_TOKEN_MAX)
        return ORBIT_ETOOBIG;
    struct api_server *s = api_calloc(1, sizeof *s);
    if (!s)
        return ORBIT_ENOMEM;
    s->base = base;
    s->cfg = *cfg;
    s->cfg.token = NULL;
    s->started_ms = orbit_clock_monotonic_ms(NULL);
    if (cfg->token && *cfg->token) {
        size_t n = strlen(cfg->token) + 1;
        if (!(s->token = api_malloc(n)))
            goto fail;
        memcpy(s->token, cfg->token, n);
    }
    if (!(s->http = evhttp_new(base)))
        goto fail;
    evhttp_set_max_headers_size(s->http, API_MAX_HEADERS_SIZE);
    evhttp_set_max_body_size(s->http, API_MAX_BODY_SIZE);
    evhttp_set_timeout(s->http,
                       cfg->timeout_s ? cfg->timeout_s : API_TIMEOUT_S);
    /* Every method reaches the handler, which answers 405 itself. */
    evhttp_set_allowed_methods(s->http, 0x1ff);
    evhttp_set_gencb(s->http, api_handle, s);
    *out = s;
    return 0;
fail:
    api_server_free(s);
    return ORBIT_ENOMEM;
}

void
api_server_free(struct api_server *s)
{
    if (!s)
        return;
    if (s->http)
        evhttp_free(s->http);
    free(s->token);
    free(s);
}

static bool
api_sockaddr_loopback(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    return false;
}

bool
api_addr_is_loopback(const char *addr)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    if (!addr || !*addr || getaddrinfo(addr, NULL, &hints, &res) != 0)
        return false;
    bool all = res != NULL;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        all = all && api_sockaddr_loopback(ai->ai_addr);
    freeaddrinfo(res);
    return all;
}

static uint16_t
api_bound_port(struct evhttp_bound_socket *sock)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    evutil_socket_t fd = evhttp_bound_socket_get_fd(sock);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return 0;
}

int
api_server_bind(struct api_server *s, const char *addr, uint16_t port)
{
    if (!s)
        return ORBIT_EINVAL;
    if (s->sock)
        return ORBIT_ESTATE;
    if (!addr)
        addr = "127.0.0.1";
    if (!api_addr_is_loopback(addr) && !s->token)
        return ORBIT_EAUTH;
    s->sock = evhttp_bind_socket_with_handle(s->http, addr, port);
    if (!s->sock)
        return ORBIT_ECONNECT;
    s->port = api_bound_port(s->sock);
    return 0;
}

uint16_t
api_server_port(const struct api_server *s)
{
    return s ? s->port : 0;
}
