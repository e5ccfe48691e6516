/*
 * Limits and load: bad configurations, the connection limit, a client that
 * never reads its replies, many clients at once.
 */
#include <limits.h>
#include <pthread.h>
#include <sys/resource.h>

#include "test_star_helpers.h"

Test(star_limits, star_new_refuses_bad_roots_and_configs)
{
    struct star_config cfg;
    struct star *s = NULL;
    ts_config(&cfg, "/nonexistent/orbit-star-root");
    cr_assert_eq(star_new(&cfg, &s), ORBIT_ENOENT);
    ts_config(&cfg, "/etc/hostname");
    cr_assert_eq(star_new(&cfg, &s), ORBIT_ENOTDIR);
    ts_config(&cfg, "/tmp");
    cfg.token_len = 0;
    cr_assert_eq(star_new(&cfg, &s), ORBIT_EINVAL);
    cr_assert_null(s);
    star_free(NULL);
}

/* A star holds an fd per connection and per staging file of a round: it
 * starts by raising its soft limit on open files to the hard one. */
Test(star_limits, the_open_file_limit_is_raised_to_the_hard_one)
{
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
    cr_assert_gt(rl.rlim_max, 64, "hard limit %llu",
                 (unsigned long long)rl.rlim_max);
    struct rlimit low = {64, rl.rlim_max};
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    unsigned long got = star_raise_nofile();
    struct rlimit now;
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &now), 0);
    cr_assert_eq(now.rlim_cur, rl.rlim_max);
    cr_assert(got == (unsigned long)now.rlim_cur ||
              (now.rlim_cur == RLIM_INFINITY && got == ULONG_MAX));
}

Test(star_limits, listen_errors)
{
    struct tstar t;
    ts_start(&t);
    struct star_config cfg;
    struct star *other = NULL;
    ts_config(&cfg, t.root);
    cr_assert_eq(star_new(&cfg, &other), ORBIT_EAGAIN, "one star per root");
    char root2[256];
    ts_mkroot(root2, sizeof root2);
    ts_config(&cfg, root2);
    cr_assert_eq(star_new(&cfg, &other), 0);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", t.port);
    cr_assert_eq(star_listen(other, addr), ORBIT_EEXIST);
    cr_assert_eq(star_listen(other, "not an address"), ORBIT_EINVAL);
    star_free(other);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root2);
    cr_assert_eq(system(cmd), 0);
    ts_stop(&t);
}

Test(star_limits, connections_over_the_limit_get_eagain)
{
    struct tstar t;
    ts_mkroot(t.root, sizeof t.root);
    struct star_config cfg;
    ts_config(&cfg, t.root);
    cfg.max_connections = 2;
    ts_start_cfg(&t, &cfg);
    int a = tc_open(t.port), b = tc_open(t.port);
    int c = tc_connect(t.port);
    uint8_t *buf = NULL;
    struct wire_msg m;
    cr_assert_eq(tc_recv(c, &buf, &m), 0);
    cr_assert_eq(m.type, WIRE_ERROR);
    cr_assert_eq(m.u.error.code, ORBIT_EAGAIN);
    cr_assert(m.u.error.retryable);
    cr_assert(tc_closed(c));
    close(c);
    close(a);
    usleep(100 * 1000);
    c = tc_open(t.port); /* room again */
    close(c);
    close(b);
    free(buf);
    ts_stop(&t);
}

Test(star_limits, a_client_that_never_reads_is_held_back)
{
    struct tstar t;
    ts_start(&t);
    char p[512];
    for (int i = 0; i < 1000; i++) {
        snprintf(p, sizeof p, "%s/f%04d", t.root, i);
        close(open(p, O_WRONLY | O_CREAT, 0644));
    }
    int a = tc_open(t.port);
    /* LIST requests (about 50 KB of reply each), replies not read yet */
    enum { N = 1000 };
    struct wire_msg m, r;
    memset(&m, 0, sizeof m);
    m.type = WIRE_LIST;
    m.u.list.path = "";
    m.u.list.cursor = "";
    m.u.list.max_entries = 1000;
    for (uint32_t i = 0; i < N; i++) {
        m.request_id = 100 + i;
        cr_assert_eq(tc_send(a, &m), 0);
    }
    /* another client is served meanwhile */
    int b = tc_open(t.port);
    uint8_t *buf = NULL;
    memset(&m, 0, sizeof m);
    m.type = WIRE_HEALTH;
    m.request_id = 5;
    cr_assert_eq(tc_call(b, &m, &r, &buf), WIRE_HEALTH_REPLY);
    close(b);
    struct star_stats st;
    star_get_stats(t.star, &st);
    cr_assert_geq(st.reads_paused, 1,
                  "the star kept reading a client that "
                  "does not read its replies");
    /* and a gets every reply once it reads */
    for (uint32_t i = 0; i < N; i++) {
        cr_assert_eq(tc_recv(a, &buf, &r), 0, "reply %u", i);
        cr_assert_eq(r.type, WIRE_LIST_REPLY);
        cr_assert_eq(r.u.list_reply.n, 1000);
    }
    close(a);
    free(buf);
    ts_stop(&t);
}

struct client_job {
    uint16_t port;
    int index;
    int ok;
};

