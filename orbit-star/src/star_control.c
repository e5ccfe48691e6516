/*
 * star_control.c - the star's heartbeat to a control plane: a timer on the
 * star's loop builds the star's figures into a JSON object and POSTs it to
 * /api/stars with libevent's asynchronous HTTP client (and its resolver:
 * nothing blocks the loop).
 */
#include "orbit/star_control.h"

#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orbit/error.h"
#include "orbit/wire.h"
#include "star_internal.h"

#define CONTROL_HOST_MAX 256u
#define CONTROL_PATH_MAX 512u
#define CONTROL_TEXT_MAX 256u

struct star_control {
    struct star *star;
    struct event_base *base;
    struct evhttp_connection *conn;
    struct evdns_base *dns; /* the control host's name, resolved without
                               blocking the star's loop */
    struct event *timer;
    char host[CONTROL_HOST_MAX];
    char path[CONTROL_PATH_MAX];
    char url[CONTROL_PATH_MAX];
    char address[CONTROL_TEXT_MAX];
    char *auth; /* "Bearer TOKEN" or NULL */
    uint32_t interval_ms;
    bool quiet;
    bool inflight;
    bool down; /* the last heartbeat failed; logged */
};

static const char *const control_adv_names[] = {
    "disk_warning", "disk_critical", "disk_exhaustion_predicted",
    "throughput_low", "error_rate_high"};

static const char *const control_state_names[] = {"registered", "scheduled",
                                                  "draining", "shutdown"};

/* Parses http://HOST[:PORT][/PATH] into host, port and the endpoint path. */
static int
control_parse_url(struct star_control *c, const char *url, uint16_t *port)
{
    struct evhttp_uri *u = evhttp_uri_parse(url);
    int rc = ORBIT_EINVAL;
    if (!u)
        return rc;
    const char *scheme = evhttp_uri_get_scheme(u);
    const char *host = evhttp_uri_get_host(u);
    const char *path = evhttp_uri_get_path(u);
    int p = evhttp_uri_get_port(u);
    size_t plen = path ? strlen(path) : 0;
    while (plen && path[plen - 1] == '/')
        plen--;
    if (scheme && strcmp(scheme, "http") == 0 && host && *host &&
        strlen(host) < sizeof c->host && p != 0 && p < 65536 &&
        plen + sizeof "/api/stars" <= sizeof c->path &&
        !evhttp_uri_get_query(u)) {
        snprintf(c->host, sizeof c->host, "%s", host);
        snprintf(c->path, sizeof c->path, "%.*s/api/stars", (int)plen,
                 path ? path : "");
        *port = p < 0 ? 7071 : (uint16_t)p;
        rc = 0;
    }
    evhttp_uri_free(u);
    return rc;
}

static json_t *
control_advisories(uint32_t adv)
{
    json_t *arr = json_array();
    for (unsigned i = 0; arr && i < 5; i++)
        if (adv & (1u << i))
            json_array_append_new(arr, json_string(control_adv_names[i]));
    return arr;
}

/* The heartbeat of the star as it is now. */
static json_t *
control_body(struct star_control *c)
{
    struct star *s = c->star;
    uint64_t total = 0, used = 0;
    uint32_t adv = star_health_sample(s, &total, &used);
    if (used > total)
        used = total;
    unsigned st = (unsigned)s->state;
    return json_pack(
        "{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "name",
        s->name, "address", c->address, "state",
        st < 4 ? control_state_names[st] : "unknown", "interval_ms",
        (json_int_t)c->interval_ms, "disk_total",
        (json_int_t)(total & INT64_MAX), "disk_used",
        (json_int_t)(used & INT64_MAX), "bytes_received",
        (json_int_t)(s->stats.bytes_received & INT64_MAX), "chunks_received",
        (json_int_t)(s->stats.chunks_received & INT64_MAX), "files_committed",
        (json_int_t)(s->stats.files_committed & INT64_MAX), "errors_total",
        (json_int_t)(s->stats.errors_total & INT64_MAX), "connections",
        (json_int_t)s->nconns, "advisories", control_advisories(adv));
}

static void
control_log(const struct star_control *c, const char *what)
{
    if (!c->quiet)
        fprintf(stderr, "orbit-star: control plane %s %s\n", c->url, what);
}

