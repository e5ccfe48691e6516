/*
 * The HTTP API driven by curl against a server on 127.0.0.1 (ephemeral
 * port) whose event loop runs on its own thread.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "connect_test.h"
#include "orbit/api.h"
#include "orbit/bulletin.h"
#include "orbit/error.h"
#include "orbit/journal.h"
#include "orbit/metrics.h"

static struct event_base *base;
static struct api_server *srv;
static pthread_t loop_thread;
static char *jdir;
static struct journal *jr;
static struct bulletin_board *board;
static struct metrics_registry *reg;
static char job_a[JOURNAL_ID_LEN + 1], job_b[JOURNAL_ID_LEN + 1];
static const char *token;

struct reply {
    int status;
    char ctype[128];
    char *body;
    json_t *json;
};

static int
live_of(void *arg, const char *id, struct api_job_live *out)
{
    (void)arg;
    if (strcmp(id, job_a) != 0)
        return ORBIT_ENOENT;
    out->files_seen = 10;
    out->files_done = 4;
    out->bytes_total = 1000;
    out->bytes_done = 250;
    out->walk_done = true;
    return 0;
}

static void
stars_of(void *arg, api_star_emit_fn emit, void *ctx)
{
    (void)arg;
    struct api_star_info a = {"alpha", "10.0.0.1:7070",  "ready", "closed",
                              "ok",    1764072000000ULL, 3,       4096};
    struct api_star_info b = {"beta",     "local", "draining", "open",
                              "critical", 0,       0,          0};
    emit(ctx, &a);
    emit(ctx, &b);
}

static void
fill_journal(void)
{
    const char *srcs[] = {"/data/src"};
    struct journal_spec sa = {JOURNAL_KIND_COPY, srcs, 1, "star://h/dst",
                              "{\"bwlimit\":0}"};
    struct journal_spec sb = {JOURNAL_KIND_SYNC, srcs, 1, "/backup", NULL};
    cr_assert_eq(journal_job_create(jr, &sa, job_a), 0);
    cr_assert_eq(journal_job_create(jr, &sb, job_b), 0);
    cr_assert_eq(journal_job_set_state(jr, job_a, JOURNAL_JOB_RUNNING), 0);
    cr_assert_eq(journal_job_set_state(jr, job_b, JOURNAL_JOB_PARTIAL), 0);
    struct journal_counters c = {3, 2, 300, 200, 150, 50};
    cr_assert_eq(journal_job_set_counters(jr, job_b, &c), 0);
    struct journal_file f = {.size = 100, .state = JOURNAL_FILE_DONE};
    cr_assert_eq(journal_file_put(jr, job_b, "a", &f), 0);
    cr_assert_eq(journal_file_put(jr, job_b, "b", &f), 0);
    f.state = JOURNAL_FILE_DEAD;
    cr_assert_eq(journal_file_put(jr, job_b, "c\xff", &f), 0);
    struct dlq_failure d = {.key = "c\xff",
                            .job_id = job_b,
                            .reason = DLQ_SOURCE_MISSING,
                            .last_error = "vanished",
                            .error_code = ORBIT_ENOENT,
                            .attempts = 1,
                            .source_path = "/data/src/c\xff",
                            .dest_path = "c\xff"};
    cr_assert_eq(journal_dead_add(jr, &d), 0);
}

static void
fill_board(void)
{
    struct bulletin_post p[] = {
        {BULLETIN_INFO, BULLETIN_SOURCE_JOB, "copy", "progress", job_a,
         "started", 0},
        {BULLETIN_WARNING, BULLETIN_SOURCE_STAR, "alpha", "health", NULL,
         "disk 86% used", 0},
        {BULLETIN_ERROR, BULLETIN_SOURCE_STAR, "beta", "breaker", NULL,
         "circuit open", 0},
        {BULLETIN_ERROR, BULLETIN_SOURCE_JOB, "copy", "dead-letter", job_b,
         "c: vanished", 0},
    };
    for (size_t i = 0; i < 4; i++)
        cr_assert_eq(bulletin_post(board, &p[i], NULL), 0);
}

static void *
loop_main(void *arg)
{
    (void)arg;
    event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static int submit_of(void *arg, const struct api_job_request *job,
                     char *id_out);
static bool with_posts;

static void
start(const char *tok, const char *addr, bool with_data)
{
    evthread_use_pthreads();
    base = event_base_new();
    cr_assert_not_null(base);
    jdir = connect_test_tmpdir("api");
    cr_assert_eq(journal_open(jdir, &jr), 0);
    cr_assert_eq(bulletin_board_new(0, &board), 0);
    cr_assert_eq(metrics_registry_new(0, &reg), 0);
    struct metrics_counter *ctr;
    cr_assert_eq(
        metrics_counter_get(reg, "orbit_test_total", "A test.", NULL, 0, &ctr),
        0);
    metrics_counter_add(ctr, 7);
    struct api_config cfg;
    api_config_init(&cfg);
    if (with_data) {
        fill_journal();
        fill_board();
        cfg.journal = jr;
        cfg.bulletins = board;
        cfg.metrics = reg;
        cfg.providers.job_live = live_of;
        cfg.providers.stars = stars_of;
    }
    if (with_posts) {
        cfg.providers.submit_job = submit_of;
        cfg.accept_bulletins = true;
    }
    cfg.token = tok;
    token = tok;
    cr_assert_eq(api_server_new(base, &cfg, &srv), 0);
    cr_assert_eq(api_server_bind(srv, addr, 0), 0);
    cr_assert_gt(api_server_port(srv), 0);
    cr_assert_eq(pthread_create(&loop_thread, NULL, loop_main, NULL), 0);
}

static void
setup(void)
{
    start(NULL, NULL, true);
}

static void
teardown(void)
{
    event_base_loopbreak(base);
    pthread_join(loop_thread, NULL);
    api_server_free(srv);
    event_base_free(base);
    journal_close(jr);
    bulletin_board_free(board);
    metrics_registry_free(reg);
    connect_test_rmtree(jdir);
    free(jdir);
}

static void
reply_free(struct reply *r)
{
    free(r->body);
    json_decref(r->json);
}

/* Runs curl; extra is more curl arguments (already quoted). */
static struct reply
http(const char *method, const char *target, const char *extra)
{
    static char cmd[4 * API_MAX_HEADERS_SIZE];
    struct reply r = {0};
    char auth[600] = "";
    if (token)
        snprintf(auth, sizeof auth, "-H 'Authorization: Bearer %s'", token);
    snprintf(cmd, sizeof cmd,
             "curl -s -g -X %s %s %s -w '\\n%%{http_code} %%{content_type}' "
             "'http://127.0.0.1:%u%s'",
             method, extra ? extra : auth, extra ? "" : "",
             (unsigned)api_server_port(srv), target);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t cap = 65536, len = 0, got;
    r.body = malloc(cap);
    while ((got = fread(r.body + len, 1, cap - len - 1, p)) > 0) {
        len += got;
        if (len + 1 == cap)
            r.body = realloc(r.body, cap *= 2);
    }
    pclose(p);
    r.body[len] = '\0';
    char *nl = strrchr(r.body, '\n');
    cr_assert_not_null(nl, "no status line from curl: %s", cmd);
    *nl = '\0';
    sscanf(nl + 1, "%d %127s", &r.status, r.ctype);
    r.json = json_loads(r.body, JSON_DECODE_ANY, NULL);
    return r;
}

