/*
 * Measurement, not a check: a large-file copy into a star over 127.0.0.1,
 * chunks placed in the file's staging file (hinted) versus in containers,
 * against writing the same bytes once with write + fsync. Runs only with
 * ORBIT_STAR_BENCH=1 (size: ORBIT_STAR_BENCH_MB, default 256; over a
 * socketpair with ORBIT_STAR_BENCH_PAIR=1; a sync-round delay with
 * ORBIT_STAR_BENCH_DELAY_US); use a
 * Release build: ORBIT_STAR_BENCH=1 ./tests/test_orbit_star
 * --filter=star_bench/large_file_staging_vs_containers --verbose
 */
#include <time.h>

#include "test_star_helpers.h"

#define CHUNK  (64 * 1024)
#define WINDOW 256

static double
now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The file being copied, prepared before any clock starts. */
struct bench_file {
    uint8_t *data;
    size_t nchunks;
    uint8_t *ids;
    uint8_t digest[32];
};

static void
bench_prepare(struct bench_file *f, size_t nchunks)
{
    f->nchunks = nchunks;
    f->data = malloc(nchunks * CHUNK);
    f->ids = malloc(nchunks * 32);
    cr_assert(f->data && f->ids);
    for (size_t i = 0; i < nchunks; i++) {
        ts_fill(f->data + i * CHUNK, CHUNK, (uint32_t)i + 1);
        ts_sha(f->data + i * CHUNK, CHUNK, f->ids + i * 32);
    }
    ts_sha(f->data, nchunks * CHUNK, f->digest);
}

static void
send_put(int fd, const struct bench_file *f, size_t i)
{
    struct wire_msg m;
    memset(&m, 0, sizeof m);
    m.type = WIRE_PUT;
    m.request_id = (uint32_t)(i + 1);
    memcpy(m.u.put.id, f->ids + i * 32, 32);
    m.u.put.codec = WIRE_CODEC_RAW;
    m.u.put.raw_len = CHUNK;
    m.u.put.data = f->data + i * CHUNK;
    m.u.put.data_len = CHUNK;
    m.u.put.has_hint = true;
    m.u.put.hint_path = "big.bin";
    m.u.put.hint_path_len = 7;
    m.u.put.hint_offset = (uint64_t)i * CHUNK;
    cr_assert_eq(tc_send(fd, &m), 0);
}

static void
send_commit(int fd, const struct bench_file *f, uint8_t **buf)
{
    struct wire_chunk_ref *refs = calloc(f->nchunks, sizeof *refs);
    for (size_t i = 0; i < f->nchunks; i++) {
        memcpy(refs[i].id, f->ids + i * 32, 32);
        refs[i].raw_len = CHUNK;
    }
    struct wire_msg m, r;
    memset(&m, 0, sizeof m);
    m.type = WIRE_COMMIT;
    m.request_id = 0x7fffffff;
    m.u.commit.path = "big.bin";
    m.u.commit.path_len = 7;
    m.u.commit.ftype = WIRE_FT_REGULAR;
    m.u.commit.size = (uint64_t)f->nchunks * CHUNK;
    m.u.commit.mode = 0644;
    m.u.commit.target = "";
    memcpy(m.u.commit.digest, f->digest, 32);
    m.u.commit.chunk_total = f->nchunks;
    m.u.commit.n = (uint32_t)f->nchunks;
    m.u.commit.chunks = refs;
    cr_assert_eq(tc_call(fd, &m, &r, buf), WIRE_COMMIT_OK);
    free(refs);
}

