/*
 * The orbit-star executable as a process: SIGTERM drains and exits 0;
 * SIGKILL loses nothing acknowledged (HAVE after a restart reports every
 * chunk that got PUT_OK, committed files are intact); startup errors.
 */
#include <signal.h>

#include "test_star_helpers.h"

#define STAR_BIN ORBIT_BIN_DIR "/cli/orbit-star"

struct proc {
    char root[400];
    char token_file[500];
    uint16_t port;
    pid_t pid;
};

static uint16_t
free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(s, (struct sockaddr *)&sa, sizeof sa), 0);
    socklen_t n = sizeof sa;
    getsockname(s, (struct sockaddr *)&sa, &n);
    close(s);
    return ntohs(sa.sin_port);
}

static pid_t
spawn(const struct proc *p, const char *listen_addr, int *devnull_err)
{
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        if (devnull_err) {
            int fd = open("/dev/null", O_WRONLY);
            dup2(fd, 2);
        }
        execl(STAR_BIN, "orbit-star", "--root", p->root, "--listen",
              listen_addr, "--token-file", p->token_file, "--quiet",
              (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void
proc_start(struct proc *p)
{
    cr_assert_eq(access(STAR_BIN, X_OK), 0,
                 "%s missing: build the orbit-star target first", STAR_BIN);
    char addr[64];
    p->port = free_port();
    snprintf(addr, sizeof addr, "127.0.0.1:%u", p->port);
    p->pid = spawn(p, addr, NULL);
    for (int i = 0; i < 200; i++) {
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET,
                                 .sin_port = htons(p->port),
                                 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        int ok = connect(s, (struct sockaddr *)&sa, sizeof sa) == 0;
        close(s);
        if (ok)
            return;
        usleep(25 * 1000);
    }
    cr_assert_fail("orbit-star did not start listening on %s", addr);
}

static void
proc_init(struct proc *p)
{
    ts_mkroot(p->root, sizeof p->root);
    snprintf(p->token_file, sizeof p->token_file, "%.300s.token", p->root);
    FILE *f = fopen(p->token_file, "w");
    fprintf(f, "%s\n", (const char *)ts_token);
    fclose(f);
}

static void
proc_cleanup(struct proc *p)
{
    char cmd[1000];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", p->root, p->token_file);
    if (system(cmd) != 0)
        cr_log_warn("could not clean %s", p->root);
}

static int
wait_exit(pid_t pid)
{
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

Test(star_process, sigterm_drains_and_exits_zero)
{
    struct proc p;
    proc_init(&p);
    proc_start(&p);
    int fd = tc_open(p.port);
    uint8_t data[1000];
    ts_fill(data, sizeof data, 11);
    tc_put(fd, 3, data, sizeof data, NULL, 0);
    cr_assert_eq(kill(p.pid, SIGTERM), 0);
    cr_assert_eq(wait_exit(p.pid), 0);
    cr_assert(tc_closed(fd));
    close(fd);
    proc_cleanup(&p);
}

Test(star_process, sigkill_loses_nothing_acknowledged)
{
    struct proc p;
    proc_init(&p);
    proc_start(&p);
    int fd = tc_open(p.port);
    enum { N = 300, LEN = 3000 };
    uint8_t *data = malloc((size_t)N * LEN);
    ts_fill(data, (size_t)N * LEN, 12);
    /* half hinted into one file's staging file, half into containers */
    for (uint32_t i = 0; i < N; i++) {
        struct wire_msg m;
        tc_put_msg(&m, 100 + i, data + (size_t)i * LEN, LEN,
                   i % 2 ? "staged/file.bin" : NULL, (uint64_t)i * LEN);
        cr_assert_eq(tc_send(fd, &m), 0);
    }
    uint8_t *buf = NULL;
    for (uint32_t i = 0; i < N; i++) {
        struct wire_msg r;
        cr_assert_eq(tc_recv(fd, &buf, &r), 0);
        cr_assert_eq(r.type, WIRE_PUT_OK);
    }
    /* one committed file too */
    size_t cuts[] = {LEN, LEN};
    struct tc_file f = {"done/two.bin", data, 2 * LEN, cuts, 2, 0600, 0};
    struct wire_chunk_ref refs[2];
    struct wire_msg m, r;
    tc_commit_msg(&m, 9, &f, refs);
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_COMMIT_OK);
    cr_assert_eq(kill(p.pid, SIGKILL), 0);
    cr_assert_eq(wait_exit(p.pid), 128 + SIGKILL);
    close(fd);

    proc_start(&p);
    fd = tc_open(p.port);
    uint8_t *ids = malloc((size_t)N * 32);
    for (uint32_t i = 0; i < N; i++)
        ts_sha(data + (size_t)i * LEN, LEN, ids + (size_t)i * 32);
    memset(&m, 0, sizeof m);
    m.type = WIRE_HAVE;
    m.request_id = 7;
    m.u.have.n = N;
    m.u.have.ids = ids;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_HAVE_REPLY);
    for (uint32_t i = 0; i < N; i++)
        cr_assert_not(wire_bitmap_get(r.u.have_reply.bitmap, i),
                      "chunk %u lost after SIGKILL", i);
    /* and they are readable: commit a file made of staged and packed ones */
    size_t cuts3[] = {LEN, LEN, LEN};
    struct tc_file g = {
        "after/three.bin", data + 10 * LEN, 3 * LEN, cuts3, 3, 0, 0};
    struct wire_chunk_ref refs3[3];
    tc_commit_msg(&m, 8, &g, refs3);
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_COMMIT_OK);
    char path[512];
    size_t len = 0;
    snprintf(path, sizeof path, "%s/done/two.bin", p.root);
    char *got = ts_read_file(path, &len);
    cr_assert_eq(len, 2 * LEN);
    cr_assert_eq(memcmp(got, data, len), 0);
    free(got);
    kill(p.pid, SIGTERM);
    cr_assert_eq(wait_exit(p.pid), 0);
    close(fd);
    free(ids);
    free(buf);
    free(data);
    proc_cleanup(&p);
}

Test(star_process, startup_errors_are_clear)
{
    struct proc p;
    proc_init(&p);
    proc_start(&p);
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%u", p.port);
    int devnull = 1;
    pid_t second = spawn(&p, addr, &devnull);
    cr_assert_eq(wait_exit(second), 1, "port in use must fail");
    struct proc bad = p;
    snprintf(bad.root, sizeof bad.root, "%.200s/missing", p.root);
    cr_assert_eq(wait_exit(spawn(&bad, "127.0.0.1:0", &devnull)), 1);
    bad = p;
    snprintf(bad.token_file, sizeof bad.token_file, "%.200s/none", p.root);
    cr_assert_eq(wait_exit(spawn(&bad, "127.0.0.1:0", &devnull)), 1);
    kill(p.pid, SIGTERM);
    cr_assert_eq(wait_exit(p.pid), 0);
    proc_cleanup(&p);
}

Test(star_process, sigterm_mid_upload_keeps_every_acknowledged_chunk)
{
    struct proc p;
    proc_init(&p);
    proc_start(&p);
    int fd = tc_open(p.port);
    enum { N = 400, LEN = 16384 };
    uint8_t *data = malloc((size_t)N * LEN);
    ts_fill(data, (size_t)N * LEN, 13);
    for (uint32_t i = 0; i < N; i++) {
        struct wire_msg m;
        tc_put_msg(&m, 1 + i, data + (size_t)i * LEN, LEN,
                   i % 3 ? "up.bin" : NULL, (uint64_t)i * LEN);
        if (tc_send(fd, &m) < 0)
            break;
        if (i == N / 4)
            kill(p.pid, SIGTERM);
    }
    uint8_t *acked = calloc(N, 1);
    uint8_t *buf = NULL;
    struct wire_msg r;
    uint32_t nacked = 0;
    while (tc_recv(fd, &buf, &r) == 0) {
        if (r.type == WIRE_PUT_OK && r.request_id >= 1 && r.request_id <= N) {
            acked[r.request_id - 1] = 1;
            nacked++;
        } else {
            cr_assert_eq(r.type, WIRE_ERROR);
            cr_assert(r.u.error.retryable, "refused work must be retryable");
        }
    }
    close(fd);
    cr_assert_eq(wait_exit(p.pid), 0);
    proc_start(&p);
    fd = tc_open(p.port);
    uint8_t *ids = malloc((size_t)N * 32);
    for (uint32_t i = 0; i < N; i++)
        ts_sha(data + (size_t)i * LEN, LEN, ids + (size_t)i * 32);
    struct wire_msg m;
    memset(&m, 0, sizeof m);
    m.type = WIRE_HAVE;
    m.request_id = 7;
    m.u.have.n = N;
    m.u.have.ids = ids;
    cr_assert_eq(tc_call(fd, &m, &r, &buf), WIRE_HAVE_REPLY);
    for (uint32_t i = 0; i < N; i++)
        if (acked[i])
            cr_assert_not(wire_bitmap_get(r.u.have_reply.bitmap, i),
                          "acknowledged chunk %u lost", i);
    cr_log_info("%u of %u PUTs acknowledged before the drain", nacked, N);
    kill(p.pid, SIGTERM);
    cr_assert_eq(wait_exit(p.pid), 0);
    close(fd);
    free(ids);
    free(acked);
    free(buf);
    free(data);
    proc_cleanup(&p);
}