static struct reply
get(const char *target)
{
    return http("GET", target, NULL);
}

static json_t *
field(const struct reply *r, const char *key)
{
    cr_assert_not_null(r->json, "body is not JSON: %s", r->body);
    return json_object_get(r->json, key);
}

static void
assert_error(const char *target, int status, const char *error)
{
    struct reply r = get(target);
    cr_assert_eq(r.status, status, "%s: %d %s", target, r.status, r.body);
    cr_assert_str_eq(r.ctype, "application/json;");
    cr_assert_str_eq(json_string_value(field(&r, "error")), error, "%s",
                     r.body);
    cr_assert(json_is_string(field(&r, "detail")));
    reply_free(&r);
}

TestSuite(api, .init = setup, .fini = teardown);

Test(api, healthz)
{
    struct reply r = get("/healthz");
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(json_string_value(field(&r, "status")), "ok");
    cr_assert(json_is_integer(field(&r, "uptime_ms")));
    reply_free(&r);
}

static size_t
count_bulletins(const char *target)
{
    struct reply r = get(target);
    cr_assert_eq(r.status, 200, "%s: %s", target, r.body);
    json_t *arr = field(&r, "bulletins");
    cr_assert(json_is_array(arr));
    size_t n = json_array_size(arr);
    cr_assert_eq((size_t)json_integer_value(field(&r, "count")), n);
    cr_assert_eq(json_integer_value(field(&r, "last_id")), 4);
    reply_free(&r);
    return n;
}

