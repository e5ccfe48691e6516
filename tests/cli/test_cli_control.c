/*
 * The control plane's writes end to end on 127.0.0.1: DELETE
 * /api/jobs/{id} cancels a running job of `orbit serve` for good (a
 * restart does not resume it); `orbit-star --control` registers with
 * `orbit serve`, shows in GET /api/stars, is marked lost (with a bulletin)
 * when its heartbeats stop and back when they resume; a heartbeat
 * carrying disk_critical becomes an error bulletin.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "e2e_util.h"

static struct e2e *const t = &e2e_current;

TestSuite(cli_control, .init = e2e_suite_init, .fini = e2e_suite_fini,
          .timeout = 120);

/* METHOD path on 127.0.0.1:port with an optional JSON body; returns the
 * status (0 when nothing answered) and the body in *out (malloc'd). */
static int
http(uint16_t port, const char *method, const char *path, const char *body,
     char **out)
{
    *out = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return 0;
    }
    char req[2048];
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(req, sizeof req,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     "Content-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     method, path, blen, body ? body : "");
    cr_assert(n > 0 && (size_t)n < sizeof req);
    cr_assert_eq(write(fd, req, (size_t)n), n);
    size_t cap = 1 << 20, len = 0;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    ssize_t r;
    while ((r = read(fd, buf + len, cap - 1 - len)) > 0)
        len += (size_t)r;
    close(fd);
    buf[len] = '\0';
    int code = 0;
    sscanf(buf, "HTTP/1.%*d %d", &code);
    char *b = strstr(buf, "\r\n\r\n");
    *out = strdup(b ? b + 4 : "");
    free(buf);
    return code;
}

static char *
get(uint16_t port, const char *path)
{
    char *body;
    http(port, "GET", path, NULL, &body);
    return body;
}

static void
nap_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void
serve_start(struct e2e_proc *p, uint16_t port)
{
    char api[64];
    snprintf(api, sizeof api, "127.0.0.1:%u", port);
    const char *argv[] = {E2E_ORBIT,     "serve",  "--api", api,
                          "--state-dir", t->state, NULL};
    e2e_spawn(t, p, argv);
    for (int i = 0; i < 250; i++) {
        char *b = NULL;
        int code = http(port, "GET", "/healthz", NULL, &b);
        free(b);
        if (code == 200)
            return;
        nap_ms(20);
    }
    cr_assert_fail("orbit serve did not answer on %s", api);
}

static void
serve_stop(struct e2e_proc *p)
{
    kill(p->pid, SIGTERM);
    e2e_wait(p, 30);
    cr_assert_eq(p->code, 0, "orbit serve: %s", p->err);
    e2e_proc_free(p);
}

/* Poll GET path until its body holds every needle (NULL-terminated list),
 * for at most ms; the last body (malloc'd), or fail. */
static char *
wait_for(uint16_t port, const char *path, long ms, const char *const *needles)
{
    char *body = NULL;
    for (long waited = 0;; waited += 50) {
        free(body);
        body = get(port, path);
        bool all = body != NULL;
        for (size_t i = 0; all && needles[i]; i++)
            all = strstr(body, needles[i]) != NULL;
        if (all)
            return body;
        if (waited >= ms)
            break;
        nap_ms(50);
    }
    cr_assert_fail("GET %s never showed %s; last answer:\n%s", path, needles[0],
                   body ? body : "(none)");
    return NULL;
}

#define WAIT_FOR(port, path, ms, ...)                                          \
    wait_for((port), (path), (ms), (const char *const[]){__VA_ARGS__, NULL})

/* ---- DELETE /api/jobs/{id} ---- */