/* Send every chunk (WINDOW in flight), then the COMMIT; seconds taken. */
static double
copy_once(enum star_placement placement, const struct bench_file *f)
{
    struct tstar t;
    ts_mkroot(t.root, sizeof t.root);
    struct star_config cfg;
    ts_config(&cfg, t.root);
    cfg.placement = placement;
    const char *delay = getenv("ORBIT_STAR_BENCH_DELAY_US");
    cfg.batch_delay_us = delay ? (uint32_t)atol(delay) : 0;
    int fd = -1;
    if (getenv("ORBIT_STAR_BENCH_PAIR")) {
        /* the in-process transport: a socketpair */
        int sv[2];
        cr_assert_eq(star_new(&cfg, &t.star), 0);
        cr_assert_eq(star_schedule(t.star), 0);
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
        cr_assert_eq(star_adopt_fd(t.star, sv[1]), 0);
        fd = sv[0];
        cr_assert_eq(tc_auth(fd, ts_token, TS_TOKEN_LEN), 0);
        tc_hello(fd);
    } else {
        ts_start_cfg(&t, &cfg);
        fd = tc_open(t.port);
    }
    uint8_t *buf = NULL;
    double t0 = now_s();
    size_t sent = 0, acked = 0;
    while (acked < f->nchunks) {
        while (sent < f->nchunks && sent - acked < WINDOW)
            send_put(fd, f, sent++);
        struct wire_msg r;
        cr_assert_eq(tc_recv(fd, &buf, &r), 0);
        cr_assert_eq(r.type, WIRE_PUT_OK);
        acked++;
    }
    double puts = now_s() - t0;
    send_commit(fd, f, &buf);
    double took = now_s() - t0;
    struct star_stats st;
    star_get_stats(t.star, &st);
    cr_log_info("  %s: %.2f s (PUTs %.2f s, COMMIT %.2f s), %llu sync rounds",
                placement == STAR_PLACE_PACK ? "containers" : "staging", took,
                puts, took - puts, (unsigned long long)st.sync_rounds);
    close(fd);
    free(buf);
    ts_stop(&t);
    return took;
}

/* The same bytes written once and fsynced: the floor. */
static double
write_once(const struct bench_file *f)
{
    char root[256], path[300];
    ts_mkroot(root, sizeof root);
    snprintf(path, sizeof path, "%s/f", root);
    double t0 = now_s();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    for (size_t i = 0; i < f->nchunks; i++)
        cr_assert_eq(write(fd, f->data + i * CHUNK, CHUNK), CHUNK);
    fsync(fd);
    close(fd);
    double took = now_s() - t0;
    unlink(path);
    rmdir(root);
    return took;
}

/* rsync --fsync of the same file, local to local; -1 if rsync is absent. */
static double
rsync_once(const struct bench_file *bf)
{
    char root[256], cmd[1024];
    ts_mkroot(root, sizeof root);
    snprintf(cmd, sizeof cmd, "%s/src", root);
    FILE *f = fopen(cmd, "wb");
    fwrite(bf->data, CHUNK, bf->nchunks, f);
    fclose(f);
    snprintf(cmd, sizeof cmd,
             "mkdir %s/dst && rsync --fsync %s/src %s/dst/ 2>/dev/null", root,
             root, root);
    double t0 = now_s();
    int rc = system(cmd);
    double took = now_s() - t0;
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", root);
    return rc == 0 ? took : -1;
}

Test(star_bench, large_file_staging_vs_containers)
{
    if (!getenv("ORBIT_STAR_BENCH"))
        cr_skip_test("measurement: set ORBIT_STAR_BENCH=1 to run");
    const char *mb_env = getenv("ORBIT_STAR_BENCH_MB");
    size_t mb = mb_env ? (size_t)atol(mb_env) : 256;
    size_t nchunks = mb * 1024 * 1024 / CHUNK;
    struct bench_file f;
    bench_prepare(&f, nchunks);
    double base = write_once(&f);
    double staging = copy_once(STAR_PLACE_STAGING, &f);
    double pack = copy_once(STAR_PLACE_PACK, &f);
    double rs = rsync_once(&f);
    double mbs = (double)mb;
    cr_log_info("%zu MiB in %zu chunks of 64 KiB:", mb, nchunks);
    cr_log_info("  write+fsync once : %6.2f s  %7.1f MiB/s", base, mbs / base);
    cr_log_info("  star, staging    : %6.2f s  %7.1f MiB/s  (%.2fx floor)",
                staging, mbs / staging, staging / base);
    cr_log_info("  star, containers : %6.2f s  %7.1f MiB/s  (%.2fx floor)",
                pack, mbs / pack, pack / base);
    if (rs > 0)
        cr_log_info("  rsync --fsync    : %6.2f s  %7.1f MiB/s  (%.2fx floor)",
                    rs, mbs / rs, rs / base);
    free(f.data);
    free(f.ids);
}