Test(api, bulletins_and_every_filter)
{
    cr_assert_eq(count_bulletins("/api/bulletins"), 4);
    cr_assert_eq(count_bulletins("/api/bulletins?severity=info"), 4);
    cr_assert_eq(count_bulletins("/api/bulletins?severity=warning"), 3);
    cr_assert_eq(count_bulletins("/api/bulletins?severity=error"), 2);
    cr_assert_eq(count_bulletins("/api/bulletins?source=star"), 2);
    cr_assert_eq(count_bulletins("/api/bulletins?source=job"), 2);
    cr_assert_eq(count_bulletins("/api/bulletins?source=star:alpha"), 1);
    cr_assert_eq(count_bulletins("/api/bulletins?source=job:alpha"), 0);
    cr_assert_eq(count_bulletins("/api/bulletins?source=copy"), 2);
    cr_assert_eq(count_bulletins("/api/bulletins?category=health"), 1);
    cr_assert_eq(count_bulletins("/api/bulletins?category=dead-letter"), 1);
    char t[128];
    snprintf(t, sizeof t, "/api/bulletins?job_id=%s", job_b);
    cr_assert_eq(count_bulletins(t), 1);
    cr_assert_eq(count_bulletins("/api/bulletins?since=2"), 2);
    cr_assert_eq(count_bulletins("/api/bulletins?since=4"), 0);
    cr_assert_eq(count_bulletins("/api/bulletins?limit=1"), 1);
    cr_assert_eq(count_bulletins("/api/bulletins?severity=error&source=star"
                                 "&limit=5&since=0"),
                 1);
    /* Empty values mean "no filter". */
    cr_assert_eq(count_bulletins("/api/bulletins?severity=&source=&limit="), 4);

    struct reply r = get("/api/bulletins?limit=2");
    json_t *arr = field(&r, "bulletins");
    json_t *first = json_array_get(arr, 0);
    cr_assert_eq(json_integer_value(json_object_get(first, "id")), 3);
    cr_assert_str_eq(json_string_value(json_object_get(first, "severity")),
                     "error");
    cr_assert_str_eq(json_string_value(json_object_get(first, "source")),
                     "star");
    cr_assert_str_eq(json_string_value(json_object_get(first, "source_name")),
                     "beta");
    cr_assert(json_is_null(json_object_get(first, "job_id")));
    cr_assert(json_is_string(json_object_get(first, "time")));
    reply_free(&r);
}

Test(api, bulletins_bad_values)
{
    assert_error("/api/bulletins?severity=fatal", 400, "bad severity");
    assert_error("/api/bulletins?source=star:", 400, "bad source");
    assert_error("/api/bulletins?since=-1", 400, "bad since");
    assert_error("/api/bulletins?since=18446744073709551616", 400, "bad since");
    assert_error("/api/bulletins?limit=0", 400, "bad limit");
    assert_error("/api/bulletins?limit=1001", 400, "bad limit");
    assert_error("/api/bulletins?limit=ten", 400, "bad limit");
    assert_error("/api/bulletins?colour=red", 400, "unknown parameter");
    assert_error("/api/bulletins?limit=1&limit=2", 400,
                 "malformed query string");
    assert_error("/api/bulletins?category=%zz", 400, "malformed query string");
    assert_error("/api/bulletins?category=a%00b", 400,
                 "malformed query string");
    assert_error("/api/bulletins?=x", 400, "malformed query string");
}

static json_t *
find_job(json_t *arr, const char *id)
{
    for (size_t i = 0; i < json_array_size(arr); i++) {
        json_t *j = json_array_get(arr, i);
        if (strcmp(json_string_value(json_object_get(j, "id")), id) == 0)
            return j;
    }
    cr_assert_fail("job %s not listed", id);
    return NULL;
}

