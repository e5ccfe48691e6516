/*
 * The control plane's star registry (heartbeats, lost stars, advisories
 * as bulletins) on its own, then DELETE /api/jobs/{id} and POST
 * /api/stars driven by curl against a server on 127.0.0.1.
 */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "orbit/api.h"
#include "orbit/bulletin.h"
#include "orbit/error.h"

static struct bulletin_board *board;
static struct api_star_registry *reg;

static void
reg_setup(void)
{
    cr_assert_eq(bulletin_board_new(0, &board), 0);
    cr_assert_eq(api_star_registry_new(board, 2, &reg), 0);
}

static void
reg_teardown(void)
{
    api_star_registry_free(reg);
    bulletin_board_free(board);
}

static struct api_star_heartbeat
beat(const char *name, unsigned adv)
{
    struct api_star_heartbeat hb = {
        .name = name,
        .address = "127.0.0.1:7070",
        .state = "scheduled",
        .interval_ms = 1000,
        .disk_total = 1000,
        .disk_used = 500,
        .advisories = adv,
    };
    return hb;
}

/* How many bulletins match severity (at least) and category. */
static size_t
count(enum bulletin_severity sev, const char *category)
{
    struct bulletin_filter f;
    struct bulletin *list = NULL;
    size_t n = 0;
    bulletin_filter_init(&f);
    f.min_severity = sev;
    f.category = category;
    f.limit = 1000;
    cr_assert_eq(bulletin_query(board, &f, &list, &n), 0);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(list[i].source, BULLETIN_SOURCE_STAR);
    bulletin_list_free(list, n);
    return n;
}

struct seen {
    char state[16][32];
    char health[16][32];
    unsigned adv[16];
    size_t n;
};

static void
collect(void *ctx, const struct api_star_info *s)
{
    struct seen *v = ctx;
    cr_assert_lt(v->n, 16);
    snprintf(v->state[v->n], 32, "%s", s->lifecycle_state);
    snprintf(v->health[v->n], 32, "%s", s->health);
    v->adv[v->n++] = s->advisories;
}

static struct seen
listing(void)
{
    struct seen v = {.n = 0};
    api_star_registry_each(reg, collect, &v);
    cr_assert_eq(v.n, api_star_registry_count(reg));
    return v;
}

TestSuite(api_star_registry, .init = reg_setup, .fini = reg_teardown);

Test(api_star_registry, registers_loses_and_recovers_a_star)
{
    struct api_star_heartbeat hb = beat("alpha", 0);
    cr_assert_eq(api_star_registry_heartbeat(reg, &hb, 1000), 0);
    cr_assert_eq(count(BULLETIN_INFO, "star"), 1);
    struct seen v = listing();
    cr_assert_str_eq(v.state[0], "scheduled");
    cr_assert_str_eq(v.health[0], "ok");
    /* three intervals of silence are allowed, a fourth is not */
    cr_assert_eq(api_star_registry_sweep(reg, 4000), 0);
    cr_assert_eq(api_star_registry_sweep(reg, 4001), 1);
    cr_assert_eq(api_star_registry_sweep(reg, 9000), 0, "lost once");
    cr_assert_eq(count(BULLETIN_WARNING, "star_lost"), 1);
    v = listing();
    cr_assert_str_eq(v.state[0], "lost");
    cr_assert_eq(api_star_registry_heartbeat(reg, &hb, 9500), 0);
    cr_assert_eq(count(BULLETIN_INFO, "star_back"), 1);
    v = listing();
    cr_assert_str_eq(v.state[0], "scheduled");
    cr_assert_eq(api_star_registry_count(reg), 1, "known by its name");
}