Test(cli_control, a_canceled_job_stays_canceled_after_a_restart)
{
    char big[E2E_PATH * 2], path[64], *b;
    e2e_path(t, big, "src/big.bin");
    e2e_write_file(big, 16u << 20, 7, 0644, 1600000000);
    uint16_t port = e2e_free_port();
    struct e2e_proc serve, p;
    serve_start(&serve, port);
    char via[64];
    snprintf(via, sizeof via, "http://127.0.0.1:%u", port);
    /* 2 MiB/s: eight seconds, far longer than the cancel takes */
    int code = E2E_ORBIT_RUN(t, &p, "copy", "--via", via, "--bwlimit", "2M",
                             t->src_slash, t->dst);
    cr_assert_eq(code, 0, "%s\n%s", p.out, p.err);
    const char *s = strstr(p.out, "submitted job ");
    cr_assert_not_null(s, "%s", p.out);
    char id[17];
    cr_assert_eq(sscanf(s, "submitted job %16s", id), 1);
    e2e_proc_free(&p);
    snprintf(path, sizeof path, "/api/jobs/%s", id);
    free(e2e_wait_job(t, port, id, "running", 10));

    cr_assert_eq(http(port, "DELETE", path, NULL, &b), 202, "%s", b);
    cr_assert(strstr(b, "\"canceling\""), "%s", b);
    free(b);
    /* on failure: the last answer and the job's own log */
    free(e2e_wait_job(t, port, id, "canceled", 20));
    free(WAIT_FOR(port, "/api/bulletins?category=job", 5000, "canceled"));
    /* finished: a second cancel conflicts; an unknown job is not found */
    cr_assert_eq(http(port, "DELETE", path, NULL, &b), 409, "%s", b);
    free(b);
    cr_assert_eq(http(port, "DELETE", "/api/jobs/0123456789abcdef", NULL, &b),
                 404, "%s", b);
    free(b);
    cr_assert_eq(http(port, "DELETE", "/api/jobs/nonsense", NULL, &b), 400,
                 "%s", b);
    free(b);
    cr_assert_eq(http(port, "DELETE", "/api/jobs", NULL, &b), 405, "%s", b);
    free(b);
    serve_stop(&serve);

    /* a restarted control plane does not resume it */
    serve_start(&serve, port);
    nap_ms(1500);
    b = get(port, path);
    cr_assert(b && strstr(b, "\"state\":\"canceled\""),
              "a canceled job is not resumed:\n%s", b);
    free(b);
    b = get(port, "/api/bulletins?category=job");
    cr_assert(b && !strstr(b, "started"), "nothing restarted:\n%s", b);
    free(b);
    serve_stop(&serve);
}

/* ---- stars ---- */

/* The host name stars are given for the control plane. */
static const char *control_host = "127.0.0.1";

/* Start `orbit-star --control` on a free port, beneath root (NULL: a
 * fresh directory of the workspace). */
static void
star_spawn(struct e2e_proc *p, const char *name, const char *root,
           uint16_t api_port)
{
    char tok[E2E_PATH * 2], url[64], own[E2E_PATH * 2];
    if (!root) {
        root = e2e_path(t, own, "star-%s", name);
        e2e_mkdir(own, 0755);
    }
    e2e_path(t, tok, "star.token");
    e2e_write_bytes(tok, E2E_TOKEN "\n", strlen(E2E_TOKEN) + 1);
    chmod(tok, 0600);
    snprintf(url, sizeof url, "http://%s:%u", control_host, api_port);
    const char *argv[] = {
        E2E_STAR, "--root",    root,          "--token-file",
        tok,      "--listen",  "127.0.0.1:0", "--name",
        name,     "--control", url,           "--control-interval",
        "1",      NULL};
    e2e_spawn(t, p, argv);
}

Test(cli_control, a_star_registers_is_lost_and_comes_back)
{
    uint16_t port = e2e_free_port();
    struct e2e_proc serve, star;
    serve_start(&serve, port);
    star_spawn(&star, "alpha", NULL, port);
    free(WAIT_FOR(port, "/api/stars", 5000, "\"name\":\"alpha\"",
                  "\"state\":\"scheduled\"", "\"address\":\"127.0.0.1:"));
    free(
        WAIT_FOR(port, "/api/bulletins?source=star:alpha", 2000, "registered"));

    /* stopped: three missed heartbeats of one second make it lost */
    kill(star.pid, SIGSTOP);
    free(WAIT_FOR(port, "/api/stars", 6000, "\"state\":\"lost\""));
    free(WAIT_FOR(port, "/api/bulletins?severity=warning", 1000,
                  "\"category\":\"star_lost\"", "\"source_name\":\"alpha\""));
    kill(star.pid, SIGCONT);
    free(WAIT_FOR(port, "/api/stars", 4000, "\"state\":\"scheduled\""));
    free(WAIT_FOR(port, "/api/bulletins?category=star_back", 1000, "back"));

    kill(star.pid, SIGTERM);
    e2e_wait(&star, 30);
    cr_assert_eq(star.code, 0, "%s", star.err);
    e2e_proc_free(&star);
    serve_stop(&serve);
}

/* A control plane named by host name: the star resolves it (with evdns,
 * off its loop) and registers. */
Test(cli_control, a_star_finds_its_control_plane_by_name)
{
    uint16_t port = e2e_free_port();
    struct e2e_proc serve, star;
    serve_start(&serve, port);
    control_host = "localhost";
    star_spawn(&star, "named", NULL, port);
    control_host = "127.0.0.1";
    free(WAIT_FOR(port, "/api/stars", 5000, "\"name\":\"named\"",
                  "\"state\":\"scheduled\""));
    kill(star.pid, SIGTERM);
    e2e_wait(&star, 30);
    cr_assert_eq(star.code, 0, "%s", star.err);
    e2e_proc_free(&star);
    serve_stop(&serve);
}