Test(api, jobs_list_with_live_counters)
{
    struct reply r = get("/api/jobs");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(json_integer_value(field(&r, "count")), 2);
    json_t *arr = field(&r, "jobs");
    json_t *a = find_job(arr, job_a), *b = find_job(arr, job_b);
    cr_assert(json_is_true(json_object_get(a, "running")));
    cr_assert_str_eq(json_string_value(json_object_get(a, "state")), "running");
    json_t *live = json_object_get(a, "live");
    cr_assert_eq(json_integer_value(json_object_get(live, "files_done")), 4);
    cr_assert(json_is_true(json_object_get(live, "walk_done")));
    cr_assert_float_eq(json_real_value(json_object_get(a, "progress")), 0.25,
                       1e-9);
    cr_assert_eq(json_integer_value(
                     json_object_get(json_object_get(a, "options"), "bwlimit")),
                 0);
    cr_assert(json_is_false(json_object_get(b, "running")));
    cr_assert(json_is_null(json_object_get(b, "live")));
    cr_assert_str_eq(json_string_value(json_object_get(b, "kind")), "sync");
    cr_assert_eq(json_integer_value(json_object_get(b, "bytes_dedup")), 50);
    cr_assert_eq(json_integer_value(json_object_get(b, "dead_letters")), 1);
    cr_assert_str_eq(
        json_string_value(json_array_get(json_object_get(b, "sources"), 0)),
        "/data/src");
    reply_free(&r);
    /* A trailing slash lists too. */
    r = get("/api/jobs/");
    cr_assert_eq(r.status, 200);
    reply_free(&r);
}

Test(api, job_detail_with_dead_letters)
{
    char t[128];
    snprintf(t, sizeof t, "/api/jobs/%s", job_b);
    struct reply r = get(t);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(json_string_value(field(&r, "state")), "partial");
    json_t *files = field(&r, "files");
    cr_assert_eq(json_integer_value(json_object_get(files, "done")), 2);
    cr_assert_eq(json_integer_value(json_object_get(files, "dead")), 1);
    cr_assert_eq(json_integer_value(json_object_get(files, "pending")), 0);
    cr_assert_float_eq(json_real_value(field(&r, "progress")), 2.0 / 3.0, 1e-9);
    json_t *dead = field(&r, "dead_letter_entries");
    cr_assert_eq(json_array_size(dead), 1);
    json_t *d = json_array_get(dead, 0);
    /* A path that is not UTF-8 still renders. */
    cr_assert_str_eq(json_string_value(json_object_get(d, "key")), "c?");
    cr_assert_str_eq(json_string_value(json_object_get(d, "reason")),
                     "source_missing");
    cr_assert_str_eq(json_string_value(json_object_get(d, "error")), "ENOENT");
    cr_assert_eq(json_integer_value(json_object_get(d, "error_code")),
                 ORBIT_ENOENT);
    cr_assert_str_eq(json_string_value(json_object_get(d, "message")),
                     "vanished");
    reply_free(&r);

    assert_error("/api/jobs/0123456789abcdef", 404, "no such job");
    assert_error("/api/jobs/XYZ", 400, "bad job id");
    assert_error("/api/jobs/0123456789abcdef/files", 404, "not found");
    snprintf(t, sizeof t, "/api/jobs/%s?verbose=1", job_b);
    assert_error(t, 400, "unknown parameter");
}

Test(api, stars)
{
    struct reply r = get("/api/stars");
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_eq(json_integer_value(field(&r, "count")), 2);
    json_t *a = json_array_get(field(&r, "stars"), 0);
    cr_assert_str_eq(json_string_value(json_object_get(a, "name")), "alpha");
    cr_assert_str_eq(json_string_value(json_object_get(a, "circuit")),
                     "closed");
    cr_assert_str_eq(json_string_value(json_object_get(a, "state")), "ready");
    cr_assert_eq(json_integer_value(json_object_get(a, "inflight_bytes")),
                 4096);
    json_t *b = json_array_get(field(&r, "stars"), 1);
    cr_assert(json_is_null(json_object_get(b, "last_seen_ms")));
    cr_assert_str_eq(json_string_value(json_object_get(b, "health")),
                     "critical");
    reply_free(&r);
}

Test(api, metrics)
{
    struct reply r = get("/metrics");
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.ctype, "text/plain;");
    cr_assert_not_null(strstr(r.body, "# TYPE orbit_test_total counter"));
    cr_assert_not_null(strstr(r.body, "orbit_test_total 7"));
    reply_free(&r);
}