Test(api_star_registry, new_advisories_become_bulletins)
{
    struct api_star_heartbeat hb = beat("alpha", API_ADV_DISK_WARNING);
    cr_assert_eq(api_star_registry_heartbeat(reg, &hb, 1), 0);
    cr_assert_eq(count(BULLETIN_WARNING, "disk_warning"), 1);
    cr_assert_eq(api_star_registry_heartbeat(reg, &hb, 2), 0);
    cr_assert_eq(count(BULLETIN_WARNING, "disk_warning"), 1, "not repeated");
    hb.advisories = API_ADV_DISK_WARNING | API_ADV_DISK_CRITICAL |
                    API_ADV_DISK_EXHAUSTION | API_ADV_ERROR_RATE_HIGH;
    cr_assert_eq(api_star_registry_heartbeat(reg, &hb, 3), 0);
    cr_assert_eq(count(BULLETIN_ERROR, "disk_critical"), 1);
    cr_assert_eq(count(BULLETIN_ERROR, "disk_exhaustion_predicted"), 1);
    cr_assert_eq(count(BULLETIN_WARNING, "error_rate_high"), 1);
    cr_assert_eq(count(BULLETIN_ERROR, "error_rate_high"), 0);
    struct seen v = listing();
    cr_assert_str_eq(v.health[0], "critical");
    cr_assert_eq(v.adv[0], hb.advisories);
    hb.advisories = 0;
    cr_assert_eq(api_star_registry_heartbeat(reg, &hb, 4), 0);
    cr_assert_eq(count(BULLETIN_INFO, "health"), 1, "healthy again");
}

Test(api_star_registry, is_bounded_and_checks_its_input)
{
    struct api_star_heartbeat a = beat("a", 0), b = beat("b", 0),
                              c = beat("c", 0);
    cr_assert_eq(api_star_registry_heartbeat(reg, &a, 1), 0);
    cr_assert_eq(api_star_registry_heartbeat(reg, &b, 1), 0);
    cr_assert_eq(api_star_registry_heartbeat(reg, &c, 1), ORBIT_EFULL);
    cr_assert_eq(api_star_registry_heartbeat(reg, &a, 2), 0, "known: room");
    a.name = NULL;
    cr_assert_eq(api_star_registry_heartbeat(reg, &a, 3), ORBIT_EINVAL);
    cr_assert_eq(
        api_star_registry_new(board, 0, &(struct api_star_registry *){NULL}),
        ORBIT_EINVAL);
    api_star_registry_free(NULL);
    const char *name = api_advisory_name(API_ADV_THROUGHPUT_LOW);
    cr_assert_str_eq(name, "throughput_low");
    unsigned bit = 0;
    cr_assert_eq(api_advisory_parse("disk_exhaustion_predicted", &bit), 0);
    cr_assert_eq(bit, API_ADV_DISK_EXHAUSTION);
    cr_assert_eq(api_advisory_parse("disk", &bit), ORBIT_EINVAL);
    cr_assert_null(api_advisory_name(3));
}

/* ---- over HTTP ---- */

static struct event_base *base;
static struct api_server *srv;
static pthread_t loop_thread;
static const char known[] = "00000000000000aa"; /* running */
static const char done[] = "00000000000000bb";  /* finished */

static int
cancel_of(void *arg, const char *id)
{
    (void)arg;
    if (strcmp(id, known) == 0)
        return 0;
    return strcmp(id, done) == 0 ? ORBIT_ESTATE : ORBIT_ENOENT;
}

static int
heartbeat_of(void *arg, const struct api_star_heartbeat *hb)
{
    return api_star_registry_heartbeat(arg, hb, 1);
}

static void
stars_of(void *arg, api_star_emit_fn emit, void *ctx)
{
    api_star_registry_each(arg, emit, ctx);
}

static void *
loop_main(void *arg)
{
    (void)arg;
    event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static void
http_setup(void)
{
    reg_setup();
    evthread_use_pthreads();
    cr_assert_not_null(base = event_base_new());
    struct api_config cfg;
    api_config_init(&cfg);
    cfg.bulletins = board;
    cfg.providers.cancel_job = cancel_of;
    cfg.providers.star_heartbeat = heartbeat_of;
    cfg.providers.stars = stars_of;
    cfg.providers.arg = reg;
    cr_assert_eq(api_server_new(base, &cfg, &srv), 0);
    cr_assert_eq(api_server_bind(srv, NULL, 0), 0);
    cr_assert_eq(pthread_create(&loop_thread, NULL, loop_main, NULL), 0);
}

static void
http_teardown(void)
{
    event_base_loopbreak(base);
    pthread_join(loop_thread, NULL);
    api_server_free(srv);
    event_base_free(base);
    reg_teardown();
}

/* curl METHOD target [body]; the status, and the body in out (256 B). */
static int
curl(const char *method, const char *target, const char *body, char *out,
     size_t cap)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "curl -s -X %s %s%s%s -w '\\n%%{http_code}' "
             "'http://127.0.0.1:%u%s'",
             method, body ? "-H 'Content-Type: application/json' -d '" : "",
             body ? body : "", body ? "'" : "", (unsigned)api_server_port(srv),
             target);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    pclose(p);
    out[n] = '\0';
    char *nl = strrchr(out, '\n');
    cr_assert_not_null(nl, "%s", out);
    *nl = '\0';
    return atoi(nl + 1);
}