Test(cli_control, a_star_survives_an_absent_control_plane)
{
    uint16_t port = e2e_free_port();
    struct e2e_proc star, serve;
    star_spawn(&star, "beta", NULL, port); /* nothing listens there yet */
    nap_ms(2500);
    serve_start(&serve, port);
    free(WAIT_FOR(port, "/api/stars", 4000, "\"name\":\"beta\""));
    kill(star.pid, SIGTERM);
    e2e_wait(&star, 30);
    cr_assert_eq(star.code, 0, "%s", star.err);
    const char *first = strstr(star.err, "unreachable");
    cr_assert_not_null(first, "the outage is logged:\n%s", star.err);
    cr_assert_null(strstr(first + 1, "unreachable"), "once per outage:\n%s",
                   star.err);
    cr_assert_not_null(strstr(star.err, "answers again"), "%s", star.err);
    e2e_proc_free(&star);
    serve_stop(&serve);
}

Test(cli_control, a_critical_heartbeat_becomes_an_error_bulletin)
{
    uint16_t port = e2e_free_port();
    struct e2e_proc serve;
    serve_start(&serve, port);
    char *b;
    const char *hb = "{\"name\":\"gamma\",\"address\":\"10.0.0.9:7070\","
                     "\"state\":\"scheduled\",\"interval_ms\":5000,"
                     "\"disk_total\":1000,\"disk_used\":990,"
                     "\"advisories\":[\"disk_critical\"]}";
    cr_assert_eq(http(port, "POST", "/api/stars", hb, &b), 202, "%s", b);
    free(b);
    b = get(port, "/api/bulletins?severity=error");
    cr_assert(strstr(b, "\"category\":\"disk_critical\"") &&
                  strstr(b, "\"source\":\"star\"") &&
                  strstr(b, "\"source_name\":\"gamma\""),
              "%s", b);
    free(b);
    b = get(port, "/api/stars");
    cr_assert(strstr(b, "\"health\":\"critical\"") &&
                  strstr(b, "\"advisories\":[\"disk_critical\"]"),
              "%s", b);
    free(b);
    /* the same advisory again is no new bulletin */
    cr_assert_eq(http(port, "POST", "/api/stars", hb, &b), 202, "%s", b);
    free(b);
    b = get(port, "/api/bulletins?category=disk_critical");
    cr_assert(strstr(b, "\"count\":1"), "%s", b);
    free(b);
    /* refused: unknown fields, bad types, unknown advisories, no name */
    static const char *const bad[] = {
        "{\"name\":\"g\",\"address\":\"a:1\",\"state\":\"s\","
        "\"interval_ms\":1000,\"extra\":1}",
        "{\"name\":\"g\",\"address\":\"a:1\",\"state\":\"s\","
        "\"interval_ms\":\"1000\"}",
        "{\"name\":\"g\",\"address\":\"a:1\",\"state\":\"s\","
        "\"interval_ms\":1000,\"advisories\":[\"disk_on_fire\"]}",
        "{\"address\":\"a:1\",\"state\":\"s\",\"interval_ms\":1000}",
        "{\"name\":\"g\",\"address\":\"a:1\",\"state\":\"s\","
        "\"interval_ms\":10}",
        "[1,2]",
        "{\"name\":",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(http(port, "POST", "/api/stars", bad[i], &b), 400,
                     "%s -> %s", bad[i], b);
        free(b);
    }
    b = get(port, "/api/stars");
    cr_assert(strstr(b, "\"count\":1"), "%s", b);
    free(b);
    serve_stop(&serve);
}

static char tiny_root[E2E_PATH * 2];

/* Unmounted even when the test fails (teardown may run twice: harmless). */
static void
tiny_fini(void)
{
    if (tiny_root[0])
        umount2(tiny_root, MNT_DETACH);
    e2e_suite_fini();
}

/* A real star on a 2 MiB tmpfs filled past 95% reports disk_critical. */
Test(cli_control, a_full_star_reports_disk_critical, .fini = tiny_fini)
{
    char *root = tiny_root, fill[E2E_PATH * 3];
    e2e_path(t, root, "tiny");
    e2e_mkdir(root, 0755);
    if (mount("orbit-test", root, "tmpfs", 0, "size=2m") != 0) {
        root[0] = '\0';
        cr_log_warn("skipped: cannot mount a tmpfs here (%s)", strerror(errno));
        return;
    }
    snprintf(fill, sizeof fill, "%s/fill.bin", root);
    e2e_write_file(fill, (2u << 20) - (32u << 10), 3, 0644, 1600000000);
    uint16_t port = e2e_free_port();
    struct e2e_proc serve, star;
    serve_start(&serve, port);
    star_spawn(&star, "full", root, port);
    char *b =
        WAIT_FOR(port, "/api/bulletins?severity=error", 8000,
                 "\"category\":\"disk_critical\"", "\"source_name\":\"full\"");
    free(b);
    kill(star.pid, SIGTERM);
    e2e_wait(&star, 30);
    e2e_proc_free(&star);
    serve_stop(&serve);
}