Test(api, unknown_paths_and_methods)
{
    assert_error("/", 404, "not found");
    assert_error("/api", 404, "not found");
    assert_error("/api/bulletinsx", 404, "not found");
    const char *methods[] = {"POST", "PUT", "DELETE", "PATCH"};
    for (size_t i = 0; i < 4; i++) {
        struct reply r = http(methods[i], "/api/jobs", NULL);
        cr_assert_eq(r.status, 405, "%s", methods[i]);
        cr_assert_str_eq(json_string_value(field(&r, "error")),
                         "method not allowed");
        reply_free(&r);
    }
    struct reply r = http("GET", "/healthz", "-I");
    cr_assert_eq(r.status, 200);
    cr_assert_not_null(strstr(r.body, "Content-Type: application/json"));
    reply_free(&r);
    r = http("POST", "/api/jobs", "-i");
    cr_assert_not_null(strstr(r.body, "Allow: GET, HEAD"));
    reply_free(&r);
}

Test(api, limits)
{
    /* Headers past the limit are refused by the server. */
    char *big = malloc(API_MAX_HEADERS_SIZE + 64);
    strcpy(big, "-H 'X-Big: ");
    size_t len = strlen(big);
    memset(big + len, 'a', API_MAX_HEADERS_SIZE);
    strcpy(big + len + API_MAX_HEADERS_SIZE, "'");
    struct reply r = http("GET", "/healthz", big);
    cr_assert_neq(r.status, 200);
    reply_free(&r);
    free(big);
    /* Query strings past API_QUERY_MAX_LEN: 400. */
    char *q = malloc(API_QUERY_MAX_LEN + 64);
    strcpy(q, "/api/bulletins?category=");
    len = strlen(q);
    memset(q + len, 'c', API_QUERY_MAX_LEN);
    q[len + API_QUERY_MAX_LEN] = '\0';
    assert_error(q, 400, "malformed query string");
    free(q);
}

/* A raw request line that is not HTTP at all. */
Test(api, garbage_request)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(api_server_port(srv));
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    const char *junk = "\x01\x02 NOT-HTTP \xff\r\n\r\n";
    cr_assert_gt(write(fd, junk, strlen(junk)), 0);
    char buf[512] = {0};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    /* Either a 400 or a closed connection, never a 200. */
    cr_assert(n <= 0 || strstr(buf, " 200 ") == NULL, "%s", buf);
    struct reply r = get("/healthz");
    cr_assert_eq(r.status, 200, "the server goes on");
    reply_free(&r);
}

static void
setup_auth(void)
{
    start("s3cret-token-0123456789", NULL, true);
}

TestSuite(api_auth, .init = setup_auth, .fini = teardown);

Test(api_auth, bearer_token_required)
{
    struct reply r = http("GET", "/healthz", "");
    cr_assert_eq(r.status, 401);
    cr_assert_str_eq(json_string_value(field(&r, "error")), "unauthorized");
    reply_free(&r);
    r = http("GET", "/api/jobs",
             "-H 'Authorization: Bearer s3cret-token-012345678'");
    cr_assert_eq(r.status, 401);
    reply_free(&r);
    r = http("GET", "/api/jobs",
             "-H 'Authorization: Basic s3cret-token-0123456789'");
    cr_assert_eq(r.status, 401);
    reply_free(&r);
    r = http("GET", "/nowhere", "");
    cr_assert_eq(r.status, 401, "auth comes before routing");
    reply_free(&r);
    r = http("GET", "/api/jobs", "-i");
    cr_assert_not_null(strstr(r.body, "WWW-Authenticate: Bearer"));
    reply_free(&r);
    r = http("GET", "/api/jobs",
             "-H 'Authorization: bearer s3cret-token-0123456789'");
    cr_assert_eq(r.status, 200);
    reply_free(&r);
    r = get("/api/bulletins?severity=error");
    cr_assert_eq(r.status, 200);
    reply_free(&r);
}

Test(api_bind, non_loopback_needs_a_token)
{
    evthread_use_pthreads();
    struct event_base *b = event_base_new();
    struct api_config cfg;
    struct api_server *s;
    api_config_init(&cfg);
    cr_assert_eq(api_server_new(b, &cfg, &s), 0);
    cr_assert_eq(api_server_port(s), 0);
    cr_assert_eq(api_server_bind(s, "0.0.0.0", 0), ORBIT_EAUTH);
    cr_assert_eq(api_server_bind(s, "localhost", 0), 0);
    cr_assert_eq(api_server_bind(s, "127.0.0.1", 0), ORBIT_ESTATE);
    api_server_free(s);
    cfg.token = "tok-tok-tok-tok";
    cr_assert_eq(api_server_new(b, &cfg, &s), 0);
    cr_assert_eq(api_server_bind(s, "0.0.0.0", 0), 0);
    api_server_free(s);
    cr_assert(api_addr_is_loopback("127.0.0.1"));
    cr_assert(api_addr_is_loopback("::1"));
    cr_assert(api_addr_is_loopback("127.1.2.3"));
    cr_assert_not(api_addr_is_loopback("0.0.0.0"));
    cr_assert_not(api_addr_is_loopback("10.1.1.1"));
    cr_assert_not(api_addr_is_loopback(""));
    cr_assert_eq(api_server_new(NULL, &cfg, &s), ORBIT_EINVAL);
    api_server_free(NULL);
    event_base_free(b);
}