static void
control_done(struct evhttp_request *req, void *arg)
{
    struct star_control *c = arg;
    c->inflight = false;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    if (code == 202) {
        if (c->down)
            control_log(c, "answers again");
        c->down = false;
        return;
    }
    if (!c->down) {
        char why[128];
        snprintf(why, sizeof why,
                 "%s%.0d; serving goes on, heartbeats keep trying",
                 code ? "answered " : "unreachable", code);
        control_log(c, why);
    }
    c->down = true;
}

static void
control_send(struct star_control *c)
{
    json_t *body = control_body(c);
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    struct evhttp_request *req =
        text ? evhttp_request_new(control_done, c) : NULL;
    if (!req) {
        free(text);
        return;
    }
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", c->host);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "Connection", "keep-alive");
    if (c->auth)
        evhttp_add_header(h, "Authorization", c->auth);
    evbuffer_add(evhttp_request_get_output_buffer(req), text, strlen(text));
    free(text);
    /* on failure libevent frees req itself */
    if (evhttp_make_request(c->conn, req, EVHTTP_REQ_POST, c->path) == 0)
        c->inflight = true;
}

static void
control_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct star_control *c = arg;
    if (!c->inflight)
        control_send(c);
}

static int
control_setup(struct star_control *c, const struct star_control_config *cfg,
              uint16_t port)
{
    if (cfg->token && *cfg->token) {
        size_t n = strlen(cfg->token) + sizeof "Bearer ";
        if (!(c->auth = malloc(n)))
            return ORBIT_ENOMEM;
        snprintf(c->auth, n, "Bearer %s", cfg->token);
    }
    /* Without a resolver libevent would look the name up with a blocking
     * getaddrinfo() on the star's loop at each (re)connection. */
    c->dns = evdns_base_new(c->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                         EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    c->conn = evhttp_connection_base_new(c->base, c->dns, c->host, port);
    if (!c->conn)
        return ORBIT_ENOMEM;
    int secs = (int)(c->interval_ms / 1000);
    evhttp_connection_set_timeout(c->conn, secs < 1 ? 1 : secs);
    evhttp_connection_set_retries(c->conn, 0);
    c->timer = event_new(c->base, -1, EV_PERSIST, control_tick, c);
    if (!c->timer)
        return ORBIT_ENOMEM;
    struct timeval tv = {(time_t)(c->interval_ms / 1000),
                         (suseconds_t)(c->interval_ms % 1000) * 1000};
    if (event_add(c->timer, &tv) != 0)
        return ORBIT_ENOMEM;
    event_active(c->timer, EV_TIMEOUT, 0);
    return 0;
}

int
star_control_new(struct star *s, struct event_base *base,
                 const struct star_control_config *cfg,
                 struct star_control **out)
{
    uint16_t port = 0;
    if (!s || !base || !cfg || !cfg->url || !out || s->own_thread ||
        !cfg->address || !*cfg->address ||
        strlen(cfg->address) >= CONTROL_TEXT_MAX ||
        strlen(cfg->url) >= CONTROL_PATH_MAX ||
        (cfg->interval_ms && (cfg->interval_ms < STAR_CONTROL_INTERVAL_MIN_MS ||
                              cfg->interval_ms > STAR_CONTROL_INTERVAL_MAX_MS)))
        return ORBIT_EINVAL;
    struct star_control *c = calloc(1, sizeof *c);
    if (!c)
        return ORBIT_ENOMEM;
    c->star = s;
    c->base = base;
    c->quiet = cfg->quiet;
    c->interval_ms =
        cfg->interval_ms ? cfg->interval_ms : STAR_CONTROL_INTERVAL_MS;
    snprintf(c->url, sizeof c->url, "%s", cfg->url);
    snprintf(c->address, sizeof c->address, "%s", cfg->address);
    int rc = control_parse_url(c, cfg->url, &port);
    if (rc == 0)
        rc = control_setup(c, cfg, port);
    if (rc != 0) {
        star_control_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void
star_control_beat(struct star_control *c)
{
    if (c && c->timer)
        event_active(c->timer, EV_TIMEOUT, 0);
}

void
star_control_free(struct star_control *c)
{
    if (!c)
        return;
    if (c->timer)
        event_free(c->timer);
    if (c->conn)
        evhttp_connection_free(c->conn);
    if (c->dns)
        evdns_base_free(c->dns, 0);
    free(c->auth);
    free(c);
}
