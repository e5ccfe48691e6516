/*
 * faults_util.h - what the proving-ground tests share: child processes that
 * print their port, loopback sockets with deadlines, scratch directories and
 * a seeded byte generator.
 */
#ifndef FAULTS_UTIL_H
#define FAULTS_UTIL_H

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define FU_UNUSED __attribute__((unused))

FU_UNUSED static uint64_t
fu_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* splitmix64, the proxy's generator too. */
FU_UNUSED static uint64_t
fu_rand(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

FU_UNUSED static void
fu_fill(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t s = seed;
    for (size_t i = 0; i < n; i += 8) {
        uint64_t v = fu_rand(&s);
        size_t k = n - i < 8 ? n - i : 8;
        memcpy(p + i, &v, k);
    }
}

/* Where scratch directories go: $ORBIT_FAULTS_TMPDIR, else tmpfs if
 * there is one (the star fsyncs every file), else /tmp. */
FU_UNUSED static const char *
fu_scratch_base(void)
{
    const char *env = getenv("ORBIT_FAULTS_TMPDIR");
    if (env && env[0])
        return env;
    return access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
}

/* A scratch directory; path must hold its base and 32 bytes. */
FU_UNUSED static void
fu_mkdtemp(char *path, size_t cap, const char *tag)
{
    snprintf(path, cap, "%s/orbit-faults-%s.XXXXXX", fu_scratch_base(), tag);
    cr_assert_not_null(mkdtemp(path), "mkdtemp %s: %s", path, strerror(errno));
}

static int
fu_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(p) == 0 || errno == ENOENT ? 0 : -1;
}

FU_UNUSED static void
fu_rmrf(const char *path)
{
    if (path[0])
        nftw(path, fu_rm_one, 32, FTW_DEPTH | FTW_PHYS);
}

FU_UNUSED static void
fu_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(data, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

/* The whole file in a malloc'd buffer (NUL-terminated), NULL if absent. */
FU_UNUSED static char *
fu_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap + 1);
    size_t r;
    while (b && (r = fread(b + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = realloc(b, 2 * cap + 1);
            if (!nb)
                free(b);
            b = nb;
            cap *= 2;
        }
    }
    fclose(f);
    if (b)
        b[n] = 0;
    if (len)
        *len = n;
    return b;
}

/* Point fd at path (truncated), or leave it if path is NULL. */
static void
fu_redirect(int fd, const char *path)
{
    if (!path)
        return;
    int f = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (f >= 0)
        dup2(f, fd);
}

/*
 * Start argv[0]. Its stdout goes to a pipe returned in *out_fd, or else to
 * out_path (NULL: inherited); its stderr to err_path (NULL: inherited).
 */
FU_UNUSED static pid_t
fu_spawn_to(char *const argv[], int *out_fd, const char *out_path,
            const char *err_path)
{
    int pfd[2] = {-1, -1};
    if (out_fd)
        cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        if (out_fd)
            dup2(pfd[1], STDOUT_FILENO);
        fu_redirect(STDOUT_FILENO, out_path);
        fu_redirect(STDERR_FILENO, err_path);
        execv(argv[0], argv);
        _exit(127);
    }
    if (out_fd) {
        close(pfd[1]);
        *out_fd = pfd[0];
    }
    return pid;
}

FU_UNUSED static pid_t
fu_spawn(char *const argv[], int *out_fd, const char *err_path)
{
    return fu_spawn_to(argv, out_fd, NULL, err_path);
}

/* Read the first line of fd (a port) within timeout_ms; 0 on failure. */
FU_UNUSED static uint16_t
fu_read_port(int fd, int timeout_ms)
{
    char line[32];
    size_t n = 0;
    uint64_t end = fu_now_ms() + (uint64_t)timeout_ms;
    while (n + 1 < sizeof line && fu_now_ms() < end) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t r = read(fd, line + n, 1);
        if (r <= 0)
            return 0;
        if (line[n] == '\n')
            break;
        n++;
    }
    line[n] = 0;
    long v = strtol(line, NULL, 10);
    return v > 0 && v < 65536 ? (uint16_t)v : 0;
}

/* Wait for pid up to timeout_ms; returns its wait status, -1 if still up. */
FU_UNUSED static int
fu_wait(pid_t pid, int timeout_ms)
{
    uint64_t end = fu_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        int st = 0;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return st;
        if (r < 0 || fu_now_ms() >= end)
            return -1;
        usleep(10 * 1000);
    }
}

/* SIGTERM, then SIGKILL if it has not exited in timeout_ms. */
FU_UNUSED static int
fu_stop(pid_t pid, int timeout_ms)
{
    kill(pid, SIGTERM);
    int st = fu_wait(pid, timeout_ms);
    if (st == -1) {
        kill(pid, SIGKILL);
        st = fu_wait(pid, 5000);
    }
    return st;
}

/* Cleanup after a test, passed or failed: stop every process still
 * recorded (pid > 0) and forget it. */
FU_UNUSED static void
fu_stop_all(pid_t *const *pids, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (*pids[i] > 0 && fu_stop(*pids[i], 5000) == -1)
            cr_log_warn("process %d did not exit", (int)*pids[i]);
        *pids[i] = 0;
    }
}

/* A blocking loopback connection with receive/send timeouts. */
FU_UNUSED static int
fu_connect(uint16_t port, int timeout_s)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0,
                 "connect %u: %s", port, strerror(errno));
    struct timeval tv = {timeout_s, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/* A listening loopback socket on an ephemeral port. */
FU_UNUSED static int
fu_listen(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    cr_assert_eq(listen(fd, 64), 0);
    socklen_t sl = sizeof sa;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

/*
 * Whether the peer closes fd within timeout_ms, reading and discarding
 * whatever comes first. *rst (if not NULL) says whether it was a reset.
 */
FU_UNUSED static bool
fu_closed_within(int fd, int timeout_ms, bool *rst)
{
    uint8_t b[4096];
    uint64_t end = fu_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        uint64_t now = fu_now_ms();
        if (now >= end)
            return false;
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, (int)(end - now)) <= 0)
            continue;
        ssize_t r = recv(fd, b, sizeof b, MSG_DONTWAIT);
        if (r < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (r <= 0) {
            if (rst)
                *rst = r < 0 && errno == ECONNRESET;
            return true;
        }
    }
}

/*
 * Start the fault proxy in front of 127.0.0.1:target with the given extra
 * options (NULL-terminated), stderr (its fault log and summary) into
 * err_path. Returns its port; *pid is the process.
 */
FU_UNUSED static uint16_t
fu_proxy_start(uint16_t target, const char *const extra[], const char *err_path,
               pid_t *pid)
{
    char tport[16];
    snprintf(tport, sizeof tport, "%u", target);
    const char *argv[40] = {FAULTPROXY_BIN,  "--target", tport,
                            "--max-seconds", "120",      "--verbose"};
    size_t n = 6;
    for (size_t i = 0; extra && extra[i] && n + 1 < 40; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    int out = -1;
    *pid = fu_spawn((char *const *)argv, &out, err_path);
    uint16_t port = fu_read_port(out, 10000);
    close(out);
    cr_assert_neq(port, 0, "the proxy printed no port");
    return port;
}

/* The value of " key=" in a proxy summary line. */
FU_UNUSED static uint64_t
fu_summary_field(const char *summary, const char *key)
{
    char k[64];
    snprintf(k, sizeof k, " %s=", key);
    const char *p = strstr(summary, k);
    cr_assert_not_null(p, "no %s in summary: %s", key, summary);
    return strtoull(p + strlen(k), NULL, 10);
}

#endif