static void
setup_empty(void)
{
    start(NULL, "127.0.0.1", false);
}

TestSuite(api_empty, .init = setup_empty, .fini = teardown);

Test(api_empty, no_sources_means_empty_answers)
{
    const char *targets[] = {"/api/bulletins", "/api/jobs", "/api/stars"};
    const char *keys[] = {"bulletins", "jobs", "stars"};
    for (size_t i = 0; i < 3; i++) {
        struct reply r = get(targets[i]);
        cr_assert_eq(r.status, 200, "%s", targets[i]);
        cr_assert_eq(json_array_size(field(&r, keys[i])), 0);
        reply_free(&r);
    }
    assert_error("/api/jobs/0123456789abcdef", 404, "no such job");
    struct reply r = get("/metrics");
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "");
    reply_free(&r);
}

/* ---- writes ---------------------------------------------------------- */

static char got_kind[16], got_dest[64], got_opts[128], got_src1[64];
static size_t got_nsrc;

static int
submit_of(void *arg, const struct api_job_request *job, char *id_out)
{
    (void)arg;
    if (strcmp(job->destination, "refuse") == 0)
        return ORBIT_EINVAL;
    if (strcmp(job->destination, "busy") == 0)
        return ORBIT_EAGAIN;
    snprintf(got_kind, sizeof got_kind, "%s", job->kind);
    snprintf(got_dest, sizeof got_dest, "%s", job->destination);
    snprintf(got_opts, sizeof got_opts, "%s", job->options);
    got_nsrc = job->nsources;
    snprintf(got_src1, sizeof got_src1, "%s", job->sources[job->nsources - 1]);
    strcpy(id_out, "00000000000000aa");
    return 0;
}

static void
setup_posts(void)
{
    with_posts = true;
    start(NULL, NULL, true);
}

TestSuite(api_post, .init = setup_posts, .fini = teardown);

static struct reply
post(const char *target, const char *json)
{
    char extra[2048];
    snprintf(extra, sizeof extra,
             "-H 'Content-Type: application/json' --data-binary '%s'", json);
    return http("POST", target, extra);
}

static void
post_error(const char *target, const char *json, int status, const char *error)
{
    struct reply r = post(target, json);
    cr_assert_eq(r.status, status, "%s: %d %s", json, r.status, r.body);
    cr_assert_str_eq(json_string_value(field(&r, "error")), error, "%s",
                     r.body);
    reply_free(&r);
}

Test(api_post, submit_job)
{
    struct reply r = post("/api/jobs", "{\"kind\":\"sync\",\"sources\":"
                                       "[\"/a\",\"/b\"],\"destination\":"
                                       "\"star://h/x\",\"options\":{\"z\":1,"
                                       "\"a\":true}}");
    cr_assert_eq(r.status, 202, "%s", r.body);
    cr_assert_str_eq(json_string_value(field(&r, "id")), "00000000000000aa");
    cr_assert_str_eq(json_string_value(field(&r, "href")),
                     "/api/jobs/00000000000000aa");
    reply_free(&r);
    cr_assert_str_eq(got_kind, "sync");
    cr_assert_str_eq(got_dest, "star://h/x");
    cr_assert_eq(got_nsrc, 2);
    cr_assert_str_eq(got_src1, "/b");
    cr_assert_str_eq(got_opts, "{\"a\":true,\"z\":1}");
    r = post("/api/jobs", "{\"kind\":\"copy\",\"sources\":[\"/a\"],"
                          "\"destination\":\"/d\"}");
    cr_assert_eq(r.status, 202, "%s", r.body);
    reply_free(&r);
    cr_assert_str_eq(got_opts, "{}");
}