TestSuite(api_control, .init = http_setup, .fini = http_teardown);

Test(api_control, delete_cancels_a_job)
{
    char out[1024];
    cr_assert_eq(
        curl("DELETE", "/api/jobs/00000000000000aa", NULL, out, sizeof out),
        202, "%s", out);
    json_t *j = json_loads(out, 0, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "state")),
                     "canceling");
    cr_assert_str_eq(json_string_value(json_object_get(j, "id")), known);
    json_decref(j);
    cr_assert_eq(
        curl("DELETE", "/api/jobs/00000000000000bb", NULL, out, sizeof out),
        409, "%s", out);
    cr_assert_eq(
        curl("DELETE", "/api/jobs/00000000000000cc", NULL, out, sizeof out),
        404, "%s", out);
    cr_assert_eq(curl("DELETE", "/api/jobs/XYZ", NULL, out, sizeof out), 400,
                 "%s", out);
    cr_assert_eq(
        curl("DELETE", "/api/jobs/00000000000000aa?x=1", NULL, out, sizeof out),
        400, "%s", out);
    cr_assert_eq(curl("DELETE", "/api/bulletins", NULL, out, sizeof out), 405,
                 "%s", out);
}

Test(api_control, post_stars_takes_a_heartbeat)
{
    char out[4096];
    const char *hb = "{\"name\":\"alpha\",\"address\":\"127.0.0.1:7070\","
                     "\"state\":\"scheduled\",\"interval_ms\":1000,"
                     "\"disk_total\":100,\"disk_used\":96,"
                     "\"files_committed\":3,"
                     "\"advisories\":[\"disk_warning\",\"disk_critical\"]}";
    cr_assert_eq(curl("POST", "/api/stars", hb, out, sizeof out), 202, "%s",
                 out);
    cr_assert_eq(curl("GET", "/api/stars", NULL, out, sizeof out), 200);
    json_t *j = json_loads(out, 0, NULL);
    json_t *s = json_array_get(json_object_get(j, "stars"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(s, "health")),
                     "critical");
    cr_assert_eq(json_array_size(json_object_get(s, "advisories")), 2);
    cr_assert_eq(json_integer_value(json_object_get(s, "disk_used")), 96);
    cr_assert(json_is_integer(json_object_get(s, "last_seen_ms")));
    json_decref(j);
    cr_assert_eq(count(BULLETIN_ERROR, "disk_critical"), 1);
    static const char *const bad[] = {
        "{\"name\":\"b\",\"address\":\"a\",\"state\":\"s\","
        "\"interval_ms\":1000,\"disk_total\":1,\"disk_used\":2}",
        "{\"name\":\"b\",\"address\":\"a\",\"state\":\"s\","
        "\"interval_ms\":1000,\"connections\":-1}",
        "{\"name\":\"\",\"address\":\"a\",\"state\":\"s\","
        "\"interval_ms\":1000}",
        "{\"name\":\"b\",\"address\":\"a\",\"state\":\"s\","
        "\"interval_ms\":1000,\"advisories\":\"disk_critical\"}",
        "{\"name\":\"b\",\"name\":\"c\",\"address\":\"a\",\"state\":\"s\","
        "\"interval_ms\":1000}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(curl("POST", "/api/stars", bad[i], out, sizeof out), 400,
                     "%s: %s", bad[i], out);
    cr_assert_eq(api_star_registry_count(reg), 1);
}