static void *
client_main(void *arg)
{
    struct client_job *j = arg;
    int fd = tc_open(j->port);
    enum { LEN = 20000, N = 8 };
    uint8_t *data = malloc((size_t)LEN * N);
    ts_fill(data, (size_t)LEN * N, 100 + (uint32_t)j->index);
    char path[64];
    snprintf(path, sizeof path, "c%02d/file.bin", j->index);
    for (uint32_t i = 0; i < N; i++) {
        struct wire_msg m;
        tc_put_msg(&m, 10 + i, data + (size_t)i * LEN, LEN, i % 2 ? path : NULL,
                   (uint64_t)i * LEN);
        tc_send(fd, &m);
    }
    uint8_t *buf = NULL;
    struct wire_msg r;
    int ok = 1;
    for (uint32_t i = 0; i < N; i++)
        ok &= tc_recv(fd, &buf, &r) == 0 && r.type == WIRE_PUT_OK;
    size_t cuts[N];
    for (int i = 0; i < N; i++)
        cuts[i] = LEN;
    struct tc_file f = {path, data, (size_t)LEN * N, cuts, N, 0, 0};
    struct wire_chunk_ref refs[N];
    struct wire_msg m;
    tc_commit_msg(&m, 99, &f, refs);
    tc_send(fd, &m);
    ok &= tc_recv(fd, &buf, &r) == 0 && r.type == WIRE_COMMIT_OK;
    j->ok = ok;
    close(fd);
    free(buf);
    free(data);
    return NULL;
}

Test(star_limits, many_clients_at_once)
{
    struct tstar t;
    ts_start(&t);
    enum { C = 16 };
    pthread_t th[C];
    struct client_job jobs[C];
    for (int i = 0; i < C; i++) {
        jobs[i] = (struct client_job){t.port, i, 0};
        pthread_create(&th[i], NULL, client_main, &jobs[i]);
    }
    for (int i = 0; i < C; i++) {
        pthread_join(th[i], NULL);
        cr_assert(jobs[i].ok, "client %d failed", i);
    }
    for (int i = 0; i < C; i++) {
        char p[512];
        snprintf(p, sizeof p, "%s/c%02d/file.bin", t.root, i);
        struct stat st;
        cr_assert_eq(stat(p, &st), 0);
        cr_assert_eq(st.st_size, 20000 * 8);
    }
    struct star_stats st;
    star_get_stats(t.star, &st);
    cr_assert_eq(st.files_committed, C);
    ts_stop(&t);
}

Test(star_limits, a_high_error_rate_raises_an_advisory)
{
    struct tstar t;
    ts_start(&t);
    int fd = tc_open(t.port);
    uint8_t data[100];
    ts_fill(data, sizeof data, 51);
    uint8_t *buf = NULL;
    struct wire_msg m, r;
    for (uint32_t i = 0; i < 30; i++) {
        tc_put_msg(&m, 10 + i, data, sizeof data, NULL, 0);
        m.u.put.id[0] ^= 0xff;
        cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_ERROR);
    }
    memset(&m, 0, sizeof m);
    m.type = WIRE_HEALTH;
    m.request_id = 99;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_HEALTH_REPLY);
    cr_assert(r.u.health.advisories & WIRE_ADV_ERROR_RATE_HIGH, "%x",
              r.u.health.advisories);
    cr_assert_eq(r.u.health.state, WIRE_STATE_DEGRADED);
    cr_assert_geq(r.u.health.errors_total, 30);
    close(fd);
    free(buf);
    ts_stop(&t);
}

/* Well-framed frames of every type with random payloads, after auth. */
Test(star_limits, random_payloads_never_hurt_the_star)
{
    struct tstar t;
    ts_start(&t);
    static const uint8_t types[] = {
        WIRE_ERROR,  WIRE_AUTH_RESPONSE, WIRE_HELLO,    WIRE_HAVE,
        WIRE_PUT,    WIRE_COMMIT,        WIRE_LIST,     WIRE_DELETE,
        WIRE_HEALTH, WIRE_GOODBYE_OK,    WIRE_BULLETIN, 0x7f};
    int fd = tc_open(t.port);
    uint8_t frame[WIRE_HDR_LEN + 2048];
    uint32_t x = 12345, i = 0;
    for (; i < 3000; i++) {
        x = x * 1103515245u + 12345u;
        uint8_t type = types[(x >> 8) % sizeof types];
        if (type == WIRE_GOODBYE_OK)
            type = WIRE_HAVE;
        x = x * 1103515245u + 12345u;
        uint32_t len = (x >> 8) % 2048;
        frame[0] = WIRE_VERSION;
        frame[1] = type;
        frame[2] = frame[3] = 0;
        frame[4] = 0, frame[5] = 0, frame[6] = (uint8_t)(i >> 8),
        frame[7] = (uint8_t)i;
        frame[8] = 0, frame[9] = 0, frame[10] = (uint8_t)(len >> 8),
        frame[11] = (uint8_t)len;
        ts_fill(frame + WIRE_HDR_LEN, len, i);
        /* now and then a plausible start: a small count or length */
        if (len >= 4 && i % 3 == 0)
            frame[WIRE_HDR_LEN] = frame[WIRE_HDR_LEN + 1] = 0;
        if (tc_write_all(fd, frame, WIRE_HDR_LEN + len) < 0)
            break;
        /* drain replies so the star never pauses us */
        uint8_t sink[65536];
        while (recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0)
            ;
    }
    cr_assert_eq(i, 3000, "the star closed the session at frame %u", i);
    close(fd);
    fd = tc_open(t.port);
    struct wire_msg m, r;
    uint8_t *buf = NULL;
    memset(&m, 0, sizeof m);
    m.type = WIRE_HEALTH;
    m.request_id = 1;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_HEALTH_REPLY);
    close(fd);
    free(buf);
    ts_stop(&t);
}