Test(api_post, refused_jobs)
{
    const char *ok_rest = "\"sources\":[\"/a\"],\"destination\":\"/d\"}";
    char b[256];
    snprintf(b, sizeof b, "{\"kind\":\"move\",%s", ok_rest);
    post_error("/api/jobs", b, 400, "bad field");
    snprintf(b, sizeof b, "{%s", ok_rest);
    post_error("/api/jobs", b, 400, "bad field");
    post_error("/api/jobs",
               "{\"kind\":\"copy\",\"sources\":[],\"destination\":\"/d\"}", 400,
               "bad field");
    post_error("/api/jobs",
               "{\"kind\":\"copy\",\"sources\":[1],\"destination\":\"/d\"}",
               400, "bad field");
    post_error("/api/jobs",
               "{\"kind\":\"copy\",\"sources\":[\"/a\"],\"destination\":"
               "\"/d\",\"options\":[]}",
               400, "bad field");
    snprintf(b, sizeof b, "{\"kind\":\"copy\",\"x\":1,%s", ok_rest);
    post_error("/api/jobs", b, 400, "unknown field");
    post_error("/api/jobs", "not json", 400, "bad body");
    post_error("/api/jobs", "[1,2]", 400, "bad body");
    post_error("/api/jobs", "", 400, "bad body");
    snprintf(b, sizeof b, "{\"kind\":\"copy\",\"kind\":\"copy\",%s", ok_rest);
    post_error("/api/jobs", b, 400, "bad body");
    post_error("/api/jobs",
               "{\"kind\":\"copy\",\"sources\":[\"/a\"],\"destination\":"
               "\"refuse\"}",
               400, "job refused");
    post_error("/api/jobs",
               "{\"kind\":\"copy\",\"sources\":[\"/a\"],\"destination\":"
               "\"busy\"}",
               503, "busy");
    snprintf(b, sizeof b, "{\"kind\":\"copy\",%s", ok_rest);
    post_error("/api/jobs?x=1", b, 400, "unknown parameter");
}

Test(api_post, body_limit)
{
    char *path = connect_test_tmpdir("apibody");
    char file[600];
    snprintf(file, sizeof file, "%s/body", path);
    FILE *f = fopen(file, "w");
    fputs("{\"kind\":\"copy\",\"destination\":\"", f);
    for (int i = 0; i < API_MAX_BODY_SIZE; i++)
        fputc('d', f);
    fputs("\",\"sources\":[\"/a\"]}", f);
    fclose(f);
    char extra[700];
    snprintf(extra, sizeof extra, "--data-binary @%s", file);
    struct reply r = http("POST", "/api/jobs", extra);
    cr_assert_neq(r.status, 202);
    cr_assert_neq(r.status, 200);
    reply_free(&r);
    connect_test_rmtree(path);
    free(path);
}

Test(api_post, post_bulletin)
{
    struct reply r = post("/api/bulletins",
                          "{\"severity\":\"warning\",\"source\":\"star\","
                          "\"source_name\":\"gamma\",\"category\":\"health\","
                          "\"message\":\"disk 90% used\"}");
    cr_assert_eq(r.status, 201, "%s", r.body);
    cr_assert_eq(json_integer_value(field(&r, "id")), 5);
    reply_free(&r);
    r = get("/api/bulletins?source=star:gamma");
    cr_assert_eq(json_array_size(field(&r, "bulletins")), 1);
    reply_free(&r);
    post_error("/api/bulletins",
               "{\"severity\":\"loud\",\"source\":\"star\",\"source_name\":"
               "\"g\",\"category\":\"c\",\"message\":\"m\"}",
               400, "bad field");
    post_error("/api/bulletins",
               "{\"severity\":\"info\",\"source\":\"star\",\"source_name\":"
               "\"g\",\"category\":\"c\"}",
               400, "bad field");
    post_error("/api/bulletins",
               "{\"severity\":\"info\",\"source\":\"star\",\"source_name\":"
               "\"g\",\"category\":\"c\",\"message\":\"m\",\"job_id\":7}",
               400, "bad field");
    /* Writes stay closed where they are not configured. */
    r = post("/api/stars", "{}");
    cr_assert_eq(r.status, 405);
    reply_free(&r);
    r = http("PUT", "/api/jobs", "-i");
    cr_assert_not_null(strstr(r.body, "Allow: GET, HEAD, POST"));
    reply_free(&r);
}
